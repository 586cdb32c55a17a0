//! Raft glue: durable log and snapshot storage, the gRPC transport, and the
//! [`Consensus`] handle through which the agent writes commands to and reads
//! the replicated [`ClusterState`].
//!
//! Wiring in the daemon:
//! 1. `Consensus::start(NodeInfo::new(name, advertised_addr), data_dir,
//!    &config, channels, token.child_token())`, where `channels` builds
//!    (mTLS) channels to peers ([`ChannelFactory`]);
//! 2. serve `api::raft::RaftService::new(&consensus).into_server()`
//!    on the agent's gRPC server (the Raft service must only be reachable
//!    by cluster members: it trusts its callers);
//! 3. the first agent calls `bootstrap()`; the leader adds each new agent
//!    with `add_learner(info)` and picks up to 5 voters with
//!    `change_voters(ids)`;
//! 4. control writes go through `write(command)`; a `NotLeader` error names
//!    the leader to forward to; `read_state(true)` for linearizable reads,
//!    `local_state()` for this node's applied view;
//! 5. on shutdown cancel the token and await `stopped()`.
//!
//! Data dir files: `raft-log`, `raft-vote`, `raft-committed`,
//! `raft-snapshot` (see `log_store` and `state_machine`).

mod config;
pub mod election;
pub mod frame;
pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;
pub mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{ChangeMembers, ServerState};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::ConsensusConfig;
pub use election::{ElectionClock, ElectionTiming};
pub use log_store::{LogLoadError, LogStore};
pub use network::{ChannelError, ChannelFactory, Network, PlainChannels};
pub use state_machine::{Shared, StateMachineStore};
pub use types::{NodeId, NodeInfo, Raft, TypeConfig, node_id};

use crate::state::{ClusterState, Command, CommandEnvelope, Response};

/// This node is not the leader; the caller should forward to `leader`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLeader {
    pub leader_id: Option<NodeId>,
    /// Name and address of the leader, when known.
    pub leader: Option<NodeInfo>,
}

impl NotLeader {
    /// gRPC address (`host:port`) of the leader to forward to, when known.
    pub fn leader_addr(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.addr.as_str())
    }
}

impl std::fmt::Display for NotLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.leader {
            Some(l) => write!(f, "not the leader; the leader is {l}"),
            None => write!(f, "not the leader; no leader is known"),
        }
    }
}

impl From<ForwardToLeader<NodeId, NodeInfo>> for NotLeader {
    fn from(f: ForwardToLeader<NodeId, NodeInfo>) -> Self {
        Self {
            leader_id: f.leader_id,
            leader: f.leader_node,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("invalid consensus config: {0}")]
    Config(String),
    #[error("raft storage: {0}")]
    Storage(#[from] LogLoadError),
    #[error("{0}")]
    NotLeader(NotLeader),
    #[error("raft: {0}")]
    Raft(String),
}

impl ConsensusError {
    /// The leader to forward to, if this error says "not the leader".
    pub fn not_leader(&self) -> Option<&NotLeader> {
        match self {
            ConsensusError::NotLeader(n) => Some(n),
            _ => None,
        }
    }
}

fn raft_err<E: std::fmt::Display>(e: E) -> ConsensusError {
    ConsensusError::Raft(e.to_string())
}

fn write_err(e: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> ConsensusError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            ConsensusError::NotLeader(f.into())
        }
        other => raft_err(other),
    }
}

/// A snapshot of this node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsensusMetrics {
    pub id: NodeId,
    pub state: ServerState,
    pub term: u64,
    pub last_log_index: Option<u64>,
    /// Index of the last entry applied to the state machine (committed).
    pub last_applied: Option<u64>,
    /// Index covered by the latest snapshot.
    pub snapshot: Option<u64>,
    pub leader: Option<NodeId>,
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// The membership is a single configuration, not a joint one in the
    /// middle of a change (in a joint one, both majorities are needed).
    pub uniform: bool,
    /// All members (voters and learners) with their info.
    pub nodes: BTreeMap<NodeId, NodeInfo>,
}

/// A running Raft node. Cheap to clone; every clone drives the same node.
#[derive(Clone)]
pub struct Consensus {
    inner: Arc<Inner>,
}

struct Inner {
    info: NodeInfo,
    raft: Raft,
    shared: Arc<Shared>,
    /// Leader contacts and the election switch, for the election driver.
    elections: Arc<ElectionClock>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Becomes true once Raft has shut down.
    done: watch::Receiver<bool>,
}

impl Consensus {
    /// Opens the node's storage in `data_dir` and starts Raft. The node id
    /// is derived from `info.name`. When `shutdown` is cancelled, Raft shuts
    /// down; [`Consensus::stopped`] waits for it.
    pub async fn start(
        info: NodeInfo,
        data_dir: &Path,
        config: &ConsensusConfig,
        channels: Arc<dyn ChannelFactory>,
        shutdown: CancellationToken,
    ) -> Result<Self, ConsensusError> {
        let raft_config = Arc::new(config.to_openraft()?);
        let log = LogStore::open(data_dir)?;
        let sm = StateMachineStore::open(data_dir)?;
        let shared = sm.shared();
        let id = info.id();
        let network = Network::new(id, channels);
        let metrics_slot = network.metrics_slot();
        let raft = Raft::new(id, raft_config, network, log, sm)
            .await
            .map_err(raft_err)?;
        // Only this call fills the slot, once.
        let _ = metrics_slot.set(raft.metrics());
        let stopper = raft.clone();
        let (done_tx, done) = watch::channel(false);
        let elections = Arc::new(ElectionClock::default());
        let driver = election::drive(raft.clone(), elections.clone(), config.election_timing());
        let task = tokio::spawn(async move {
            // The election driver runs until shutdown (or Raft stopped).
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = driver => shutdown.cancelled().await,
            }
            if let Err(e) = stopper.shutdown().await {
                tracing::warn!("raft shutdown: {e}");
            }
            done_tx.send_replace(true);
        });
        Ok(Self {
            inner: Arc::new(Inner {
                info,
                raft,
                shared,
                elections,
                task: Mutex::new(Some(task)),
                done,
            }),
        })
    }

    /// Waits until the node has shut down (after the token was cancelled).
    /// The first caller joins the shutdown task; clones calling it
    /// concurrently wait for the same completion.
    pub async fn stopped(&self) {
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match task {
            Some(task) => {
                if let Err(e) = task.await {
                    tracing::warn!("raft shutdown task: {e}");
                }
            }
            None => {
                let mut done = self.inner.done.clone();
                // Err means the task ended (sender dropped): also stopped.
                let _ = done.wait_for(|d| *d).await;
            }
        }
    }

    pub fn id(&self) -> NodeId {
        self.inner.info.id()
    }

    pub fn info(&self) -> &NodeInfo {
        &self.inner.info
    }

    /// The openraft handle (for the gRPC service).
    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Whether this node's log holds a membership (it was bootstrapped or
    /// has joined before).
    pub async fn is_initialized(&self) -> Result<bool, ConsensusError> {
        self.inner.raft.is_initialized().await.map_err(raft_err)
    }

    /// Lets this node stand for leader (or not) when its leader times out.
    pub fn allow_elections(&self, allow: bool) {
        self.inner.elections.allow(allow);
    }

    /// Where the Raft service records contacts with a leader.
    pub fn election_clock(&self) -> Arc<ElectionClock> {
        self.inner.elections.clone()
    }

    /// Initializes a one-node cluster made of this node. Returns `false`
    /// when the node was already initialized (e.g. after a restart).
    pub async fn bootstrap(&self) -> Result<bool, ConsensusError> {
        if self.inner.raft.is_initialized().await.map_err(raft_err)? {
            return Ok(false);
        }
        let members = BTreeMap::from([(self.id(), self.inner.info.clone())]);
        self.inner
            .raft
            .initialize(members)
            .await
            .map_err(raft_err)?;
        Ok(true)
    }

    /// Adds `node` as a learner and waits until it has caught up.
    pub async fn add_learner(&self, node: NodeInfo) -> Result<(), ConsensusError> {
        self.inner
            .raft
            .add_learner(node.id(), node, true)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    /// Idempotent join, on the leader: adds `node` as a learner if it is
    /// not a member, updates its address if it moved (a droplet restored
    /// with a new IP keeps its name, hence its id), and promotes it to
    /// voter when `voter` is set.
    pub async fn add_member(&self, node: NodeInfo, voter: bool) -> Result<(), ConsensusError> {
        let id = node.id();
        let m = self.metrics();
        match m.nodes.get(&id) {
            None => self.add_learner(node).await?,
            Some(known) if known.addr != node.addr => {
                let set = ChangeMembers::SetNodes(BTreeMap::from([(id, node)]));
                self.inner
                    .raft
                    .change_membership(set, true)
                    .await
                    .map_err(write_err)?;
            }
            Some(_) => {}
        }
        if voter && !m.voters.contains(&id) {
            let add = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
            self.inner
                .raft
                .change_membership(add, true)
                .await
                .map_err(write_err)?;
        }
        Ok(())
    }

    /// Makes `voters` the voter set; members dropped from it stay learners.
    /// Every voter must already be a member (added with `add_learner`).
    /// Note (openraft 0.9): a leader demoted to learner stays the leader
    /// (a leader need not be a voter) until it fails or is removed with
    /// [`Consensus::remove_nodes`]; keep the leader in `voters`.
    pub async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<(), ConsensusError> {
        self.inner
            .raft
            .change_membership(voters, true)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    /// Removes `ids` from the cluster entirely (voters must be demoted first).
    pub async fn remove_nodes(&self, ids: BTreeSet<NodeId>) -> Result<(), ConsensusError> {
        self.inner
            .raft
            .change_membership(ChangeMembers::RemoveNodes(ids), false)
            .await
            .map_err(write_err)?;
        Ok(())
    }

    /// On the leader: removes the member called `name` (demoting it first
    /// if it votes), so that a replacement restored from a snapshot — same
    /// name and id, but an older log — joins afresh as a new learner instead
    /// of looking to the leader like a follower whose log went backwards.
    /// Returns whether it was a member. Refuses to remove the leader itself.
    pub async fn forget(&self, name: &str) -> Result<bool, ConsensusError> {
        let id = node_id(name);
        let m = self.metrics();
        if !m.nodes.contains_key(&id) {
            return Ok(false);
        }
        if m.leader == Some(id) {
            return Err(ConsensusError::Raft(format!(
                "{name} leads the Raft group and cannot remove itself"
            )));
        }
        if m.voters.contains(&id) {
            // Keep the voter count: a learner (the planned voters first)
            // takes the seat in the same change, so that one more failure
            // before the replacement rejoins does not cost the quorum.
            let planned: BTreeSet<NodeId> = self
                .local_state()
                .topology
                .droplets
                .iter()
                .filter(|(_, d)| d.voter)
                .map(|(n, _)| node_id(n))
                .collect();
            let mut voters = m.voters.clone();
            voters.remove(&id);
            let stand_in = m
                .learners
                .iter()
                .filter(|l| **l != id)
                .min_by_key(|l| (!planned.contains(l), m.nodes.get(l).map(|n| n.name.clone())));
            if let Some(l) = stand_in {
                voters.insert(*l);
            }
            self.change_voters(voters).await?;
        }
        self.remove_nodes(BTreeSet::from([id])).await?;
        Ok(true)
    }

    /// Commits `command` and returns its result. On a follower this fails
    /// with [`ConsensusError::NotLeader`] naming the leader to forward to.
    pub async fn write(&self, command: Command) -> Result<Response, ConsensusError> {
        let resp = self
            .inner
            .raft
            .client_write(CommandEnvelope::new(command))
            .await
            .map_err(write_err)?;
        Ok(resp.data)
    }

    /// The cluster state. With `linearizable`, first confirms leadership
    /// with a quorum and waits until every committed entry is applied
    /// (leader only; followers get `NotLeader`).
    pub async fn read_state(&self, linearizable: bool) -> Result<ClusterState, ConsensusError> {
        if linearizable {
            self.inner
                .raft
                .ensure_linearizable()
                .await
                .map_err(|e| match e {
                    RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => {
                        ConsensusError::NotLeader(f.into())
                    }
                    other => raft_err(other),
                })?;
        }
        Ok(self.inner.shared.state())
    }

    /// This node's applied cluster state, without any leader check.
    pub fn local_state(&self) -> ClusterState {
        self.inner.shared.state()
    }

    /// Watches the index of the last applied log entry.
    pub fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.inner.shared.subscribe()
    }

    /// The current leader, if known.
    pub fn leader(&self) -> Option<NodeInfo> {
        let m = self.metrics();
        m.leader.and_then(|id| m.nodes.get(&id).cloned())
    }

    pub fn metrics(&self) -> ConsensusMetrics {
        let rx = self.inner.raft.metrics();
        let m = rx.borrow();
        let membership = m.membership_config.membership();
        ConsensusMetrics {
            id: m.id,
            state: m.state,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied: m.last_applied.map(|l| l.index),
            snapshot: m.snapshot.map(|l| l.index),
            leader: m.current_leader,
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            uniform: membership.get_joint_config().len() == 1,
            nodes: membership.nodes().map(|(id, n)| (*id, n.clone())).collect(),
        }
    }

    /// Raw openraft metrics, for waiting on conditions.
    pub fn raft_metrics(&self) -> watch::Receiver<types::RaftMetrics> {
        self.inner.raft.metrics()
    }
}
