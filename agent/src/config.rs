//! Agent configuration: a versioned TOML file whose every field can be
//! overridden by an `INFRA_AGENT_*` environment variable or a command-line
//! flag (flag > env > file), then validated into an [`AgentConfig`].
//!
//! ```toml
//! version = 1
//! node_name = "hostomatic-web1"
//! cluster_id = "prod"
//! data_dir = "/var/lib/infra-agent"
//! grpc_listen = "0.0.0.0:7400"
//! grpc_advertise = "203.0.113.7:7400"
//! gossip_listen = "0.0.0.0:7401"
//! gossip_advertise = "203.0.113.7:7401"
//! seeds = ["203.0.113.2:7401"]     # none on the first node (formed by `Initialize`)
//! role = "web"
//! project = "hostomatic"
//! gossip_interval_ms = 500         # defaults shown
//! probe_interval_ms = 200
//! probe_timeout_ms = 250
//! suspicion_window_ms = 1500       # > the longest pause to tolerate (1 s)
//! ca_cert = "/etc/infra/pki/ca.pem"
//! node_cert = "/etc/infra/pki/node.pem"
//! node_key = "/etc/infra/pki/node.key"
//! gossip_key_file = "/etc/infra/pki/gossip.key"
//! lb_listen = "0.0.0.0:80"         # the leader's load balancer (default)
//! nginx = "/usr/sbin/nginx"        # default
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Version of the agent config file format.
pub const CONFIG_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("config field `{field}` is required (file, INFRA_AGENT_{env} or --{flag})", env = .field.to_uppercase(), flag = .field.replace('_', "-"))]
    Missing { field: &'static str },
    #[error("config field `{field}` has invalid value `{value}`: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
}

/// TLS material of a node: the cluster CA and this node's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub node_cert: PathBuf,
    pub node_key: PathBuf,
}

/// The validated agent configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub node_name: String,
    pub cluster_id: String,
    pub data_dir: PathBuf,
    pub grpc_listen: SocketAddr,
    pub grpc_advertise: SocketAddr,
    pub gossip_listen: SocketAddr,
    pub gossip_advertise: SocketAddr,
    /// Gossip addresses to join through. No agent ever forms a cluster by
    /// itself: the first one waits for `infractl orchestrate`'s
    /// `Initialize`, every other one joins.
    pub seeds: Vec<String>,
    /// Whether this agent may stand for Raft leader. Agents that do not
    /// hold the cloud API token (they could not act as leader) say `false`.
    pub campaign: bool,
    pub role: String,
    pub project: Option<String>,
    pub gossip_interval: Duration,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    /// How long a suspicion must last before the monitor votes.
    pub suspicion_window: Duration,
    pub tls: TlsFiles,
    /// File holding the cluster gossip key (hex, at least 32 bytes).
    pub gossip_key_file: PathBuf,
    /// Where the load balancer listens while this agent leads.
    pub lb_listen: SocketAddr,
    /// The nginx binary of the load balancer.
    pub nginx: PathBuf,
}

/// Default load balancer address of an agent.
pub const DEFAULT_LB_LISTEN: &str = "0.0.0.0:80";
/// Default nginx binary.
pub const DEFAULT_NGINX: &str = "/usr/sbin/nginx";

/// Every field optional: the shape of the file and of the overrides.
#[derive(Debug, Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Config file format version (1).
    #[arg(skip)]
    pub version: Option<u32>,
    #[arg(long, env = "INFRA_AGENT_NODE_NAME")]
    pub node_name: Option<String>,
    #[arg(long, env = "INFRA_AGENT_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    #[arg(long, env = "INFRA_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[arg(long, env = "INFRA_AGENT_GRPC_LISTEN")]
    pub grpc_listen: Option<String>,
    #[arg(long, env = "INFRA_AGENT_GRPC_ADVERTISE")]
    pub grpc_advertise: Option<String>,
    #[arg(long, env = "INFRA_AGENT_GOSSIP_LISTEN")]
    pub gossip_listen: Option<String>,
    #[arg(long, env = "INFRA_AGENT_GOSSIP_ADVERTISE")]
    pub gossip_advertise: Option<String>,
    /// Comma-separated gossip addresses of seed nodes.
    #[arg(long, env = "INFRA_AGENT_SEEDS", value_delimiter = ',')]
    pub seeds: Option<Vec<String>>,
    /// Ignored (older user-data carried it): a cluster is formed once, by
    /// the `Initialize` call of the first `infractl orchestrate`.
    #[arg(long, env = "INFRA_AGENT_BOOTSTRAP", hide = true)]
    pub bootstrap: Option<bool>,
    /// Stand for Raft leader (default true; false on agents without the API token).
    #[arg(long, env = "INFRA_AGENT_CAMPAIGN")]
    pub campaign: Option<bool>,
    #[arg(long, env = "INFRA_AGENT_ROLE")]
    pub role: Option<String>,
    #[arg(long, env = "INFRA_AGENT_PROJECT")]
    pub project: Option<String>,
    #[arg(long, env = "INFRA_AGENT_GOSSIP_INTERVAL_MS")]
    pub gossip_interval_ms: Option<u64>,
    #[arg(long, env = "INFRA_AGENT_PROBE_INTERVAL_MS")]
    pub probe_interval_ms: Option<u64>,
    #[arg(long, env = "INFRA_AGENT_PROBE_TIMEOUT_MS")]
    pub probe_timeout_ms: Option<u64>,
    #[arg(long, env = "INFRA_AGENT_SUSPICION_WINDOW_MS")]
    pub suspicion_window_ms: Option<u64>,
    #[arg(long, env = "INFRA_AGENT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    #[arg(long, env = "INFRA_AGENT_NODE_CERT")]
    pub node_cert: Option<PathBuf>,
    #[arg(long, env = "INFRA_AGENT_NODE_KEY")]
    pub node_key: Option<PathBuf>,
    #[arg(long, env = "INFRA_AGENT_GOSSIP_KEY_FILE")]
    pub gossip_key_file: Option<PathBuf>,
    /// Load balancer address while this agent leads (default 0.0.0.0:80).
    #[arg(long, env = "INFRA_AGENT_LB_LISTEN")]
    pub lb_listen: Option<String>,
    #[arg(long, env = "INFRA_AGENT_NGINX")]
    pub nginx: Option<PathBuf>,
}

macro_rules! overlay {
    ($base:ident, $top:ident, $($f:ident),*) => {
        $( if $top.$f.is_some() { $base.$f = $top.$f; } )*
    };
}

impl RawConfig {
    /// Parses a TOML config file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Fields set in `top` replace those of `self`.
    pub fn overlay(mut self, top: RawConfig) -> RawConfig {
        overlay!(
            self,
            top,
            version,
            node_name,
            cluster_id,
            data_dir,
            grpc_listen,
            grpc_advertise,
            gossip_listen,
            gossip_advertise,
            seeds,
            bootstrap,
            campaign,
            role,
            project,
            gossip_interval_ms,
            probe_interval_ms,
            probe_timeout_ms,
            suspicion_window_ms,
            ca_cert,
            node_cert,
            node_key,
            gossip_key_file,
            lb_listen,
            nginx
        );
        self
    }
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ConfigError> {
    value.ok_or(ConfigError::Missing { field })
}

fn invalid(field: &'static str, value: impl ToString, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        field,
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn addr(value: &str, field: &'static str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(field, value, "expected IP:PORT, e.g. 127.0.0.1:7400"))
}

fn millis(
    value: Option<u64>,
    default: u64,
    field: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let v = value.unwrap_or(default);
    if !range.contains(&v) {
        return Err(invalid(
            field,
            v,
            format!("must be between {} and {} ms", range.start(), range.end()),
        ));
    }
    Ok(Duration::from_millis(v))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

impl AgentConfig {
    /// Loads `file` (if any), overlays `overrides` (env and flags), and
    /// validates the result.
    pub fn load(file: Option<&Path>, overrides: RawConfig) -> Result<AgentConfig, ConfigError> {
        let base = match file {
            Some(path) => RawConfig::from_file(path)?,
            None => RawConfig::default(),
        };
        AgentConfig::from_raw(base.overlay(overrides))
    }

    /// Validates a raw config.
    pub fn from_raw(raw: RawConfig) -> Result<AgentConfig, ConfigError> {
        if let Some(v) = raw.version
            && v != CONFIG_VERSION
        {
            return Err(invalid(
                "version",
                v,
                format!("unsupported, this agent reads version {CONFIG_VERSION}"),
            ));
        }
        let node_name = required(raw.node_name, "node_name")?;
        if !valid_name(&node_name) {
            return Err(invalid(
                "node_name",
                &node_name,
                "use 1-63 letters, digits, '-', '_' or '.'",
            ));
        }
        let cluster_id = required(raw.cluster_id, "cluster_id")?;
        if !valid_name(&cluster_id) {
            return Err(invalid(
                "cluster_id",
                &cluster_id,
                "use 1-63 letters, digits, '-', '_' or '.'",
            ));
        }
        let grpc_listen = addr(&required(raw.grpc_listen, "grpc_listen")?, "grpc_listen")?;
        let grpc_advertise = match raw.grpc_advertise {
            Some(a) => addr(&a, "grpc_advertise")?,
            None => grpc_listen,
        };
        if grpc_advertise.ip().is_unspecified() {
            return Err(invalid(
                "grpc_advertise",
                grpc_advertise,
                "peers cannot reach an unspecified address; set grpc_advertise",
            ));
        }
        let gossip_listen = addr(
            &required(raw.gossip_listen, "gossip_listen")?,
            "gossip_listen",
        )?;
        let gossip_advertise = match raw.gossip_advertise {
            Some(a) => addr(&a, "gossip_advertise")?,
            None => gossip_listen,
        };
        if gossip_advertise.ip().is_unspecified() {
            return Err(invalid(
                "gossip_advertise",
                gossip_advertise,
                "peers cannot reach an unspecified address; set gossip_advertise",
            ));
        }
        let seeds = raw.seeds.unwrap_or_default();
        for seed in &seeds {
            addr(seed, "seeds")?;
        }
        if raw.bootstrap == Some(true) {
            tracing::warn!(
                "`bootstrap = true` is ignored: this agent joins its cluster; a cluster is \
                 formed once, by the first `infractl orchestrate` (Initialize)"
            );
        }
        let role = raw.role.unwrap_or_else(|| "web".to_string());
        if !valid_name(&role) {
            return Err(invalid("role", &role, "use letters, digits, '-' or '_'"));
        }
        let probe_interval = millis(raw.probe_interval_ms, 200, "probe_interval_ms", 10..=60_000)?;
        let probe_timeout = millis(raw.probe_timeout_ms, 250, "probe_timeout_ms", 10..=60_000)?;
        let suspicion_window = millis(
            raw.suspicion_window_ms,
            1_500,
            "suspicion_window_ms",
            10..=600_000,
        )?;
        if suspicion_window <= probe_interval {
            return Err(invalid(
                "suspicion_window_ms",
                suspicion_window.as_millis(),
                format!(
                    "must be longer than probe_interval_ms ({})",
                    probe_interval.as_millis()
                ),
            ));
        }
        let gossip_interval = millis(
            raw.gossip_interval_ms,
            500,
            "gossip_interval_ms",
            10..=60_000,
        )?;
        Ok(AgentConfig {
            node_name,
            cluster_id,
            data_dir: required(raw.data_dir, "data_dir")?,
            grpc_listen,
            grpc_advertise,
            gossip_listen,
            gossip_advertise,
            seeds,
            campaign: raw.campaign.unwrap_or(true),
            role,
            project: raw.project.filter(|p| !p.is_empty()),
            gossip_interval,
            probe_interval,
            probe_timeout,
            suspicion_window,
            tls: TlsFiles {
                ca_cert: required(raw.ca_cert, "ca_cert")?,
                node_cert: required(raw.node_cert, "node_cert")?,
                node_key: required(raw.node_key, "node_key")?,
            },
            gossip_key_file: required(raw.gossip_key_file, "gossip_key_file")?,
            lb_listen: addr(
                raw.lb_listen.as_deref().unwrap_or(DEFAULT_LB_LISTEN),
                "lb_listen",
            )?,
            nginx: raw.nginx.unwrap_or_else(|| PathBuf::from(DEFAULT_NGINX)),
        })
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
