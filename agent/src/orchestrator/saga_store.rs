//! The recovery saga's I/O backed by the replicated state: the saga log
//! (`SaveSaga` + the matching `RecoveryStep` phases) and the cluster effects.

use std::net::Ipv4Addr;
use std::sync::Arc;

use async_trait::async_trait;

use super::StateStore;
use super::deploy::PlaceServices;
use crate::recovery::{
    ClusterEffects, EffectError, Progress as StepProgress, SagaLog, SagaLogError, SagaRecord,
    SourceImage, Step,
};
use crate::state::{Command, FencingToken, RecoveryPhase, Response};

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

fn state_token(record: &SagaRecord) -> FencingToken {
    FencingToken {
        term: record.token.term,
        index: record.token.index,
    }
}

/// The state-machine phase a committed saga record stands for, if any.
pub fn phase_of(record: &SagaRecord) -> Option<RecoveryPhase> {
    match record.at? {
        (Step::Fence, StepProgress::Finished) => Some(RecoveryPhase::Fenced),
        (Step::Replace, StepProgress::Started) => {
            let snapshot_id = match record.replacement.as_ref()?.image() {
                SourceImage::Snapshot { id } => id.to_string(),
                SourceImage::Base { slug } => slug.clone(),
            };
            Some(RecoveryPhase::Restoring { snapshot_id })
        }
        // A rebuild in place learns the address only once the droplet is
        // active again (end of AwaitJoin).
        (Step::Replace | Step::AwaitJoin, StepProgress::Finished) => {
            Some(RecoveryPhase::Restored {
                provider_id: record.new_droplet_id?,
                ip: record.new_ip?.to_string(),
            })
        }
        (Step::Notify, StepProgress::Finished) => Some(RecoveryPhase::Done),
        _ => None,
    }
}

/// A [`SagaLog`] that commits each record through the cluster state.
pub struct StateSagaLog {
    pub store: Arc<dyn StateStore>,
}

impl StateSagaLog {
    async fn stale_or_unavailable(&self, record: &SagaRecord, reason: String) -> SagaLogError {
        let offered = record.token;
        match self.store.read().await {
            Ok(state) => match state.recoveries.get(&record.droplet) {
                Some(r) if r.fencing != state_token(record) => SagaLogError::Stale {
                    droplet: record.droplet.clone(),
                    offered,
                    current: crate::recovery::FencingToken {
                        term: r.fencing.term,
                        index: r.fencing.index,
                    },
                },
                _ => SagaLogError::Unavailable(reason),
            },
            Err(e) => SagaLogError::Unavailable(e.to_string()),
        }
    }
}

#[async_trait]
impl SagaLog for StateSagaLog {
    async fn commit(&self, record: &SagaRecord) -> Result<(), SagaLogError> {
        let json = serde_json::to_string(record)
            .map_err(|e| SagaLogError::Unavailable(format!("cannot encode saga: {e}")))?;
        let save = Command::SaveSaga {
            name: record.droplet.clone(),
            fencing: state_token(record),
            record: json,
            at_ms: now_ms(),
        };
        match self.store.write(save).await {
            Ok(Response::Rejected { reason }) => {
                return Err(self.stale_or_unavailable(record, reason).await);
            }
            Ok(_) => {}
            Err(e) => return Err(SagaLogError::Unavailable(e.to_string())),
        }
        let Some(phase) = phase_of(record) else {
            return Ok(());
        };
        let step = Command::RecoveryStep {
            name: record.droplet.clone(),
            fencing: state_token(record),
            phase,
            at_ms: now_ms(),
        };
        match self.store.write(step).await {
            Ok(Response::Rejected { reason }) => {
                Err(self.stale_or_unavailable(record, reason).await)
            }
            Ok(_) => Ok(()),
            Err(e) => Err(SagaLogError::Unavailable(e.to_string())),
        }
    }
}

/// The saga's effects as audit events of the state: load-balancer targets
/// follow the droplet records (a recovering droplet is not a target; it is
/// again once its recovery is `done`), which the saga log's phases update.
/// Services are placed by `placer` (the leader's deploys: the droplet is
/// converged to the live releases); without one, only recorded.
pub struct StateEffects {
    pub store: Arc<dyn StateStore>,
    pub placer: Option<Arc<dyn PlaceServices>>,
}

impl StateEffects {
    async fn event(&self, message: String) -> Result<(), EffectError> {
        self.store
            .write(Command::RecordEvent {
                message,
                at_ms: now_ms(),
            })
            .await
            .map(|_| ())
            .map_err(|e| EffectError(e.to_string()))
    }
}

#[async_trait]
impl ClusterEffects for StateEffects {
    async fn remove_target(&self, droplet: &str) -> Result<(), EffectError> {
        self.event(format!("{droplet} removed from load-balancer targets"))
            .await
    }

    async fn forget_incarnation(&self, droplet: &str) -> Result<(), EffectError> {
        self.store
            .forget_member(droplet)
            .await
            .map_err(|e| EffectError(e.to_string()))
    }

    async fn place_services(
        &self,
        droplet: &str,
        generation: u64,
        redeploy: bool,
    ) -> Result<(), EffectError> {
        let how = if redeploy {
            "redeployed"
        } else {
            "restored from snapshot"
        };
        let placed = match &self.placer {
            Some(placer) => {
                let done = placer
                    .place(self.store.as_ref(), droplet)
                    .await
                    .map_err(|e| EffectError(format!("placing the services of {droplet}: {e}")))?;
                format!(" at the live releases: {done}")
            }
            None => String::new(),
        };
        self.event(format!(
            "services of {droplet} generation {generation} {how}{placed}"
        ))
        .await
    }

    async fn add_target(&self, droplet: &str, ip: Option<Ipv4Addr>) -> Result<(), EffectError> {
        let at = ip.map(|i| format!(" at {i}")).unwrap_or_default();
        self.event(format!("{droplet}{at} added to load-balancer targets"))
            .await
    }
}
