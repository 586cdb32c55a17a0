//! An agent that can orchestrate: when its bootstrap shipped the CA key and
//! the cloud API token, the node runs with the [`OrchestratorHandler`], the
//! leader-side recovery runner ([`Healer`]), the leader's load balancer
//! ([`Balancer`]), the watcher of deploys interrupted by a leader change
//! ([`LeaderDeploys::watch_interrupted`]) and, when notification configs sit
//! in [`notify_dir`], the e-mail/SMS fan-out and the leader's heartbeat
//! e-mails: owned tasks joined on shutdown.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use super::balancer::{Balancer, BalancerSettings};
use super::{
    ClusterIdentity, DeploySettings, Healer, LeaderDeploys, MembershipJoins, NodeRuntime,
    OrchestratorHandler, ServicePlacer, Waits,
};
use crate::bootstrap::{api_token_path, ca_key_path};
use crate::config::AgentConfig;
use crate::deploy::sealed::SecretsKey;
use crate::membership::GossipKey;
use crate::node::{NodeDeps, NodeError};
use crate::notify::{Fanout, NotifyBundle, NotifySetup, Retry, run_heartbeats, summarize};
use crate::provider::{DEFAULT_BASE_URL, DoClient, DoConfig, ProviderError, Secret};
use crate::recovery::{LogNotifier, Notifier, Notifiers, RecoveryPolicy, SagaTiming};
use crate::tls::{Ca, TlsError, TlsMaterial};

/// Base image of droplets the leader creates.
pub const DEFAULT_BASE_IMAGE: &str = "ubuntu-24-04-x64";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Key(#[from] crate::membership::KeyError),
    #[error(transparent)]
    Provider(#[from] Box<ProviderError>),
    #[error("environment variable {name} has invalid value `{value}`: expected a number")]
    Invalid { name: &'static str, value: String },
    #[error(transparent)]
    Notify(#[from] crate::notify::SetupError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Environment variable overriding the flapping limit (recoveries of one
/// droplet per hour; default 3), e.g. for benchmarks.
pub const MAX_RECOVERIES_ENV: &str = "INFRA_AGENT_MAX_RECOVERIES";

fn max_recoveries() -> Result<usize, SetupError> {
    match std::env::var(MAX_RECOVERIES_ENV) {
        Err(_) => Ok(RecoveryPolicy::default().max_recoveries),
        Ok(v) => v.parse().map_err(|_| SetupError::Invalid {
            name: MAX_RECOVERIES_ENV,
            value: v,
        }),
    }
}

/// Where an orchestrating agent reads `email_config.json` and
/// `sms_config.json`: `notify/` beside its CA key and API token.
pub fn notify_dir(config: &AgentConfig) -> PathBuf {
    ca_key_path(config).with_file_name(crate::notify::NOTIFY_DIR)
}

/// What an orchestrating agent runs with.
pub struct LeaderSetup {
    pub provider: Arc<DoClient>,
    pub identity: Arc<ClusterIdentity>,
    pub policy: RecoveryPolicy,
    pub timing: SagaTiming,
    pub waits: Waits,
    /// Notification channels (`None`: notices are only logged).
    pub notify: Option<NotifySetup>,
}

impl LeaderSetup {
    /// `Some` when the CA key and API token sit next to the agent's CA
    /// certificate; `api_url` defaults to DigitalOcean's.
    pub fn from_files(
        config: &AgentConfig,
        api_url: Option<&str>,
    ) -> Result<Option<LeaderSetup>, SetupError> {
        let (key_path, token_path) = (ca_key_path(config), api_token_path(config));
        if !key_path.exists() || !token_path.exists() {
            return Ok(None);
        }
        let ca = Ca::load(&config.tls.ca_cert, &key_path, &config.cluster_id)?;
        let token = std::fs::read_to_string(&token_path).map_err(|source| SetupError::Read {
            path: token_path.clone(),
            source,
        })?;
        let token = Secret::new(token.trim());
        let dir = notify_dir(config);
        let bundle = NotifyBundle::load(&dir).map_err(crate::notify::SetupError::from)?;
        let notify = match &bundle {
            Some(b) => NotifySetup::from_bundle(b, &dir, |v| std::env::var(v).ok())?,
            None => None,
        };
        let provider = DoClient::new(DoConfig::new(
            api_url.unwrap_or(DEFAULT_BASE_URL),
            token.clone(),
        ))
        .map_err(Box::new)?;
        Ok(Some(LeaderSetup {
            provider: Arc::new(provider),
            identity: Arc::new(ClusterIdentity {
                cluster_id: config.cluster_id.clone(),
                ca: Arc::new(ca),
                gossip_key: GossipKey::load(&config.gossip_key_file)?,
                grpc_port: config.grpc_advertise.port(),
                gossip_port: config.gossip_advertise.port(),
                base_image: DEFAULT_BASE_IMAGE.to_string(),
                ssh_key_ids: Vec::new(),
                api_token: Some(token),
                notify: bundle.map(Arc::new),
            }),
            policy: RecoveryPolicy {
                max_recoveries: max_recoveries()?,
                ..RecoveryPolicy::default()
            },
            timing: SagaTiming {
                poll: Duration::from_millis(250),
                ..SagaTiming::default()
            },
            waits: Waits::default(),
            notify,
        }))
    }
}

/// Runs the agent until `shutdown`; with a [`LeaderSetup`] it serves the
/// orchestrating control calls and recovers confirmed failures while it
/// is the Raft leader.
pub async fn run_agent(
    config: AgentConfig,
    setup: Option<LeaderSetup>,
    shutdown: CancellationToken,
) -> Result<(), NodeError> {
    let Some(setup) = setup else {
        return crate::node::run(config, shutdown).await;
    };
    let stop_notify = CancellationToken::new();
    let (fanout, fanout_task) = match &setup.notify {
        Some(n) => {
            tracing::info!(setup = ?n, "operator notifications enabled");
            let (f, t) = Fanout::start(
                n.channels.clone(),
                Retry::default(),
                n.subject_prefix.clone(),
                stop_notify.clone(),
            );
            (Some(f), Some(t))
        }
        None => (None, None),
    };
    let runtime = Arc::new(OnceLock::new());
    let spec_dir = config.data_dir.join("spec");
    let balancer = Arc::new(Balancer::new(BalancerSettings {
        nginx: config.nginx.clone(),
        prefix: config.data_dir.join("lb"),
        listen: config.lb_listen,
        advertise_ip: config.grpc_advertise.ip(),
    }));
    let deploys = Arc::new(LeaderDeploys::new(
        DeploySettings {
            data_dir: config.data_dir.clone(),
            grpc_port: config.grpc_advertise.port(),
            tls: TlsMaterial::load(
                &config.tls.ca_cert,
                &config.tls.node_cert,
                &config.tls.node_key,
            )
            .map_err(|e| NodeError::TlsConfig(e.to_string()))?
            .client_config(),
        },
        SecretsKey::derive(&setup.identity.gossip_key),
        balancer.clone(),
    ));
    let handler = OrchestratorHandler {
        runtime: runtime.clone(),
        provider: setup.provider.clone(),
        identity: setup.identity.clone(),
        waits: setup.waits,
        spec_dir: spec_dir.clone(),
        snapshots_kept: setup.policy.snapshots_kept,
        deploys: Some(deploys.clone()),
        notify: fanout.clone(),
    };
    let deps = NodeDeps {
        control: Some(Arc::new(handler)),
        ..NodeDeps::default()
    };
    let cluster_id = config.cluster_id.clone();
    let mut config = config;
    if config.seeds.is_empty() {
        // The master's user-data names no seeds (it was created first): a
        // rebuilt one finds the rest of its cluster through the cloud API.
        config.seeds = super::discovery::discover_seeds(
            setup.provider.as_ref(),
            &config.cluster_id,
            &config.node_name,
            config.gossip_advertise.port(),
        )
        .await;
    }
    let node = crate::node::start(config, deps, shutdown.clone()).await?;
    let consensus = node.consensus().clone();
    let _ = runtime.set(NodeRuntime {
        consensus: consensus.clone(),
        joins: MembershipJoins::new(node.view()).with_raft(consensus.clone()),
    });
    let healer = Arc::new(Healer {
        provider: setup.provider.clone(),
        store: Arc::new(consensus.clone()),
        joins: Arc::new(MembershipJoins::new(node.view()).with_raft(consensus.clone())),
        notifier: match &fanout {
            Some(f) => Arc::new(Notifiers(vec![
                Box::new(LogNotifier),
                Box::new(f.clone()) as Box<dyn Notifier>,
            ])),
            None => Arc::new(LogNotifier),
        },
        identity: setup.identity.clone(),
        policy: setup.policy.clone(),
        timing: setup.timing.clone(),
        placer: Some(Arc::new(ServicePlacer {
            deploys: deploys.clone(),
            spec_dir: spec_dir.clone(),
        })),
    });
    // Leader-side owners: each acts only while this agent leads; all are
    // stopped and joined before the notification fan-out they feed.
    let stop_leader = CancellationToken::new();
    let is_leader = |c: &crate::consensus::Consensus| {
        let c = c.clone();
        move || c.metrics().state == ServerState::Leader
    };
    let leader_tasks = [
        (
            "recovery runner",
            tokio::spawn(healer.run(
                consensus.subscribe_applied(),
                is_leader(&consensus),
                Duration::from_secs(5),
                stop_leader.clone(),
            )),
        ),
        (
            "load balancer",
            tokio::spawn(balancer.run(
                Arc::new(consensus.clone()),
                deploys.clone(),
                consensus.subscribe_applied(),
                is_leader(&consensus),
                Duration::from_secs(2),
                stop_leader.clone(),
            )),
        ),
        (
            "interrupted-deploy watcher",
            tokio::spawn(deploys.clone().watch_interrupted(
                Arc::new(consensus.clone()),
                spec_dir,
                consensus.subscribe_applied(),
                is_leader(&consensus),
                Duration::from_secs(2),
                stop_leader.clone(),
            )),
        ),
    ];
    let heartbeat_task = heartbeat(
        fanout,
        setup.notify.as_ref().and_then(|n| n.heartbeat),
        consensus.clone(),
        cluster_id,
        stop_notify.clone(),
    );
    let result = node.wait().await;
    stop_leader.cancel();
    for (name, task) in leader_tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "{name} panicked");
        }
    }
    stop_notify.cancel();
    for task in [heartbeat_task, fanout_task].into_iter().flatten() {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "notification task panicked");
        }
    }
    result
}

/// Starts the heartbeat e-mails of the leader, if configured.
fn heartbeat(
    fanout: Option<Fanout>,
    interval: Option<Duration>,
    consensus: crate::consensus::Consensus,
    cluster_id: String,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let (fanout, interval) = (fanout?, interval?);
    let window = interval.as_secs().div_ceil(60);
    let leader = consensus.clone();
    Some(tokio::spawn(run_heartbeats(
        fanout,
        interval,
        move || leader.metrics().state == ServerState::Leader,
        move || {
            summarize(
                &cluster_id,
                &consensus.local_state(),
                consensus.leader().map(|l| l.name),
                chrono::Utc::now(),
                window,
            )
        },
        stop,
    )))
}
