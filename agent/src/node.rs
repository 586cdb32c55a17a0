//! One running agent: the mTLS gRPC server (Health, Control, Raft, and
//! Images + Containers on this droplet's own container engine),
//! membership, the health monitor, the quorum aggregator and the Raft node
//! with its join, voter-balancing and failure-committing tasks, all owned
//! by one `JoinSet` and stopped together (clean leave on shutdown; abrupt
//! stop for crash tests).

mod cluster;
pub mod formation;
mod status;

use std::sync::Arc;
use std::time::Duration;

use infra_proto::v1::containers_server::ContainersServer;
use infra_proto::v1::control_server::ControlServer;
use infra_proto::v1::health_server::HealthServer;
use infra_proto::v1::images_server::ImagesServer;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

pub use cluster::{ClusterLink, JOIN_VERSION, MtlsChannels, Route};
pub use status::{
    ConfirmedStatus, FailureStatus, MemberState, MemberStatus, NodeStatus, RecoveryStatus,
    STATUS_VERSION, StatusSource,
};

use crate::api::containers::ContainersApi;
use crate::api::control::ControlApi;
use crate::api::handler::{ControlHandler, Unavailable};
use crate::api::health::HealthApi;
use crate::api::images::ImagesApi;
use crate::api::raft::RaftService;
use crate::config::AgentConfig;
use crate::consensus::{Consensus, ConsensusConfig, ConsensusError};
use crate::deploy::delivery::EngineLoader;
use crate::fault::FaultSwitch;
use crate::health::{
    Aggregator, Assignment, BroadcastVotes, GrpcProber, HealthSnapshot, MonitorConfig, Prober,
    VoteSink, run_aggregator, run_monitor,
};
use crate::membership::{
    AuthCounts, GossipKey, HealthDigest, KeyError, Membership, MembershipConfig, MembershipError,
    MembershipView, NodeInfo, Presence, next_generation,
};
use crate::quorum::ConfirmedFailure;
use crate::runtime::{ContainerRuntime, LocalEngine};
use crate::tls::{TlsError, TlsMaterial};
use crate::traffic::Traffic;

/// Exit status of an agent that stopped because a newer generation of it
/// runs elsewhere: the service manager must not restart it
/// (systemd: `RestartPreventExitStatus=3`).
pub const ZOMBIE_EXIT_CODE: i32 = 3;

/// How long a clean stop waits for tasks before aborting them.
const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    GossipKey(#[from] KeyError),
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error("cannot listen for gRPC on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid TLS configuration: {0}")]
    TlsConfig(String),
    #[error("a newer generation of node {0} joined the cluster; this instance stopped")]
    Zombie(String),
    #[error("cannot create the Raft data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
}

/// Optional inputs a caller can wire in (tests, benches, the orchestrator).
#[derive(Default)]
pub struct NodeDeps {
    /// Monitor assignment from the planner; `None` → ring over members.
    pub assignment: Option<watch::Receiver<Assignment>>,
    /// Where votes go; `None` → broadcast to every agent's aggregator.
    pub vote_sink: Option<Arc<dyn VoteSink>>,
    pub fault: FaultSwitch,
    /// More gRPC services to serve on the agent's mTLS port (e.g. the Raft
    /// service), each added to the route table.
    pub extra_services: Vec<ServiceHook>,
    /// Runs ApplySpec, Scale, ... on the leader; `None` → every such call
    /// answers "not available on this agent yet".
    pub control: Option<Arc<dyn ControlHandler>>,
    /// Raft timing; `None` → defaults (cluster name = cluster id).
    pub consensus: Option<ConsensusConfig>,
    /// This droplet's container engine (the Images and Containers
    /// services); `None` → [`LocalEngine`] with the default secrets root,
    /// connected on first use.
    pub engine: Option<Arc<dyn ContainerRuntime>>,
}

/// Adds one service to the agent's gRPC routes.
pub type ServiceHook = Box<dyn FnOnce(&mut RoutesBuilder) + Send>;

/// A started agent.
pub struct RunningNode {
    name: String,
    tasks: JoinSet<()>,
    membership: Membership,
    inner: CancellationToken,
    shutdown: CancellationToken,
    zombie: CancellationToken,
    status: Arc<StatusSource>,
    aggregator: Arc<Aggregator>,
    consensus: Consensus,
    link: ClusterLink,
    view: watch::Receiver<Arc<MembershipView>>,
}

/// Runs an agent until `shutdown` is cancelled (then leaves cleanly) or a
/// newer generation of it appears (zombie: error).
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), NodeError> {
    start(config, NodeDeps::default(), shutdown)
        .await?
        .wait()
        .await
}

/// Starts every component of an agent.
pub async fn start(
    config: AgentConfig,
    deps: NodeDeps,
    shutdown: CancellationToken,
) -> Result<RunningNode, NodeError> {
    crate::tls::install_crypto_provider();
    let tls = TlsMaterial::load(
        &config.tls.ca_cert,
        &config.tls.node_cert,
        &config.tls.node_key,
    )?;
    let key = GossipKey::load(&config.gossip_key_file)?;
    let generation = next_generation(&config.data_dir)?;
    let inner = CancellationToken::new();
    let zombie = CancellationToken::new();
    let traffic = Arc::new(Traffic::default());
    let mut tasks = JoinSet::new();

    let listener = tokio::net::TcpListener::bind(config.grpc_listen)
        .await
        .map_err(|source| NodeError::Listen {
            addr: config.grpc_listen,
            source,
        })?;
    let info = NodeInfo {
        role: config.role.clone(),
        project: config.project.clone(),
        grpc_addr: config.grpc_advertise,
        generation,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        health: HealthDigest::default(),
        presence: Presence::Up,
    };
    let membership = Membership::start(
        MembershipConfig {
            node_name: config.node_name.clone(),
            cluster_id: config.cluster_id.clone(),
            gossip_listen: config.gossip_listen,
            gossip_advertise: config.gossip_advertise,
            seeds: config.seeds.clone(),
            gossip_interval: config.gossip_interval,
            info,
            key,
            traffic: traffic.clone(),
        },
        deps.fault.clone(),
        &mut tasks,
        inner.clone(),
        zombie.clone(),
    )
    .await?;
    let view = membership.view();

    let raft_dir = config.data_dir.join("raft");
    std::fs::create_dir_all(&raft_dir).map_err(|source| NodeError::DataDir {
        path: raft_dir.clone(),
        source,
    })?;
    let channels = Arc::new(MtlsChannels::new(
        tls.client_config(),
        deps.fault.clone(),
        traffic.clone(),
    ));
    let raft_config = deps.consensus.unwrap_or_else(|| ConsensusConfig {
        cluster_name: config.cluster_id.clone(),
        ..ConsensusConfig::default()
    });
    let me = crate::consensus::NodeInfo::new(
        config.node_name.clone(),
        config.grpc_advertise.to_string(),
    );
    let consensus = Consensus::start(
        me.clone(),
        &raft_dir,
        &raft_config,
        channels.clone(),
        inner.child_token(),
    )
    .await?;
    let link = ClusterLink {
        consensus: consensus.clone(),
        channels,
        cluster_id: config.cluster_id.as_str().into(),
        campaign: config.campaign,
        join_notes: Arc::default(),
    };
    // No campaigning until the cluster has admitted this agent (see
    // `cluster::join`): a droplet restored from a snapshot carries an old
    // log and term, and its elections would only disrupt the leader. No
    // agent forms a group on its own either: only `Initialize` does
    // (`formation`).
    consensus.allow_elections(false);

    let assignment = match deps.assignment {
        Some(a) => a,
        None => {
            let (tx, rx) = watch::channel(Assignment::new());
            tasks.spawn(cluster::derive_assignment(
                view.clone(),
                consensus.subscribe_applied(),
                consensus.clone(),
                tx,
                inner.clone(),
            ));
            rx
        }
    };
    let aggregator = Aggregator::new(config.suspicion_window * 2);
    let clients = Arc::new(
        GrpcProber::with_fault(
            config.node_name.clone(),
            tls.client_config(),
            deps.fault.clone(),
        )
        .with_traffic(traffic.clone()),
    );
    let prober: Arc<dyn Prober> = clients.clone();
    let votes = deps.vote_sink.unwrap_or_else(|| {
        Arc::new(BroadcastVotes {
            me: config.node_name.clone(),
            local: aggregator.clone(),
            clients: clients.clone(),
            view: view.clone(),
            timeout: config.probe_timeout * 2,
        })
    });
    let (health_tx, health_rx) = watch::channel(HealthSnapshot::default());

    let health_api = HealthApi {
        node_name: config.node_name.clone(),
        generation,
        prober: prober.clone(),
        aggregator: aggregator.clone(),
        fault: deps.fault.clone(),
    };
    let status = Arc::new(StatusSource {
        node: config.node_name.clone(),
        generation,
        view: view.clone(),
        assignment: assignment.clone(),
        health: health_rx.clone(),
        confirmed: aggregator.confirmed(),
        auth: membership.auth_stats(),
        traffic,
        consensus: consensus.clone(),
        join_notes: link.join_notes.clone(),
    });
    let engine = deps
        .engine
        .unwrap_or_else(|| Arc::new(LocalEngine::default()));
    let mut routes = RoutesBuilder::default();
    routes
        .add_service(HealthServer::new(health_api))
        .add_service(ControlServer::new(ControlApi {
            node_name: config.node_name.clone(),
            status: status.clone(),
            link: link.clone(),
            view: view.clone(),
            handler: deps.control.unwrap_or_else(|| Arc::new(Unavailable)),
        }))
        .add_service(ImagesServer::new(ImagesApi {
            loader: Arc::new(EngineLoader {
                engine: engine.clone(),
            }),
            engine: engine.clone(),
        }))
        .add_service(ContainersServer::new(ContainersApi {
            node_name: config.node_name.clone(),
            engine,
        }))
        .add_service(
            RaftService::new(&consensus)
                .with_fault(deps.fault.clone())
                .into_server(),
        );
    for hook in deps.extra_services {
        hook(&mut routes);
    }
    let server = Server::builder()
        .tls_config(tls.server_config())
        .map_err(|e| NodeError::TlsConfig(e.to_string()))?
        .add_routes(routes.routes());
    let stop = inner.clone();
    let addr = config.grpc_listen;
    tasks.spawn(async move {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        if let Err(err) = server
            .serve_with_incoming_shutdown(incoming, stop.cancelled())
            .await
        {
            tracing::error!(%addr, %err, "gRPC server stopped");
        }
    });

    tasks.spawn(run_monitor(
        MonitorConfig {
            node_name: config.node_name.clone(),
            interval: config.probe_interval,
            probe_timeout: config.probe_timeout,
            window: config.suspicion_window,
            heartbeat_lag: config.gossip_interval * 2,
        },
        prober,
        votes,
        assignment.clone(),
        view.clone(),
        health_tx,
        deps.fault.clone(),
        inner.clone(),
    ));
    tasks.spawn(run_aggregator(
        aggregator.clone(),
        assignment,
        view.clone(),
        config.probe_interval,
        config.gossip_interval * 2,
        inner.clone(),
    ));
    // Without gossip peers, a joining agent asks the agents at its seeds'
    // addresses (same gRPC port as its own: every droplet uses the same).
    let fallback: Vec<String> = config
        .seeds
        .iter()
        .filter_map(|s| s.parse::<std::net::SocketAddr>().ok())
        .map(|a| std::net::SocketAddr::new(a.ip(), config.grpc_advertise.port()).to_string())
        .collect();
    tasks.spawn(cluster::join(
        link.clone(),
        me,
        view.clone(),
        fallback,
        inner.clone(),
    ));
    let link_for_node = link.clone();
    tasks.spawn(cluster::balance(link.clone(), inner.clone()));
    tasks.spawn(cluster::commit_failures(
        link,
        aggregator.confirmed(),
        inner.clone(),
    ));
    tasks.spawn(publish_health(
        health_rx,
        membership.health_publisher(),
        inner.clone(),
    ));
    tracing::info!(node = %config.node_name, generation, grpc = %config.grpc_advertise,
        gossip = %config.gossip_advertise, "agent started");
    Ok(RunningNode {
        name: config.node_name,
        tasks,
        membership,
        inner,
        shutdown,
        zombie,
        status,
        aggregator,
        consensus,
        link: link_for_node,
        view,
    })
}

impl RunningNode {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn status(&self) -> NodeStatus {
        self.status.snapshot()
    }

    pub fn auth_counts(&self) -> AuthCounts {
        self.membership.auth_counts()
    }

    pub fn view(&self) -> watch::Receiver<Arc<MembershipView>> {
        self.membership.view()
    }

    /// Failures this node's aggregator confirmed.
    pub fn confirmed(&self) -> watch::Receiver<Vec<ConfirmedFailure>> {
        self.aggregator.confirmed()
    }

    /// This agent's Raft node.
    pub fn consensus(&self) -> &Consensus {
        &self.consensus
    }

    /// Forms the cluster with this agent as its first member, as the
    /// `Initialize` call does (tests and local clusters).
    pub async fn initialize(
        &self,
        cluster_id: &str,
    ) -> Result<formation::Formed, formation::FormError> {
        formation::initialize(&self.link, &self.view, cluster_id, now_ms()).await
    }

    /// Waits for shutdown (clean leave) or zombie detection.
    pub async fn wait(self) -> Result<(), NodeError> {
        let zombie = tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = self.zombie.cancelled() => true,
        };
        let name = self.name.clone();
        self.stop().await;
        if zombie {
            return Err(NodeError::Zombie(name));
        }
        Ok(())
    }

    /// Clean stop: announce the leave, stop every task, join them.
    pub async fn stop(mut self) {
        self.membership.leave().await;
        self.inner.cancel();
        let joined = tokio::time::timeout(STOP_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if joined.is_err() {
            tracing::warn!(node = %self.name, "tasks did not stop in time; aborting them");
            self.tasks.shutdown().await;
        }
        self.consensus.stopped().await;
        tracing::info!(node = %self.name, "agent stopped");
    }

    /// Abrupt stop with no goodbye (what a crash looks like to peers).
    pub async fn kill(mut self) {
        self.membership.abort().await;
        self.inner.cancel();
        self.tasks.shutdown().await;
        self.consensus.stopped().await;
    }
}

/// Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Gossips this node's health digest whenever it changes.
async fn publish_health(
    mut health: watch::Receiver<HealthSnapshot>,
    publisher: crate::membership::HealthPublisher,
    shutdown: CancellationToken,
) {
    let mut last = HealthDigest::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = health.changed() => if changed.is_err() { return },
        }
        let digest = {
            let h = health.borrow_and_update();
            HealthDigest {
                suspects: h.suspicions.len() as u32,
                lagging: h.stretched,
            }
        };
        if digest != last {
            publisher.publish(digest).await;
            last = digest;
        }
    }
}
