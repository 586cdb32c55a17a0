//! Benchmark of the DigitalOcean client against the simulator (Instant profile):
//! list 1,000 droplets and create 100 (waiting for every create action).
//! Prints the time and the requests the simulator saw. Run with
//! `cargo bench -p infra-agent --bench provider`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use infra_agent::provider::{
    CloudProvider, CreateDroplets, DoClient, DoConfig, ImageRef, OperationId, PollPolicy, Secret,
};
use infra_sim::{Profile, Sim, SimConfig};
use tokio_util::sync::CancellationToken;

fn req(prefix: &str, n: usize, op: &str) -> CreateDroplets {
    CreateDroplets {
        names: (0..n).map(|i| format!("{prefix}-{i}")).collect(),
        region: "nyc3".into(),
        size: "s-1vcpu-1gb".into(),
        image: ImageRef::Slug("ubuntu-24-04-x64".into()),
        ssh_keys: vec![],
        tags: vec![prefix.into()],
        user_data: None,
        vpc_uuid: None,
        ipv6: false,
        monitoring: false,
        operation_id: Some(OperationId::new(op).expect("op id")),
    }
}

/// Requests grouped as `METHOD /v2/kind` (ids folded to `{id}`).
fn by_kind(reqs: &[infra_sim::RecordedRequest]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in reqs {
        let path: Vec<&str> = r
            .path
            .split('/')
            .map(|s| {
                if s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty() {
                    "{id}"
                } else {
                    s
                }
            })
            .collect();
        *m.entry(format!("{} {}", r.method, path.join("/")))
            .or_insert(0) += 1;
    }
    m
}

async fn run() {
    let cancel = CancellationToken::new();
    let sim = Sim::start(
        SimConfig {
            profile: Profile::Instant,
            ..SimConfig::default()
        },
        cancel.clone(),
    )
    .await
    .expect("start sim");
    let mut cfg = DoConfig::new(sim.base_url(), Secret::new("bench-token"));
    cfg.poll = PollPolicy {
        min: Duration::from_millis(10),
        max: Duration::from_millis(200),
        timeout: Duration::from_secs(60),
    };
    let client = DoClient::new(cfg).expect("client");

    // Setup: 1,000 droplets (100 multi-creates of 10), not waited for.
    let t = Instant::now();
    let setup = client
        .create_droplets(&req("fleet", 1000, "bench-setup"))
        .await
        .expect("setup");
    assert_eq!(setup.droplets.len(), 1000);
    let setup_time = t.elapsed();
    let setup_reqs = sim.requests().len();
    sim.clear_requests();

    let t = Instant::now();
    let all = client.list_droplets(None).await.expect("list");
    let list_time = t.elapsed();
    assert_eq!(all.len(), 1000);
    let list_reqs = sim.requests();
    sim.clear_requests();

    let t = Instant::now();
    let created = client
        .create_droplets(&req("new", 100, "bench-create"))
        .await
        .expect("create");
    for id in &created.action_ids {
        client.wait_action(*id).await.expect("action");
    }
    let create_time = t.elapsed();
    let create_reqs = sim.requests();
    assert_eq!(created.droplets.len(), 100);

    let total = setup_reqs + list_reqs.len() + create_reqs.len();
    println!("provider bench (infra-sim, Instant profile)");
    println!("setup: 1000 droplets in {setup_time:?}, {setup_reqs} requests");
    println!(
        "list 1000 droplets: {list_time:?}, {} requests {:?}",
        list_reqs.len(),
        by_kind(&list_reqs)
    );
    println!(
        "create 100 droplets + wait for their actions: {create_time:?}, {} requests {:?}",
        create_reqs.len(),
        by_kind(&create_reqs)
    );
    let elapsed = setup_time + list_time + create_time;
    println!(
        "all {total} requests in {elapsed:?} (client pacer: at most 250 per minute); rate limit left: {:?}",
        client.rate_limit()
    );
    assert_eq!(list_reqs.len(), 5, "1000 droplets = 5 pages of 200");
    assert_eq!(
        create_reqs.len(),
        10 + 100,
        "10 creates + one poll loop per action"
    );
    cancel.cancel();
    sim.join().await;
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
