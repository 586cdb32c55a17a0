//! The persisted cloud state: droplets, actions, snapshot images, keys, tags, firewalls.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Version of the state file format.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropletStatus {
    New,
    Active,
    Off,
    Archive,
}

impl DropletStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DropletStatus::New => "new",
            DropletStatus::Active => "active",
            DropletStatus::Off => "off",
            DropletStatus::Archive => "archive",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Droplet {
    pub id: u64,
    pub name: String,
    pub size_slug: String,
    pub region: String,
    /// The image JSON as it was when the droplet was created or rebuilt.
    pub image: Value,
    pub status: DropletStatus,
    pub created_at: DateTime<Utc>,
    pub tags: Vec<String>,
    pub snapshot_ids: Vec<u64>,
    pub user_data: Option<String>,
    pub ssh_keys: Vec<u64>,
    /// Index of the loopback address (127.x.y.z) given to this droplet.
    pub addr: u32,
    pub ipv6: bool,
    pub monitoring: bool,
    pub backups: bool,
    pub vpc_uuid: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionStatus {
    InProgress,
    Completed,
    Errored,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::InProgress => "in-progress",
            ActionStatus::Completed => "completed",
            ActionStatus::Errored => "errored",
        }
    }
}

/// What happens to the droplet when an action completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    Create { restore_from: Option<u64> },
    PowerOff,
    Shutdown,
    PowerOn,
    Reboot,
    PowerCycle,
    Snapshot { image_id: u64 },
    Rebuild { image: Value, snapshot: Option<u64> },
    Resize { size: String },
    Rename { name: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Action {
    pub id: u64,
    pub kind: String,
    pub status: ActionStatus,
    pub droplet_id: u64,
    pub region: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// When the action finishes (wall clock).
    pub due_at: DateTime<Utc>,
    /// Injected fault: the action ends `errored`.
    pub fails: bool,
    pub effect: Effect,
}

/// A droplet snapshot (a private image of type `snapshot`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: u64,
    pub name: String,
    pub droplet_id: u64,
    pub region: String,
    pub created_at: DateTime<Utc>,
    pub min_disk_size: u64,
    pub size_gigabytes: f64,
    pub tags: Vec<String>,
    /// False while the snapshot action is still running.
    pub available: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshKey {
    pub id: u64,
    pub name: String,
    pub public_key: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Firewall {
    pub id: String,
    pub name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub inbound_rules: Vec<Value>,
    pub outbound_rules: Vec<Value>,
    pub droplet_ids: Vec<u64>,
    pub tags: Vec<String>,
    /// When a `waiting` firewall becomes `succeeded`.
    pub settles_at: Option<DateTime<Utc>>,
}

/// The whole state, saved as versioned JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub next_droplet_id: u64,
    pub next_action_id: u64,
    pub next_image_id: u64,
    pub next_key_id: u64,
    pub droplets: BTreeMap<u64, Droplet>,
    pub actions: BTreeMap<u64, Action>,
    pub snapshots: BTreeMap<u64, Snapshot>,
    pub ssh_keys: BTreeMap<u64, SshKey>,
    pub tags: BTreeSet<String>,
    pub firewalls: Vec<Firewall>,
}

impl Default for State {
    fn default() -> Self {
        State {
            version: STATE_VERSION,
            next_droplet_id: 500_000_001,
            next_action_id: 2_000_000_001,
            next_image_id: 170_000_001,
            next_key_id: 41_000_001,
            droplets: BTreeMap::new(),
            actions: BTreeMap::new(),
            snapshots: BTreeMap::new(),
            ssh_keys: BTreeMap::new(),
            tags: BTreeSet::new(),
            firewalls: Vec::new(),
        }
    }
}

impl State {
    pub fn pending_action(&self, droplet_id: u64) -> Option<&Action> {
        self.actions
            .values()
            .rev()
            .find(|a| a.droplet_id == droplet_id && a.status == ActionStatus::InProgress)
    }

    /// Lowest free address index (>= 2) among live droplets, skipping .0 and .255 hosts.
    pub fn free_addr(&self) -> u32 {
        let used: BTreeSet<u32> = self.droplets.values().map(|d| d.addr).collect();
        (2u32..)
            .find(|n| !used.contains(n) && n & 0xff != 0 && n & 0xff != 0xff)
            .unwrap_or(2)
    }
}

/// The loopback address for an address index: 127.(n>>16).(n>>8).n.
pub fn addr_ip(n: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, (n >> 16) as u8, (n >> 8) as u8, n as u8)
}

/// The simulated private (VPC) address for an address index.
pub fn private_ip(n: u32) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(10, 10, (n >> 8) as u8, n as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn droplet(id: u64, addr: u32) -> Droplet {
        Droplet {
            id,
            name: format!("d{id}"),
            size_slug: "s-1vcpu-1gb".into(),
            region: "nyc3".into(),
            image: Value::Null,
            status: DropletStatus::Active,
            created_at: Utc::now(),
            tags: vec![],
            snapshot_ids: vec![],
            user_data: None,
            ssh_keys: vec![],
            addr,
            ipv6: false,
            monitoring: false,
            backups: false,
            vpc_uuid: String::new(),
        }
    }

    #[test]
    fn addresses_are_reused_and_skip_network_and_broadcast_hosts() {
        let mut s = State::default();
        assert_eq!(s.free_addr(), 2);
        for n in 2..255 {
            s.droplets.insert(u64::from(n), droplet(u64::from(n), n));
        }
        // 255 (.255) and 256 (127.0.1.0) are skipped.
        assert_eq!(s.free_addr(), 257);
        assert_eq!(addr_ip(257).to_string(), "127.0.1.1");
        s.droplets.remove(&7);
        assert_eq!(s.free_addr(), 7);
    }

    #[test]
    fn state_round_trips_through_json_with_its_version() {
        let mut s = State::default();
        s.droplets.insert(1, droplet(1, 2));
        let text = serde_json::to_string(&s).unwrap();
        let back: State = serde_json::from_str(&text).unwrap();
        assert_eq!(back.version, STATE_VERSION);
        assert_eq!(back.droplets[&1].name, "d1");
    }
}
