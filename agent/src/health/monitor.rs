//! The monitor loop: every probe interval, probe the assigned targets,
//! fall back to indirect probes through two other agents, feed the
//! [`Detector`], cast due votes (unless this agent must abstain), and
//! publish a [`HealthSnapshot`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::unix_ms;
use super::{Assignment, Detector, Prober, VoteSink};
use crate::fault::FaultSwitch;
use crate::membership::{MembershipView, Presence};
use crate::quorum::{Vote, observer_abstains};

/// Number of agents asked for an indirect probe.
const INDIRECT_PROBES: usize = 2;

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub node_name: String,
    pub interval: Duration,
    pub probe_timeout: Duration,
    pub window: Duration,
    /// How long a gossip heartbeat may take to reach this agent through
    /// other members: a heartbeat seen at `t` is taken as life at
    /// `t - heartbeat_lag`, so a dead target's last heartbeats, still
    /// spreading after its death, neither refute a suspicion nor push its
    /// vote back (2 gossip intervals by default).
    pub heartbeat_lag: Duration,
}

/// One current suspicion of this agent.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suspicion {
    pub target: String,
    pub generation: u64,
    /// Milliseconds since the suspicion began.
    pub for_ms: u64,
    /// Milliseconds since the last sign of life.
    pub silent_ms: u64,
}

/// What the monitor publishes after each round.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HealthSnapshot {
    pub targets: Vec<String>,
    pub suspicions: Vec<Suspicion>,
    /// Local trouble (lag or mass failure) stretched the timeouts.
    pub stretched: bool,
    /// How late the last round started, in milliseconds.
    pub lag_ms: u64,
    /// This agent saw too many peers down and does not vote.
    pub abstaining: bool,
    pub votes_cast: u64,
}

/// Runs the monitor until `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn run_monitor(
    config: MonitorConfig,
    prober: Arc<dyn Prober>,
    votes: Arc<dyn VoteSink>,
    assignment: watch::Receiver<Assignment>,
    view: watch::Receiver<Arc<MembershipView>>,
    snapshot: watch::Sender<HealthSnapshot>,
    fault: FaultSwitch,
    shutdown: CancellationToken,
) {
    let mut detector = Detector::new(config.window);
    let mut deadline = Instant::now() + config.interval;
    let mut votes_cast = 0u64;
    // Probes run on their own: a slow (hung) target never delays the
    // rounds of the others. At most one operation per target in flight.
    let mut inflight: JoinSet<(String, Outcome)> = JoinSet::new();
    let mut busy: BTreeSet<String> = BTreeSet::new();
    let mut targets: BTreeMap<String, (u64, SocketAddr)> = BTreeMap::new();
    let mut view_now = view.borrow().clone();
    let (mut answered, mut failed) = (0usize, 0usize);
    let mut timeout = config.probe_timeout;
    loop {
        // A round that overran is not loop lag: only the lateness of the
        // wake-up itself counts. A suspicion that outlasts the window before
        // the next round wakes the loop early: its vote is not delayed.
        let now = Instant::now();
        let next = detector
            .next_due(now)
            .map_or(deadline, |due| due.min(deadline));
        let target = next.max(now);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                let Ok((name, outcome)) = done else {
                    // A probe task died: forget who was busy rather than
                    // never probing that target again.
                    busy.clear();
                    continue;
                };
                busy.remove(&name);
                let now = Instant::now();
                match outcome {
                    Outcome::Direct(Ok(generation)) => {
                        answered += 1;
                        detector.on_alive(&name, generation, now);
                    }
                    Outcome::Direct(Err(err)) => {
                        answered += 1;
                        failed += 1;
                        tracing::debug!(target_node = %name, %err, "direct probe failed");
                        if let Some((_, addr)) = targets.get(&name) {
                            let helpers = pick_helpers(&config.node_name, &name, &view_now, &detector);
                            busy.insert(name.clone());
                            inflight.spawn(indirect_probe(prober.clone(), name, *addr, helpers, timeout));
                        }
                    }
                    Outcome::Indirect(Some(generation)) => detector.on_alive(&name, generation, now),
                    Outcome::Indirect(None) => detector.on_unreachable(&name, now),
                }
                continue;
            }
            _ = tokio::time::sleep_until(target) => {}
        }
        if fault.is_paused() {
            // Frozen: do nothing until thawed; the late wake-up that follows
            // is measured as lag like a real stop would be.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = fault.wait_unpaused() => {}
            }
        }
        let started = Instant::now();
        let lag = started.saturating_duration_since(target);
        deadline = target + config.interval;

        view_now = view.borrow().clone();
        targets = assigned_targets(&config.node_name, &assignment.borrow(), &view_now);
        let generations: BTreeMap<String, u64> =
            targets.iter().map(|(n, (g, _))| (n.clone(), *g)).collect();
        detector.set_targets(&generations, started);
        for name in targets.keys() {
            if let Some(m) = view_now.members.get(name) {
                let seen = m.heartbeat_seen_at;
                detector.on_heartbeat(name, seen.checked_sub(config.heartbeat_lag).unwrap_or(seen));
            }
        }
        detector.observe_local_health(lag, config.interval, failed, answered, started);
        (answered, failed) = (0, 0);
        let stretch = if detector.is_stretched(started) {
            super::STRETCH_FACTOR
        } else {
            1
        };
        timeout = config.probe_timeout * stretch;

        // Direct probes of every target without an operation in flight.
        for (name, (_, addr)) in &targets {
            if !busy.insert(name.clone()) {
                continue;
            }
            let (prober, name, addr) = (prober.clone(), name.clone(), *addr);
            inflight.spawn(async move {
                let result = prober.probe(addr, timeout).await.map(|a| a.generation);
                (name, Outcome::Direct(result))
            });
        }

        // Votes.
        let now = Instant::now();
        let due = detector.due_votes(now);
        let down = peers_down(&config.node_name, &view_now, &detector);
        let cluster_size = cluster_size(&assignment.borrow());
        let abstaining = observer_abstains(cluster_size, down);
        if !abstaining {
            for v in due {
                let vote = Vote {
                    observer: config.node_name.clone(),
                    target: v.target,
                    target_generation: v.target_generation,
                    at_ms: unix_ms(),
                    observer_sees_down: down as u32,
                };
                tracing::info!(target_node = %vote.target, "suspicion outlasted the window: voting");
                votes.cast(vote).await;
                votes_cast += 1;
            }
        } else if !due.is_empty() {
            tracing::warn!(down, cluster_size, "too many peers look down: abstaining");
        }

        let suspicions = detector
            .suspects()
            .map(|(name, s)| Suspicion {
                target: name.clone(),
                generation: s.generation,
                for_ms: s
                    .suspect_since
                    .map_or(0, |t| now.saturating_duration_since(t).as_millis() as u64),
                silent_ms: now.saturating_duration_since(s.last_alive).as_millis() as u64,
            })
            .collect();
        snapshot.send_replace(HealthSnapshot {
            targets: targets.keys().cloned().collect(),
            suspicions,
            stretched: detector.is_stretched(now),
            lag_ms: lag.as_millis() as u64,
            abstaining,
            votes_cast,
        });
    }
}

/// The result of one probe operation on a target.
enum Outcome {
    Direct(Result<u64, super::ProbeError>),
    /// Indirect probes: `Some(generation)` if any helper reached it.
    Indirect(Option<u64>),
}

/// Asks `helpers` (concurrently) to probe `name` at `addr`.
async fn indirect_probe(
    prober: Arc<dyn Prober>,
    name: String,
    addr: SocketAddr,
    helpers: Vec<SocketAddr>,
    timeout: Duration,
) -> (String, Outcome) {
    let mut asks = JoinSet::new();
    for helper in helpers {
        let (prober, name) = (prober.clone(), name.clone());
        asks.spawn(async move { prober.probe_via(helper, &name, addr, timeout).await });
    }
    let mut reached = None;
    while let Some(done) = asks.join_next().await {
        if let Ok(Ok(Some(generation))) = done {
            reached = Some(generation);
        }
    }
    (name, Outcome::Indirect(reached))
}

/// Targets `me` monitors that membership knows and that have not left:
/// name → (generation, gRPC address).
fn assigned_targets(
    me: &str,
    assignment: &Assignment,
    view: &MembershipView,
) -> BTreeMap<String, (u64, SocketAddr)> {
    assignment
        .iter()
        .filter(|(target, monitors)| *target != me && monitors.iter().any(|m| m == me))
        .filter_map(|(target, _)| {
            let m = view.members.get(target)?;
            (m.info.presence == Presence::Up)
                .then(|| (target.clone(), (m.info.generation, m.info.grpc_addr)))
        })
        .collect()
}

/// Up to two live, unsuspected members other than `me` and `target`,
/// rotating with time so one slow helper does not always get picked.
fn pick_helpers(me: &str, target: &str, view: &MembershipView, d: &Detector) -> Vec<SocketAddr> {
    let candidates: Vec<SocketAddr> = view
        .members
        .values()
        .filter(|m| m.name != me && m.name != target && m.live)
        .filter(|m| m.info.presence == Presence::Up)
        .filter(|m| d.target(&m.name).is_none_or(|s| s.suspect_since.is_none()))
        .map(|m| m.info.grpc_addr)
        .collect();
    if candidates.is_empty() {
        return candidates;
    }
    let start = (unix_ms() / 1000) as usize % candidates.len();
    (0..candidates.len().min(INDIRECT_PROBES))
        .map(|i| candidates[(start + i) % candidates.len()])
        .collect()
}

/// Peers this agent considers down: suspected, or not live in gossip.
fn peers_down(me: &str, view: &MembershipView, d: &Detector) -> usize {
    let mut down: BTreeSet<&str> = d.suspects().map(|(n, _)| n.as_str()).collect();
    for m in view.members.values() {
        if m.name != me && !m.live && m.info.presence == Presence::Up {
            down.insert(&m.name);
        }
    }
    down.len()
}

fn cluster_size(assignment: &Assignment) -> usize {
    let mut all: BTreeSet<&String> = assignment.keys().collect();
    all.extend(assignment.values().flatten());
    all.len()
}
