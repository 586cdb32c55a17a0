//! Applying a plan to a topology value: what the topology looks like once
//! every unblocked change has been carried out.

use super::{Action, Detail, DropletFields, Plan};
use crate::topology::{DropletState, Topology};

impl Plan {
    /// `current` with every unblocked change applied. New and replaced
    /// droplets have no IP yet (the provider assigns it); blocked changes
    /// leave their droplet as it is.
    pub fn apply(&self, current: &Topology) -> Topology {
        let mut out = current.clone();
        for change in self.changes.iter().filter(|c| !c.blocked) {
            let name = &change.name;
            match &change.detail {
                Detail::Droplet {
                    after: Some(fields),
                    replace,
                    ..
                } => {
                    let old = out.droplets.remove(name);
                    let keep_ip = change.action == Action::Update && !replace;
                    out.droplets
                        .insert(name.clone(), droplet_from(fields, old, keep_ip));
                }
                Detail::Droplet { after: None, .. } => {
                    out.droplets.remove(name);
                }
                Detail::Service { after: Some(s), .. } => {
                    out.services.insert(name.clone(), s.clone());
                }
                Detail::Service { after: None, .. } => {
                    out.services.remove(name);
                }
                Detail::Monitors { after, .. } => {
                    if let Some(d) = out.droplets.get_mut(name) {
                        d.monitors = after.clone();
                    }
                }
                Detail::Voter { voter } => {
                    if let Some(d) = out.droplets.get_mut(name) {
                        d.voter = *voter;
                    }
                }
            }
        }
        out
    }
}

fn droplet_from(fields: &DropletFields, old: Option<DropletState>, keep_ip: bool) -> DropletState {
    let (ip, monitors, voter) = match old {
        Some(o) => (o.ip.filter(|_| keep_ip), o.monitors, o.voter),
        None => (None, Vec::new(), false),
    };
    DropletState {
        role: fields.role,
        project: fields.project.clone(),
        size: fields.size.clone(),
        region: fields.region.clone(),
        ip,
        monitors,
        voter,
    }
}
