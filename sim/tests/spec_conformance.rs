//! Every recorded response of a scenario touching all endpoints validates against the official
//! OpenAPI subset (tests/data/do_api_subset.json, digitalocean/openapi @ 7c1300c).

mod common;

use common::TestSim;
use infra_sim::{RateLimitConfig, RecordedRequest, SimConfig};
use reqwest::Method;
use serde_json::{Value, json};

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/do_api_subset.json");
    serde_json::from_slice(&std::fs::read(path).expect("spec file")).expect("spec JSON")
}

/// OpenAPI 3.0 `nullable` -> JSON Schema type arrays / anyOf null.
fn convert(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                convert(child);
            }
            if map.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type").cloned() {
                    map.insert("type".into(), json!([t, "null"]));
                } else {
                    let inner = Value::Object(std::mem::take(map));
                    map.insert("anyOf".into(), json!([{"type": "null"}, inner]));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(convert),
        _ => {}
    }
}

fn resolve<'a>(spec: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => spec
            .pointer(r.trim_start_matches('#'))
            .expect("ref resolves"),
        None => v,
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| a.starts_with('{') || a == b)
}

/// Validates one recorded response; returns a description of each violation.
fn check(spec: &Value, components: &Value, r: &RecordedRequest) -> Vec<String> {
    let paths = spec["paths"].as_object().unwrap();
    // Static segments win over parameters (e.g. /v2/droplets/actions).
    let mut candidates: Vec<(&String, &Value)> = paths
        .iter()
        .filter(|(t, _)| template_matches(t, &r.path))
        .collect();
    candidates.sort_by_key(|(t, _)| t.matches('{').count());
    let Some((template, item)) = candidates.first() else {
        return vec![format!("{} {}: no such path in the spec", r.method, r.path)];
    };
    let Some(op) = item.get(r.method.to_lowercase()) else {
        return vec![format!("{} {template}: no such operation", r.method)];
    };
    let responses = &op["responses"];
    let resp = responses
        .get(r.status.to_string())
        .or_else(|| responses.get("default"))
        .map(|x| resolve(spec, x));
    let Some(resp) = resp else {
        return vec![format!(
            "{} {template}: status {} not in spec",
            r.method, r.status
        )];
    };
    let Some(schema) = resp.pointer("/content/application~1json/schema") else {
        return match &r.response_body {
            None => vec![],
            Some(b) => vec![format!(
                "{} {template} {}: unexpected body {b}",
                r.method, r.status
            )],
        };
    };
    let mut schema = schema.clone();
    if let Value::Object(m) = &mut schema {
        m.insert("components".into(), components.clone());
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles");
    let body = r.response_body.clone().unwrap_or(Value::Null);
    validator
        .iter_errors(&body)
        .map(|e| {
            format!(
                "{} {} {}: {} at {}",
                r.method,
                r.path,
                r.status,
                e,
                e.instance_path()
            )
        })
        .collect()
}

#[tokio::test]
async fn all_responses_match_the_openapi_spec() {
    let sim = TestSim::start(SimConfig {
        rate_limit: RateLimitConfig {
            per_hour: 5000,
            per_minute: 120,
        },
        ..SimConfig::default()
    })
    .await;
    let key = sim
        .post(
            "/v2/account/keys",
            json!({"name": "k", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgA k"}),
        )
        .await;
    let key_id = key.body["ssh_key"]["id"].as_u64().unwrap();
    sim.get("/v2/account").await;
    sim.get("/v2/account/keys").await;
    sim.get(&format!("/v2/account/keys/{key_id}")).await;
    sim.call(
        Method::PUT,
        &format!("/v2/account/keys/{key_id}"),
        Some(json!({"name": "k2"})),
    )
    .await;
    let id = sim
        .create_droplet("spec-1", json!("ubuntu-24-04-x64"))
        .await;
    sim.post(
        "/v2/droplets",
        json!({"names": ["spec-2", "spec-3"], "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "tags": ["t1"], "ipv6": true}),
    )
    .await;
    sim.get("/v2/droplets").await;
    sim.wait_status(id, "active").await;
    sim.get("/v2/droplets?tag_name=t1&per_page=1").await;
    let snap = sim
        .post(
            &format!("/v2/droplets/{id}/actions"),
            json!({"type": "snapshot", "name": "s"}),
        )
        .await;
    let aid = snap.body["action"]["id"].as_u64().unwrap();
    sim.wait_action(aid).await;
    sim.get(&format!("/v2/droplets/{id}/actions")).await;
    sim.get(&format!("/v2/droplets/{id}/actions/{aid}")).await;
    sim.post(
        &format!("/v2/droplets/{id}/actions"),
        json!({"type": "power_off"}),
    )
    .await;
    sim.post(
        "/v2/droplets/actions?tag_name=t1",
        json!({"type": "power_cycle"}),
    )
    .await;
    sim.get(&format!("/v2/droplets/{id}/snapshots")).await;
    let snaps = sim.get("/v2/snapshots").await;
    let sid = snaps.body["snapshots"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    sim.get(&format!("/v2/snapshots/{sid}")).await;
    sim.get("/v2/images").await;
    sim.get("/v2/images?private=true").await;
    sim.get(&format!("/v2/images/{sid}")).await;
    sim.post("/v2/tags", json!({"name": "t2"})).await;
    sim.get("/v2/tags").await;
    sim.get("/v2/tags/t1").await;
    sim.post(
        "/v2/tags/t2/resources",
        json!({"resources": [{"resource_id": id.to_string(), "resource_type": "droplet"}]}),
    )
    .await;
    let fw = sim
        .post(
            "/v2/firewalls",
            json!({"name": "fw", "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}], "droplet_ids": [id]}),
        )
        .await;
    let fid = fw.body["firewall"]["id"].as_str().unwrap().to_string();
    sim.get("/v2/firewalls").await;
    sim.get(&format!("/v2/firewalls/{fid}")).await;
    sim.call(
        Method::PUT,
        &format!("/v2/firewalls/{fid}"),
        Some(json!({"name": "fw2", "outbound_rules": [{"protocol": "icmp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}}]})),
    )
    .await;
    sim.post(
        &format!("/v2/firewalls/{fid}/droplets"),
        json!({"droplet_ids": [id]}),
    )
    .await;
    sim.get(&format!("/v2/droplets/{id}/firewalls")).await;
    // Errors.
    sim.get("/v2/droplets/1").await;
    sim.post(
        "/v2/droplets",
        json!({"name": "bad_name", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}),
    )
    .await;
    sim.call_with(Method::GET, "/v2/droplets", None, None).await;
    // Deletes.
    sim.delete(&format!("/v2/firewalls/{fid}")).await;
    sim.delete(&format!("/v2/snapshots/{sid}")).await;
    sim.delete("/v2/tags/t2").await;
    sim.delete(&format!("/v2/droplets/{id}")).await;
    sim.delete("/v2/droplets?tag_name=t1").await;
    sim.delete(&format!("/v2/account/keys/{key_id}")).await;

    let spec = spec();
    let mut components = spec["components"].clone();
    convert(&mut components);
    let log = sim.handle().requests();
    assert!(log.len() >= 40, "{}", log.len());
    let statuses: std::collections::BTreeSet<u16> = log.iter().map(|r| r.status).collect();
    for s in [200, 201, 202, 204, 401, 404, 422] {
        assert!(statuses.contains(&s), "scenario covers {s}: {statuses:?}");
    }
    let errors: Vec<String> = log
        .iter()
        .flat_map(|r| check(&spec, &components, r))
        .collect();
    assert!(errors.is_empty(), "spec violations:\n{}", errors.join("\n"));

    // The checker itself catches a broken body: a droplet without `status`, an action with a
    // string id, an error without `message`.
    let mut broken = log
        .iter()
        .find(|r| r.method == "GET" && r.path == format!("/v2/droplets/{id}") && r.status == 200)
        .expect("droplet get recorded")
        .clone();
    if let Some(Value::Object(d)) = broken
        .response_body
        .as_mut()
        .and_then(|b| b.get_mut("droplet"))
    {
        d.remove("status");
    }
    assert!(!check(&spec, &components, &broken).is_empty());
    let mut broken = log.iter().find(|r| r.status == 404).unwrap().clone();
    broken.response_body = Some(json!({"id": "not_found"}));
    assert!(!check(&spec, &components, &broken).is_empty());
    let mut broken = log
        .iter()
        .find(|r| r.path == format!("/v2/droplets/{id}/actions/{aid}"))
        .unwrap()
        .clone();
    broken.response_body.as_mut().unwrap()["action"]["id"] = json!("x");
    assert!(!check(&spec, &components, &broken).is_empty());
}
