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
    loop {
        // A round that overran (slow probes) is not loop lag: only the
        // lateness of the wake-up itself counts.
        let target = deadline.max(Instant::now());
        tokio::select! {
            _ = shutdown.cancelled() => return,
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

        let view_now = view.borrow().clone();
        let targets = assigned_targets(&config.node_name, &assignment.borrow(), &view_now);
        let generations: BTreeMap<String, u64> =
            targets.iter().map(|(n, (g, _))| (n.clone(), *g)).collect();
        detector.set_targets(&generations, started);
        for name in targets.keys() {
            if let Some(m) = view_now.members.get(name) {
                detector.on_heartbeat(name, m.heartbeat_seen_at);
            }
        }
        let stretch = if detector.is_stretched(started) {
            super::STRETCH_FACTOR
        } else {
            1
        };
        let timeout = config.probe_timeout * stretch;

        // Direct probes, all at once.
        let mut probes = JoinSet::new();
        for (name, (_, addr)) in &targets {
            let (prober, name, addr) = (prober.clone(), name.clone(), *addr);
            probes.spawn(async move { (name, prober.probe(addr, timeout).await) });
        }
        let mut failed = Vec::new();
        while let Some(done) = probes.join_next().await {
            let Ok((name, result)) = done else { continue };
            match result {
                Ok(answer) => detector.on_alive(&name, answer.generation, Instant::now()),
                Err(err) => {
                    tracing::debug!(target_node = %name, %err, "direct probe failed");
                    failed.push(name);
                }
            }
        }
        detector.observe_local_health(lag, config.interval, failed.len(), targets.len(), started);

        // Indirect probes for the direct failures.
        let mut indirect = JoinSet::new();
        for name in &failed {
            let Some((_, target_addr)) = targets.get(name) else {
                continue;
            };
            let helpers = pick_helpers(&config.node_name, name, &view_now, &detector);
            let (prober, name, target_addr) = (prober.clone(), name.clone(), *target_addr);
            indirect.spawn(async move {
                let mut asks = JoinSet::new();
                for helper in helpers {
                    let (prober, name) = (prober.clone(), name.clone());
                    asks.spawn(async move {
                        prober.probe_via(helper, &name, target_addr, timeout).await
                    });
                }
                let mut reached = None;
                while let Some(done) = asks.join_next().await {
                    if let Ok(Ok(Some(generation))) = done {
                        reached = Some(generation);
                    }
                }
                (name, reached)
            });
        }
        while let Some(done) = indirect.join_next().await {
            let Ok((name, reached)) = done else { continue };
            match reached {
                Some(generation) => detector.on_alive(&name, generation, Instant::now()),
                None => detector.on_unreachable(&name, Instant::now()),
            }
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
