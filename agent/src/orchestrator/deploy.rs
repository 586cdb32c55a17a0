//! The leader's Deploy and Rollback: runs the deploy pipeline with the
//! cluster's topology and droplet addresses, images built on the leader's
//! own engine, each droplet's containers started by that droplet's agent
//! ([`AgentRuntime`]: RPCs to its `Containers` service, images pushed to
//! its `Images` service; the leader's own droplet too), the leader's load
//! balancer ([`Balancer`], started here too if the watcher has not yet),
//! the release log in the replicated state ([`StateReleaseLog`]) and
//! secrets sealed in the state ([`SecretsKey`]). One deploy runs at a
//! time, holding the balancer's lock so no re-render interleaves.

mod converge;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::ClientTlsConfig;

use crate::api::handler::{ControlError, Deploy, Outcome, ProgressSink, Rollback};
use crate::deploy::agent_runtime::AgentRuntime;
use crate::deploy::cutover::{CutoverConfig, HttpProbe};
use crate::deploy::pipeline::{DeployRequest, Droplet, Pipeline, PipelineConfig, Progress, Source};
use crate::deploy::sealed::SecretsKey;
use crate::deploy::secrets::candidate_vars;
use crate::deploy::state_log::StateReleaseLog;
use crate::lb::Nginx;
use crate::orchestrator::StateStore;
use crate::orchestrator::balancer::{Balancer, RunningContainers};
use crate::orchestrator::running_containers;
use crate::runtime::{ContainerInfo, DEFAULT_SECRETS_ROOT, DockerRuntime};
use crate::spec::{DeploymentConfig, parse_deployment};
use crate::state::{ClusterState, Command, release_key};

pub use converge::{Converged, PlaceServices, ServicePlacer};

/// Where the leader's deploys run.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    /// Data directory: `deploy/` (clones).
    pub data_dir: PathBuf,
    /// The agents' gRPC port (images are pushed to `<droplet ip>:<port>`).
    pub grpc_port: u16,
    /// mTLS to the other agents (image delivery).
    pub tls: ClientTlsConfig,
}

/// The leader's deploy machinery (the engine connected lazily).
pub struct LeaderDeploys {
    settings: DeploySettings,
    key: SecretsKey,
    balancer: Arc<Balancer>,
    engine: tokio::sync::OnceCell<DockerRuntime>,
}

struct Steps<'a>(&'a ProgressSink);

impl Progress for Steps<'_> {
    fn step(&self, line: &str) {
        self.0.step(line);
    }
}

fn failed(e: impl std::fmt::Display) -> ControlError {
    ControlError::Failed(e.to_string())
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

impl LeaderDeploys {
    pub fn new(settings: DeploySettings, key: SecretsKey, balancer: Arc<Balancer>) -> Self {
        LeaderDeploys {
            settings,
            key,
            balancer,
            engine: tokio::sync::OnceCell::new(),
        }
    }

    pub(super) fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    async fn engine(&self) -> Result<&DockerRuntime, ControlError> {
        self.engine
            .get_or_try_init(|| async {
                DockerRuntime::connect(DEFAULT_SECRETS_ROOT)
                    .await
                    .map_err(|e| failed(format!("container engine: {e}")))
            })
            .await
    }

    /// Seals the caller's secrets into the state and returns the variables
    /// the pipeline resolves from: the stored secrets of project+env (opened)
    /// overridden by the caller's.
    async fn secret_vars(
        &self,
        store: &dyn StateStore,
        state: &ClusterState,
        project: &str,
        env: &str,
        given: &BTreeMap<String, Vec<u8>>,
    ) -> Result<BTreeMap<String, String>, ControlError> {
        let var = |name: &str| candidate_vars(project, env, name).remove(0);
        let mut vars = BTreeMap::new();
        let stored = state.secrets.get(&release_key(project, env));
        for (name, sealed) in stored.into_iter().flatten() {
            let plain = self.key.open(project, env, name, sealed).map_err(failed)?;
            let text = String::from_utf8(plain)
                .map_err(|_| ControlError::Invalid(format!("secret `{name}` is not UTF-8")))?;
            vars.insert(var(name), text);
        }
        let mut sealed = BTreeMap::new();
        for (name, value) in given {
            let text = String::from_utf8(value.clone())
                .map_err(|_| ControlError::Invalid(format!("secret `{name}` is not UTF-8")))?;
            sealed.insert(
                name.clone(),
                self.key.seal(project, env, name, value).map_err(failed)?,
            );
            vars.insert(var(name), text);
        }
        if !sealed.is_empty() {
            store
                .write(Command::StoreSecrets {
                    project: project.into(),
                    environment: env.into(),
                    sealed,
                    at_ms: now_ms(),
                })
                .await
                .map_err(failed)?;
        }
        Ok(vars)
    }

    /// Runs a deploy (UAT or prod) or a rollback on the leader.
    pub async fn run(
        &self,
        store: &dyn StateStore,
        req: Request,
        spec_dir: &Path,
        progress: &ProgressSink,
    ) -> Result<Outcome, ControlError> {
        let _one = self.balancer.exclusive().await;
        self.run_locked(store, req, spec_dir, progress, true).await
    }

    /// How the leader's pipeline rolls out (deploys and recoveries alike).
    fn pipeline_config(&self) -> PipelineConfig {
        PipelineConfig {
            cutover: CutoverConfig {
                drain: Duration::from_secs(1),
                poll_interval: Duration::from_millis(200),
                ..CutoverConfig::default()
            },
            work_dir: self.settings.data_dir.join("deploy"),
            ..PipelineConfig::default()
        }
    }

    /// The leader's nginx: the running one, else started now with the
    /// routes of the state's live releases (the watcher may not have yet).
    async fn lb(
        &self,
        store: &dyn StateStore,
        state: &ClusterState,
        droplets: &BTreeMap<String, Droplet>,
    ) -> Result<Arc<Nginx>, ControlError> {
        if let Some(lb) = self.balancer.current() {
            return Ok(lb);
        }
        let running = listed(droplets).await.map_err(failed)?;
        let routes = super::lb_routes::routes(state, &running);
        self.balancer
            .converge(store, state, routes)
            .await
            .map_err(|e| failed(format!("starting the load balancer: {e}")))
    }

    /// [`LeaderDeploys::run`] with the balancer's lock held by the caller;
    /// `record`: the start and end are recorded in the state (`deploys`).
    pub(super) async fn run_locked(
        &self,
        store: &dyn StateStore,
        req: Request,
        spec_dir: &Path,
        progress: &ProgressSink,
        record: bool,
    ) -> Result<Outcome, ControlError> {
        let state = store.read().await.map_err(failed)?;
        let (deployment, deployment_text) = deployment_config(&req.deployment_json, spec_dir)?;
        converge::remember_deployment(spec_dir, &req.deployment_json);
        let (project, env) = req.target();
        let vars = self
            .secret_vars(store, &state, project, env, &req.secrets)
            .await?;
        let engine = self.engine().await?;
        let droplets = droplets(&state, &self.settings);
        let lb = self.lb(store, &state, &droplets).await?;
        let releases = StateReleaseLog { store };
        let steps = Steps(progress);
        let pipeline = Pipeline {
            deployment: &deployment,
            topology: &state.topology,
            droplets: &droplets,
            builder: engine,
            lb: lb.as_ref(),
            releases: &releases,
            probe: &HttpProbe {
                timeout: Duration::from_secs(2),
            },
            progress: &steps,
            config: self.pipeline_config(),
        };
        if record {
            store
                .write(Command::DeployStarted {
                    project: project.into(),
                    environment: env.into(),
                    action: req.action().into(),
                    deployment_json: deployment_text,
                    at_ms: now_ms(),
                })
                .await
                .map_err(failed)?;
        }
        let ran = pipeline.run(&req.pipeline, &vars, chrono::Utc::now()).await;
        if record {
            let outcome = match &ran {
                Ok(o) => format!("deployed {}", o.tag),
                Err(e) => format!("failed: {e}"),
            };
            let finished = Command::DeployFinished {
                project: project.into(),
                environment: env.into(),
                outcome,
                at_ms: now_ms(),
            };
            if let Err(e) = store.write(finished).await {
                tracing::warn!(error = %e, "recording the end of the deploy");
            }
        }
        let outcome = ran.map_err(failed)?;
        let mut result = serde_json::to_value(&outcome).map_err(failed)?;
        result["version"] = 1.into();
        result["load_balancer"] = self.balancer.url().into();
        Ok(Outcome {
            message: format!(
                "deployed {} to {}: {} (rollout {} ms)",
                outcome.project, outcome.env, outcome.tag, outcome.rollout_ms
            ),
            result: Some(result),
        })
    }
}

/// A Deploy or Rollback call as the pipeline runs it.
pub struct Request {
    pub pipeline: DeployRequest,
    pub secrets: BTreeMap<String, Vec<u8>>,
    pub deployment_json: String,
}

impl Request {
    /// `deploy-uat`, `deploy-prod` or `rollback`.
    pub fn action(&self) -> &'static str {
        match &self.pipeline {
            DeployRequest::Uat { .. } => "deploy-uat",
            DeployRequest::Prod { .. } => "deploy-prod",
            DeployRequest::Rollback { .. } => "rollback",
        }
    }

    fn target(&self) -> (&str, &str) {
        match &self.pipeline {
            DeployRequest::Uat { project, .. } => (project, "uat"),
            DeployRequest::Prod { project, .. } => (project, "prod"),
            DeployRequest::Rollback { project, env, .. } => (project, env),
        }
    }

    pub fn from_deploy(req: Deploy) -> Result<Request, ControlError> {
        let pipeline = match req.environment.as_str() {
            "uat" => DeployRequest::Uat {
                source: if req.local {
                    if req.project_path.is_empty() {
                        return Err(ControlError::Invalid(
                            "`local` needs `project_path` (a directory the leader can read)".into(),
                        ));
                    }
                    Source::Local {
                        path: PathBuf::from(&req.project_path),
                    }
                } else {
                    Source::Git {
                        branch: Some(req.branch)
                            .filter(|b| !b.is_empty())
                            .unwrap_or_else(|| "main".into()),
                    }
                },
                project: req.project,
            },
            "prod" => DeployRequest::Prod {
                project: req.project,
                tag: Some(req.tag).filter(|t| !t.is_empty()),
            },
            other => {
                return Err(ControlError::Invalid(format!(
                    "environment `{other}`: deploys go to `uat` (built) or `prod` (promoted)"
                )));
            }
        };
        Ok(Request {
            pipeline,
            secrets: req.secrets,
            deployment_json: req.deployment_json,
        })
    }

    pub fn from_rollback(req: Rollback) -> Request {
        Request {
            pipeline: DeployRequest::Rollback {
                project: req.project,
                env: req.environment,
                to: Some(req.to_tag).filter(|t| !t.is_empty()),
            },
            secrets: BTreeMap::new(),
            deployment_json: req.deployment_json,
        }
    }
}

/// The caller's deployment config, else the last applied one (and its
/// text).
fn deployment_config(
    text: &str,
    spec_dir: &Path,
) -> Result<(DeploymentConfig, String), ControlError> {
    let file = spec_dir.join("deployment_config.json");
    let text = if text.trim().is_empty() {
        std::fs::read_to_string(&file).map_err(|_| {
            ControlError::Invalid(format!(
                "no deployment_config.json in the request and none applied on this leader ({})",
                file.display()
            ))
        })?
    } else {
        text.to_string()
    };
    parse_deployment(&text, Path::new("deployment_config.json"))
        .map(|config| (config, text))
        .map_err(|e| ControlError::Invalid(e.to_string()))
}

/// Every droplet of the state with an address, run through its agent
/// (containers started by that agent, images pushed to it).
pub fn droplets(state: &ClusterState, settings: &DeploySettings) -> BTreeMap<String, Droplet> {
    state
        .topology
        .droplets
        .iter()
        .filter_map(|(name, d)| {
            let ip = state
                .droplets
                .get(name)
                .and_then(|r| r.ip.clone())
                .or_else(|| d.ip.clone())?;
            let address = ip.parse::<IpAddr>().ok()?;
            Some((
                name.clone(),
                Droplet {
                    name: name.clone(),
                    address,
                    runtime: Arc::new(AgentRuntime::new(
                        SocketAddr::new(address, settings.grpc_port).to_string(),
                        settings.tls.clone(),
                    )),
                },
            ))
        })
        .collect()
}

/// The managed containers of the `droplets`; an error only when no
/// droplet answered (a dead droplet is left out, with a warning).
async fn listed(droplets: &BTreeMap<String, Droplet>) -> Result<Vec<ContainerInfo>, String> {
    let running = running_containers(droplets).await;
    if !running.unreachable.is_empty() {
        let errors: Vec<String> = running
            .unreachable
            .iter()
            .map(|(name, e)| format!("{name}: {e}"))
            .collect();
        if running.unreachable.len() == droplets.len() {
            return Err(errors.join("; "));
        }
        tracing::warn!(?errors, "droplets left out of the load balancer's listing");
    }
    Ok(running.containers)
}

#[async_trait::async_trait]
impl RunningContainers for LeaderDeploys {
    async fn running(&self, state: &ClusterState) -> Result<Vec<ContainerInfo>, String> {
        listed(&droplets(state, &self.settings)).await
    }
}
