//! The deploy pipeline of a project end to end: check out the source, tag
//! and build the release (UAT), deliver the images to the droplets that run
//! each service, resolve secrets, roll the release out one droplet at a time
//! (health-gated cutover for web services, settle for workers) while nginx
//! follows, record the release and prune to the last three. Production
//! deploys and rollbacks run the exact image ids a kept release recorded,
//! without rebuilding.
//!
//! A droplet is a name, an address and a [`ContainerRuntime`]; in the local
//! cloud every droplet shares one engine, so containers carry the droplet
//! in their name and an `infra.droplet` label and publish their host port
//! on the droplet's own 127.0.0.x address.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::cutover::{Cutover, CutoverConfig, CutoverError, HealthProbe, TrafficSwitch};
use super::git::{self, GitError, TagWritten};
use super::release_log::{ReleaseLog, ReleaseLogError, ReleaseRecord};
use super::rollout::{RolloutReport, roll_out};
use super::service::{Placement, container_spec, image_ref, next_host_port};
use super::{MissingSecret, SecretValue, UatTag, resolve_secrets};
use crate::lb::{Nginx, Route};
use crate::runtime::{BuildRequest, ContainerRuntime, RuntimeError};
use crate::spec::{DeploymentConfig, ServiceKind, ServiceSpec, service_name};
use crate::topology::Topology;

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

/// The load balancer as the pipeline drives it: one route per web service,
/// one backend per droplet.
#[async_trait]
pub trait LoadBalancer: Send + Sync {
    /// Adds routes for `upstreams` (project, env, service) that are missing.
    async fn ensure_routes(&self, upstreams: &[(String, String, String)]) -> Result<(), String>;
    /// Makes `addr` the backend of `upstream` on the droplet at `addr.ip()`
    /// (replacing that droplet's previous backend, keeping the others').
    async fn set_backend(&self, upstream: &str, addr: SocketAddr) -> Result<(), String>;
}

#[async_trait]
impl LoadBalancer for Nginx {
    async fn ensure_routes(&self, upstreams: &[(String, String, String)]) -> Result<(), String> {
        let missing = |cfg: &crate::lb::LbConfig| {
            upstreams
                .iter()
                .filter(|(p, e, s)| {
                    !cfg.routes
                        .iter()
                        .any(|r| &r.project == p && &r.env == e && &r.service == s)
                })
                .cloned()
                .collect::<Vec<_>>()
        };
        if self.config().is_some_and(|c| missing(&c).is_empty()) {
            return Ok(());
        }
        self.update(|cfg| {
            for (project, env, service) in missing(cfg) {
                cfg.routes.push(Route {
                    project,
                    env,
                    service,
                    backends: vec![],
                });
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    async fn set_backend(&self, upstream: &str, addr: SocketAddr) -> Result<(), String> {
        self.update(|cfg| {
            let route = cfg
                .routes
                .iter_mut()
                .find(|r| r.upstream() == upstream)
                .ok_or_else(|| format!("no route for upstream {upstream}"))?;
            route.backends.retain(|b| b.ip() != addr.ip());
            route.backends.push(addr);
            route.backends.sort();
            Ok(())
        })
        .await
        .map(|_| ())
    }
}

/// [`TrafficSwitch`] for one droplet's backend of the load balancer.
struct DropletSwitch<'a>(&'a dyn LoadBalancer);

#[async_trait]
impl TrafficSwitch for DropletSwitch<'_> {
    async fn switch_to(&self, upstream: &str, addr: SocketAddr) -> Result<(), String> {
        self.0.set_backend(upstream, addr).await
    }
}

/// Errors of the pipeline; none carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("project `{0}` is not in deployment_config.json")]
    UnknownProject(String),
    #[error("{project}/{env}: no service of the topology is placed (run orchestrate first)")]
    NotPlaced { project: String, env: String },
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

/// The second host port of a web service: the same offset half a block
/// away, so a cutover can run the new container beside the old one.
pub fn alternate_port(primary: u16) -> u16 {
    use crate::plan::ports::{PORT_RANGE, WEB_BASE_PORT};
    if primary < WEB_BASE_PORT {
        return primary.saturating_add(PORT_RANGE / 2);
    }
    let base = primary - (primary - WEB_BASE_PORT) % PORT_RANGE;
    base + (primary - base + PORT_RANGE / 2) % PORT_RANGE
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

/// Everything a deploy drives. Cheap to build per call.
pub struct Pipeline<'a> {
    pub deployment: &'a DeploymentConfig,
    pub topology: &'a Topology,
    pub droplets: &'a BTreeMap<String, Droplet>,
    /// Where images are built (in the local cloud: the shared engine).
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

    /// Delivers, rolls out and records `rec` on its project+env.
    async fn roll(
        &self,
        rec: &ReleaseRecord,
        vars: &BTreeMap<String, String>,
        record: bool,
    ) -> Result<DeployOutcome, PipelineError> {
        let started = tokio::time::Instant::now();
        let (project, env) = (rec.project.as_str(), rec.env.as_str());
        let placed = placed_services(self.deployment, self.topology, project, env)?;
        let mut secrets = BTreeMap::new();
        for (service, spec, _) in &placed {
            secrets.insert(
                *service,
                resolve_secrets(project, env, &spec.secrets, vars)?,
            );
        }
        self.deliver(rec, &placed).await?;
        let web: Vec<_> = placed
            .iter()
            .filter(|(_, s, _)| s.kind == ServiceKind::Web)
            .map(|(name, _, _)| (project.to_string(), env.to_string(), name.to_string()))
            .collect();
        self.lb
            .ensure_routes(&web)
            .await
            .map_err(PipelineError::Lb)?;
        let order: BTreeSet<&str> = placed
            .iter()
            .flat_map(|(_, _, st)| st.droplets.iter().map(String::as_str))
            .collect();
        let previous = self.releases.live(project, env).await?;
        let mut containers = Vec::new();
        let mut touched: Vec<&Droplet> = Vec::new();
        for droplet in order {
            let d = self
                .droplets
                .get(droplet)
                .ok_or_else(|| PipelineError::UnknownDroplet(droplet.into()))?;
            touched.push(d);
            for (service, spec, st) in placed
                .iter()
                .filter(|(_, _, st)| st.droplets.iter().any(|x| x == droplet))
            {
                match self
                    .roll_one(d, rec, service, spec, st.port, &secrets[service])
                    .await
                {
                    Ok(done) => containers.push(done),
                    Err(e) => {
                        if let Some(prev) = previous.as_ref().filter(|p| p.tag != rec.tag) {
                            self.undo(&touched, prev, &placed, &secrets).await;
                        }
                        return Err(e);
                    }
                }
            }
        }
        let mut pruned = Vec::new();
        if record {
            for p in self.releases.record(rec.clone()).await? {
                self.prune_images(&p, &placed).await;
                pruned.push(p.tag);
            }
        } else {
            self.releases.set_live(project, env, &rec.tag).await?;
        }
        self.progress
            .step(&format!("{project}/{env} now runs {}", rec.tag));
        Ok(DeployOutcome {
            project: project.into(),
            env: env.into(),
            tag: rec.tag.clone(),
            commit: rec.commit.clone(),
            images: rec.images.clone(),
            containers,
            pruned,
            build_ms: 0,
            rollout_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Puts `prev` back on droplets a failed rollout already switched
    /// (best effort: failures are reported as progress).
    async fn undo(
        &self,
        touched: &[&Droplet],
        prev: &ReleaseRecord,
        placed: &[(&str, &ServiceSpec, &crate::topology::ServiceState)],
        secrets: &BTreeMap<&str, BTreeMap<String, SecretValue>>,
    ) {
        for d in touched {
            self.progress
                .step(&format!("returning {} to {}", d.name, prev.tag));
            for (service, spec, st) in placed
                .iter()
                .filter(|(_, _, st)| st.droplets.contains(&d.name))
            {
                if let Err(e) = self
                    .roll_one(d, prev, service, spec, st.port, &secrets[service])
                    .await
                {
                    self.progress
                        .step(&format!("returning {service} on {}: {e}", d.name));
                }
            }
        }
    }

    /// Loads each image where it is missing (save from the builder, load).
    async fn deliver(
        &self,
        rec: &ReleaseRecord,
        placed: &[(&str, &ServiceSpec, &crate::topology::ServiceState)],
    ) -> Result<(), PipelineError> {
        for (service, _, st) in placed {
            let Some(image) = rec.images.get(*service) else {
                continue;
            };
            for droplet in &st.droplets {
                let d = self
                    .droplets
                    .get(droplet)
                    .ok_or_else(|| PipelineError::UnknownDroplet(droplet.clone()))?;
                let err = |source| PipelineError::Deliver {
                    image: image.clone(),
                    droplet: droplet.clone(),
                    source,
                };
                if d.runtime.image_exists(image).await.map_err(err)? {
                    self.progress
                        .step(&format!("{service} image already on {droplet}"));
                    continue;
                }
                self.progress
                    .step(&format!("delivering {service} image to {droplet}"));
                let stream = self.builder.save_image(image).await.map_err(err)?;
                d.runtime.load_image(stream).await.map_err(err)?;
            }
        }
        Ok(())
    }

    /// Rolls one service out on one droplet.
    async fn roll_one(
        &self,
        d: &Droplet,
        rec: &ReleaseRecord,
        service: &str,
        spec: &ServiceSpec,
        port: Option<u16>,
        secrets: &BTreeMap<String, SecretValue>,
    ) -> Result<(String, String, String, Option<SocketAddr>), PipelineError> {
        let (project, env) = (rec.project.as_str(), rec.env.as_str());
        let rt_err = |source| PipelineError::Runtime {
            droplet: d.name.clone(),
            source,
        };
        let mut labels = BTreeMap::from([
            (
                crate::runtime::LABEL_PROJECT.to_string(),
                project.to_string(),
            ),
            (crate::runtime::LABEL_ENV.to_string(), env.to_string()),
            (
                crate::runtime::LABEL_SERVICE.to_string(),
                service.to_string(),
            ),
            (LABEL_DROPLET.to_string(), d.name.clone()),
        ]);
        labels.extend(self.config.extra_labels.clone());
        let existing = d.runtime.list(&labels).await.map_err(rt_err)?;
        let current = existing.iter().find(|c| c.running);
        for stale in existing.iter().filter(|c| !c.running) {
            d.runtime.remove(&stale.name).await.map_err(rt_err)?;
        }
        let primary = port.unwrap_or(spec.container_port());
        let current_port = current.and_then(|c| c.ports.first().map(|p| p.2));
        let host_port = next_host_port(primary, alternate_port(primary), current_port);
        let at = Placement {
            project,
            env,
            service,
            tag: &rec.tag,
            host_ip: d.address,
            host_port,
        };
        let mut c = container_spec(spec, &at, secrets.clone());
        c.name = format!("{}.{}", c.name, d.name);
        if let Some(id) = rec.images.get(service) {
            c.image = id.clone();
        }
        c.extra_labels = labels;
        c.extra_labels.remove(crate::runtime::LABEL_PROJECT);
        c.extra_labels.remove(crate::runtime::LABEL_ENV);
        c.extra_labels.remove(crate::runtime::LABEL_SERVICE);
        let upstream = service_name(project, env, service);
        if let Some(cur) = current.filter(|cur| cur.name == c.name) {
            self.progress
                .step(&format!("{service} on {} already runs {}", d.name, rec.tag));
            let addr = cur.ports.first().map(|p| SocketAddr::new(d.address, p.2));
            if let (Some(addr), ServiceKind::Web) = (addr, spec.kind) {
                self.lb
                    .set_backend(&upstream, addr)
                    .await
                    .map_err(PipelineError::Lb)?;
            }
            return Ok((d.name.clone(), service.into(), cur.name.clone(), addr));
        }
        self.progress.step(&format!(
            "rolling out {service} {} on {} ({})",
            rec.tag,
            d.name,
            if spec.kind == ServiceKind::Web {
                format!("port {host_port}, health {}", spec.health_path())
            } else {
                "worker".to_string()
            }
        ));
        let switch = DropletSwitch(self.lb);
        let parts = Cutover {
            runtime: d.runtime.as_ref(),
            probe: self.probe,
            switch: &switch,
            config: self.config.cutover,
        };
        let report = roll_out(
            &parts,
            spec.kind,
            &upstream,
            &c,
            spec.health_path(),
            current.map(|c| c.name.as_str()),
            self.config.worker_settle,
        )
        .await
        .map_err(|source| PipelineError::Rollout {
            service: service.into(),
            droplet: d.name.clone(),
            source: Box::new(source),
        })?;
        let addr = match &report {
            RolloutReport::Web(r) => {
                self.progress.step(&format!(
                    "{service} on {} healthy after {} ms, traffic switched",
                    d.name,
                    r.healthy_after.as_millis()
                ));
                Some(r.addr)
            }
            RolloutReport::Worker { .. } => {
                self.progress
                    .step(&format!("{service} on {} settled", d.name));
                None
            }
        };
        Ok((d.name.clone(), service.into(), c.name, addr))
    }

    /// Removes the images of a pruned release that no kept release of the
    /// project (any env) still uses. Failures are reported, not fatal.
    async fn prune_images(
        &self,
        pruned: &ReleaseRecord,
        placed: &[(&str, &ServiceSpec, &crate::topology::ServiceState)],
    ) {
        let mut in_use = BTreeSet::new();
        for env in ["uat", "prod"]
            .into_iter()
            .chain(std::iter::once(pruned.env.as_str()))
        {
            for r in self
                .releases
                .history(&pruned.project, env)
                .await
                .unwrap_or_default()
            {
                in_use.extend(r.images.into_values());
            }
        }
        for (service, image) in &pruned.images {
            if in_use.contains(image) {
                continue;
            }
            let droplets = placed
                .iter()
                .filter(|(s, _, _)| s == service)
                .flat_map(|(_, _, st)| st.droplets.iter());
            for droplet in droplets {
                if let Some(d) = self.droplets.get(droplet)
                    && let Err(e) = d.runtime.remove_image(image).await
                {
                    self.progress
                        .step(&format!("pruning {service} image on {droplet}: {e}"));
                }
            }
            let tagged = image_ref(&pruned.project, service, &pruned.tag);
            let _ = self.builder.remove_image(&tagged).await;
        }
    }
}
