//! The node's status snapshot (`infractl status --output json`, version 1):
//! members with their state and monitors, this node's suspicions, and the
//! failures the quorum confirmed.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use crate::health::{Assignment, HealthSnapshot, Suspicion};
use crate::membership::{AuthCounts, AuthStats, HealthDigest, MembershipView, Presence};
use crate::quorum::ConfirmedFailure;

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
    pub health: HealthDigest,
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
    pub members: Vec<MemberStatus>,
    pub suspicions: Vec<Suspicion>,
    pub confirmed_failures: Vec<ConfirmedStatus>,
    pub local: HealthSnapshot,
    pub gossip_auth: AuthCounts,
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
}

impl StatusSource {
    pub fn snapshot(&self) -> NodeStatus {
        let view = self.view.borrow().clone();
        let assignment = self.assignment.borrow().clone();
        let health = self.health.borrow().clone();
        let confirmed = self.confirmed.borrow().clone();
        let members = view
            .members
            .values()
            .map(|m| {
                let failed = confirmed
                    .iter()
                    .any(|c| c.target == m.name && c.target_generation >= m.info.generation);
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
                    health: m.info.health,
                }
            })
            .collect();
        NodeStatus {
            version: STATUS_VERSION,
            node: self.node.clone(),
            generation: self.generation,
            members,
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
        }
    }
}
