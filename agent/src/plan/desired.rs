//! The target topology of a spec: which droplets should exist, where every
//! service runs, on which host port, who monitors whom and who votes. It
//! keeps what the current topology already decided (IPs, ports, worker
//! placements, voters) whenever that is still valid.

use std::collections::BTreeMap;

use super::placement::place;
use super::ports::{PortAllocator, block_of};
use super::{monitors, voters};
use crate::spec::{MASTER, Role, ServiceKind, Spec, service_name, web_droplet_name};
use crate::topology::{DropletState, ServiceState, Topology};

/// Region used only if neither the spec nor the current topology names the master's region.
pub const FALLBACK_REGION: &str = "nyc3";

/// A web service waiting for a port: its name and port block.
struct PortRequest {
    name: String,
    block: u16,
}

/// The topology `spec` asks for, given what `current` already runs.
pub fn desired(spec: &Spec, current: &Topology) -> Topology {
    let infra = &spec.infrastructure;
    let current_ip = |name: &str| current.droplets.get(name).and_then(|d| d.ip.clone());
    let mut droplets = BTreeMap::new();
    for (name, d) in &infra.droplets {
        let state = DropletState {
            role: d.role,
            project: None,
            size: d.size.clone(),
            region: d.region.clone(),
            ip: current_ip(name),
            monitors: Vec::new(),
            voter: false,
        };
        droplets.insert(name.clone(), state);
    }
    let master_region = infra
        .droplets
        .get(MASTER)
        .map(|d| d.region.clone())
        .or_else(|| current.droplets.get(MASTER).map(|d| d.region.clone()))
        .unwrap_or_else(|| FALLBACK_REGION.to_string());

    let mut services = BTreeMap::new();
    let mut requests: Vec<PortRequest> = Vec::new();
    for (project, p) in &infra.projects {
        let mut hosts: Vec<String> = Vec::with_capacity(p.web_droplets as usize);
        for n in 1..=p.web_droplets {
            let name = web_droplet_name(project, n);
            let state = DropletState {
                role: Role::Web,
                project: Some(project.clone()),
                size: p.web_droplet_spec.clone(),
                region: p.region.clone().unwrap_or_else(|| master_region.clone()),
                ip: current_ip(&name),
                monitors: Vec::new(),
                voter: false,
            };
            droplets.insert(name.clone(), state);
            hosts.push(name);
        }
        if hosts.is_empty() && droplets.contains_key(MASTER) {
            // A project without web droplets runs on the master.
            hosts.push(MASTER.to_string());
        }
        let Some(deployment) = spec.deployment.projects.get(project) else {
            continue;
        };
        for env in &p.environments {
            let mut web_index = 0usize;
            for (service, s) in &deployment.services {
                let name = service_name(project, env, service);
                let was = current.services.get(&name);
                let is_worker = s.kind == ServiceKind::Worker;
                let placed_on = was
                    .filter(|w| w.kind == s.kind)
                    .map(|w| w.droplets.as_slice());
                let state = ServiceState {
                    project: project.clone(),
                    environment: env.clone(),
                    service: service.clone(),
                    kind: s.kind,
                    port: None,
                    droplets: place(&name, is_worker, &hosts, placed_on),
                };
                if !is_worker {
                    requests.push(PortRequest {
                        name: name.clone(),
                        block: block_of(web_index),
                    });
                    web_index += 1;
                }
                services.insert(name, state);
            }
        }
    }
    assign_ports(&mut services, requests, current);
    monitors::assign(&mut droplets);
    voters::assign(&mut droplets, current);
    Topology { droplets, services }
}

/// Gives every requested web service a port: existing ports first (kept when
/// still free on all the service's droplets), then new ones, both in name order.
fn assign_ports(
    services: &mut BTreeMap<String, ServiceState>,
    mut requests: Vec<PortRequest>,
    current: &Topology,
) {
    requests.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    let mut alloc = PortAllocator::default();
    let mut pending = Vec::new();
    for req in requests {
        let Some(s) = services.get_mut(&req.name) else {
            continue;
        };
        let kept = current
            .services
            .get(&req.name)
            .filter(|c| c.kind == ServiceKind::Web)
            .and_then(|c| c.port)
            .filter(|&port| alloc.is_free(port, &s.droplets));
        match kept {
            Some(port) => {
                alloc.reserve(port, &s.droplets);
                s.port = Some(port);
            }
            None => pending.push(req),
        }
    }
    for req in pending {
        let Some(s) = services.get_mut(&req.name) else {
            continue;
        };
        s.port = alloc.allocate(&s.project, &s.environment, req.block, &s.droplets);
    }
}
