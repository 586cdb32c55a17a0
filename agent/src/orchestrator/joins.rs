//! Whether a droplet's agent joined, as gossip membership sees it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::consensus::{Consensus, node_id};
use crate::membership::MembershipView;
use crate::recovery::JoinWatcher;

/// A [`JoinWatcher`] over this agent's membership view: the agent named
/// `droplet` is live with generation `generation` or newer and, with a
/// Raft handle, the leader has admitted it to the Raft group again.
pub struct MembershipJoins {
    view: watch::Receiver<Arc<MembershipView>>,
    raft: Option<Consensus>,
}

impl MembershipJoins {
    pub fn new(view: watch::Receiver<Arc<MembershipView>>) -> Self {
        MembershipJoins { view, raft: None }
    }

    /// Also requires Raft membership.
    pub fn with_raft(mut self, consensus: Consensus) -> Self {
        self.raft = Some(consensus);
        self
    }

    /// The newest incarnation of `droplet` gossip has seen, live or not.
    pub fn generation_of(&self, droplet: &str) -> Option<u64> {
        self.view
            .borrow()
            .members
            .get(droplet)
            .map(|m| m.info.generation)
    }
}

/// The pure check behind [`MembershipJoins`].
pub fn has_joined(view: &MembershipView, droplet: &str, generation: u64) -> bool {
    view.members
        .get(droplet)
        .is_some_and(|m| m.live && m.info.generation >= generation)
}

#[async_trait]
impl JoinWatcher for MembershipJoins {
    async fn joined(&self, droplet: &str, generation: u64) -> bool {
        let raft_member = self
            .raft
            .as_ref()
            .is_none_or(|c| c.metrics().nodes.contains_key(&node_id(droplet)));
        raft_member && has_joined(&self.view.borrow(), droplet, generation)
    }
}
