//! In-memory implementations of the recovery traits: a saga log that enforces
//! fencing tokens, a flag-based join watcher, recorded cluster effects and
//! notices, a logging notifier and the system clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Clock, ClusterEffects, EffectError, FencingToken, JoinWatcher, Notice, Notifier, SagaLog,
    SagaLogError, SagaRecord,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every committed record, in order. Rejects a record whose token is older than the
/// newest committed for the same droplet, as the Raft state machine will.
#[derive(Debug, Default)]
pub struct MemorySagaLog {
    records: Mutex<Vec<SagaRecord>>,
}

impl MemorySagaLog {
    pub fn records(&self) -> Vec<SagaRecord> {
        lock(&self.records).clone()
    }

    /// The last committed record of `droplet`'s saga.
    pub fn last(&self, droplet: &str) -> Option<SagaRecord> {
        lock(&self.records)
            .iter()
            .rev()
            .find(|r| r.droplet == droplet)
            .cloned()
    }
}

#[async_trait]
impl SagaLog for MemorySagaLog {
    async fn commit(&self, record: &SagaRecord) -> Result<(), SagaLogError> {
        let mut records = lock(&self.records);
        let newest: Option<FencingToken> = records
            .iter()
            .filter(|r| r.droplet == record.droplet)
            .map(|r| r.token)
            .max();
        if let Some(current) = newest.filter(|t| *t > record.token) {
            return Err(SagaLogError::Stale {
                droplet: record.droplet.clone(),
                offered: record.token,
                current,
            });
        }
        records.push(record.clone());
        Ok(())
    }
}

/// Joined incarnations, set by whoever sees them (a test, or gossip glue).
#[derive(Debug, Default)]
pub struct MemoryJoins {
    joined: Mutex<BTreeSet<(String, u64)>>,
}

impl MemoryJoins {
    pub fn mark_joined(&self, droplet: &str, generation: u64) {
        lock(&self.joined).insert((droplet.to_string(), generation));
    }
}

#[async_trait]
impl JoinWatcher for MemoryJoins {
    async fn joined(&self, droplet: &str, generation: u64) -> bool {
        lock(&self.joined).contains(&(droplet.to_string(), generation))
    }
}

/// Load-balancer targets and placements kept in memory, with a call journal.
#[derive(Debug, Default)]
pub struct MemoryEffects {
    inner: Mutex<EffectsState>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EffectsState {
    pub targets: BTreeMap<String, Option<Ipv4Addr>>,
    /// droplet -> (generation, redeploy) of the last placement.
    pub placements: BTreeMap<String, (u64, bool)>,
    /// Every call, e.g. `remove_target web1`.
    pub journal: Vec<String>,
}

impl MemoryEffects {
    pub fn with_targets(droplets: &[&str]) -> Self {
        let me = Self::default();
        for d in droplets {
            lock(&me.inner).targets.insert(d.to_string(), None);
        }
        me
    }

    pub fn state(&self) -> EffectsState {
        lock(&self.inner).clone()
    }
}

#[async_trait]
impl ClusterEffects for MemoryEffects {
    async fn remove_target(&self, droplet: &str) -> Result<(), EffectError> {
        let mut s = lock(&self.inner);
        s.targets.remove(droplet);
        s.journal.push(format!("remove_target {droplet}"));
        Ok(())
    }

    async fn forget_incarnation(&self, droplet: &str) -> Result<(), EffectError> {
        lock(&self.inner)
            .journal
            .push(format!("forget_incarnation {droplet}"));
        Ok(())
    }

    async fn place_services(
        &self,
        droplet: &str,
        generation: u64,
        redeploy: bool,
    ) -> Result<(), EffectError> {
        let mut s = lock(&self.inner);
        s.placements
            .insert(droplet.to_string(), (generation, redeploy));
        s.journal
            .push(format!("place_services {droplet} {generation}"));
        Ok(())
    }

    async fn add_target(&self, droplet: &str, ip: Option<Ipv4Addr>) -> Result<(), EffectError> {
        let mut s = lock(&self.inner);
        s.targets.insert(droplet.to_string(), ip);
        s.journal.push(format!("add_target {droplet}"));
        Ok(())
    }
}

/// Collects notices (tests; the state-event backing records them the same way).
#[derive(Debug, Default)]
pub struct MemoryNotifier {
    notices: Mutex<Vec<Notice>>,
}

impl MemoryNotifier {
    pub fn notices(&self) -> Vec<Notice> {
        lock(&self.notices).clone()
    }
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn notify(&self, notice: &Notice) {
        tracing::info!(droplet = notice.droplet(), ?notice, "recovery notice");
        lock(&self.notices).push(notice.clone());
    }
}

/// Writes each notice as one log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogNotifier;

#[async_trait]
impl Notifier for LogNotifier {
    async fn notify(&self, notice: &Notice) {
        match notice {
            Notice::Recovered(o) => tracing::warn!(
                droplet = %o.droplet, generation = o.generation, droplet_id = o.droplet_id,
                replacement = ?o.replacement, "droplet recovered"
            ),
            Notice::Flapping { droplet, count } => tracing::error!(
                %droplet, count, "droplet is flapping: left down, needs an operator"
            ),
            Notice::ManualRecoveryNeeded {
                droplet,
                cluster_size,
            } => tracing::error!(
                %droplet, cluster_size,
                "cluster too small for automatic recovery: run `infractl recover`"
            ),
        }
    }
}

/// Sends each notice to every notifier in turn (e.g. the log line and the state event).
#[derive(Default)]
pub struct Notifiers(pub Vec<Box<dyn Notifier>>);

#[async_trait]
impl Notifier for Notifiers {
    async fn notify(&self, notice: &Notice) {
        for n in &self.0 {
            n.notify(notice).await;
        }
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
