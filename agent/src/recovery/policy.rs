//! The pure recovery policies: whether a saga may start (quorum, one at a time,
//! flapping, small clusters), when a snapshot is due, how snapshots are named,
//! which ones retention deletes, and what a cleanup removes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// Tunables of the recovery policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPolicy {
    /// Recoveries of one droplet allowed within `flap_window` (more = flapping).
    pub max_recoveries: usize,
    pub flap_window: Duration,
    /// Below this many droplets a failure is not recovered without `infractl recover`.
    pub min_cluster_size: usize,
    /// Scheduled snapshot interval per droplet.
    pub snapshot_interval: Duration,
    /// Snapshots kept per droplet.
    pub snapshots_kept: usize,
}

impl Default for RecoveryPolicy {
    fn default() -> Self {
        Self {
            max_recoveries: 3,
            flap_window: Duration::hours(1),
            min_cluster_size: 3,
            snapshot_interval: Duration::days(1),
            snapshots_kept: 3,
        }
    }
}

/// Everything the admission check looks at, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionFacts<'a> {
    /// A quorum of monitors confirmed the failure (committed through Raft).
    pub quorum_confirmed: bool,
    /// The operator asked for it (`infractl recover`).
    pub manual: bool,
    /// A saga for this droplet is open.
    pub saga_open: bool,
    /// Droplets in the cluster, the failed one included.
    pub cluster_size: usize,
    /// Start times of earlier recoveries of this droplet.
    pub history: &'a [DateTime<Utc>],
    pub now: DateTime<Utc>,
}

/// Whether a recovery may start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Admission {
    Start,
    /// No quorum-confirmed failure and no operator request.
    NotConfirmed,
    /// Another saga for the droplet is running.
    AlreadyRunning,
    /// Recovered `count` times within the window: left down and flagged.
    Flapping {
        count: usize,
    },
    /// Too few droplets for automatic recovery: alert and wait for `infractl recover`.
    ManualOnly {
        cluster_size: usize,
    },
}

/// Recoveries within the window ending at `now`.
pub fn recent_recoveries(history: &[DateTime<Utc>], now: DateTime<Utc>, window: Duration) -> usize {
    history
        .iter()
        .filter(|t| **t <= now && now - **t < window)
        .count()
}

/// The admission rules, in order: one saga at a time; flapping droplets stay down
/// (even for an operator, who must first clear the flag); a failure must be
/// quorum-confirmed or requested; small clusters recover only on request.
pub fn admit(policy: &RecoveryPolicy, f: &AdmissionFacts<'_>) -> Admission {
    if f.saga_open {
        return Admission::AlreadyRunning;
    }
    let count = recent_recoveries(f.history, f.now, policy.flap_window);
    if count >= policy.max_recoveries {
        return Admission::Flapping { count };
    }
    if f.manual {
        return Admission::Start;
    }
    if !f.quorum_confirmed {
        return Admission::NotConfirmed;
    }
    if f.cluster_size < policy.min_cluster_size {
        return Admission::ManualOnly {
            cluster_size: f.cluster_size,
        };
    }
    Admission::Start
}

/// Whether a scheduled snapshot is due.
pub fn snapshot_due(last: Option<DateTime<Utc>>, now: DateTime<Utc>, interval: Duration) -> bool {
    last.is_none_or(|t| now - t >= interval)
}

/// The newest system-named snapshot time per droplet name.
pub fn latest_snapshots(snapshots: &[SnapshotInfo]) -> BTreeMap<String, DateTime<Utc>> {
    let mut out: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for s in snapshots {
        if let Some((droplet, _)) = parse_snapshot_name(&s.name) {
            let e = out.entry(droplet.to_string()).or_insert(s.created_at);
            *e = (*e).max(s.created_at);
        }
    }
    out
}

/// The droplets (of `droplets`) whose scheduled snapshot is due, in the given order.
pub fn snapshots_due<'a>(
    droplets: &[&'a str],
    latest: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
    interval: Duration,
) -> Vec<&'a str> {
    droplets
        .iter()
        .copied()
        .filter(|d| snapshot_due(latest.get(*d).copied(), now, interval))
        .collect()
}

const STAMP: &str = "%Y%m%d-%H%M";
/// Length of `-YYYYMMDD-HHMM`.
const SUFFIX_LEN: usize = 14;

/// `<droplet>-<YYYYMMDD-HHMM>` (UTC).
pub fn snapshot_name(droplet: &str, at: DateTime<Utc>) -> String {
    format!("{droplet}-{}", at.format(STAMP))
}

/// The droplet and time of a name made by [`snapshot_name`]; `None` for other names.
pub fn parse_snapshot_name(name: &str) -> Option<(&str, DateTime<Utc>)> {
    let split = name.len().checked_sub(SUFFIX_LEN)?;
    let (droplet, suffix) = (name.get(..split)?, name.get(split..)?);
    let stamp = suffix.strip_prefix('-')?;
    if droplet.is_empty() || stamp.len() != 13 {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?;
    Some((droplet, t.and_utc()))
}

/// A snapshot as retention and cleanup see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub id: u64,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// Snapshots of `droplet` beyond the `keep` newest, oldest first. Only names made by
/// [`snapshot_name`] for that droplet count; everything else is left alone.
pub fn retention_deletes<'a>(
    snapshots: &'a [SnapshotInfo],
    droplet: &str,
    keep: usize,
) -> Vec<&'a SnapshotInfo> {
    let mut mine: Vec<&SnapshotInfo> = snapshots
        .iter()
        .filter(|s| parse_snapshot_name(&s.name).is_some_and(|(d, _)| d == droplet))
        .collect();
    // Newest first; ties broken by id so the choice is deterministic.
    mine.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id)));
    let mut extra = mine.split_off(keep.min(mine.len()));
    extra.reverse();
    extra
}

/// A droplet as cleanup sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudDroplet {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
}

/// What the cluster state knows, for cleanup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownState {
    /// Provider ids of the droplets in the state (open sagas' old and new droplets included).
    pub droplet_ids: BTreeSet<u64>,
    /// Fence tags of open sagas: droplets carrying them are being recovered.
    pub open_saga_tags: BTreeSet<String>,
}

/// One deletion a cleanup makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Deletion {
    Droplet { id: u64, name: String },
    Snapshot { id: u64, name: String },
}

/// Droplets tagged `system_tag` that the state does not know, then system-named snapshots
/// beyond retention (per droplet name). Droplets of open sagas and snapshots with other
/// names are never listed; a droplet's last `keep` snapshots survive even when the state
/// no longer knows the droplet (they may be its only backup).
pub fn plan_cleanup(
    system_tag: &str,
    droplets: &[CloudDroplet],
    snapshots: &[SnapshotInfo],
    known: &KnownState,
    keep: usize,
) -> Vec<Deletion> {
    let mut out = Vec::new();
    for d in droplets {
        let ours = d.tags.iter().any(|t| t == system_tag);
        let in_saga = d.tags.iter().any(|t| known.open_saga_tags.contains(t));
        if ours && !in_saga && !known.droplet_ids.contains(&d.id) {
            out.push(Deletion::Droplet {
                id: d.id,
                name: d.name.clone(),
            });
        }
    }
    let names: BTreeSet<&str> = snapshots
        .iter()
        .filter_map(|s| parse_snapshot_name(&s.name).map(|(d, _)| d))
        .collect();
    for droplet in names {
        for s in retention_deletes(snapshots, droplet, keep) {
            out.push(Deletion::Snapshot {
                id: s.id,
                name: s.name.clone(),
            });
        }
    }
    out
}
