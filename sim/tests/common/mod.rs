//! Shared test helpers: a simulator guard, an HTTP client and condition polling.
#![allow(dead_code)]

use infra_sim::{Sim, SimConfig, SimHandle};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token";

/// A running simulator, shut down when dropped.
pub struct TestSim {
    pub handle: Option<SimHandle>,
    pub shutdown: CancellationToken,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestSim {
    pub async fn start(cfg: SimConfig) -> TestSim {
        let shutdown = CancellationToken::new();
        let handle = Sim::start(cfg, shutdown.clone()).await.expect("sim starts");
        let base = handle.base_url();
        TestSim {
            handle: Some(handle),
            shutdown,
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn handle(&self) -> &SimHandle {
        self.handle.as_ref().expect("running")
    }

    /// Cancels and waits for a clean stop (kills droplet processes, saves state).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(20), h.join())
                .await
                .expect("sim stops within 20 s");
        }
    }

    /// Sends a request with the test token; returns status, headers and JSON body (Null if empty).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, body, Some(TOKEN)).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body read");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates one droplet and returns its id.
    pub async fn create_droplet(&self, name: &str, image: Value) -> u64 {
        let r = self
            .post(
                "/v2/droplets",
                serde_json::json!({"name": name, "size": "s-1vcpu-1gb", "image": image, "region": "nyc3"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        r.body["droplet"]["id"].as_u64().expect("droplet id")
    }

    /// Polls the droplet until its status is `status`.
    pub async fn wait_status(&self, id: u64, status: &str) -> Value {
        let path = format!("/v2/droplets/{id}");
        wait_for(Duration::from_secs(20), || async {
            let r = self.get(&path).await;
            (r.body["droplet"]["status"] == status).then_some(r.body["droplet"].clone())
        })
        .await
        .unwrap_or_else(|| panic!("droplet {id} never became {status}"))
    }

    /// Polls an action until it is no longer in progress; returns its final status.
    pub async fn wait_action(&self, action_id: u64) -> String {
        let path = format!("/v2/actions/{action_id}");
        wait_for(Duration::from_secs(20), || async {
            let r = self.get(&path).await;
            let s = r.body["action"]["status"].as_str()?.to_string();
            (s != "in-progress").then_some(s)
        })
        .await
        .unwrap_or_else(|| panic!("action {action_id} never finished"))
    }
}

impl Drop for TestSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Polls `check` every 20 ms until it yields a value or `timeout` passes.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
