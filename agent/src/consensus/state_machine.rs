//! The Raft state machine over [`ClusterState`], and its durable snapshots.
//!
//! `apply` works in memory; durability comes from the log plus snapshots:
//! every snapshot (built locally or installed from the leader) is written
//! atomically to `<data_dir>/raft-snapshot` (one framed record holding the
//! snapshot meta and the state). On restart the state machine starts from
//! that snapshot and openraft re-applies the log after it up to the saved
//! committed id (then the rest once the leader says it is committed).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::frame;
use super::log_store::LogLoadError;
use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::state::{ClusterState, Response};

/// Version of the snapshot file and of the snapshot payload sent to peers.
pub const SNAPSHOT_VERSION: u32 = 1;
const SNAPSHOT_FILE: &str = "raft-snapshot";

/// The bytes of a snapshot as shipped to other nodes.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotPayload {
    version: u32,
    state: ClusterState,
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotFile {
    version: u32,
    meta: SnapshotMeta,
    /// The `SnapshotPayload` JSON, kept byte-exact.
    data: String,
}

/// The applied state, shared with readers of [`StateMachineStore::shared`].
#[derive(Debug, Default)]
pub struct Applied {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub state: ClusterState,
}

#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// State shared between the state machine and the `Consensus` handle.
#[derive(Debug)]
pub struct Shared {
    applied: RwLock<Applied>,
    /// Index of the last applied entry (0 before any).
    applied_index: watch::Sender<u64>,
}

impl Shared {
    /// A copy of the current cluster state (not necessarily linearizable).
    pub fn state(&self) -> ClusterState {
        self.read(|a| a.state.clone())
    }

    pub fn read<T>(&self, f: impl FnOnce(&Applied) -> T) -> T {
        f(&self.applied.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Watches the index of the last applied entry.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_index.subscribe()
    }
}

/// The state machine handed to openraft; clones share the same state.
#[derive(Clone)]
pub struct StateMachineStore {
    dir: PathBuf,
    shared: Arc<Shared>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

fn snapshot_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_snapshot(None, &e).into()
}

impl StateMachineStore {
    /// Opens the state machine in `dir`, starting from the saved snapshot.
    pub fn open(dir: &Path) -> Result<Self, LogLoadError> {
        let path = dir.join(SNAPSHOT_FILE);
        let bad = |detail: String| LogLoadError::Record {
            path: path.clone(),
            record: 0,
            detail,
        };
        let mut applied = Applied::default();
        let mut snapshot = None;
        let bytes = frame::read_optional(&path).map_err(|source| LogLoadError::Io {
            path: path.clone(),
            source,
        })?;
        if let Some(bytes) = bytes {
            let decoded = frame::decode(&bytes).map_err(|source| LogLoadError::Frame {
                path: path.clone(),
                source,
            })?;
            let [rec] = decoded.records.as_slice() else {
                return Err(bad("expected exactly one complete record".into()));
            };
            let file: SnapshotFile = serde_json::from_slice(rec).map_err(|e| bad(e.to_string()))?;
            if file.version != SNAPSHOT_VERSION {
                return Err(bad(format!(
                    "unsupported snapshot version {}",
                    file.version
                )));
            }
            let payload = decode_payload(file.data.as_bytes()).map_err(bad)?;
            applied = Applied {
                last_applied: file.meta.last_log_id,
                membership: file.meta.last_membership.clone(),
                state: payload.state,
            };
            snapshot = Some(StoredSnapshot {
                meta: file.meta,
                data: file.data.into_bytes(),
            });
        }
        let index = applied.last_applied.map_or(0, |l| l.index);
        Ok(Self {
            dir: dir.to_path_buf(),
            shared: Arc::new(Shared {
                applied: RwLock::new(applied),
                applied_index: watch::Sender::new(index),
            }),
            snapshot: Arc::new(Mutex::new(snapshot)),
        })
    }

    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    fn save(&self, stored: StoredSnapshot) -> std::io::Result<()> {
        let data = String::from_utf8(stored.data.clone())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let file = SnapshotFile {
            version: SNAPSHOT_VERSION,
            meta: stored.meta.clone(),
            data,
        };
        let json = serde_json::to_vec(&file)?;
        let mut buf = Vec::with_capacity(json.len() + 8);
        frame::encode(&json, &mut buf);
        frame::write_atomic(&self.dir.join(SNAPSHOT_FILE), &buf)?;
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Some(stored);
        Ok(())
    }
}

fn decode_payload(bytes: &[u8]) -> Result<SnapshotPayload, String> {
    let p: SnapshotPayload = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if p.version != SNAPSHOT_VERSION {
        return Err(format!(
            "unsupported snapshot payload version {}",
            p.version
        ));
    }
    Ok(p)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let (meta, data) = self.shared.read(|a| {
            let payload = SnapshotPayload {
                version: SNAPSHOT_VERSION,
                state: a.state.clone(),
            };
            let id = a.last_applied.map_or("empty".to_string(), |l| {
                format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index)
            });
            let meta = SnapshotMeta {
                last_log_id: a.last_applied,
                last_membership: a.membership.clone(),
                snapshot_id: id,
            };
            (meta, serde_json::to_vec(&payload))
        });
        let data = data.map_err(snapshot_err)?;
        self.save(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        })
        .map_err(snapshot_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.shared.read(|a| (a.last_applied, a.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let last_index = {
            let mut a = self
                .shared
                .applied
                .write()
                .unwrap_or_else(|p| p.into_inner());
            for entry in entries {
                a.last_applied = Some(entry.log_id);
                let resp = match entry.payload {
                    EntryPayload::Blank => Response::Noop,
                    EntryPayload::Normal(cmd) => {
                        a.state
                            .apply(&cmd, entry.log_id.index, entry.log_id.leader_id.term)
                    }
                    EntryPayload::Membership(m) => {
                        a.membership = StoredMembership::new(Some(entry.log_id), m);
                        Response::Noop
                    }
                };
                out.push(resp);
            }
            a.last_applied.map_or(0, |l| l.index)
        };
        self.shared.applied_index.send_replace(last_index);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let payload = decode_payload(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                openraft::AnyError::error(e),
            ))
        })?;
        self.save(StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .map_err(snapshot_err)?;
        {
            let mut a = self
                .shared
                .applied
                .write()
                .unwrap_or_else(|p| p.into_inner());
            a.last_applied = meta.last_log_id;
            a.membership = meta.last_membership.clone();
            a.state = payload.state;
        }
        let index = meta.last_log_id.map_or(0, |l| l.index);
        self.shared.applied_index.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let stored = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
