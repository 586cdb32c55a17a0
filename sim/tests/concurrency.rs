//! Many clients at once: unique ids and addresses, no lost updates, one pending action each.

mod common;

use common::TestSim;
use infra_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_get_unique_ids_and_addresses() {
    let sim = Arc::new(TestSim::start(SimConfig::default()).await);
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let sim = sim.clone();
        tasks.spawn(async move {
            sim.create_droplet(&format!("c-{i}"), json!("ubuntu-24-04-x64"))
                .await
        });
    }
    let mut ids = BTreeSet::new();
    while let Some(id) = tasks.join_next().await {
        ids.insert(id.expect("task"));
    }
    eprintln!("100 concurrent creates: {:?}", started.elapsed());
    assert_eq!(ids.len(), 100);

    let r = sim.get("/v2/droplets?per_page=200").await;
    assert_eq!(r.body["meta"]["total"], 100);
    let ips: BTreeSet<String> = common::wait_for(std::time::Duration::from_secs(10), || async {
        let r = sim.get("/v2/droplets?per_page=200").await;
        let ips: Option<BTreeSet<String>> = r.body["droplets"]
            .as_array()?
            .iter()
            .map(|d| {
                d["networks"]["v4"][0]["ip_address"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        ips
    })
    .await
    .expect("all droplets have addresses");
    assert_eq!(ips.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_actions_on_one_droplet_exactly_one_wins() {
    let sim = Arc::new(
        TestSim::start(SimConfig {
            profile: infra_sim::Profile::Fast,
            time_scale: 0.5,
            ..SimConfig::default()
        })
        .await,
    );
    let id = sim.create_droplet("race", json!("ubuntu-24-04-x64")).await;
    sim.wait_status(id, "active").await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let sim = sim.clone();
        tasks.spawn(async move {
            sim.post(
                &format!("/v2/droplets/{id}/actions"),
                json!({"type": "reboot"}),
            )
            .await
            .status
        });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.expect("task"));
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert_eq!((created, refused), (1, 9), "{statuses:?}");
}
