//! The on-disk record framing shared by the Raft files: each record is
//! `[len: u32 LE][crc32: u32 LE][payload: len bytes]`, plus atomic whole-file
//! replacement (temp file + fsync + rename + directory fsync).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Largest record we accept when reading (guards against garbage lengths).
pub const MAX_RECORD: usize = 256 * 1024 * 1024;
const HEADER: usize = 8;

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320).
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Appends one framed record to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why a file's records could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error(
        "record at byte {offset}: checksum mismatch (stored {stored:08x}, computed {computed:08x})"
    )]
    Checksum {
        offset: usize,
        stored: u32,
        computed: u32,
    },
    #[error("record at byte {offset}: length {len} exceeds the limit")]
    TooLong { offset: usize, len: usize },
}

/// The records of a file, and where the valid data ends.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub records: Vec<&'a [u8]>,
    /// Bytes of complete, valid records; anything after is a torn tail.
    pub valid_len: usize,
}

/// Splits `data` into records. A torn tail (an incomplete last record, or a
/// last record whose checksum fails because the write was cut short) is
/// ignored; a checksum failure before the last record is corruption.
pub fn decode(data: &[u8]) -> Result<Decoded<'_>, FrameError> {
    let mut records = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= HEADER {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let stored = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let end = pos + HEADER + len;
        if len > MAX_RECORD {
            return Err(FrameError::TooLong { offset: pos, len });
        }
        if end > data.len() {
            break; // incomplete last record
        }
        let payload = &data[pos + HEADER..end];
        let computed = crc32(payload);
        if computed != stored {
            if end == data.len() {
                break; // torn last record
            }
            return Err(FrameError::Checksum {
                offset: pos,
                stored,
                computed,
            });
        }
        records.push(payload);
        pos = end;
    }
    Ok(Decoded {
        records,
        valid_len: pos,
    })
}

/// Fsyncs a directory so that a rename or create inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Reads `path`, or `None` if it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    #[test]
    fn crc32_matches_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip() {
        let data = framed(&[b"one", b"", b"three"]);
        let d = decode(&data).unwrap();
        assert_eq!(d.records, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(d.valid_len, data.len());
    }

    #[test]
    fn truncated_tail_is_ignored_at_every_cut() {
        let data = framed(&[b"first", b"second record"]);
        let first_len = HEADER + 5;
        for cut in first_len..data.len() {
            let d = decode(&data[..cut]).unwrap();
            assert_eq!(d.records, vec![&b"first"[..]], "cut at {cut}");
            assert_eq!(d.valid_len, first_len);
        }
    }

    #[test]
    fn torn_last_record_with_bad_crc_is_ignored() {
        let mut data = framed(&[b"first", b"second"]);
        let last = data.len() - 1;
        data[last] ^= 0xff;
        let d = decode(&data).unwrap();
        assert_eq!(d.records, vec![&b"first"[..]]);
    }

    #[test]
    fn crc_mismatch_in_the_middle_is_corruption() {
        let mut data = framed(&[b"first", b"second", b"third"]);
        data[HEADER + 1] ^= 0x01; // flip a bit in "first"
        match decode(&data) {
            Err(FrameError::Checksum { offset: 0, .. }) => {}
            other => panic!("expected checksum error, got {other:?}"),
        }
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vote");
        write_atomic(&p, b"a").unwrap();
        write_atomic(&p, b"bb").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"bb");
        assert!(!dir.path().join("vote.tmp").exists());
        assert_eq!(read_optional(&dir.path().join("none")).unwrap(), None);
    }
}
