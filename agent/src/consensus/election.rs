//! Staggered elections, driven here instead of by openraft's election timer.
//!
//! openraft 0.9 draws one random election timeout per process and keeps it
//! for the process' life, and only acts on it at its 150 ms ticks: two
//! voters whose draws fall close campaign together at every election, and
//! with 3 voters a split vote costs a whole extra timeout (one failover of
//! 50 took 1.79 s). Here openraft's timer stays off and every voter ranks
//! itself among the voters other than the last leader it heard from: the
//! first in rank campaigns once the leader lease has expired plus
//! [`ElectionTiming::base`], the next one [`ElectionTiming::step`] later,
//! and so on, with a fresh random jitter (under half a step) for every
//! attempt. The leader's death is acted on by exactly one survivor unless
//! it is slow to win; the next one in rank takes over a step later.
//!
//! "Heard from the leader" is recorded by the Raft service: an accepted
//! `AppendEntries` or a granted vote ([`ElectionClock::contact`]), the same
//! events that refresh openraft's own leader lease.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::ServerState;
use tokio::time::Instant;

use super::types::{NodeId, Raft};

/// When voters campaign after the last contact with a leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionTiming {
    /// openraft's leader lease (its `election_timeout_max`): before it has
    /// expired, the other voters reject a vote request.
    pub lease: Duration,
    /// Margin after the lease before the first in rank campaigns (the other
    /// voters heard the last heartbeat a little later).
    pub base: Duration,
    /// Between two successive ranks.
    pub step: Duration,
}

impl ElectionTiming {
    /// The delay, after the later of the last contact and the last attempt,
    /// before the voter of rank `rank` campaigns (`jitter` in `[0, 1)`).
    pub fn delay(&self, rank: usize, jitter: f64) -> Duration {
        self.lease
            + self.base
            + self.step * rank as u32
            + self.step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// What the driver knows of the group when it decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionView {
    pub me: NodeId,
    pub state: ServerState,
    pub voters: BTreeSet<NodeId>,
    /// The last leader other than this node it has heard of.
    pub last_leader: Option<NodeId>,
    /// Elections allowed (the cluster admitted this agent).
    pub allowed: bool,
}

/// This voter's place in the order of campaigns: its position among the
/// voters, by id, leaving out the last leader (it is the one presumed
/// gone); a node that is not a voter has none.
pub fn rank(view: &ElectionView) -> Option<usize> {
    if !view.voters.contains(&view.me) {
        return None;
    }
    let others = view.voters.iter().filter(|v| Some(**v) != view.last_leader);
    Some(
        others
            .clone()
            .position(|v| *v == view.me)
            .unwrap_or_else(|| others.count()),
    )
}

/// When this node should campaign, or `None` when it should not at all
/// (a leader, a learner, elections not allowed). `since` is the later of
/// the last contact with a leader and its own last campaign.
pub fn campaign_at(
    view: &ElectionView,
    since: Instant,
    attempted: bool,
    jitter: f64,
    timing: &ElectionTiming,
) -> Option<Instant> {
    if !view.allowed || view.state == ServerState::Leader {
        return None;
    }
    let rank = rank(view)?;
    if view.voters.len() == 1 {
        // The only voter: at once, then no more than once per lease.
        return Some(if attempted {
            since + timing.lease
        } else {
            since
        });
    }
    Some(since + timing.delay(rank, jitter))
}

/// Shared between the Raft service (contacts) and the driver.
#[derive(Debug)]
pub struct ElectionClock {
    allowed: AtomicBool,
    contact: Mutex<Instant>,
}

impl Default for ElectionClock {
    fn default() -> Self {
        Self {
            allowed: AtomicBool::new(true),
            contact: Mutex::new(Instant::now()),
        }
    }
}

impl ElectionClock {
    /// A leader was heard from (accepted `AppendEntries`, granted vote).
    pub fn contact(&self) {
        *self.contact.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn last_contact(&self) -> Instant {
        *self.contact.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn allow(&self, allow: bool) {
        self.allowed.store(allow, Ordering::Relaxed);
    }

    fn allowed(&self) -> bool {
        self.allowed.load(Ordering::Relaxed)
    }
}

/// How long the driver sleeps when it has nothing to wait for (a leader,
/// a learner): how late it notices it became a voter or lost leadership.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// Campaigns when [`campaign_at`] says so; runs until the future is dropped
/// or Raft has stopped.
pub async fn drive(raft: Raft, clock: std::sync::Arc<ElectionClock>, timing: ElectionTiming) {
    let metrics = raft.metrics();
    let mut last_leader: Option<NodeId> = None;
    let mut last_attempt: Option<Instant> = None;
    let mut jitter: f64 = rand::random();
    loop {
        let view = {
            let m = metrics.borrow();
            if let Some(l) = m.current_leader
                && l != m.id
            {
                last_leader = Some(l);
            }
            ElectionView {
                me: m.id,
                state: m.state,
                voters: m.membership_config.membership().voter_ids().collect(),
                last_leader,
                allowed: clock.allowed(),
            }
        };
        if view.state == ServerState::Leader {
            // Leading counts as contact: on stepping down, wait a full delay.
            clock.contact();
        }
        let since = match last_attempt {
            Some(a) => a.max(clock.last_contact()),
            None => clock.last_contact(),
        };
        let now = Instant::now();
        match campaign_at(&view, since, last_attempt.is_some(), jitter, &timing) {
            Some(at) if at <= now => {
                tracing::info!(rank = ?rank(&view), "no leader heard from: campaigning");
                if raft.trigger().elect().await.is_err() {
                    return;
                }
                last_attempt = Some(Instant::now());
                jitter = rand::random();
            }
            Some(at) => tokio::time::sleep_until(at.min(now + timing.lease)).await,
            None => tokio::time::sleep(IDLE_CHECK).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ElectionTiming = ElectionTiming {
        lease: Duration::from_millis(500),
        base: Duration::from_millis(100),
        step: Duration::from_millis(150),
    };

    fn view(me: NodeId, voters: &[NodeId], last_leader: Option<NodeId>) -> ElectionView {
        ElectionView {
            me,
            state: ServerState::Follower,
            voters: voters.iter().copied().collect(),
            last_leader,
            allowed: true,
        }
    }

    #[test]
    fn survivors_rank_without_the_last_leader() {
        // Leader 2 of {1, 2, 3}: 1 then 3.
        assert_eq!(rank(&view(1, &[1, 2, 3], Some(2))), Some(0));
        assert_eq!(rank(&view(3, &[1, 2, 3], Some(2))), Some(1));
        // No leader known: plain order.
        assert_eq!(rank(&view(3, &[1, 2, 3], None)), Some(2));
        // The old leader itself comes last.
        assert_eq!(rank(&view(2, &[1, 2, 3], Some(2))), Some(2));
        // A learner never campaigns.
        assert_eq!(rank(&view(4, &[1, 2, 3], Some(2))), None);
    }

    #[test]
    fn successive_ranks_never_overlap_whatever_the_jitter() {
        for rank in 0..4 {
            let latest = T.delay(rank, 0.999);
            let next = T.delay(rank + 1, 0.0);
            assert!(
                next >= latest + T.step / 2,
                "rank {rank}: {latest:?} vs {next:?}"
            );
        }
        assert!(T.delay(0, 0.0) > T.lease, "never inside the lease");
    }

    #[test]
    fn who_campaigns_and_when() {
        let t0 = Instant::now();
        let v = view(3, &[1, 2, 3], Some(2));
        assert_eq!(
            campaign_at(&v, t0, false, 0.0, &T),
            Some(t0 + Duration::from_millis(750))
        );
        let leader = ElectionView {
            state: ServerState::Leader,
            ..v.clone()
        };
        assert_eq!(campaign_at(&leader, t0, false, 0.0, &T), None);
        let barred = ElectionView {
            allowed: false,
            ..v.clone()
        };
        assert_eq!(campaign_at(&barred, t0, false, 0.0, &T), None);
        // The only voter: at once, then once per lease.
        let solo = view(1, &[1], None);
        assert_eq!(campaign_at(&solo, t0, false, 0.5, &T), Some(t0));
        assert_eq!(campaign_at(&solo, t0, true, 0.5, &T), Some(t0 + T.lease));
    }
}
