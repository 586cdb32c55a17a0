//! The openraft type configuration: node ids, node info, entries and the
//! aliases the rest of the consensus module uses.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{CommandEnvelope, Response};

/// A Raft node id: derived stably from the node name (see [`node_id`]).
pub type NodeId = u64;

/// What the cluster knows about a Raft member: its name and gRPC address
/// (`host:port`, no scheme).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub addr: String,
}

impl NodeInfo {
    pub fn new(name: impl Into<String>, addr: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            addr: addr.into(),
        }
    }

    /// This node's Raft id.
    pub fn id(&self) -> NodeId {
        node_id(&self.name)
    }
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.addr)
    }
}

/// The Raft id of the node called `name`: the first 8 bytes (big endian) of
/// the SHA-256 of the name, so every agent computes the same id.
pub fn node_id(name: &str) -> NodeId {
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

openraft::declare_raft_types!(
    /// Raft types of the agent cluster.
    pub TypeConfig:
        D = CommandEnvelope,
        R = Response,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, NodeInfo>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        assert_eq!(node_id("master"), node_id("master"));
        assert_ne!(node_id("master"), node_id("hostomatic-web1"));
        // Pinned: changing the derivation would orphan every persisted log.
        assert_eq!(node_id("master"), 0xfc61_3b4d_fd67_36a7);
    }
}
