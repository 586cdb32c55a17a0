//! Starting and stopping the simulator: `Sim::start`, the shared `App` and the `SimHandle`.

use crate::backing::{Machines, NoMachines, ProcessMachines};
use crate::config::{Backing, SimConfig};
use crate::error::SimError;
use crate::faults::{Fault, FaultSet};
use crate::http::{RawRecord, RecordedRequest};
use crate::persist::Persister;
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::timing::Timing;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const MAX_LOG: usize = 100_000;
const TICK: Duration = Duration::from_millis(50);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by all handlers.
pub struct App {
    store: Mutex<Store>,
    faults: Mutex<FaultSet>,
    limiter: Mutex<RateLimiter>,
    log: Mutex<Vec<RawRecord>>,
    pub base_url: String,
    tokens: Vec<String>,
    persister: Option<Persister>,
    /// `base_dir` of process backing (absolute), if any.
    base_dir: Option<std::path::PathBuf>,
    pub origin: Instant,
}

impl App {
    /// Runs `f` on the store after completing everything that is due.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut store = lock(&self.store);
        store.advance(chrono::Utc::now());
        f(&mut store)
    }
    pub fn lock_faults(&self) -> MutexGuard<'_, FaultSet> {
        lock(&self.faults)
    }
    pub fn lock_limiter(&self) -> MutexGuard<'_, RateLimiter> {
        lock(&self.limiter)
    }
    pub fn token_ok(&self, token: &str) -> bool {
        self.tokens.is_empty() || self.tokens.iter().any(|t| t == token)
    }
    pub fn record(&self, r: RawRecord) {
        let mut log = lock(&self.log);
        if log.len() >= MAX_LOG {
            log.drain(..MAX_LOG / 10);
        }
        log.push(r);
    }
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let raw = lock(&self.log).clone();
        raw.iter().map(RawRecord::decode).collect()
    }
    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }
    pub fn add_fault(&self, fault: Fault) {
        match fault {
            Fault::ActionError { action_type, count } => {
                lock(&self.store).action_faults.push((action_type, count));
            }
            other => self.lock_faults().add(other),
        }
    }
    pub fn faults(&self) -> Vec<Fault> {
        let mut all = self.lock_faults().list();
        let store = lock(&self.store);
        for (action_type, count) in &store.action_faults {
            if *count > 0 {
                all.push(Fault::ActionError {
                    action_type: action_type.clone(),
                    count: *count,
                });
            }
        }
        all
    }
    pub fn reset_faults(&self) {
        self.lock_faults().clear();
        lock(&self.store).action_faults.clear();
    }
    /// Kills a droplet's machine (by id or name); Ok(false) if it was not running.
    pub fn kill_droplet(&self, key: &str) -> Result<bool, SimError> {
        self.with_store(|s| match s.find_droplet(key) {
            Some(id) => Ok(s.kill(id)),
            None => Err(SimError::NotFound(format!("droplet {key:?}"))),
        })
    }
    /// Saves the state file if the state changed since the last save.
    pub fn persist(&self) {
        let Some(p) = &self.persister else { return };
        let snapshot = {
            let store = lock(&self.store);
            if store.generation <= p.saved_generation() {
                return;
            }
            serde_json::to_vec_pretty(&store.state).map(|b| (store.generation, b))
        };
        match snapshot {
            Ok((generation, bytes)) => {
                if let Err(e) = p.save(generation, &bytes) {
                    tracing::error!(error = %e, "cannot save state");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot serialize state"),
        }
    }
}

/// The simulator.
pub struct Sim;

/// A running simulator.
pub struct SimHandle {
    app: Arc<App>,
    server: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl Sim {
    /// Binds 127.0.0.1:`cfg.port`, loads the state file, starts machines and serves until
    /// `shutdown` is cancelled.
    pub async fn start(cfg: SimConfig, shutdown: CancellationToken) -> Result<SimHandle, SimError> {
        if !(cfg.time_scale.is_finite() && cfg.time_scale > 0.0) {
            return Err(SimError::Config(format!(
                "time_scale must be a positive number, got {}",
                cfg.time_scale
            )));
        }
        if cfg.rate_limit.per_hour == 0 || cfg.rate_limit.per_minute == 0 {
            return Err(SimError::Config("rate limits must be at least 1".into()));
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", cfg.port))
            .await
            .map_err(|source| SimError::Bind {
                port: cfg.port,
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| SimError::Bind {
                port: cfg.port,
                source,
            })?
            .port();
        let base_url = format!("http://127.0.0.1:{port}");
        let persister = cfg.state_file.clone().map(Persister::new);
        let state = match &persister {
            Some(p) => p.load()?,
            None => Default::default(),
        };
        let (machines, base_dir): (Box<dyn Machines>, _) = match &cfg.backing {
            Backing::None => (Box::new(NoMachines), None),
            Backing::Process(p) => {
                let mut p = p.clone();
                p.base_dir = std::path::absolute(&p.base_dir).map_err(|e| {
                    SimError::Config(format!("base_dir {}: {e}", p.base_dir.display()))
                })?;
                let dir = p.base_dir.clone();
                (
                    Box::new(ProcessMachines::new(p, base_url.clone())),
                    Some(dir),
                )
            }
        };
        let mut store = Store::new(state, Timing::new(cfg.profile, cfg.time_scale), machines);
        store.start_running();
        let app = Arc::new(App {
            store: Mutex::new(store),
            faults: Mutex::new(FaultSet::default()),
            limiter: Mutex::new(RateLimiter::new(cfg.rate_limit)),
            log: Mutex::new(Vec::new()),
            base_url,
            tokens: cfg.tokens.clone(),
            persister,
            base_dir,
            origin: Instant::now(),
        });
        let router = crate::api::router(app.clone());
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            let serve =
                axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "server failed");
            }
        });
        let tick_app = app.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = interval.tick() => {
                        tick_app.with_store(|_| ());
                        tick_app.persist();
                    }
                }
            }
        });
        tracing::info!(url = %app.base_url, profile = ?cfg.profile, "infra-sim listening");
        Ok(SimHandle {
            app,
            server,
            ticker,
        })
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (clients append `/v2/...`).
    pub fn base_url(&self) -> String {
        self.app.base_url.clone()
    }
    /// Every `/v2` request served so far (oldest first).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.app.requests()
    }
    pub fn clear_requests(&self) {
        self.app.clear_requests()
    }
    pub fn add_fault(&self, fault: Fault) {
        self.app.add_fault(fault)
    }
    pub fn faults(&self) -> Vec<Fault> {
        self.app.faults()
    }
    pub fn reset_faults(&self) {
        self.app.reset_faults()
    }
    /// Simulated hardware failure: SIGKILLs the droplet's process; the API still says active.
    pub fn kill_droplet(&self, id_or_name: &str) -> Result<bool, SimError> {
        self.app.kill_droplet(id_or_name)
    }
    /// With process backing: the droplet's data directory (`base_dir/droplets/<id>/data`).
    pub fn droplet_data_dir(&self, id: u64) -> Option<std::path::PathBuf> {
        let base = self.app.base_dir.as_ref()?;
        Some(base.join("droplets").join(id.to_string()).join("data"))
    }
    /// Waits until the shutdown token is cancelled and everything has stopped, then kills all
    /// droplet processes and saves the state.
    pub async fn join(self) {
        if let Err(e) = self.ticker.await {
            tracing::error!(error = %e, "ticker task failed");
        }
        if let Err(e) = self.server.await {
            tracing::error!(error = %e, "server task failed");
        }
        lock(&self.app.store).machines.shutdown();
        self.app.persist();
    }
}
