//! Fault injection through `/_sim/faults` and `SimHandle`, the request log and droplet kill.

mod common;

use common::TestSim;
use infra_sim::{Fault, SimConfig, Target};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn status_faults_fire_count_times_then_clear() {
    let sim = TestSim::start(SimConfig::default()).await;
    let r = sim
        .post(
            "/_sim/faults",
            json!({"kind": "status", "method": "GET", "path": "/v2/account", "exact": true, "status": 503, "count": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    for _ in 0..2 {
        let r = sim.get("/v2/account").await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.body["id"], "service_unavailable");
        assert!(r.body["request_id"].is_string());
    }
    assert_eq!(sim.get("/v2/account").await.status, StatusCode::OK);

    sim.handle().add_fault(Fault::Status {
        target: Target {
            method: None,
            path: "/v2/droplets".into(),
            exact: false,
        },
        status: 429,
        count: 1,
        retry_after_secs: Some(2),
    });
    let r = sim.get("/v2/droplets/1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("retry-after").as_deref(), Some("2"));
    assert_eq!(r.body["id"], "too_many_requests");

    sim.handle().add_fault(Fault::Status {
        target: Target {
            method: None,
            path: "/v2/".into(),
            exact: false,
        },
        status: 500,
        count: 5,
        retry_after_secs: None,
    });
    assert_eq!(
        sim.get("/_sim/faults").await.body["faults"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        sim.delete("/_sim/faults").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.get("/v2/account").await.status, StatusCode::OK);
    assert!(sim.handle().faults().is_empty());
}

#[tokio::test]
async fn dropped_create_response_still_creates_the_droplet() {
    let sim = TestSim::start(SimConfig::default()).await;
    sim.post(
        "/_sim/faults",
        json!({"kind": "drop_response", "method": "POST", "path": "/v2/droplets", "exact": true, "count": 1}),
    )
    .await;
    let r = sim
        .post(
            "/v2/droplets",
            json!({"name": "ghost", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let list = sim.get("/v2/droplets?name=ghost").await;
    assert_eq!(
        list.body["meta"]["total"], 1,
        "the droplet exists despite the 500"
    );
}

#[tokio::test]
async fn latency_and_errored_actions_and_request_log() {
    let sim = TestSim::start(SimConfig::default()).await;
    sim.post(
        "/_sim/faults",
        json!({"kind": "latency", "method": "GET", "path": "/v2/account", "ms": 300, "count": 1}),
    )
    .await;
    let t = Instant::now();
    assert_eq!(sim.get("/v2/account").await.status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(300));

    let id = sim
        .create_droplet("snap-me", json!("ubuntu-24-04-x64"))
        .await;
    sim.wait_status(id, "active").await;
    sim.post(
        "/_sim/faults",
        json!({"kind": "action_error", "action_type": "snapshot", "count": 1}),
    )
    .await;
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "snapshot", "name": "bad"}),
        )
        .await;
    let aid = r.body["action"]["id"].as_u64().unwrap();
    assert_eq!(sim.wait_action(aid).await, "errored");
    assert_eq!(sim.get("/v2/snapshots").await.body["meta"]["total"], 0);
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "snapshot", "name": "good"}),
        )
        .await;
    let aid = r.body["action"]["id"].as_u64().unwrap();
    assert_eq!(sim.wait_action(aid).await, "completed");

    let log = sim.handle().requests();
    let creates: Vec<_> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/droplets")
        .collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(creates[0].status, 202);
    assert_eq!(creates[0].request_body.as_ref().unwrap()["name"], "snap-me");
    assert_eq!(
        creates[0].response_body.as_ref().unwrap()["droplet"]["id"],
        id
    );
    let over_http = sim.get("/_sim/requests").await;
    assert!(over_http.body["requests"].as_array().unwrap().len() >= log.len());
    assert!(log.iter().all(|r| !r.path.starts_with("/_sim")));
    assert!(
        log.windows(2)
            .all(|w| w[0].at_unix_ms <= w[1].at_unix_ms && w[0].at_unix_ms > 0)
    );

    // Kill: the API still says active.
    let r = sim
        .post(&format!("/_sim/droplets/{id}/kill"), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        sim.get(&format!("/v2/droplets/{id}")).await.body["droplet"]["status"],
        "active"
    );
    assert_eq!(
        sim.post("/_sim/droplets/nope/kill", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn reset_closes_the_connection_with_or_without_executing() {
    let sim = TestSim::start(SimConfig::default()).await;
    sim.post(
        "/_sim/faults",
        json!({"kind": "reset", "method": "POST", "path": "/v2/droplets", "exact": true, "count": 1, "executed": true}),
    )
    .await;
    let body = json!({"name": "maybe", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"});
    let send = |b: serde_json::Value| {
        sim.http
            .post(format!("{}/v2/droplets", sim.base))
            .bearer_auth(common::TOKEN)
            .json(&b)
            .send()
    };
    let outcome = match send(body.clone()).await {
        Err(e) => Err(e),
        Ok(resp) => resp.bytes().await.map(|_| ()),
    };
    let err = outcome.expect_err("no complete answer");
    eprintln!("client saw: {err}");
    assert_eq!(
        sim.get("/v2/droplets?name=maybe").await.body["meta"]["total"],
        1
    );

    sim.handle().add_fault(Fault::Reset {
        target: Target {
            method: Some("POST".into()),
            path: "/v2/droplets".into(),
            exact: true,
        },
        count: 1,
        executed: false,
    });
    let outcome =
        match send(json!({"name": "never", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}))
            .await
        {
            Err(e) => Err(e),
            Ok(resp) => resp.bytes().await.map(|_| ()),
        };
    assert!(outcome.is_err());
    assert_eq!(
        sim.get("/v2/droplets?name=never").await.body["meta"]["total"],
        0
    );
    let resets = sim
        .handle()
        .requests()
        .iter()
        .filter(|r| r.status == 0)
        .count();
    assert_eq!(resets, 2);
}
