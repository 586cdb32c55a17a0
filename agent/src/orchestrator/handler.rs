//! The leader's [`ControlHandler`]: ApplySpec runs [`apply_spec`]; Scale,
//! AddProject and RemoveProject edit the last applied spec (kept in the
//! agent's data dir) and apply it; Cleanup runs `recovery::run_cleanup`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use super::deploy::Request;
use super::{
    ApplyDeps, ClusterIdentity, LeaderDeploys, MembershipJoins, ProgressEvent, Waits, apply_spec,
};
use crate::api::handler::{
    AddProject, ApplySpec, Cleanup, ControlError, ControlHandler, Deploy, Outcome, ProgressSink,
    Recover, RemoveProject, Rollback, Scale,
};
use crate::consensus::Consensus;
use crate::plan::PlanOptions;
use crate::provider::CloudProvider;
use crate::recovery::{KnownState, SYSTEM_TAG, run_cleanup};
use crate::spec::{Spec, parse_spec};

/// What exists only once the node runs (filled after `node::start`).
pub struct NodeRuntime {
    pub consensus: Consensus,
    pub joins: MembershipJoins,
}

/// The orchestrating control handler.
pub struct OrchestratorHandler {
    pub runtime: Arc<OnceLock<NodeRuntime>>,
    pub provider: Arc<dyn CloudProvider>,
    pub identity: Arc<ClusterIdentity>,
    pub waits: Waits,
    /// Directory holding the last applied `infrastructure.json` and
    /// `deployment_config.json`.
    pub spec_dir: PathBuf,
    /// Snapshots kept per droplet by cleanup.
    pub snapshots_kept: usize,
    /// Deploys and rollbacks (`None`: this agent does not deploy).
    pub deploys: Option<Arc<LeaderDeploys>>,
    /// Operator notifications (`None`: none configured).
    pub notify: Option<crate::notify::Fanout>,
}

const INFRA: &str = "infrastructure.json";
const DEPLOY: &str = "deployment_config.json";

fn failed(e: impl std::fmt::Display) -> ControlError {
    ControlError::Failed(e.to_string())
}

impl OrchestratorHandler {
    /// Queues the e-mail confirming that `project`/`env` is live with the
    /// release the state now records (`fallback` when it records none).
    fn confirm_deploy(&self, consensus: &Consensus, project: &str, env: &str, fallback: &str) {
        let Some(fanout) = &self.notify else { return };
        let live = consensus
            .local_state()
            .live_releases
            .get(&format!("{project}/{env}"))
            .cloned();
        fanout.deployed(&crate::notify::DeployConfirmation {
            project: project.into(),
            env: env.into(),
            tag: live.unwrap_or_else(|| fallback.into()),
        });
    }

    /// After a successful deploy: snapshots the droplets that run `project`
    /// (`<droplet>-<YYYYMMDD-HHMM>`), keeps the newest `snapshots_kept` and
    /// records them in the state. A failure is reported; the deploy stands.
    async fn snapshot_after_deploy(
        &self,
        consensus: &Consensus,
        project: &str,
        progress: &ProgressSink,
    ) {
        let state = consensus.local_state();
        let droplets: Vec<(&str, u64)> = state
            .topology
            .droplets
            .iter()
            .filter(|(_, d)| d.project.as_deref() == Some(project))
            .filter_map(|(n, _)| Some((n.as_str(), state.droplets.get(n)?.provider_id?)))
            .collect();
        let policy = crate::recovery::RecoveryPolicy {
            snapshot_interval: chrono::Duration::zero(),
            snapshots_kept: self.snapshots_kept,
            ..Default::default()
        };
        let taken = async {
            let runs = crate::recovery::run_snapshot_schedule(
                self.provider.as_ref(),
                &droplets,
                &policy,
                chrono::Utc::now(),
            )
            .await?;
            super::healer::record_snapshots(self.provider.as_ref(), consensus, runs).await
        };
        match taken.await {
            Ok(names) => progress.step(format!("snapshots after the deploy: {}", names.join(", "))),
            Err(e) => progress.step(format!("warning: snapshots after the deploy failed: {e}")),
        }
    }

    fn runtime(&self) -> Result<&NodeRuntime, ControlError> {
        self.runtime
            .get()
            .ok_or(ControlError::NotAvailable("orchestrator (agent starting)"))
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.spec_dir.join(name)).ok()
    }

    async fn apply_texts(
        &self,
        infra: &str,
        deployment: Option<&str>,
        opts: PlanOptions,
        progress: &ProgressSink,
    ) -> Result<Outcome, ControlError> {
        let (infra_file, deploy) =
            parse_spec(infra, Path::new(INFRA), deployment, Path::new(DEPLOY))
                .map_err(|e| ControlError::Invalid(e.to_string()))?;
        let spec = Spec {
            infrastructure: infra_file.infrastructure_spec,
            deployment: deploy,
        };
        std::fs::create_dir_all(&self.spec_dir).map_err(failed)?;
        crate::spec::write_atomic(&self.spec_dir.join(INFRA), infra.as_bytes()).map_err(failed)?;
        if let Some(d) = deployment {
            crate::spec::write_atomic(&self.spec_dir.join(DEPLOY), d.as_bytes()).map_err(failed)?;
        }
        let rt = self.runtime()?;
        let deps = ApplyDeps {
            provider: self.provider.as_ref(),
            state: &rt.consensus,
            joins: &rt.joins,
            identity: &self.identity,
            waits: self.waits,
        };
        let sink = |e: ProgressEvent| progress.step(format!("{}: {}", e.step, e.message));
        let report = apply_spec(&spec, &opts, &deps, &sink)
            .await
            .map_err(failed)?;
        Ok(Outcome {
            message: format!(
                "{} created, {} adopted, {} deleted",
                report.created.len(),
                report.adopted.len(),
                report.deleted.len()
            ),
            result: Some(serde_json::json!({
                "version": 1,
                "created": report.created,
                "adopted": report.adopted,
                "deleted": report.deleted,
                "topology_committed": report.topology_committed,
            })),
        })
    }

    /// Edits the last applied spec with `edit`, then applies it.
    async fn edit_and_apply(
        &self,
        edit: impl FnOnce(&Path) -> Result<(), ControlError>,
        opts: PlanOptions,
        progress: &ProgressSink,
    ) -> Result<Outcome, ControlError> {
        if self.read(INFRA).is_none() {
            return Err(ControlError::Invalid(
                "no spec was applied on this leader yet: run `infractl orchestrate` first".into(),
            ));
        }
        edit(&self.spec_dir.join(INFRA))?;
        let infra = self.read(INFRA).unwrap_or_default();
        let deployment = self.read(DEPLOY);
        self.apply_texts(&infra, deployment.as_deref(), opts, progress)
            .await
    }
}

#[async_trait]
impl ControlHandler for OrchestratorHandler {
    async fn apply_spec(
        &self,
        req: ApplySpec,
        progress: ProgressSink,
    ) -> Result<Outcome, ControlError> {
        let deployment = Some(req.deployment_json.as_str()).filter(|d| !d.trim().is_empty());
        let opts = PlanOptions {
            allow_destroy: req.allow_destroy,
            force: req.force,
        };
        self.apply_texts(&req.infrastructure_json, deployment, opts, &progress)
            .await
    }

    async fn scale(&self, req: Scale, progress: ProgressSink) -> Result<Outcome, ControlError> {
        let opts = PlanOptions {
            allow_destroy: true,
            force: false,
        };
        self.edit_and_apply(
            |path| {
                crate::spec::scale(path, &req.project, req.web_droplets)
                    .map(|_| ())
                    .map_err(|e| ControlError::Invalid(e.to_string()))
            },
            opts,
            &progress,
        )
        .await
    }

    async fn add_project(
        &self,
        req: AddProject,
        progress: ProgressSink,
    ) -> Result<Outcome, ControlError> {
        self.edit_and_apply(
            |path| {
                crate::spec::add_project(
                    path,
                    &req.name,
                    &req.environments,
                    req.web_droplets,
                    &req.size,
                )
                .map_err(|e| ControlError::Invalid(e.to_string()))
            },
            PlanOptions::default(),
            &progress,
        )
        .await
    }

    async fn remove_project(
        &self,
        req: RemoveProject,
        progress: ProgressSink,
    ) -> Result<Outcome, ControlError> {
        let opts = PlanOptions {
            allow_destroy: req.allow_destroy,
            force: false,
        };
        self.edit_and_apply(
            |path| {
                crate::spec::remove_project(path, &req.name)
                    .map(|_| ())
                    .map_err(|e| ControlError::Invalid(e.to_string()))
            },
            opts,
            &progress,
        )
        .await
    }

    async fn recover(&self, req: Recover, progress: ProgressSink) -> Result<Outcome, ControlError> {
        let rt = self.runtime()?;
        super::manual::recover(&rt.consensus, &rt.joins, req, self.waits.recover, &progress).await
    }

    async fn deploy(&self, req: Deploy, progress: ProgressSink) -> Result<Outcome, ControlError> {
        let deploys = self
            .deploys
            .as_ref()
            .ok_or(ControlError::NotAvailable("Deploy"))?;
        let project = req.project.clone();
        let (env, tag) = (req.environment.clone(), req.tag.clone());
        let req = Request::from_deploy(req)?;
        let rt = self.runtime()?;
        let outcome = deploys
            .run(&rt.consensus, req, &self.spec_dir, &progress)
            .await?;
        self.confirm_deploy(&rt.consensus, &project, &env, &tag);
        self.snapshot_after_deploy(&rt.consensus, &project, &progress)
            .await;
        Ok(outcome)
    }

    async fn rollback(
        &self,
        req: Rollback,
        progress: ProgressSink,
    ) -> Result<Outcome, ControlError> {
        let deploys = self
            .deploys
            .as_ref()
            .ok_or(ControlError::NotAvailable("Rollback"))?;
        let rt = self.runtime()?;
        let (project, env, tag) = (
            req.project.clone(),
            req.environment.clone(),
            req.to_tag.clone(),
        );
        let outcome = deploys
            .run(
                &rt.consensus,
                Request::from_rollback(req),
                &self.spec_dir,
                &progress,
            )
            .await?;
        self.confirm_deploy(&rt.consensus, &project, &env, &tag);
        Ok(outcome)
    }

    async fn cleanup(&self, req: Cleanup, progress: ProgressSink) -> Result<Outcome, ControlError> {
        let rt = self.runtime()?;
        let state = rt.consensus.read_state(true).await.map_err(failed)?;
        let known = KnownState {
            droplet_ids: state
                .droplets
                .values()
                .filter_map(|d| d.provider_id)
                .collect(),
            open_saga_tags: state
                .recoveries
                .values()
                .filter(|r| r.is_open())
                .map(|r| {
                    crate::recovery::FencingToken {
                        term: r.fencing.term,
                        index: r.fencing.index,
                    }
                    .tag()
                })
                .collect(),
        };
        let report = run_cleanup(
            self.provider.as_ref(),
            SYSTEM_TAG,
            &known,
            self.snapshots_kept,
            req.dry_run,
        )
        .await
        .map_err(failed)?;
        for d in &report.planned {
            progress.step(format!(
                "{} {d:?}",
                if req.dry_run {
                    "would delete"
                } else {
                    "delete"
                }
            ));
        }
        Ok(Outcome {
            message: format!(
                "{} planned, {} deleted{}",
                report.planned.len(),
                report.deleted.len(),
                if req.dry_run { " (dry run)" } else { "" }
            ),
            result: serde_json::to_value(&report.planned).ok(),
        })
    }
}
