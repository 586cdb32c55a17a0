//! Where services run: web services on every web droplet of their project,
//! each worker on exactly one of them, chosen by rendezvous (highest random
//! weight) hashing of the worker's service name over the project's droplets.
//! Rendezvous hashing is stable: adding or removing a droplet only moves the
//! workers that win or lose on that droplet. A worker already placed on a
//! droplet that still hosts its project stays there.

use super::hash::mix64;

/// The droplet a worker named `service` lands on among `hosts`
/// (`None` when there is no host). Ties are broken by name.
pub fn rendezvous<'a>(service: &str, hosts: &'a [String]) -> Option<&'a String> {
    hosts.iter().max_by(|a, b| {
        let wa = mix64(&[service, a.as_str()]);
        let wb = mix64(&[service, b.as_str()]);
        wa.cmp(&wb).then_with(|| b.cmp(a))
    })
}

/// Droplets a service runs on: all `hosts` for a web service; for a worker,
/// its `current` droplet when that is still a host, else the rendezvous winner.
pub fn place(
    service: &str,
    is_worker: bool,
    hosts: &[String],
    current: Option<&[String]>,
) -> Vec<String> {
    if !is_worker {
        return hosts.to_vec();
    }
    if let Some([only]) = current
        && hosts.contains(only)
    {
        return vec![only.clone()];
    }
    rendezvous(service, hosts).cloned().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: u32) -> Vec<String> {
        (1..=n).map(|i| format!("p-web{i}")).collect()
    }

    #[test]
    fn web_services_run_everywhere() {
        assert_eq!(place("p-prod-api", false, &hosts(3), None), hosts(3));
    }

    #[test]
    fn workers_run_on_one_host_and_keep_it() {
        let placed = place("p-prod-mail", true, &hosts(3), None);
        assert_eq!(placed.len(), 1);
        assert_eq!(
            place("p-prod-mail", true, &hosts(3), None),
            placed,
            "deterministic"
        );
        let kept = place(
            "p-prod-mail",
            true,
            &hosts(3),
            Some(&["p-web3".to_string()]),
        );
        assert_eq!(kept, vec!["p-web3".to_string()]);
        let gone = place(
            "p-prod-mail",
            true,
            &hosts(2),
            Some(&["p-web3".to_string()]),
        );
        assert_eq!(gone.len(), 1);
        assert_ne!(gone[0], "p-web3");
        assert!(place("p-prod-mail", true, &[], None).is_empty());
    }

    #[test]
    fn scaling_up_moves_only_workers_won_by_the_new_host() {
        let workers: Vec<String> = (0..200).map(|i| format!("p-prod-w{i}")).collect();
        let (four, five) = (hosts(4), hosts(5));
        let mut moved = 0;
        for w in &workers {
            let before = rendezvous(w, &four).unwrap();
            let after = rendezvous(w, &five).unwrap();
            if before != after {
                assert_eq!(after, "p-web5", "a worker only moves to the new droplet");
                moved += 1;
            }
        }
        // Expect ~1/5 of the workers to move; certainly not most of them.
        assert!(moved > 10 && moved < 80, "{moved}");
    }
}
