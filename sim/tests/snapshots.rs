//! Snapshots: both list endpoints with their id types, images, restore, rebuild and delete.

mod common;

use common::TestSim;
use infra_sim::{Profile, SimConfig};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn snapshot_appears_in_both_lists_and_restores() {
    let sim = TestSim::start(SimConfig {
        profile: Profile::Fast,
        time_scale: 4.0,
        ..SimConfig::default()
    })
    .await;
    let id = sim.create_droplet("src", json!("ubuntu-24-04-x64")).await;
    sim.wait_status(id, "active").await;
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "snapshot", "name": "golden"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let aid = r.body["action"]["id"].as_u64().unwrap();
    // Not listed until the action completes.
    assert_eq!(sim.get("/v2/snapshots").await.body["meta"]["total"], 0);
    assert_eq!(sim.wait_action(aid).await, "completed");

    let per_droplet = sim.get(&format!("/v2/droplets/{id}/snapshots")).await;
    let snap = &per_droplet.body["snapshots"][0];
    let snap_id = snap["id"]
        .as_u64()
        .expect("integer id in droplet snapshots");
    assert_eq!(snap["name"], "golden");
    assert_eq!(snap["type"], "snapshot");

    let all = sim.get("/v2/snapshots?resource_type=droplet").await;
    let s = &all.body["snapshots"][0];
    assert_eq!(s["id"], snap_id.to_string(), "string id in /v2/snapshots");
    assert_eq!(s["resource_id"], id.to_string());
    assert_eq!(s["resource_type"], "droplet");
    assert_eq!(
        sim.get("/v2/snapshots?resource_type=volume").await.body["meta"]["total"],
        0
    );
    let got = sim.get(&format!("/v2/snapshots/{snap_id}")).await;
    assert_eq!(got.body["snapshot"]["id"], snap_id.to_string());

    let images = sim.get("/v2/images?private=true").await;
    let img = &images.body["images"][0];
    assert_eq!(img["id"], snap_id);
    assert_eq!(img["type"], "snapshot");
    assert_eq!(img["slug"], json!(null));
    assert_eq!(images.body["meta"]["total"], 1);
    let d = sim.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(d.body["droplet"]["snapshot_ids"], json!([snap_id]));
    let public = sim.get("/v2/images?type=distribution").await;
    assert!(
        public.body["images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["type"] == "base")
    );
    assert_eq!(
        sim.get("/v2/images/ubuntu-24-04-x64").await.status,
        StatusCode::OK
    );

    // Restore: create from the snapshot id.
    let restored = sim.create_droplet("copy", json!(snap_id)).await;
    let d = sim.wait_status(restored, "active").await;
    assert_eq!(d["image"]["id"], snap_id);
    assert_eq!(d["image"]["type"], "snapshot");

    // Rebuild the source from the snapshot.
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "rebuild", "image": snap_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        sim.wait_action(r.body["action"]["id"].as_u64().unwrap())
            .await,
        "completed"
    );

    // Delete via /v2/images removes it everywhere.
    assert_eq!(
        sim.delete(&format!("/v2/images/{snap_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.get("/v2/snapshots").await.body["meta"]["total"], 0);
    assert_eq!(
        sim.get(&format!("/v2/snapshots/{snap_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let d = sim.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(d.body["droplet"]["snapshot_ids"], json!([]));
    let r = sim
        .post(
            "/v2/droplets",
            json!({"name": "x", "size": "s-1vcpu-1gb", "image": snap_id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}
