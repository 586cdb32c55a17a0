//! The leader's load balancer as an owned component ([`Balancer`]): while
//! this agent leads and the state has live releases (or a recorded
//! balancer), its nginx runs with the routes of every live release and its
//! URL is recorded (`Command::SetLoadBalancer`); every relevant state
//! change (a deploy, a scale, a recovery) re-renders it; leadership lost or
//! shutdown stops it. Deploys and the state watcher share one lock, so a
//! deploy's cutover is never clobbered by a re-render. The decisions
//! ([`decide`], [`Fingerprint`], [`needs_apply`]) are pure.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{StateStore, StoreError, lb_routes};
use crate::lb::{LbConfig, LbError, Nginx, Route};
use crate::runtime::ContainerInfo;
use crate::spec::ServiceKind;
use crate::state::{ClusterState, Command, DropletStatus};

/// Errors of the balancer.
#[derive(Debug, thiserror::Error)]
pub enum BalancerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("load balancer: {0}")]
    Lb(#[from] LbError),
    #[error("listing the running containers: {0}")]
    Containers(String),
}

/// The containers running on the state's droplets (each droplet's own
/// runtime; implemented by the leader's deploy machinery).
#[async_trait]
pub trait RunningContainers: Send + Sync {
    async fn running(&self, state: &ClusterState) -> Result<Vec<ContainerInfo>, String>;
}

/// Where the leader's nginx runs.
#[derive(Debug, Clone)]
pub struct BalancerSettings {
    /// The nginx binary (`/usr/sbin/nginx`).
    pub nginx: PathBuf,
    /// nginx prefix directory (conf/, logs/, temp/).
    pub prefix: PathBuf,
    /// Where it listens.
    pub listen: SocketAddr,
    /// The address in its URL when it listens on all addresses.
    pub advertise_ip: IpAddr,
}

/// What the state says about the balancer's routes: live releases, web
/// placements, droplet addresses/incarnations/status, the recorded URL.
/// A change means the routes may have changed. Pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    live: BTreeMap<String, String>,
    placements: BTreeMap<String, Vec<String>>,
    droplets: BTreeMap<String, (Option<String>, u64, DropletStatus)>,
    recorded: Option<String>,
}

impl Fingerprint {
    pub fn of(state: &ClusterState) -> Self {
        Fingerprint {
            live: state.live_releases.clone(),
            placements: state
                .topology
                .services
                .iter()
                .filter(|(_, s)| s.kind == ServiceKind::Web)
                .map(|(k, s)| (k.clone(), s.droplets.clone()))
                .collect(),
            droplets: state
                .droplets
                .iter()
                .map(|(k, d)| (k.clone(), (d.ip.clone(), d.generation, d.status)))
                .collect(),
            recorded: state.load_balancer.clone(),
        }
    }
}

/// Whether a leader runs a balancer at all: something was deployed, or a
/// balancer was recorded before (a new leader takes it over).
pub fn wanted(state: &ClusterState) -> bool {
    !state.live_releases.is_empty() || state.load_balancer.is_some()
}

/// What one pass of the balancer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Idle,
    /// Start nginx with the current routes and record it.
    Start,
    /// Recompute the routes; reload if they differ.
    Render,
    Stop,
}

/// The balancer's next step: `leader` now, nginx `running`, the state
/// `wanted` a balancer, the [`Fingerprint`] `changed` since the last
/// render. Pure.
pub fn decide(leader: bool, running: bool, wanted: bool, changed: bool) -> Action {
    match (leader, running) {
        (false, true) => Action::Stop,
        (false, false) => Action::Idle,
        (true, false) if wanted => Action::Start,
        (true, true) if changed => Action::Render,
        _ => Action::Idle,
    }
}

fn normalized(routes: &[Route]) -> BTreeMap<String, Vec<SocketAddr>> {
    routes
        .iter()
        .map(|r| {
            let mut b = r.backends.clone();
            b.sort();
            b.dedup();
            (r.upstream(), b)
        })
        .collect()
}

/// Whether `desired` differs from the routes nginx serves (order aside).
/// Pure.
pub fn needs_apply(current: &[Route], desired: &[Route]) -> bool {
    normalized(current) != normalized(desired)
}

/// The leader's nginx and the lock deploys and re-renders share.
pub struct Balancer {
    settings: BalancerSettings,
    nginx: Mutex<Option<Arc<Nginx>>>,
    exclusive: tokio::sync::Mutex<()>,
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

impl Balancer {
    pub fn new(settings: BalancerSettings) -> Self {
        Balancer {
            settings,
            nginx: Mutex::new(None),
            exclusive: tokio::sync::Mutex::new(()),
        }
    }

    /// The base URL clients reach the balancer at.
    pub fn url(&self) -> String {
        let l = self.settings.listen;
        let ip = if l.ip().is_unspecified() {
            self.settings.advertise_ip
        } else {
            l.ip()
        };
        format!("http://{}", SocketAddr::new(ip, l.port()))
    }

    /// The running nginx, if any.
    pub fn current(&self) -> Option<Arc<Nginx>> {
        self.nginx.lock().expect("balancer").clone()
    }

    /// Held by a deploy from start to end, and by a re-render: one at a
    /// time, so a cutover is never overwritten halfway.
    pub async fn exclusive(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.exclusive.lock().await
    }

    /// The lock, if no deploy or re-render holds it.
    pub fn try_exclusive(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.exclusive.try_lock().ok()
    }

    /// Makes nginx serve `routes` (starting it if needed) and records its
    /// URL in the state. A config nginx rejects keeps the old one serving
    /// and returns why. Call with [`Balancer::exclusive`] held.
    pub async fn converge(
        &self,
        store: &dyn StateStore,
        state: &ClusterState,
        routes: Vec<Route>,
    ) -> Result<Arc<Nginx>, BalancerError> {
        let nginx = match self.current() {
            Some(nginx) => {
                let cfg = nginx.config().unwrap_or_else(|| self.config(Vec::new()));
                if needs_apply(&cfg.routes, &routes) {
                    let generation = nginx.apply(&LbConfig { routes, ..cfg }).await?;
                    tracing::info!(generation, "load balancer re-rendered");
                }
                nginx
            }
            None => {
                let nginx = Arc::new(Nginx::new(&self.settings.nginx, &self.settings.prefix));
                nginx.start(&self.config(routes)).await?;
                tracing::info!(url = %self.url(), "load balancer started");
                *self.nginx.lock().expect("balancer") = Some(nginx.clone());
                nginx
            }
        };
        let url = self.url();
        if state.load_balancer.as_deref() != Some(url.as_str()) {
            store
                .write(Command::SetLoadBalancer {
                    url,
                    at_ms: now_ms(),
                })
                .await?;
        }
        Ok(nginx)
    }

    fn config(&self, routes: Vec<Route>) -> LbConfig {
        let mut cfg = LbConfig::new(self.settings.listen);
        cfg.worker_processes = "1".into();
        cfg.routes = routes;
        cfg
    }

    /// Stops nginx (if running).
    pub async fn stop(&self) {
        let nginx = self.nginx.lock().expect("balancer").take();
        if let Some(nginx) = nginx {
            match nginx.stop().await {
                Ok(()) => tracing::info!("load balancer stopped"),
                Err(e) => tracing::warn!(error = %e, "stopping the load balancer"),
            }
        }
    }

    /// One pass; `seen` is the fingerprint of the last successful render.
    async fn pass(
        &self,
        leader: bool,
        seen: &mut Option<Fingerprint>,
        store: &dyn StateStore,
        containers: &dyn RunningContainers,
    ) -> Result<(), BalancerError> {
        let running = self.current().is_some();
        let state = if leader {
            Some(store.read().await?)
        } else {
            None
        };
        let (wanted, changed) = state.as_ref().map_or((false, false), |s| {
            (wanted(s), seen.as_ref() != Some(&Fingerprint::of(s)))
        });
        match decide(leader, running, wanted, changed) {
            Action::Idle => Ok(()),
            Action::Stop => {
                self.stop().await;
                *seen = None;
                Ok(())
            }
            Action::Start | Action::Render => {
                // Waits for a running deploy; the state may have moved on.
                let _one = self.exclusive().await;
                let state = store.read().await?;
                let running = containers
                    .running(&state)
                    .await
                    .map_err(BalancerError::Containers)?;
                self.converge(store, &state, lb_routes::routes(&state, &running))
                    .await?;
                // The state the routes came from: any later change (the
                // URL just recorded included) is seen by the next pass.
                *seen = Some(Fingerprint::of(&state));
                Ok(())
            }
        }
    }

    /// Runs until `shutdown`: a pass after every applied log entry (and
    /// every `interval`); nginx is stopped on the way out.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn StateStore>,
        containers: Arc<dyn RunningContainers>,
        mut applied: watch::Receiver<u64>,
        is_leader: impl Fn() -> bool + Send,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut seen = None;
        loop {
            let leader = is_leader();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                done = self.pass(leader, &mut seen, store.as_ref(), containers.as_ref()) => {
                    if let Err(e) = done {
                        tracing::warn!(error = %e, "load balancer pass failed (old config kept)");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = applied.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(interval) => {}
            }
        }
        self.stop().await;
    }
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;
