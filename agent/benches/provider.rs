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

/// Seeds a state file with 1,000 droplets. The simulator, like DigitalOcean,
/// refuses to create more than 500 droplets per account, so 500 are created
/// through the API and the state file (versioned JSON) is then doubled.
async fn seed_state(path: &std::path::Path) -> (Duration, usize) {
    let cancel = CancellationToken::new();
    let cfg = SimConfig {
        profile: Profile::Instant,
        state_file: Some(path.to_path_buf()),
        ..SimConfig::default()
    };
    let sim = Sim::start(cfg, cancel.clone()).await.expect("start sim");
    let client =
        DoClient::new(DoConfig::new(sim.base_url(), Secret::new("seed-token"))).expect("client");
    let t = Instant::now();
    let setup = client
        .create_droplets(&req("fleet", 500, "bench-setup"))
        .await
        .expect("setup");
    assert_eq!(setup.droplets.len(), 500);
    let took = t.elapsed();
    let requests = sim.requests().len();
    cancel.cancel();
    sim.join().await;

    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("read state")).expect("state json");
    let droplets = state["droplets"].as_object().expect("droplets map").clone();
    let mut next = state["next_droplet_id"].as_u64().expect("next_droplet_id");
    let mut addr = droplets
        .values()
        .filter_map(|d| d["addr"].as_u64())
        .max()
        .unwrap_or(2);
    let map = state["droplets"].as_object_mut().expect("droplets map");
    for d in droplets.values() {
        let mut copy = d.clone();
        addr += 1;
        while addr & 0xff == 0 || addr & 0xff == 0xff {
            addr += 1;
        }
        copy["id"] = next.into();
        copy["addr"] = addr.into();
        copy["name"] = format!("{}-b", d["name"].as_str().expect("name")).into();
        map.insert(next.to_string(), copy);
        next += 1;
    }
    state["next_droplet_id"] = next.into();
    std::fs::write(path, serde_json::to_vec(&state).expect("encode")).expect("write state");
    (took, requests)
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sim-state.json");
    let (setup_time, setup_reqs) = seed_state(&state).await;

    let cancel = CancellationToken::new();
    let sim = Sim::start(
        SimConfig {
            profile: Profile::Instant,
            state_file: Some(state),
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
    sim.clear_requests();

    let t = Instant::now();
    let all = client.list_droplets(None).await.expect("list");
    let list_time = t.elapsed();
    assert_eq!(all.len(), 1000);
    let list_reqs = sim.requests();
    let mut all_reqs;
    // Make room under the 500-droplet account limit for the 100 new droplets.
    client
        .delete_droplets_by_tag("fleet")
        .await
        .expect("delete fleet");
    all_reqs = sim.requests();
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
    all_reqs.extend(create_reqs.iter().cloned());
    assert_eq!(created.droplets.len(), 100);

    let total = list_reqs.len() + 1 + create_reqs.len();
    println!("provider bench (infra-sim, Instant profile)");
    println!(
        "setup: 500 droplets created in {setup_time:?} with {setup_reqs} requests, state file doubled to 1000"
    );
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
    let elapsed = list_time + create_time;
    println!(
        "measured phases: {total} requests (with the delete) in {elapsed:?} (client pacer: at most 250 per minute); rate limit left: {:?}",
        client.rate_limit()
    );
    assert_eq!(list_reqs.len(), 5, "1000 droplets = 5 pages of 200");
    assert_eq!(
        create_reqs.len(),
        1 + 10 + 100,
        "1 idempotency list + 10 creates + one poll loop per action"
    );
    let burst = max_in_window(&all_reqs, Duration::from_secs(60));
    println!("most requests in any 60 s window (simulator log): {burst}");
    assert!(burst <= 250, "burst of {burst} requests per minute");
    cancel.cancel();
    sim.join().await;
}

/// The most requests within any `window`, from the log's arrival times.
fn max_in_window(reqs: &[infra_sim::RecordedRequest], window: Duration) -> usize {
    let mut at: Vec<u64> = reqs.iter().map(|r| r.at_unix_ms).collect();
    at.sort_unstable();
    let w = window.as_millis() as u64;
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t < at[i] + w).count())
        .max()
        .unwrap_or(0)
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run());
}
