//! The per-monitor suspicion state machine (pure: callers pass instants).
//!
//! A target becomes *suspect* only after a direct probe and the indirect
//! probes through other agents all failed. A suspicion turns into a vote
//! once the target has shown no sign of life for the (possibly stretched)
//! suspicion window. Any sign of life — a probe answer, a gossip heartbeat
//! seen after the suspicion began, a newer generation — refutes it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// How long local-health stretching lasts after the last bad tick.
const STRETCH_HOLD: Duration = Duration::from_secs(5);
/// Factor applied to timeouts and the window while stretched.
pub const STRETCH_FACTOR: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub generation: u64,
    pub last_alive: Instant,
    pub suspect_since: Option<Instant>,
}

/// A vote the detector wants cast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueVote {
    pub target: String,
    pub target_generation: u64,
}

#[derive(Debug, Clone)]
pub struct Detector {
    window: Duration,
    targets: BTreeMap<String, TargetState>,
    stretched_until: Option<Instant>,
}

impl Detector {
    pub fn new(window: Duration) -> Detector {
        Detector {
            window,
            targets: BTreeMap::new(),
            stretched_until: None,
        }
    }

    /// Keeps state only for `targets` (name → generation from membership);
    /// new targets start alive at `now`, a newer generation resets a target.
    pub fn set_targets(&mut self, targets: &BTreeMap<String, u64>, now: Instant) {
        self.targets.retain(|name, _| targets.contains_key(name));
        for (name, &generation) in targets {
            let fresh = TargetState {
                generation,
                last_alive: now,
                suspect_since: None,
            };
            let state = self.targets.entry(name.clone()).or_insert(fresh.clone());
            if generation > state.generation {
                *state = fresh;
            }
        }
    }

    /// A probe (direct or indirect) answered.
    pub fn on_alive(&mut self, target: &str, generation: u64, now: Instant) {
        if let Some(state) = self.targets.get_mut(target) {
            state.generation = state.generation.max(generation);
            state.last_alive = state.last_alive.max(now);
            state.suspect_since = None;
        }
    }

    /// Membership saw the target's heartbeat advance at `seen_at`.
    pub fn on_heartbeat(&mut self, target: &str, seen_at: Instant) {
        if let Some(state) = self.targets.get_mut(target) {
            if state.suspect_since.is_some_and(|since| seen_at > since) {
                state.suspect_since = None;
            }
            state.last_alive = state.last_alive.max(seen_at);
        }
    }

    /// Direct and indirect probes all failed.
    pub fn on_unreachable(&mut self, target: &str, now: Instant) {
        if let Some(state) = self.targets.get_mut(target) {
            state.suspect_since.get_or_insert(now);
        }
    }

    /// Records this tick's local health: `lag` is how late the tick ran,
    /// `failed` of `probed` direct probes failed. A lagging loop or a mass
    /// failure means the problem is likely here: stretch instead of accuse.
    pub fn observe_local_health(
        &mut self,
        lag: Duration,
        interval: Duration,
        failed: usize,
        probed: usize,
        now: Instant,
    ) {
        let lagging = lag > interval / 2;
        let mass_failure = probed >= 2 && failed * 2 > probed;
        if lagging || mass_failure {
            self.stretched_until = Some(now + STRETCH_HOLD);
        }
    }

    pub fn is_stretched(&self, now: Instant) -> bool {
        self.stretched_until.is_some_and(|until| now < until)
    }

    /// The window in force at `now`.
    pub fn window(&self, now: Instant) -> Duration {
        if self.is_stretched(now) {
            self.window * STRETCH_FACTOR
        } else {
            self.window
        }
    }

    /// Suspicions that outlasted the window: votes to cast now.
    pub fn due_votes(&self, now: Instant) -> Vec<DueVote> {
        let window = self.window(now);
        self.targets
            .iter()
            .filter(|(_, s)| s.suspect_since.is_some() && now - s.last_alive >= window)
            .map(|(name, s)| DueVote {
                target: name.clone(),
                target_generation: s.generation,
            })
            .collect()
    }

    /// The next instant after `now` at which a current suspicion outlasts
    /// the window (so the caller can wake up then rather than a round later).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let window = self.window(now);
        self.suspects()
            .map(|(_, s)| s.last_alive + window)
            .filter(|due| *due > now)
            .min()
    }

    /// Currently suspected targets with their suspicion start.
    pub fn suspects(&self) -> impl Iterator<Item = (&String, &TargetState)> {
        self.targets
            .iter()
            .filter(|(_, s)| s.suspect_since.is_some())
    }

    pub fn target(&self, name: &str) -> Option<&TargetState> {
        self.targets.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_millis(1_500);
    const MS: Duration = Duration::from_millis(1);

    fn detector(t0: Instant) -> Detector {
        let mut d = Detector::new(W);
        d.set_targets(&BTreeMap::from([("a".into(), 1), ("b".into(), 1)]), t0);
        d
    }

    #[test]
    fn suspicion_votes_only_after_the_window() {
        let t0 = Instant::now();
        let mut d = detector(t0);
        d.on_unreachable("a", t0 + 200 * MS);
        assert!(d.due_votes(t0 + 1_400 * MS).is_empty());
        let votes = d.due_votes(t0 + 1_500 * MS);
        assert_eq!(
            votes,
            vec![DueVote {
                target: "a".into(),
                target_generation: 1
            }]
        );
    }

    #[test]
    fn next_due_is_the_end_of_the_earliest_pending_window() {
        let t0 = Instant::now();
        let mut d = detector(t0);
        assert_eq!(d.next_due(t0), None, "no suspicion");
        d.on_unreachable("a", t0 + 200 * MS);
        d.on_alive("b", 1, t0 + 100 * MS);
        d.on_unreachable("b", t0 + 300 * MS);
        assert_eq!(d.next_due(t0 + 300 * MS), Some(t0 + W));
        assert_eq!(d.next_due(t0 + W), Some(t0 + 100 * MS + W));
        assert_eq!(d.next_due(t0 + 2 * W), None, "already due");
    }

    #[test]
    fn a_failed_probe_without_suspicion_never_votes() {
        let t0 = Instant::now();
        let d = detector(t0);
        assert!(d.due_votes(t0 + 10 * W).is_empty());
    }

    #[test]
    fn one_second_freeze_is_refuted_by_the_next_answer() {
        let t0 = Instant::now();
        let mut d = detector(t0);
        d.on_alive("a", 1, t0);
        // Frozen from t0 to t0+1s: probes at 200ms steps fail.
        for step in 1..=5 {
            d.on_unreachable("a", t0 + step * 200 * MS);
            assert!(d.due_votes(t0 + step * 200 * MS).is_empty());
        }
        d.on_alive("a", 1, t0 + 1_200 * MS);
        assert!(d.suspects().next().is_none());
        assert!(d.due_votes(t0 + 2_000 * MS).is_empty());
    }

    #[test]
    fn heartbeat_after_suspicion_refutes_and_old_one_does_not() {
        let t0 = Instant::now();
        let mut d = detector(t0);
        d.on_unreachable("a", t0 + 100 * MS);
        d.on_heartbeat("a", t0 + 50 * MS);
        assert!(d.suspects().next().is_some(), "heartbeat before suspicion");
        d.on_heartbeat("a", t0 + 150 * MS);
        assert!(d.suspects().next().is_none());
        assert_eq!(d.target("a").unwrap().last_alive, t0 + 150 * MS);
    }

    #[test]
    fn newer_generation_resets_the_target() {
        let t0 = Instant::now();
        let mut d = detector(t0);
        d.on_unreachable("a", t0 + 100 * MS);
        d.set_targets(
            &BTreeMap::from([("a".into(), 2), ("b".into(), 1)]),
            t0 + 2_000 * MS,
        );
        assert!(d.due_votes(t0 + 2_000 * MS).is_empty());
        assert_eq!(d.target("a").unwrap().generation, 2);
        d.set_targets(&BTreeMap::from([("b".into(), 1)]), t0);
        assert!(d.target("a").is_none(), "no longer assigned");
    }

    #[test]
    fn local_trouble_stretches_the_window() {
        let t0 = Instant::now();
        let mut d = detector(t0);
        let interval = 200 * MS;
        d.observe_local_health(10 * MS, interval, 1, 2, t0);
        assert!(
            !d.is_stretched(t0),
            "one of two failing is not mass failure"
        );
        d.observe_local_health(150 * MS, interval, 0, 2, t0);
        assert!(d.is_stretched(t0), "tick ran 150ms late");
        assert_eq!(d.window(t0), W * 2);
        d.on_unreachable("a", t0);
        assert!(d.due_votes(t0 + 2_000 * MS).is_empty());
        assert!(!d.is_stretched(t0 + STRETCH_HOLD));
        let mut d = detector(t0);
        d.observe_local_health(Duration::ZERO, interval, 2, 2, t0);
        assert!(d.is_stretched(t0), "all probes failing at once");
    }
}
