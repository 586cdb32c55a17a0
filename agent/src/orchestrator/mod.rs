//! The leader-side reconciler: applies a spec to the cloud and the
//! replicated cluster state (`apply_spec`), creating the missing droplets
//! with their bootstrap user-data exactly once, waiting until they are
//! active and their agents joined, and committing the result to the state.
//!
//! I/O sits behind small traits: [`StateStore`] (Raft, or [`MemoryStore`]
//! in tests), the [`CloudProvider`](crate::provider::CloudProvider) and the
//! recovery module's [`JoinWatcher`](crate::recovery::JoinWatcher)
//! ([`MembershipJoins`] over gossip).

mod agent;
mod apply;
mod balancer;
mod deploy;
mod discovery;
mod handler;
mod healer;
mod interrupted;
mod joins;
mod lb_routes;
mod manual;
mod placement;
mod running;
mod saga_store;
mod store;

#[cfg(test)]
mod apply_tests;
#[cfg(test)]
mod healer_tests;
#[cfg(test)]
mod placement_tests;

use std::sync::Arc;
use std::time::Duration;

pub use agent::{DEFAULT_BASE_IMAGE, LeaderSetup, SetupError, run_agent};
pub use apply::{ApplyDeps, ApplyReport, apply_spec};
pub use balancer::{Balancer, BalancerError, BalancerSettings, RunningContainers};
pub use deploy::{
    Converged, DeploySettings, LeaderDeploys, PlaceServices, ServicePlacer, droplets,
};
pub use handler::{NodeRuntime, OrchestratorHandler};
pub use healer::{Healer, SagaResult};
pub use interrupted::{Interrupted, interrupted};
pub use joins::{MembershipJoins, has_joined};
pub use placement::{Action as PlacementAction, Planned, plan_droplet};
pub use running::{Running, running_containers};
pub use saga_store::{StateEffects, StateSagaLog, phase_of};
pub use store::{MemoryStore, StateStore, StoreError};

use crate::membership::GossipKey;
use crate::provider::ProviderError;
use crate::tls::Ca;

/// The tag every droplet of cluster `cluster_id` carries.
pub fn cluster_tag(cluster_id: &str) -> String {
    format!("infra-cluster:{cluster_id}")
}

/// The idempotency key of the creation of `droplet`'s incarnation
/// `generation` (the provider adopts a droplet tagged with it).
pub fn create_operation_id(cluster_id: &str, droplet: &str, generation: u64) -> String {
    format!("{cluster_id}-{droplet}-g{generation}")
}

/// What the reconciler needs to create droplets for this cluster.
pub struct ClusterIdentity {
    pub cluster_id: String,
    pub ca: Arc<Ca>,
    pub gossip_key: GossipKey,
    pub grpc_port: u16,
    pub gossip_port: u16,
    /// Image slug of new droplets.
    pub base_image: String,
    pub ssh_key_ids: Vec<u64>,
    /// Shipped to the voters it creates, so any of them can lead.
    pub api_token: Option<crate::provider::Secret>,
    /// Notification configs and secrets, shipped with the API token.
    pub notify: Option<Arc<crate::notify::NotifyBundle>>,
}

impl std::fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIdentity")
            .field("cluster_id", &self.cluster_id)
            .field("grpc_port", &self.grpc_port)
            .field("gossip_port", &self.gossip_port)
            .field("base_image", &self.base_image)
            .finish_non_exhaustive()
    }
}

/// How long the reconciler waits for things.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    /// Until a new droplet's agent joined.
    pub join: Duration,
    /// Between two join checks.
    pub poll: Duration,
    /// Until a recovery requested by an operator has finished.
    pub recover: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            join: Duration::from_secs(300),
            poll: Duration::from_millis(200),
            recover: Duration::from_secs(900),
        }
    }
}

/// One step of an apply, as streamed to the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressEvent {
    /// `plan`, `create`, `active`, `join`, `commit`, `delete`, `done`.
    pub step: &'static str,
    pub message: String,
}

/// Receives progress events (e.g. forwards them to a gRPC stream).
pub trait Progress: Send + Sync {
    fn report(&self, event: ProgressEvent);
}

impl<F: Fn(ProgressEvent) + Send + Sync> Progress for F {
    fn report(&self, event: ProgressEvent) {
        self(event)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OrchestrateError {
    #[error(transparent)]
    Provider(Box<ProviderError>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bootstrap(Box<crate::bootstrap::BootstrapError>),
    #[error(
        "the plan destroys droplets ({0}); re-run with --allow-destroy (and --force for a replace)"
    )]
    DestroyBlocked(String),
    #[error("droplet {name} did not become active with a public IPv4 address")]
    NoAddress { name: String },
    #[error("the agent of droplet {name} did not join within {waited:?}")]
    JoinTimeout { name: String, waited: Duration },
    #[error("state change {kind} was rejected: {reason}")]
    Rejected { kind: &'static str, reason: String },
}

impl From<ProviderError> for OrchestrateError {
    fn from(e: ProviderError) -> Self {
        OrchestrateError::Provider(Box::new(e))
    }
}

impl From<crate::bootstrap::BootstrapError> for OrchestrateError {
    fn from(e: crate::bootstrap::BootstrapError) -> Self {
        OrchestrateError::Bootstrap(Box::new(e))
    }
}
