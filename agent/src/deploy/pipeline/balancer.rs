//! The load balancer as the pipeline drives it ([`LoadBalancer`]: one
//! route per web service, one backend per droplet; implemented by the
//! [`Nginx`] manager) and the host ports a cutover alternates between.

use std::net::SocketAddr;

use async_trait::async_trait;

use crate::deploy::cutover::TrafficSwitch;
use crate::lb::{Nginx, Route};

/// The load balancer as the pipeline drives it: one route per web service,
/// one backend per droplet.
#[async_trait]
pub trait LoadBalancer: Send + Sync {
    /// Adds routes for `upstreams` (project, env, service) that are missing.
    async fn ensure_routes(&self, upstreams: &[(String, String, String)]) -> Result<(), String>;
    /// Makes `addr` the backend of `upstream` on the droplet at `addr.ip()`
    /// (replacing that droplet's previous backend, keeping the others').
    async fn set_backend(&self, upstream: &str, addr: SocketAddr) -> Result<(), String>;
}

#[async_trait]
impl LoadBalancer for Nginx {
    async fn ensure_routes(&self, upstreams: &[(String, String, String)]) -> Result<(), String> {
        let missing = |cfg: &crate::lb::LbConfig| {
            upstreams
                .iter()
                .filter(|(p, e, s)| {
                    !cfg.routes
                        .iter()
                        .any(|r| &r.project == p && &r.env == e && &r.service == s)
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        if self.config().is_some_and(|c| missing(&c).is_empty()) {
            return Ok(());
        }
        self.update(|cfg| {
            for (project, env, service) in missing(cfg) {
                cfg.routes.push(Route {
                    project,
                    env,
                    service,
                    backends: vec![],
                });
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    async fn set_backend(&self, upstream: &str, addr: SocketAddr) -> Result<(), String> {
        self.update(|cfg| {
            let route = cfg
                .routes
                .iter_mut()
                .find(|r| r.upstream() == upstream)
                .ok_or_else(|| format!("no route for upstream {upstream}"))?;
            route.backends.retain(|b| b.ip() != addr.ip());
            route.backends.push(addr);
            route.backends.sort();
            Ok(())
        })
        .await
        .map(|_| ())
    }
}

/// [`TrafficSwitch`] for one droplet's backend of the load balancer.
pub(super) struct DropletSwitch<'a>(pub(super) &'a dyn LoadBalancer);

#[async_trait]
impl TrafficSwitch for DropletSwitch<'_> {
    async fn switch_to(&self, upstream: &str, addr: SocketAddr) -> Result<(), String> {
        self.0.set_backend(upstream, addr).await
    }
}

/// The second host port of a web service: the same offset half a block
/// away, so a cutover can run the new container beside the old one.
pub fn alternate_port(primary: u16) -> u16 {
    use crate::plan::ports::{PORT_RANGE, WEB_BASE_PORT};
    if primary < WEB_BASE_PORT {
        return primary.saturating_add(PORT_RANGE / 2);
    }
    let base = primary - (primary - WEB_BASE_PORT) % PORT_RANGE;
    base + (primary - base + PORT_RANGE / 2) % PORT_RANGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_port_stays_in_its_block_and_round_trips() {
        assert_eq!(alternate_port(8001), 8501);
        assert_eq!(alternate_port(8501), 8001);
        assert_eq!(alternate_port(8999), 8499);
        assert_eq!(alternate_port(64999), 64499);
        for p in [8000u16, 8123, 20500, 64999] {
            let a = alternate_port(p);
            assert_ne!(a, p);
            assert_eq!(alternate_port(a), p);
            assert_eq!((a - 8000) / 1000, (p - 8000) / 1000, "{p} -> {a}");
        }
        assert_eq!(alternate_port(5000), 5500);
    }
}
