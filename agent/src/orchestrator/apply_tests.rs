//! `apply_spec` against a real infra-sim over HTTP, with the state machine
//! applied in memory and joins marked by the test (no agent processes).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_sim::{Sim, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::membership::GossipKey;
use crate::plan::PlanOptions;
use crate::provider::{DoClient, DoConfig, PollPolicy, Secret};
use crate::recovery::MemoryJoins;
use crate::spec::Spec;
use crate::state::DropletStatus;

struct SimGuard {
    sim: SimHandle,
    shutdown: CancellationToken,
}

impl Drop for SimGuard {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_sim() -> SimGuard {
    let shutdown = CancellationToken::new();
    let sim = Sim::start(SimConfig::default(), shutdown.clone())
        .await
        .expect("sim starts");
    SimGuard { sim, shutdown }
}

fn client(sim: &SimHandle) -> DoClient {
    let mut cfg = DoConfig::new(sim.base_url(), Secret::new("test-token"));
    cfg.poll = PollPolicy {
        min: Duration::from_millis(5),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
    };
    DoClient::new(cfg).expect("client")
}

fn example_spec(dir: &std::path::Path) -> Spec {
    crate::spec::write_examples(&dir.join("config"), &dir.join("templates"), false).unwrap();
    crate::spec::load_dir(&dir.join("config")).unwrap().spec()
}

fn identity() -> ClusterIdentity {
    crate::tls::install_crypto_provider();
    ClusterIdentity {
        cluster_id: "test".into(),
        ca: Arc::new(crate::tls::Ca::create("test").unwrap()),
        gossip_key: GossipKey::generate(),
        grpc_port: 17400,
        gossip_port: 17401,
        base_image: "ubuntu-24-04-x64".into(),
        ssh_key_ids: vec![],
        api_token: None,
        notify: None,
    }
}

fn all_joined(spec: &Spec) -> MemoryJoins {
    let joins = MemoryJoins::default();
    let topology = crate::plan::desired(spec, &Default::default());
    for name in topology.droplets.keys() {
        joins.mark_joined(name, 1);
    }
    joins
}

fn posts(sim: &SimHandle) -> usize {
    sim.requests().iter().filter(|r| r.method == "POST").count()
}

#[tokio::test]
async fn first_apply_creates_every_droplet_and_a_rerun_calls_nothing() {
    let guard = start_sim().await;
    let provider = client(&guard.sim);
    let dir = tempfile::tempdir().unwrap();
    let spec = example_spec(dir.path());
    let store = MemoryStore::default();
    let joins = all_joined(&spec);
    let identity = identity();
    let deps = ApplyDeps {
        provider: &provider,
        state: &store,
        joins: &joins,
        identity: &identity,
        waits: Waits {
            join: Duration::from_secs(20),
            poll: Duration::from_millis(20),
            ..Waits::default()
        },
    };
    let events = Mutex::new(Vec::new());
    let progress = |e: ProgressEvent| events.lock().unwrap().push(e);
    let report = apply_spec(&spec, &PlanOptions::default(), &deps, &progress)
        .await
        .unwrap();
    assert_eq!(report.created.len(), 4, "{report:?}");
    assert_eq!(report.created[0], "master", "the master is created first");
    assert!(report.topology_committed);
    assert_eq!(posts(&guard.sim), 4, "one create request per droplet");

    let state = store.snapshot();
    assert_eq!(state.topology.droplets.len(), 4);
    for (name, d) in &state.topology.droplets {
        let record = &state.droplets[name];
        assert_eq!(record.status, DropletStatus::Active, "{name}");
        assert!(record.provider_id.is_some(), "{name}");
        assert_eq!(d.ip, record.ip, "{name}: topology carries the address");
        assert!(d.ip.as_deref().is_some_and(|ip| ip.starts_with("127.")));
    }
    let steps: Vec<&str> = events.lock().unwrap().iter().map(|e| e.step).collect();
    for step in ["plan", "create", "active", "join", "commit", "done"] {
        assert!(
            steps.contains(&step),
            "missing progress step {step}: {steps:?}"
        );
    }

    // The user-data of a web droplet seeds it from the master and carries
    // a node certificate of the cluster CA.
    let creates: Vec<_> = guard
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    let web = creates
        .iter()
        .filter_map(|r| r.request_body.as_ref())
        .find(|b| b["name"] == "hostomatic-web1")
        .expect("web1 created");
    let user_data =
        crate::bootstrap::UserData::parse(web["user_data"].as_str().unwrap(), "web1 user-data")
            .unwrap();
    let toml = user_data.file(crate::bootstrap::AGENT_TOML_PATH).unwrap();
    let master_ip = state.droplets["master"].ip.clone().unwrap();
    assert!(toml.contains(&format!("{master_ip}:17401")), "{toml}");
    assert!(
        !toml.contains("bootstrap"),
        "nothing forms a cluster: {toml}"
    );

    // Second run: nothing to do, no API call at all.
    guard.sim.clear_requests();
    let writes = store.writes();
    let again = apply_spec(&spec, &PlanOptions::default(), &deps, &progress)
        .await
        .unwrap();
    assert!(
        again.created.is_empty() && again.adopted.is_empty(),
        "{again:?}"
    );
    assert!(!again.topology_committed);
    assert!(
        guard.sim.requests().is_empty(),
        "{:?}",
        guard.sim.requests()
    );
    assert_eq!(store.writes(), writes, "no state change on a no-op run");
}

#[tokio::test]
async fn an_interrupted_apply_adopts_the_droplets_it_already_created() {
    let guard = start_sim().await;
    let provider = client(&guard.sim);
    let dir = tempfile::tempdir().unwrap();
    let spec = example_spec(dir.path());
    let identity = identity();
    // A previous leader created the master, then died before recording it.
    let store = MemoryStore::default();
    let joins = all_joined(&spec);
    let deps = ApplyDeps {
        provider: &provider,
        state: &store,
        joins: &joins,
        identity: &identity,
        waits: Waits {
            join: Duration::from_secs(20),
            poll: Duration::from_millis(20),
            ..Waits::default()
        },
    };
    let master_only = {
        let mut s = spec.clone();
        s.infrastructure.projects.clear();
        s
    };
    apply_spec(&master_only, &PlanOptions::default(), &deps, &|_| {})
        .await
        .unwrap();
    let fresh = MemoryStore::default();
    let deps = ApplyDeps {
        state: &fresh,
        ..deps
    };
    guard.sim.clear_requests();
    let report = apply_spec(&spec, &PlanOptions::default(), &deps, &|_| {})
        .await
        .unwrap();
    assert_eq!(report.adopted, vec!["master".to_string()]);
    assert_eq!(report.created.len(), 3);
    assert_eq!(posts(&guard.sim), 3, "the master is not created twice");
}

#[tokio::test]
async fn an_agent_that_never_joins_fails_the_apply_with_its_name() {
    let guard = start_sim().await;
    let provider = client(&guard.sim);
    let dir = tempfile::tempdir().unwrap();
    let spec = example_spec(dir.path());
    let identity = identity();
    let store = MemoryStore::default();
    let joins = MemoryJoins::default();
    joins.mark_joined("master", 1);
    let deps = ApplyDeps {
        provider: &provider,
        state: &store,
        joins: &joins,
        identity: &identity,
        waits: Waits {
            join: Duration::from_millis(300),
            poll: Duration::from_millis(20),
            ..Waits::default()
        },
    };
    let err = apply_spec(&spec, &PlanOptions::default(), &deps, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, OrchestrateError::JoinTimeout { name, .. } if name != "master"),
        "{err}"
    );
    // The droplets exist and are recorded: a re-run only waits again.
    let state = store.snapshot();
    assert_eq!(
        state
            .droplets
            .values()
            .filter(|r| r.status == DropletStatus::Active)
            .count(),
        4
    );
}
