//! The commands that change the replicated cluster state, and their results.
//! Commands travel inside Raft log entries, so they are versioned and carry
//! every timestamp they need (the state machine never reads a clock).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::topology::Topology;

/// Version of the command encoding in the Raft log.
pub const COMMAND_VERSION: u32 = 1;

/// A command as stored in the Raft log: the encoding version plus the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    pub version: u32,
    pub command: Command,
}

impl CommandEnvelope {
    /// Wraps `command` in the current encoding version.
    pub fn new(command: Command) -> Self {
        Self {
            version: COMMAND_VERSION,
            command,
        }
    }
}

impl fmt::Display for CommandEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{} {}", self.version, self.command.kind())
    }
}

/// Runtime status of a droplet as the cluster sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropletStatus {
    /// Create requested, not yet active.
    Provisioning,
    Active,
    /// A failure was confirmed; a recovery is (or was) running.
    Failed,
    /// Being restored from a snapshot.
    Recovering,
}

/// A step of the recovery saga, committed before the leader moves on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum RecoveryPhase {
    /// Failure confirmed; nothing done yet.
    Confirmed,
    /// The dead droplet was powered off or destroyed.
    Fenced,
    /// Restore from `snapshot_id` was requested from the provider.
    Restoring { snapshot_id: String },
    /// The replacement droplet exists.
    Restored { provider_id: u64, ip: String },
    /// The replacement's agent rejoined; the recovery is closed.
    Done,
    /// The recovery gave up; an operator must act.
    Failed { reason: String },
}

impl RecoveryPhase {
    /// Whether this phase closes the recovery.
    pub fn is_terminal(&self) -> bool {
        matches!(self, RecoveryPhase::Done | RecoveryPhase::Failed { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            RecoveryPhase::Confirmed => "confirmed",
            RecoveryPhase::Fenced => "fenced",
            RecoveryPhase::Restoring { .. } => "restoring",
            RecoveryPhase::Restored { .. } => "restored",
            RecoveryPhase::Done => "done",
            RecoveryPhase::Failed { .. } => "failed",
        }
    }
}

/// Fencing token of a recovery: the Raft term and log index of the entry
/// that opened (or took over) the recovery. Larger tokens win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FencingToken {
    pub term: u64,
    pub index: u64,
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.term, self.index)
    }
}

/// A typed change of the cluster state. Timestamps are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// The cluster was formed (`Initialize`): the first entry of its log.
    FormCluster {
        cluster_id: String,
        /// The agent that formed it.
        by: String,
        at_ms: u64,
    },
    /// Replace the placed topology (after an orchestrate/scale).
    SetTopology { topology: Topology, at_ms: u64 },
    /// Create or update a droplet's runtime record.
    UpsertDroplet {
        name: String,
        provider_id: Option<u64>,
        ip: Option<String>,
        generation: u64,
        status: DropletStatus,
        at_ms: u64,
    },
    /// Forget a droplet destroyed on purpose, with its snapshots, failures
    /// and recoveries.
    RemoveDroplet { name: String, at_ms: u64 },
    /// A quorum of monitors confirmed `name` (incarnation `generation`) dead.
    /// Opens a recovery whose fencing token is this entry's (term, index).
    ConfirmFailure {
        name: String,
        generation: u64,
        at_ms: u64,
    },
    /// An operator asked for `name` to be recovered (`infractl recover`).
    /// Opens a manual recovery under this entry's fencing token; `force`
    /// clears the flapping flag.
    RequestRecovery {
        name: String,
        /// The newest incarnation the leader has seen (gossip); the state's
        /// record may be older.
        generation: u64,
        #[serde(default)]
        force: bool,
        at_ms: u64,
    },
    /// A new leader takes over the open recovery of `name`: the recovery
    /// gets this entry's fencing token; steps with older tokens are rejected.
    TakeOverRecovery { name: String, at_ms: u64 },
    /// The recovery of `name` reached `phase`; `fencing` must be the
    /// recovery's current token.
    RecoveryStep {
        name: String,
        fencing: FencingToken,
        phase: RecoveryPhase,
        at_ms: u64,
    },
    /// The recovery saga of `name` committed its record (JSON of
    /// `recovery::SagaRecord`); `fencing` must be the recovery's token.
    SaveSaga {
        name: String,
        fencing: FencingToken,
        record: String,
        at_ms: u64,
    },
    /// A release was deployed to `project`/`environment`.
    RecordRelease {
        project: String,
        environment: String,
        tag: String,
        /// Image id per service name.
        images: BTreeMap<String, String>,
        /// Commit the images were built from, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        at_ms: u64,
    },
    /// A kept release of `project`/`environment` is live again (rollback).
    SetLiveRelease {
        project: String,
        environment: String,
        tag: String,
        at_ms: u64,
    },
    /// Secrets of `project`/`environment`, sealed (AEAD, see
    /// `deploy::sealed`): name -> hex of nonce and ciphertext. Merged into
    /// the stored ones.
    StoreSecrets {
        project: String,
        environment: String,
        sealed: BTreeMap<String, String>,
        at_ms: u64,
    },
    /// The load balancer's base URL (e.g. `http://203.0.113.2`).
    SetLoadBalancer { url: String, at_ms: u64 },
    /// A deploy or rollback of `project`/`environment` began on the
    /// leader (`action`: `deploy-uat`, `deploy-prod`, `rollback`), with the
    /// deployment config it runs with (no secret values in it).
    DeployStarted {
        project: String,
        environment: String,
        action: String,
        deployment_json: String,
        at_ms: u64,
    },
    /// A leader found that deploy unfinished: the leader running it was
    /// lost mid-way.
    DeployInterrupted {
        project: String,
        environment: String,
        at_ms: u64,
    },
    /// The deploy ended; `outcome` says how.
    DeployFinished {
        project: String,
        environment: String,
        outcome: String,
        at_ms: u64,
    },
    /// A provider snapshot of `droplet` exists.
    RecordSnapshot {
        droplet: String,
        snapshot_id: String,
        name: String,
        at_ms: u64,
    },
    /// A provider snapshot was deleted.
    ForgetSnapshot {
        droplet: String,
        snapshot_id: String,
    },
    /// Free-form event for the audit log.
    RecordEvent { message: String, at_ms: u64 },
}

impl Command {
    /// Short name of the command, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::FormCluster { .. } => "form_cluster",
            Command::SetTopology { .. } => "set_topology",
            Command::UpsertDroplet { .. } => "upsert_droplet",
            Command::RemoveDroplet { .. } => "remove_droplet",
            Command::ConfirmFailure { .. } => "confirm_failure",
            Command::RequestRecovery { .. } => "request_recovery",
            Command::TakeOverRecovery { .. } => "take_over_recovery",
            Command::RecoveryStep { .. } => "recovery_step",
            Command::SaveSaga { .. } => "save_saga",
            Command::RecordRelease { .. } => "record_release",
            Command::SetLiveRelease { .. } => "set_live_release",
            Command::StoreSecrets { .. } => "store_secrets",
            Command::SetLoadBalancer { .. } => "set_load_balancer",
            Command::DeployStarted { .. } => "deploy_started",
            Command::DeployInterrupted { .. } => "deploy_interrupted",
            Command::DeployFinished { .. } => "deploy_finished",
            Command::RecordSnapshot { .. } => "record_snapshot",
            Command::ForgetSnapshot { .. } => "forget_snapshot",
            Command::RecordEvent { .. } => "record_event",
        }
    }
}

/// The result of applying one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The command changed the state.
    Applied,
    /// The command had already taken effect; nothing changed.
    Unchanged,
    /// A recovery is open for the droplet (opened now, or already open)
    /// under this fencing token.
    Recovery { fencing: FencingToken, opened: bool },
    /// The command was refused; the state is unchanged.
    Rejected { reason: String },
    /// A log entry without a command (blank or membership change).
    Noop,
}

impl Response {
    pub fn is_rejected(&self) -> bool {
        matches!(self, Response::Rejected { .. })
    }
}
