//! Cluster membership: chitchat gossip over an authenticated UDP transport,
//! each member's typed [`NodeInfo`], the observed member view (live set,
//! heartbeats), restart generations and zombie protection.

mod auth;
mod node_info;
mod transport;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use auth::{AuthCounts, AuthStats, Authenticator, GossipKey, KeyError, Rejected};
pub use node_info::{HealthDigest, NODE_INFO_VERSION, NodeInfo, NodeInfoError, Presence};
pub use transport::AuthTransport;

use crate::fault::FaultSwitch;

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("cannot start gossip on {addr}: {reason}")]
    Start { addr: SocketAddr, reason: String },
    #[error("cannot persist the generation counter in {path}: {source}")]
    Generation {
        path: String,
        source: std::io::Error,
    },
}

/// One member as this agent sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub gossip_addr: SocketAddr,
    pub info: NodeInfo,
    /// Whether chitchat's failure detector considers it live.
    pub live: bool,
    pub heartbeat: u64,
    /// When this agent last saw the member's heartbeat advance.
    pub heartbeat_seen_at: Instant,
}

/// The members this agent knows, by name (latest generation only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MembershipView {
    pub members: BTreeMap<String, Member>,
}

/// What membership needs to start.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    pub node_name: String,
    pub cluster_id: String,
    pub gossip_listen: SocketAddr,
    pub gossip_advertise: SocketAddr,
    pub seeds: Vec<String>,
    pub gossip_interval: Duration,
    pub info: NodeInfo,
    pub key: GossipKey,
    /// Where the gossip bytes are counted.
    pub traffic: Arc<crate::traffic::Traffic>,
}

/// A running membership.
pub struct Membership {
    handle: ChitchatHandle,
    view: watch::Receiver<Arc<MembershipView>>,
    stats: Arc<AuthStats>,
    gossip_interval: Duration,
}

/// Returns this start's generation: unix millis, but always above the last
/// one persisted in `data_dir/generation` (clock steps back are harmless).
pub fn next_generation(data_dir: &Path) -> Result<u64, MembershipError> {
    let path = data_dir.join("generation");
    let err = |source| MembershipError::Generation {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let previous = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let generation = now.max(previous + 1);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, generation.to_string()).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(generation)
}

impl Membership {
    /// Starts gossip and the view observer (owned by `tasks`). If a newer
    /// generation of this node shows up, `zombie` is cancelled.
    pub async fn start(
        config: MembershipConfig,
        fault: FaultSwitch,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
        zombie: CancellationToken,
    ) -> Result<Membership, MembershipError> {
        let stats = Arc::new(AuthStats::default());
        let transport = AuthTransport::new(config.key.clone(), stats.clone(), fault)
            .with_traffic(config.traffic.clone());
        let self_id = ChitchatId::new(
            config.node_name.clone(),
            config.info.generation,
            config.gossip_advertise,
        );
        let chitchat_config = ChitchatConfig {
            chitchat_id: self_id.clone(),
            cluster_id: config.cluster_id.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr: config.gossip_listen,
            seed_nodes: config.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                initial_interval: config.gossip_interval,
                dead_node_grace_period: Duration::from_secs(3_600),
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3_600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let handle = chitchat::spawn_chitchat(chitchat_config, config.info.to_kv(), &transport)
            .await
            .map_err(|e| MembershipError::Start {
                addr: config.gossip_listen,
                reason: format!("{e:#}"),
            })?;
        let (tx, view) = watch::channel(Arc::new(MembershipView::default()));
        let chitchat = handle.chitchat();
        let poll = (config.gossip_interval / 2).max(Duration::from_millis(20));
        tasks.spawn(observe(chitchat, self_id, tx, poll, shutdown, zombie));
        Ok(Membership {
            handle,
            view,
            stats,
            gossip_interval: config.gossip_interval,
        })
    }

    /// The observed member view, updated every half gossip interval.
    pub fn view(&self) -> watch::Receiver<Arc<MembershipView>> {
        self.view.clone()
    }

    pub fn auth_counts(&self) -> AuthCounts {
        self.stats.counts()
    }

    pub fn gossip_addr(&self) -> SocketAddr {
        self.handle.chitchat_id().gossip_advertise_addr
    }

    pub fn auth_stats(&self) -> Arc<AuthStats> {
        self.stats.clone()
    }

    /// A handle that publishes this node's health digest.
    pub fn health_publisher(&self) -> HealthPublisher {
        HealthPublisher {
            chitchat: self.handle.chitchat(),
        }
    }

    /// Announces a clean leave, gives gossip two rounds to spread it, then
    /// stops gossip.
    pub async fn leave(self) {
        let (k, v) = NodeInfo::left_kv();
        let me = self.handle.chitchat_id().clone();
        self.handle
            .with_chitchat(|c| c.self_node_state().set(k.clone(), v.clone()))
            .await;
        let has_peers = self
            .handle
            .with_chitchat(|c| c.live_nodes().any(|id| *id != me))
            .await;
        if has_peers {
            // Peers pull the change within a round or two of gossip.
            tokio::time::sleep(self.gossip_interval * 2).await;
        }
        let stopped = match self.handle.initiate_shutdown() {
            Ok(()) => self.handle.termination_watcher().await,
            Err(err) => Err(err),
        };
        if let Err(err) = stopped {
            tracing::warn!(error = %err, "gossip did not stop cleanly");
        }
    }

    /// Stops gossip without announcing anything (a crash, for tests).
    pub async fn abort(self) {
        drop(self);
    }
}

impl Drop for Membership {
    /// Gossip never outlives its membership (the chitchat task is spawned
    /// by chitchat itself, outside our task set).
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Publishes this node's health digest into gossip.
#[derive(Clone)]
pub struct HealthPublisher {
    chitchat: SharedChitchat,
}

impl HealthPublisher {
    pub async fn publish(&self, health: HealthDigest) {
        let (k, v) = NodeInfo::health_kv(&health);
        self.chitchat.lock().await.self_node_state().set(k, v);
    }
}

type SharedChitchat = Arc<tokio::sync::Mutex<chitchat::Chitchat>>;

/// Polls chitchat into a [`MembershipView`] and watches for zombies.
async fn observe(
    chitchat: SharedChitchat,
    self_id: ChitchatId,
    tx: watch::Sender<Arc<MembershipView>>,
    poll: Duration,
    shutdown: CancellationToken,
    zombie: CancellationToken,
) {
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: BTreeMap<String, (u64, u64, Instant)> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = Instant::now();
        let mut view = MembershipView::default();
        let mut newer_self = None;
        {
            let guard = chitchat.lock().await;
            let live: std::collections::HashSet<&ChitchatId> = guard.live_nodes().collect();
            for (id, state) in guard.node_states() {
                if *id.node_id == *self_id.node_id && id.generation_id > self_id.generation_id {
                    newer_self = Some(id.generation_id);
                }
                let info = match NodeInfo::from_kv(|k| state.get(k)) {
                    Ok(info) => info,
                    Err(err) => {
                        tracing::trace!(node = ?id, %err, "member info incomplete");
                        continue;
                    }
                };
                let heartbeat = u64::from(state.heartbeat());
                let name = id.node_id.to_string();
                let entry = seen
                    .entry(name.clone())
                    .or_insert((id.generation_id, heartbeat, now));
                if (id.generation_id, heartbeat) > (entry.0, entry.1) {
                    *entry = (id.generation_id, heartbeat, now);
                }
                let member = Member {
                    name: name.clone(),
                    gossip_addr: id.gossip_advertise_addr,
                    info,
                    live: live.contains(id),
                    heartbeat,
                    heartbeat_seen_at: entry.2,
                };
                match view.members.get(&name) {
                    Some(m) if m.info.generation >= member.info.generation => {}
                    _ => {
                        view.members.insert(name, member);
                    }
                }
            }
        }
        if let Some(generation) = newer_self {
            tracing::error!(
                node = %self_id.node_id,
                mine = self_id.generation_id,
                newer = generation,
                "a newer generation of this node is running; stopping this zombie"
            );
            zombie.cancel();
        }
        tx.send_if_modified(|current| {
            if **current == view {
                false
            } else {
                *current = Arc::new(view);
                true
            }
        });
    }
}
