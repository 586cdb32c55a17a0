//! Droplet lifecycle over HTTP: new -> active, pending-event 422, validation, actions.

mod common;

use common::TestSim;
use infra_sim::{Profile, SimConfig};
use reqwest::StatusCode;
use serde_json::json;

fn fast() -> SimConfig {
    SimConfig {
        profile: Profile::Fast,
        time_scale: 4.0,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn droplet_goes_from_new_to_active_with_addresses() {
    let sim = TestSim::start(fast()).await;
    let r = sim
        .post(
            "/v2/droplets",
            json!({"name": "web-1", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "region": "nyc3", "tags": ["web"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let d = &r.body["droplet"];
    assert_eq!(d["status"], "new");
    assert_eq!(d["networks"]["v4"], json!([]));
    let action = &r.body["links"]["actions"][0];
    assert_eq!(action["rel"], "create");
    let aid = action["id"].as_u64().unwrap();
    assert_eq!(
        action["href"],
        format!("{}/v2/actions/{aid}", sim.base).as_str()
    );
    let a = sim.get(&format!("/v2/actions/{aid}")).await;
    assert_eq!(a.body["action"]["status"], "in-progress");
    assert_eq!(a.body["action"]["completed_at"], json!(null));

    let id = d["id"].as_u64().unwrap();
    let active = sim.wait_status(id, "active").await;
    let v4 = active["networks"]["v4"].as_array().unwrap();
    let public = v4.iter().find(|n| n["type"] == "public").unwrap();
    assert!(public["ip_address"].as_str().unwrap().starts_with("127."));
    assert!(v4.iter().any(|n| n["type"] == "private"));
    assert_eq!(sim.wait_action(aid).await, "completed");
    let a = sim.get(&format!("/v2/droplets/{id}/actions/{aid}")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body["action"]["completed_at"].is_string());
    assert_eq!(a.body["action"]["resource_id"], id);
    let list = sim.get(&format!("/v2/droplets/{id}/actions")).await;
    assert_eq!(list.body["meta"]["total"], 1);
}

#[tokio::test]
async fn second_action_while_pending_is_422() {
    let sim = TestSim::start(fast()).await;
    let id = sim.create_droplet("db-1", json!("debian-12-x64")).await;
    // The create is still pending.
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "power_off"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["id"], "unprocessable_entity");
    assert_eq!(r.body["message"], "Droplet already has a pending event.");
    let rid = r.header("x-request-id").expect("x-request-id");
    assert_eq!(r.body["request_id"], rid.as_str());

    sim.wait_status(id, "active").await;
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "power_off"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["action"]["type"], "power_off");
    let second = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "power_on"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::UNPROCESSABLE_ENTITY);
    let aid = r.body["action"]["id"].as_u64().unwrap();
    assert_eq!(sim.wait_action(aid).await, "completed");
    sim.wait_status(id, "off").await;

    // Resize works while off; rename changes the name.
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "resize", "size": "s-2vcpu-4gb"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    sim.wait_action(r.body["action"]["id"].as_u64().unwrap())
        .await;
    let r = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "rename", "name": "db-2"}),
        )
        .await;
    sim.wait_action(r.body["action"]["id"].as_u64().unwrap())
        .await;
    let d = sim.get(&format!("/v2/droplets/{id}")).await.body["droplet"].clone();
    assert_eq!(d["size_slug"], "s-2vcpu-4gb");
    assert_eq!(d["memory"], 4096);
    assert_eq!(d["name"], "db-2");
}

#[tokio::test]
async fn create_validation_errors_name_the_problem() {
    let sim = TestSim::start(SimConfig::default()).await;
    let cases = [
        (
            json!({"name": "bad_name", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}),
            "name",
        ),
        (
            json!({"name": "ok", "size": "huge", "image": "ubuntu-24-04-x64"}),
            "size",
        ),
        (
            json!({"name": "ok", "size": "s-1vcpu-1gb", "image": "windows"}),
            "image",
        ),
        (
            json!({"name": "ok", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "region": "mars1"}),
            "region",
        ),
        (
            json!({"name": "ok", "names": ["a"], "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}),
            "name",
        ),
        (
            json!({"names": (0..11).map(|i| format!("n{i}")).collect::<Vec<_>>(), "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}),
            "names",
        ),
        (json!({"name": "ok", "image": "ubuntu-24-04-x64"}), "size"),
    ];
    for (body, word) in cases {
        let r = sim.post("/v2/droplets", body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(r.body["id"], "unprocessable_entity");
        assert!(
            r.body["message"].as_str().unwrap().contains(word),
            "{body} -> {}",
            r.body
        );
    }
    let r = sim.get("/v2/droplets").await;
    assert_eq!(r.body["meta"]["total"], 0);
    let r = sim.get("/v2/droplets/12345").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["id"], "not_found");
    let r = sim.get("/v2/droplets?tag_name=a&name=b").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn multi_create_filters_and_delete_by_tag() {
    let sim = TestSim::start(SimConfig::default()).await;
    let r = sim
        .post(
            "/v2/droplets",
            json!({"names": ["a-1", "a-2", "a-3"], "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "tags": ["grp"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["droplets"].as_array().unwrap().len(), 3);
    assert_eq!(r.body["links"]["actions"].as_array().unwrap().len(), 3);
    sim.create_droplet("other", json!("ubuntu-24-04-x64")).await;
    let r = sim.get("/v2/droplets?tag_name=grp").await;
    assert_eq!(r.body["meta"]["total"], 3);
    let r = sim.get("/v2/droplets?name=a-2").await;
    assert_eq!(r.body["droplets"][0]["name"], "a-2");
    // Distinct loopback addresses.
    let all = sim.get("/v2/droplets").await.body["droplets"].clone();
    let mut ips: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["networks"]["v4"][0]["ip_address"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 4);
    let tag = sim.get("/v2/tags/grp").await;
    assert_eq!(tag.body["tag"]["resources"]["droplets"]["count"], 3);
    let r = sim.delete("/v2/droplets?tag_name=grp").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(sim.get("/v2/droplets").await.body["meta"]["total"], 1);
}
