//! The balancer's decisions with plain values.

use super::*;
use crate::state::DropletRecord;
use crate::topology::ServiceState;

fn route(service: &str, backends: &[&str]) -> Route {
    Route {
        project: "shop".into(),
        env: "uat".into(),
        service: service.into(),
        backends: backends.iter().map(|b| b.parse().unwrap()).collect(),
    }
}

fn state() -> ClusterState {
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
    state.droplets.insert(
        "shop-web1".into(),
        DropletRecord {
            provider_id: Some(7),
            ip: Some("127.0.0.3".into()),
            generation: 1,
            status: DropletStatus::Active,
            updated_at_ms: 1,
        },
    );
    state
}

#[test]
fn a_leader_starts_only_when_something_is_deployed_or_recorded() {
    let mut s = state();
    assert!(!wanted(&s), "nothing deployed, no balancer recorded");
    s.live_releases
        .insert("shop/uat".into(), "v1.0.0-uat-20261125-1200".into());
    assert!(wanted(&s));
    let mut s = state();
    s.load_balancer = Some("http://127.0.0.1:8080".into());
    assert!(wanted(&s), "a new leader takes over a recorded balancer");
}

#[test]
fn decide_starts_renders_and_stops_with_leadership() {
    use Action::*;
    // (leader, running, wanted, changed) -> action
    let cases = [
        ((true, false, true, true), Start),
        ((true, false, true, false), Start),
        ((true, false, false, true), Idle),
        ((true, true, true, true), Render),
        ((true, true, false, true), Render),
        ((true, true, true, false), Idle),
        ((false, true, true, true), Stop),
        ((false, true, false, false), Stop),
        ((false, false, true, true), Idle),
    ];
    for ((leader, running, wanted, changed), want) in cases {
        assert_eq!(
            decide(leader, running, wanted, changed),
            want,
            "leader={leader} running={running} wanted={wanted} changed={changed}"
        );
    }
}

#[test]
fn the_fingerprint_moves_with_deploys_scales_and_recoveries_only() {
    let base = state();
    let fp = Fingerprint::of(&base);

    let mut deployed = base.clone();
    deployed
        .live_releases
        .insert("shop/uat".into(), "v1.0.0-uat-20261125-1200".into());
    assert_ne!(Fingerprint::of(&deployed), fp, "deploy");

    let mut scaled = base.clone();
    scaled
        .topology
        .services
        .get_mut("shop-uat-web")
        .unwrap()
        .droplets
        .pop();
    assert_ne!(Fingerprint::of(&scaled), fp, "scale");

    let mut recovered = base.clone();
    let r = recovered.droplets.get_mut("shop-web1").unwrap();
    r.ip = Some("127.0.0.9".into());
    r.generation = 2;
    assert_ne!(Fingerprint::of(&recovered), fp, "recovery");

    let mut failed = base.clone();
    failed.droplets.get_mut("shop-web1").unwrap().status = DropletStatus::Failed;
    assert_ne!(Fingerprint::of(&failed), fp, "confirmed failure");

    let mut other = base.clone();
    other.droplets.get_mut("shop-web1").unwrap().updated_at_ms = 99;
    other.secrets.insert("shop/uat".into(), BTreeMap::new());
    assert_eq!(
        Fingerprint::of(&other),
        fp,
        "timestamps and secrets do not change routes"
    );
}

#[test]
fn needs_apply_ignores_order_and_sees_backend_changes() {
    let a = [
        route("web", &["127.0.0.3:8100", "127.0.0.4:8100"]),
        route("api", &["127.0.0.3:8200"]),
    ];
    let same = [
        route("api", &["127.0.0.3:8200"]),
        route("web", &["127.0.0.4:8100", "127.0.0.3:8100"]),
    ];
    assert!(!needs_apply(&a, &same));
    let moved = [
        route("api", &["127.0.0.3:8200"]),
        route("web", &["127.0.0.9:8100", "127.0.0.4:8100"]),
    ];
    assert!(needs_apply(&a, &moved));
    assert!(needs_apply(&a, &a[..1]), "a route gone");
    assert!(needs_apply(&[], &a), "routes to add");
}

#[test]
fn the_url_advertises_an_address_when_listening_on_all() {
    let settings = |listen: &str| BalancerSettings {
        nginx: "/usr/sbin/nginx".into(),
        prefix: "/tmp/lb".into(),
        listen: listen.parse().unwrap(),
        advertise_ip: "10.0.0.5".parse().unwrap(),
    };
    assert_eq!(
        Balancer::new(settings("0.0.0.0:8080")).url(),
        "http://10.0.0.5:8080"
    );
    assert_eq!(
        Balancer::new(settings("127.0.0.7:8080")).url(),
        "http://127.0.0.7:8080"
    );
}
