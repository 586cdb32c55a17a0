//! The durable Raft log and vote.
//!
//! Why our own files rather than an embedded database: the log of a cluster
//! of a few dozen droplets is small (compacted every few hundred entries),
//! so a single append-only file of framed records (length + crc32, see
//! `frame`) is enough, builds instantly, and its crash behaviour is easy to
//! test. Layout of `<data_dir>/`:
//!
//! - `raft-log`: a header record `{version, last_purged}` then one record per
//!   entry. Append = write + fsync before acknowledging. Truncate and purge
//!   rewrite the file via temp + fsync + rename. A torn tail is dropped on load.
//! - `raft-vote`: one record `{version, vote}`, replaced atomically.
//! - `raft-committed`: one record `{version, committed}`, replaced by rename
//!   but not fsynced: it is only a hint that lets a restarted node re-apply
//!   its committed log at once; a stale or unreadable one is safe (ignored).
//!
//! All entries since the last purge are also kept in memory for readers.
//! File I/O is synchronous: openraft serializes log writes, and an fsync of
//! a small record is cheap next to a network round trip.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};

use super::frame;
use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Version of the log and vote file formats.
pub const LOG_FORMAT_VERSION: u32 = 1;
const LOG_FILE: &str = "raft-log";
const VOTE_FILE: &str = "raft-vote";
const COMMITTED_FILE: &str = "raft-committed";

#[derive(Debug, Serialize, Deserialize)]
struct LogHeader {
    version: u32,
    last_purged: Option<LogId>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CommittedFile {
    version: u32,
    committed: Option<LogId>,
}

#[derive(Debug, Serialize, Deserialize)]
struct VoteFile {
    version: u32,
    vote: Vote,
}

/// Errors opening the log from disk.
#[derive(Debug, thiserror::Error)]
pub enum LogLoadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Frame {
        path: PathBuf,
        source: frame::FrameError,
    },
    #[error("{path}: record {record}: {detail}")]
    Record {
        path: PathBuf,
        record: usize,
        detail: String,
    },
}

struct Inner {
    dir: PathBuf,
    file: File,
    entries: BTreeMap<u64, Entry>,
    last_purged: Option<LogId>,
    vote: Option<Vote>,
    committed: Option<LogId>,
}

/// The log store handed to openraft; clones share the same log (the clone
/// is the log reader used by replication tasks).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LogLoadError + '_ {
    move |source| LogLoadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn encode_json<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    let json = serde_json::to_vec(value).expect("log records serialize");
    frame::encode(&json, out);
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, dropping a torn tail.
    pub fn open(dir: &Path) -> Result<Self, LogLoadError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let log_path = dir.join(LOG_FILE);
        let mut entries = BTreeMap::new();
        let mut last_purged = None;
        let data = frame::read_optional(&log_path).map_err(io_at(&log_path))?;
        let mut valid_len = 0;
        if let Some(data) = &data {
            let decoded = frame::decode(data).map_err(|source| LogLoadError::Frame {
                path: log_path.clone(),
                source,
            })?;
            valid_len = decoded.valid_len;
            let bad = |record: usize, detail: String| LogLoadError::Record {
                path: log_path.clone(),
                record,
                detail,
            };
            for (i, rec) in decoded.records.iter().enumerate() {
                if i == 0 {
                    let h: LogHeader =
                        serde_json::from_slice(rec).map_err(|e| bad(i, format!("header: {e}")))?;
                    if h.version != LOG_FORMAT_VERSION {
                        return Err(bad(i, format!("unsupported log version {}", h.version)));
                    }
                    last_purged = h.last_purged;
                    continue;
                }
                let e: Entry = serde_json::from_slice(rec).map_err(|e| bad(i, e.to_string()))?;
                let expected = entries
                    .keys()
                    .next_back()
                    .map(|k| k + 1)
                    .or(last_purged.map(|p| p.index + 1));
                if expected.is_some_and(|x| x != e.log_id.index) {
                    return Err(bad(i, format!("entry {} leaves a hole", e.log_id.index)));
                }
                entries.insert(e.log_id.index, e);
            }
        }
        let vote_path = dir.join(VOTE_FILE);
        // A node never resumes leadership from its disk: openraft would
        // restore a committed vote of its own as "leader at once", and a
        // droplet restored from an old snapshot (its log stale, possibly the
        // only voter it knows of) would lead alone. The vote's term and
        // candidate are kept (Raft safety), only "elected" is dropped; the
        // node must win an election (or follow the current leader) again.
        let vote = match frame::read_optional(&vote_path).map_err(io_at(&vote_path))? {
            None => None,
            Some(bytes) => Some(read_vote_file(&vote_path, &bytes)?).map(|mut v: Vote| {
                v.committed = false;
                v
            }),
        };
        let committed = read_committed_file(&dir.join(COMMITTED_FILE));
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            file: open_append(&log_path).map_err(io_at(&log_path))?,
            entries,
            last_purged,
            vote,
            committed,
        };
        let complete = data
            .as_ref()
            .is_some_and(|d| valid_len == d.len() && valid_len > 0);
        if !complete {
            // New file, torn tail, or missing header: rewrite a clean file.
            inner.rewrite().map_err(io_at(&log_path))?;
        }
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn read_vote_file(path: &Path, bytes: &[u8]) -> Result<Vote, LogLoadError> {
    let bad = |detail: String| LogLoadError::Record {
        path: path.to_path_buf(),
        record: 0,
        detail,
    };
    let decoded = frame::decode(bytes).map_err(|source| LogLoadError::Frame {
        path: path.to_path_buf(),
        source,
    })?;
    // The vote file is replaced atomically, so a torn record is corruption.
    let [rec] = decoded.records.as_slice() else {
        return Err(bad("expected exactly one complete record".into()));
    };
    let v: VoteFile = serde_json::from_slice(rec).map_err(|e| bad(e.to_string()))?;
    if v.version != LOG_FORMAT_VERSION {
        return Err(bad(format!("unsupported vote version {}", v.version)));
    }
    Ok(v.vote)
}

/// The saved committed log id; `None` when absent or unreadable (it is a hint).
fn read_committed_file(path: &Path) -> Option<LogId> {
    let bytes = frame::read_optional(path).ok()??;
    let decoded = frame::decode(&bytes).ok()?;
    let [rec] = decoded.records.as_slice() else {
        return None;
    };
    let file: CommittedFile = serde_json::from_slice(rec).ok()?;
    (file.version == LOG_FORMAT_VERSION)
        .then_some(file.committed)
        .flatten()
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Inner {
    fn log_path(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Rewrites the whole log file (header + current entries) atomically.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut buf = Vec::new();
        let header = LogHeader {
            version: LOG_FORMAT_VERSION,
            last_purged: self.last_purged,
        };
        encode_json(&header, &mut buf);
        for e in self.entries.values() {
            encode_json(e, &mut buf);
        }
        let path = self.log_path();
        frame::write_atomic(&path, &buf)?;
        self.file = open_append(&path)?;
        Ok(())
    }

    fn append(&mut self, entries: Vec<Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        for e in &entries {
            encode_json(e, &mut buf);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        for e in entries {
            self.entries.insert(e.log_id.index, e);
        }
        Ok(())
    }

    fn last_log_id(&self) -> Option<LogId> {
        self.entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(self.last_purged)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + std::fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let mut buf = Vec::new();
        let file = VoteFile {
            version: LOG_FORMAT_VERSION,
            vote: *vote,
        };
        encode_json(&file, &mut buf);
        frame::write_atomic(&inner.dir.join(VOTE_FILE), &buf)
            .map_err(|e| StorageIOError::write_vote(&e))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let mut buf = Vec::new();
        let file = CommittedFile {
            version: LOG_FORMAT_VERSION,
            committed,
        };
        encode_json(&file, &mut buf);
        let path = inner.dir.join(COMMITTED_FILE);
        let tmp = inner.dir.join(format!("{COMMITTED_FILE}.tmp"));
        std::fs::write(&tmp, &buf)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| StorageIOError::write(&e))?;
        inner.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let result = self.lock().append(entries);
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        inner.entries.split_off(&log_id.index);
        inner
            .rewrite()
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut inner = self.lock();
        let keep = inner.entries.split_off(&(log_id.index + 1));
        inner.entries = keep;
        inner.last_purged = Some(log_id);
        inner
            .rewrite()
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
