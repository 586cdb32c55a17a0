//! The runtime view of a topology in the reference's `infrastructure.json`
//! format (`droplets` and `projects` sections), for `infractl state export`.

use indexmap::IndexMap;

use crate::spec::{MASTER, RuntimeDroplet, RuntimeService};
use crate::topology::Topology;

/// `droplets`: name -> droplet, master first, then by name.
pub type RuntimeDroplets = IndexMap<String, RuntimeDroplet>;
/// `projects`: `"<project>-<env>"` -> service -> placement, by name.
pub type RuntimeProjects = IndexMap<String, IndexMap<String, RuntimeService>>;

/// The reference-format `droplets` and `projects` sections of `topology`.
pub fn topology_to_runtime(topology: &Topology) -> (RuntimeDroplets, RuntimeProjects) {
    let mut droplets = IndexMap::with_capacity(topology.droplets.len());
    let master_first = topology.droplets.get_key_value(MASTER).into_iter().chain(
        topology
            .droplets
            .iter()
            .filter(|(name, _)| name.as_str() != MASTER),
    );
    for (name, d) in master_first {
        let view = RuntimeDroplet {
            ip: d.ip.clone(),
            size: d.size.clone(),
            region: d.region.clone(),
            role: d.role,
            project: d.project.clone(),
            monitors: d.monitors.clone(),
            voter: d.voter,
        };
        droplets.insert(name.clone(), view);
    }
    let mut ordered: Vec<_> = topology.services.values().collect();
    ordered.sort_by(|a, b| {
        (&a.project, &a.environment, &a.service).cmp(&(&b.project, &b.environment, &b.service))
    });
    let mut projects: RuntimeProjects = IndexMap::new();
    for s in ordered {
        let view = RuntimeService {
            kind: s.kind,
            port: s.port,
            assigned_droplets: s.droplets.clone(),
        };
        projects
            .entry(format!("{}-{}", s.project, s.environment))
            .or_default()
            .insert(s.service.clone(), view);
    }
    (droplets, projects)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::spec::{Role, ServiceKind};
    use crate::topology::{DropletState, ServiceState};

    #[test]
    fn exports_reference_format() {
        let droplet = |role, project: Option<&str>, ip: Option<&str>| DropletState {
            role,
            project: project.map(str::to_string),
            size: "s-1vcpu-1gb".into(),
            region: "lon1".into(),
            ip: ip.map(str::to_string),
            monitors: vec![],
            voter: false,
        };
        let service = |name: &str, kind, port| ServiceState {
            project: "hostomatic".into(),
            environment: "prod".into(),
            service: name.into(),
            kind,
            port,
            droplets: vec!["hostomatic-web1".into()],
        };
        let topology = Topology {
            droplets: BTreeMap::from([
                (
                    "hostomatic-web1".into(),
                    droplet(Role::Web, Some("hostomatic"), None),
                ),
                (
                    "master".into(),
                    droplet(Role::Master, None, Some("192.0.2.10")),
                ),
            ]),
            services: BTreeMap::from([
                (
                    "hostomatic-prod-backend".into(),
                    service("backend", ServiceKind::Web, Some(8001)),
                ),
                (
                    "hostomatic-prod-mail".into(),
                    service("mail", ServiceKind::Worker, None),
                ),
            ]),
        };
        let (droplets, projects) = topology_to_runtime(&topology);
        let json = serde_json::json!({ "droplets": droplets, "projects": projects });
        let expected = serde_json::json!({
            "droplets": {
                "master": {"ip": "192.0.2.10", "size": "s-1vcpu-1gb", "region": "lon1", "role": "master"},
                "hostomatic-web1": {"size": "s-1vcpu-1gb", "region": "lon1", "role": "web", "project": "hostomatic"}
            },
            "projects": {"hostomatic-prod": {
                "backend": {"type": "web", "port": 8001, "assigned_droplets": ["hostomatic-web1"]},
                "mail": {"type": "worker", "assigned_droplets": ["hostomatic-web1"]}
            }}
        });
        assert_eq!(
            json.to_string(),
            expected.to_string(),
            "same content and key order"
        );
    }
}
