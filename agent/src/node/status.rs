//! The node's status snapshot (`infractl status --output json`, version 1):
//! the Raft leader, term and commit index, members with their state,
//! monitors and voter flag, this node's suspicions, the failures the quorum
//! confirmed (locally and committed in Raft) and the recoveries.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use crate::consensus::Consensus;
use crate::health::{Assignment, HealthSnapshot, Suspicion};
use crate::membership::{AuthCounts, AuthStats, HealthDigest, MembershipView, Presence};
use crate::quorum::ConfirmedFailure;
use crate::traffic::{Traffic, TrafficCounts};

/// Version of the status JSON document.
pub const STATUS_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Alive,
    Suspect,
    Failed,
    Left,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberStatus {
    pub name: String,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub generation: u64,
    pub grpc_addr: String,
    pub gossip_addr: String,
    pub state: MemberState,
    pub monitors: Vec<String>,
    /// A Raft voter (else a learner, or not yet a Raft member).
    pub voter: bool,
    pub health: HealthDigest,
}

/// A failure committed in the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureStatus {
    pub name: String,
    pub generation: u64,
    /// Unix milliseconds.
    pub confirmed_at: u64,
}

/// The latest deploy of a project/environment (from the replicated state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployStatus {
    /// `<project>/<environment>`.
    pub target: String,
    pub action: String,
    pub started_at: u64,
    /// Its leader was lost before it finished (a later leader converged
    /// the droplets back to the live release).
    pub interrupted: bool,
    pub finished_at: Option<u64>,
    pub outcome: Option<String>,
}

/// A recovery from the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecoveryStatus {
    pub name: String,
    pub step: String,
    pub started_at: u64,
    pub finished_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfirmedStatus {
    pub target: String,
    pub generation: u64,
    pub voters: Vec<String>,
    pub confirmed_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub version: u32,
    pub node: String,
    pub generation: u64,
    /// Where this agent stands: leader, member, joining (waiting for
    /// admission) or uninitialized.
    pub cluster_phase: super::formation::ClusterPhase,
    /// Why, in a sentence (whom a joining agent asked, and the answer).
    pub cluster_phase_detail: String,
    /// Name of the Raft leader this node knows of.
    pub leader: Option<String>,
    pub term: u64,
    /// Index of the last log entry applied on this node.
    pub commit_index: u64,
    pub voters: Vec<String>,
    pub learners: Vec<String>,
    pub members: Vec<MemberStatus>,
    /// Failures committed in the Raft log.
    pub failures: Vec<FailureStatus>,
    pub recoveries: Vec<RecoveryStatus>,
    pub suspicions: Vec<Suspicion>,
    pub confirmed_failures: Vec<ConfirmedStatus>,
    pub local: HealthSnapshot,
    pub gossip_auth: AuthCounts,
    /// The load balancer's base URL (`http://IP:PORT`), once started.
    pub load_balancer: Option<String>,
    /// Live release tag per `<project>/<environment>`.
    pub releases: std::collections::BTreeMap<String, String>,
    /// Kept releases (tag, commit, image ids) per `<project>/<environment>`,
    /// oldest first (`infractl reproduce` reads them).
    pub release_history: std::collections::BTreeMap<String, Vec<crate::state::Release>>,
    /// The latest deploy per project/environment.
    pub deploys: Vec<DeployStatus>,
    /// Bytes by class: gossip datagrams, and the gRPC connections this
    /// agent opened for health calls and for Raft.
    pub traffic: TrafficCounts,
}

/// Everything the snapshot is computed from.
pub struct StatusSource {
    pub node: String,
    pub generation: u64,
    pub view: watch::Receiver<Arc<MembershipView>>,
    pub assignment: watch::Receiver<Assignment>,
    pub health: watch::Receiver<HealthSnapshot>,
    pub confirmed: watch::Receiver<Vec<ConfirmedFailure>>,
    pub auth: Arc<AuthStats>,
    pub traffic: Arc<Traffic>,
    pub consensus: Consensus,
    pub join_notes: Arc<super::formation::JoinNotes>,
}

impl StatusSource {
    pub fn snapshot(&self) -> NodeStatus {
        let view = self.view.borrow().clone();
        let assignment = self.assignment.borrow().clone();
        let health = self.health.borrow().clone();
        let confirmed = self.confirmed.borrow().clone();
        let raft = self.consensus.metrics();
        let state = self.consensus.local_state();
        let name_of = |id: &u64| raft.nodes.get(id).map(|n| n.name.clone());
        let (cluster_phase, cluster_phase_detail) = super::formation::phase(
            &raft,
            self.consensus.info(),
            super::formation::others_live(&view, &self.node).len(),
            self.join_notes.last().as_ref(),
        );
        let voters: Vec<String> = raft.voters.iter().filter_map(name_of).collect();
        let learners: Vec<String> = raft.learners.iter().filter_map(name_of).collect();
        let members = view
            .members
            .values()
            .map(|m| {
                let failed = confirmed
                    .iter()
                    .any(|c| c.target == m.name && c.target_generation >= m.info.generation)
                    || state
                        .failures
                        .get(&m.name)
                        .is_some_and(|f| f.generation >= m.info.generation);
                let suspected = health.suspicions.iter().any(|s| s.target == m.name);
                let state = if m.info.presence == Presence::Left {
                    MemberState::Left
                } else if failed {
                    MemberState::Failed
                } else if suspected || !m.live {
                    MemberState::Suspect
                } else {
                    MemberState::Alive
                };
                MemberStatus {
                    name: m.name.clone(),
                    role: m.info.role.clone(),
                    project: m.info.project.clone(),
                    generation: m.info.generation,
                    grpc_addr: m.info.grpc_addr.to_string(),
                    gossip_addr: m.gossip_addr.to_string(),
                    state,
                    monitors: assignment.get(&m.name).cloned().unwrap_or_default(),
                    voter: voters.contains(&m.name),
                    health: m.info.health,
                }
            })
            .collect();
        NodeStatus {
            version: STATUS_VERSION,
            node: self.node.clone(),
            generation: self.generation,
            cluster_phase,
            cluster_phase_detail,
            leader: raft.leader.as_ref().and_then(name_of),
            term: raft.term,
            commit_index: raft.last_applied.unwrap_or(0),
            voters,
            learners,
            members,
            failures: state
                .failures
                .values()
                .map(|f| FailureStatus {
                    name: f.name.clone(),
                    generation: f.generation,
                    confirmed_at: f.confirmed_at_ms,
                })
                .collect(),
            recoveries: state
                .recoveries
                .values()
                .map(|r| RecoveryStatus {
                    name: r.name.clone(),
                    step: r.phase.name().to_string(),
                    started_at: r.started_at_ms,
                    finished_at: r.finished_at_ms,
                })
                .collect(),
            suspicions: health.suspicions.clone(),
            confirmed_failures: confirmed
                .iter()
                .map(|c| ConfirmedStatus {
                    target: c.target.clone(),
                    generation: c.target_generation,
                    voters: c.voters.clone(),
                    confirmed_at_ms: c.confirmed_at_ms,
                })
                .collect(),
            local: health,
            gossip_auth: self.auth.counts(),
            load_balancer: state.load_balancer.clone(),
            releases: state
                .releases
                .keys()
                .filter_map(|key| {
                    let (project, env) = key.split_once('/')?;
                    let live = state.current_release(project, env)?;
                    Some((key.clone(), live.tag.clone()))
                })
                .collect(),
            release_history: state.releases.clone(),
            deploys: state
                .deploys
                .iter()
                .map(|(target, d)| DeployStatus {
                    target: target.clone(),
                    action: d.action.clone(),
                    started_at: d.started_at_ms,
                    interrupted: d.interrupted,
                    finished_at: d.finished_at_ms,
                    outcome: d.outcome.clone(),
                })
                .collect(),
            traffic: self.traffic.counts(),
        }
    }
}
