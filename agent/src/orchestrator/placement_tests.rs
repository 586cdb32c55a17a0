//! Unit tests of the recovered droplet's placement plan.

use std::collections::BTreeMap;

use super::placement::{Action, Planned, plan_droplet};
use crate::deploy::pipeline::LABEL_DROPLET;
use crate::runtime::{ContainerInfo, LABEL_ENV, LABEL_PROJECT, LABEL_SERVICE, LABEL_TAG};
use crate::spec::ServiceKind;
use crate::state::ClusterState;
use crate::topology::ServiceState;

const V1: &str = "v1.0.0-uat-20261125-1200";
const V2: &str = "v1.1.0-uat-20261125-1300";

fn state() -> ClusterState {
    let mut state = ClusterState::default();
    for (env, service, kind, droplets) in [
        (
            "uat",
            "web",
            ServiceKind::Web,
            vec!["shop-web1", "shop-web2"],
        ),
        ("uat", "worker", ServiceKind::Worker, vec!["shop-web2"]),
        (
            "prod",
            "web",
            ServiceKind::Web,
            vec!["shop-web1", "shop-web2"],
        ),
    ] {
        state.topology.services.insert(
            format!("shop-{env}-{service}"),
            ServiceState {
                project: "shop".into(),
                environment: env.into(),
                service: service.into(),
                kind,
                port: Some(8100),
                droplets: droplets.into_iter().map(String::from).collect(),
            },
        );
    }
    state.live_releases.insert("shop/uat".into(), V2.into());
    state
}

fn container(env: &str, service: &str, droplet: &str, tag: &str, running: bool) -> ContainerInfo {
    ContainerInfo {
        id: format!("{env}{service}{droplet}{tag}"),
        name: format!("shop-{env}-{service}-{tag}.{droplet}"),
        image: "sha256:x".into(),
        labels: BTreeMap::from([
            (LABEL_PROJECT.into(), "shop".into()),
            (LABEL_ENV.into(), env.into()),
            (LABEL_SERVICE.into(), service.into()),
            (LABEL_TAG.into(), tag.into()),
            (LABEL_DROPLET.into(), droplet.into()),
        ]),
        state: if running { "running" } else { "exited" }.into(),
        running,
        ports: vec![],
    }
}

fn planned(service: &str, action: Action) -> Planned {
    Planned {
        project: "shop".into(),
        env: "uat".into(),
        service: service.into(),
        tag: V2.into(),
        action,
    }
}

#[test]
fn an_empty_droplet_starts_every_live_service_placed_on_it() {
    let s = state();
    // prod has no live release: nothing of it is placed.
    assert_eq!(
        plan_droplet("shop-web2", &s, &[]),
        vec![
            planned("web", Action::Start),
            planned("worker", Action::Start)
        ]
    );
    assert_eq!(
        plan_droplet("shop-web1", &s, &[]),
        vec![planned("web", Action::Start)]
    );
    assert!(plan_droplet("master", &s, &[]).is_empty());
}

#[test]
fn the_live_tag_running_is_kept_and_nothing_needs_work() {
    let s = state();
    let running = [
        container("uat", "web", "shop-web2", V2, true),
        container("uat", "worker", "shop-web2", V2, true),
    ];
    let plan = plan_droplet("shop-web2", &s, &running);
    assert_eq!(
        plan,
        vec![
            planned(
                "web",
                Action::Keep {
                    container: format!("shop-uat-web-{V2}.shop-web2")
                }
            ),
            planned(
                "worker",
                Action::Keep {
                    container: format!("shop-uat-worker-{V2}.shop-web2")
                }
            ),
        ]
    );
    assert!(!plan.iter().any(Planned::needs_work));
}

#[test]
fn another_tag_running_is_replaced_and_stopped_ones_are_ignored() {
    let s = state();
    let running = [
        container("uat", "web", "shop-web2", V1, true),
        // Stopped live-tag container: not serving, so started again.
        container("uat", "worker", "shop-web2", V2, false),
    ];
    assert_eq!(
        plan_droplet("shop-web2", &s, &running),
        vec![
            planned(
                "web",
                Action::Replace {
                    old: format!("shop-uat-web-{V1}.shop-web2"),
                    old_tag: V1.into()
                }
            ),
            planned("worker", Action::Start),
        ]
    );
}

#[test]
fn other_droplets_and_other_services_containers_do_not_count() {
    let s = state();
    let running = [
        // The same service on another droplet (shared engine).
        container("uat", "web", "shop-web2", V2, true),
        // Another environment's container on this droplet.
        container("prod", "web", "shop-web1", V2, true),
    ];
    assert_eq!(
        plan_droplet("shop-web1", &s, &running),
        vec![planned("web", Action::Start)]
    );
}

#[test]
fn the_live_tag_wins_over_a_leftover_of_another_tag() {
    let s = state();
    let running = [
        container("uat", "web", "shop-web1", V1, true),
        container("uat", "web", "shop-web1", V2, true),
    ];
    assert_eq!(
        plan_droplet("shop-web1", &s, &running),
        vec![planned(
            "web",
            Action::Keep {
                container: format!("shop-uat-web-{V2}.shop-web1")
            }
        )]
    );
}
