//! Unit tests of the cutover sequence with in-memory fakes and paused time.

use super::*;
use crate::runtime::{
    BuildRequest, ByteStream, ContainerInfo, ImageInfo, PortPublish, ServiceLabels,
};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Default)]
struct FakeRuntime {
    events: Mutex<Vec<String>>,
    /// State reported for the new container by `inspect`.
    new_state: Mutex<String>,
}

impl FakeRuntime {
    fn log(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

fn unsupported() -> RuntimeError {
    RuntimeError::Connect("not used by the cutover".into())
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn build_image(&self, _: &BuildRequest) -> Result<String, RuntimeError> {
        Err(unsupported())
    }
    async fn image_exists(&self, _: &str) -> Result<bool, RuntimeError> {
        Err(unsupported())
    }
    async fn inspect_image(&self, _: &str) -> Result<ImageInfo, RuntimeError> {
        Err(unsupported())
    }
    async fn save_image(&self, _: &str) -> Result<ByteStream, RuntimeError> {
        Err(unsupported())
    }
    async fn load_image(&self, _: ByteStream) -> Result<Vec<String>, RuntimeError> {
        Err(unsupported())
    }
    async fn remove_image(&self, _: &str) -> Result<(), RuntimeError> {
        Err(unsupported())
    }
    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        self.log(format!("run {}", spec.name));
        Ok(format!("id-{}", spec.name))
    }
    async fn stop(&self, name: &str, _: Duration) -> Result<(), RuntimeError> {
        self.log(format!("stop {name}"));
        Ok(())
    }
    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        self.log(format!("remove {name}"));
        Ok(())
    }
    async fn list(&self, _: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>, RuntimeError> {
        Err(unsupported())
    }
    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, RuntimeError> {
        Ok(format!("last {lines} lines of {name}: boom"))
    }
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, RuntimeError> {
        Ok(Some(ContainerInfo {
            id: name.into(),
            name: name.into(),
            image: "img".into(),
            labels: BTreeMap::new(),
            state: self.new_state.lock().unwrap().clone(),
            running: true,
            ports: vec![],
        }))
    }
}

/// Healthy from the `healthy_from`-th probe on (never if `None`).
struct FakeProbe {
    healthy_from: Option<u32>,
    calls: Mutex<u32>,
}

#[async_trait]
impl HealthProbe for FakeProbe {
    async fn check(&self, _: SocketAddr, path: &str) -> Result<(), String> {
        let mut n = self.calls.lock().unwrap();
        *n += 1;
        match self.healthy_from {
            Some(k) if *n >= k && path == "/health" => Ok(()),
            _ => Err("connection refused".into()),
        }
    }
}

struct FakeSwitch {
    runtime: std::sync::Arc<FakeRuntime>,
    fail: bool,
}

#[async_trait]
impl TrafficSwitch for FakeSwitch {
    async fn switch_to(&self, upstream: &str, addr: SocketAddr) -> Result<(), String> {
        self.runtime.log(format!("switch {upstream} {addr}"));
        if self.fail {
            Err("nginx -t failed".into())
        } else {
            Ok(())
        }
    }
}

fn spec(name: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: "img".into(),
        labels: ServiceLabels {
            project: "p".into(),
            environment: "prod".into(),
            service: "web".into(),
            tag: "t".into(),
        },
        extra_labels: BTreeMap::new(),
        command: None,
        env: BTreeMap::new(),
        publish: Some(PortPublish {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 20001,
            container_port: 8000,
        }),
        secrets: BTreeMap::new(),
        init: false,
    }
}

fn cfg() -> CutoverConfig {
    CutoverConfig {
        health_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_secs(1),
        drain: Duration::from_secs(3),
        stop_grace: Duration::from_secs(5),
        log_lines: 7,
    }
}

async fn go(
    healthy_from: Option<u32>,
    fail_switch: bool,
    state: &str,
) -> (Result<CutoverReport, CutoverError>, Vec<String>, u32) {
    let rt = std::sync::Arc::new(FakeRuntime::default());
    *rt.new_state.lock().unwrap() = state.into();
    let probe = FakeProbe {
        healthy_from,
        calls: Mutex::new(0),
    };
    let switch = FakeSwitch {
        runtime: rt.clone(),
        fail: fail_switch,
    };
    let c = Cutover {
        runtime: rt.as_ref(),
        probe: &probe,
        switch: &switch,
        config: cfg(),
    };
    let r = c
        .run("p-prod-web", &spec("new"), "/health", Some("old"))
        .await;
    let calls = *probe.calls.lock().unwrap();
    (r, rt.events(), calls)
}

#[tokio::test(start_paused = true)]
async fn healthy_new_replaces_old_after_switch_and_drain() {
    let t0 = Instant::now();
    let (r, events, _) = go(Some(3), false, "running").await;
    let r = r.unwrap();
    assert_eq!(
        events,
        [
            "run new",
            "switch p-prod-web 127.0.0.1:20001",
            "stop old",
            "remove old"
        ]
    );
    assert_eq!(r.probes, 3);
    assert_eq!(r.healthy_after, Duration::from_secs(2));
    assert_eq!(r.replaced.as_deref(), Some("old"));
    // 2 s of polling + 3 s drain.
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn never_healthy_keeps_old_and_reports_logs() {
    let t0 = Instant::now();
    let (r, events, calls) = go(None, false, "running").await;
    let err = r.unwrap_err();
    assert_eq!(events, ["run new", "stop new", "remove new"]);
    let msg = err.to_string();
    assert!(msg.contains("never became healthy"), "{msg}");
    assert!(msg.contains("last 7 lines of new: boom"), "{msg}");
    assert!(msg.contains("connection refused"), "{msg}");
    // Probes at t = 0, 1, ..., 10 s: the timeout bounds the wait.
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    assert_eq!(calls, 11);
}

#[tokio::test(start_paused = true)]
async fn exited_container_fails_without_waiting_for_timeout() {
    let t0 = Instant::now();
    let (r, events, calls) = go(None, false, "exited").await;
    assert!(r.unwrap_err().to_string().contains("container exited"));
    assert_eq!(events, ["run new", "stop new", "remove new"]);
    assert_eq!(calls, 1);
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn failed_switch_keeps_old() {
    let (r, events, _) = go(Some(1), true, "running").await;
    assert!(matches!(r, Err(CutoverError::Switch { .. })));
    assert_eq!(
        events,
        [
            "run new",
            "switch p-prod-web 127.0.0.1:20001",
            "stop new",
            "remove new"
        ]
    );
}
