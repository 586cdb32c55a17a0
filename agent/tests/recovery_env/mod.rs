//! Shared harness of the recovery tests: a real infra-sim on 127.0.0.1, a
//! `DoClient` with test-speed polling, and helpers reading the sim's request log.
#![allow(dead_code)]

use std::time::Duration;

use chrono::Utc;
use infra_agent::provider::{
    CloudProvider, CreateDroplets, DoClient, DoConfig, DropletAction, ImageRef, PollPolicy,
    RetryPolicy, Secret,
};
use infra_agent::recovery::{
    Clock, DropletTemplate, FencingToken, MemoryEffects, MemoryJoins, MemoryNotifier,
    MemorySagaLog, SYSTEM_TAG, SagaCtx, SagaLog, SagaRecord, SagaTiming, SystemClock,
};
use infra_sim::{RecordedRequest, Sim, SimConfig, SimHandle};
use tokio_util::sync::CancellationToken;

pub const BASE_IMAGE: &str = "ubuntu-24-04-x64";

/// A running simulator and a client for it; the simulator stops when dropped.
pub struct Env {
    pub sim: Option<SimHandle>,
    pub shutdown: CancellationToken,
    pub client: DoClient,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with(SimConfig::default()).await
    }

    pub async fn start_with(cfg: SimConfig) -> Env {
        let shutdown = CancellationToken::new();
        let sim = Sim::start(cfg, shutdown.clone()).await.expect("sim starts");
        let mut cfg = DoConfig::new(sim.base_url(), Secret::new("test-token"));
        cfg.poll = PollPolicy {
            min: Duration::from_millis(5),
            max: Duration::from_millis(50),
            timeout: Duration::from_secs(10),
        };
        cfg.retry = RetryPolicy {
            max_retries: 2,
            min_wait: Duration::from_millis(5),
            max_wait: Duration::from_millis(50),
            jitter: false,
            max_rate_limit_wait: Duration::from_secs(1),
        };
        let client = DoClient::new(cfg).expect("client");
        Env {
            sim: Some(sim),
            shutdown,
            client,
        }
    }

    pub fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("running")
    }

    /// Stops the simulator and waits for its tasks.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.sim.take() {
            tokio::time::timeout(Duration::from_secs(20), h.join())
                .await
                .expect("sim stops within 20 s");
        }
    }

    /// Creates an active droplet named `name` with the system tag (plus `extra_tags`).
    pub async fn droplet(&self, name: &str, extra_tags: &[&str]) -> u64 {
        let mut tags = vec![SYSTEM_TAG];
        tags.extend(extra_tags);
        self.droplet_tagged(name, &tags).await
    }

    /// Creates an active droplet named `name` with exactly `tags`.
    pub async fn droplet_tagged(&self, name: &str, tags: &[&str]) -> u64 {
        let tags = tags.iter().map(|t| t.to_string()).collect();
        let created = self
            .client
            .create_droplets(&CreateDroplets {
                names: vec![name.into()],
                region: "nyc3".into(),
                size: "s-1vcpu-1gb".into(),
                image: ImageRef::Slug(BASE_IMAGE.into()),
                ssh_keys: vec![],
                tags,
                user_data: None,
                vpc_uuid: None,
                ipv6: false,
                monitoring: true,
                operation_id: None,
            })
            .await
            .expect("create");
        for a in created.action_ids {
            self.client.wait_action(a).await.expect("create completes");
        }
        created.droplets[0].id
    }

    /// Takes a snapshot of droplet `id` named `name`; returns its id.
    pub async fn snapshot(&self, id: u64, name: &str) -> u64 {
        let a = self
            .client
            .droplet_action(id, &DropletAction::Snapshot { name: name.into() })
            .await
            .expect("snapshot starts");
        self.client.wait_action(a.id).await.expect("snapshot done");
        let all = self.client.list_snapshots().await.expect("list");
        all.iter()
            .find(|s| s.name == name)
            .map(|s| s.id)
            .expect("snapshot listed")
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.sim().requests()
    }
}

pub fn template() -> DropletTemplate {
    DropletTemplate {
        region: "nyc3".into(),
        size: "s-1vcpu-1gb".into(),
        base_image: BASE_IMAGE.into(),
        ssh_key_ids: vec![],
        tags: vec![SYSTEM_TAG.into()],
        user_data: None,
        vpc_uuid: None,
    }
}

pub fn token(term: u64, index: u64) -> FencingToken {
    FencingToken { term, index }
}

pub fn saga(name: &str, generation: u64, old_id: u64, token: FencingToken) -> SagaRecord {
    SagaRecord::open(
        name,
        generation,
        Some(old_id),
        template(),
        token,
        SystemClock.now(),
    )
}

pub fn timing() -> SagaTiming {
    SagaTiming {
        poll: Duration::from_millis(10),
        active_timeout: Duration::from_secs(10),
        join_timeout: Duration::from_secs(10),
        skew: Duration::from_secs(30),
    }
}

/// `POST /v2/droplets` requests (creates) that succeeded.
pub fn creates(reqs: &[RecordedRequest]) -> usize {
    reqs.iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/droplets" && r.status < 300)
        .count()
}

/// Droplet actions of `kind` that were accepted.
pub fn actions(reqs: &[RecordedRequest], kind: &str) -> usize {
    reqs.iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/actions") && r.status < 300)
        .filter(|r| {
            r.request_body
                .as_ref()
                .and_then(|b| b.get("type"))
                .and_then(|t| t.as_str())
                == Some(kind)
        })
        .count()
}

/// Paths of every DELETE.
pub fn deletes(reqs: &[RecordedRequest]) -> Vec<String> {
    reqs.iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect()
}

pub fn now_name(droplet: &str) -> String {
    infra_agent::recovery::snapshot_name(droplet, Utc::now())
}

/// The in-memory trait implementations a saga runs with.
pub struct Fixture {
    pub log: MemorySagaLog,
    pub joins: MemoryJoins,
    pub effects: MemoryEffects,
    pub notifier: MemoryNotifier,
    pub timing: SagaTiming,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            log: MemorySagaLog::default(),
            joins: MemoryJoins::default(),
            effects: MemoryEffects::with_targets(&["web1", "web2"]),
            notifier: MemoryNotifier::default(),
            timing: timing(),
        }
    }

    pub fn ctx<'a>(&'a self, env: &'a Env, log: &'a dyn SagaLog) -> SagaCtx<'a> {
        SagaCtx {
            provider: &env.client,
            log,
            joins: &self.joins,
            effects: &self.effects,
            notifier: &self.notifier,
            clock: &SystemClock,
            timing: &self.timing,
        }
    }
}
