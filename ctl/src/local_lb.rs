//! The local cloud's load balancer for `infractl deploy-*`: an nginx of its
//! own under `.infra/lb/` that outlives the command (daemonized), with its
//! routes kept in `.infra/lb/routes.json` (versioned) so each command
//! changes one backend and reloads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use infra_agent::deploy::cutover::http_get;
use infra_agent::deploy::pipeline::LoadBalancer;
use infra_agent::lb::{LbConfig, Route, render};
use serde::{Deserialize, Serialize};

const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    generation: u64,
    /// (project, env, service, backends).
    routes: Vec<(String, String, String, Vec<SocketAddr>)>,
}

/// nginx under `prefix`, listening on `listen`.
pub struct LocalLb {
    nginx: PathBuf,
    prefix: PathBuf,
    listen: SocketAddr,
    state: Mutex<State>,
}

impl LocalLb {
    pub fn open(nginx: PathBuf, prefix: &Path, listen: SocketAddr) -> anyhow::Result<Self> {
        let path = prefix.join("routes.json");
        let state = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let s: State = serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                if s.version != STATE_VERSION {
                    bail!("{}: unsupported version {}", path.display(), s.version);
                }
                s
            }
            Err(_) => State {
                version: STATE_VERSION,
                ..State::default()
            },
        };
        Ok(LocalLb {
            nginx,
            prefix: std::path::absolute(prefix)
                .with_context(|| format!("resolving {}", prefix.display()))?,
            listen,
            state: Mutex::new(state),
        })
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(&self.nginx)
            .arg("-p")
            .arg(&self.prefix)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.nginx.display()))?;
        if !out.status.success() {
            bail!(
                "nginx {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn running(&self) -> bool {
        std::fs::read_to_string(self.prefix.join("logs/nginx.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
    }

    /// Renders `state`, checks it, swaps it in, starts or reloads nginx and
    /// waits until it serves the new generation; then saves the routes.
    async fn apply(&self, mut state: State) -> anyhow::Result<()> {
        state.generation += 1;
        let mut cfg = LbConfig::new(self.listen);
        cfg.worker_processes = "1".into();
        cfg.routes = state
            .routes
            .iter()
            .map(|(project, env, service, backends)| Route {
                project: project.clone(),
                env: env.clone(),
                service: service.clone(),
                backends: backends.clone(),
            })
            .collect();
        let text = render(&cfg, state.generation)?;
        for d in ["conf", "logs", "temp"] {
            std::fs::create_dir_all(self.prefix.join(d))?;
        }
        let conf = self.prefix.join("conf/nginx.conf");
        let new = self.prefix.join("conf/nginx.conf.new");
        std::fs::write(&new, text)?;
        self.run(&["-t", "-q", "-c", &new.to_string_lossy()])?;
        std::fs::rename(&new, &conf)?;
        let conf = conf.to_string_lossy().into_owned();
        if self.running() {
            self.run(&["-c", &conf, "-s", "reload"])?;
        } else {
            self.run(&["-c", &conf])?;
        }
        let want = format!("ok generation={}", state.generation);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((200, body)) = http_get(self.listen, "/health", Duration::from_secs(1)).await
                && body.trim() == want
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nginx on {} did not serve `{want}` within 10s", self.listen);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let path = self.prefix.join("routes.json");
        std::fs::write(&path, serde_json::to_string_pretty(&state)?)
            .with_context(|| format!("writing {}", path.display()))?;
        *self.state.lock().expect("lb state") = state;
        Ok(())
    }
}

#[async_trait]
impl LoadBalancer for LocalLb {
    async fn ensure_routes(&self, upstreams: &[(String, String, String)]) -> Result<(), String> {
        let mut state = self.state.lock().expect("lb state").clone();
        for (p, e, s) in upstreams {
            if !state.routes.iter().any(|r| (&r.0, &r.1, &r.2) == (p, e, s)) {
                state
                    .routes
                    .push((p.clone(), e.clone(), s.clone(), Vec::new()));
            }
        }
        // Always apply: starts nginx when it is not running.
        self.apply(state).await.map_err(|e| format!("{e:#}"))
    }

    async fn set_backend(&self, upstream: &str, addr: SocketAddr) -> Result<(), String> {
        let mut state = self.state.lock().expect("lb state").clone();
        let route = state
            .routes
            .iter_mut()
            .find(|r| format!("{}-{}-{}", r.0, r.1, r.2) == upstream)
            .ok_or_else(|| format!("no route for upstream {upstream}"))?;
        route.3.retain(|b| b.ip() != addr.ip());
        route.3.push(addr);
        route.3.sort();
        self.apply(state).await.map_err(|e| format!("{e:#}"))
    }
}
