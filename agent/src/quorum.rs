//! Failure quorum: turns monitors' failure votes into confirmed failures.
//!
//! Pure decision code (no I/O, no clock): callers pass times in unix
//! milliseconds. A failure of `target` is confirmed when a majority of the
//! target's *configured* monitors (at least 2) voted against the same
//! generation within the vote window, and no newer sign of life (a heartbeat
//! after the vote, or a newer generation) refutes those votes. Observers that
//! see too many peers down at once abstain: their votes are ignored.

use std::collections::{BTreeMap, BTreeSet};

/// One monitor's vote that `target` (at `target_generation`) is dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote {
    pub observer: String,
    pub target: String,
    pub target_generation: u64,
    /// Unix milliseconds at which the observer cast the vote.
    pub at_ms: u64,
    /// How many peers the observer saw down when it voted (itself excluded).
    pub observer_sees_down: u32,
}

/// A failure the quorum confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedFailure {
    pub target: String,
    pub target_generation: u64,
    /// The monitors whose votes made the majority, sorted.
    pub voters: Vec<String>,
    pub confirmed_at_ms: u64,
}

/// Why a vote was not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteRejection {
    /// The observer is not a configured monitor of the target.
    NotAMonitor,
    /// The observer saw more than ⌊(N−1)/2⌋ peers down: it is likely the
    /// one that is cut off, so it abstains.
    ObserverAbstains,
    /// A newer sign of life of the target refutes the vote.
    Refuted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LifeSign {
    generation: u64,
    at_ms: u64,
}

/// The quorum state: monitor sets, recent votes and signs of life.
#[derive(Debug, Clone, Default)]
pub struct Quorum {
    /// Vote lifetime: a vote older than this no longer counts.
    window_ms: u64,
    /// Configured monitors of each target (from the topology).
    monitors: BTreeMap<String, BTreeSet<String>>,
    /// Latest vote per (target, observer).
    votes: BTreeMap<String, BTreeMap<String, Vote>>,
    life: BTreeMap<String, LifeSign>,
    confirmed: BTreeMap<String, ConfirmedFailure>,
}

/// Votes needed to confirm a failure of a target with `monitors` monitors:
/// a strict majority, and never fewer than 2. `None` when no quorum is
/// possible (fewer than 2 monitors).
pub fn votes_needed(monitors: usize) -> Option<usize> {
    if monitors < 2 {
        return None;
    }
    Some((monitors / 2 + 1).max(2))
}

/// Whether an observer that sees `down` of its `cluster_size - 1` peers down
/// must abstain: more than ⌊(N−1)/2⌋ down at once means the observer itself
/// is probably the isolated one.
pub fn observer_abstains(cluster_size: usize, down: usize) -> bool {
    down > cluster_size.saturating_sub(1) / 2
}

impl Quorum {
    pub fn new(window_ms: u64) -> Self {
        Quorum {
            window_ms,
            ..Quorum::default()
        }
    }

    /// Replaces the configured monitor sets (target → monitors).
    pub fn set_monitors(&mut self, monitors: &BTreeMap<String, Vec<String>>) {
        self.monitors = monitors
            .iter()
            .map(|(target, ms)| (target.clone(), ms.iter().cloned().collect()))
            .collect();
    }

    /// Number of nodes in the configured cluster (targets and monitors).
    pub fn cluster_size(&self) -> usize {
        let mut all: BTreeSet<&String> = self.monitors.keys().collect();
        all.extend(self.monitors.values().flatten());
        all.len()
    }

    /// Records a vote; returns why it does not count, if it does not.
    pub fn record_vote(&mut self, vote: Vote) -> Result<(), VoteRejection> {
        let is_monitor = self
            .monitors
            .get(&vote.target)
            .is_some_and(|ms| ms.contains(&vote.observer));
        if !is_monitor {
            return Err(VoteRejection::NotAMonitor);
        }
        if observer_abstains(self.cluster_size(), vote.observer_sees_down as usize) {
            return Err(VoteRejection::ObserverAbstains);
        }
        if self.refuted(&vote) {
            return Err(VoteRejection::Refuted);
        }
        self.votes
            .entry(vote.target.clone())
            .or_default()
            .insert(vote.observer.clone(), vote);
        Ok(())
    }

    /// Records a sign of life of `target` (probe answer, gossip heartbeat)
    /// seen at `at_ms` with `generation`. It refutes older votes, and a newer
    /// generation also clears an earlier confirmation.
    pub fn record_life(&mut self, target: &str, generation: u64, at_ms: u64) {
        let sign = LifeSign { generation, at_ms };
        let entry = self.life.entry(target.to_string()).or_insert(sign);
        if (generation, at_ms) > (entry.generation, entry.at_ms) {
            *entry = sign;
        }
        if let Some(c) = self.confirmed.get(target)
            && generation > c.target_generation
        {
            self.confirmed.remove(target);
        }
        let sign = *entry;
        if let Some(votes) = self.votes.get_mut(target) {
            votes.retain(|_, v| !refutes(sign, v));
        }
    }

    fn refuted(&self, vote: &Vote) -> bool {
        self.life
            .get(&vote.target)
            .is_some_and(|sign| refutes(*sign, vote))
    }

    /// Confirms the failures whose votes now reach a majority; each target
    /// generation is confirmed once. Expired votes are dropped.
    pub fn evaluate(&mut self, now_ms: u64) -> Vec<ConfirmedFailure> {
        let window = self.window_ms;
        for votes in self.votes.values_mut() {
            votes.retain(|_, v| now_ms.saturating_sub(v.at_ms) <= window);
        }
        self.votes.retain(|_, v| !v.is_empty());
        let mut newly = Vec::new();
        for (target, votes) in &self.votes {
            let Some(monitors) = self.monitors.get(target) else {
                continue;
            };
            let Some(needed) = votes_needed(monitors.len()) else {
                continue;
            };
            // Count per generation: votes against different incarnations
            // do not add up.
            let mut by_generation: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            for vote in votes.values().filter(|v| monitors.contains(&v.observer)) {
                by_generation
                    .entry(vote.target_generation)
                    .or_default()
                    .push(vote.observer.clone());
            }
            for (generation, voters) in by_generation {
                let already = self
                    .confirmed
                    .get(target)
                    .is_some_and(|c| c.target_generation >= generation);
                if voters.len() >= needed && !already {
                    newly.push(ConfirmedFailure {
                        target: target.clone(),
                        target_generation: generation,
                        voters,
                        confirmed_at_ms: now_ms,
                    });
                }
            }
        }
        for c in &newly {
            self.confirmed.insert(c.target.clone(), c.clone());
        }
        newly
    }

    /// All confirmed failures not since refuted by a newer generation.
    pub fn confirmed(&self) -> impl Iterator<Item = &ConfirmedFailure> {
        self.confirmed.values()
    }

    /// Observers currently voting against `target`, sorted.
    pub fn voters(&self, target: &str) -> Vec<String> {
        self.votes
            .get(target)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// A sign of life refutes a vote when it is of a newer generation, or of the
/// same generation and seen after the vote was cast.
fn refutes(sign: LifeSign, vote: &Vote) -> bool {
    sign.generation > vote.target_generation
        || (sign.generation == vote.target_generation && sign.at_ms > vote.at_ms)
}

#[cfg(test)]
#[path = "quorum_tests.rs"]
mod tests;
