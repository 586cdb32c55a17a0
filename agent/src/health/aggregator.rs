//! The quorum aggregator: the shared, locked [`Quorum`] fed by failure
//! reports and by membership signs of life, evaluated as soon as a vote is
//! counted (and on a slow timer that expires old votes); confirmed failures
//! are published on a watch channel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Assignment;
use super::client::unix_ms;
use crate::membership::{MembershipView, Presence};
use crate::quorum::{ConfirmedFailure, Quorum, Vote, VoteRejection};

pub struct Aggregator {
    quorum: Mutex<Quorum>,
    confirmed: watch::Sender<Vec<ConfirmedFailure>>,
    /// Woken when a vote is counted.
    voted: Notify,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator").finish_non_exhaustive()
    }
}

impl Aggregator {
    /// `window`: how long a vote counts.
    pub fn new(window: Duration) -> Arc<Aggregator> {
        Arc::new(Aggregator {
            quorum: Mutex::new(Quorum::new(window.as_millis() as u64)),
            confirmed: watch::channel(Vec::new()).0,
            voted: Notify::new(),
        })
    }

    fn quorum(&self) -> std::sync::MutexGuard<'_, Quorum> {
        self.quorum.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record_vote(&self, vote: Vote) -> Result<(), VoteRejection> {
        self.quorum().record_vote(vote)?;
        self.voted.notify_one();
        Ok(())
    }

    pub fn record_life(&self, target: &str, generation: u64, at_ms: u64) {
        self.quorum().record_life(target, generation, at_ms);
    }

    pub fn set_monitors(&self, assignment: &Assignment) {
        self.quorum().set_monitors(assignment);
    }

    /// Evaluates the votes; returns and publishes newly confirmed failures.
    pub fn evaluate(&self, now_ms: u64) -> Vec<ConfirmedFailure> {
        let (newly, all) = {
            let mut q = self.quorum();
            let newly = q.evaluate(now_ms);
            let all: Vec<ConfirmedFailure> = q.confirmed().cloned().collect();
            (newly, all)
        };
        self.confirmed.send_if_modified(|current| {
            if *current == all {
                false
            } else {
                *current = all;
                true
            }
        });
        newly
    }

    /// Confirmed failures (current, not refuted by a newer generation).
    pub fn confirmed(&self) -> watch::Receiver<Vec<ConfirmedFailure>> {
        self.confirmed.subscribe()
    }

    pub fn voters(&self, target: &str) -> Vec<String> {
        self.quorum().voters(target)
    }
}

/// Feeds monitor sets and signs of life into the aggregator and evaluates
/// it whenever a vote is counted, and every `interval` (vote expiry) until
/// shutdown. A gossip heartbeat seen at `t` counts as life at
/// `t - heartbeat_lag` (it may have spread for that long after the member
/// sent it), so a dead member's last heartbeats do not refute the votes.
pub async fn run_aggregator(
    aggregator: Arc<Aggregator>,
    mut assignment: watch::Receiver<Assignment>,
    view: watch::Receiver<Arc<MembershipView>>,
    interval: Duration,
    heartbeat_lag: Duration,
    shutdown: CancellationToken,
) {
    aggregator.set_monitors(&assignment.borrow_and_update());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
            _ = aggregator.voted.notified() => {}
        }
        if assignment.has_changed().unwrap_or(false) {
            aggregator.set_monitors(&assignment.borrow_and_update());
        }
        let now = Instant::now();
        let now_ms = unix_ms();
        let view = view.borrow().clone();
        for member in view.members.values() {
            let at_ms = match member.info.presence {
                // A member that left is not a failure: refute everything.
                Presence::Left => now_ms,
                Presence::Up => {
                    let ago =
                        now.saturating_duration_since(member.heartbeat_seen_at) + heartbeat_lag;
                    now_ms.saturating_sub(ago.as_millis() as u64)
                }
            };
            aggregator.record_life(&member.name, member.info.generation, at_ms);
        }
        for failure in aggregator.evaluate(now_ms) {
            tracing::warn!(
                target_node = %failure.target,
                generation = failure.target_generation,
                voters = ?failure.voters,
                "failure confirmed by quorum"
            );
        }
    }
}
