//! Heartbeat e-mails: [`summarize`] turns the replicated state into a
//! [`HeartbeatSummary`] (pure), and [`run_heartbeats`] queues one every
//! interval while this agent is the leader.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{Audience, Fanout, HeartbeatSummary, LiveRelease, RecoveryLine, render_heartbeat};
use crate::state::{ClusterState, RecoveryPhase};

fn ms_to_time(ms: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms as i64).unwrap_or_default()
}

/// The summary of `state` at `now`: a droplet is failed while its latest
/// confirmed failure has no finished recovery of that incarnation.
pub fn summarize(
    cluster_id: &str,
    state: &ClusterState,
    leader: Option<String>,
    now: DateTime<Utc>,
    window_minutes: u64,
) -> HeartbeatSummary {
    let failed_now = |name: &str| {
        let Some(f) = state.failures.get(name) else {
            return false;
        };
        !state
            .recoveries
            .get(name)
            .is_some_and(|r| r.generation >= f.generation && r.phase == RecoveryPhase::Done)
    };
    let mut names: Vec<&String> = state.droplets.keys().chain(state.failures.keys()).collect();
    names.sort();
    names.dedup();
    let (failed, alive): (Vec<String>, Vec<String>) =
        names.into_iter().cloned().partition(|n| failed_now(n));
    let since = now - chrono::Duration::minutes(window_minutes as i64);
    let mut recoveries: Vec<RecoveryLine> = state
        .recoveries
        .values()
        .filter(|r| r.phase == RecoveryPhase::Done)
        .filter_map(|r| {
            let at = ms_to_time(r.finished_at_ms?);
            (at > since && at <= now).then(|| RecoveryLine {
                droplet: r.name.clone(),
                at,
            })
        })
        .collect();
    recoveries.sort_by_key(|r| r.at);
    let releases = state
        .live_releases
        .iter()
        .map(|(key, tag)| {
            let (project, env) = key.split_once('/').unwrap_or((key.as_str(), ""));
            LiveRelease {
                project: project.into(),
                env: env.into(),
                tag: tag.clone(),
            }
        })
        .collect();
    HeartbeatSummary {
        cluster_id: cluster_id.into(),
        at: now,
        window_minutes,
        alive,
        failed,
        leader,
        recoveries,
        releases,
    }
}

/// Queues a heartbeat e-mail every `interval` (the first one after one
/// interval) while `is_leader()`, until `shutdown`. `summary` is called
/// at each tick.
pub async fn run_heartbeats(
    fanout: Fanout,
    interval: Duration,
    is_leader: impl Fn() -> bool + Send,
    summary: impl Fn() -> HeartbeatSummary + Send,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if is_leader() {
            let message = render_heartbeat(fanout.subject_prefix(), &summary());
            fanout.send(Audience::Email, message);
        }
    }
}
