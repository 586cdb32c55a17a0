//! The agent's Raft membership: mTLS channels to peers, joining the group
//! through any agent, the leader's voter balancing (planner rule), and the
//! leader committing quorum-confirmed failures.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use infra_proto::v1::JoinRequest;
use infra_proto::v1::control_client::ControlClient;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::formation::{JoinAttempt, JoinNotes, admitted};
use crate::consensus::{ChannelError, ChannelFactory, Consensus, ConsensusError, NodeId, NodeInfo};
use crate::fault::FaultSwitch;
use crate::health::Assignment;
use crate::health::ring_assignment;
use crate::membership::{MembershipView, Presence};
use crate::quorum::ConfirmedFailure;
use crate::state::{Command, DropletStatus};
use crate::traffic::{Class, Traffic, counted_channel};

/// Version of the `Join` request this agent sends.
pub const JOIN_VERSION: u32 = 1;

/// How often a joining agent retries, and how long one attempt may take
/// (the leader answers once the agent's log caught up).
const JOIN_RETRY: Duration = Duration::from_millis(300);
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the only voter of its own log waits for other agents to show
/// up in gossip before it elects itself (a one-node cluster restarting).
const SOLO_GRACE: Duration = Duration::from_secs(3);

/// gRPC channels to peers over the cluster's mTLS.
/// Fault injection cuts them (an isolated or paused agent sends nothing).
#[derive(Clone)]
pub struct MtlsChannels {
    tls: ClientTlsConfig,
    fault: FaultSwitch,
    traffic: Arc<Traffic>,
}

impl MtlsChannels {
    /// Channels whose bytes are counted in `traffic.raft`.
    pub fn new(tls: ClientTlsConfig, fault: FaultSwitch, traffic: Arc<Traffic>) -> Self {
        Self {
            tls,
            fault,
            traffic,
        }
    }
}

impl ChannelFactory for MtlsChannels {
    fn channel(&self, addr: &str) -> Result<Channel, ChannelError> {
        let err = |reason: String| ChannelError {
            addr: addr.to_string(),
            reason,
        };
        let endpoint = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| err(e.to_string()))?
            .tls_config(self.tls.clone())
            .map_err(|e| err(e.to_string()))?;
        Ok(counted_channel(
            endpoint,
            Duration::from_millis(500),
            &self.traffic,
            Class::Raft,
        ))
    }

    fn link_up(&self, _addr: &str) -> bool {
        !self.fault.is_isolated() && !self.fault.is_paused() && !self.fault.loses()
    }
}

/// This agent's handle on the Raft group, shared by the API and the tasks.
#[derive(Clone)]
pub struct ClusterLink {
    pub consensus: Consensus,
    pub channels: Arc<MtlsChannels>,
    /// The cluster this agent belongs to (gossip and `Initialize` check it).
    pub cluster_id: Arc<str>,
    /// Whether this agent may stand for leader (it holds the API token).
    pub campaign: bool,
    /// The join loop's last attempt, for status.
    pub join_notes: Arc<JoinNotes>,
}

/// Where a control call runs.
pub enum Route {
    /// This agent leads: run it here.
    Local,
    /// Forward to the leader at this address.
    Leader(NodeInfo),
    /// No leader is known (election in progress).
    NoLeader,
}

impl ClusterLink {
    pub fn is_leader(&self) -> bool {
        let m = self.consensus.metrics();
        m.leader == Some(m.id)
    }

    pub fn route(&self) -> Route {
        let m = self.consensus.metrics();
        match m.leader {
            Some(id) if id == m.id => Route::Local,
            Some(id) => match m.nodes.get(&id) {
                Some(info) => Route::Leader(info.clone()),
                None => Route::NoLeader,
            },
            None => Route::NoLeader,
        }
    }

    /// A Control client to the agent at `addr`.
    pub fn control_client(&self, addr: &str) -> Result<ControlClient<Channel>, ChannelError> {
        Ok(ControlClient::new(self.channels.channel(addr)?))
    }

    /// On the leader: admits `node` (as a learner, or updates its address),
    /// then re-balances the voters. Returns whether `node` is a voter.
    pub async fn admit(&self, node: NodeInfo) -> Result<bool, ConsensusError> {
        let id = node.id();
        self.consensus.add_member(node, false).await?;
        self.balance_voters().await?;
        Ok(self.consensus.metrics().voters.contains(&id))
    }

    /// On the leader: makes the voter set follow the planner's rule
    /// ([`crate::plan::voters::voter_count`]: 1, 3 or 5 voters; `master`
    /// always one); the leader stays a voter, then the droplets the planned
    /// topology marks as voters (they hold the API token and may campaign),
    /// then current voters (no churn), then members by name.
    pub async fn balance_voters(&self) -> Result<(), ConsensusError> {
        let m = self.consensus.metrics();
        if m.leader != Some(m.id) {
            return Ok(());
        }
        let target = crate::plan::voters::voter_count(m.nodes.len());
        let mut by_name: Vec<(&str, NodeId)> = m
            .nodes
            .iter()
            .map(|(id, n)| (n.name.as_str(), *id))
            .collect();
        by_name.sort_unstable();
        let mut chosen: Vec<NodeId> = vec![m.id];
        let master = crate::consensus::node_id(crate::spec::MASTER);
        let planned: Vec<NodeId> = self
            .consensus
            .local_state()
            .topology
            .droplets
            .iter()
            .filter(|(_, d)| d.voter)
            .map(|(name, _)| crate::consensus::node_id(name))
            .collect();
        let order = std::iter::once(master)
            .chain(planned)
            .filter(|id| m.nodes.contains_key(id))
            .chain(
                by_name
                    .iter()
                    .map(|(_, id)| *id)
                    .filter(|id| m.voters.contains(id)),
            )
            .chain(by_name.iter().map(|(_, id)| *id));
        for id in order {
            if chosen.len() >= target.max(1) {
                break;
            }
            if !chosen.contains(&id) {
                chosen.push(id);
            }
        }
        let chosen: BTreeSet<NodeId> = chosen.into_iter().collect();
        // A change interrupted half-way (its caller cancelled, e.g. a Join
        // whose client gave up) leaves a joint configuration: finish it.
        if chosen != m.voters || !m.uniform {
            tracing::info!(voters = ?names(&m.nodes, &chosen), "changing Raft voters");
            self.consensus.change_voters(chosen).await?;
        }
        Ok(())
    }
}

fn names(
    nodes: &std::collections::BTreeMap<NodeId, NodeInfo>,
    ids: &BTreeSet<NodeId>,
) -> Vec<String> {
    ids.iter()
        .filter_map(|id| nodes.get(id).map(|n| n.name.clone()))
        .collect()
}

/// Until the leader has admitted this agent (or this agent leads), asks the
/// live agents it knows from gossip to admit it (any agent: a follower
/// forwards to the leader); with nobody in sight, the members of its own
/// (restored) Raft log and the seeds' agents (`fallback`). The local log is
/// not trusted to say "member": a droplet restored from a snapshot carries
/// an old membership in which it still appears, while the leader has
/// removed that incarnation. A join of a current member is a no-op on the
/// leader. An agent never forms a group here (see `formation`).
///
/// Elections (when the link may campaign) are allowed once the leader
/// admitted this agent, when a peer answers that there is no leader (the
/// whole cluster restarts), or when it is the only voter of its log and no
/// other agent shows up in gossip within [`SOLO_GRACE`].
pub async fn join(
    link: ClusterLink,
    me: NodeInfo,
    mut view: watch::Receiver<Arc<MembershipView>>,
    fallback: Vec<String>,
    shutdown: CancellationToken,
) {
    let allow = || {
        if link.campaign {
            link.consensus.allow_elections(true);
        }
    };
    let mut attempt: u64 = 0;
    let started = tokio::time::Instant::now();
    let mut metrics = link.consensus.raft_metrics();
    loop {
        let m = link.consensus.metrics();
        if m.leader == Some(m.id) {
            tracing::info!(node = %me.name, "leads the Raft group");
            allow();
            return;
        }
        if admitted(&m, &me) {
            tracing::info!(node = %me.name, "a leader replicates to this agent");
            allow();
            return;
        }
        let alone = !view
            .borrow()
            .members
            .values()
            .any(|p| p.name != me.name && p.live);
        if alone && m.voters == BTreeSet::from([m.id]) && started.elapsed() >= SOLO_GRACE {
            // The only voter, and no other agent of the cluster in sight:
            // a one-node cluster restarting.
            allow();
        }
        let mut peers: Vec<String> = view
            .borrow_and_update()
            .members
            .values()
            .filter(|p| p.name != me.name && p.live && p.info.presence == Presence::Up)
            .map(|p| p.info.grpc_addr.to_string())
            .collect();
        if peers.is_empty() {
            peers = m
                .nodes
                .values()
                .filter(|n| n.name != me.name)
                .map(|n| n.addr.clone())
                .chain(fallback.iter().cloned())
                .filter(|a| *a != me.addr)
                .collect();
            peers.sort();
            peers.dedup();
        }
        if !peers.is_empty() {
            let peer = peers[(attempt as usize) % peers.len()].clone();
            attempt += 1;
            let req = JoinRequest {
                version: JOIN_VERSION,
                name: me.name.clone(),
                grpc_addr: me.addr.clone(),
            };
            let note = |refusal: Option<String>| {
                link.join_notes.record(JoinAttempt {
                    peer: peer.clone(),
                    refusal,
                })
            };
            match link.control_client(&peer) {
                Ok(mut client) => {
                    let join = tokio::time::timeout(JOIN_TIMEOUT, client.join(req));
                    // The reply may come late (the leader waits for catch-up,
                    // or dies meanwhile): replication from a leader that
                    // counts this agent as a member is admission enough.
                    // (Judged on the value the watch lends: borrowing the
                    // metrics again inside would deadlock with their writer.)
                    let replicated = async {
                        let _ = metrics
                            .wait_for(|raw| {
                                let member = raw
                                    .membership_config
                                    .membership()
                                    .get_node(&raw.id)
                                    .is_some_and(|n| n.addr == me.addr);
                                member && raw.current_leader.is_some_and(|l| l != raw.id)
                            })
                            .await;
                    };
                    tokio::pin!(join);
                    let answer = tokio::select! {
                        answer = &mut join => answer,
                        _ = replicated => {
                            // Admitted: campaigning is safe from now on. The
                            // reply is still awaited (dropping the call would
                            // cancel the leader's admission half-way).
                            allow();
                            join.await
                        }
                        _ = shutdown.cancelled() => return,
                    };
                    match answer {
                        Ok(Ok(reply)) => {
                            let r = reply.into_inner();
                            tracing::info!(leader = %r.leader, voter = r.voter, "joined the Raft group");
                            note(None);
                            allow();
                            return;
                        }
                        Ok(Err(status)) => {
                            if crate::api::error::is_no_leader(&status) {
                                allow();
                            }
                            note(Some(status.message().to_string()));
                            tracing::debug!(%peer, %status, "join refused; retrying")
                        }
                        Err(_) => {
                            note(Some(format!("no answer within {JOIN_TIMEOUT:?}")));
                            tracing::debug!(%peer, "join timed out; retrying")
                        }
                    }
                }
                Err(err) => {
                    note(Some(err.to_string()));
                    tracing::warn!(%err, "cannot dial peer to join")
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(JOIN_RETRY) => {}
        }
    }
}

/// On the leader: keeps the voter set balanced as members come and go
/// (after a leader change the new leader re-applies the rule).
pub async fn balance(link: ClusterLink, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if let Err(err) = link.balance_voters().await {
            tracing::debug!(%err, "voter balancing deferred");
        }
    }
}

/// On the leader: commits every failure the quorum confirmed as
/// `Command::ConfirmFailure` (once per generation). A droplet the state
/// does not know yet (a bare agent) is recorded first.
pub async fn commit_failures(
    link: ClusterLink,
    mut confirmed: watch::Receiver<Vec<ConfirmedFailure>>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            changed = confirmed.changed() => if changed.is_err() { return },
        }
        // Idle: nothing confirmed, nothing to look up.
        if confirmed.borrow().is_empty() || !link.is_leader() {
            continue;
        }
        let pending: Vec<ConfirmedFailure> = confirmed.borrow_and_update().clone();
        for failure in pending {
            if let Err(err) = commit_one(&link, &failure).await {
                tracing::warn!(target_node = %failure.target, %err, "failure not committed yet");
            }
        }
    }
}

async fn commit_one(link: &ClusterLink, failure: &ConfirmedFailure) -> Result<(), ConsensusError> {
    let state = link.consensus.local_state();
    if state
        .failures
        .get(&failure.target)
        .is_some_and(|f| f.generation >= failure.target_generation)
    {
        return Ok(());
    }
    let known = state.droplets.contains_key(&failure.target)
        || state.topology.droplets.contains_key(&failure.target);
    if !known {
        let ip = link
            .consensus
            .metrics()
            .nodes
            .get(&crate::consensus::node_id(&failure.target))
            .and_then(|n| n.addr.parse::<SocketAddr>().ok())
            .map(|a| a.ip().to_string());
        link.consensus
            .write(Command::UpsertDroplet {
                name: failure.target.clone(),
                provider_id: None,
                ip,
                generation: failure.target_generation,
                status: DropletStatus::Active,
                at_ms: failure.confirmed_at_ms,
            })
            .await?;
    }
    let resp = link
        .consensus
        .write(Command::ConfirmFailure {
            name: failure.target.clone(),
            generation: failure.target_generation,
            at_ms: failure.confirmed_at_ms,
        })
        .await?;
    if resp.is_rejected() {
        tracing::warn!(target_node = %failure.target, ?resp, "confirmed failure rejected by the state");
    } else {
        tracing::warn!(target_node = %failure.target, generation = failure.target_generation,
            "failure committed to the Raft log");
    }
    Ok(())
}

/// Keeps the monitor assignment: the replicated topology's monitors when
/// it has any, else a ring over the gossip members that have not left.
/// The replicated state is read only when an entry was applied; a view
/// change (heartbeats advance several times a second) only re-derives the
/// ring from the member names.
pub async fn derive_assignment(
    mut view: watch::Receiver<Arc<MembershipView>>,
    mut applied: watch::Receiver<u64>,
    consensus: Consensus,
    tx: watch::Sender<Assignment>,
    shutdown: CancellationToken,
) {
    let mut planned: Option<Assignment> = None;
    let mut state_changed = true;
    loop {
        if state_changed {
            let topology = consensus.local_state().topology;
            planned = topology
                .droplets
                .values()
                .any(|d| !d.monitors.is_empty())
                .then(|| {
                    topology
                        .droplets
                        .into_iter()
                        .map(|(name, d)| (name, d.monitors))
                        .collect()
                });
        }
        let next: Assignment = match &planned {
            Some(a) => a.clone(),
            None => {
                let names: Vec<String> = view
                    .borrow_and_update()
                    .members
                    .values()
                    .filter(|m| m.info.presence == Presence::Up)
                    .map(|m| m.name.clone())
                    .collect();
                ring_assignment(&names)
            }
        };
        tx.send_if_modified(|a| {
            let changed = *a != next;
            *a = next;
            changed
        });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = view.changed() => {
                if changed.is_err() { return }
                state_changed = false;
            }
            changed = applied.changed() => {
                if changed.is_err() { return }
                state_changed = true;
            }
        }
    }
}
