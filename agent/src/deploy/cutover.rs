//! The health-gated cutover: start the new container beside the old one (on
//! a temporary host port), wait until its health path answers, point the
//! load balancer at it, let the old one drain, then stop the old one. A new
//! container that never gets healthy is removed and the old one keeps
//! serving; the error carries the tail of the new container's log.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::runtime::{ContainerRuntime, ContainerSpec, RuntimeError};

/// Checks whether a service answers healthy at `addr` + `path`.
#[async_trait]
pub trait HealthProbe: Send + Sync {
    /// `Ok` when healthy; otherwise why not.
    async fn check(&self, addr: SocketAddr, path: &str) -> Result<(), String>;
}

/// Points a service's traffic at one backend address.
#[async_trait]
pub trait TrafficSwitch: Send + Sync {
    async fn switch_to(&self, upstream: &str, addr: SocketAddr) -> Result<(), String>;
}

/// Timings of a cutover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutoverConfig {
    pub health_timeout: Duration,
    pub poll_interval: Duration,
    /// How long the old container keeps serving after the switch.
    pub drain: Duration,
    /// SIGTERM grace when stopping a container.
    pub stop_grace: Duration,
    /// Log lines reported from a failed new container.
    pub log_lines: usize,
}

impl Default for CutoverConfig {
    fn default() -> Self {
        CutoverConfig {
            health_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            drain: Duration::from_secs(5),
            stop_grace: Duration::from_secs(10),
            log_lines: 20,
        }
    }
}

/// What a successful cutover did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoverReport {
    pub container_id: String,
    pub addr: SocketAddr,
    /// From start of the new container to its first healthy answer.
    pub healthy_after: Duration,
    pub probes: u32,
    /// The old container that was stopped, if any.
    pub replaced: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CutoverError {
    #[error("new container {name} has no published port to probe")]
    NoPort { name: String },
    #[error("cannot start new container {name}: {source}")]
    Start {
        name: String,
        #[source]
        source: RuntimeError,
    },
    #[error(
        "new container {name} never became healthy within {timeout:?} (last: {last}); old one kept. Last log lines:\n{logs}"
    )]
    Unhealthy {
        name: String,
        timeout: Duration,
        last: String,
        logs: String,
    },
    #[error("switching {upstream} to {name} failed: {reason}; old one kept")]
    Switch {
        upstream: String,
        name: String,
        reason: String,
    },
    #[error("stopping old container {name} failed: {source}")]
    StopOld {
        name: String,
        #[source]
        source: RuntimeError,
    },
}

/// The parts a cutover drives.
pub struct Cutover<'a> {
    pub runtime: &'a dyn ContainerRuntime,
    pub probe: &'a dyn HealthProbe,
    pub switch: &'a dyn TrafficSwitch,
    pub config: CutoverConfig,
}

impl Cutover<'_> {
    /// Replaces container `old` (if any) by `new`, switching `upstream` over.
    pub async fn run(
        &self,
        upstream: &str,
        new: &ContainerSpec,
        health_path: &str,
        old: Option<&str>,
    ) -> Result<CutoverReport, CutoverError> {
        cutover(self, upstream, new, health_path, old).await
    }
}

async fn cutover(
    parts: &Cutover<'_>,
    upstream: &str,
    new: &ContainerSpec,
    health_path: &str,
    old: Option<&str>,
) -> Result<CutoverReport, CutoverError> {
    let (runtime, probe, switch, cfg) = (parts.runtime, parts.probe, parts.switch, &parts.config);
    let Some(publish) = new.publish else {
        return Err(CutoverError::NoPort {
            name: new.name.clone(),
        });
    };
    let addr = SocketAddr::new(publish.host_ip, publish.host_port);
    let started = Instant::now();
    let id = runtime
        .run(new)
        .await
        .map_err(|source| CutoverError::Start {
            name: new.name.clone(),
            source,
        })?;
    let deadline = started + cfg.health_timeout;
    let mut probes = 0u32;
    let mut last = String::from("not probed");
    let healthy = loop {
        probes += 1;
        match probe.check(addr, health_path).await {
            Ok(()) => break true,
            Err(why) => last = why,
        }
        if let Ok(Some(info)) = runtime.inspect(&new.name).await
            && matches!(info.state.as_str(), "exited" | "dead")
        {
            last = format!("container {}", info.state);
            break false;
        }
        if Instant::now() + cfg.poll_interval > deadline {
            break false;
        }
        tokio::time::sleep(cfg.poll_interval).await;
    };
    if !healthy {
        let logs = runtime
            .logs_tail(&new.name, cfg.log_lines)
            .await
            .unwrap_or_else(|e| format!("<logs unavailable: {e}>"));
        discard(runtime, &new.name, cfg).await;
        return Err(CutoverError::Unhealthy {
            name: new.name.clone(),
            timeout: cfg.health_timeout,
            last,
            logs,
        });
    }
    let healthy_after = started.elapsed();
    if let Err(reason) = switch.switch_to(upstream, addr).await {
        discard(runtime, &new.name, cfg).await;
        return Err(CutoverError::Switch {
            upstream: upstream.into(),
            name: new.name.clone(),
            reason,
        });
    }
    if let Some(old) = old.filter(|o| *o != new.name) {
        tokio::time::sleep(cfg.drain).await;
        runtime
            .stop(old, cfg.stop_grace)
            .await
            .and(runtime.remove(old).await)
            .map_err(|source| CutoverError::StopOld {
                name: old.into(),
                source,
            })?;
    }
    Ok(CutoverReport {
        container_id: id,
        addr,
        healthy_after,
        probes,
        replaced: old.map(str::to_string),
    })
}

async fn discard(runtime: &dyn ContainerRuntime, name: &str, cfg: &CutoverConfig) {
    if let Err(e) = runtime.stop(name, cfg.stop_grace).await {
        tracing::warn!(container = name, error = %e, "stopping failed new container");
    }
    if let Err(e) = runtime.remove(name).await {
        tracing::warn!(container = name, error = %e, "removing failed new container");
    }
}

/// One HTTP/1.0 GET; returns the status code and body.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let bad = || std::io::Error::other(format!("bad HTTP response: {text:.80}"));
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(bad)?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP GET timed out"))?
}

/// [`HealthProbe`] over plain HTTP: healthy on a 2xx answer.
#[derive(Debug, Clone, Copy)]
pub struct HttpProbe {
    pub timeout: Duration,
}

#[async_trait]
impl HealthProbe for HttpProbe {
    async fn check(&self, addr: SocketAddr, path: &str) -> Result<(), String> {
        match http_get(addr, path, self.timeout).await {
            Ok((code, _)) if (200..300).contains(&code) => Ok(()),
            Ok((code, _)) => Err(format!("HTTP {code}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
#[path = "cutover_tests.rs"]
mod tests;
