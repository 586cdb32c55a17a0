//! SSH keys, tags and firewalls over HTTP.

mod common;

use common::TestSim;
use infra_sim::{Profile, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::json;

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgA me@host";

#[tokio::test]
async fn ssh_keys_by_id_and_fingerprint() {
    let sim = TestSim::start(SimConfig::default()).await;
    let r = sim
        .post("/v2/account/keys", json!({"name": "me", "public_key": KEY}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["ssh_key"]["id"].as_u64().unwrap();
    let fp = r.body["ssh_key"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fp.split(':').count(), 16);
    let dup = sim
        .post(
            "/v2/account/keys",
            json!({"name": "again", "public_key": KEY}),
        )
        .await;
    assert_eq!(dup.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        sim.get(&format!("/v2/account/keys/{fp}")).await.body["ssh_key"]["id"],
        id
    );
    let r = sim
        .call(
            Method::PUT,
            &format!("/v2/account/keys/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(r.body["ssh_key"]["name"], "renamed");
    // Droplets accept keys by id or fingerprint; unknown keys are rejected.
    let r = sim
        .post("/v2/droplets", json!({"name": "k", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "ssh_keys": [id, fp]}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = sim
        .post("/v2/droplets", json!({"name": "k", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "ssh_keys": [1]}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        sim.delete(&format!("/v2/account/keys/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.get("/v2/account/keys").await.body["meta"]["total"], 0);
}

#[tokio::test]
async fn tags_assign_and_unassign_droplets() {
    let sim = TestSim::start(SimConfig::default()).await;
    assert_eq!(
        sim.post("/v2/tags", json!({"name": "bad tag"}))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let r = sim.post("/v2/tags", json!({"name": "role:web"})).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["tag"]["resources"]["count"], 0);
    let id = sim.create_droplet("w1", json!("ubuntu-24-04-x64")).await;
    let res = json!({"resources": [{"resource_id": id.to_string(), "resource_type": "droplet"}]});
    let r = sim.post("/v2/tags/role:web/resources", res.clone()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let d = sim.get(&format!("/v2/droplets/{id}")).await;
    assert_eq!(d.body["droplet"]["tags"], json!(["role:web"]));
    let t = sim.get("/v2/tags/role:web").await;
    assert_eq!(t.body["tag"]["resources"]["droplets"]["count"], 1);
    assert!(
        t.body["tag"]["resources"]["last_tagged_uri"]
            .as_str()
            .unwrap()
            .ends_with(&id.to_string())
    );
    let missing = json!({"resources": [{"resource_id": "999", "resource_type": "droplet"}]});
    assert_eq!(
        sim.post("/v2/tags/role:web/resources", missing)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = sim
        .call(Method::DELETE, "/v2/tags/role:web/resources", Some(res))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        sim.get("/v2/droplets?tag_name=role:web").await.body["meta"]["total"],
        0
    );
    assert_eq!(
        sim.delete("/v2/tags/role:web").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        sim.get("/v2/tags/role:web").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn firewall_lifecycle_waiting_then_succeeded() {
    let sim = TestSim::start(SimConfig {
        profile: Profile::Fast,
        time_scale: 4.0,
        ..SimConfig::default()
    })
    .await;
    let id = sim
        .create_droplet("fw-target", json!("ubuntu-24-04-x64"))
        .await;
    let body = json!({
        "name": "web-fw",
        "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}],
        "outbound_rules": [{"protocol": "icmp", "destinations": {"addresses": ["0.0.0.0/0"]}}],
        "droplet_ids": [id],
        "tags": ["web"],
    });
    let r = sim.post("/v2/firewalls", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let fw = r.body["firewall"].clone();
    assert_eq!(fw["status"], "waiting");
    let fid = fw["id"].as_str().unwrap().to_string();
    assert_eq!(fid.len(), 36);
    let settled = common::wait_for(std::time::Duration::from_secs(10), || async {
        let r = sim.get(&format!("/v2/firewalls/{fid}")).await;
        (r.body["firewall"]["status"] == "succeeded").then_some(())
    })
    .await;
    assert!(settled.is_some());

    let bad = json!({"name": "x-fw", "inbound_rules": [{"protocol": "tcp", "ports": "99999", "sources": {}}]});
    let r = sim.post("/v2/firewalls", bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("inbound_rules[0]")
    );

    let rule = json!({"inbound_rules": [{"protocol": "tcp", "ports": "8000-9000", "sources": {"tags": ["web"]}}]});
    assert_eq!(
        sim.post(&format!("/v2/firewalls/{fid}/rules"), rule.clone())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = sim.get(&format!("/v2/firewalls/{fid}")).await;
    assert_eq!(
        r.body["firewall"]["inbound_rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(r.body["firewall"]["status"], "waiting");
    let r = sim
        .call(
            Method::DELETE,
            &format!("/v2/firewalls/{fid}/rules"),
            Some(rule),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let r = sim.get(&format!("/v2/droplets/{id}/firewalls")).await;
    assert_eq!(r.body["firewalls"][0]["id"], fid.as_str());
    let ids = json!({"droplet_ids": [id]});
    let r = sim
        .call(
            Method::DELETE,
            &format!("/v2/firewalls/{fid}/droplets"),
            Some(ids.clone()),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        sim.get(&format!("/v2/droplets/{id}/firewalls")).await.body["meta"]["total"],
        0
    );
    assert_eq!(
        sim.post(&format!("/v2/firewalls/{fid}/droplets"), ids)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let tags = json!({"tags": ["db"]});
    assert_eq!(
        sim.post(&format!("/v2/firewalls/{fid}/tags"), tags.clone())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = sim
        .call(
            Method::DELETE,
            &format!("/v2/firewalls/{fid}/tags"),
            Some(tags),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let put = json!({"name": "web-fw2", "inbound_rules": [{"protocol": "udp", "ports": "all", "sources": {"addresses": ["10.0.0.0/8"]}}]});
    let r = sim
        .call(Method::PUT, &format!("/v2/firewalls/{fid}"), Some(put))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["firewall"]["name"], "web-fw2");
    assert_eq!(r.body["firewall"]["droplet_ids"], json!([]));
    assert_eq!(sim.get("/v2/firewalls").await.body["meta"]["total"], 1);
    assert_eq!(
        sim.delete(&format!("/v2/firewalls/{fid}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        sim.get(&format!("/v2/firewalls/{fid}")).await.status,
        StatusCode::NOT_FOUND
    );
}
