//! The leader's recovery runner: watches the replicated state for open
//! recoveries (opened by quorum-confirmed failures), admits them
//! (`recovery::admit`), takes each over with a fresh fencing token and runs
//! `recovery::run_saga` with the state-backed saga log. A new leader finds
//! the open sagas in the state and resumes them the same way.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::deploy::PlaceServices;
use super::saga_store::{StateEffects, StateSagaLog};
use super::{ClusterIdentity, OrchestrateError, StateStore, cluster_tag};
use crate::bootstrap::{NodeBootstrap, NodeParams};
use crate::provider::CloudProvider;
use crate::recovery::{
    Admission, AdmissionFacts, DropletTemplate, FencingToken as SagaToken, JoinWatcher, Notice,
    Notifier, RecoveryPolicy, SYSTEM_TAG, SagaCtx, SagaOutcome, SagaRecord, SagaTiming,
    SystemClock, admit, run_saga,
};
use crate::spec::Role;
use crate::state::{ClusterState, Command, DropletStatus, RecoveryPhase, Response};

/// Everything the runner needs; shared with its saga tasks.
pub struct Healer {
    pub provider: Arc<dyn CloudProvider>,
    pub store: Arc<dyn StateStore>,
    pub joins: Arc<dyn JoinWatcher>,
    pub notifier: Arc<dyn Notifier>,
    pub identity: Arc<ClusterIdentity>,
    pub policy: RecoveryPolicy,
    pub timing: SagaTiming,
    /// Places a recovered droplet's services (the leader's deploys).
    pub placer: Option<Arc<dyn PlaceServices>>,
}

/// How often the leader checks the snapshot schedule.
const SNAPSHOT_CHECK: Duration = Duration::from_secs(60);

/// How soon a droplet without any snapshot is tried again.
const FIRST_SNAPSHOT_RETRY: Duration = Duration::from_secs(5);

/// Whether an active droplet has no snapshot yet: it gets its first one as
/// soon as the whole planned topology runs, so that a recovery can restore
/// it (not only rebuild it from the base image), without waiting for the
/// daily schedule. Not earlier, so that the snapshot holds the whole
/// cluster's membership rather than a master that was still alone (a
/// restored agent re-joins either way; see `node::cluster::join`).
pub fn needs_first_snapshot(state: &ClusterState) -> bool {
    let placed = !state.topology.droplets.is_empty()
        && state.topology.droplets.keys().all(|name| {
            state
                .droplets
                .get(name)
                .is_some_and(|r| r.status == DropletStatus::Active)
        });
    placed
        && state.droplets.iter().any(|(name, r)| {
            r.status == DropletStatus::Active
                && r.provider_id.is_some()
                && state.snapshots.get(name).is_none_or(|s| s.is_empty())
        })
}

/// How one saga task ended.
pub type SagaResult = (String, Result<SagaOutcome, String>);

fn now_ms() -> u64 {
    u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0)
}

fn at(ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(i64::try_from(ms).unwrap_or(i64::MAX))
        .single()
        .unwrap_or_default()
}

impl Healer {
    /// One pass over the state: every open recovery that no task of this
    /// leader runs is admitted (new) or resumed (has a saga record), under a
    /// fencing token taken over by this leader.
    pub async fn pass(
        self: &Arc<Self>,
        running: &mut BTreeSet<String>,
        tasks: &mut JoinSet<SagaResult>,
    ) -> Result<(), OrchestrateError> {
        let state = self.store.read().await?;
        let open: Vec<String> = state
            .recoveries
            .values()
            .filter(|r| r.is_open() && !running.contains(&r.name))
            .map(|r| r.name.clone())
            .collect();
        for name in open {
            let Some(record) = self.prepare(&state, &name).await? else {
                continue;
            };
            running.insert(name.clone());
            let healer = Arc::clone(self);
            tasks.spawn(async move {
                let result = healer.run_one(record).await;
                (name, result)
            });
        }
        Ok(())
    }

    /// The saga record to run for `name`, or `None` when it must not run.
    async fn prepare(
        &self,
        state: &ClusterState,
        name: &str,
    ) -> Result<Option<SagaRecord>, OrchestrateError> {
        let recovery = &state.recoveries[name];
        let mut record = match &recovery.saga {
            Some(json) => match serde_json::from_str::<SagaRecord>(json) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(droplet = name, error = %e, "unreadable saga record");
                    return Ok(None);
                }
            },
            None => {
                let history: Vec<DateTime<Utc>> = recovery
                    .earlier_starts_ms
                    .iter()
                    .map(|ms| at(*ms))
                    .collect();
                let facts = AdmissionFacts {
                    quorum_confirmed: state
                        .failures
                        .get(name)
                        .is_some_and(|f| f.generation == recovery.generation),
                    manual: recovery.manual,
                    saga_open: false,
                    cluster_size: state.droplets.len().max(state.topology.droplets.len()),
                    history: &history,
                    now: Utc::now(),
                };
                match admit(&self.policy, &facts) {
                    Admission::Start => {}
                    verdict => {
                        self.refuse(name, recovery.fencing, &verdict).await?;
                        return Ok(None);
                    }
                }
                SagaRecord::open(
                    name,
                    recovery.generation,
                    state.droplets.get(name).and_then(|d| d.provider_id),
                    self.template(state, name)?,
                    SagaToken {
                        term: recovery.fencing.term,
                        index: recovery.fencing.index,
                    },
                    Utc::now(),
                )
            }
        };
        // This leader's own token: any earlier runner's commits now fail.
        let take_over = Command::TakeOverRecovery {
            name: name.to_string(),
            at_ms: now_ms(),
        };
        match self.store.write(take_over).await? {
            Response::Recovery { fencing, .. } => {
                let token = SagaToken {
                    term: fencing.term,
                    index: fencing.index,
                };
                if record.take_over(token).is_err() {
                    return Ok(None);
                }
            }
            other => {
                tracing::warn!(droplet = name, ?other, "cannot take over the recovery");
                return Ok(None);
            }
        }
        Ok(Some(record))
    }

    /// Flapping and small-cluster refusals close the recovery as failed
    /// and tell the operator.
    async fn refuse(
        &self,
        name: &str,
        fencing: crate::state::FencingToken,
        verdict: &Admission,
    ) -> Result<(), OrchestrateError> {
        let (notice, reason) = match verdict {
            Admission::Flapping { count } => (
                Notice::Flapping {
                    droplet: name.to_string(),
                    count: *count,
                },
                format!("flapping: recovered {count} times recently; left down"),
            ),
            Admission::ManualOnly { cluster_size } => (
                Notice::ManualRecoveryNeeded {
                    droplet: name.to_string(),
                    cluster_size: *cluster_size,
                },
                format!("cluster of {cluster_size} droplets: run `infractl recover {name}`"),
            ),
            _ => return Ok(()),
        };
        tracing::warn!(droplet = name, %reason, "recovery refused");
        self.store
            .write(Command::RecoveryStep {
                name: name.to_string(),
                fencing,
                phase: RecoveryPhase::Failed { reason },
                at_ms: now_ms(),
            })
            .await?;
        self.notifier.notify(&notice).await;
        Ok(())
    }

    /// What a replacement of `name` is created with: its place in the
    /// topology and bootstrap user-data seeded from the live droplets.
    fn template(
        &self,
        state: &ClusterState,
        name: &str,
    ) -> Result<DropletTemplate, OrchestrateError> {
        let id = &self.identity;
        let placed = state.topology.droplets.get(name);
        let seeds: Vec<String> = state
            .droplets
            .iter()
            .filter(|(n, r)| n.as_str() != name && r.status == DropletStatus::Active)
            .filter_map(|(_, r)| r.ip.as_ref())
            .map(|ip| format!("{ip}:{}", id.gossip_port))
            .collect();
        let role = placed.map(|d| d.role).unwrap_or(Role::Web);
        let params = NodeParams {
            node_name: name.to_string(),
            cluster_id: id.cluster_id.clone(),
            role: role.as_str().to_string(),
            project: placed.and_then(|d| d.project.clone()),
            seeds,
            grpc_port: id.grpc_port,
            gossip_port: id.gossip_port,
        };
        let mut node = NodeBootstrap::issue(params, &id.ca, &id.gossip_key)?;
        if placed.is_some_and(|d| d.voter) || role == Role::Master {
            node = node.with_ca_key(&id.ca);
            if let Some(token) = &id.api_token {
                node = node.with_api_token(token.clone());
            }
            if let Some(bundle) = &id.notify {
                node = node.with_notify(bundle);
            }
        }
        Ok(DropletTemplate {
            region: placed.map(|d| d.region.clone()).unwrap_or_default(),
            size: placed.map(|d| d.size.clone()).unwrap_or_default(),
            base_image: id.base_image.clone(),
            ssh_key_ids: id.ssh_key_ids.clone(),
            tags: vec![SYSTEM_TAG.to_string(), cluster_tag(&id.cluster_id)],
            user_data: Some(node.user_data()?),
            vpc_uuid: None,
        })
    }

    async fn run_one(&self, record: SagaRecord) -> Result<SagaOutcome, String> {
        let log = StateSagaLog {
            store: Arc::clone(&self.store),
        };
        let effects = StateEffects {
            store: Arc::clone(&self.store),
            placer: self.placer.clone(),
        };
        let ctx = SagaCtx {
            provider: self.provider.as_ref(),
            log: &log,
            joins: self.joins.as_ref(),
            effects: &effects,
            notifier: self.notifier.as_ref(),
            clock: &SystemClock,
            timing: &self.timing,
        };
        run_saga(record, ctx).await.map_err(|e| e.to_string())
    }

    /// The snapshot schedule: snapshots every active droplet whose latest
    /// system snapshot is older than the policy's interval (then applies
    /// retention) and records the new snapshots in the state. Returns the
    /// names of the snapshots taken.
    pub async fn snapshot_pass(&self) -> Result<Vec<String>, OrchestrateError> {
        let state = self.store.read().await?;
        let droplets: Vec<(&str, u64)> = state
            .droplets
            .iter()
            .filter(|(_, r)| r.status == DropletStatus::Active)
            .filter_map(|(n, r)| Some((n.as_str(), r.provider_id?)))
            .collect();
        let runs = crate::recovery::run_snapshot_schedule(
            self.provider.as_ref(),
            &droplets,
            &self.policy,
            Utc::now(),
        )
        .await?;
        record_snapshots(self.provider.as_ref(), self.store.as_ref(), runs).await
    }

    /// Runs until `shutdown`: a pass after every applied log entry (and
    /// every `interval`) while `is_leader()`; saga tasks are joined.
    pub async fn run(
        self: Arc<Self>,
        mut applied: watch::Receiver<u64>,
        is_leader: impl Fn() -> bool + Send,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut running = BTreeSet::new();
        let mut tasks: JoinSet<SagaResult> = JoinSet::new();
        // At most one snapshot pass at a time, beside the sagas: a pass
        // waits for every snapshot (minutes on a real cloud) and must never
        // hold up a recovery.
        let mut snapshots: JoinSet<Result<Vec<String>, OrchestrateError>> = JoinSet::new();
        // The schedule is checked every `SNAPSHOT_CHECK`; what is due comes
        // from the cloud's snapshots and the policy's interval.
        let mut next_snapshot_check = tokio::time::Instant::now() + SNAPSHOT_CHECK;
        let mut next_first_try = tokio::time::Instant::now();
        loop {
            if is_leader()
                && let Err(e) = self.pass(&mut running, &mut tasks).await
            {
                tracing::warn!(error = %e, "recovery pass failed");
            }
            let now = tokio::time::Instant::now();
            let mut due = now >= next_snapshot_check && snapshots.is_empty();
            if is_leader() && !due && snapshots.is_empty() && now >= next_first_try {
                next_first_try = now + FIRST_SNAPSHOT_RETRY;
                due = self
                    .store
                    .read()
                    .await
                    .is_ok_and(|state| needs_first_snapshot(&state));
            }
            if is_leader() && due {
                next_snapshot_check = now + SNAPSHOT_CHECK;
                let healer = Arc::clone(&self);
                snapshots.spawn(async move { healer.snapshot_pass().await });
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = applied.changed() => if changed.is_err() { break },
                Some(done) = tasks.join_next() => {
                    if let Ok((name, result)) = done {
                        running.remove(&name);
                        match result {
                            Ok(outcome) => tracing::info!(droplet = %name, ?outcome, "recovered"),
                            Err(error) => tracing::warn!(droplet = %name, %error, "saga stopped"),
                        }
                    }
                }
                Some(done) = snapshots.join_next() => match done {
                    Ok(Ok(taken)) if !taken.is_empty() => tracing::info!(?taken, "snapshots taken"),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "snapshot schedule failed"),
                    Err(e) => tracing::error!(error = %e, "snapshot pass panicked"),
                },
                _ = tokio::time::sleep(interval) => {}
            }
        }
        tasks.shutdown().await;
        snapshots.shutdown().await;
    }
}

/// Records snapshots just taken (`runs`) in the replicated state
/// (`Command::RecordSnapshot`, with the provider's snapshot id); returns
/// their names. Used by the schedule and after a successful deploy.
pub async fn record_snapshots(
    provider: &dyn CloudProvider,
    store: &dyn StateStore,
    runs: Vec<crate::recovery::SnapshotRun>,
) -> Result<Vec<String>, OrchestrateError> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let snapshots = provider.list_snapshots().await?;
    let mut taken = Vec::new();
    for run in runs {
        let Some(snapshot) = snapshots.iter().find(|s| s.name == run.name) else {
            continue;
        };
        let droplet = crate::recovery::parse_snapshot_name(&run.name)
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        store
            .write(Command::RecordSnapshot {
                droplet,
                snapshot_id: snapshot.id.to_string(),
                name: run.name.clone(),
                at_ms: now_ms(),
            })
            .await?;
        taken.push(run.name);
    }
    Ok(taken)
}
