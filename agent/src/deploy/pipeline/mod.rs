//! The deploy pipeline of a project end to end: check out the source, tag
//! and build the release (UAT), deliver the images to the droplets that run
//! each service, resolve secrets, roll the release out one droplet at a time
//! (health-gated cutover for web services, settle for workers) while nginx
//! follows, record the release and prune to the last three. Production
//! deploys and rollbacks run the exact image ids a kept release recorded,
//! without rebuilding.
//!
//! A droplet is a name, an address and a [`ContainerRuntime`]: on a
//! cluster, its agent (`deploy::agent_runtime::AgentRuntime`), which starts
//! the droplet's containers on its own engine; without one (`infractl`
//! alone), this machine's engine. Engines may be shared (the local cloud),
//! so containers carry the droplet in their name and an `infra.droplet`
//! label and publish their host port on the droplet's own address.

mod balancer;
mod converge;
mod droplet;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cutover::{CutoverConfig, CutoverError, HealthProbe};
use super::git::{self, GitError, TagWritten};
use super::release_log::{ReleaseLog, ReleaseLogError, ReleaseRecord};
use super::service::image_ref;
use super::{MissingSecret, UatTag, resolve_secrets};
use crate::runtime::{BuildRequest, ContainerRuntime, RuntimeError};
use crate::spec::{DeploymentConfig, ServiceSpec, service_name};
use crate::topology::Topology;

pub use balancer::{LoadBalancer, alternate_port};

/// Label naming the droplet a container belongs to.
pub const LABEL_DROPLET: &str = "infra.droplet";

/// A machine the pipeline deploys to.
#[derive(Clone)]
pub struct Droplet {
    pub name: String,
    /// Address containers publish their host ports on (and nginx reaches).
    pub address: IpAddr,
    pub runtime: Arc<dyn ContainerRuntime>,
}

/// Where a UAT deploy gets its source from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Clone `branch` of the project's repository (`git_config`).
    Git { branch: String },
    /// Use a local checkout as it is.
    Local { path: PathBuf },
}

/// One step of a deploy, as reported to the caller (never carries secrets).
pub trait Progress: Send + Sync {
    fn step(&self, line: &str);
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _line: &str) {}
}

/// Errors of the pipeline; none carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("project `{0}` is not in deployment_config.json")]
    UnknownProject(String),
    #[error("{project}/{env}: no service of the topology is placed (run orchestrate first)")]
    NotPlaced { project: String, env: String },
    #[error(
        "{project}/{env}: service `{service}` is not placed on {droplet} (deployment_config.json or the topology changed)"
    )]
    NotPlacedOn {
        project: String,
        env: String,
        service: String,
        droplet: String,
    },
    #[error("droplet `{0}` of the topology has no address/runtime")]
    UnknownDroplet(String),
    #[error("{0}")]
    Git(#[from] GitError),
    #[error(transparent)]
    Secret(#[from] MissingSecret),
    #[error("building {service}: {source}")]
    Build {
        service: String,
        #[source]
        source: RuntimeError,
    },
    #[error("delivering {image} to {droplet}: {source}")]
    Deliver {
        image: String,
        droplet: String,
        #[source]
        source: RuntimeError,
    },
    #[error("container engine of {droplet}: {source}")]
    Runtime {
        droplet: String,
        #[source]
        source: RuntimeError,
    },
    #[error("load balancer: {0}")]
    Lb(String),
    #[error("rolling out {service} on {droplet} failed: {source}")]
    Rollout {
        service: String,
        droplet: String,
        #[source]
        source: Box<CutoverError>,
    },
    #[error(transparent)]
    Releases(#[from] ReleaseLogError),
    #[error("tag `{tag}` of {project} was never deployed to uat (kept uat releases: {})", kept.join(", "))]
    NotInUat {
        project: String,
        tag: String,
        kept: Vec<String>,
    },
    #[error(
        "{project}: release {tag} was already deployed to uat from another commit or with other images this minute; deploy again in a minute"
    )]
    TagTaken { project: String, tag: String },
    #[error("{project} has no uat release to promote")]
    NoUatRelease { project: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Timings and knobs of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub cutover: CutoverConfig,
    /// How long a new worker must stay up.
    pub worker_settle: Duration,
    /// Where git clones go (a temporary directory inside it).
    pub work_dir: PathBuf,
    /// Labels added to every image and container (e.g. `infra.test`).
    pub extra_labels: BTreeMap<String, String>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            cutover: CutoverConfig::default(),
            worker_settle: Duration::from_secs(3),
            work_dir: std::env::temp_dir(),
            extra_labels: BTreeMap::new(),
        }
    }
}

/// What a deploy, promotion or rollback did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeployOutcome {
    pub project: String,
    pub env: String,
    pub tag: String,
    pub commit: Option<String>,
    /// Image id per service.
    pub images: BTreeMap<String, String>,
    /// `(droplet, service, container, address)` now serving.
    pub containers: Vec<(String, String, String, Option<SocketAddr>)>,
    /// Tags pruned from the release log.
    pub pruned: Vec<String>,
    /// Time spent building images (zero for prod and rollback).
    pub build_ms: u64,
    /// Time from the end of the build to the recorded release.
    pub rollout_ms: u64,
}

/// The services of project+env with their placement, in spec order.
pub fn placed_services<'a>(
    deployment: &'a DeploymentConfig,
    topology: &'a Topology,
    project: &str,
    env: &str,
) -> Result<Vec<(&'a str, &'a ServiceSpec, &'a crate::topology::ServiceState)>, PipelineError> {
    let pd = deployment
        .projects
        .get(project)
        .ok_or_else(|| PipelineError::UnknownProject(project.into()))?;
    let placed: Vec<_> = pd
        .services
        .iter()
        .filter_map(|(name, spec)| {
            let st = topology.services.get(&service_name(project, env, name))?;
            Some((name.as_str(), spec, st))
        })
        .collect();
    if placed.is_empty() {
        return Err(PipelineError::NotPlaced {
            project: project.into(),
            env: env.into(),
        });
    }
    Ok(placed)
}

/// A deploy as a caller asks for it (the CLI, or the cluster's
/// Deploy/Rollback RPCs); secrets travel separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployRequest {
    Uat {
        project: String,
        source: Source,
    },
    Prod {
        project: String,
        tag: Option<String>,
    },
    Rollback {
        project: String,
        env: String,
        to: Option<String>,
    },
}

/// Everything a deploy drives. Cheap to build per call.
pub struct Pipeline<'a> {
    pub deployment: &'a DeploymentConfig,
    pub topology: &'a Topology,
    pub droplets: &'a BTreeMap<String, Droplet>,
    /// Where images are built and saved (on a cluster: the leader's engine).
    pub builder: &'a dyn ContainerRuntime,
    pub lb: &'a dyn LoadBalancer,
    pub releases: &'a dyn ReleaseLog,
    pub probe: &'a dyn HealthProbe,
    pub progress: &'a dyn Progress,
    pub config: PipelineConfig,
}

impl Pipeline<'_> {
    fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> PipelineError {
        let context = context.into();
        move |source| PipelineError::Io { context, source }
    }

    /// Runs `req`; `vars` are where secrets come from, `now` stamps a UAT tag.
    pub async fn run(
        &self,
        req: &DeployRequest,
        vars: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<DeployOutcome, PipelineError> {
        match req {
            DeployRequest::Uat { project, source } => {
                self.deploy_uat(project, source, vars, now).await
            }
            DeployRequest::Prod { project, tag } => {
                self.deploy_prod(project, tag.as_deref(), vars).await
            }
            DeployRequest::Rollback { project, env, to } => {
                self.rollback(project, env, to.as_deref(), vars).await
            }
        }
    }

    /// Builds the release from `source` and deploys it to `uat`. `now`
    /// stamps the tag; `vars` are where secrets come from.
    pub async fn deploy_uat(
        &self,
        project: &str,
        source: &Source,
        vars: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<DeployOutcome, PipelineError> {
        let env = "uat";
        let placed = placed_services(self.deployment, self.topology, project, env)?;
        // Fail on missing secrets before any work.
        for (_, spec, _) in &placed {
            resolve_secrets(project, env, &spec.secrets, vars)?;
        }
        let started = tokio::time::Instant::now();
        let (dir, _clone_dir): (PathBuf, Option<tempfile::TempDir>) = match source {
            Source::Local { path } => {
                self.progress
                    .step(&format!("using local checkout {}", path.display()));
                (path.clone(), None)
            }
            Source::Git { branch } => {
                std::fs::create_dir_all(&self.config.work_dir).map_err(Self::io(format!(
                    "creating {}",
                    self.config.work_dir.display()
                )))?;
                let tmp = tempfile::Builder::new()
                    .prefix(&format!("deploy-{project}-"))
                    .tempdir_in(&self.config.work_dir)
                    .map_err(Self::io("creating a clone directory"))?;
                let dest = tmp.path().join(project);
                self.progress.step(&format!(
                    "cloning {} (branch {branch})",
                    git::redact_url(&self.deployment.git_config.repo_url(project))
                ));
                git::clone_project(&self.deployment.git_config, project, branch, &dest).await?;
                (dest, Some(tmp))
            }
        };
        let dir = dir.as_path();
        let (tags, commit) = match (git::tags(dir).await, git::head(dir).await) {
            (Ok(t), Ok(h)) => (t, Some(h)),
            _ => (Vec::new(), None),
        };
        let tag = UatTag::for_deploy(tags.iter().map(String::as_str), now).to_string();
        self.progress.step(&format!("release tag {tag}"));
        if commit.is_some() && !tags.contains(&tag) {
            match git::write_tag(dir, &tag).await {
                Ok(TagWritten::Pushed) => self.progress.step("tag pushed to origin"),
                Ok(TagWritten::LocalOnly { .. }) => self
                    .progress
                    .step("tag written to the local repository only"),
                Err(e) => self.progress.step(&format!("tag not written: {e}")),
            }
        }
        let kept = self.releases.history(project, env).await?;
        if kept.iter().any(|r| r.tag == tag && r.commit != commit) {
            return Err(PipelineError::TagTaken {
                project: project.into(),
                tag,
            });
        }
        let mut images = BTreeMap::new();
        for (service, spec, _) in &placed {
            let image = image_ref(project, service, &tag);
            self.progress.step(&format!(
                "building {service} ({}) -> {image}",
                spec.containerfile_path
            ));
            let mut labels = self.config.extra_labels.clone();
            labels.insert(crate::runtime::LABEL_PROJECT.into(), project.into());
            labels.insert(crate::runtime::LABEL_TAG.into(), tag.clone());
            let id = self
                .builder
                .build_image(&BuildRequest {
                    context_dir: dir.to_path_buf(),
                    containerfile: spec.containerfile_path.clone(),
                    tag: image,
                    labels,
                })
                .await
                .map_err(|source| PipelineError::Build {
                    service: service.to_string(),
                    source,
                })?;
            images.insert(service.to_string(), id);
        }
        let build = started.elapsed();
        if kept.iter().any(|r| r.tag == tag && r.images != images) {
            return Err(PipelineError::TagTaken {
                project: project.into(),
                tag,
            });
        }
        let rec = ReleaseRecord {
            project: project.into(),
            env: env.into(),
            tag,
            commit,
            images,
        };
        let mut out = self.roll(&rec, vars, true).await?;
        out.build_ms = build.as_millis() as u64;
        Ok(out)
    }

    /// Deploys a UAT release (`tag`, or the newest) to `prod` with the
    /// exact image ids UAT ran.
    pub async fn deploy_prod(
        &self,
        project: &str,
        tag: Option<&str>,
        vars: &BTreeMap<String, String>,
    ) -> Result<DeployOutcome, PipelineError> {
        let uat = self.releases.history(project, "uat").await?;
        let chosen =
            match tag {
                Some(t) => uat.iter().find(|r| r.tag == t).cloned().ok_or_else(|| {
                    PipelineError::NotInUat {
                        project: project.into(),
                        tag: t.into(),
                        kept: uat.iter().map(|r| r.tag.clone()).collect(),
                    }
                })?,
                None => uat
                    .first()
                    .cloned()
                    .ok_or_else(|| PipelineError::NoUatRelease {
                        project: project.into(),
                    })?,
            };
        self.progress
            .step(&format!("promoting {} from uat to prod", chosen.tag));
        let rec = ReleaseRecord {
            env: "prod".into(),
            ..chosen
        };
        self.roll(&rec, vars, true).await
    }

    /// Puts the previous (or the named) kept release of project+env back.
    pub async fn rollback(
        &self,
        project: &str,
        env: &str,
        to: Option<&str>,
        vars: &BTreeMap<String, String>,
    ) -> Result<DeployOutcome, PipelineError> {
        let target = self.releases.rollback_target(project, env, to).await?;
        self.progress
            .step(&format!("rolling {project}/{env} back to {}", target.tag));
        self.roll(&target, vars, false).await
    }
}
