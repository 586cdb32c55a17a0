//! Validates request and response bodies against the DigitalOcean OpenAPI
//! subset (tests/data/do_api_subset.json, Apache-2.0, from digitalocean/openapi).
//!
//! OpenAPI 3.0 schemas are JSON Schema plus `nullable`; this rewrites
//! `nullable: true` into a `null`-accepting schema and resolves `$ref`s
//! against the whole document.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

pub struct DoSpec {
    doc: Value,
    cache: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// `type: T, nullable: true` → `type: [T, "null"]`; without `type`: `anyOf [null, schema]`.
fn rewrite_nullable(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (_, child) in m.iter_mut() {
                rewrite_nullable(child);
            }
            if m.remove("nullable") == Some(Value::Bool(true)) {
                if let Some(t) = m.get("type").cloned() {
                    let mut types = match t {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    types.push(json!("null"));
                    m.insert("type".into(), Value::Array(types));
                    if let Some(Value::Array(e)) = m.get_mut("enum") {
                        e.push(Value::Null);
                    }
                } else {
                    let inner = Value::Object(std::mem::take(m));
                    m.insert("anyOf".into(), json!([{"type": "null"}, inner]));
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_nullable),
        _ => {}
    }
}

fn segments(p: &str) -> Vec<&str> {
    p.trim_matches('/').split('/').collect()
}

impl DoSpec {
    pub fn load() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/do_api_subset.json");
        let text = std::fs::read_to_string(&path).expect("read do_api_subset.json");
        let mut doc: Value = serde_json::from_str(&text).expect("parse do_api_subset.json");
        rewrite_nullable(&mut doc);
        Self {
            doc,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The operation for `method` and a concrete path: the template with the most literal segments.
    fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let concrete = segments(path);
        let method = method.to_ascii_lowercase();
        let mut best: Option<(usize, &str, &Value)> = None;
        for (template, item) in self.doc["paths"].as_object()? {
            let Some(op) = item.get(&method) else {
                continue;
            };
            let t = segments(template);
            if t.len() != concrete.len() {
                continue;
            }
            let mut literal = 0;
            let ok = t.iter().zip(&concrete).all(|(a, b)| {
                if a.starts_with('{') {
                    true
                } else {
                    literal += 1;
                    a == b
                }
            });
            if ok && best.is_none_or(|(l, _, _)| literal > l) {
                best = Some((literal, template.as_str(), op));
            }
        }
        best.map(|(_, t, op)| (t, op))
    }

    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved {r}")),
            None => v,
        }
    }

    fn check(&self, schema: &Value, instance: &Value, what: &str) -> Result<(), String> {
        let key = schema.to_string();
        let cached = self.cache.lock().unwrap().get(&key).cloned();
        let validator = match cached {
            Some(v) => v,
            None => {
                // The schema is embedded in the whole document so `#/components/...` refs resolve.
                let mut root = self.doc.clone();
                root.as_object_mut()
                    .unwrap()
                    .insert("allOf".into(), json!([schema]));
                let v = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft4)
                    .should_validate_formats(true)
                    .build(&root)
                    .map_err(|e| format!("{what}: bad schema: {e}"))?;
                let v = Arc::new(v);
                self.cache.lock().unwrap().insert(key, v.clone());
                v
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("{what}: {}\nbody: {instance}", errors.join("; ")))
        }
    }

    /// Validates a request body sent to `method path`.
    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let what = format!("request {method} {path}");
        let (_, op) = self
            .operation(method, path)
            .ok_or(format!("{what}: not in the spec"))?;
        match (op.get("requestBody"), body) {
            (None, None) => Ok(()),
            (None, Some(b)) => Err(format!("{what}: the spec has no request body, sent {b}")),
            (Some(rb), None) => {
                if rb["required"] == json!(true) {
                    Err(format!("{what}: request body required"))
                } else {
                    Ok(())
                }
            }
            (Some(rb), Some(b)) => {
                let schema = &self.deref(rb)["content"]["application/json"]["schema"];
                self.check(schema, b, &what)
            }
        }
    }

    /// Validates the body of a `status` answer to `method path`.
    pub fn check_response(
        &self,
        method: &str,
        path: &str,
        status: u16,
        body: Option<&Value>,
    ) -> Result<(), String> {
        let what = format!("response {status} to {method} {path}");
        let (_, op) = self
            .operation(method, path)
            .ok_or(format!("{what}: not in the spec"))?;
        let responses = &op["responses"];
        let resp = responses
            .get(status.to_string())
            .or_else(|| responses.get("default"))
            .ok_or(format!("{what}: status not in the spec"))?;
        let resp = self.deref(resp);
        let schema = resp
            .get("content")
            .and_then(|c| c.get("application/json"))
            .map(|c| &c["schema"]);
        match (schema, body) {
            (None, None) => Ok(()),
            (None, Some(b)) => Err(format!("{what}: the spec has no body, got {b}")),
            (Some(_), None) => Err(format!("{what}: the spec has a JSON body, got none")),
            (Some(s), Some(b)) => self.check(s, b, &what),
        }
    }
}

#[test]
fn spec_checker_accepts_valid_and_rejects_invalid_bodies() {
    let spec = DoSpec::load();
    let err = json!({"id": "not_found", "message": "nope"});
    spec.check_response("GET", "/v2/droplets/5", 404, Some(&err))
        .unwrap();
    assert!(
        spec.check_response("GET", "/v2/droplets/5", 404, Some(&json!({"id": 1})))
            .is_err()
    );
    let body =
        json!({"name": "web-1", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64", "tags": null});
    spec.check_request("POST", "/v2/droplets", Some(&body))
        .unwrap();
    let both = json!({"name": "web-1", "names": ["a"], "size": "s", "image": 1});
    spec.check_request("POST", "/v2/droplets", Some(&both))
        .unwrap_err();
    let bad_name = json!({"name": "bad_name!", "size": "s", "image": 1});
    spec.check_request("POST", "/v2/droplets", Some(&bad_name))
        .unwrap_err();
    let action = json!({"action": {"id": 1, "status": "completed", "type": "snapshot",
        "started_at": "2026-11-25T08:00:00Z", "completed_at": null, "resource_id": 3,
        "resource_type": "droplet", "region_slug": null}});
    spec.check_response("GET", "/v2/actions/1", 200, Some(&action))
        .unwrap();
    let bad = json!({"action": {"id": 1, "status": "done"}});
    spec.check_response("GET", "/v2/actions/1", 200, Some(&bad))
        .unwrap_err();
    spec.check_response("DELETE", "/v2/droplets/1", 204, None)
        .unwrap();
}
