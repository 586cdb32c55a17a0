//! Encoding of openraft RPC requests and results inside the protobuf
//! `RaftMessage {version, payload}`: the payload is the JSON of openraft's
//! serde types, version [`WIRE_VERSION`].

use infra_proto::v1::RaftMessage;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the Raft RPC payload encoding.
pub const WIRE_VERSION: u32 = 1;

/// Largest gRPC message the Raft service accepts or sends.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// A `RaftMessage` that could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("unsupported raft message version {got} (expected {WIRE_VERSION})")]
    Version { got: u32 },
    #[error("invalid raft message payload: {0}")]
    Payload(#[from] serde_json::Error),
}

pub fn encode<T: Serialize>(value: &T) -> RaftMessage {
    RaftMessage {
        version: WIRE_VERSION,
        payload: serde_json::to_vec(value).expect("raft messages serialize to JSON"),
    }
}

pub fn decode<T: DeserializeOwned>(msg: &RaftMessage) -> Result<T, WireError> {
    if msg.version != WIRE_VERSION {
        return Err(WireError::Version { got: msg.version });
    }
    Ok(serde_json::from_slice(&msg.payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::types::{NodeId, Vote};

    #[test]
    fn round_trip_and_version_check() {
        let req = openraft::raft::VoteRequest::<NodeId>::new(Vote::new(3, 7), None);
        let msg = encode(&req);
        let back: openraft::raft::VoteRequest<NodeId> = decode(&msg).unwrap();
        assert_eq!(back, req);
        let mut bad = msg.clone();
        bad.version = 2;
        assert!(matches!(
            decode::<openraft::raft::VoteRequest<NodeId>>(&bad),
            Err(WireError::Version { got: 2 })
        ));
        bad.version = 1;
        bad.payload = b"{".to_vec();
        assert!(decode::<openraft::raft::VoteRequest<NodeId>>(&bad).is_err());
    }
}
