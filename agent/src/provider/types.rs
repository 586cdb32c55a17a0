//! Wire types: the JSON shapes of DigitalOcean API v2 answers (serde), and
//! their conversion into the domain types of `provider`.

use std::net::Ipv4Addr;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    Account, Action, ActionStatus, Droplet, DropletStatus, Firewall, FirewallRule, FirewallSpec,
    Image, Protocol, RuleTargets, Snapshot, SshKey, Tag,
};

#[derive(Debug, Deserialize)]
pub struct WireRegion {
    pub slug: String,
}

#[derive(Debug, Deserialize)]
pub struct WireNetworkV4 {
    pub ip_address: Ipv4Addr,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct WireNetworks {
    #[serde(default)]
    pub v4: Vec<WireNetworkV4>,
}

#[derive(Debug, Deserialize)]
pub struct WireImageId {
    pub id: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct WireDroplet {
    pub id: u64,
    pub name: String,
    pub status: DropletStatusWire,
    pub size_slug: String,
    pub region: WireRegion,
    #[serde(default)]
    pub networks: WireNetworks,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub snapshot_ids: Vec<u64>,
    pub image: Option<WireImageId>,
    pub vpc_uuid: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropletStatusWire {
    New,
    Active,
    Off,
    Archive,
}

impl From<WireDroplet> for Droplet {
    fn from(w: WireDroplet) -> Self {
        let ip = |kind: &str| {
            w.networks
                .v4
                .iter()
                .find(|n| n.kind == kind)
                .map(|n| n.ip_address)
        };
        Droplet {
            public_ipv4: ip("public"),
            private_ipv4: ip("private"),
            id: w.id,
            name: w.name,
            status: match w.status {
                DropletStatusWire::New => DropletStatus::New,
                DropletStatusWire::Active => DropletStatus::Active,
                DropletStatusWire::Off => DropletStatus::Off,
                DropletStatusWire::Archive => DropletStatus::Archive,
            },
            size_slug: w.size_slug,
            region: w.region.slug,
            tags: w.tags,
            snapshot_ids: w.snapshot_ids,
            image_id: w.image.and_then(|i| i.id),
            vpc_uuid: w.vpc_uuid,
            created_at: w.created_at,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct WireAction {
    pub id: u64,
    pub status: ActionStatusWire,
    #[serde(rename = "type")]
    pub kind: String,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub resource_id: Option<u64>,
    pub resource_type: Option<String>,
    pub region_slug: Option<String>,
}

#[derive(Debug, Deserialize)]
pub enum ActionStatusWire {
    #[serde(rename = "in-progress")]
    InProgress,
    #[serde(rename = "completed")]
    Completed,
    #[serde(rename = "errored")]
    Errored,
}

impl From<WireAction> for Action {
    fn from(w: WireAction) -> Self {
        Action {
            id: w.id,
            status: match w.status {
                ActionStatusWire::InProgress => ActionStatus::InProgress,
                ActionStatusWire::Completed => ActionStatus::Completed,
                ActionStatusWire::Errored => ActionStatus::Errored,
            },
            kind: w.kind,
            started_at: w.started_at,
            completed_at: w.completed_at,
            resource_id: w.resource_id,
            resource_type: w.resource_type,
            region_slug: w.region_slug,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ActionLink {
    pub id: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateLinks {
    #[serde(default)]
    pub actions: Vec<ActionLink>,
}

/// `POST /v2/droplets` answer, single or multiple.
#[derive(Debug, Deserialize)]
pub struct WireCreated {
    pub droplet: Option<WireDroplet>,
    pub droplets: Option<Vec<WireDroplet>>,
    #[serde(default)]
    pub links: CreateLinks,
}

/// An item of `/v2/snapshots` (string ids) or `/v2/droplets/{id}/snapshots` (integer ids).
#[derive(Debug, Deserialize)]
pub struct WireSnapshot {
    pub id: serde_json::Value,
    pub name: String,
    pub resource_id: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub regions: Vec<String>,
    pub min_disk_size: u64,
    pub size_gigabytes: f64,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
}

impl WireSnapshot {
    pub fn into_domain(self, droplet_id: Option<u64>) -> Result<Snapshot, String> {
        let id = match &self.id {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("snapshot id {} is not a droplet snapshot id", self.id))?;
        Ok(Snapshot {
            id,
            droplet_id: droplet_id.or_else(|| self.resource_id.and_then(|r| r.parse().ok())),
            name: self.name,
            created_at: self.created_at,
            regions: self.regions,
            min_disk_size: self.min_disk_size,
            size_gigabytes: self.size_gigabytes,
            tags: self.tags.unwrap_or_default(),
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct WireImage {
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub slug: Option<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub regions: Vec<String>,
    pub min_disk_size: Option<u64>,
    pub size_gigabytes: Option<f64>,
    pub status: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<WireImage> for Image {
    fn from(w: WireImage) -> Self {
        Image {
            id: w.id,
            name: w.name,
            kind: w.kind,
            slug: w.slug,
            public: w.public,
            regions: w.regions,
            min_disk_size: w.min_disk_size,
            size_gigabytes: w.size_gigabytes,
            status: w.status,
            created_at: w.created_at,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct WireSshKey {
    pub id: u64,
    pub fingerprint: String,
    pub public_key: String,
    pub name: String,
}

impl From<WireSshKey> for SshKey {
    fn from(w: WireSshKey) -> Self {
        SshKey {
            id: w.id,
            fingerprint: w.fingerprint,
            public_key: w.public_key,
            name: w.name,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct WireTagResources {
    #[serde(default)]
    pub count: u64,
}

#[derive(Debug, Deserialize)]
pub struct WireTag {
    pub name: String,
    pub resources: Option<WireTagResources>,
}

impl From<WireTag> for Tag {
    fn from(w: WireTag) -> Self {
        Tag {
            name: w.name,
            resource_count: w.resources.map(|r| r.count).unwrap_or(0),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct WireAccount {
    pub email: String,
    pub uuid: String,
    pub status: String,
    #[serde(default)]
    pub status_message: String,
    pub droplet_limit: u64,
    #[serde(default)]
    pub email_verified: bool,
}

impl From<WireAccount> for Account {
    fn from(w: WireAccount) -> Self {
        Account {
            email: w.email,
            uuid: w.uuid,
            status: w.status,
            status_message: w.status_message,
            droplet_limit: w.droplet_limit,
            email_verified: w.email_verified,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct WireTargets {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub droplet_ids: Vec<u64>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub load_balancer_uids: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct WireRule {
    pub protocol: Protocol,
    #[serde(default)]
    pub ports: Option<String>,
    pub sources: Option<WireTargets>,
    pub destinations: Option<WireTargets>,
}

impl From<WireRule> for FirewallRule {
    fn from(w: WireRule) -> Self {
        let t = w.sources.or(w.destinations).unwrap_or_default();
        FirewallRule {
            protocol: w.protocol,
            ports: w.ports.unwrap_or_else(|| "all".into()),
            targets: RuleTargets {
                addresses: t.addresses,
                droplet_ids: t.droplet_ids,
                tags: t.tags,
                load_balancer_uids: t.load_balancer_uids,
            },
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct WireFirewall {
    pub id: String,
    #[serde(default)]
    pub status: String,
    pub created_at: Option<DateTime<Utc>>,
    pub name: String,
    pub droplet_ids: Option<Vec<u64>>,
    pub tags: Option<Vec<String>>,
    pub inbound_rules: Option<Vec<WireRule>>,
    pub outbound_rules: Option<Vec<WireRule>>,
}

impl From<WireFirewall> for Firewall {
    fn from(w: WireFirewall) -> Self {
        let rules = |r: Option<Vec<WireRule>>| {
            r.unwrap_or_default()
                .into_iter()
                .map(FirewallRule::from)
                .collect()
        };
        Firewall {
            id: w.id,
            status: w.status,
            created_at: w.created_at,
            spec: FirewallSpec {
                name: w.name,
                inbound: rules(w.inbound_rules),
                outbound: rules(w.outbound_rules),
                droplet_ids: w.droplet_ids.unwrap_or_default(),
                tags: w.tags.unwrap_or_default(),
            },
        }
    }
}
