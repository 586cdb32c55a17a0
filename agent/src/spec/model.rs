//! The user's desired state as typed values: what `config/*.json` say.
//!
//! These types are plain data. Loading, validation and error reporting live
//! in the sibling modules; the planner consumes these types read-only.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Everything the planner needs from the user's files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Spec {
    pub infrastructure: InfrastructureSpec,
    pub deployment: DeploymentConfig,
}

/// `config/infrastructure.json`: the user's spec plus the runtime sections
/// the system writes back (`droplets`, `projects`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfrastructureFile {
    /// Runtime view written by the system (reference v2 format).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub droplets: IndexMap<String, RuntimeDroplet>,
    /// Runtime view written by the system: `"<project>-<env>" -> service -> placement`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub projects: IndexMap<String, IndexMap<String, RuntimeService>>,
    pub infrastructure_spec: InfrastructureSpec,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InfrastructureSpec {
    /// Fixed droplets; today only `master`.
    #[serde(default)]
    pub droplets: IndexMap<String, DropletSpec>,
    #[serde(default)]
    pub projects: IndexMap<String, ProjectSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropletSpec {
    pub size: String,
    pub region: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Web,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Web => "web",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSpec {
    pub environments: Vec<String>,
    pub web_droplets: u32,
    pub web_droplet_spec: String,
    /// Region of the project's web droplets; defaults to the master's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Optional public domain per environment, used as nginx `server_name`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub domains: IndexMap<String, String>,
}

/// A droplet in the runtime view (`infrastructure.json` → `droplets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeDroplet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub size: String,
    pub region: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<String>,
    /// Whether the droplet's agent is a Raft voter (else a learner).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voter: bool,
}

/// A service in the runtime view (`infrastructure.json` → `projects`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeService {
    #[serde(rename = "type", default)]
    pub kind: ServiceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub assigned_droplets: Vec<String>,
}

/// `config/deployment_config.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    #[serde(default)]
    pub deployment_platform: Platform,
    #[serde(default)]
    pub git_config: GitConfig,
    #[serde(default)]
    pub projects: IndexMap<String, ProjectDeployment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    #[default]
    Docker,
    Kubernetes,
    Podman,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    pub base_url: String,
    /// Pattern with `{base_url}` and `{project}` placeholders.
    pub url_pattern: String,
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            base_url: "https://github.com/yourorg".into(),
            url_pattern: "{base_url}/{project}.git".into(),
        }
    }
}

impl GitConfig {
    /// The clone URL of `project`.
    pub fn repo_url(&self, project: &str) -> String {
        self.url_pattern
            .replace("{base_url}", self.base_url.trim_end_matches('/'))
            .replace("{project}", project)
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectDeployment {
    #[serde(default)]
    pub services: IndexMap<String, ServiceSpec>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    #[default]
    Web,
    Worker,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Web => "web",
            ServiceKind::Worker => "worker",
        }
    }
}

/// Default port a web service listens on inside its container.
pub const DEFAULT_CONTAINER_PORT: u16 = 8000;
/// Default health-check path of a web service.
pub const DEFAULT_HEALTH_PATH: &str = "/health";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    #[serde(rename = "type", default)]
    pub kind: ServiceKind,
    pub containerfile_path: String,
    /// Command of a worker (required for workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub environment: IndexMap<String, String>,
    /// Port the service listens on inside its container (web only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
}

impl ServiceSpec {
    pub fn container_port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_CONTAINER_PORT)
    }
    pub fn health_path(&self) -> &str {
        self.health_path.as_deref().unwrap_or(DEFAULT_HEALTH_PATH)
    }
}

/// Droplet name of a project's N-th web droplet (1-based): `<project>-web<N>`.
pub fn web_droplet_name(project: &str, n: u32) -> String {
    format!("{project}-web{n}")
}

/// Service (container) name: `<project>-<env>-<service>`.
pub fn service_name(project: &str, env: &str, service: &str) -> String {
    format!("{project}-{env}-{service}")
}

/// Name of the master droplet.
pub const MASTER: &str = "master";
