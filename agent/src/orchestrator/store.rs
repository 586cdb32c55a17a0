//! The replicated state as the reconciler sees it: read it, commit commands.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::consensus::Consensus;
use crate::state::{ClusterState, Command, CommandEnvelope, Response};

#[derive(Debug, Clone, thiserror::Error)]
#[error("cluster state unavailable: {0}")]
pub struct StoreError(pub String);

/// Reads and changes the replicated cluster state.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// A state at least as new as every committed write.
    async fn read(&self) -> Result<ClusterState, StoreError>;
    async fn write(&self, command: Command) -> Result<Response, StoreError>;
    /// Removes droplet `name`'s current incarnation from the Raft group
    /// (idempotent), before a replacement restored from a snapshot rejoins.
    async fn forget_member(&self, name: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl StateStore for Consensus {
    async fn read(&self) -> Result<ClusterState, StoreError> {
        self.read_state(true)
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    async fn write(&self, command: Command) -> Result<Response, StoreError> {
        Consensus::write(self, command)
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    async fn forget_member(&self, name: &str) -> Result<(), StoreError> {
        let removed = self
            .forget(name)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        if removed {
            tracing::info!(
                droplet = name,
                "old incarnation removed from the Raft group"
            );
        }
        Ok(())
    }
}

/// The state machine applied in memory, one term, consecutive indexes (for
/// tests and single-process tools). Counts writes.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<(ClusterState, u64)>,
    forgotten: Mutex<Vec<String>>,
}

impl MemoryStore {
    pub fn snapshot(&self) -> ClusterState {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The members removed with [`StateStore::forget_member`], in order.
    pub fn forgotten(&self) -> Vec<String> {
        self.forgotten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many commands were written.
    pub fn writes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn read(&self) -> Result<ClusterState, StoreError> {
        Ok(self.snapshot())
    }

    async fn write(&self, command: Command) -> Result<Response, StoreError> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.1 += 1;
        let index = guard.1;
        Ok(guard.0.apply(&CommandEnvelope::new(command), index, 1))
    }

    async fn forget_member(&self, name: &str) -> Result<(), StoreError> {
        self.forgotten
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.to_string());
        Ok(())
    }
}
