//! Snapshot and cleanup runs against the cloud provider: a named snapshot of a
//! droplet, retention of the newest N per droplet, and the cleanup of unknown
//! system droplets and surplus snapshots (with a dry run that deletes nothing).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::policy::{
    CloudDroplet, Deletion, KnownState, RecoveryPolicy, SnapshotInfo, latest_snapshots,
    plan_cleanup, retention_deletes, snapshot_name, snapshots_due,
};
use crate::provider::{CloudProvider, DropletAction, ProviderError, Snapshot};

/// A snapshot that was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRun {
    pub name: String,
    pub action_id: u64,
}

/// Snapshots droplet `droplet_id` (logical name `droplet`) as `<droplet>-<YYYYMMDD-HHMM>`
/// and waits for the action (scheduled, or after a successful deploy).
pub async fn snapshot_droplet(
    provider: &dyn CloudProvider,
    droplet: &str,
    droplet_id: u64,
    now: DateTime<Utc>,
) -> Result<SnapshotRun, ProviderError> {
    let name = snapshot_name(droplet, now);
    let action = DropletAction::Snapshot { name: name.clone() };
    let a = provider.droplet_action(droplet_id, &action).await?;
    provider.wait_action(a.id).await?;
    tracing::info!(%droplet, %name, "snapshot taken");
    Ok(SnapshotRun {
        name,
        action_id: a.id,
    })
}

/// One scheduled pass: snapshots every droplet (`(logical name, provider id)`) whose last
/// system snapshot is older than the interval, then applies retention to it. Also used
/// right after a successful deploy with an interval of zero.
pub async fn run_snapshot_schedule(
    provider: &dyn CloudProvider,
    droplets: &[(&str, u64)],
    policy: &RecoveryPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<SnapshotRun>, ProviderError> {
    let latest = latest_snapshots(&snapshot_infos(&provider.list_snapshots().await?));
    let names: Vec<&str> = droplets.iter().map(|(n, _)| *n).collect();
    let mut runs = Vec::new();
    for name in snapshots_due(&names, &latest, now, policy.snapshot_interval) {
        let Some((_, id)) = droplets.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        runs.push(snapshot_droplet(provider, name, *id, now).await?);
        apply_retention(provider, name, policy.snapshots_kept).await?;
    }
    Ok(runs)
}

pub fn snapshot_infos(snapshots: &[Snapshot]) -> Vec<SnapshotInfo> {
    snapshots
        .iter()
        .map(|s| SnapshotInfo {
            id: s.id,
            name: s.name.clone(),
            created_at: s.created_at,
        })
        .collect()
}

/// Deletes `droplet`'s snapshots beyond the `keep` newest; returns the deleted ones.
pub async fn apply_retention(
    provider: &dyn CloudProvider,
    droplet: &str,
    keep: usize,
) -> Result<Vec<SnapshotInfo>, ProviderError> {
    let infos = snapshot_infos(&provider.list_snapshots().await?);
    let doomed: Vec<SnapshotInfo> = retention_deletes(&infos, droplet, keep)
        .into_iter()
        .cloned()
        .collect();
    for s in &doomed {
        tracing::info!(%droplet, snapshot = %s.name, id = s.id, "retention: deleting snapshot");
        delete_snapshot(provider, s.id).await?;
    }
    Ok(doomed)
}

async fn delete_snapshot(provider: &dyn CloudProvider, id: u64) -> Result<(), ProviderError> {
    match provider.delete_snapshot(id).await {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// What a cleanup listed and (unless a dry run) deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub planned: Vec<Deletion>,
    pub deleted: Vec<Deletion>,
}

/// Lists droplets tagged `system_tag` and all snapshots, plans with [`plan_cleanup`],
/// logs every planned deletion, and deletes them unless `dry_run`.
pub async fn run_cleanup(
    provider: &dyn CloudProvider,
    system_tag: &str,
    known: &KnownState,
    keep: usize,
    dry_run: bool,
) -> Result<CleanupReport, ProviderError> {
    let droplets: Vec<CloudDroplet> = provider
        .list_droplets(Some(system_tag))
        .await?
        .into_iter()
        .map(|d| CloudDroplet {
            id: d.id,
            name: d.name,
            tags: d.tags,
        })
        .collect();
    let snapshots = snapshot_infos(&provider.list_snapshots().await?);
    let planned = plan_cleanup(system_tag, &droplets, &snapshots, known, keep);
    let mut deleted = Vec::new();
    for d in &planned {
        tracing::info!(deletion = ?d, dry_run, "cleanup");
        if dry_run {
            continue;
        }
        match d {
            Deletion::Droplet { id, .. } => match provider.delete_droplet(*id).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            },
            Deletion::Snapshot { id, .. } => delete_snapshot(provider, *id).await?,
        }
        deleted.push(d.clone());
    }
    Ok(CleanupReport {
        dry_run,
        planned,
        deleted,
    })
}
