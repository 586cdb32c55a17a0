//! `infractl render k8s | compose`: the Kubernetes manifests or the
//! docker-compose file of a project+environment, for running it elsewhere.
//! Images are those of the live release (`.infra/releases.json`), else
//! `:latest`; replicas and host ports come from the planned topology.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;
use infra_agent::deploy::release_log::{LocalReleaseLog, ReleaseLog};
use infra_agent::runtime::manifests::{RenderInput, render_compose, render_k8s};
use infra_agent::spec::service_name;

use crate::output::{OutputFormat, print_json};

#[derive(Subcommand, Debug)]
pub enum RenderCmd {
    /// Kubernetes manifests (namespace, Deployments, Services) into --out DIR.
    K8s {
        project: String,
        env: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// A docker-compose file (stdout, or --out FILE).
    Compose {
        project: String,
        env: String,
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

async fn input(dir: &Path, project: &str, env: &str) -> anyhow::Result<RenderInput> {
    let config = crate::deploy::load(dir)?;
    let topo = crate::deploy::topology(&config);
    let releases = LocalReleaseLog::open(&crate::context::context_dir(dir).join("releases.json"))?;
    let tag = releases
        .live(project, env)
        .await?
        .map(|r| r.tag)
        .unwrap_or_else(|| "latest".into());
    let placed = |service: &str| topo.services.get(&service_name(project, env, service));
    let replicas = config
        .deployment
        .projects
        .get(project)
        .and_then(|p| p.services.keys().find_map(|s| placed(s)))
        .map_or(1, |s| s.droplets.len().max(1) as u32);
    Ok(RenderInput::from_deployment(
        &config.deployment,
        project,
        env,
        &tag,
        replicas,
        |service| placed(service).and_then(|s| s.port).unwrap_or(8000),
    )?)
}

pub async fn run(cmd: RenderCmd, dir: &Path, out: OutputFormat) -> anyhow::Result<()> {
    match cmd {
        RenderCmd::K8s {
            project,
            env,
            out: to,
        } => {
            let files = render_k8s(&input(dir, &project, &env).await?)?;
            std::fs::create_dir_all(&to).with_context(|| format!("creating {}", to.display()))?;
            let mut written = Vec::new();
            for f in files {
                let path = to.join(&f.file_name);
                std::fs::write(&path, &f.content)
                    .with_context(|| format!("writing {}", path.display()))?;
                written.push(path.display().to_string());
            }
            match out {
                OutputFormat::Json => print_json(&written),
                OutputFormat::Text => {
                    written.iter().for_each(|p| println!("wrote {p}"));
                    Ok(())
                }
            }
        }
        RenderCmd::Compose {
            project,
            env,
            out: to,
        } => {
            let file = render_compose(&input(dir, &project, &env).await?)?;
            match to {
                Some(path) => {
                    std::fs::write(&path, &file.content)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("wrote {}", path.display());
                }
                None => print!("{}", file.content),
            }
            Ok(())
        }
    }
}
