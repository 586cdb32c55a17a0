//! Secret files on the host: one directory per container under a root that
//! should be a tmpfs (`/dev/shm/...`), bind-mounted read-only at
//! `/run/secrets` in the container. Values never touch a disk or a log.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{RuntimeError, check_name};
use crate::deploy::SecretValue;

/// The per-container secret directories under `root`.
#[derive(Debug, Clone)]
pub struct SecretFiles {
    root: PathBuf,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

impl SecretFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        if !on_tmpfs(&root) {
            tracing::warn!(root = %root.display(), "secret files root is not on a tmpfs");
        }
        SecretFiles { root }
    }

    pub fn dir(&self, container: &str) -> PathBuf {
        self.root.join(container)
    }

    /// Writes `secrets` for `container` (root 0700, dir 0755, files 0444),
    /// replacing earlier ones; returns the directory to bind-mount.
    pub fn write(
        &self,
        container: &str,
        secrets: &BTreeMap<String, SecretValue>,
    ) -> Result<PathBuf, RuntimeError> {
        check_name("container name", container)?;
        for name in secrets.keys() {
            check_name("secret name", name)?;
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io(format!("create {}", self.root.display())))?;
        let dir = self.dir(container);
        self.remove(container)?;
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&dir)
            .map_err(io(format!("create {}", dir.display())))?;
        for (name, value) in secrets {
            let path = dir.join(name);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o444)
                .open(&path)
                .map_err(io(format!("create secret file {}", path.display())))?;
            f.write_all(value.expose().as_bytes())
                .map_err(io(format!("write secret file {}", path.display())))?;
        }
        Ok(dir)
    }

    /// Removes the secrets of `container`; absent is fine.
    pub fn remove(&self, container: &str) -> Result<(), RuntimeError> {
        check_name("container name", container)?;
        let dir = self.dir(container);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("remove {}", dir.display()))(e))
            }
            _ => Ok(()),
        }
    }
}

/// Whether `path` (or its nearest existing ancestor) is on a tmpfs,
/// judged by the longest matching mount point in /proc/mounts.
pub fn on_tmpfs(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return false;
    };
    let mut best: Option<(usize, bool)> = None;
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(_), Some(point), Some(fs)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if path.starts_with(point) && best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), fs == "tmpfs"));
        }
    }
    best.is_some_and(|(_, tmpfs)| tmpfs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_read_only_files_and_removes_them() {
        let root = tempfile::tempdir().unwrap();
        let files = SecretFiles::new(root.path().join("s"));
        let secrets = BTreeMap::from([("db_password".to_string(), SecretValue::new("pw"))]);
        let dir = files.write("app-1", &secrets).unwrap();
        let path = dir.join("db_password");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "pw");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o444);
        let root_mode = std::fs::metadata(root.path().join("s"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(root_mode & 0o777, 0o700);
        // Rewriting replaces, removing clears, removing twice is fine.
        files.write("app-1", &BTreeMap::new()).unwrap();
        assert!(!path.exists());
        files.remove("app-1").unwrap();
        files.remove("app-1").unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn rejects_traversal_in_names() {
        let root = tempfile::tempdir().unwrap();
        let files = SecretFiles::new(root.path());
        let bad = BTreeMap::from([("../x".to_string(), SecretValue::new("v"))]);
        assert!(files.write("app", &bad).is_err());
        assert!(files.write("../app", &BTreeMap::new()).is_err());
    }

    #[test]
    fn dev_shm_is_tmpfs_when_mounted() {
        let shm = std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.contains(" tmpfs "));
        assert_eq!(on_tmpfs(Path::new("/dev/shm/infra/x")), shm);
        assert!(!on_tmpfs(Path::new("/proc-not-a-real-path")) || shm);
    }
}
