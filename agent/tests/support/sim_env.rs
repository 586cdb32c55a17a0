//! A simulator plus a `DoClient` pointed at it, torn down on drop, and a
//! check of every recorded request against the OpenAPI subset.

use std::time::Duration;

use infra_agent::provider::{
    CreateDroplets, DoClient, DoConfig, ImageRef, PollPolicy, RetryPolicy, Secret,
};
use infra_sim::{Profile, RecordedRequest, Sim, SimConfig, SimHandle, Target};
use tokio_util::sync::CancellationToken;

use super::do_spec::DoSpec;

pub const TOKEN: &str = "test-token-1";

pub fn create_req(names: &[&str]) -> CreateDroplets {
    CreateDroplets {
        names: names.iter().map(|s| s.to_string()).collect(),
        region: "nyc3".into(),
        size: "s-1vcpu-1gb".into(),
        image: ImageRef::Slug("ubuntu-24-04-x64".into()),
        ssh_keys: vec![],
        tags: vec!["web".into()],
        user_data: Some("#cloud-config\nruncmd: [echo hi]\n".into()),
        vpc_uuid: None,
        ipv6: false,
        monitoring: false,
        operation_id: None,
    }
}

pub fn target(method: &str, path: &str) -> Target {
    Target {
        method: Some(method.into()),
        path: path.into(),
        exact: true,
    }
}

pub struct SimEnv {
    pub sim: Option<SimHandle>,
    pub cancel: CancellationToken,
    pub spec: DoSpec,
}

impl Drop for SimEnv {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Retries and polls in milliseconds so tests run fast.
pub fn fast_config(base_url: &str, token: &str) -> DoConfig {
    let mut cfg = DoConfig::new(base_url, Secret::new(token));
    cfg.retry = RetryPolicy {
        max_retries: 4,
        min_wait: Duration::from_millis(5),
        max_wait: Duration::from_millis(40),
        jitter: true,
        max_rate_limit_wait: Duration::from_secs(5),
    };
    cfg.poll = PollPolicy {
        min: Duration::from_millis(5),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
    };
    cfg.request_timeout = Duration::from_secs(10);
    cfg
}

impl SimEnv {
    pub async fn start(profile: Profile, tokens: &[&str]) -> Self {
        let cfg = SimConfig {
            profile,
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            ..SimConfig::default()
        };
        Self::start_with(cfg).await
    }

    pub async fn start_with(cfg: SimConfig) -> Self {
        let cancel = CancellationToken::new();
        let sim = Sim::start(cfg, cancel.clone()).await.expect("start sim");
        SimEnv {
            sim: Some(sim),
            cancel,
            spec: DoSpec::load(),
        }
    }

    pub fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("sim running")
    }

    pub fn client(&self, token: &str) -> DoClient {
        DoClient::new(fast_config(&self.sim().base_url(), token)).expect("client")
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sim().requests()
    }

    /// Every request body we sent and every response body the simulator sent
    /// must validate against the spec.
    pub fn assert_bodies_match_spec(&self) {
        let mut problems = Vec::new();
        let reqs = self.requests();
        assert!(!reqs.is_empty(), "no requests recorded");
        for r in &reqs {
            if let Err(e) = self
                .spec
                .check_request(&r.method, &r.path, r.request_body.as_ref())
            {
                problems.push(e);
            }
            // Status 0: the simulator closed the connection (a `Reset` fault); no answer to check.
            if r.status == 0 {
                continue;
            }
            if let Err(e) =
                self.spec
                    .check_response(&r.method, &r.path, r.status, r.response_body.as_ref())
            {
                problems.push(e);
            }
        }
        problems.dedup();
        assert!(
            problems.is_empty(),
            "{} of {} exchanges break the spec:\n{}",
            problems.len(),
            reqs.len(),
            problems.join("\n")
        );
    }

    /// Cancels the simulator and waits until it has stopped.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(sim) = self.sim.take() {
            tokio::time::timeout(Duration::from_secs(10), sim.join())
                .await
                .expect("sim stops within 10 s");
        }
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .count()
    }

    /// The most requests the simulator saw within any `window`.
    pub fn max_in_window(&self, window: std::time::Duration) -> usize {
        max_in_window(&self.requests(), window)
    }
}

/// The most requests within any `window`, from the log's arrival times.
pub fn max_in_window(reqs: &[RecordedRequest], window: std::time::Duration) -> usize {
    let mut at: Vec<u64> = reqs.iter().map(|r| r.at_unix_ms).collect();
    at.sort_unstable();
    let w = window.as_millis() as u64;
    (0..at.len())
        .map(|i| at[i..].iter().take_while(|t| **t < at[i] + w).count())
        .max()
        .unwrap_or(0)
}
