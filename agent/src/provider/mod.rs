//! The cloud provider: the `CloudProvider` trait the agent codes against, its
//! domain types, and the DigitalOcean API v2 implementation `DoClient`.
//!
//! What `DoClient` guarantees:
//! - retries connection errors, 429 and 5xx (not 501) a bounded number of times
//!   ([`RetryPolicy`], godo defaults: 4 retries, 1 s doubling to 30 s, jitter);
//!   a 429 waits for `retry-after`, else until `ratelimit-reset`;
//! - never sends more than 250 requests per minute (a client-side [`Pacer`]) and
//!   waits for the hourly budget's reset when `ratelimit-remaining` reaches 0;
//! - creates droplets exactly once: each carries the tag `infra-op:<operation id>`,
//!   and after an ambiguous failure (timeout, 5xx, lost answer) or a repeated call
//!   with the same operation id it adopts the tagged droplets instead of creating more;
//! - a droplet action that meets "Droplet already has a pending event" waits for
//!   the running action and tries again; a lost action answer adopts the started action;
//! - the token ([`Secret`]) never appears in `Debug`, errors or logs.

mod config;
mod do_client;
mod error;
mod flows;
mod http;
mod ops;
mod ratelimit;
mod retry;
mod secret;
mod types;

use std::net::Ipv4Addr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use config::{DEFAULT_BASE_URL, DoConfig, PollPolicy};
pub use do_client::{DoClient, PER_PAGE};
pub use error::ProviderError;
pub use ops::{OPERATION_TAG_PREFIX, OperationId, next_page};
pub use ratelimit::{Pacer, RateLimit};
pub use retry::{RetryPolicy, is_retryable_status};
pub use secret::Secret;

/// `droplet.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DropletStatus {
    New,
    Active,
    Off,
    Archive,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Droplet {
    pub id: u64,
    pub name: String,
    pub status: DropletStatus,
    pub size_slug: String,
    pub region: String,
    pub public_ipv4: Option<Ipv4Addr>,
    pub private_ipv4: Option<Ipv4Addr>,
    pub tags: Vec<String>,
    pub snapshot_ids: Vec<u64>,
    pub image_id: Option<u64>,
    pub vpc_uuid: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `action.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ActionStatus {
    #[serde(rename = "in-progress")]
    InProgress,
    #[serde(rename = "completed")]
    Completed,
    #[serde(rename = "errored")]
    Errored,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Action {
    pub id: u64,
    pub status: ActionStatus,
    /// `type`: create, snapshot, power_off, ...
    pub kind: String,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub resource_id: Option<u64>,
    pub resource_type: Option<String>,
    pub region_slug: Option<String>,
}

/// An image reference: a slug (`ubuntu-24-04-x64`) or a numeric id (a snapshot: restore).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ImageRef {
    Slug(String),
    Id(u64),
}

/// An SSH key reference: numeric id or fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SshKeyRef {
    Id(u64),
    Fingerprint(String),
}

/// The droplet actions the agent uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DropletAction {
    Snapshot { name: String },
    PowerOff,
    PowerOn,
    Shutdown,
    Reboot,
    Rebuild { image: ImageRef },
}

impl DropletAction {
    /// The API's `type` value.
    pub fn kind(&self) -> &'static str {
        match self {
            DropletAction::Snapshot { .. } => "snapshot",
            DropletAction::PowerOff => "power_off",
            DropletAction::PowerOn => "power_on",
            DropletAction::Shutdown => "shutdown",
            DropletAction::Reboot => "reboot",
            DropletAction::Rebuild { .. } => "rebuild",
        }
    }
}

/// What to create: one droplet per name (the API takes at most 10 names per request;
/// the client splits larger batches).
#[derive(Clone, Debug, PartialEq)]
pub struct CreateDroplets {
    pub names: Vec<String>,
    pub region: String,
    pub size: String,
    pub image: ImageRef,
    pub ssh_keys: Vec<SshKeyRef>,
    pub tags: Vec<String>,
    pub user_data: Option<String>,
    pub vpc_uuid: Option<String>,
    pub ipv6: bool,
    pub monitoring: bool,
    /// The idempotency key: the droplets get tag `infra-op:<id>`. `None` = a fresh random id.
    pub operation_id: Option<OperationId>,
}

/// The result of a create: the droplets (status `new` right after creation) and
/// the create actions to wait for.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub droplets: Vec<Droplet>,
    pub action_ids: Vec<u64>,
    pub operation_id: OperationId,
}

/// A droplet snapshot (`/v2/snapshots?resource_type=droplet` or `/v2/droplets/{id}/snapshots`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    pub id: u64,
    pub name: String,
    pub droplet_id: Option<u64>,
    pub created_at: DateTime<Utc>,
    pub regions: Vec<String>,
    pub min_disk_size: u64,
    pub size_gigabytes: f64,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Image {
    pub id: u64,
    pub name: String,
    /// `type`: base, snapshot, backup, custom, admin.
    pub kind: Option<String>,
    pub slug: Option<String>,
    pub public: bool,
    pub regions: Vec<String>,
    pub min_disk_size: Option<u64>,
    pub size_gigabytes: Option<f64>,
    pub status: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SshKey {
    pub id: u64,
    pub fingerprint: String,
    pub public_key: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub name: String,
    pub resource_count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    pub email: String,
    pub uuid: String,
    pub status: String,
    pub status_message: String,
    pub droplet_limit: u64,
    pub email_verified: bool,
}

/// `tcp`, `udp` or `icmp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

/// Where a rule's traffic comes from (inbound) or goes to (outbound).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuleTargets {
    pub addresses: Vec<String>,
    pub droplet_ids: Vec<u64>,
    pub tags: Vec<String>,
    pub load_balancer_uids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FirewallRule {
    pub protocol: Protocol,
    /// `"22"`, `"8000-9000"` or `"all"` (icmp: `"all"` is sent, as the spec requires `ports`).
    pub ports: String,
    pub targets: RuleTargets,
}

/// The whole desired firewall (create and replace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FirewallSpec {
    pub name: String,
    pub inbound: Vec<FirewallRule>,
    pub outbound: Vec<FirewallRule>,
    pub droplet_ids: Vec<u64>,
    pub tags: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Firewall {
    pub id: String,
    /// waiting, succeeded, failed.
    pub status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub spec: FirewallSpec,
}

/// The cloud operations the agent needs. Implemented by [`DoClient`] for DigitalOcean.
#[async_trait]
pub trait CloudProvider: Send + Sync {
    async fn account(&self) -> Result<Account, ProviderError>;

    async fn list_ssh_keys(&self) -> Result<Vec<SshKey>, ProviderError>;
    async fn create_ssh_key(&self, name: &str, public_key: &str) -> Result<SshKey, ProviderError>;

    /// All droplets, or those with `tag`, following every page.
    async fn list_droplets(&self, tag: Option<&str>) -> Result<Vec<Droplet>, ProviderError>;
    async fn get_droplet(&self, id: u64) -> Result<Droplet, ProviderError>;
    /// Creates the droplets exactly once, even across ambiguous failures.
    async fn create_droplets(&self, req: &CreateDroplets) -> Result<Created, ProviderError>;
    async fn delete_droplet(&self, id: u64) -> Result<(), ProviderError>;
    async fn delete_droplets_by_tag(&self, tag: &str) -> Result<(), ProviderError>;

    /// Starts an action; waits first for an action already running on the droplet.
    async fn droplet_action(
        &self,
        droplet_id: u64,
        action: &DropletAction,
    ) -> Result<Action, ProviderError>;
    async fn list_droplet_actions(&self, droplet_id: u64) -> Result<Vec<Action>, ProviderError>;
    async fn get_action(&self, action_id: u64) -> Result<Action, ProviderError>;
    /// Polls until `completed` (Ok) or `errored` (`ProviderError::ActionErrored`), with a deadline.
    async fn wait_action(&self, action_id: u64) -> Result<Action, ProviderError>;

    async fn list_snapshots(&self) -> Result<Vec<Snapshot>, ProviderError>;
    async fn list_droplet_snapshots(&self, droplet_id: u64)
    -> Result<Vec<Snapshot>, ProviderError>;
    async fn delete_snapshot(&self, id: u64) -> Result<(), ProviderError>;
    async fn list_private_images(&self) -> Result<Vec<Image>, ProviderError>;

    async fn create_tag(&self, name: &str) -> Result<Tag, ProviderError>;
    async fn tag_droplets(&self, tag: &str, droplet_ids: &[u64]) -> Result<(), ProviderError>;

    async fn create_firewall(&self, spec: &FirewallSpec) -> Result<Firewall, ProviderError>;
    async fn get_firewall(&self, id: &str) -> Result<Firewall, ProviderError>;
    /// Replaces the whole firewall (PUT).
    async fn update_firewall(
        &self,
        id: &str,
        spec: &FirewallSpec,
    ) -> Result<Firewall, ProviderError>;
    async fn add_firewall_rules(
        &self,
        id: &str,
        inbound: &[FirewallRule],
        outbound: &[FirewallRule],
    ) -> Result<(), ProviderError>;
    async fn remove_firewall_rules(
        &self,
        id: &str,
        inbound: &[FirewallRule],
        outbound: &[FirewallRule],
    ) -> Result<(), ProviderError>;

    /// The rate-limit budget as last reported by the API, minus requests sent since.
    fn rate_limit(&self) -> Option<RateLimit>;
}
