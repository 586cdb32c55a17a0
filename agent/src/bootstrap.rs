//! Droplet bootstrap: the cloud-init user-data that carries everything a new
//! droplet's agent needs (name, cluster id, seeds, node certificate issued
//! by the cluster CA, CA certificate, gossip key), and
//! the reverse — an agent started by the simulator's process backing
//! (`INFRA_SIM_*` variables) reads that user-data and builds its
//! [`AgentConfig`]. Nothing in it forms a cluster: a droplet created or
//! rebuilt with it only ever joins (see `node::formation`).
//!
//! The user-data is a `#cloud-config` document whose `write_files` hold the
//! agent config (`/etc/infra-agent/agent.toml`, which carries the format
//! `version`) and the PKI files; on a real droplet `runcmd` fills in the
//! advertised addresses from the metadata service and starts the agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{AgentConfig, CONFIG_VERSION, ConfigError, RawConfig};
use crate::membership::GossipKey;
use crate::tls::{Ca, IssuedCert, TlsError};

/// Where the files land on a real droplet.
pub const AGENT_TOML_PATH: &str = "/etc/infra-agent/agent.toml";
pub const CA_CERT_PATH: &str = "/etc/infra/pki/ca.pem";
pub const NODE_CERT_PATH: &str = "/etc/infra/pki/node.pem";
pub const NODE_KEY_PATH: &str = "/etc/infra/pki/node.key";
pub const GOSSIP_KEY_PATH: &str = "/etc/infra/pki/gossip.key";
/// The CA key, present only on nodes that may orchestrate (voters).
pub const CA_KEY_PATH: &str = "/etc/infra/pki/ca.key";
/// The cloud API token, present only on nodes that may orchestrate.
pub const API_TOKEN_PATH: &str = "/etc/infra/pki/do.token";
/// Where the notification bundle goes (beside the CA key and the token).
pub const NOTIFY_DIR_PATH: &str = "/etc/infra/pki/notify";
const NOTIFY_FILES: [&str; 3] = [
    crate::notify::EMAIL_CONFIG_FILE,
    crate::notify::SMS_CONFIG_FILE,
    crate::notify::SECRETS_FILE,
];
/// The agent's data directory on a real droplet.
pub const DROPLET_DATA_DIR: &str = "/var/lib/infra-agent";
/// Default ports of the agent's gRPC (mTLS) and gossip listeners.
pub const DEFAULT_GRPC_PORT: u16 = 7400;
pub const DEFAULT_GOSSIP_PORT: u16 = 7401;

/// Environment variables the simulator's process backing sets.
pub const ENV_DROPLET_ID: &str = "INFRA_SIM_DROPLET_ID";
pub const ENV_DROPLET_NAME: &str = "INFRA_SIM_DROPLET_NAME";
pub const ENV_DATA_DIR: &str = "INFRA_SIM_DATA_DIR";
pub const ENV_ADDR: &str = "INFRA_SIM_ADDR";
pub const ENV_USER_DATA_FILE: &str = "INFRA_SIM_USER_DATA_FILE";
pub const ENV_API_URL: &str = "INFRA_SIM_API_URL";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot render user-data: {0}")]
    Render(String),
    #[error("user-data {source_name} is not a valid #cloud-config document: {reason}")]
    Parse { source_name: String, reason: String },
    #[error("user-data {source_name} has no write_files entry for {path}")]
    MissingFile { source_name: String, path: String },
    #[error("environment variable {0} is not set (is this agent started by infra-sim?)")]
    MissingEnv(&'static str),
    #[error("environment variable {name} has invalid value `{value}`: {reason}")]
    InvalidEnv {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Everything one droplet's agent is started with. Debug hides the keys.
#[derive(Clone)]
pub struct NodeBootstrap {
    pub node_name: String,
    pub cluster_id: String,
    pub role: String,
    pub project: Option<String>,
    /// Gossip addresses (`IP:PORT`) of nodes to join through.
    pub seeds: Vec<String>,
    pub grpc_port: u16,
    pub gossip_port: u16,
    pub ca_cert_pem: String,
    pub node_cert: IssuedCert,
    /// Hex gossip key.
    gossip_key_hex: String,
    /// The CA key, for nodes that issue certificates as leader.
    ca_key_pem: Option<String>,
    /// The cloud API token, for nodes that call the provider as leader.
    api_token: Option<crate::provider::Secret>,
    /// Notification configs and secrets (`notify/<name>`), for nodes that
    /// may lead.
    notify_files: Vec<(&'static str, String)>,
}

impl std::fmt::Debug for NodeBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeBootstrap")
            .field("node_name", &self.node_name)
            .field("cluster_id", &self.cluster_id)
            .field("role", &self.role)
            .field("project", &self.project)
            .field("seeds", &self.seeds)
            .field("grpc_port", &self.grpc_port)
            .field("gossip_port", &self.gossip_port)
            .field("node_cert", &self.node_cert)
            .field("gossip_key", &"<redacted>")
            .field("ca_key", &self.ca_key_pem.as_ref().map(|_| "<redacted>"))
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field(
                "notify_files",
                &self
                    .notify_files
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What the orchestrator knows about a droplet before creating it.
#[derive(Debug, Clone)]
pub struct NodeParams {
    pub node_name: String,
    pub cluster_id: String,
    pub role: String,
    pub project: Option<String>,
    pub seeds: Vec<String>,
    pub grpc_port: u16,
    pub gossip_port: u16,
}

impl NodeBootstrap {
    /// Issues the node certificate for `params.node_name` with `ca` and
    /// bundles it with the CA certificate and the gossip key.
    pub fn issue(
        params: NodeParams,
        ca: &Ca,
        gossip_key: &GossipKey,
    ) -> Result<NodeBootstrap, BootstrapError> {
        let node_cert = ca.issue_node(&params.node_name, &[])?;
        Ok(NodeBootstrap {
            node_name: params.node_name,
            cluster_id: params.cluster_id,
            role: params.role,
            project: params.project,
            seeds: params.seeds,
            grpc_port: params.grpc_port,
            gossip_port: params.gossip_port,
            ca_cert_pem: ca.cert_pem().to_string(),
            node_cert,
            gossip_key_hex: gossip_key.to_hex(),
            ca_key_pem: None,
            api_token: None,
            notify_files: Vec::new(),
        })
    }

    /// Also ships the notification configs and their secrets (orchestrating
    /// nodes only), into [`NOTIFY_DIR_PATH`].
    pub fn with_notify(mut self, bundle: &crate::notify::NotifyBundle) -> NodeBootstrap {
        self.notify_files = bundle.files();
        self
    }

    /// Also ships the cloud API token (orchestrating nodes only).
    pub fn with_api_token(mut self, token: crate::provider::Secret) -> NodeBootstrap {
        self.api_token = Some(token);
        self
    }

    /// Also ships the CA key, so this node can issue node certificates
    /// when it leads (voters only).
    pub fn with_ca_key(mut self, ca: &Ca) -> NodeBootstrap {
        self.ca_key_pem = Some(ca.key_pem().to_string());
        self
    }

    /// The agent config file as installed on a real droplet (advertised
    /// addresses come from the metadata service at boot, see `runcmd`).
    pub fn agent_toml(&self) -> Result<String, BootstrapError> {
        let file = AgentToml {
            version: CONFIG_VERSION,
            node_name: self.node_name.clone(),
            cluster_id: self.cluster_id.clone(),
            data_dir: DROPLET_DATA_DIR.to_string(),
            grpc_listen: format!("0.0.0.0:{}", self.grpc_port),
            gossip_listen: format!("0.0.0.0:{}", self.gossip_port),
            seeds: self.seeds.clone(),
            campaign: self.api_token.is_none().then_some(false),
            role: self.role.clone(),
            project: self.project.clone(),
            ca_cert: CA_CERT_PATH.to_string(),
            node_cert: NODE_CERT_PATH.to_string(),
            node_key: NODE_KEY_PATH.to_string(),
            gossip_key_file: GOSSIP_KEY_PATH.to_string(),
        };
        toml::to_string(&file).map_err(|e| BootstrapError::Render(e.to_string()))
    }

    /// The droplet's cloud-init user-data.
    pub fn user_data(&self) -> Result<String, BootstrapError> {
        let file = |path: &str, permissions: &str, content: String| WriteFile {
            path: path.to_string(),
            permissions: permissions.to_string(),
            content,
        };
        let mut write_files = vec![
            file(AGENT_TOML_PATH, "0600", self.agent_toml()?),
            file(CA_CERT_PATH, "0644", self.ca_cert_pem.clone()),
            file(NODE_CERT_PATH, "0644", self.node_cert.cert_pem.clone()),
            file(NODE_KEY_PATH, "0600", self.node_cert.key_pem.clone()),
            file(
                GOSSIP_KEY_PATH,
                "0600",
                format!("{}\n", self.gossip_key_hex),
            ),
        ];
        if let Some(key) = &self.ca_key_pem {
            write_files.push(file(CA_KEY_PATH, "0600", key.clone()));
        }
        if let Some(token) = &self.api_token {
            write_files.push(file(API_TOKEN_PATH, "0600", token.expose().to_string()));
        }
        for (name, content) in &self.notify_files {
            write_files.push(file(
                &format!("{NOTIFY_DIR_PATH}/{name}"),
                "0600",
                content.clone(),
            ));
        }
        let doc = CloudConfig {
            hostname: self.node_name.clone(),
            write_files,
            runcmd: vec![
                "IP=$(curl -fsS http://169.254.169.254/metadata/v1/interfaces/public/0/ipv4/address)"
                    .to_string(),
                format!(
                    "printf 'INFRA_AGENT_GRPC_ADVERTISE=%s:{}\\nINFRA_AGENT_GOSSIP_ADVERTISE=%s:{}\\n' \"$IP\" \"$IP\" > /etc/infra-agent/env",
                    self.grpc_port, self.gossip_port
                ),
                "systemctl daemon-reload".to_string(),
                "systemctl enable --now infra-agent.service".to_string(),
            ],
        };
        let yaml =
            serde_norway::to_string(&doc).map_err(|e| BootstrapError::Render(e.to_string()))?;
        Ok(format!("#cloud-config\n{yaml}"))
    }
}

#[derive(Serialize, Deserialize)]
struct AgentToml {
    version: u32,
    node_name: String,
    cluster_id: String,
    data_dir: String,
    grpc_listen: String,
    gossip_listen: String,
    seeds: Vec<String>,
    /// Absent (true) on nodes that hold the API token.
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign: Option<bool>,
    role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    ca_cert: String,
    node_cert: String,
    node_key: String,
    gossip_key_file: String,
}

#[derive(Serialize, Deserialize)]
struct CloudConfig {
    hostname: String,
    write_files: Vec<WriteFile>,
    #[serde(default)]
    runcmd: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct WriteFile {
    path: String,
    #[serde(default)]
    permissions: String,
    content: String,
}

/// The files of a parsed user-data document, by absolute path.
pub struct UserData {
    source_name: String,
    files: BTreeMap<String, String>,
}

impl UserData {
    /// Parses a `#cloud-config` document; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<UserData, BootstrapError> {
        let parse_err = |reason: String| BootstrapError::Parse {
            source_name: source_name.to_string(),
            reason,
        };
        if !text.starts_with("#cloud-config") {
            return Err(parse_err("the first line must be `#cloud-config`".into()));
        }
        let doc: CloudConfig =
            serde_norway::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        Ok(UserData {
            source_name: source_name.to_string(),
            files: doc
                .write_files
                .into_iter()
                .map(|f| (f.path, f.content))
                .collect(),
        })
    }

    /// Whether the document writes a file at `path`.
    pub fn has(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// The content of the file written at `path`.
    pub fn file(&self, path: &str) -> Result<&str, BootstrapError> {
        self.files
            .get(path)
            .map(String::as_str)
            .ok_or_else(|| BootstrapError::MissingFile {
                source_name: self.source_name.clone(),
                path: path.to_string(),
            })
    }
}

/// The `INFRA_SIM_*` environment of a simulated droplet.
#[derive(Debug, Clone)]
pub struct SimEnv {
    pub droplet_id: u64,
    pub droplet_name: String,
    pub data_dir: PathBuf,
    pub addr: std::net::IpAddr,
    pub user_data_file: PathBuf,
    pub api_url: Option<String>,
}

impl SimEnv {
    /// Reads the variables through `lookup` (e.g. `|k| std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<SimEnv, BootstrapError> {
        let get = |name: &'static str| lookup(name).ok_or(BootstrapError::MissingEnv(name));
        let id = get(ENV_DROPLET_ID)?;
        let addr = get(ENV_ADDR)?;
        Ok(SimEnv {
            droplet_id: id.parse().map_err(|_| BootstrapError::InvalidEnv {
                name: ENV_DROPLET_ID,
                value: id.clone(),
                reason: "expected an integer droplet id".into(),
            })?,
            droplet_name: get(ENV_DROPLET_NAME)?,
            data_dir: get(ENV_DATA_DIR)?.into(),
            addr: addr.parse().map_err(|_| BootstrapError::InvalidEnv {
                name: ENV_ADDR,
                value: addr.clone(),
                reason: "expected an IP address".into(),
            })?,
            user_data_file: get(ENV_USER_DATA_FILE)?.into(),
            api_url: lookup(ENV_API_URL),
        })
    }

    /// Whether this process runs under the simulator's process backing.
    pub fn present(lookup: impl Fn(&str) -> Option<String>) -> bool {
        lookup(ENV_USER_DATA_FILE).is_some()
    }
}

/// Where an agent finds the CA key shipped by [`NodeBootstrap::with_ca_key`]:
/// next to its CA certificate.
pub fn ca_key_path(config: &AgentConfig) -> PathBuf {
    config
        .tls
        .ca_cert
        .parent()
        .unwrap_or(Path::new("."))
        .join("ca.key")
}

/// Where an agent finds the API token shipped by
/// [`NodeBootstrap::with_api_token`]: next to its CA certificate.
pub fn api_token_path(config: &AgentConfig) -> PathBuf {
    ca_key_path(config).with_file_name("do.token")
}

fn port_of(listen: &Option<String>, field: &'static str) -> Result<u16, BootstrapError> {
    let value = listen
        .clone()
        .ok_or(BootstrapError::Config(ConfigError::Missing { field }))?;
    value
        .parse::<std::net::SocketAddr>()
        .map(|a| a.port())
        .map_err(|_| {
            BootstrapError::Config(ConfigError::Invalid {
                field,
                value,
                reason: "expected IP:PORT".into(),
            })
        })
}

fn write_file(path: &Path, content: &str) -> Result<(), BootstrapError> {
    crate::tls::write_private(path, content.as_bytes()).map_err(|e| match e {
        TlsError::Write { path, source } => BootstrapError::Write { path, source },
        other => BootstrapError::Tls(other),
    })
}

/// Port of the load balancer of a local-cloud droplet (on its address).
pub const SIM_LB_PORT: u16 = 7480;

/// Builds the config of an agent started by the simulator: reads the
/// user-data file, writes its PKI files under `<data dir>/pki/` (0600),
/// binds gRPC and gossip on the droplet's own address with the ports of the
/// user-data (the load balancer on [`SIM_LB_PORT`]), and uses the
/// droplet's data dir.
pub fn config_from_sim_env(env: &SimEnv) -> Result<AgentConfig, BootstrapError> {
    let text =
        std::fs::read_to_string(&env.user_data_file).map_err(|source| BootstrapError::Read {
            path: env.user_data_file.clone(),
            source,
        })?;
    let source_name = env.user_data_file.display().to_string();
    let user_data = UserData::parse(&text, &source_name)?;
    let toml_text = user_data.file(AGENT_TOML_PATH)?;
    let mut raw: RawConfig = toml::from_str(toml_text).map_err(|source| ConfigError::Parse {
        path: PathBuf::from(format!("{source_name}:{AGENT_TOML_PATH}")),
        source: Box::new(source),
    })?;
    let pki = env.data_dir.join("pki");
    std::fs::create_dir_all(&pki).map_err(|source| BootstrapError::Write {
        path: pki.clone(),
        source,
    })?;
    let place = |droplet_path: &str, name: &str| -> Result<PathBuf, BootstrapError> {
        let target = pki.join(name);
        write_file(&target, user_data.file(droplet_path)?)?;
        Ok(target)
    };
    raw.ca_cert = Some(place(CA_CERT_PATH, "ca.pem")?);
    raw.node_cert = Some(place(NODE_CERT_PATH, "node.pem")?);
    raw.node_key = Some(place(NODE_KEY_PATH, "node.key")?);
    raw.gossip_key_file = Some(place(GOSSIP_KEY_PATH, "gossip.key")?);
    if user_data.has(CA_KEY_PATH) {
        place(CA_KEY_PATH, "ca.key")?;
    }
    if user_data.has(API_TOKEN_PATH) {
        place(API_TOKEN_PATH, "do.token")?;
    }
    for name in NOTIFY_FILES {
        let path = format!("{NOTIFY_DIR_PATH}/{name}");
        if user_data.has(&path) {
            let target = pki.join(crate::notify::NOTIFY_DIR).join(name);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|source| BootstrapError::Write {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
            write_file(&target, user_data.file(&path)?)?;
        }
    }
    let grpc = std::net::SocketAddr::new(env.addr, port_of(&raw.grpc_listen, "grpc_listen")?);
    let gossip = std::net::SocketAddr::new(env.addr, port_of(&raw.gossip_listen, "gossip_listen")?);
    raw.grpc_listen = Some(grpc.to_string());
    raw.grpc_advertise = Some(grpc.to_string());
    raw.gossip_listen = Some(gossip.to_string());
    raw.gossip_advertise = Some(gossip.to_string());
    raw.data_dir = Some(env.data_dir.clone());
    if raw.lb_listen.is_none() {
        // The local cloud: the load balancer on the droplet's own address.
        raw.lb_listen = Some(std::net::SocketAddr::new(env.addr, SIM_LB_PORT).to_string());
    }
    Ok(AgentConfig::from_raw(raw)?)
}

#[cfg(test)]
#[path = "bootstrap_tests.rs"]
mod tests;
