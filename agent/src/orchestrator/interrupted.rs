//! Deploys interrupted by a leader change: a deploy records its start and
//! end in the state (`deploys`); a leader that finds one unfinished while
//! it holds the deploy lock (so it is not its own) marks it interrupted
//! (`infractl status` shows it), converges the droplets back to the
//! state's live release (a rollback to the live tag) once every droplet of
//! the project is active (a droplet lost with the leader is recovered
//! first), and marks it done; a failed convergence is retried a few times.
//! [`interrupted`] decides, pure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::deploy::Request;
use super::{LeaderDeploys, StateStore};
use crate::api::handler::ProgressSink;
use crate::deploy::pipeline::DeployRequest;
use crate::state::{ClusterState, Command, DropletStatus, release_key};

/// Convergence attempts before an interrupted deploy is marked done with
/// its last error.
pub const MAX_ATTEMPTS: u32 = 5;

/// Pause after a failed attempt (times the attempts so far).
const RETRY_PAUSE: Duration = Duration::from_secs(3);

/// Failed attempts so far and when the next may start, per project/env.
pub type Attempts = BTreeMap<String, (u32, tokio::time::Instant)>;

/// An unfinished deploy and what to converge back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interrupted {
    pub project: String,
    pub env: String,
    pub action: String,
    /// The live release of project+env (`None`: nothing was live yet).
    pub back_to: Option<String>,
    pub deployment_json: String,
    /// Droplets of the project+env not active yet (wait for them).
    pub waiting_for: Vec<String>,
}

/// The deploys of the state that started and never finished. Only
/// meaningful while holding the deploy lock (a leader's own running
/// deploy is unfinished too). Pure.
pub fn interrupted(state: &ClusterState) -> Vec<Interrupted> {
    state
        .deploys
        .iter()
        .filter(|(_, run)| run.finished_at_ms.is_none())
        .filter_map(|(key, run)| {
            let (project, env) = key.split_once('/')?;
            let mut waiting_for: Vec<String> = state
                .topology
                .services
                .values()
                .filter(|s| s.project == project && s.environment == env)
                .flat_map(|s| s.droplets.iter())
                .filter(|d| {
                    state
                        .droplets
                        .get(*d)
                        .is_none_or(|r| r.status != DropletStatus::Active)
                })
                .cloned()
                .collect();
            waiting_for.sort();
            waiting_for.dedup();
            Some(Interrupted {
                waiting_for,
                project: project.into(),
                env: env.into(),
                action: run.action.clone(),
                back_to: state.live_releases.get(key).cloned(),
                deployment_json: run.deployment_json.clone(),
            })
        })
        .collect()
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

impl LeaderDeploys {
    /// Marks the unfinished deploys interrupted, converges each back to
    /// its live release and marks it done. Skips (`Ok(0)`) when a deploy
    /// runs on this leader. Returns how many it handled.
    pub async fn converge_interrupted(
        &self,
        store: &dyn StateStore,
        spec_dir: &std::path::Path,
        attempts: &mut Attempts,
    ) -> Result<usize, String> {
        let quick = store.read().await.map_err(|e| e.to_string())?;
        if interrupted(&quick).is_empty() {
            return Ok(0);
        }
        let Some(_one) = self.balancer().try_exclusive() else {
            return Ok(0);
        };
        let state = store.read().await.map_err(|e| e.to_string())?;
        let todo = interrupted(&state);
        let mut handled = 0;
        for d in &todo {
            store
                .write(Command::DeployInterrupted {
                    project: d.project.clone(),
                    environment: d.env.clone(),
                    at_ms: now_ms(),
                })
                .await
                .map_err(|e| e.to_string())?;
            if !d.waiting_for.is_empty() {
                tracing::info!(project = %d.project, env = %d.env, waiting_for = ?d.waiting_for,
                    "interrupted deploy: waiting for the droplets before converging back");
                continue;
            }
            tracing::warn!(project = %d.project, env = %d.env, action = %d.action,
                back_to = ?d.back_to, "deploy interrupted by a leader change; converging back");
            let key = release_key(&d.project, &d.env);
            if attempts
                .get(&key)
                .is_some_and(|(_, next)| tokio::time::Instant::now() < *next)
            {
                continue;
            }
            let outcome = match &d.back_to {
                None => "interrupted before any release was live: nothing to converge to".into(),
                Some(tag) => {
                    let req = Request {
                        pipeline: DeployRequest::Rollback {
                            project: d.project.clone(),
                            env: d.env.clone(),
                            to: Some(tag.clone()),
                        },
                        secrets: Default::default(),
                        deployment_json: d.deployment_json.clone(),
                    };
                    let (sink, _events) = ProgressSink::channel();
                    match self.run_locked(store, req, spec_dir, &sink, false).await {
                        Ok(_) => format!("interrupted; converged back to {tag}"),
                        Err(e) => {
                            let now = tokio::time::Instant::now();
                            let (n, next) = attempts.entry(key.clone()).or_insert((0, now));
                            *n += 1;
                            *next = now + RETRY_PAUSE * *n;
                            tracing::warn!(project = %d.project, env = %d.env, attempt = *n,
                                error = %e, "converging an interrupted deploy back failed");
                            if *n < MAX_ATTEMPTS {
                                continue;
                            }
                            format!("interrupted; converging back to {tag} failed: {e}")
                        }
                    }
                }
            };
            tracing::info!(project = %d.project, env = %d.env, %outcome, "interrupted deploy done");
            store
                .write(Command::DeployFinished {
                    project: d.project.clone(),
                    environment: d.env.clone(),
                    outcome,
                    at_ms: now_ms(),
                })
                .await
                .map_err(|e| e.to_string())?;
            attempts.remove(&key);
            handled += 1;
        }
        Ok(handled)
    }

    /// Runs until `shutdown`: while `is_leader()`, a check after every
    /// applied log entry (and every `interval`).
    pub async fn watch_interrupted(
        self: Arc<Self>,
        store: Arc<dyn StateStore>,
        spec_dir: PathBuf,
        mut applied: watch::Receiver<u64>,
        is_leader: impl Fn() -> bool + Send,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let mut attempts = Attempts::new();
        loop {
            if is_leader() {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    done = self.converge_interrupted(store.as_ref(), &spec_dir, &mut attempts) => {
                        if let Err(e) = done {
                            tracing::warn!(error = %e, "checking for interrupted deploys");
                        }
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                changed = applied.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DeployRun;

    fn run(finished: Option<u64>) -> DeployRun {
        DeployRun {
            action: "deploy-uat".into(),
            deployment_json: "{}".into(),
            started_at_ms: 1,
            interrupted: false,
            finished_at_ms: finished,
            outcome: finished.map(|_| "deployed v1".into()),
        }
    }

    #[test]
    fn unfinished_deploys_converge_back_to_the_live_release() {
        let mut state = ClusterState::default();
        assert!(interrupted(&state).is_empty());
        state.deploys.insert("shop/uat".into(), run(None));
        state.deploys.insert("shop/prod".into(), run(Some(5)));
        state.deploys.insert("blog/uat".into(), run(None));
        state
            .live_releases
            .insert("shop/uat".into(), "v1.0.0-uat-20261125-1200".into());
        state
            .live_releases
            .insert("shop/prod".into(), "v1.0.0-uat-20261125-1200".into());
        let found = interrupted(&state);
        assert_eq!(
            found,
            vec![
                Interrupted {
                    project: "blog".into(),
                    env: "uat".into(),
                    action: "deploy-uat".into(),
                    back_to: None,
                    deployment_json: "{}".into(),
                    waiting_for: vec![],
                },
                Interrupted {
                    project: "shop".into(),
                    env: "uat".into(),
                    action: "deploy-uat".into(),
                    back_to: Some("v1.0.0-uat-20261125-1200".into()),
                    deployment_json: "{}".into(),
                    waiting_for: vec![],
                },
            ]
        );
    }

    #[test]
    fn convergence_waits_for_every_droplet_of_the_project() {
        use crate::spec::ServiceKind;
        use crate::state::DropletRecord;
        use crate::topology::ServiceState;
        let mut state = ClusterState::default();
        state.deploys.insert("shop/uat".into(), run(None));
        for service in ["web", "worker"] {
            state.topology.services.insert(
                format!("shop-uat-{service}"),
                ServiceState {
                    project: "shop".into(),
                    environment: "uat".into(),
                    service: service.into(),
                    kind: ServiceKind::Web,
                    port: Some(8100),
                    droplets: vec!["shop-web1".into(), "shop-web2".into()],
                },
            );
        }
        let record = |status| DropletRecord {
            provider_id: Some(1),
            ip: Some("127.0.0.3".into()),
            generation: 1,
            status,
            updated_at_ms: 0,
        };
        state
            .droplets
            .insert("shop-web1".into(), record(DropletStatus::Active));
        state
            .droplets
            .insert("shop-web2".into(), record(DropletStatus::Failed));
        assert_eq!(interrupted(&state)[0].waiting_for, vec!["shop-web2"]);
        state.droplets.get_mut("shop-web2").unwrap().status = DropletStatus::Recovering;
        assert_eq!(interrupted(&state)[0].waiting_for, vec!["shop-web2"]);
        state.droplets.get_mut("shop-web2").unwrap().status = DropletStatus::Active;
        assert!(interrupted(&state)[0].waiting_for.is_empty());
    }
}
