//! Failure detection: each agent probes the peers it is assigned to monitor
//! over gRPC, asks other agents for indirect probes before it suspects
//! anyone, turns suspicions that outlast the window into quorum votes, and
//! (as aggregator) confirms failures from the votes it receives.

mod aggregator;
mod client;
mod detector;
mod monitor;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;

pub use aggregator::{Aggregator, run_aggregator};
pub use client::{BroadcastVotes, GrpcProber, LeaderLookup, LeaderVotes};
pub use detector::{Detector, DueVote, STRETCH_FACTOR, TargetState};
pub use monitor::{HealthSnapshot, MonitorConfig, Suspicion, run_monitor};

use crate::quorum::Vote;

/// Monitor assignment: target → the agents that monitor it (the planner's
/// `topology.droplets[x].monitors`).
pub type Assignment = BTreeMap<String, Vec<String>>;

/// A probe answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub node: String,
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("probe of {addr} timed out after {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("probe of {addr} failed: {reason}")]
    Failed { addr: SocketAddr, reason: String },
}

/// Direct and indirect liveness probes (gRPC in production).
#[async_trait]
pub trait Prober: Send + Sync + 'static {
    async fn probe(&self, addr: SocketAddr, timeout: Duration) -> Result<ProbeAnswer, ProbeError>;

    /// Asks `helper` to probe `target` at `target_addr`; `Ok(Some(gen))`
    /// when the helper reached it.
    async fn probe_via(
        &self,
        helper: SocketAddr,
        target: &str,
        target_addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Option<u64>, ProbeError>;
}

/// Where failure votes go: the Raft leader once consensus is integrated;
/// until then every agent's aggregator (see [`BroadcastVotes`]).
#[async_trait]
pub trait VoteSink: Send + Sync + 'static {
    async fn cast(&self, vote: Vote);
}

/// Ring assignment used until the planner provides one: each of `names`
/// (sorted) is monitored by the next `min(3, n-1)` names.
pub fn ring_assignment<'a>(names: impl IntoIterator<Item = &'a String>) -> Assignment {
    let mut names: Vec<&String> = names.into_iter().collect();
    names.sort();
    names.dedup();
    let n = names.len();
    let k = 3.min(n.saturating_sub(1));
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let monitors = (1..=k).map(|d| names[(i + d) % n].clone()).collect();
            ((*name).clone(), monitors)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_assignment_spreads_monitors() {
        let names: Vec<String> = ["c", "a", "b", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let a = ring_assignment(&names);
        assert_eq!(a["a"], vec!["b", "c", "d"]);
        assert_eq!(a["e"], vec!["a", "b", "c"]);
        for (target, monitors) in &a {
            assert!(!monitors.contains(target));
        }
        let two: Vec<String> = vec!["x".into(), "y".into()];
        assert_eq!(ring_assignment(&two)["x"], vec!["y"]);
        assert!(ring_assignment(&two[..1])["x"].is_empty());
    }
}
