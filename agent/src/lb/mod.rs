//! The load balancer: nginx configuration rendered from plain values
//! ([`render`], pure) and the [`Nginx`] manager that writes it atomically,
//! checks it with `nginx -t`, reloads it, and can run its own instance.

mod nginx;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

pub use nginx::Nginx;

const TEMPLATE: &str = include_str!("../../../templates/nginx.conf.tera");

/// Errors of the load-balancer module.
#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("invalid {field} `{value}` in load-balancer config: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("rendering nginx.conf failed: {0}")]
    Render(String),
    #[error("nginx rejected the new config (old one kept): {output}")]
    Check { output: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nginx {action} failed: {output}")]
    Nginx {
        action: &'static str,
        output: String,
    },
}

/// One routed service: `/<project>/<env>/<service>/` -> upstream
/// `<project>-<env>-<service>` with these backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub project: String,
    pub env: String,
    pub service: String,
    /// Droplet address + host port of each container.
    pub backends: Vec<SocketAddr>,
}

impl Route {
    pub fn upstream(&self) -> String {
        format!("{}-{}-{}", self.project, self.env, self.service)
    }
    pub fn prefix(&self) -> String {
        format!("/{}/{}/{}/", self.project, self.env, self.service)
    }
}

/// Everything the nginx config is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbConfig {
    pub listen: SocketAddr,
    pub routes: Vec<Route>,
    /// `(project, env)` -> domain served with `server_name`.
    pub domains: BTreeMap<(String, String), String>,
    /// `limit_req` rate per client address, requests per second.
    pub rate_per_second: u32,
    pub burst: u32,
    /// `worker_processes` (`auto` on droplets).
    pub worker_processes: String,
}

impl LbConfig {
    /// A config with production-like limits and no routes.
    pub fn new(listen: SocketAddr) -> Self {
        LbConfig {
            listen,
            routes: Vec::new(),
            domains: BTreeMap::new(),
            rate_per_second: 50,
            burst: 100,
            worker_processes: "auto".into(),
        }
    }
}

#[derive(Serialize)]
struct View {
    generation: u64,
    worker_processes: String,
    listen: String,
    rate_per_second: u32,
    burst: u32,
    upstreams: Vec<UpstreamView>,
    servers: Vec<ServerView>,
}

#[derive(Serialize)]
struct UpstreamView {
    name: String,
    backends: Vec<String>,
}

#[derive(Serialize)]
struct ServerView {
    server_name: String,
    default: bool,
    locations: Vec<LocationView>,
}

#[derive(Serialize)]
struct LocationView {
    path: String,
    prefix: String,
    upstream: Option<String>,
}

fn check_word(field: &'static str, value: &str, extra: &[char]) -> Result<(), LbError> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || extra.contains(&c));
    if ok {
        Ok(())
    } else {
        Err(LbError::Invalid {
            field,
            value: value.into(),
            reason: "only letters, digits, '-' and '_' are allowed",
        })
    }
}

fn location(path: String, route: &Route) -> LocationView {
    LocationView {
        path,
        prefix: route.prefix(),
        upstream: (!route.backends.is_empty()).then(|| route.upstream()),
    }
}

/// Renders nginx.conf for `cfg`; `generation` shows in `/health` so a
/// caller can tell when a reload took effect. Pure.
pub fn render(cfg: &LbConfig, generation: u64) -> Result<String, LbError> {
    check_word("worker_processes", &cfg.worker_processes, &[])?;
    if cfg.rate_per_second == 0 {
        return Err(LbError::Invalid {
            field: "rate_per_second",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &cfg.routes {
        check_word("project", &r.project, &[])?;
        check_word("environment", &r.env, &[])?;
        check_word("service", &r.service, &[])?;
        if !seen.insert(r.upstream()) {
            return Err(LbError::Invalid {
                field: "route",
                value: r.upstream(),
                reason: "routed twice",
            });
        }
    }
    let upstreams = cfg
        .routes
        .iter()
        .filter(|r| !r.backends.is_empty())
        .map(|r| UpstreamView {
            name: r.upstream(),
            backends: r.backends.iter().map(ToString::to_string).collect(),
        })
        .collect();
    let mut servers = vec![ServerView {
        server_name: "_".into(),
        default: true,
        locations: cfg.routes.iter().map(|r| location(r.prefix(), r)).collect(),
    }];
    for ((project, env), domain) in &cfg.domains {
        check_word("domain", domain, &['.'])?;
        let mine: Vec<&Route> = cfg
            .routes
            .iter()
            .filter(|r| &r.project == project && &r.env == env)
            .collect();
        let mut locations: Vec<LocationView> = mine
            .iter()
            .map(|r| location(format!("/{}/", r.service), r))
            .collect();
        if let Some(first) = mine.first() {
            locations.push(location("/".into(), first));
        }
        servers.push(ServerView {
            server_name: domain.clone(),
            default: false,
            locations,
        });
    }
    let view = View {
        generation,
        worker_processes: cfg.worker_processes.clone(),
        listen: cfg.listen.to_string(),
        rate_per_second: cfg.rate_per_second,
        burst: cfg.burst,
        upstreams,
        servers,
    };
    let ctx = tera::Context::from_serialize(&view).map_err(|e| LbError::Render(e.to_string()))?;
    let mut tera = tera::Tera::default();
    tera.add_raw_template("nginx.conf", TEMPLATE)
        .map_err(|e| LbError::Render(e.to_string()))?;
    tera.render("nginx.conf", &ctx)
        .map_err(|e| LbError::Render(format!("{e:?}")))
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;
