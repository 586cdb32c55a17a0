//! The gRPC client to the agents: which endpoint to call (`--endpoint`,
//! then `INFRA_ENDPOINT`, then the context file's `endpoints`, first
//! reachable wins) and which client certificate to present (`--pki DIR`,
//! then the context's `pki_dir`, then `<config_dir>/pki`: `ca.pem`,
//! `client.pem`, `client.key`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use infra_agent::tls::TlsMaterial;
use infra_proto::v1::control_client::ControlClient;
use tonic::transport::{Channel, Endpoint};

use crate::context::Context;

/// Environment variable naming one agent endpoint (`host:port`).
pub const ENDPOINT_ENV: &str = "INFRA_ENDPOINT";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub endpoints: Vec<String>,
    pub pki_dir: PathBuf,
}

/// Resolves endpoints and the client certificate directory.
pub fn resolve(
    config_dir: &Path,
    endpoint: Option<&str>,
    pki: Option<&Path>,
) -> anyhow::Result<Target> {
    let context = Context::load(config_dir)?;
    let env = std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty());
    let endpoints = match (endpoint, env, &context) {
        (Some(e), _, _) => vec![e.to_string()],
        (None, Some(e), _) => vec![e],
        (None, None, Some(c)) => c.endpoints.clone(),
        (None, None, None) => Vec::new(),
    };
    if endpoints.is_empty() {
        return Err(anyhow!(
            "no cluster endpoint: pass --endpoint HOST:PORT, set {ENDPOINT_ENV}, or run `infractl up`"
        ));
    }
    let pki_dir = match (pki, &context) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(c)) => c.pki_dir.clone(),
        (None, None) => config_dir.join("pki"),
    };
    Ok(Target { endpoints, pki_dir })
}

/// `https://host:port` for a bare `host:port`.
fn url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_string()
    } else {
        format!("https://{endpoint}")
    }
}

/// A Control client to the first reachable endpoint.
pub async fn connect(target: &Target) -> anyhow::Result<ControlClient<Channel>> {
    infra_agent::tls::install_crypto_provider();
    let dir = &target.pki_dir;
    let tls = TlsMaterial::load(
        &dir.join("ca.pem"),
        &dir.join("client.pem"),
        &dir.join("client.key"),
    )
    .with_context(|| format!("client certificate in {}", dir.display()))?;
    let mut errors = Vec::new();
    for endpoint in &target.endpoints {
        let attempt = async {
            Endpoint::from_shared(url(endpoint))?
                .tls_config(tls.client_config())?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(Duration::from_secs(30))
                .connect()
                .await
        };
        match attempt.await {
            Ok(channel) => return Ok(ControlClient::new(channel)),
            Err(err) => errors.push(format!("{endpoint}: {}", source_chain(&err))),
        }
    }
    Err(anyhow!(
        "cluster unreachable: no agent answered ({})",
        errors.join("; ")
    ))
}

fn source_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cur = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_default_pki_and_needs_no_context() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let t = resolve(&config, Some("127.0.0.1:7400"), None).unwrap();
        assert_eq!(t.endpoints, vec!["127.0.0.1:7400".to_string()]);
        assert_eq!(t.pki_dir, config.join("pki"));
        let t = resolve(&config, Some("a:1"), Some(Path::new("/x"))).unwrap();
        assert_eq!(t.pki_dir, PathBuf::from("/x"));
        assert_eq!(url("a:1"), "https://a:1");
    }
}
