//! Computing the changes between two topologies.

use std::collections::BTreeSet;

use super::{Action, Change, Detail, DropletFields, Kind, Plan, PlanOptions};
use crate::topology::{DropletState, Topology};

fn fields(d: &DropletState) -> DropletFields {
    DropletFields {
        role: d.role,
        project: d.project.clone(),
        size: d.size.clone(),
        region: d.region.clone(),
    }
}

fn into_fields(d: DropletState) -> DropletFields {
    DropletFields {
        role: d.role,
        project: d.project,
        size: d.size,
        region: d.region,
    }
}

fn same_fields(a: &DropletState, b: &DropletState) -> bool {
    a.role == b.role && a.project == b.project && a.size == b.size && a.region == b.region
}

/// The plan that turns `current` into `target` (consumed: its parts move
/// into the changes instead of being copied).
pub fn diff(current: &Topology, target: Topology, opts: &PlanOptions) -> Plan {
    // Each list below comes out sorted by name; the final stable sort only
    // merges these runs (near-linear).
    let (mut monitors, mut voters) = (Vec::new(), Vec::new());
    member_changes(current, &target, &mut monitors, &mut voters);
    let (mut droplet_deletes, mut service_deletes) = (Vec::new(), Vec::new());
    for (name, have) in &current.droplets {
        if !target.droplets.contains_key(name) {
            droplet_deletes.push(Change {
                action: Action::Delete,
                kind: Kind::Droplet,
                name: name.clone(),
                detail: Detail::Droplet {
                    before: Some(fields(have)),
                    after: None,
                    replace: false,
                },
                blocked: !opts.allow_destroy,
            });
        }
    }
    for (name, have) in &current.services {
        if !target.services.contains_key(name) {
            service_deletes.push(Change {
                action: Action::Delete,
                kind: Kind::Service,
                name: name.clone(),
                detail: Detail::Service {
                    before: Some(have.clone()),
                    after: None,
                    redeploy: false,
                },
                blocked: false,
            });
        }
    }
    let Topology { droplets, services } = target;
    let mut changes =
        Vec::with_capacity(droplets.len() + services.len() + monitors.len() + voters.len());
    for (name, want) in droplets {
        let change = match current.droplets.get(&name) {
            None => Change {
                action: Action::Create,
                kind: Kind::Droplet,
                detail: Detail::Droplet {
                    before: None,
                    after: Some(into_fields(want)),
                    replace: false,
                },
                name,
                blocked: false,
            },
            Some(have) if same_fields(have, &want) && !opts.force => continue,
            Some(have) => {
                let replace = opts.force
                    || have.region != want.region
                    || have.role != want.role
                    || have.project != want.project;
                Change {
                    action: Action::Update,
                    kind: Kind::Droplet,
                    detail: Detail::Droplet {
                        before: Some(fields(have)),
                        after: Some(into_fields(want)),
                        replace,
                    },
                    name,
                    blocked: replace && !opts.allow_destroy,
                }
            }
        };
        changes.push(change);
    }
    changes.append(&mut droplet_deletes);
    for (name, want) in services {
        let (action, before) = match current.services.get(&name) {
            None => (Action::Create, None),
            Some(have) if *have != want || opts.force => (Action::Update, Some(have.clone())),
            Some(_) => continue,
        };
        let detail = Detail::Service {
            before,
            after: Some(want),
            redeploy: opts.force && action == Action::Update,
        };
        changes.push(Change {
            action,
            kind: Kind::Service,
            name,
            detail,
            blocked: false,
        });
    }
    changes.append(&mut service_deletes);
    changes.append(&mut monitors);
    changes.append(&mut voters);
    changes.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Plan { changes }
}

/// Monitor and voter changes for every droplet in either topology.
fn member_changes(
    current: &Topology,
    target: &Topology,
    monitors: &mut Vec<Change>,
    voters: &mut Vec<Change>,
) {
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
            monitors.push(Change {
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
            voters.push(Change {
                action,
                kind: Kind::Voter,
                name: name.clone(),
                detail: Detail::Voter { voter: is },
                blocked: false,
            });
        }
    }
}
