//! The domain side of the control calls that change the cloud (ApplySpec,
//! Scale, ...): a [`ControlHandler`] trait with plain request types (no
//! wire types), a [`ProgressSink`] for step messages, and the default
//! handler of an agent that cannot run them yet.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::channel::mpsc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplySpec {
    pub infrastructure_json: String,
    pub deployment_json: String,
    pub force: bool,
    pub allow_destroy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub project: String,
    pub web_droplets: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddProject {
    pub name: String,
    pub environments: Vec<String>,
    pub web_droplets: u32,
    pub size: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveProject {
    pub name: String,
    pub allow_destroy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recover {
    pub droplet: String,
    /// Clear the flapping flag.
    pub force: bool,
}

/// A deploy request; `secrets` values are redacted from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Deploy {
    pub project: String,
    pub environment: String,
    pub branch: String,
    pub tag: String,
    pub local: bool,
    pub project_path: String,
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// The caller's deployment_config.json (empty: the last applied one).
    pub deployment_json: String,
}

impl std::fmt::Debug for Deploy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deploy")
            .field("project", &self.project)
            .field("environment", &self.environment)
            .field("branch", &self.branch)
            .field("tag", &self.tag)
            .field("local", &self.local)
            .field("project_path", &self.project_path)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("deployment_json", &self.deployment_json.len())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    pub project: String,
    pub environment: String,
    pub to_tag: String,
    /// The caller's deployment_config.json (empty: the last applied one).
    pub deployment_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanup {
    pub dry_run: bool,
}

/// The final answer of a control call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub message: String,
    /// Machine-readable result, sent as JSON on the last progress message.
    pub result: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("not available on this agent yet: {0}")]
    NotAvailable(&'static str),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
}

/// What a control call reports, in order: steps, then one final result.
#[derive(Debug)]
pub enum ProgressEvent {
    Step(String),
    Done(Result<Outcome, ControlError>),
}

/// Where a handler reports its steps ("create droplet web2", ...).
#[derive(Debug, Clone)]
pub struct ProgressSink {
    tx: mpsc::UnboundedSender<ProgressEvent>,
}

impl ProgressSink {
    /// A sink and the receiving end of its events.
    pub fn channel() -> (ProgressSink, mpsc::UnboundedReceiver<ProgressEvent>) {
        let (tx, rx) = mpsc::unbounded();
        (ProgressSink { tx }, rx)
    }

    /// Reports one step; a caller that went away is not an error.
    pub fn step(&self, message: impl Into<String>) {
        let _ = self.tx.unbounded_send(ProgressEvent::Step(message.into()));
    }

    /// Reports the call's result (the last event).
    pub fn finish(&self, result: Result<Outcome, ControlError>) {
        let _ = self.tx.unbounded_send(ProgressEvent::Done(result));
    }
}

/// Runs the control calls that change the cloud. The orchestrator
/// implements it; the default [`Unavailable`] answers each call with
/// [`ControlError::NotAvailable`]. Only the Raft leader's handler runs:
/// followers forward the call.
#[async_trait]
pub trait ControlHandler: Send + Sync + 'static {
    async fn apply_spec(
        &self,
        req: ApplySpec,
        progress: ProgressSink,
    ) -> Result<Outcome, ControlError>;
    async fn scale(&self, req: Scale, progress: ProgressSink) -> Result<Outcome, ControlError>;
    async fn add_project(
        &self,
        req: AddProject,
        progress: ProgressSink,
    ) -> Result<Outcome, ControlError>;
    async fn remove_project(
        &self,
        req: RemoveProject,
        progress: ProgressSink,
    ) -> Result<Outcome, ControlError>;
    async fn recover(&self, req: Recover, progress: ProgressSink) -> Result<Outcome, ControlError>;
    async fn deploy(&self, req: Deploy, progress: ProgressSink) -> Result<Outcome, ControlError>;
    async fn rollback(
        &self,
        req: Rollback,
        progress: ProgressSink,
    ) -> Result<Outcome, ControlError>;
    async fn cleanup(&self, req: Cleanup, progress: ProgressSink) -> Result<Outcome, ControlError>;
}

/// The handler of an agent without an orchestrator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unavailable;

#[async_trait]
impl ControlHandler for Unavailable {
    async fn apply_spec(&self, _: ApplySpec, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("ApplySpec"))
    }
    async fn scale(&self, _: Scale, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Scale"))
    }
    async fn add_project(&self, _: AddProject, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("AddProject"))
    }
    async fn remove_project(
        &self,
        _: RemoveProject,
        _: ProgressSink,
    ) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("RemoveProject"))
    }
    async fn recover(&self, _: Recover, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Recover"))
    }
    async fn deploy(&self, _: Deploy, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Deploy"))
    }
    async fn rollback(&self, _: Rollback, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Rollback"))
    }
    async fn cleanup(&self, _: Cleanup, _: ProgressSink) -> Result<Outcome, ControlError> {
        Err(ControlError::NotAvailable("Cleanup"))
    }
}
