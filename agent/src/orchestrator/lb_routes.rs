//! The load balancer's routes as the cluster runs them (pure): one route
//! per placed web service whose project+environment has a live release,
//! with a backend per droplet where its container runs: the droplet's
//! current address in the state (a recovered droplet's new one) and the
//! container's host port; a droplet whose failure is confirmed (failed or
//! recovering) gets no traffic. The leader's balancer renders them when it
//! starts and on every relevant state change.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::deploy::pipeline::LABEL_DROPLET;
use crate::lb::Route;
use crate::runtime::{ContainerInfo, LABEL_ENV, LABEL_PROJECT, LABEL_SERVICE, LABEL_TAG};
use crate::spec::ServiceKind;
use crate::state::{ClusterState, DropletStatus, release_key};

/// The droplet's address as the state has it, if it may take traffic
/// (`Err` when its failure is confirmed).
fn droplet_ip(state: &ClusterState, name: &str) -> Result<Option<IpAddr>, ()> {
    let record = state.droplets.get(name);
    if record.is_some_and(|r| matches!(r.status, DropletStatus::Failed | DropletStatus::Recovering))
    {
        return Err(());
    }
    Ok(record
        .and_then(|r| r.ip.clone())
        .or_else(|| state.topology.droplets.get(name).and_then(|d| d.ip.clone()))
        .and_then(|ip| ip.parse().ok()))
}

/// Routes for the running `containers` of the state's live releases.
pub fn routes(state: &ClusterState, containers: &[ContainerInfo]) -> Vec<Route> {
    let label = |c: &ContainerInfo, k: &str| c.labels.get(k).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for svc in state.topology.services.values() {
        let live = state
            .live_releases
            .contains_key(&release_key(&svc.project, &svc.environment));
        if svc.kind != ServiceKind::Web || !live {
            continue;
        }
        // A droplet running two containers of the service (a deploy cut
        // short) routes to the live release's.
        let live_tag = state
            .live_releases
            .get(&release_key(&svc.project, &svc.environment));
        let mut by_droplet: BTreeMap<&str, (bool, SocketAddr)> = BTreeMap::new();
        for c in containers.iter().filter(|c| {
            c.running
                && label(c, LABEL_PROJECT) == svc.project
                && label(c, LABEL_ENV) == svc.environment
                && label(c, LABEL_SERVICE) == svc.service
        }) {
            let droplet = label(c, LABEL_DROPLET);
            let Some(d) = svc.droplets.iter().find(|d| **d == droplet) else {
                continue;
            };
            let Ok(known) = droplet_ip(state, d) else {
                continue;
            };
            let addr = c.ports.first().and_then(|(_, ip, port)| {
                known
                    .or_else(|| ip.parse::<IpAddr>().ok())
                    .map(|ip| SocketAddr::new(ip, *port))
            });
            let is_live = live_tag.is_some_and(|t| *t == label(c, LABEL_TAG));
            if let Some(addr) = addr
                && by_droplet
                    .get(d.as_str())
                    .is_none_or(|(live, _)| is_live || !live)
            {
                by_droplet.insert(d.as_str(), (is_live, addr));
            }
        }
        out.push(Route {
            project: svc.project.clone(),
            env: svc.environment.clone(),
            service: svc.service.clone(),
            backends: by_droplet.into_values().map(|(_, a)| a).collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ServiceState;

    fn container(service: &str, droplet: &str, port: u16, running: bool) -> ContainerInfo {
        ContainerInfo {
            id: format!("{service}{droplet}"),
            name: format!("shop-uat-{service}.{droplet}"),
            image: "sha256:x".into(),
            labels: BTreeMap::from([
                (LABEL_PROJECT.into(), "shop".into()),
                (LABEL_ENV.into(), "uat".into()),
                (LABEL_SERVICE.into(), service.into()),
                (LABEL_DROPLET.into(), droplet.into()),
            ]),
            state: if running { "running" } else { "exited" }.into(),
            running,
            ports: vec![(8000, "127.0.0.3".into(), port)],
        }
    }

    #[test]
    fn live_web_services_route_to_their_running_containers() {
        let mut state = ClusterState::default();
        for (service, kind) in [("web", ServiceKind::Web), ("worker", ServiceKind::Worker)] {
            state.topology.services.insert(
                format!("shop-uat-{service}"),
                ServiceState {
                    project: "shop".into(),
                    environment: "uat".into(),
                    service: service.into(),
                    kind,
                    port: Some(8100),
                    droplets: vec!["shop-web1".into(), "shop-web2".into()],
                },
            );
        }
        let running = [
            container("web", "shop-web1", 8100, true),
            container("web", "shop-web1", 8600, false),
            container("web", "shop-web9", 8100, true),
            container("worker", "shop-web1", 8100, true),
        ];
        assert!(routes(&state, &running).is_empty(), "no live release yet");
        state
            .live_releases
            .insert("shop/uat".into(), "v1.0.0-uat-20261125-1200".into());
        let r = routes(&state, &running);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].upstream(), "shop-uat-web");
        assert_eq!(r[0].backends, vec!["127.0.0.3:8100".parse().unwrap()]);
    }

    #[test]
    fn backends_take_the_droplets_current_address_and_skip_failed_droplets() {
        use crate::state::DropletRecord;
        let mut state = ClusterState::default();
        state.topology.services.insert(
            "shop-uat-web".into(),
            ServiceState {
                project: "shop".into(),
                environment: "uat".into(),
                service: "web".into(),
                kind: ServiceKind::Web,
                port: Some(8100),
                droplets: vec!["shop-web1".into(), "shop-web2".into()],
            },
        );
        state
            .live_releases
            .insert("shop/uat".into(), "v1.0.0-uat-20261125-1200".into());
        let record = |ip: &str, generation, status| DropletRecord {
            provider_id: Some(1),
            ip: Some(ip.into()),
            generation,
            status,
            updated_at_ms: 0,
        };
        state.droplets.insert(
            "shop-web1".into(),
            record("127.0.0.9", 2, DropletStatus::Active),
        );
        state.droplets.insert(
            "shop-web2".into(),
            record("127.0.0.4", 1, DropletStatus::Active),
        );
        let running = [
            container("web", "shop-web1", 8100, true),
            container("web", "shop-web2", 8100, true),
        ];
        let backends = |state: &ClusterState| routes(state, &running)[0].backends.clone();
        assert_eq!(
            backends(&state),
            vec![
                "127.0.0.9:8100".parse().unwrap(),
                "127.0.0.4:8100".parse().unwrap()
            ],
            "a recovered droplet's new address"
        );
        for status in [DropletStatus::Failed, DropletStatus::Recovering] {
            state.droplets.get_mut("shop-web1").unwrap().status = status;
            assert_eq!(
                backends(&state),
                vec!["127.0.0.4:8100".parse().unwrap()],
                "{status:?}"
            );
        }
    }

    #[test]
    fn a_droplet_with_two_containers_routes_to_the_live_release() {
        let mut state = ClusterState::default();
        state.topology.services.insert(
            "shop-uat-web".into(),
            ServiceState {
                project: "shop".into(),
                environment: "uat".into(),
                service: "web".into(),
                kind: ServiceKind::Web,
                port: Some(8100),
                droplets: vec!["shop-web1".into()],
            },
        );
        let tag = "v1.0.0-uat-20261125-1200";
        state.live_releases.insert("shop/uat".into(), tag.into());
        let mut live = container("web", "shop-web1", 8100, true);
        live.labels.insert(LABEL_TAG.into(), tag.into());
        let mut stray = container("web", "shop-web1", 8600, true);
        stray
            .labels
            .insert(LABEL_TAG.into(), "v1.1.0-uat-20261125-1300".into());
        let want = vec!["127.0.0.3:8100".parse().unwrap()];
        for running in [[live.clone(), stray.clone()], [stray, live]] {
            assert_eq!(routes(&state, &running)[0].backends, want);
        }
    }
}
