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

/// A planned service, with what its port assignment needs.
struct Entry {
    name: String,
    state: ServiceState,
    /// Port block of a web service (`None` for workers).
    block: Option<u16>,
    /// Port it has in the current topology, if it is a web service there.
    had_port: Option<u16>,
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

    let mut entries: Vec<Entry> = Vec::new();
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
                let block = (!is_worker).then(|| block_of(web_index));
                web_index += usize::from(!is_worker);
                let had_port = was
                    .filter(|w| w.kind == ServiceKind::Web)
                    .and_then(|w| w.port);
                entries.push(Entry {
                    name,
                    state,
                    block,
                    had_port,
                });
            }
        }
    }
    // Sorted by name: ports are assigned in name order, and the map is
    // bulk-built from sorted input.
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    assign_ports(&mut entries);
    let services = entries.into_iter().map(|e| (e.name, e.state)).collect();
    monitors::assign(&mut droplets);
    voters::assign(&mut droplets, current);
    Topology { droplets, services }
}

/// Gives every web service a port: existing ports first (kept when still
/// free on all the service's droplets), then new ones, both in the order of
/// `entries` (name order).
fn assign_ports(entries: &mut [Entry]) {
    let mut alloc = PortAllocator::default();
    let mut pending = Vec::new();
    for (i, e) in entries.iter_mut().enumerate() {
        if e.block.is_none() {
            continue;
        }
        match e
            .had_port
            .filter(|&port| alloc.is_free(port, &e.state.droplets))
        {
            Some(port) => {
                alloc.reserve(port, &e.state.droplets);
                e.state.port = Some(port);
            }
            None => pending.push(i),
        }
    }
    for i in pending {
        let e = &mut entries[i];
        let s = &mut e.state;
        let block = e.block.unwrap_or_default();
        s.port = alloc.allocate(&s.project, &s.environment, block, &s.droplets);
    }
}
