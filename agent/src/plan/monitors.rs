//! Monitor assignment: which droplets probe which.
//!
//! Droplets are placed on a ring ordered by a stable hash of their name.
//! Each droplet is watched by the next droplets on the ring, preferring (in
//! a short window) droplets of another project or the master, and never
//! letting a droplet watch more than [`MAX_WATCHED`] others unless that is
//! the only way to give every droplet two monitors. With N ≥ 3 every droplet
//! gets exactly two monitors, never itself; with N = 2 they watch each other;
//! a lone droplet has none. The ring makes this linear in N and stable:
//! adding a droplet only changes the monitors of its ring neighbours.

use std::collections::BTreeMap;

use super::hash::mix64;
use crate::topology::DropletState;

/// Monitors per droplet when there are at least 3 droplets.
pub const MONITORS_PER_DROPLET: usize = 2;
/// Most droplets one droplet watches (balanced load: ⌈2N/N⌉ + 1).
pub const MAX_WATCHED: u32 = 3;
/// How far along the ring a droplet looks for a monitor of another project.
const PREFERENCE_WINDOW: usize = 8;

/// Fills `monitors` of every droplet (sorted names of the droplets probing it).
pub fn assign(droplets: &mut BTreeMap<String, DropletState>) {
    let mut ring: Vec<(u64, &str, &str)> = droplets
        .iter()
        .map(|(name, d)| {
            let group = d.project.as_deref().unwrap_or(name.as_str());
            (mix64(&[name.as_str()]), name.as_str(), group)
        })
        .collect();
    ring.sort_unstable();
    let n = ring.len();
    let wanted = MONITORS_PER_DROPLET.min(n.saturating_sub(1));
    let mut load = vec![0u32; n];
    let mut result: Vec<(String, Vec<String>)> = Vec::with_capacity(n);
    for i in 0..n {
        let mut chosen: Vec<usize> = Vec::with_capacity(wanted);
        let pick = |limit: usize, ok: &dyn Fn(usize) -> bool, chosen: &mut Vec<usize>| {
            for step in 1..limit.min(n) {
                if chosen.len() == wanted {
                    return;
                }
                let j = (i + step) % n;
                if !chosen.contains(&j) && ok(j) {
                    chosen.push(j);
                }
            }
        };
        let under_cap = |j: usize| load[j] < MAX_WATCHED;
        let other_group = |j: usize| ring[j].2 != ring[i].2 && under_cap(j);
        pick(PREFERENCE_WINDOW + 1, &other_group, &mut chosen);
        pick(n, &under_cap, &mut chosen);
        pick(n, &|_| true, &mut chosen);
        for &j in &chosen {
            load[j] += 1;
        }
        let mut names: Vec<String> = chosen.iter().map(|&j| ring[j].1.to_string()).collect();
        names.sort_unstable();
        result.push((ring[i].1.to_string(), names));
    }
    for (name, monitors) in result {
        if let Some(d) = droplets.get_mut(&name) {
            d.monitors = monitors;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Role;

    fn droplet(project: Option<&str>) -> DropletState {
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
        }
    }

    fn cluster(projects: &[(&str, u32)]) -> BTreeMap<String, DropletState> {
        let mut out = BTreeMap::from([("master".to_string(), droplet(None))]);
        for (p, n) in projects {
            for i in 1..=*n {
                out.insert(format!("{p}-web{i}"), droplet(Some(p)));
            }
        }
        assign(&mut out);
        out
    }

    fn watched_counts(ds: &BTreeMap<String, DropletState>) -> BTreeMap<String, u32> {
        let mut counts: BTreeMap<String, u32> = ds.keys().map(|k| (k.clone(), 0)).collect();
        for d in ds.values() {
            for m in &d.monitors {
                *counts.get_mut(m).unwrap() += 1;
            }
        }
        counts
    }

    #[test]
    fn one_and_two_droplets() {
        assert!(cluster(&[])["master"].monitors.is_empty());
        let two = cluster(&[("a", 1)]);
        assert_eq!(two["master"].monitors, vec!["a-web1".to_string()]);
        assert_eq!(two["a-web1"].monitors, vec!["master".to_string()]);
    }

    #[test]
    fn every_droplet_has_two_monitors_balanced_and_not_itself() {
        for shape in [
            vec![("a", 2)],
            vec![("a", 5)],
            vec![("a", 3), ("b", 1)],
            vec![("a", 2), ("b", 3), ("c", 5)],
        ] {
            let ds = cluster(&shape);
            for (name, d) in &ds {
                assert_eq!(d.monitors.len(), 2, "{name}: {:?}", d.monitors);
                assert!(!d.monitors.contains(name));
            }
            assert!(
                watched_counts(&ds).values().all(|&c| c <= MAX_WATCHED),
                "{shape:?}"
            );
        }
    }

    #[test]
    fn prefers_other_projects() {
        let projects: Vec<(String, u32)> = (0..50).map(|i| (format!("p{i}"), 3)).collect();
        let shape: Vec<(&str, u32)> = projects.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        let ds = cluster(&shape);
        for (name, d) in &ds {
            for m in &d.monitors {
                assert_ne!(
                    ds[m].project, d.project,
                    "{name} watched by {m} of its own project"
                );
            }
        }
    }

    #[test]
    fn adding_a_project_changes_few_assignments() {
        let before = cluster(&[("a", 3), ("b", 3), ("c", 3), ("d", 3), ("e", 3)]);
        let after = cluster(&[("a", 3), ("b", 3), ("c", 3), ("d", 3), ("e", 3), ("f", 1)]);
        let changed = before
            .iter()
            .filter(|(k, d)| after[*k].monitors != d.monitors)
            .count();
        assert!(changed <= 4, "{changed} droplets changed monitors");
    }
}
