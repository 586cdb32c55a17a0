//! Computing the changes between two topologies.

use std::collections::BTreeSet;

use super::{Action, Change, Detail, DropletFields, Kind, Plan, PlanOptions};
use crate::topology::{DropletState, ServiceState, Topology};

fn fields(d: &DropletState) -> DropletFields {
    DropletFields {
        role: d.role,
        project: d.project.clone(),
        size: d.size.clone(),
        region: d.region.clone(),
    }
}

/// The plan that turns `current` into `target`.
pub fn diff(current: &Topology, target: &Topology, opts: &PlanOptions) -> Plan {
    let mut changes = Vec::new();
    droplet_changes(current, target, opts, &mut changes);
    service_changes(current, target, opts, &mut changes);
    member_changes(current, target, &mut changes);
    changes.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Plan { changes }
}

fn droplet_changes(
    current: &Topology,
    target: &Topology,
    opts: &PlanOptions,
    out: &mut Vec<Change>,
) {
    for (name, want) in &target.droplets {
        let after = Some(fields(want));
        let Some(have) = current.droplets.get(name) else {
            let detail = Detail::Droplet {
                before: None,
                after,
                replace: false,
            };
            out.push(Change {
                action: Action::Create,
                kind: Kind::Droplet,
                name: name.clone(),
                detail,
                blocked: false,
            });
            continue;
        };
        let before = Some(fields(have));
        if before == after && !opts.force {
            continue;
        }
        let replace = opts.force
            || have.region != want.region
            || have.role != want.role
            || have.project != want.project;
        let detail = Detail::Droplet {
            before,
            after,
            replace,
        };
        let blocked = replace && !opts.allow_destroy;
        out.push(Change {
            action: Action::Update,
            kind: Kind::Droplet,
            name: name.clone(),
            detail,
            blocked,
        });
    }
    for (name, have) in &current.droplets {
        if !target.droplets.contains_key(name) {
            let detail = Detail::Droplet {
                before: Some(fields(have)),
                after: None,
                replace: false,
            };
            let blocked = !opts.allow_destroy;
            out.push(Change {
                action: Action::Delete,
                kind: Kind::Droplet,
                name: name.clone(),
                detail,
                blocked,
            });
        }
    }
}

fn service_changes(
    current: &Topology,
    target: &Topology,
    opts: &PlanOptions,
    out: &mut Vec<Change>,
) {
    let change = |action,
                  name: &String,
                  before: Option<&ServiceState>,
                  after: Option<&ServiceState>| Change {
        action,
        kind: Kind::Service,
        name: name.clone(),
        detail: Detail::Service {
            before: before.cloned(),
            after: after.cloned(),
            redeploy: opts.force,
        },
        blocked: false,
    };
    for (name, want) in &target.services {
        match current.services.get(name) {
            None => out.push(change(Action::Create, name, None, Some(want))),
            Some(have) if have != want || opts.force => {
                out.push(change(Action::Update, name, Some(have), Some(want)))
            }
            Some(_) => {}
        }
    }
    for (name, have) in &current.services {
        if !target.services.contains_key(name) {
            out.push(Change {
                detail: Detail::Service {
                    before: Some(have.clone()),
                    after: None,
                    redeploy: false,
                },
                ..change(Action::Delete, name, None, None)
            });
        }
    }
}

/// Monitor and voter changes for every droplet in either topology.
fn member_changes(current: &Topology, target: &Topology, out: &mut Vec<Change>) {
    let names: BTreeSet<&String> = current
        .droplets
        .keys()
        .chain(target.droplets.keys())
        .collect();
    let empty: Vec<String> = Vec::new();
    for name in names {
        let have = current.droplets.get(name);
        let want = target.droplets.get(name);
        let before = have.map_or(&empty, |d| &d.monitors);
        let after = want.map_or(&empty, |d| &d.monitors);
        if before != after {
            let action = match (before.is_empty(), after.is_empty()) {
                (true, _) => Action::Create,
                (false, true) => Action::Delete,
                (false, false) => Action::Update,
            };
            let detail = Detail::Monitors {
                before: before.clone(),
                after: after.clone(),
            };
            out.push(Change {
                action,
                kind: Kind::Monitor,
                name: name.clone(),
                detail,
                blocked: false,
            });
        }
        let was = have.is_some_and(|d| d.voter);
        let is = want.is_some_and(|d| d.voter);
        if was != is {
            let action = if is { Action::Create } else { Action::Delete };
            let detail = Detail::Voter { voter: is };
            out.push(Change {
                action,
                kind: Kind::Voter,
                name: name.clone(),
                detail,
                blocked: false,
            });
        }
    }
}
