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

impl Topology {
    /// Rebuilds a topology from the runtime sections of `infrastructure.json`
    /// (the reference format). Service keys are `"<project>-<env>"`; the
    /// project is recognised from `projects` (the spec's project names) or,
    /// for a project no longer in the spec, from its droplets' `project`.
    pub fn from_runtime(
        droplets: &indexmap::IndexMap<String, crate::spec::RuntimeDroplet>,
        services: &indexmap::IndexMap<
            String,
            indexmap::IndexMap<String, crate::spec::RuntimeService>,
        >,
        projects: &[&str],
    ) -> Topology {
        let mut topology = Topology::default();
        for (name, d) in droplets {
            let state = DropletState {
                role: d.role,
                project: d.project.clone(),
                size: d.size.clone(),
                region: d.region.clone(),
                ip: d.ip.clone(),
                monitors: d.monitors.clone(),
                voter: d.voter,
            };
            topology.droplets.insert(name.clone(), state);
        }
        for (key, group) in services {
            for (service, s) in group {
                let (project, environment) =
                    split_project_env(key, projects, &s.assigned_droplets, droplets);
                let state = ServiceState {
                    project: project.to_string(),
                    environment: environment.to_string(),
                    service: service.clone(),
                    kind: s.kind,
                    port: s.port,
                    droplets: s.assigned_droplets.clone(),
                };
                let name = crate::spec::service_name(&project, &environment, service);
                topology.services.insert(name, state);
            }
        }
        topology
    }
}

/// Splits `"<project>-<env>"`, preferring the longest known project name.
fn split_project_env(
    key: &str,
    projects: &[&str],
    assigned: &[String],
    droplets: &indexmap::IndexMap<String, crate::spec::RuntimeDroplet>,
) -> (String, String) {
    let from_droplet = assigned
        .iter()
        .filter_map(|d| droplets.get(d).and_then(|d| d.project.as_deref()));
    let mut candidates: Vec<&str> = projects.iter().copied().chain(from_droplet).collect();
    candidates.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in candidates {
        if let Some(env) = key.strip_prefix(p).and_then(|rest| rest.strip_prefix('-'))
            && !env.is_empty()
        {
            return (p.to_string(), env.to_string());
        }
    }
    match key.rsplit_once('-') {
        Some((p, e)) => (p.to_string(), e.to_string()),
        None => (key.to_string(), String::new()),
    }
}
