//! The state file survives a restart; a bad file is rejected with a clear error.

mod common;

use common::TestSim;
use infra_sim::{Sim, SimConfig, SimError};
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let cfg = SimConfig {
        state_file: Some(state.clone()),
        ..SimConfig::default()
    };
    let sim = TestSim::start(cfg.clone()).await;
    let id = sim
        .create_droplet("keep-me", json!("ubuntu-24-04-x64"))
        .await;
    sim.wait_status(id, "active").await;
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "snapshot", "name": "snap"}),
        )
        .await;
    sim.wait_action(r.body["action"]["id"].as_u64().unwrap())
        .await;
    let r = sim
        .post(
            "/v2/account/keys",
            json!({"name": "me", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgA me@x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    sim.post("/v2/tags", json!({"name": "keep"})).await;
    sim.stop().await;

    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["version"], 1);
    assert!(!dir.path().join("state.tmp").exists());

    let sim = TestSim::start(cfg).await;
    let d = sim.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(d.body["droplet"]["status"], "active");
    assert_eq!(d.body["droplet"]["name"], "keep-me");
    assert_eq!(sim.get("/v2/snapshots").await.body["meta"]["total"], 1);
    assert_eq!(sim.get("/v2/account/keys").await.body["meta"]["total"], 1);
    assert_eq!(sim.get("/v2/tags/keep").await.status, StatusCode::OK);
    let other = sim
        .create_droplet("new-one", json!("ubuntu-24-04-x64"))
        .await;
    assert_ne!(other, id);
    sim.stop().await;
}

#[tokio::test]
async fn bad_state_file_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, r#"{"version": 99}"#).unwrap();
    let cfg = SimConfig {
        state_file: Some(state),
        ..SimConfig::default()
    };
    let err = Sim::start(cfg, CancellationToken::new())
        .await
        .err()
        .expect("rejected");
    assert!(matches!(err, SimError::State { .. }));
    assert!(err.to_string().contains("version"), "{err}");
}
