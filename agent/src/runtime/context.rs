//! Build contexts: a directory streamed as a tar (without `.git`), written
//! by a blocking task into a bounded channel the engine request reads from.

use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::RuntimeError;

const CHUNK: usize = 64 * 1024;

/// A build context being streamed: read `stream` to the end, then join
/// `writer` (it fails if the directory could not be read).
pub struct ContextTar {
    pub stream: Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send + Unpin>,
    pub writer: JoinHandle<io::Result<()>>,
}

/// Streams `dir` as a tar; `containerfile` must be a relative path to a file
/// inside it (checked before anything is spawned).
pub fn context_tar(dir: &Path, containerfile: &str) -> Result<ContextTar, RuntimeError> {
    let rel = Path::new(containerfile);
    let escapes = rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if containerfile.is_empty() || escapes {
        return Err(RuntimeError::Invalid {
            field: "containerfile_path",
            value: containerfile.into(),
            reason: "must be a relative path inside the build context".into(),
        });
    }
    if !dir.join(rel).is_file() {
        return Err(RuntimeError::Invalid {
            field: "containerfile_path",
            value: containerfile.into(),
            reason: format!("no such file in {}", dir.display()),
        });
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    let root = dir.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let result = write_tar(&root, &mut out).and_then(|()| out.flush());
        if let Err(e) = &result {
            // Make the reader fail instead of seeing a truncated archive.
            let _ = tx.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
        }
        result
    });
    let stream = tokio_stream_from(rx);
    Ok(ContextTar { stream, writer })
}

fn tokio_stream_from(
    rx: mpsc::Receiver<Result<Bytes, io::Error>>,
) -> Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send + Unpin> {
    Box::new(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })))
}

fn write_tar(root: &Path, out: &mut ChannelWriter) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut stack: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<_> =
            std::fs::read_dir(root.join(&rel))?.collect::<Result<Vec<_>, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if rel.as_os_str().is_empty() && name == ".git" {
                continue;
            }
            let child = rel.join(&name);
            let kind = entry.file_type()?;
            if kind.is_dir() {
                tar.append_dir(&child, entry.path())?;
                stack.push(child);
            } else {
                tar.append_path_with_name(entry.path(), &child)?;
            }
        }
    }
    tar.finish()
}

struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, io::Error>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "build context reader gone"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn streams_the_directory_without_git() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Containerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir_all(dir.path().join("www/sub")).unwrap();
        std::fs::write(dir.path().join("www/sub/health"), "ok").unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "ref").unwrap();
        let ctx = context_tar(dir.path(), "Containerfile").unwrap();
        let chunks: Vec<_> = ctx.stream.collect().await;
        ctx.writer.await.unwrap().unwrap();
        let bytes: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        let mut archive = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(names.contains(&"Containerfile".to_string()), "{names:?}");
        assert!(names.contains(&"www/sub/health".to_string()), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with(".git")), "{names:?}");
    }

    #[test]
    fn containerfile_must_be_inside_the_context() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["../Dockerfile", "/etc/passwd", "", "missing/Dockerfile"] {
            let err = context_tar(dir.path(), bad).err().expect(bad);
            assert!(err.to_string().contains("containerfile_path"), "{err}");
        }
    }
}
