//! The placed topology: which droplets exist and which services run where,
//! with their host ports, monitors and Raft voters. It is what the planner
//! produces from a spec, what the cluster state machine stores, and what
//! `infractl state export` prints in the reference's runtime format.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::spec::{Role, ServiceKind};

/// Version of the serialized topology format.
pub const TOPOLOGY_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Topology {
    /// Droplets by logical name (`master`, `<project>-web<N>`).
    pub droplets: BTreeMap<String, DropletState>,
    /// Services by name (`<project>-<env>-<service>`).
    pub services: BTreeMap<String, ServiceState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropletState {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub size: String,
    pub region: String,
    /// Public IPv4 address once the droplet exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Droplets that probe this one (its monitors).
    #[serde(default)]
    pub monitors: Vec<String>,
    /// Whether this droplet's agent is a Raft voter (else a learner).
    #[serde(default)]
    pub voter: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    pub project: String,
    pub environment: String,
    pub service: String,
    pub kind: ServiceKind,
    /// Host port on each assigned droplet (web services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Droplets running the service, in placement order.
    pub droplets: Vec<String>,
}
