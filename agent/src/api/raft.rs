//! The gRPC `Raft` service: decodes openraft RPCs from `RaftMessage`,
//! hands them to the local Raft node, and encodes the result. Accepted
//! `AppendEntries` and granted votes count as contact with a leader for the
//! election driver ([`ElectionClock`]).

use infra_proto::v1::RaftMessage;
use infra_proto::v1::raft_server::{Raft as RaftRpc, RaftServer};
use tonic::{Request, Response, Status};

use std::sync::Arc;

use openraft::raft::AppendEntriesResponse;

use crate::consensus::{Consensus, ElectionClock, Raft, wire};
use crate::fault::FaultSwitch;

/// Serves Raft RPCs from peers for the local node.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    clock: Arc<ElectionClock>,
    fault: FaultSwitch,
}

impl RaftService {
    pub fn new(consensus: &Consensus) -> Self {
        Self {
            raft: consensus.raft().clone(),
            clock: consensus.election_clock(),
            fault: FaultSwitch::default(),
        }
    }

    /// Honours fault injection: a paused agent answers late, an isolated
    /// one not at all.
    pub fn with_fault(mut self, fault: FaultSwitch) -> Self {
        self.fault = fault;
        self
    }

    async fn admit(&self) -> Result<(), Status> {
        self.fault.wait_unpaused().await;
        if self.fault.is_isolated() {
            return Err(Status::unavailable("agent isolated by fault injection"));
        }
        Ok(())
    }

    /// The tonic server, with message limits large enough for snapshots.
    pub fn into_server(self) -> RaftServer<Self> {
        RaftServer::new(self)
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(wire::MAX_MESSAGE_BYTES)
    }
}

fn decode<T: serde::de::DeserializeOwned>(req: &Request<RaftMessage>) -> Result<T, Status> {
    wire::decode(req.get_ref()).map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.admit().await?;
        let rpc = decode(&request)?;
        let result = self.raft.append_entries(rpc).await;
        if matches!(&result, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
            self.clock.contact();
        }
        Ok(Response::new(wire::encode(&result)))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        self.admit().await?;
        let rpc = decode(&request)?;
        let result = self.raft.vote(rpc).await;
        if matches!(&result, Ok(r) if r.vote_granted) {
            self.clock.contact();
        }
        Ok(Response::new(wire::encode(&result)))
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        self.admit().await?;
        let rpc = decode(&request)?;
        let result = self.raft.install_snapshot(rpc).await;
        Ok(Response::new(wire::encode(&result)))
    }
}
