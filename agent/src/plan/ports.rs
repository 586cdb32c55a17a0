//! Host ports of web services: hash-based, deterministic, collision-free on
//! every droplet.
//!
//! Rule: the `i`-th web service of a project (in `deployment_config.json`
//! order, counting web services only) uses the block
//! `base = 8000 + 1000 * (i mod 57)` (so blocks span 8000..=64999, always in
//! 1024..65535). Its preferred port is
//! [`hash_based_port`]`(project, env, base, 1000)`:
//! `base + sha256("<project>-<env>") mod 1000`, as in the reference (so
//! `hostomatic-prod` gets e.g. 8001 for its first and 9001 for its second web
//! service). If that port is taken on any droplet the service runs on, the
//! planner probes linearly (`base + (offset + k) mod 1000`, k = 1, 2, ...),
//! then the following blocks in order, and takes the first port free on
//! all of the service's droplets. Services that already have a port in the
//! current topology keep it (reserved first, in service-name order), and new
//! services are allocated afterwards, in service-name order: adding a project
//! never moves an existing port.

use std::collections::{HashMap, HashSet};

use super::hash::sha256_u64;

/// First port of the first web-service block.
pub const WEB_BASE_PORT: u16 = 8000;
/// Width of one block (the reference's `port_range`).
pub const PORT_RANGE: u16 = 1000;
/// Number of blocks: 8000 + 57 * 1000 - 1 = 64999 < 65535.
pub const PORT_BLOCKS: u16 = 57;

/// The reference's `get_hash_based_port`: `base_port + sha256("<project>-<environment>") mod port_range`.
pub fn hash_based_port(project: &str, environment: &str, base_port: u16, port_range: u16) -> u16 {
    let offset = sha256_u64(&format!("{project}-{environment}")) % u64::from(port_range.max(1));
    base_port + offset as u16
}

/// Block index (0-based) of the `web_index`-th web service of a project.
pub fn block_of(web_index: usize) -> u16 {
    (web_index % usize::from(PORT_BLOCKS)) as u16
}

/// First port of block `block`.
pub fn block_base(block: u16) -> u16 {
    WEB_BASE_PORT + PORT_RANGE * (block % PORT_BLOCKS)
}

/// Ports in use per droplet while a topology is being planned.
#[derive(Debug, Default)]
pub struct PortAllocator {
    taken: HashMap<String, HashSet<u16>>,
}

impl PortAllocator {
    /// Whether `port` is a valid host port free on every one of `droplets`.
    pub fn is_free(&self, port: u16, droplets: &[String]) -> bool {
        port >= 1024
            && droplets
                .iter()
                .all(|d| self.taken.get(d).is_none_or(|ports| !ports.contains(&port)))
    }

    /// Marks `port` as used on every one of `droplets`.
    pub fn reserve(&mut self, port: u16, droplets: &[String]) {
        for d in droplets {
            match self.taken.get_mut(d) {
                Some(ports) => {
                    ports.insert(port);
                }
                None => {
                    self.taken.insert(d.clone(), HashSet::from([port]));
                }
            }
        }
    }

    /// Allocates the first port free on all `droplets`, starting at the
    /// hash-based port of `project-env` in `block` and probing linearly
    /// (then the next blocks). `None` only if all 57,000 ports are taken.
    pub fn allocate(
        &mut self,
        project: &str,
        env: &str,
        block: u16,
        droplets: &[String],
    ) -> Option<u16> {
        let preferred = hash_based_port(project, env, block_base(block), PORT_RANGE);
        let offset = preferred - block_base(block);
        for b in 0..PORT_BLOCKS {
            let base = block_base((block + b) % PORT_BLOCKS);
            for k in 0..PORT_RANGE {
                let port = base + (offset + k) % PORT_RANGE;
                if self.is_free(port, droplets) {
                    self.reserve(port, droplets);
                    return Some(port);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hash_based_port_is_deterministic_and_in_range() {
        let p = hash_based_port("hostomatic", "prod", 8000, 1000);
        assert_eq!(p, hash_based_port("hostomatic", "prod", 8000, 1000));
        assert!((8000..9000).contains(&p));
        // Same project-env offset in the next block, like the reference's 8001 / 9001.
        assert_eq!(hash_based_port("hostomatic", "prod", 9000, 1000), p + 1000);
    }

    #[test]
    fn last_block_stays_below_65535() {
        assert_eq!(block_base(block_of(56)), 64000);
        assert_eq!(block_of(57), 0);
        assert!(u32::from(block_base(56)) + u32::from(PORT_RANGE) - 1 <= 65535);
    }

    #[test]
    fn collisions_probe_linearly_and_deterministically() {
        let on = hosts(&["a-web1"]);
        let mut alloc = PortAllocator::default();
        let first = alloc.allocate("a", "prod", 0, &on).unwrap();
        assert_eq!(first, hash_based_port("a", "prod", 8000, 1000));
        // Same project-env on the same droplet again: next port (wrapping in the block).
        let second = alloc.allocate("a", "prod", 0, &on).unwrap();
        let expected = 8000 + (first - 8000 + 1) % 1000;
        assert_eq!(second, expected);
        // A different droplet does not see the first droplet's ports.
        let mut other = PortAllocator::default();
        other.reserve(first, &on);
        assert_eq!(
            other.allocate("a", "prod", 0, &hosts(&["b-web1"])),
            Some(first)
        );
    }

    #[test]
    fn full_block_spills_into_next_block() {
        let on = hosts(&["x"]);
        let mut alloc = PortAllocator::default();
        for p in 8000..9000 {
            alloc.reserve(p, &on);
        }
        let port = alloc.allocate("a", "prod", 0, &on).unwrap();
        assert!((9000..10000).contains(&port), "{port}");
        assert!(!alloc.is_free(port, &on));
        assert!(
            !alloc.is_free(80, &hosts(&["y"])),
            "privileged ports are never free"
        );
    }
}
