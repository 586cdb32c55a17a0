//! The recovery's "place the services" on the leader: converges a droplet
//! to the live releases of the state ([`plan_droplet`] over the containers
//! its agent lists), starting what is missing through the deploy pipeline
//! (images delivered to its agent, secrets opened from the sealed state,
//! health-gated for web services), one at a time with deploys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{LeaderDeploys, deployment_config, droplets, failed};
use crate::api::handler::ControlError;
use crate::deploy::cutover::HttpProbe;
use crate::deploy::pipeline::{LABEL_DROPLET, Pipeline, Progress};
use crate::deploy::release_log::ReleaseRecord;
use crate::deploy::state_log::StateReleaseLog;
use crate::orchestrator::StateStore;
use crate::orchestrator::placement::{Action, Planned, plan_droplet};
use crate::runtime::LABEL_MANAGED;
use crate::state::release_key;

/// What a convergence did, by `<project>/<env>/<service> <tag>`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Converged {
    pub started: Vec<String>,
    pub replaced: Vec<String>,
    pub kept: Vec<String>,
}

impl std::fmt::Display for Converged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "started {}; replaced {}; already running {}",
            list(&self.started),
            list(&self.replaced),
            list(&self.kept)
        )
    }
}

/// Places a recovered droplet's services (the saga's Place step).
#[async_trait]
pub trait PlaceServices: Send + Sync {
    async fn place(&self, store: &dyn StateStore, droplet: &str)
    -> Result<Converged, ControlError>;
}

/// [`PlaceServices`] by the leader's deploy machinery, with the last
/// applied `deployment_config.json` in `spec_dir`.
pub struct ServicePlacer {
    pub deploys: Arc<LeaderDeploys>,
    pub spec_dir: PathBuf,
}

#[async_trait]
impl PlaceServices for ServicePlacer {
    async fn place(
        &self,
        store: &dyn StateStore,
        droplet: &str,
    ) -> Result<Converged, ControlError> {
        self.deploys
            .converge_droplet(store, droplet, &self.spec_dir)
            .await
    }
}

/// Pipeline steps of a convergence, to the agent's log.
struct Logged<'a>(&'a str);

impl Progress for Logged<'_> {
    fn step(&self, line: &str) {
        tracing::info!(droplet = %self.0, "placing services: {line}");
    }
}

/// Keeps a deploy's valid `deployment_config.json` as this leader's last
/// applied one, so that a recovery it runs later (e.g. after it became the
/// leader by a failover, without an `apply`) can place the services.
/// Best effort: a failure is logged.
pub(super) fn remember_deployment(spec_dir: &Path, text: &str) {
    if text.trim().is_empty() {
        return;
    }
    let written = std::fs::create_dir_all(spec_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            crate::spec::write_atomic(&spec_dir.join("deployment_config.json"), text.as_bytes())
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        tracing::warn!(dir = %spec_dir.display(), %e, "cannot keep the deployment config");
    }
}

fn describe(p: &Planned) -> String {
    format!("{}/{}/{} {}", p.project, p.env, p.service, p.tag)
}

impl LeaderDeploys {
    /// Makes `droplet` run the live release of every service placed on it:
    /// nothing happens for a service already running its live tag (safe to
    /// repeat); a failure leaves no new container behind.
    pub async fn converge_droplet(
        &self,
        store: &dyn StateStore,
        droplet: &str,
        spec_dir: &Path,
    ) -> Result<Converged, ControlError> {
        let _one = self.balancer().exclusive().await;
        let state = store.read().await.map_err(failed)?;
        let all = droplets(&state, &self.settings);
        let d = all
            .get(droplet)
            .ok_or_else(|| failed(format!("droplet {droplet} has no address in the state")))?;
        let labels = BTreeMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_DROPLET.to_string(), droplet.to_string()),
        ]);
        let running = d
            .runtime
            .list(&labels)
            .await
            .map_err(|e| failed(format!("listing the containers of {droplet}: {e}")))?;
        let plan = plan_droplet(droplet, &state, &running);
        let mut done = Converged::default();
        let mut todo: BTreeMap<(String, String), Vec<&Planned>> = BTreeMap::new();
        for p in &plan {
            match &p.action {
                Action::Keep { .. } => done.kept.push(describe(p)),
                _ => todo
                    .entry((p.project.clone(), p.env.clone()))
                    .or_default()
                    .push(p),
            }
        }
        if todo.is_empty() {
            return Ok(done);
        }
        let (deployment, _) = deployment_config("", spec_dir)?;
        let engine = self.engine().await?;
        let lb = self.lb(store, &state, &all).await?;
        let releases = StateReleaseLog { store };
        let pipeline = Pipeline {
            deployment: &deployment,
            topology: &state.topology,
            droplets: &all,
            builder: engine,
            lb: lb.as_ref(),
            releases: &releases,
            probe: &HttpProbe {
                timeout: Duration::from_secs(2),
            },
            progress: &Logged(droplet),
            config: self.pipeline_config(),
        };
        for ((project, env), services) in todo {
            let tag = &services[0].tag;
            let key = release_key(&project, &env);
            let release = state
                .releases
                .get(&key)
                .and_then(|all| all.iter().find(|r| &r.tag == tag))
                .ok_or_else(|| failed(format!("{key}: live release {tag} is not recorded")))?;
            let rec = ReleaseRecord {
                project: project.clone(),
                env: env.clone(),
                tag: tag.clone(),
                commit: release.commit.clone(),
                images: release.images.clone(),
            };
            let vars = self
                .secret_vars(store, &state, &project, &env, &BTreeMap::new())
                .await?;
            let names: Vec<String> = services.iter().map(|p| p.service.clone()).collect();
            pipeline
                .converge_droplet(droplet, &rec, &names, &vars)
                .await
                .map_err(|e| failed(format!("placing {key} {tag} on {droplet}: {e}")))?;
            for p in services {
                match &p.action {
                    Action::Replace { old_tag, .. } => done
                        .replaced
                        .push(format!("{} (was {old_tag})", describe(p))),
                    _ => done.started.push(describe(p)),
                }
            }
        }
        Ok(done)
    }
}
