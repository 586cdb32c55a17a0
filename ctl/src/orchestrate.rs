//! `infractl orchestrate` and `infractl cleanup`: control calls streamed
//! from the cluster's leader. The first orchestrate (no agent answers)
//! creates the master droplet, waits until its agent answers, forms the
//! cluster with it (`Initialize`, recorded in `.infra/formed.json` so that
//! it happens once), then sends it the spec.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use infra_agent::bootstrap::{DEFAULT_GOSSIP_PORT, DEFAULT_GRPC_PORT, NodeBootstrap, NodeParams};
use infra_agent::membership::GossipKey;
use infra_agent::notify::NotifyBundle;
use infra_agent::orchestrator::{DEFAULT_BASE_IMAGE, cluster_tag, create_operation_id};
use infra_agent::provider::{CloudProvider, CreateDroplets, DoClient, ImageRef, OperationId};
use infra_agent::recovery::SYSTEM_TAG;
use infra_agent::spec::MASTER;
use infra_agent::tls::Ca;
use infra_proto::v1::control_client::ControlClient;
use infra_proto::v1::{
    ApplySpecRequest, CleanupRequest, InitializeRequest, Progress, StatusRequest,
};
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::client::{Target, connect, resolve};
use crate::context::{Context, FormedRecord};
use crate::offline::CLUSTER_ID;
use crate::output::OutputFormat;

/// How long the first orchestrate waits for the master's agent.
const MASTER_ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// Prints each progress message; returns the final result JSON.
pub(crate) async fn stream(
    mut progress: Streaming<Progress>,
    out: OutputFormat,
) -> anyhow::Result<String> {
    while let Some(p) = progress.message().await.context("progress stream broke")? {
        if p.done {
            if p.failed {
                bail!("{}", p.message);
            }
            match out {
                OutputFormat::Json => println!("{}", p.result_json),
                OutputFormat::Text => println!("{}", p.message),
            }
            return Ok(p.result_json);
        }
        if out == OutputFormat::Text {
            println!("  {}", p.message);
        }
    }
    Err(anyhow!("the agent closed the stream without a result"))
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The notification configs of `config_dir` with the secrets they name
/// from this process's environment; a problem is printed and leaves the
/// cluster without notifications (they only log).
fn notify_bundle(config_dir: &Path) -> Option<NotifyBundle> {
    match NotifyBundle::from_caller(config_dir, |v| std::env::var(v).ok()) {
        Ok(Some(bundle)) => {
            println!("  notify: shipping {bundle:?}");
            Some(bundle)
        }
        Ok(None) => None,
        Err(e) => {
            println!("  warning: notifications not shipped: {e}");
            None
        }
    }
}

/// Creates the master droplet (exactly once: operation-id tag) with its
/// user-data, and returns its agent's endpoint.
async fn create_master(config_dir: &Path, pki: &Path) -> anyhow::Result<String> {
    let loaded = infra_agent::spec::load_dir(config_dir).map_err(|e| anyhow!("{e}"))?;
    let spec = loaded.spec();
    let master = spec
        .infrastructure
        .droplets
        .get(MASTER)
        .ok_or_else(|| anyhow!("infrastructure.json has no `{MASTER}` droplet"))?;
    let ca = Ca::load(&pki.join("ca.pem"), &pki.join("ca.key"), CLUSTER_ID)
        .context("the cluster CA (run `infractl init`)")?;
    let gossip = GossipKey::load(&pki.join("gossip.key"))?;
    let config = crate::cloud::provider_config(config_dir)?;
    let token = config.token.clone();
    let provider = DoClient::new(config)?;
    let node = NodeBootstrap::issue(
        NodeParams {
            node_name: MASTER.to_string(),
            cluster_id: CLUSTER_ID.to_string(),
            role: "master".to_string(),
            project: None,
            seeds: Vec::new(),
            grpc_port: DEFAULT_GRPC_PORT,
            gossip_port: DEFAULT_GOSSIP_PORT,
        },
        &ca,
        &gossip,
    )?
    .with_ca_key(&ca)
    .with_api_token(token);
    let node = match notify_bundle(config_dir) {
        Some(bundle) => node.with_notify(&bundle),
        None => node,
    };
    println!("  create: creating the master droplet");
    let created = provider
        .create_droplets(&CreateDroplets {
            names: vec![MASTER.to_string()],
            region: master.region.clone(),
            size: master.size.clone(),
            image: ImageRef::Slug(DEFAULT_BASE_IMAGE.to_string()),
            ssh_keys: Vec::new(),
            tags: vec![SYSTEM_TAG.to_string(), cluster_tag(CLUSTER_ID)],
            user_data: Some(node.user_data()?),
            vpc_uuid: None,
            ipv6: false,
            monitoring: false,
            operation_id: Some(OperationId::new(create_operation_id(
                CLUSTER_ID, MASTER, 1,
            ))?),
        })
        .await?;
    for action in &created.action_ids {
        provider.wait_action(*action).await?;
    }
    let id = created
        .droplets
        .first()
        .ok_or_else(|| anyhow!("the create returned no droplet"))?
        .id;
    let ip = provider
        .get_droplet(id)
        .await?
        .public_ipv4
        .ok_or_else(|| anyhow!("the master droplet has no public address"))?;
    println!("  active: master at {ip}");
    Ok(format!("{ip}:{DEFAULT_GRPC_PORT}"))
}

/// Forms the cluster with the new master's agent (`Initialize`), once, and
/// records it in `.infra/formed.json`.
async fn initialize(
    client: &mut ControlClient<Channel>,
    config_dir: &Path,
    endpoint: &str,
) -> anyhow::Result<()> {
    let reply = client
        .initialize(InitializeRequest {
            cluster_id: CLUSTER_ID.to_string(),
        })
        .await
        .map_err(|s| {
            anyhow!(
                "the master agent at {endpoint} cannot form the cluster: {}",
                s.message()
            )
        })?
        .into_inner();
    if reply.formed {
        println!(
            "  initialize: cluster {CLUSTER_ID} formed (leader {}, term {})",
            reply.leader, reply.term
        );
    } else {
        println!(
            "  initialize: cluster {CLUSTER_ID} exists already (leader {}, term {})",
            reply.leader, reply.term
        );
    }
    FormedRecord {
        version: 1,
        cluster_id: CLUSTER_ID.to_string(),
        endpoint: endpoint.to_string(),
        formed_at: chrono::Utc::now().to_rfc3339(),
    }
    .save_new(config_dir)?;
    Ok(())
}

/// `infractl orchestrate`.
pub async fn orchestrate(
    config_dir: &Path,
    force: bool,
    allow_destroy: bool,
    out: OutputFormat,
) -> anyhow::Result<()> {
    let infra = read(&config_dir.join("infrastructure.json"))?;
    let deployment_path = config_dir.join("deployment_config.json");
    let deployment = if deployment_path.exists() {
        read(&deployment_path)?
    } else {
        String::new()
    };
    let context = Context::load(config_dir)?;
    let pki = context
        .as_ref()
        .map(|c| c.pki_dir.clone())
        .unwrap_or_else(|| config_dir.join("pki"));
    let existing = match resolve(config_dir, None, Some(&pki)) {
        Ok(target) => connect(&target).await.ok(),
        Err(_) => None,
    };
    let mut client = match existing {
        Some(c) => c,
        None => {
            if let Some(formed) = FormedRecord::load(config_dir)? {
                bail!(
                    "no agent of cluster `{}` answers, and it was formed already ({} at {}, \
                     recorded in {}): it is never formed twice. Check that its droplets run \
                     (`infractl status --endpoint IP:{DEFAULT_GRPC_PORT}`); a rebuilt agent \
                     rejoins on its own",
                    formed.cluster_id,
                    formed.endpoint,
                    formed.formed_at,
                    crate::context::formed_path(config_dir).display()
                );
            }
            let endpoint = create_master(config_dir, &pki).await?;
            if let Some(mut ctx) = context {
                if !ctx.endpoints.contains(&endpoint) {
                    ctx.endpoints.insert(0, endpoint.clone());
                }
                ctx.save(config_dir)?;
            }
            let target = Target {
                endpoints: vec![endpoint.clone()],
                pki_dir: pki.clone(),
            };
            let start = Instant::now();
            let mut client = loop {
                if let Ok(c) = connect(&target).await {
                    break c;
                }
                if start.elapsed() > MASTER_ANSWER_TIMEOUT {
                    bail!(
                        "the master agent at {endpoint} did not answer within {MASTER_ANSWER_TIMEOUT:?}"
                    );
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            initialize(&mut client, config_dir, &endpoint).await?;
            client
        }
    };
    let progress = client
        .apply_spec(ApplySpecRequest {
            infrastructure_json: infra,
            deployment_json: deployment,
            force,
            allow_destroy,
        })
        .await
        .map_err(|s| anyhow!("ApplySpec: {}", s.message()))?
        .into_inner();
    stream(progress, out).await?;
    // Every agent becomes an endpoint of the context.
    if let Ok(reply) = client.status(StatusRequest {}).await
        && let Ok(status) = serde_json::from_str(&reply.into_inner().status_json)
    {
        crate::context::remember_members(config_dir, &status);
    }
    Ok(())
}

/// `infractl cleanup [--dry-run]`.
pub async fn cleanup(config_dir: &Path, dry_run: bool, out: OutputFormat) -> anyhow::Result<()> {
    let target = resolve(config_dir, None, None)?;
    let mut client = connect(&target).await?;
    let progress = client
        .cleanup(CleanupRequest { dry_run })
        .await
        .map_err(|s| anyhow!("Cleanup: {}", s.message()))?
        .into_inner();
    stream(progress, out).await.map(|_| ())
}
