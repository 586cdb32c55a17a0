//! `infractl deploy-uat | deploy-prod | rollback | reproduce` through the
//! cluster (reproduce reads the kept releases from the status document's
//! `release_history`, i.e. the replicated state; the others are calls) (a
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
use infra_agent::deploy::release_log::ReleaseRecord;
use infra_agent::deploy::resolve_secrets;
use infra_agent::spec::{DEPLOYMENT_FILE, LoadedConfig};
use infra_proto::v1::{DeployRequest, Progress, RollbackRequest, StatusRequest};
use serde_json::Value;
use tonic::Streaming;

use crate::client::{Target, connect};
use crate::deploy::{DeployCmd, find_release, reproduce_release};
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
        DeployCmd::Reproduce { tag, dir, .. } => {
            let reply = client
                .status(StatusRequest {})
                .await
                .map_err(|s| anyhow!("cluster unreachable: status call failed: {}", s.message()))?
                .into_inner();
            let status: Value = serde_json::from_str(&reply.status_json)
                .context("agent sent invalid status JSON")?;
            let kept = cluster_releases(&status)?;
            let rec = find_release(kept, &tag, "the cluster's replicated state")?;
            return reproduce_release(config, &rec, &dir, out).await;
        }
    };
    stream(progress, out).await.map(|_| ())
}

/// The kept releases in a status document's `release_history`
/// (`"<project>/<env>": [{tag, commit, images, ..}]`).
pub fn cluster_releases(status: &Value) -> anyhow::Result<Vec<ReleaseRecord>> {
    let history = status["release_history"]
        .as_object()
        .ok_or_else(|| anyhow!("the agent's status has no release history (an older agent?)"))?;
    let mut out = Vec::new();
    for (key, list) in history {
        let (project, env) = key
            .split_once('/')
            .ok_or_else(|| anyhow!("release history key `{key}` is not <project>/<env>"))?;
        for r in list.as_array().into_iter().flatten() {
            out.push(ReleaseRecord {
                project: project.into(),
                env: env.into(),
                tag: r["tag"].as_str().unwrap_or_default().into(),
                commit: r["commit"].as_str().map(str::to_string),
                images: serde_json::from_value(r["images"].clone()).unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::find_release;

    #[test]
    fn the_cluster_release_of_a_tag_or_an_error_listing_the_known_ones() {
        let status = serde_json::json!({"release_history": {
            "shop/uat": [
                {"tag": "v1.0.0-uat-20261125-1200", "commit": "abc", "images": {"web": "sha256:1"},
                 "deployed_at_ms": 1},
                {"tag": "v1.1.0-uat-20261125-1300", "images": {"web": "sha256:2"},
                 "deployed_at_ms": 2}],
            "shop/prod": [
                {"tag": "v1.0.0-uat-20261125-1200", "commit": "abc",
                 "images": {"web": "sha256:1"}, "deployed_at_ms": 3}]}});
        let kept = cluster_releases(&status).unwrap();
        assert_eq!(kept.len(), 3);
        let rec = find_release(kept.clone(), "v1.1.0-uat-20261125-1300", "state").unwrap();
        assert_eq!((rec.project.as_str(), rec.env.as_str()), ("shop", "uat"));
        assert_eq!(rec.images["web"], "sha256:2");
        assert_eq!(rec.commit, None);
        let err = find_release(kept, "v9.9.9-uat-20261125-1400", "state").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("v9.9.9-uat-20261125-1400"), "{text}");
        assert!(text.contains("known: v1.0.0-uat-20261125-1200"), "{text}");
        assert!(text.contains("v1.1.0-uat-20261125-1300"), "{text}");
        assert!(cluster_releases(&serde_json::json!({})).is_err());
        let none = find_release(Vec::new(), "v1", "state").unwrap_err();
        assert!(none.to_string().contains("has no releases"), "{none}");
    }
}
