//! Rolling out one service release on this droplet: a web service through
//! the health-gated [`Cutover`], a worker by starting the new container,
//! checking it stays up for a settle period, then stopping the old one.

use std::time::Duration;

use tokio::time::Instant;

use super::cutover::{Cutover, CutoverError, CutoverReport};
use crate::runtime::ContainerSpec;
use crate::spec::ServiceKind;

/// What a rollout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutReport {
    Web(CutoverReport),
    Worker {
        container_id: String,
        replaced: Option<String>,
    },
}

/// Rolls out `new` (of `kind`) replacing container `old`, if any. Web
/// services switch `upstream` after `health_path` answers; workers must stay
/// running for `worker_settle` (checked every poll interval).
pub async fn roll_out(
    parts: &Cutover<'_>,
    kind: ServiceKind,
    upstream: &str,
    new: &ContainerSpec,
    health_path: &str,
    old: Option<&str>,
    worker_settle: Duration,
) -> Result<RolloutReport, CutoverError> {
    if kind == ServiceKind::Web {
        return parts
            .run(upstream, new, health_path, old)
            .await
            .map(RolloutReport::Web);
    }
    let rt = parts.runtime;
    let cfg = &parts.config;
    let id = rt.run(new).await.map_err(|source| CutoverError::Start {
        name: new.name.clone(),
        source,
    })?;
    let until = Instant::now() + worker_settle;
    loop {
        let state = match rt.inspect(&new.name).await {
            Ok(Some(info)) if info.running && info.state == "running" => None,
            Ok(Some(info)) => Some(format!("container {}", info.state)),
            Ok(None) => Some("container vanished".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(last) = state {
            let logs = rt
                .logs_tail(&new.name, cfg.log_lines)
                .await
                .unwrap_or_else(|e| format!("<logs unavailable: {e}>"));
            let _ = rt.remove(&new.name).await;
            return Err(CutoverError::Unhealthy {
                name: new.name.clone(),
                timeout: worker_settle,
                last,
                logs,
            });
        }
        if Instant::now() >= until {
            break;
        }
        tokio::time::sleep(cfg.poll_interval).await;
    }
    if let Some(old) = old.filter(|o| *o != new.name) {
        rt.stop(old, cfg.stop_grace)
            .await
            .and(rt.remove(old).await)
            .map_err(|source| CutoverError::StopOld {
                name: old.into(),
                source,
            })?;
    }
    Ok(RolloutReport::Worker {
        container_id: id,
        replaced: old.map(str::to_string),
    })
}
