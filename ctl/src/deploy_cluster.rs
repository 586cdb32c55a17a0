//! `infractl deploy-uat | deploy-prod | rollback` through the cluster (a
//! context from `infractl up`, `--endpoint` or `INFRA_ENDPOINT`): secrets
//! are resolved here from this process's environment (`<PROJECT>_<ENV>_<NAME>`,
//! `<ENV>_<NAME>`, `<NAME>`), sent with `deployment_config.json` in the
//! Deploy/Rollback call to any agent (which forwards to the leader), and the
//! leader's progress is streamed back. `--local --project-path` sends the
//! absolute path: the leader must be able to read it (true in the local
//! cloud, where every droplet shares this filesystem).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use infra_agent::deploy::resolve_secrets;
use infra_agent::spec::{DEPLOYMENT_FILE, LoadedConfig};
use infra_proto::v1::{DeployRequest, Progress, RollbackRequest};
use serde_json::Value;
use tonic::Streaming;

use crate::client::{Target, connect};
use crate::deploy::DeployCmd;
use crate::output::OutputFormat;

/// Secrets of every service of `project` in `env`, by name, from `vars`.
pub fn caller_secrets(
    config: &LoadedConfig,
    project: &str,
    env: &str,
    vars: &BTreeMap<String, String>,
) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let pd = config
        .deployment
        .projects
        .get(project)
        .ok_or_else(|| anyhow!("project `{project}` is not in {DEPLOYMENT_FILE}"))?;
    let mut out = BTreeMap::new();
    for spec in pd.services.values() {
        for (name, value) in resolve_secrets(project, env, &spec.secrets, vars)? {
            out.insert(name, value.expose().as_bytes().to_vec());
        }
    }
    Ok(out)
}

/// Prints progress; returns the final result JSON.
async fn stream(mut progress: Streaming<Progress>, out: OutputFormat) -> anyhow::Result<Value> {
    while let Some(p) = progress.message().await.context("progress stream broke")? {
        if p.done {
            if p.failed {
                bail!("{}", p.message);
            }
            let result: Value = serde_json::from_str(&p.result_json).unwrap_or(Value::Null);
            match out {
                OutputFormat::Json => println!("{}", p.result_json),
                OutputFormat::Text => {
                    println!("{}", p.message);
                    for (service, image) in result["images"].as_object().into_iter().flatten() {
                        println!("  image {service}: {}", image.as_str().unwrap_or("-"));
                    }
                    if let Some(lb) = result["load_balancer"].as_str() {
                        println!(
                            "  load balancer: {lb}/{}/{}/<service>/",
                            result["project"].as_str().unwrap_or("-"),
                            result["env"].as_str().unwrap_or("-")
                        );
                    }
                }
            }
            return Ok(result);
        }
        match out {
            OutputFormat::Text => println!("==> {}", p.message),
            OutputFormat::Json => eprintln!("==> {}", p.message),
        }
    }
    Err(anyhow!("the agent closed the stream without a result"))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

/// Runs a deploy command through the cluster at `target`.
pub async fn run(
    cmd: DeployCmd,
    config: &LoadedConfig,
    target: &Target,
    out: OutputFormat,
) -> anyhow::Result<()> {
    let path = config.dir.join(DEPLOYMENT_FILE);
    let deployment_json = std::fs::read_to_string(&path).unwrap_or_default();
    let vars: BTreeMap<String, String> = std::env::vars().collect();
    let mut client = connect(target).await?;
    let failed = |s: tonic::Status| anyhow!("{}", s.message());
    let progress = match cmd {
        DeployCmd::DeployUat {
            project,
            branch,
            local,
            project_path,
            ..
        } => {
            let secrets = caller_secrets(config, &project, "uat", &vars)?;
            let project_path = match project_path.filter(|_| local) {
                Some(p) => absolute(&p)?.to_string_lossy().into_owned(),
                None => String::new(),
            };
            let req = DeployRequest {
                project,
                environment: "uat".into(),
                branch,
                tag: String::new(),
                local,
                project_path,
                secrets: secrets.into_iter().collect(),
                deployment_json,
            };
            client.deploy(req).await.map_err(failed)?.into_inner()
        }
        DeployCmd::DeployProd { project, tag, .. } => {
            let secrets = caller_secrets(config, &project, "prod", &vars)?;
            let req = DeployRequest {
                project,
                environment: "prod".into(),
                tag: tag.unwrap_or_default(),
                secrets: secrets.into_iter().collect(),
                deployment_json,
                ..DeployRequest::default()
            };
            client.deploy(req).await.map_err(failed)?.into_inner()
        }
        DeployCmd::Rollback {
            project, env, to, ..
        } => {
            let req = RollbackRequest {
                project,
                environment: env,
                to_tag: to.unwrap_or_default(),
                deployment_json,
            };
            client.rollback(req).await.map_err(failed)?.into_inner()
        }
        DeployCmd::Reproduce { .. } => bail!("reproduce runs locally"),
    };
    stream(progress, out).await.map(|_| ())
}
