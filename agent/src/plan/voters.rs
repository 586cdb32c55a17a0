//! The Raft voter set: up to five voters, always an odd number (1, 3 or 5),
//! the master always one of them, the others spread across projects
//! (round-robin over projects in name order, lowest web index first). All
//! other droplets are learners. Current voters that still exist are kept
//! (up to the target count), so adding a project never churns a full voter
//! set.

use std::collections::{BTreeMap, HashSet};

use crate::spec::MASTER;
use crate::topology::{DropletState, Topology};

/// Largest voter set.
pub const MAX_VOTERS: usize = 5;

/// Number of voters for a cluster of `droplets` droplets.
pub fn voter_count(droplets: usize) -> usize {
    match droplets {
        0 => 0,
        1 | 2 => 1,
        3 | 4 => 3,
        _ => MAX_VOTERS,
    }
}

/// Web index `N` of a droplet named `<project>-web<N>` (0 for others).
fn web_index(name: &str, project: Option<&str>) -> u32 {
    project
        .and_then(|p| name.strip_prefix(p))
        .and_then(|rest| rest.strip_prefix("-web"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Sets `voter` on the chosen droplets of `droplets` and clears it elsewhere.
pub fn assign(droplets: &mut BTreeMap<String, DropletState>, current: &Topology) {
    let target = voter_count(droplets.len());
    // Round-robin order: web index, then project, then name.
    let mut candidates: Vec<(u32, &str, &str)> = droplets
        .iter()
        .filter(|(name, _)| name.as_str() != MASTER)
        .map(|(name, d)| {
            let group = d.project.as_deref().unwrap_or(name.as_str());
            (web_index(name, d.project.as_deref()), group, name.as_str())
        })
        .collect();
    candidates.sort_unstable();

    let mut chosen: Vec<&str> = Vec::with_capacity(target);
    let mut groups: HashSet<&str> = HashSet::new();
    if droplets.contains_key(MASTER) && target > 0 {
        chosen.push(MASTER);
        groups.insert(MASTER);
    }
    let was_voter = |name: &str| current.droplets.get(name).is_some_and(|d| d.voter);
    for &(_, group, name) in &candidates {
        if chosen.len() < target && was_voter(name) {
            chosen.push(name);
            groups.insert(group);
        }
    }
    for spread in [true, false] {
        for &(_, group, name) in &candidates {
            if chosen.len() >= target {
                break;
            }
            if chosen.contains(&name) || (spread && groups.contains(group)) {
                continue;
            }
            chosen.push(name);
            groups.insert(group);
        }
    }
    let chosen: HashSet<String> = chosen.into_iter().map(str::to_string).collect();
    for (name, d) in droplets.iter_mut() {
        d.voter = chosen.contains(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Role;

    fn cluster(projects: &[(&str, u32)]) -> BTreeMap<String, DropletState> {
        let mut out = BTreeMap::new();
        let mut add = |name: String, project: Option<&str>| {
            out.insert(
                name,
                DropletState {
                    role: if project.is_some() {
                        Role::Web
                    } else {
                        Role::Master
                    },
                    project: project.map(str::to_string),
                    size: "s".into(),
                    region: "r".into(),
                    ip: None,
                    monitors: vec![],
                    voter: false,
                },
            );
        };
        add("master".into(), None);
        for (p, n) in projects {
            for i in 1..=*n {
                add(format!("{p}-web{i}"), Some(p));
            }
        }
        out
    }

    fn voters(ds: &BTreeMap<String, DropletState>) -> Vec<&str> {
        ds.iter()
            .filter(|(_, d)| d.voter)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    #[test]
    fn counts_are_odd_and_capped() {
        assert_eq!(
            (0..8).map(voter_count).collect::<Vec<_>>(),
            vec![0, 1, 1, 3, 3, 5, 5, 5]
        );
    }

    #[test]
    fn master_first_then_round_robin_over_projects() {
        let mut ds = cluster(&[("a", 3), ("b", 2), ("c", 1)]);
        assign(&mut ds, &Topology::default());
        assert_eq!(
            voters(&ds),
            vec!["a-web1", "a-web2", "b-web1", "c-web1", "master"]
        );
        let mut small = cluster(&[("a", 1)]);
        assign(&mut small, &Topology::default());
        assert_eq!(voters(&small), vec!["master"]);
    }

    #[test]
    fn full_voter_set_survives_a_new_project() {
        let mut ds = cluster(&[("b", 3), ("c", 3)]);
        assign(&mut ds, &Topology::default());
        let before: Vec<String> = voters(&ds).iter().map(|s| s.to_string()).collect();
        let current = Topology {
            droplets: ds,
            services: BTreeMap::new(),
        };
        let mut grown = cluster(&[("a", 3), ("b", 3), ("c", 3)]);
        assign(&mut grown, &current);
        assert_eq!(voters(&grown), before);
    }
}
