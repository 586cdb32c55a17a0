//! The local context: where `infractl` finds the cloud API and the cluster
//! without flags. `infractl up` writes it to `.infra/context.json` next to
//! the config directory; every later command run from there reads it.
//! Resolution order for each value: flag, environment variable, context.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// Version of the context file format.
pub const CONTEXT_VERSION: u32 = 1;

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Context {
    pub version: u32,
    /// DigitalOcean API base URL (the local simulator's, for `infractl up`).
    pub api_url: String,
    /// API token. The file is written 0600; the token is never printed.
    pub token: String,
    /// gRPC endpoints of agents (`host:port`), any of which will do.
    pub endpoints: Vec<String>,
    /// Directory with `ca.pem`, `client.pem`, `client.key`.
    pub pki_dir: PathBuf,
    /// Directory holding the local cloud's state (sim state, droplet dirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Pid of the background `infra-sim` started by `infractl up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim_pid: Option<u32>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("version", &self.version)
            .field("api_url", &self.api_url)
            .field("token", &"<redacted>")
            .field("endpoints", &self.endpoints)
            .field("pki_dir", &self.pki_dir)
            .field("state_dir", &self.state_dir)
            .field("sim_pid", &self.sim_pid)
            .finish()
    }
}

/// `.infra/` next to the config directory.
pub fn context_dir(config_dir: &Path) -> PathBuf {
    let parent = config_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parent.join(".infra")
}

pub fn context_path(config_dir: &Path) -> PathBuf {
    context_dir(config_dir).join("context.json")
}

impl Context {
    /// The context next to `config_dir`, if `infractl up` wrote one.
    pub fn load(config_dir: &Path) -> anyhow::Result<Option<Context>> {
        let path = context_path(config_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let ctx: Context = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid context file", path.display()))?;
        anyhow::ensure!(
            ctx.version == CONTEXT_VERSION,
            "{}: unsupported context version {} (expected {CONTEXT_VERSION})",
            path.display(),
            ctx.version
        );
        Ok(Some(ctx))
    }

    /// Writes the context, readable by the owner only.
    pub fn save(&self, config_dir: &Path) -> anyhow::Result<PathBuf> {
        let path = context_path(config_dir);
        let text = serde_json::to_string_pretty(self)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        infra_agent::tls::write_private(&path, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// The record that this machine formed a cluster (`.infra/formed.json`):
/// written once, after the first `Initialize` succeeded, and never
/// overwritten; `orchestrate` refuses to form a cluster again while it
/// exists (`infractl down` removes it with the local cloud).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FormedRecord {
    pub version: u32,
    pub cluster_id: String,
    /// The agent that formed it (`host:port`).
    pub endpoint: String,
    /// RFC 3339.
    pub formed_at: String,
}

pub fn formed_path(config_dir: &Path) -> PathBuf {
    context_dir(config_dir).join("formed.json")
}

impl FormedRecord {
    pub fn load(config_dir: &Path) -> anyhow::Result<Option<FormedRecord>> {
        let path = formed_path(config_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{} is not a valid formation record", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the record with `create_new`: an existing one is kept.
    pub fn save_new(&self, config_dir: &Path) -> anyhow::Result<PathBuf> {
        use std::io::Write;
        let path = formed_path(config_dir);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        file.write_all(serde_json::to_string_pretty(self)?.as_bytes())
            .and_then(|_| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }
}

/// Adds the agents of a status document (`members[].grpc_addr`, live
/// ones) to the context's endpoints, so later commands still reach the
/// cluster when the agent they used is gone. Endpoints that answered stay
/// first. No context: nothing to do. A failure to save is only logged.
pub fn remember_members(config_dir: &Path, status: &serde_json::Value) {
    let Ok(Some(mut ctx)) = Context::load(config_dir) else {
        return;
    };
    let Some(members) = status["members"].as_array() else {
        return;
    };
    let mut changed = false;
    for m in members {
        let addr = m["grpc_addr"].as_str().unwrap_or_default();
        let live = matches!(m["state"].as_str(), Some("alive" | "suspect"));
        if live && !addr.is_empty() && !ctx.endpoints.iter().any(|e| e == addr) {
            ctx.endpoints.push(addr.to_string());
            changed = true;
        }
    }
    if changed && let Err(e) = ctx.save(config_dir) {
        tracing::warn!(error = %e, "cannot update the context's endpoints");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_privately_and_hides_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        assert!(Context::load(&config).unwrap().is_none());
        let ctx = Context {
            version: CONTEXT_VERSION,
            api_url: "http://127.0.0.1:1".into(),
            token: "dop_v1_secret".into(),
            endpoints: vec!["127.0.0.2:7000".into()],
            pki_dir: dir.path().join("pki"),
            state_dir: None,
            sim_pid: Some(42),
        };
        let path = ctx.save(&config).unwrap();
        assert_eq!(path, dir.path().join(".infra/context.json"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Context::load(&config).unwrap(), Some(ctx.clone()));
        assert!(!format!("{ctx:?}").contains("dop_v1_secret"));
    }
}
