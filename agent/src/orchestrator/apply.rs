//! `apply_spec`: plan against the replicated topology, then carry the plan
//! out — create missing droplets (exactly once), wait for them, commit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::{
    ClusterIdentity, OrchestrateError, Progress, ProgressEvent, StateStore, Waits, cluster_tag,
    create_operation_id,
};
use crate::bootstrap::{NodeBootstrap, NodeParams};
use crate::plan::{self, Detail, PlanOptions, Summary};
use crate::provider::{CloudProvider, CreateDroplets, Droplet, ImageRef, OperationId};
use crate::recovery::{JoinWatcher, SYSTEM_TAG};
use crate::spec::{Role, Spec};
use crate::state::{ClusterState, Command, DropletStatus, Response};
use crate::topology::{DropletState, Topology};

/// What the reconciler talks to.
pub struct ApplyDeps<'a> {
    pub provider: &'a dyn CloudProvider,
    pub state: &'a dyn StateStore,
    pub joins: &'a dyn JoinWatcher,
    pub identity: &'a ClusterIdentity,
    pub waits: Waits,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub summary: Summary,
    /// Droplets created by this run.
    pub created: Vec<String>,
    /// Droplets found already existing in the cloud (earlier interrupted
    /// run, or the master created by `infractl`) and recorded.
    pub adopted: Vec<String>,
    pub deleted: Vec<String>,
    /// Whether a new topology was committed.
    pub topology_committed: bool,
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

fn say(progress: &dyn Progress, step: &'static str, message: String) {
    tracing::info!(step, %message, "orchestrate");
    progress.report(ProgressEvent { step, message });
}

async fn commit(deps: &ApplyDeps<'_>, command: Command) -> Result<(), OrchestrateError> {
    let kind = command.kind();
    match deps.state.write(command).await? {
        Response::Rejected { reason } => Err(OrchestrateError::Rejected { kind, reason }),
        _ => Ok(()),
    }
}

/// Droplets of `target` without an active, addressed record in `state`.
fn missing(state: &ClusterState, target: &Topology) -> Vec<String> {
    let mut names: Vec<String> = target
        .droplets
        .keys()
        .filter(|name| {
            state.droplets.get(*name).is_none_or(|r| {
                r.status != DropletStatus::Active || r.provider_id.is_none() || r.ip.is_none()
            })
        })
        .cloned()
        .collect();
    // The master first: the others seed from it.
    names.sort_by_key(|n| (target.droplets[n].role != Role::Master, n.clone()));
    names
}

/// Applies `spec`: after it returns Ok, every droplet of the planned
/// topology exists, is recorded active with its address, its agent joined,
/// and the topology is committed. A re-run with nothing to change makes no
/// cloud API call.
pub async fn apply_spec(
    spec: &Spec,
    opts: &PlanOptions,
    deps: &ApplyDeps<'_>,
    progress: &dyn Progress,
) -> Result<ApplyReport, OrchestrateError> {
    let state = deps.state.read().await?;
    let plan = plan::plan(spec, &state.topology, opts);
    let summary = plan.summary();
    let mut report = ApplyReport {
        summary,
        ..ApplyReport::default()
    };
    say(
        progress,
        "plan",
        format!(
            "{} to create, {} to update, {} to delete, {} blocked",
            summary.create, summary.update, summary.delete, summary.blocked
        ),
    );
    let blocked: Vec<&str> = plan.blocked_destroys().map(|c| c.name.as_str()).collect();
    if !blocked.is_empty() {
        say(
            progress,
            "plan",
            format!(
                "left as is (needs --allow-destroy/--force): {}",
                blocked.join(", ")
            ),
        );
    }
    let mut target = plan.apply(&state.topology);

    // Deletions and replacements: the old droplet goes first.
    for change in plan.changes.iter().filter(|c| !c.blocked) {
        if let Detail::Droplet { after, replace, .. } = &change.detail
            && (after.is_none() || *replace)
        {
            if let Some(id) = state.droplets.get(&change.name).and_then(|r| r.provider_id) {
                say(
                    progress,
                    "delete",
                    format!("deleting droplet {}", change.name),
                );
                deps.provider.delete_droplet(id).await?;
            }
            commit(
                deps,
                Command::RemoveDroplet {
                    name: change.name.clone(),
                    at_ms: now_ms(),
                },
            )
            .await?;
            report.deleted.push(change.name.clone());
        }
    }
    let state = if report.deleted.is_empty() {
        state
    } else {
        deps.state.read().await?
    };

    let todo = missing(&state, &target);
    if !todo.is_empty() {
        let created = create_missing(&state, &mut target, &todo, deps, progress).await?;
        report.created = created.created;
        report.adopted = created.adopted;
        wait_joined(&todo, deps, progress).await?;
    }
    // Addresses of droplets that existed before.
    for (name, d) in target.droplets.iter_mut() {
        if d.ip.is_none() {
            d.ip = state.droplets.get(name).and_then(|r| r.ip.clone());
        }
    }
    if target != state.topology {
        commit(
            deps,
            Command::SetTopology {
                topology: target,
                at_ms: now_ms(),
            },
        )
        .await?;
        report.topology_committed = true;
        say(progress, "commit", "topology committed".to_string());
    }
    say(
        progress,
        "done",
        format!(
            "{} created, {} adopted, {} deleted",
            report.created.len(),
            report.adopted.len(),
            report.deleted.len()
        ),
    );
    Ok(report)
}

struct Created {
    created: Vec<String>,
    adopted: Vec<String>,
}

async fn create_missing(
    state: &ClusterState,
    target: &mut Topology,
    todo: &[String],
    deps: &ApplyDeps<'_>,
    progress: &dyn Progress,
) -> Result<Created, OrchestrateError> {
    let id = deps.identity;
    let tag = cluster_tag(&id.cluster_id);
    // Droplets of this cluster that already exist (adopted by name).
    let existing: BTreeMap<String, Droplet> = deps
        .provider
        .list_droplets(Some(&tag))
        .await?
        .into_iter()
        .map(|d| (d.name.clone(), d))
        .collect();
    let mut seeds: BTreeSet<String> = state
        .droplets
        .iter()
        .filter(|(name, r)| r.status == DropletStatus::Active && !todo.contains(name))
        .filter_map(|(_, r)| r.ip.as_ref())
        .map(|ip| format!("{ip}:{}", id.gossip_port))
        .collect();
    let mut out = Created {
        created: Vec::new(),
        adopted: Vec::new(),
    };
    let mut pending: Vec<(String, u64, u64, Vec<u64>)> = Vec::new();
    for name in todo {
        let want = &target.droplets[name];
        let generation = match state.droplets.get(name) {
            Some(r) if r.status == DropletStatus::Provisioning => r.generation.max(1),
            Some(r) => r.generation + 1,
            None => 1,
        };
        let (droplet, actions) = match existing.get(name) {
            Some(d) => {
                say(
                    progress,
                    "create",
                    format!("adopting existing droplet {name} (id {})", d.id),
                );
                out.adopted.push(name.clone());
                (d.clone(), Vec::new())
            }
            None => {
                commit(
                    deps,
                    Command::UpsertDroplet {
                        name: name.clone(),
                        provider_id: None,
                        ip: None,
                        generation,
                        status: DropletStatus::Provisioning,
                        at_ms: now_ms(),
                    },
                )
                .await?;
                let created = create_one(name, want, generation, &seeds, deps).await?;
                say(
                    progress,
                    "create",
                    format!("creating droplet {name} (id {})", created.0.id),
                );
                out.created.push(name.clone());
                created
            }
        };
        if want.role == Role::Master {
            // The master is a seed for everything created after it: wait
            // for its address before creating the others.
            let ip = record_active(
                name, droplet.id, generation, actions, target, deps, progress,
            )
            .await?;
            seeds.insert(format!("{ip}:{}", id.gossip_port));
        } else {
            pending.push((name.clone(), droplet.id, generation, actions));
        }
    }
    for (name, droplet_id, generation, actions) in pending {
        record_active(
            &name, droplet_id, generation, actions, target, deps, progress,
        )
        .await?;
    }
    Ok(out)
}

/// Waits until the droplet is active and commits its record.
async fn record_active(
    name: &str,
    droplet_id: u64,
    generation: u64,
    actions: Vec<u64>,
    target: &mut Topology,
    deps: &ApplyDeps<'_>,
    progress: &dyn Progress,
) -> Result<String, OrchestrateError> {
    for action in actions {
        deps.provider.wait_action(action).await?;
    }
    let ip = wait_active(name, droplet_id, deps).await?.to_string();
    say(
        progress,
        "active",
        format!("droplet {name} is active at {ip}"),
    );
    commit(
        deps,
        Command::UpsertDroplet {
            name: name.to_string(),
            provider_id: Some(droplet_id),
            ip: Some(ip.clone()),
            generation,
            status: DropletStatus::Active,
            at_ms: now_ms(),
        },
    )
    .await?;
    if let Some(d) = target.droplets.get_mut(name) {
        d.ip = Some(ip.clone());
    }
    Ok(ip)
}

/// Polls the droplet until it is active with an address (an adopted
/// droplet's create may still run).
async fn wait_active(
    name: &str,
    droplet_id: u64,
    deps: &ApplyDeps<'_>,
) -> Result<std::net::Ipv4Addr, OrchestrateError> {
    let started = Instant::now();
    loop {
        let droplet = deps.provider.get_droplet(droplet_id).await?;
        if droplet.status == crate::provider::DropletStatus::Active
            && let Some(ip) = droplet.public_ipv4
        {
            return Ok(ip);
        }
        if started.elapsed() >= deps.waits.join {
            return Err(OrchestrateError::NoAddress {
                name: name.to_string(),
            });
        }
        tokio::time::sleep(deps.waits.poll).await;
    }
}

async fn create_one(
    name: &str,
    want: &DropletState,
    generation: u64,
    seeds: &BTreeSet<String>,
    deps: &ApplyDeps<'_>,
) -> Result<(Droplet, Vec<u64>), OrchestrateError> {
    let id = deps.identity;
    let params = NodeParams {
        node_name: name.to_string(),
        cluster_id: id.cluster_id.clone(),
        role: want.role.as_str().to_string(),
        project: want.project.clone(),
        seeds: seeds.iter().cloned().collect(),
        grpc_port: id.grpc_port,
        gossip_port: id.gossip_port,
    };
    let mut node = NodeBootstrap::issue(params, &id.ca, &id.gossip_key)?;
    if want.voter || want.role == Role::Master {
        node = node.with_ca_key(&id.ca);
        if let Some(token) = &id.api_token {
            node = node.with_api_token(token.clone());
        }
        if let Some(bundle) = &id.notify {
            node = node.with_notify(bundle);
        }
    }
    let request = CreateDroplets {
        names: vec![name.to_string()],
        region: want.region.clone(),
        size: want.size.clone(),
        image: ImageRef::Slug(id.base_image.clone()),
        ssh_keys: id
            .ssh_key_ids
            .iter()
            .map(|k| crate::provider::SshKeyRef::Id(*k))
            .collect(),
        tags: vec![SYSTEM_TAG.to_string(), cluster_tag(&id.cluster_id)],
        user_data: Some(node.user_data()?),
        vpc_uuid: None,
        ipv6: false,
        monitoring: false,
        operation_id: Some(OperationId::new(create_operation_id(
            &id.cluster_id,
            name,
            generation,
        ))?),
    };
    let created = deps.provider.create_droplets(&request).await?;
    let droplet =
        created
            .droplets
            .into_iter()
            .next()
            .ok_or_else(|| OrchestrateError::NoAddress {
                name: name.to_string(),
            })?;
    Ok((droplet, created.action_ids))
}

async fn wait_joined(
    names: &[String],
    deps: &ApplyDeps<'_>,
    progress: &dyn Progress,
) -> Result<(), OrchestrateError> {
    let started = Instant::now();
    for name in names {
        loop {
            if deps.joins.joined(name, 1).await {
                say(progress, "join", format!("agent of {name} joined"));
                break;
            }
            if started.elapsed() >= deps.waits.join {
                return Err(OrchestrateError::JoinTimeout {
                    name: name.clone(),
                    waited: deps.waits.join,
                });
            }
            tokio::time::sleep(deps.waits.poll).await;
        }
    }
    Ok(())
}
