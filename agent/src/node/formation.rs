//! Cluster formation and the join phase: forming a Raft group is one
//! explicit act (the `Initialize` call of the first `infractl orchestrate`),
//! never something an agent does from its user-data or config. Every other
//! agent, a rebuilt or restored droplet included, only joins the existing
//! group and reports where it stands while it waits to be admitted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::cluster::ClusterLink;
use crate::consensus::{ConsensusError, ConsensusMetrics, NodeInfo};
use crate::membership::{MembershipView, Presence};
use crate::state::Command;

/// How long a freshly formed group may take to elect its only voter.
const FIRST_LEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an agent refuses to form a cluster.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("cluster id `{asked}` is not this agent's cluster `{mine}`")]
    WrongCluster { asked: String, mine: String },
    #[error(
        "other agents of cluster `{cluster}` are live ({names}): this agent joins their \
         group instead of forming a new one"
    )]
    OthersLive { cluster: String, names: String },
    #[error("this agent belongs to a Raft group already and is joining it (no leader yet)")]
    Joining,
    #[error("this agent may not lead (it holds no cloud API token), so it cannot form the cluster")]
    CannotLead,
    #[error("the new Raft group elected no leader within {0:?}")]
    NoFirstLeader(Duration),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
}

/// What `Initialize` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formed {
    /// True when this call formed the group; false when it existed.
    pub new: bool,
    pub leader: String,
    pub term: u64,
}

/// Where this agent stands in its cluster (`cluster_phase` in status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterPhase {
    /// It leads the Raft group.
    Leader,
    /// A leader replicates to it and counts it as a member.
    Member,
    /// It asks the live agents it knows to admit it.
    Joining,
    /// No Raft state and no other agent of its cluster in sight: a brand
    /// new master waiting for the first `infractl orchestrate`, or a
    /// rebuilt droplet that has not found its peers yet.
    Uninitialized,
}

/// The last join attempt, as the join loop recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinAttempt {
    /// The agent asked (`IP:PORT`).
    pub peer: String,
    /// Why it did not admit this agent (yet).
    pub refusal: Option<String>,
}

/// The join loop's notes, read by status.
#[derive(Debug, Default)]
pub struct JoinNotes {
    last: Mutex<Option<JoinAttempt>>,
}

impl JoinNotes {
    pub fn record(&self, attempt: JoinAttempt) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(attempt);
    }

    pub fn last(&self) -> Option<JoinAttempt> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Whether a leader other than this agent replicates to it while counting
/// it as a member at its current address. (A droplet restored from an old
/// snapshot starts with no known leader: the current one removed it.)
pub fn admitted(m: &ConsensusMetrics, me: &NodeInfo) -> bool {
    m.leader.is_some_and(|l| l != m.id) && m.nodes.get(&m.id).is_some_and(|n| n.addr == me.addr)
}

/// The phase of an agent and a sentence saying why (pure).
pub fn phase(
    m: &ConsensusMetrics,
    me: &NodeInfo,
    peers_in_sight: usize,
    last: Option<&JoinAttempt>,
) -> (ClusterPhase, String) {
    if m.leader == Some(m.id) {
        return (ClusterPhase::Leader, "leads the Raft group".into());
    }
    if admitted(m, me) {
        return (
            ClusterPhase::Member,
            "a leader replicates to this agent".into(),
        );
    }
    if m.nodes.is_empty() && peers_in_sight == 0 {
        return (
            ClusterPhase::Uninitialized,
            "no Raft state and no other agent of the cluster in sight: waiting for peers, \
             or for the first `infractl orchestrate` to initialize the cluster"
                .into(),
        );
    }
    let why = match last {
        Some(JoinAttempt {
            peer,
            refusal: Some(r),
        }) => format!("waiting for admission: {peer} answered: {r}"),
        Some(JoinAttempt {
            peer,
            refusal: None,
        }) => format!("waiting for admission: asked {peer}"),
        None if peers_in_sight == 0 => {
            "waiting for admission: no live agent of the cluster in sight yet".into()
        }
        None => "waiting for admission".into(),
    };
    (ClusterPhase::Joining, why)
}

/// Names of the other live agents of the cluster in `view`.
pub fn others_live(view: &MembershipView, me: &str) -> Vec<String> {
    view.members
        .values()
        .filter(|p| p.name != me && p.live && p.info.presence == Presence::Up)
        .map(|p| p.name.clone())
        .collect()
}

/// Forms a one-node Raft group of this agent, once: the `Initialize` call.
/// Answers the existing group when the agent belongs to one (idempotent for
/// a caller that retries), and refuses when other agents of the cluster are
/// live (then the existing cluster must be joined, never replaced).
pub async fn initialize(
    link: &ClusterLink,
    view: &watch::Receiver<Arc<MembershipView>>,
    asked_cluster: &str,
    at_ms: u64,
) -> Result<Formed, FormError> {
    if asked_cluster != &*link.cluster_id {
        return Err(FormError::WrongCluster {
            asked: asked_cluster.to_string(),
            mine: link.cluster_id.to_string(),
        });
    }
    let consensus = &link.consensus;
    if consensus.is_initialized().await? {
        let m = consensus.metrics();
        return match m.leader.and_then(|id| m.nodes.get(&id)) {
            Some(leader) => Ok(Formed {
                new: false,
                leader: leader.name.clone(),
                term: m.term,
            }),
            None => Err(FormError::Joining),
        };
    }
    let others = others_live(&view.borrow(), &consensus.info().name);
    if !others.is_empty() {
        return Err(FormError::OthersLive {
            cluster: link.cluster_id.to_string(),
            names: others.join(", "),
        });
    }
    if !link.campaign {
        return Err(FormError::CannotLead);
    }
    consensus.allow_elections(true);
    let new = consensus.bootstrap().await?;
    let mut metrics = consensus.raft_metrics();
    let id = consensus.id();
    // (The watch's guard is dropped at the end of this statement.)
    let elected = matches!(
        tokio::time::timeout(
            FIRST_LEADER_TIMEOUT,
            metrics.wait_for(|m| m.current_leader == Some(id)),
        )
        .await,
        Ok(Ok(_))
    );
    if !elected {
        return Err(FormError::NoFirstLeader(FIRST_LEADER_TIMEOUT));
    }
    if new {
        consensus
            .write(Command::FormCluster {
                cluster_id: link.cluster_id.to_string(),
                by: consensus.info().name.clone(),
                at_ms,
            })
            .await?;
        tracing::info!(node = %consensus.info().name, cluster = %link.cluster_id,
            "formed a new Raft group (Initialize)");
    }
    Ok(Formed {
        new,
        leader: consensus.info().name.clone(),
        term: consensus.metrics().term,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::ServerState;

    use super::*;
    use crate::consensus::node_id;

    fn metrics(me: &str, leader: Option<&str>, members: &[(&str, &str)]) -> ConsensusMetrics {
        ConsensusMetrics {
            id: node_id(me),
            state: ServerState::Learner,
            term: 3,
            last_log_index: None,
            last_applied: None,
            snapshot: None,
            leader: leader.map(node_id),
            voters: BTreeSet::new(),
            learners: BTreeSet::new(),
            uniform: true,
            nodes: members
                .iter()
                .map(|(n, a)| (node_id(n), NodeInfo::new(n.to_string(), a.to_string())))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn phases() {
        let me = NodeInfo::new("web1".to_string(), "127.0.0.3:7400".to_string());
        let fresh = metrics("web1", None, &[]);
        assert_eq!(phase(&fresh, &me, 0, None).0, ClusterPhase::Uninitialized);
        // Peers in sight: it is joining, and says whom it asked.
        let attempt = JoinAttempt {
            peer: "127.0.0.2:7400".into(),
            refusal: Some("no Raft leader is known yet".into()),
        };
        let (p, why) = phase(&fresh, &me, 2, Some(&attempt));
        assert_eq!(p, ClusterPhase::Joining);
        assert!(why.contains("127.0.0.2:7400") && why.contains("no Raft leader"));
        // A restored droplet: an old membership, no leader: joining.
        let restored = metrics(
            "web1",
            None,
            &[("web1", "127.0.0.3:7400"), ("master", "127.0.0.2:7400")],
        );
        assert_eq!(phase(&restored, &me, 0, None).0, ClusterPhase::Joining);
        // A leader replicates to it at its address: member.
        let member = metrics(
            "web1",
            Some("master"),
            &[("web1", "127.0.0.3:7400"), ("master", "127.0.0.2:7400")],
        );
        assert_eq!(phase(&member, &me, 1, None).0, ClusterPhase::Member);
        // ... at another (old) address: still joining.
        let moved = metrics(
            "web1",
            Some("master"),
            &[("web1", "127.0.0.9:7400"), ("master", "127.0.0.2:7400")],
        );
        assert_eq!(phase(&moved, &me, 1, None).0, ClusterPhase::Joining);
        let leader = metrics("web1", Some("web1"), &[("web1", "127.0.0.3:7400")]);
        assert_eq!(phase(&leader, &me, 0, None).0, ClusterPhase::Leader);
    }
}
