//! Self-healing: the recovery saga the Raft leader runs for each confirmed
//! failure (pure step machine in `saga`, executor in `executor`), the pure
//! policies (flapping, small clusters, snapshot schedule, retention, cleanup)
//! and the snapshot and cleanup runs against the cloud provider.
//!
//! I/O sits behind small traits: [`SagaLog`] (later backed by Raft),
//! [`JoinWatcher`] (later backed by gossip), [`ClusterEffects`] (load-balancer
//! targets in the replicated state; the placement of the droplet's services
//! at the live releases, by the leader's deploys), [`Notifier`] and [`Clock`].

mod executor;
mod maintenance;
mod memory;
mod policy;
mod replace;
mod saga;

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod saga_tests;

use std::net::Ipv4Addr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::provider::{CloudProvider, ProviderError};

pub use executor::{RunResult, admit_and_run, run_saga};
pub use maintenance::{
    CleanupReport, SnapshotRun, apply_retention, run_cleanup, run_snapshot_schedule,
    snapshot_droplet, snapshot_infos,
};
pub use memory::{
    EffectsState, LogNotifier, MemoryEffects, MemoryJoins, MemoryNotifier, MemorySagaLog,
    Notifiers, SystemClock,
};
pub use policy::{
    Admission, AdmissionFacts, CloudDroplet, Deletion, KnownState, RecoveryPolicy, SnapshotInfo,
    admit, latest_snapshots, parse_snapshot_name, plan_cleanup, recent_recoveries,
    retention_deletes, snapshot_due, snapshot_name, snapshots_due,
};
pub use saga::{
    Decision, DropletTemplate, FENCE_TAG_PREFIX, Fence, FenceAction, FenceFacts, FencingToken,
    Progress, ReplaceFacts, Replacement, SAGA_VERSION, SagaOutcome, SagaRecord, SourceImage,
    StaleToken, Step, choose_replacement, fence_action, next_step, old_needs_destroy,
};

/// The tag every droplet the system creates carries.
pub const SYSTEM_TAG: &str = "infra-managed";

/// Why a saga log commit failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SagaLogError {
    /// A newer leader owns the saga: this one must stop.
    #[error("fencing token {offered} of saga {droplet} is older than the committed {current}")]
    Stale {
        droplet: String,
        offered: FencingToken,
        current: FencingToken,
    },
    /// The log cannot commit (lost leadership, no quorum).
    #[error("saga log unavailable: {0}")]
    Unavailable(String),
}

/// Where saga records are committed, before and after each step.
#[async_trait]
pub trait SagaLog: Send + Sync {
    async fn commit(&self, record: &SagaRecord) -> Result<(), SagaLogError>;
}

/// Whether the agent of a droplet incarnation has joined the cluster.
#[async_trait]
pub trait JoinWatcher: Send + Sync {
    async fn joined(&self, droplet: &str, generation: u64) -> bool;
}

/// A change of the replicated cluster state failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EffectError(pub String);

/// The saga's changes to the replicated cluster state. Each call is idempotent.
#[async_trait]
pub trait ClusterEffects: Send + Sync {
    /// Takes the droplet out of the load-balancer targets.
    async fn remove_target(&self, droplet: &str) -> Result<(), EffectError>;
    /// Removes the failed incarnation from the Raft group, so that its
    /// replacement (restored from a snapshot, with an older Raft log) joins
    /// as a new member.
    async fn forget_incarnation(&self, droplet: &str) -> Result<(), EffectError>;
    /// Places the droplet's services on it again (`redeploy`: built from the
    /// base image): a running container of the live release's tag for every
    /// service placed on it, started where missing. Idempotent (nothing to
    /// do when they run); an error leaves no half-started container.
    async fn place_services(
        &self,
        droplet: &str,
        generation: u64,
        redeploy: bool,
    ) -> Result<(), EffectError>;
    /// Puts the droplet back in the load-balancer targets.
    async fn add_target(&self, droplet: &str, ip: Option<Ipv4Addr>) -> Result<(), EffectError>;
}

/// What the operator is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    Recovered(SagaOutcome),
    /// Recovered too often: left down.
    Flapping {
        droplet: String,
        count: usize,
    },
    /// Too few droplets: waiting for `infractl recover`.
    ManualRecoveryNeeded {
        droplet: String,
        cluster_size: usize,
    },
}

impl Notice {
    pub fn droplet(&self) -> &str {
        match self {
            Notice::Recovered(o) => &o.droplet,
            Notice::Flapping { droplet, .. } | Notice::ManualRecoveryNeeded { droplet, .. } => {
                droplet
            }
        }
    }
}

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn notify(&self, notice: &Notice);
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// How long the executor waits, and how often it polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaTiming {
    pub poll: Duration,
    /// Until the replacement is active.
    pub active_timeout: Duration,
    /// Until its agent has joined.
    pub join_timeout: Duration,
    /// Actions started this long before the step are still recognised as the step's own
    /// (clock skew between leaders).
    pub skew: Duration,
}

impl Default for SagaTiming {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(2),
            active_timeout: Duration::from_secs(15 * 60),
            join_timeout: Duration::from_secs(10 * 60),
            skew: Duration::from_secs(30),
        }
    }
}

/// What the executor works with.
#[derive(Clone, Copy)]
pub struct SagaCtx<'a> {
    pub provider: &'a dyn CloudProvider,
    pub log: &'a dyn SagaLog,
    pub joins: &'a dyn JoinWatcher,
    pub effects: &'a dyn ClusterEffects,
    pub notifier: &'a dyn Notifier,
    pub clock: &'a dyn Clock,
    pub timing: &'a SagaTiming,
}

/// Why a saga stopped before its end. The committed record says where to resume.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("saga {droplet}: {step:?}: cloud call failed: {source}")]
    Provider {
        droplet: String,
        step: Step,
        #[source]
        source: ProviderError,
    },
    #[error("saga {droplet}: cannot commit {step:?}: {source}")]
    Log {
        droplet: String,
        step: Step,
        #[source]
        source: SagaLogError,
    },
    #[error("saga {droplet}: {step:?}: cluster state change failed: {source}")]
    Effect {
        droplet: String,
        step: Step,
        #[source]
        source: EffectError,
    },
    #[error("saga {droplet}: {step:?}: timed out after {after:?} waiting for {what}")]
    Timeout {
        droplet: String,
        step: Step,
        what: String,
        after: Duration,
    },
    #[error("saga {droplet}: unsupported record version {version} (expected {SAGA_VERSION})")]
    Version { droplet: String, version: u32 },
    #[error("saga {droplet}: {step:?}: inconsistent record: {reason}")]
    Inconsistent {
        droplet: String,
        step: Step,
        reason: String,
    },
}
