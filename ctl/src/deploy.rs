//! `infractl deploy-uat | deploy-prod | rollback | reproduce`. With a
//! cluster (a context with endpoints, `--endpoint` or `INFRA_ENDPOINT`) the
//! first three go to the cluster's leader and reproduce reads the release
//! from the replicated state (`deploy_cluster`). Without one,
//! this runs the deploy pipeline locally against the local container engine. Droplets come
//! from the planned topology (their runtime address when it is a loopback
//! one, else 127.0.0.x assigned in name order); the load balancer is an
//! nginx of its own under `.infra/lb/`; releases are kept in
//! `.infra/releases.json`. Secrets come from this process's environment and
//! are never printed.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use infra_agent::deploy::cutover::{CutoverConfig, HttpProbe};
use infra_agent::deploy::pipeline::{
    DeployOutcome, DeployRequest, Droplet, Pipeline, PipelineConfig, Progress, Source,
};
use infra_agent::deploy::release_log::{LocalReleaseLog, ReleaseLog, ReleaseRecord};
use infra_agent::deploy::reproduce::reproduce;
use infra_agent::runtime::{ContainerRuntime, DEFAULT_SECRETS_ROOT, DockerRuntime};
use infra_agent::spec::{self, LoadedConfig};
use infra_agent::topology::Topology;

use crate::exit::UsageError;
use crate::local_lb::LocalLb;
use crate::output::{OutputFormat, print_json};

/// Which cluster to deploy through (default: the context's, if any).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// An agent's gRPC address (HOST:PORT); any agent forwards to the leader.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Directory with ca.pem, client.pem, client.key.
    #[arg(long)]
    pub pki: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum DeployCmd {
    /// Build PROJECT from git (or a local checkout) and deploy it to uat.
    DeployUat {
        project: String,
        #[arg(long, default_value = "main")]
        branch: String,
        /// Build from a local checkout instead of cloning.
        #[arg(long, requires = "project_path")]
        local: bool,
        #[arg(long)]
        project_path: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Promote a uat release (the newest, or --tag) to prod: same images.
    DeployProd {
        project: String,
        #[arg(long)]
        tag: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Put the previous (or --to) kept release of PROJECT ENV back.
    Rollback {
        project: String,
        env: String,
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Check out the commit of a deploy TAG into DIR with its manifest.
    Reproduce {
        tag: String,
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// Progress lines: stdout for text output, stderr when stdout is JSON.
struct Printer(OutputFormat);

impl Progress for Printer {
    fn step(&self, line: &str) {
        match self.0 {
            OutputFormat::Text => println!("==> {line}"),
            OutputFormat::Json => eprintln!("==> {line}"),
        }
    }
}

pub fn load(dir: &Path) -> anyhow::Result<LoadedConfig> {
    spec::load_dir(dir).map_err(|e| anyhow!("{e}"))
}

/// The planned topology of the config (current runtime + spec).
pub fn topology(config: &LoadedConfig) -> Topology {
    infra_agent::plan::desired(&config.spec(), &crate::offline::current_topology(config))
}

/// Each droplet's address: its runtime ip when on loopback, else
/// 127.0.0.<10 + index> in name order.
pub fn local_addresses(topology: &Topology) -> BTreeMap<String, IpAddr> {
    topology
        .droplets
        .iter()
        .enumerate()
        .map(|(i, (name, d))| {
            let ip =
                d.ip.as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok())
                    .filter(IpAddr::is_loopback)
                    .unwrap_or(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + (i % 240) as u8)));
            (name.clone(), ip)
        })
        .collect()
}

fn infra_dir(dir: &Path) -> PathBuf {
    crate::context::context_dir(dir)
}

/// The cluster to deploy through: `--endpoint`, `INFRA_ENDPOINT`, or a
/// context with endpoints; `None` deploys locally.
fn cluster_target(cmd: &DeployCmd, dir: &Path) -> anyhow::Result<Option<crate::client::Target>> {
    let cluster = match cmd {
        DeployCmd::DeployUat { cluster, .. }
        | DeployCmd::DeployProd { cluster, .. }
        | DeployCmd::Rollback { cluster, .. }
        | DeployCmd::Reproduce { cluster, .. } => cluster.clone(),
    };
    let env = std::env::var(crate::client::ENDPOINT_ENV).is_ok_and(|e| !e.is_empty());
    let context = crate::context::Context::load(dir)?.is_some_and(|c| !c.endpoints.is_empty());
    if cluster.endpoint.is_none() && !env && !context {
        return Ok(None);
    }
    crate::client::resolve(dir, cluster.endpoint.as_deref(), cluster.pki.as_deref()).map(Some)
}

pub async fn run(cmd: DeployCmd, dir: &Path, out: OutputFormat) -> anyhow::Result<()> {
    let config = load(dir)?;
    if let Some(target) = cluster_target(&cmd, dir)? {
        return crate::deploy_cluster::run(cmd, &config, &target, out).await;
    }
    let infra = infra_dir(dir);
    std::fs::create_dir_all(&infra).with_context(|| format!("creating {}", infra.display()))?;
    let releases = LocalReleaseLog::open(&infra.join("releases.json"))?;
    if let DeployCmd::Reproduce {
        tag, dir: target, ..
    } = &cmd
    {
        return reproduce_tag(&config, &releases, tag, target, out).await;
    }
    let topo = topology(&config);
    let rt = DockerRuntime::connect(DEFAULT_SECRETS_ROOT).await?;
    let shared: Arc<dyn ContainerRuntime> = Arc::new(rt.clone());
    let droplets: BTreeMap<String, Droplet> = local_addresses(&topo)
        .into_iter()
        .map(|(name, address)| {
            let d = Droplet {
                name: name.clone(),
                address,
                runtime: shared.clone(),
            };
            (name, d)
        })
        .collect();
    let listen: SocketAddr = std::env::var("INFRACTL_LB_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:8480".into())
        .parse()
        .context("INFRACTL_LB_LISTEN must be ip:port")?;
    let nginx = std::env::var("INFRACTL_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
    let lb = LocalLb::open(nginx.into(), &infra.join("lb"), listen)?;
    let progress = Printer(out);
    let pipeline = Pipeline {
        deployment: &config.deployment,
        topology: &topo,
        droplets: &droplets,
        builder: &rt,
        lb: &lb,
        releases: &releases,
        probe: &HttpProbe {
            timeout: Duration::from_secs(2),
        },
        progress: &progress,
        config: PipelineConfig {
            cutover: CutoverConfig {
                drain: Duration::from_secs(1),
                poll_interval: Duration::from_millis(200),
                ..CutoverConfig::default()
            },
            work_dir: infra.join("work"),
            ..PipelineConfig::default()
        },
    };
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let req = match cmd {
        DeployCmd::DeployUat {
            project,
            branch,
            local,
            project_path,
            ..
        } => {
            let source = match (local, project_path) {
                (true, Some(path)) => Source::Local { path },
                _ => Source::Git { branch },
            };
            DeployRequest::Uat { project, source }
        }
        DeployCmd::DeployProd { project, tag, .. } => DeployRequest::Prod { project, tag },
        DeployCmd::Rollback {
            project, env, to, ..
        } => DeployRequest::Rollback { project, env, to },
        DeployCmd::Reproduce { .. } => unreachable!("handled above"),
    };
    let outcome = pipeline.run(&req, &vars, chrono::Utc::now()).await?;
    report(&outcome, lb.listen(), out)
}

fn report(o: &DeployOutcome, lb: SocketAddr, out: OutputFormat) -> anyhow::Result<()> {
    if out == OutputFormat::Json {
        return print_json(o);
    }
    println!("deployed {} to {}: {}", o.project, o.env, o.tag);
    for (droplet, service, container, addr) in &o.containers {
        let at = addr.map(|a| format!(" on {a}")).unwrap_or_default();
        println!("  {droplet:<16} {service:<12} {container}{at}");
    }
    for (service, image) in &o.images {
        println!("  image {service}: {image}");
    }
    if !o.pruned.is_empty() {
        println!("  pruned: {}", o.pruned.join(", "));
    }
    println!(
        "  load balancer: http://{lb}/{}/{}/<service>/",
        o.project, o.env
    );
    Ok(())
}

async fn reproduce_tag(
    config: &LoadedConfig,
    releases: &LocalReleaseLog,
    tag: &str,
    target: &Path,
    out: OutputFormat,
) -> anyhow::Result<()> {
    let mut kept = Vec::new();
    for project in config.deployment.projects.keys() {
        for env in ["uat", "prod"] {
            kept.extend(releases.history(project, env).await?);
        }
    }
    let rec = find_release(kept, tag, ".infra/releases.json")?;
    reproduce_release(config, &rec, target, out).await
}

/// The kept release tagged `tag` among `kept`; else an error naming the
/// tag and the known ones (`source`: where they were read). Pure.
pub fn find_release(
    kept: Vec<ReleaseRecord>,
    tag: &str,
    source: &str,
) -> Result<ReleaseRecord, UsageError> {
    let known: std::collections::BTreeSet<&str> = kept.iter().map(|r| r.tag.as_str()).collect();
    let known = known.into_iter().collect::<Vec<_>>().join(", ");
    let found = kept.iter().position(|r| r.tag == tag);
    found.map(|i| kept[i].clone()).ok_or_else(|| {
        UsageError(if known.is_empty() {
            format!("tag {tag} is not a kept release: {source} has no releases")
        } else {
            format!("tag {tag} is not a kept release ({source}); known: {known}")
        })
    })
}

/// Checks out `rec`'s source into `target` and writes the manifest.
pub async fn reproduce_release(
    config: &LoadedConfig,
    rec: &ReleaseRecord,
    target: &Path,
    out: OutputFormat,
) -> anyhow::Result<()> {
    let pd = config
        .deployment
        .projects
        .get(&rec.project)
        .ok_or_else(|| {
            anyhow!(
                "release {} is of project `{}`, which is not in the deployment config",
                rec.tag,
                rec.project
            )
        })?;
    let done = reproduce(&config.deployment.git_config, rec, pd, target).await?;
    match out {
        OutputFormat::Json => print_json(&done),
        OutputFormat::Text => {
            println!(
                "checked out {} {} ({}) into {}",
                rec.project,
                rec.tag,
                done.commit,
                done.checkout.display()
            );
            println!("manifest: {}", done.manifest.display());
            Ok(())
        }
    }
}
