//! The client side of Raft RPCs: openraft's network factory over the
//! agent's gRPC `Raft` service. How a channel to a peer is built (plain
//! HTTP/2 in tests, mTLS in the daemon) is injected as a [`ChannelFactory`].

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use infra_proto::v1::RaftMessage;
use infra_proto::v1::raft_client::RaftClient;
use openraft::error::{
    Infallible, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use super::types::{NodeId, NodeInfo, TypeConfig};
use super::wire;

/// A channel could not be built for a peer address.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot build a channel to {addr}: {reason}")]
pub struct ChannelError {
    pub addr: String,
    pub reason: String,
}

/// Builds gRPC channels to peers. The daemon plugs mTLS in here; tests use
/// [`PlainChannels`] and may cut links with [`ChannelFactory::link_up`].
pub trait ChannelFactory: Send + Sync + 'static {
    /// A (lazily connecting) channel to the agent at `addr` (`host:port`).
    fn channel(&self, addr: &str) -> Result<Channel, ChannelError>;

    /// Consulted before every RPC to `addr`; `false` fails the RPC as
    /// unreachable. Real transports keep the default.
    fn link_up(&self, _addr: &str) -> bool {
        true
    }
}

/// Plain-text HTTP/2 channels (tests and local simulations only).
#[derive(Debug, Clone, Default)]
pub struct PlainChannels;

impl ChannelFactory for PlainChannels {
    fn channel(&self, addr: &str) -> Result<Channel, ChannelError> {
        let endpoint =
            Endpoint::from_shared(format!("http://{addr}")).map_err(|e| ChannelError {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        Ok(endpoint
            .connect_timeout(Duration::from_millis(500))
            .tcp_nodelay(true)
            .connect_lazy())
    }
}

/// openraft's network factory: one [`PeerClient`] per replication target.
#[derive(Clone)]
pub struct Network {
    id: NodeId,
    channels: Arc<dyn ChannelFactory>,
}

impl Network {
    pub fn new(id: NodeId, channels: Arc<dyn ChannelFactory>) -> Self {
        Self { id, channels }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        let client = self.channels.channel(&node.addr).map(|ch| {
            RaftClient::new(ch)
                .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(wire::MAX_MESSAGE_BYTES)
        });
        PeerClient {
            id: self.id,
            target,
            node: node.clone(),
            channels: self.channels.clone(),
            client,
        }
    }
}

/// The RPC client to one peer.
pub struct PeerClient {
    id: NodeId,
    target: NodeId,
    node: NodeInfo,
    channels: Arc<dyn ChannelFactory>,
    client: Result<RaftClient<Channel>, ChannelError>,
}

#[derive(Debug, thiserror::Error)]
#[error("link to {0} is cut")]
struct LinkCut(String);

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        kind: RPCTypes,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        if !self.channels.link_up(&self.node.addr) {
            return Err(RPCError::Unreachable(Unreachable::new(&LinkCut(
                self.node.addr.clone(),
            ))));
        }
        let client = match &mut self.client {
            Ok(c) => c,
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(e))),
        };
        let msg = wire::encode(req);
        let ttl = option.hard_ttl();
        let fut = async {
            match kind {
                RPCTypes::Vote => client.vote(msg).await,
                RPCTypes::AppendEntries => client.append_entries(msg).await,
                RPCTypes::InstallSnapshot => client.install_snapshot(msg).await,
            }
        };
        let reply: RaftMessage = match tokio::time::timeout(ttl, fut).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action: kind,
                    id: self.id,
                    target: self.target,
                    timeout: ttl,
                }));
            }
            Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&status)));
            }
            Ok(Err(status)) => return Err(RPCError::Network(NetworkError::new(&status))),
            Ok(Ok(r)) => r.into_inner(),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            wire::decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, Infallible> {
        self.call(RPCTypes::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, Infallible> {
        self.call(RPCTypes::Vote, &rpc, &option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Retry an unreachable peer soon: it may be a restarted agent.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
