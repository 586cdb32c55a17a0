//! Raft timing and compaction settings, validated into openraft's `Config`.

use serde::{Deserialize, Serialize};

use super::ConsensusError;

/// Raft settings of an agent. The defaults aim at a new leader accepting
/// writes within about a second of the old one dying, at a small idle cost.
///
/// Note openraft 0.9's timer: a tick every 1.5 x `heartbeat_ms` drives both
/// the leader's heartbeats (so they actually go out every tick, to every
/// member, learners included) and the followers' election check. A
/// follower that has seen a committed leader waits `election_max_ms` (the
/// lease) *plus* its random election timeout before it campaigns. With the
/// defaults (100 ms, 250..500 ms) heartbeats go out every 150 ms, a leader's
/// death is acted on after 750..1000 ms (+ up to 150 ms of tick), and a
/// follower only campaigns after at least 750 ms without heartbeats
/// (5 missed), which tolerates short pauses.
///
/// Invariants (unit-tested): `heartbeat_ms < election_min_ms`, and the
/// worst case before a campaign, `2 x election_max_ms + 1.5 x heartbeat_ms`,
/// stays within 1.2 s so that election and first commit fit a 1.5 s
/// failover budget. History: 50 ms heartbeats (a tick every 75 ms) cost the
/// leader of 20 agents ~250 RPCs/s; 100 ms / 300..500 ms once split votes
/// on 3 nodes (the narrower random range collided within one tick).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusConfig {
    pub cluster_name: String,
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// A follower that hears no leader for a random time in
    /// `[election_min_ms, election_max_ms)` starts an election.
    pub election_min_ms: u64,
    pub election_max_ms: u64,
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
            heartbeat_ms: 100,
            election_min_ms: 250,
            election_max_ms: 500,
            snapshot_every: 500,
            logs_kept_after_snapshot: 100,
        }
    }
}

impl ConsensusConfig {
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
        let tick = c.heartbeat_interval * 3 / 2;
        assert!(
            2 * c.election_timeout_max + tick <= 1_200,
            "worst case before a campaign leaves no room in a 1.5 s failover"
        );
        // Idle cost: at most ~7 heartbeats per second to each member.
        assert!(tick >= 150, "heartbeats every {tick} ms");
        // The random range spans more than one tick (fewer split votes).
        assert!(c.election_timeout_max - c.election_timeout_min > tick);
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
