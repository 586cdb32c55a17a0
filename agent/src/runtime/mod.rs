//! Container runtime: the [`ContainerRuntime`] trait the deploy code drives
//! (build, ship and run service containers) and its Docker/Podman
//! implementation over bollard ([`DockerRuntime`], or [`LocalEngine`]
//! connected on first use); plus the Kubernetes and docker-compose
//! manifests `infractl render` writes ([`manifests`]). On a cluster, each
//! droplet's containers run on that droplet's engine, driven by its agent's
//! `Containers` gRPC service (the leader's side is
//! `deploy::agent_runtime::AgentRuntime`).
//!
//! Podman works through its Docker-compatible API socket: start it with
//! `systemctl start podman.socket` (or `podman system service`) and set
//! `DOCKER_HOST=unix:///run/podman/podman.sock` (rootless:
//! `unix://$XDG_RUNTIME_DIR/podman/podman.sock`).
//!
//! Secrets: Docker secrets are swarm-only, and an upload into a container's
//! tmpfs before start lands under the mount (Docker 20.10 writes it to the
//! layer beneath), so each container's secrets are files in a host tmpfs
//! directory (`/dev/shm` by default) bind-mounted read-only at
//! `/run/secrets`. Values never appear in the container's environment,
//! labels, logs or `docker inspect`.

mod context;
mod docker;
mod lazy;
pub mod manifests;
mod secret_files;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

use crate::deploy::SecretValue;

pub use context::context_tar;
pub use docker::{DEFAULT_SECRETS_ROOT, DockerRuntime};
pub use lazy::LocalEngine;
pub use secret_files::{SecretFiles, on_tmpfs};

/// Label keys every managed container carries.
pub const LABEL_MANAGED: &str = "infra.managed";
pub const LABEL_PROJECT: &str = "infra.project";
pub const LABEL_ENV: &str = "infra.environment";
pub const LABEL_SERVICE: &str = "infra.service";
pub const LABEL_TAG: &str = "infra.tag";
/// The agent (droplet) that started the container, stamped by the agent's
/// `Containers` service.
pub const LABEL_AGENT: &str = "infra.agent";

/// Where secret files appear inside a container.
pub const SECRETS_DIR: &str = "/run/secrets";

/// A stream of bytes (a saved image).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, RuntimeError>> + Send>>;

/// Errors of a container runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot reach the container engine: {0}")]
    Connect(String),
    #[error("container engine call `{op}` on `{target}` failed: {message}")]
    Engine {
        op: &'static str,
        target: String,
        message: String,
    },
    #[error("image build of `{tag}` failed: {message}")]
    Build { tag: String, message: String },
    #[error("invalid {field} `{value}`: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What to build: a context directory and a containerfile inside it.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    pub context_dir: PathBuf,
    /// Path of the containerfile relative to `context_dir`.
    pub containerfile: String,
    /// Image reference to tag the result with (`name:tag`).
    pub tag: String,
    pub labels: BTreeMap<String, String>,
}

/// An image as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// The identity labels of a service container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceLabels {
    pub project: String,
    pub environment: String,
    pub service: String,
    pub tag: String,
}

impl ServiceLabels {
    /// The label map: identity labels plus `infra.managed=true`.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_PROJECT.to_string(), self.project.clone()),
            (LABEL_ENV.to_string(), self.environment.clone()),
            (LABEL_SERVICE.to_string(), self.service.clone()),
            (LABEL_TAG.to_string(), self.tag.clone()),
        ])
    }
}

/// A published port: `host_ip:host_port` -> `container_port`/tcp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPublish {
    pub host_ip: std::net::IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

/// A container to run (restart policy: unless-stopped).
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub labels: ServiceLabels,
    /// More labels (e.g. `infra.test=<id>`); cannot override identity labels.
    pub extra_labels: BTreeMap<String, String>,
    /// Command override (argv); `None` keeps the image's CMD.
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub publish: Option<PortPublish>,
    /// Secret files, readable at `/run/secrets/<name>`.
    pub secrets: BTreeMap<String, SecretValue>,
    /// Run an init as PID 1 (forwards SIGTERM, reaps zombies): a process
    /// that ignores SIGTERM as PID 1 then stops without waiting the grace.
    /// Needs the engine's init binary (docker-init / catatonit).
    pub init: bool,
}

/// A container as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// Engine state: `created`, `running`, `exited`, ...
    pub state: String,
    pub running: bool,
    /// Published ports: (container port, host ip, host port).
    pub ports: Vec<(u16, String, u16)>,
}

/// A container engine (Docker, Podman) as the deploy code needs it.
#[async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Builds an image from a tar of the context directory; returns its id.
    async fn build_image(&self, req: &BuildRequest) -> Result<String, RuntimeError>;
    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError>;
    async fn inspect_image(&self, image: &str) -> Result<ImageInfo, RuntimeError>;
    /// The image as a `docker save` tar stream (to deliver without a registry).
    async fn save_image(&self, image: &str) -> Result<ByteStream, RuntimeError>;
    /// Loads a `docker save` tar stream; returns what the engine reports loaded.
    async fn load_image(&self, data: ByteStream) -> Result<Vec<String>, RuntimeError>;
    async fn remove_image(&self, image: &str) -> Result<(), RuntimeError>;
    /// Creates and starts a container; returns its id.
    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;
    /// Stops a container (SIGTERM, then SIGKILL after `grace`).
    async fn stop(&self, name: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// Removes a container (forcefully) and its secret files; absent is fine.
    async fn remove(&self, name: &str) -> Result<(), RuntimeError>;
    /// Containers (running or not) carrying every given label.
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerInfo>, RuntimeError>;
    /// The last `lines` lines of the container's stdout and stderr.
    async fn logs_tail(&self, name: &str, lines: usize) -> Result<String, RuntimeError>;
    /// The container, or `None` if there is none by that name.
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, RuntimeError>;
}

/// Checks a name used as a container name or a file name component.
pub fn check_name(field: &'static str, value: &str) -> Result<(), RuntimeError> {
    let ok = !value.is_empty()
        && !value.starts_with('.')
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Invalid {
            field,
            value: value.to_string(),
            reason: "use letters, digits, '_', '-', '.' (not first)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_include_managed_marker() {
        let l = ServiceLabels {
            project: "shop".into(),
            environment: "prod".into(),
            service: "web".into(),
            tag: "v1.0.0-uat-20260101-1200".into(),
        };
        let m = l.to_map();
        assert_eq!(m[LABEL_MANAGED], "true");
        assert_eq!(m[LABEL_PROJECT], "shop");
        assert_eq!(m[LABEL_TAG], "v1.0.0-uat-20260101-1200");
    }

    #[test]
    fn names_reject_path_tricks() {
        assert!(check_name("secret", "db_password").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a b"] {
            assert!(check_name("secret", bad).is_err(), "{bad}");
        }
    }
}
