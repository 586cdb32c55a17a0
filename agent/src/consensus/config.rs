//! Raft timing and compaction settings, validated into openraft's `Config`.

use serde::{Deserialize, Serialize};

use std::time::Duration;

use super::ConsensusError;
use super::election::ElectionTiming;

/// Raft settings of an agent. The defaults aim at a new leader accepting
/// writes within about a second of the old one dying, at a small idle cost.
///
/// Note openraft 0.9's timer: a tick every 1.5 x `heartbeat_ms` drives the
/// leader's heartbeats (so they actually go out every tick, to every
/// member, learners included). A voter that has seen a committed leader
/// rejects vote requests for `election_max_ms` (the lease) after the last
/// heartbeat. Elections are not left to openraft's timer (it draws one
/// random timeout per process, so the same two voters collide at every
/// election): the [`super::election`] driver makes the surviving voters
/// campaign in rank order, the first `campaign_base_ms` after the lease,
/// each next one `campaign_step_ms` later. With the defaults heartbeats
/// go out every 225 ms and the first survivor campaigns 800..875 ms after
/// the last heartbeat (3 lost in a row are tolerated), the second
/// 950..1025 ms.
///
/// Invariants (unit-tested): `heartbeat_ms < election_min_ms`, and the
/// second in rank (the first may be slow or have a shorter log) campaigns
/// within 1.1 s of the last heartbeat, so that election and first commit
/// fit a 1.5 s failover budget. History: 50 ms heartbeats (a tick every
/// 75 ms) cost the leader of 20 agents ~250 RPCs/s; 100 ms (a tick every
/// 150 ms) still cost it ~1.3 % of a core; openraft's own timer with
/// 100 ms / 250..500 ms split votes on 3 nodes (1 failover in 50: 1.79 s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusConfig {
    pub cluster_name: String,
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// openraft's election range (validated only: its own election timer
    /// is off); `election_max_ms` is also the leader lease.
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// After the lease, the first voter in rank campaigns this much later...
    pub campaign_base_ms: u64,
    /// ...and each next one in rank this much after the previous one.
    pub campaign_step_ms: u64,
    /// Build a snapshot (and purge the log) every this many applied entries.
    pub snapshot_every: u64,
    /// Entries kept in the log behind the snapshot, so slightly lagging
    /// followers catch up from the log rather than a snapshot.
    pub logs_kept_after_snapshot: u64,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            cluster_name: "infra".into(),
            heartbeat_ms: 150,
            election_min_ms: 250,
            election_max_ms: 600,
            campaign_base_ms: 200,
            campaign_step_ms: 150,
            snapshot_every: 500,
            logs_kept_after_snapshot: 100,
        }
    }
}

impl ConsensusConfig {
    /// When the election driver makes voters campaign.
    pub fn election_timing(&self) -> ElectionTiming {
        ElectionTiming {
            lease: Duration::from_millis(self.election_max_ms),
            base: Duration::from_millis(self.campaign_base_ms),
            step: Duration::from_millis(self.campaign_step_ms),
        }
    }

    /// The validated openraft configuration.
    pub fn to_openraft(&self) -> Result<openraft::Config, ConsensusError> {
        if self.snapshot_every == 0 {
            return Err(ConsensusError::Config(
                "snapshot_every must be at least 1".into(),
            ));
        }
        let config = openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_min_ms,
            election_timeout_max: self.election_max_ms,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            // Snapshot chunks travel as JSON number arrays (about 4x larger):
            // keep them well under the gRPC message limit.
            snapshot_max_chunk_size: 256 * 1024,
            install_snapshot_timeout: 2000,
            // The election driver campaigns (`Trigger::elect`), not openraft.
            enable_elect: false,
            ..Default::default()
        };
        config.validate().map_err(|e| {
            ConsensusError::Config(format!(
                "heartbeat_ms={} election_min_ms={} election_max_ms={}: {e}",
                self.heartbeat_ms, self.election_min_ms, self.election_max_ms
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_fast() {
        let c = ConsensusConfig::default().to_openraft().unwrap();
        assert!(c.heartbeat_interval < c.election_timeout_min);
        assert!(!c.enable_elect, "the election driver campaigns");
        let tick = c.heartbeat_interval * 3 / 2;
        let t = ConsensusConfig::default().election_timing();
        assert!(
            t.delay(1, 0.999) <= Duration::from_millis(1_100),
            "the second in rank leaves no room in a 1.5 s failover"
        );
        // Idle cost: at most ~4.5 heartbeats per second to each member.
        assert!(tick >= 225, "heartbeats every {tick} ms");
        // The first campaign tolerates 3 lost heartbeats in a row.
        assert!(t.delay(0, 0.0) > Duration::from_millis(3 * tick + tick / 2));
    }

    #[test]
    fn heartbeat_not_below_election_timeout_is_rejected() {
        let bad = ConsensusConfig {
            heartbeat_ms: 500,
            election_min_ms: 400,
            ..Default::default()
        };
        let err = bad.to_openraft().unwrap_err().to_string();
        assert!(err.contains("heartbeat_ms=500"), "{err}");
        let bad = ConsensusConfig {
            snapshot_every: 0,
            ..Default::default()
        };
        assert!(bad.to_openraft().is_err());
    }
}
