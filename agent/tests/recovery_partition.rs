//! A leader cut off in a minority never calls the cloud: with a real
//! three-agent Raft group (in-process, real gRPC and gossip) and a real
//! infra-sim over HTTP, the isolated leader's recovery runner finds the
//! open recovery but cannot commit a step, so it makes no mutating API
//! call; the majority's new leader then recovers the droplet exactly once.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Cluster, wait_for};
use infra_agent::consensus::Consensus;
use infra_agent::membership::GossipKey;
use infra_agent::orchestrator::{ApplyDeps, ClusterIdentity, Healer, Waits, apply_spec};
use infra_agent::plan::PlanOptions;
use infra_agent::provider::{DoClient, DoConfig, PollPolicy, Secret};
use infra_agent::recovery::{MemoryJoins, MemoryNotifier, RecoveryPolicy, SagaTiming};
use infra_agent::state::{Command, RecoveryPhase};
use infra_sim::{Sim, SimConfig, SimHandle};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

const WEB: &str = "hostomatic-web1";

/// Stops the simulator when the test ends, even on a panic.
struct CancelOnDrop(CancellationToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Creates (POST /v2/droplets) and rebuild actions the simulator answered.
fn replacements(sim: &SimHandle) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status < 300)
        .filter(|r| {
            r.path == "/v2/droplets"
                || r.request_body
                    .as_ref()
                    .is_some_and(|b| b["type"] == "rebuild")
        })
        .count()
}

fn mutating(sim: &SimHandle) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

fn leader_of(cluster: &Cluster, among: &[usize]) -> Option<usize> {
    among.iter().copied().find(|&i| {
        let m = cluster.node(i).consensus().metrics();
        m.leader == Some(m.id)
    })
}

fn healer(
    consensus: &Consensus,
    provider: &Arc<DoClient>,
    joins: &Arc<MemoryJoins>,
) -> Arc<Healer> {
    Arc::new(Healer {
        provider: provider.clone(),
        store: Arc::new(consensus.clone()),
        joins: joins.clone(),
        notifier: Arc::new(MemoryNotifier::default()),
        identity: Arc::new(ClusterIdentity {
            cluster_id: "test".into(),
            ca: Arc::new(infra_agent::tls::Ca::create("test").unwrap()),
            gossip_key: GossipKey::generate(),
            grpc_port: 17400,
            gossip_port: 17401,
            base_image: "ubuntu-24-04-x64".into(),
            ssh_key_ids: vec![],
            api_token: None,
            notify: None,
        }),
        policy: RecoveryPolicy::default(),
        timing: SagaTiming {
            poll: Duration::from_millis(20),
            active_timeout: Duration::from_secs(20),
            join_timeout: Duration::from_secs(20),
            skew: Duration::from_secs(30),
        },
        placer: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_never_calls_the_cloud_and_the_majority_recovers_once() {
    infra_agent::tls::install_crypto_provider();
    let mut cluster = Cluster::start(3, 140).await;
    let all = [0, 1, 2];
    wait_for("a leader of three voters", Duration::from_secs(30), || {
        leader_of(&cluster, &all).is_some_and(|l| {
            let m = cluster.node(l).consensus().metrics();
            m.voters.len() == 3 && m.uniform
        })
    })
    .await;
    let lead = leader_of(&cluster, &all).unwrap();
    let consensus = cluster.node(lead).consensus().clone();

    let shutdown = CancellationToken::new();
    let _stop = CancelOnDrop(shutdown.clone());
    let sim = Sim::start(SimConfig::default(), shutdown.clone())
        .await
        .unwrap();
    let mut cfg = DoConfig::new(sim.base_url(), Secret::new("test-token"));
    cfg.poll = PollPolicy {
        min: Duration::from_millis(5),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
    };
    let provider = Arc::new(DoClient::new(cfg).unwrap());
    let dir = tempfile::tempdir().unwrap();
    infra_agent::spec::write_examples(&dir.path().join("c"), &dir.path().join("t"), false).unwrap();
    let spec = infra_agent::spec::load_dir(&dir.path().join("c"))
        .unwrap()
        .spec();
    let joins = Arc::new(MemoryJoins::default());
    for name in infra_agent::plan::desired(&spec, &Default::default())
        .droplets
        .keys()
    {
        joins.mark_joined(name, 1);
    }
    let h = healer(&consensus, &provider, &joins);
    apply_spec(
        &spec,
        &PlanOptions::default(),
        &ApplyDeps {
            provider: provider.as_ref(),
            state: &consensus,
            joins: joins.as_ref(),
            identity: &h.identity,
            waits: Waits {
                join: Duration::from_secs(20),
                poll: Duration::from_millis(20),
                ..Waits::default()
            },
        },
        &|_| {},
    )
    .await
    .expect("the spec is applied through the Raft leader");
    let generation = consensus.local_state().droplets[WEB].generation;
    joins.mark_joined(WEB, generation + 1);
    consensus
        .write(Command::ConfirmFailure {
            name: WEB.into(),
            generation,
            at_ms: u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap(),
        })
        .await
        .unwrap();

    // Cut the leader off, then let its runner try while it still believes it leads.
    cluster.nodes[lead].fault.set_isolated(true);
    sim.clear_requests();
    let mut running = BTreeSet::new();
    let mut tasks = JoinSet::new();
    let pass = h.pass(&mut running, &mut tasks).await;
    assert!(
        pass.is_err(),
        "the isolated leader cannot read a linearizable state"
    );
    let _ = tokio::time::timeout(Duration::from_secs(10), tasks.join_all()).await;
    assert_eq!(
        mutating(&sim),
        Vec::<String>::new(),
        "no cloud change from the minority"
    );

    // The majority elects a leader, whose runner recovers the droplet once.
    let majority: Vec<usize> = all.iter().copied().filter(|&i| i != lead).collect();
    wait_for(
        "a new leader in the majority",
        Duration::from_secs(20),
        || leader_of(&cluster, &majority).is_some(),
    )
    .await;
    let new = leader_of(&cluster, &majority).unwrap();
    let h2 = healer(cluster.node(new).consensus(), &provider, &joins);
    let mut running = BTreeSet::new();
    let mut tasks = JoinSet::new();
    h2.pass(&mut running, &mut tasks)
        .await
        .expect("the majority's leader reads the state");
    let results = tokio::time::timeout(Duration::from_secs(60), tasks.join_all())
        .await
        .expect("the saga finishes");
    assert_eq!(results.len(), 1, "{results:?}");
    let state = cluster.node(new).consensus().local_state();
    assert_eq!(
        state.recoveries[WEB].phase,
        RecoveryPhase::Done,
        "{:?}",
        state.recoveries[WEB]
    );
    assert_eq!(
        replacements(&sim),
        1,
        "exactly one rebuild or create: {:?}",
        mutating(&sim)
    );
    let isolated = cluster.node(lead).consensus().local_state();
    assert!(
        isolated.recoveries.get(WEB).is_some_and(|r| r.is_open()),
        "the cut-off leader applied nothing of the recovery"
    );
    cluster.stop_all().await;
}
