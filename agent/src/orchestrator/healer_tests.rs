//! The recovery runner against a real infra-sim over HTTP, with the state
//! machine applied in memory and joins marked by the test.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use infra_sim::{Sim, SimConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::membership::GossipKey;
use crate::plan::PlanOptions;
use crate::provider::{DoClient, DoConfig, PollPolicy, Secret};
use crate::recovery::{
    MemoryJoins, MemoryNotifier, Notice, RecoveryPolicy, SagaTiming, SourceImage,
};
use crate::state::{Command, DropletStatus, RecoveryPhase};

const WEB: &str = "hostomatic-web1";

struct Fixture {
    sim: infra_sim::SimHandle,
    shutdown: CancellationToken,
    provider: Arc<DoClient>,
    store: Arc<MemoryStore>,
    joins: Arc<MemoryJoins>,
    notifier: Arc<MemoryNotifier>,
    identity: Arc<ClusterIdentity>,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A sim with the example cluster applied (4 droplets, all joined).
async fn fixture() -> Fixture {
    crate::tls::install_crypto_provider();
    let shutdown = CancellationToken::new();
    let sim = Sim::start(SimConfig::default(), shutdown.clone())
        .await
        .expect("sim starts");
    let mut cfg = DoConfig::new(sim.base_url(), Secret::new("test-token"));
    cfg.poll = PollPolicy {
        min: Duration::from_millis(5),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
    };
    let provider = Arc::new(DoClient::new(cfg).unwrap());
    let dir = tempfile::tempdir().unwrap();
    crate::spec::write_examples(&dir.path().join("c"), &dir.path().join("t"), false).unwrap();
    let spec = crate::spec::load_dir(&dir.path().join("c")).unwrap().spec();
    let identity = Arc::new(ClusterIdentity {
        cluster_id: "test".into(),
        ca: Arc::new(crate::tls::Ca::create("test").unwrap()),
        gossip_key: GossipKey::generate(),
        grpc_port: 17400,
        gossip_port: 17401,
        base_image: "ubuntu-24-04-x64".into(),
        ssh_key_ids: vec![],
        api_token: None,
        notify: None,
    });
    let store = Arc::new(MemoryStore::default());
    let joins = Arc::new(MemoryJoins::default());
    for name in crate::plan::desired(&spec, &Default::default())
        .droplets
        .keys()
    {
        joins.mark_joined(name, 1);
    }
    let deps = ApplyDeps {
        provider: provider.as_ref(),
        state: store.as_ref(),
        joins: joins.as_ref(),
        identity: &identity,
        waits: Waits {
            join: Duration::from_secs(20),
            poll: Duration::from_millis(20),
            ..Waits::default()
        },
    };
    apply_spec(&spec, &PlanOptions::default(), &deps, &|_| {})
        .await
        .unwrap();
    Fixture {
        sim,
        shutdown,
        provider,
        store,
        joins,
        notifier: Arc::new(MemoryNotifier::default()),
        identity,
        _dir: dir,
    }
}

fn healer(f: &Fixture, policy: RecoveryPolicy) -> Arc<Healer> {
    Arc::new(Healer {
        provider: f.provider.clone(),
        store: f.store.clone(),
        joins: f.joins.clone(),
        notifier: f.notifier.clone(),
        identity: f.identity.clone(),
        policy,
        timing: SagaTiming {
            poll: Duration::from_millis(20),
            active_timeout: Duration::from_secs(20),
            join_timeout: Duration::from_secs(20),
            skew: Duration::from_secs(30),
        },
        placer: None,
    })
}

async fn confirm(f: &Fixture, generation: u64) {
    f.store
        .write(Command::ConfirmFailure {
            name: WEB.into(),
            generation,
            at_ms: u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap(),
        })
        .await
        .unwrap();
}

/// One pass, then waits for every started saga.
async fn pass_and_wait(h: &Arc<Healer>) -> Vec<SagaResult> {
    let mut running = BTreeSet::new();
    let mut tasks = JoinSet::new();
    h.pass(&mut running, &mut tasks).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
        .await
        .expect("sagas finish within 60 s")
}

/// Creates (POST /v2/droplets) and rebuilds (POST .../actions type rebuild).
fn replacements(sim: &infra_sim::SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status < 300)
        .filter(|r| {
            r.path == "/v2/droplets"
                || r.request_body
                    .as_ref()
                    .is_some_and(|b| b["type"] == "rebuild" || b["type"] == "restore")
        })
        .count()
}

#[tokio::test]
async fn a_confirmed_failure_is_replaced_once_from_the_latest_snapshot() {
    let f = fixture().await;
    let id = f.store.snapshot().droplets[WEB].provider_id.unwrap();
    crate::recovery::snapshot_droplet(f.provider.as_ref(), WEB, id, chrono::Utc::now())
        .await
        .unwrap();
    f.sim.clear_requests();
    confirm(&f, 1).await;
    f.joins.mark_joined(WEB, 2);

    let results = pass_and_wait(&healer(&f, RecoveryPolicy::default())).await;
    assert_eq!(results.len(), 1);
    let outcome = results[0].1.clone().expect("saga succeeds");
    assert!(
        matches!(outcome.replacement.image(), SourceImage::Snapshot { .. }),
        "{outcome:?}"
    );
    assert_eq!(replacements(&f.sim), 1, "exactly one create or rebuild");

    let state = f.store.snapshot();
    let recovery = &state.recoveries[WEB];
    assert_eq!(recovery.phase, RecoveryPhase::Done);
    let phases: Vec<&str> = recovery.history.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        phases,
        ["confirmed", "fenced", "restoring", "restored", "done"]
    );
    let record = &state.droplets[WEB];
    assert_eq!(record.status, DropletStatus::Active);
    assert_eq!(record.generation, 2);
    assert_eq!(record.provider_id, Some(outcome.droplet_id));
    assert!(matches!(
        f.notifier.notices().as_slice(),
        [Notice::Recovered(_)]
    ));

    // Nothing open: another pass starts nothing.
    assert!(
        pass_and_wait(&healer(&f, RecoveryPolicy::default()))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_flapping_droplet_stops_being_recovered() {
    let f = fixture().await;
    let policy = RecoveryPolicy {
        max_recoveries: 1,
        ..RecoveryPolicy::default()
    };
    confirm(&f, 1).await;
    f.joins.mark_joined(WEB, 2);
    let results = pass_and_wait(&healer(&f, policy.clone())).await;
    assert!(results[0].1.is_ok(), "{results:?}");

    f.sim.clear_requests();
    confirm(&f, 2).await;
    assert!(pass_and_wait(&healer(&f, policy)).await.is_empty());
    assert_eq!(replacements(&f.sim), 0, "left down");
    let recovery = &f.store.snapshot().recoveries[WEB];
    assert!(
        matches!(&recovery.phase, RecoveryPhase::Failed { reason } if reason.contains("flapping")),
        "{recovery:?}"
    );
    assert!(
        f.notifier
            .notices()
            .iter()
            .any(|n| matches!(n, Notice::Flapping { droplet, .. } if droplet == WEB))
    );
}

#[tokio::test]
async fn a_small_cluster_waits_for_a_manual_recovery() {
    let f = fixture().await;
    let policy = RecoveryPolicy {
        min_cluster_size: 5,
        ..RecoveryPolicy::default()
    };
    f.sim.clear_requests();
    confirm(&f, 1).await;
    assert!(pass_and_wait(&healer(&f, policy)).await.is_empty());
    assert_eq!(replacements(&f.sim), 0);
    assert!(f.notifier.notices().iter().any(|n| matches!(
        n,
        Notice::ManualRecoveryNeeded {
            cluster_size: 4,
            ..
        }
    )));
}

#[tokio::test]
async fn a_new_leader_resumes_an_open_saga_under_a_newer_token() {
    let f = fixture().await;
    f.sim.clear_requests();
    confirm(&f, 1).await;
    // The first leader starts the saga but the agent never joins: it stops
    // in AwaitJoin after creating the replacement.
    let first = {
        let mut h = healer(&f, RecoveryPolicy::default());
        Arc::get_mut(&mut h).unwrap().timing.join_timeout = Duration::from_millis(200);
        h
    };
    let results = pass_and_wait(&first).await;
    assert!(results[0].1.is_err(), "{results:?}");
    let before = f.store.snapshot().recoveries[WEB].clone();
    assert!(before.is_open() && before.saga.is_some());
    let replaced = replacements(&f.sim);
    assert_eq!(replaced, 1);

    // The next leader resumes it: no second create/rebuild.
    f.joins.mark_joined(WEB, 2);
    let results = pass_and_wait(&healer(&f, RecoveryPolicy::default())).await;
    assert!(results[0].1.is_ok(), "{results:?}");
    let after = &f.store.snapshot().recoveries[WEB];
    assert_eq!(after.phase, RecoveryPhase::Done);
    assert!(after.fencing > before.fencing);
    assert_eq!(
        replacements(&f.sim),
        replaced,
        "exactly one replacement overall"
    );
}

#[tokio::test]
async fn the_snapshot_schedule_snapshots_due_droplets_once_and_records_them() {
    let f = fixture().await;
    let h = healer(
        &f,
        RecoveryPolicy {
            snapshot_interval: chrono::Duration::hours(24),
            ..RecoveryPolicy::default()
        },
    );
    let taken = h.snapshot_pass().await.unwrap();
    assert_eq!(taken.len(), 4, "{taken:?}");
    let state = f.store.snapshot();
    for name in state.droplets.keys() {
        assert_eq!(state.snapshots[name].len(), 1, "{name}");
    }
    // Nothing is due a moment later.
    f.sim.clear_requests();
    assert!(h.snapshot_pass().await.unwrap().is_empty());
    assert!(f.sim.requests().iter().all(|r| r.method == "GET"));
}
