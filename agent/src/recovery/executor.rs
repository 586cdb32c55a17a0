//! The saga executor: runs the steps `next_step` picks against the cloud
//! provider and the cluster state, committing the record before and after
//! each step. A resumed step first looks for what it already did (a droplet
//! created under an earlier fencing token, a rebuild action already started).

use tokio::time::Instant;

use super::policy::{Admission, AdmissionFacts, RecoveryPolicy, admit};
use super::saga::{
    Decision, Fence, FenceAction, FenceFacts, Progress, Replacement, SAGA_VERSION, SagaOutcome,
    SagaRecord, Step, fence_action, next_step, old_needs_destroy,
};
use super::{Notice, RecoveryError, SagaCtx};
use crate::provider::{DropletAction, DropletStatus, ProviderError};

/// The result of [`admit_and_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    Recovered(SagaOutcome),
    /// The saga did not start; flapping and small-cluster refusals were notified.
    Refused(Admission),
}

/// Checks the admission policy, then runs the saga. Nothing is recovered without a
/// quorum-confirmed failure or an operator's request.
pub async fn admit_and_run(
    policy: &RecoveryPolicy,
    facts: &AdmissionFacts<'_>,
    saga: SagaRecord,
    ctx: SagaCtx<'_>,
) -> Result<RunResult, RecoveryError> {
    let verdict = admit(policy, facts);
    let notice = match &verdict {
        Admission::Start => return run_saga(saga, ctx).await.map(RunResult::Recovered),
        Admission::Flapping { count } => Some(Notice::Flapping {
            droplet: saga.droplet.clone(),
            count: *count,
        }),
        Admission::ManualOnly { cluster_size } => Some(Notice::ManualRecoveryNeeded {
            droplet: saga.droplet.clone(),
            cluster_size: *cluster_size,
        }),
        Admission::NotConfirmed | Admission::AlreadyRunning => None,
    };
    tracing::warn!(droplet = %saga.droplet, ?verdict, "recovery refused");
    if let Some(n) = notice {
        ctx.notifier.notify(&n).await;
    }
    Ok(RunResult::Refused(verdict))
}

/// Runs (or resumes) a saga to its end. To resume after a leader change, call
/// [`SagaRecord::take_over`] with the new leader's token first.
pub async fn run_saga(saga: SagaRecord, ctx: SagaCtx<'_>) -> Result<SagaOutcome, RecoveryError> {
    if saga.version != SAGA_VERSION {
        return Err(RecoveryError::Version {
            droplet: saga.droplet,
            version: saga.version,
        });
    }
    let mut run = Run {
        saga,
        ctx,
        tag_created: false,
    };
    let started = Instant::now();
    loop {
        let (step, resuming) = match next_step(&run.saga) {
            Decision::Done => break,
            Decision::Start(step) => (step, false),
            Decision::Resume(step) => (step, true),
        };
        tracing::info!(droplet = %run.saga.droplet, ?step, resuming, token = %run.saga.token, "saga step");
        run.step(step, resuming).await?;
    }
    tracing::info!(droplet = %run.saga.droplet, elapsed = ?started.elapsed(), "saga finished");
    run.saga
        .outcome()
        .ok_or_else(|| run.inconsistent(Step::Notify, "finished without a replacement"))
}

pub(super) struct Run<'a> {
    pub(super) saga: SagaRecord,
    pub(super) ctx: SagaCtx<'a>,
    tag_created: bool,
}

impl Run<'_> {
    pub(super) fn provider_err(
        &self,
        step: Step,
    ) -> impl Fn(ProviderError) -> RecoveryError + use<> {
        let droplet = self.saga.droplet.clone();
        move |source| RecoveryError::Provider {
            droplet: droplet.clone(),
            step,
            source,
        }
    }

    pub(super) fn inconsistent(&self, step: Step, reason: &str) -> RecoveryError {
        RecoveryError::Inconsistent {
            droplet: self.saga.droplet.clone(),
            step,
            reason: reason.to_string(),
        }
    }

    pub(super) async fn commit(
        &mut self,
        step: Step,
        progress: Progress,
    ) -> Result<(), RecoveryError> {
        self.saga.at = Some((step, progress));
        if progress == Progress::Started {
            self.saga.step_started_at = Some(self.ctx.clock.now());
        }
        self.ctx
            .log
            .commit(&self.saga)
            .await
            .map_err(|source| RecoveryError::Log {
                droplet: self.saga.droplet.clone(),
                step,
                source,
            })
    }

    async fn step(&mut self, step: Step, resuming: bool) -> Result<(), RecoveryError> {
        if !resuming && step != Step::Replace {
            // Step c records its plan with the start, after reading the facts.
            self.commit(step, Progress::Started).await?;
        }
        let fx = self.ctx.effects;
        let effect_err = |source| RecoveryError::Effect {
            droplet: self.saga.droplet.clone(),
            step,
            source,
        };
        match step {
            Step::Fence => self.saga.fence = Some(self.fence().await?),
            Step::Unroute => {
                fx.remove_target(&self.saga.droplet)
                    .await
                    .map_err(effect_err)?;
                fx.forget_incarnation(&self.saga.droplet)
                    .await
                    .map_err(effect_err)?
            }
            Step::Replace => self.replace(resuming).await?,
            Step::AwaitJoin => self.await_join().await?,
            Step::Place => {
                let redeploy = self
                    .saga
                    .replacement
                    .as_ref()
                    .is_some_and(Replacement::needs_redeploy);
                fx.place_services(&self.saga.droplet, self.saga.new_generation(), redeploy)
                    .await
                    .map_err(effect_err)?
            }
            Step::Route => fx
                .add_target(&self.saga.droplet, self.saga.new_ip)
                .await
                .map_err(effect_err)?,
            Step::DestroyOld => {
                if let Some(old) = old_needs_destroy(&self.saga) {
                    self.destroy(old).await.map_err(self.provider_err(step))?;
                    self.saga.old_destroyed = true;
                }
            }
            Step::Notify => {
                let outcome = self
                    .saga
                    .outcome()
                    .ok_or_else(|| self.inconsistent(step, "no replacement recorded"))?;
                self.ctx.notifier.notify(&Notice::Recovered(outcome)).await;
            }
        }
        self.commit(step, Progress::Finished).await
    }

    /// Tags the droplet with the saga's fencing token before acting on it.
    async fn tag(&mut self, droplet_id: u64) -> Result<(), ProviderError> {
        let tag = self.saga.token.tag();
        if !self.tag_created {
            self.ctx.provider.create_tag(&tag).await?;
            self.tag_created = true;
        }
        self.ctx.provider.tag_droplets(&tag, &[droplet_id]).await
    }

    pub(super) async fn act(
        &mut self,
        droplet_id: u64,
        action: DropletAction,
    ) -> Result<(), ProviderError> {
        self.tag(droplet_id).await?;
        let p = self.ctx.provider;
        let a = p.droplet_action(droplet_id, &action).await?;
        p.wait_action(a.id).await.map(|_| ())
    }

    pub(super) async fn destroy(&self, droplet_id: u64) -> Result<(), ProviderError> {
        match self.ctx.provider.delete_droplet(droplet_id).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// `Some(is_off)` if the droplet exists.
    pub(super) async fn observe_off(&self, droplet_id: u64) -> Result<Option<bool>, ProviderError> {
        match self.ctx.provider.get_droplet(droplet_id).await {
            Ok(d) => Ok(Some(d.status == DropletStatus::Off)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn fence(&mut self) -> Result<Fence, RecoveryError> {
        let err = self.provider_err(Step::Fence);
        let Some(id) = self.saga.old_droplet_id else {
            return Ok(Fence::AlreadyGone);
        };
        let mut facts = FenceFacts {
            droplet_off: self.observe_off(id).await.map_err(&err)?,
            power_off_failed: false,
        };
        // At most: power off, then destroy.
        for _ in 0..3 {
            match fence_action(facts) {
                FenceAction::Done(f) => return Ok(f),
                FenceAction::PowerOff => match self.act(id, DropletAction::PowerOff).await {
                    Ok(()) => return Ok(Fence::PoweredOff),
                    Err(e) => {
                        tracing::warn!(droplet_id = id, error = %e, "power off failed; destroying");
                        facts.power_off_failed = true;
                    }
                },
                FenceAction::Destroy => {
                    self.destroy(id).await.map_err(&err)?;
                    return Ok(Fence::Destroyed);
                }
            }
        }
        Err(self.inconsistent(Step::Fence, "fencing did not converge"))
    }

    async fn await_join(&mut self) -> Result<(), RecoveryError> {
        let step = Step::AwaitJoin;
        let id = self
            .saga
            .new_droplet_id
            .ok_or_else(|| self.inconsistent(step, "no replacement droplet"))?;
        let timing = self.ctx.timing;
        let timeout = |what: String, after| RecoveryError::Timeout {
            droplet: self.saga.droplet.clone(),
            step,
            what,
            after,
        };
        let start = Instant::now();
        loop {
            let d = self
                .ctx
                .provider
                .get_droplet(id)
                .await
                .map_err(self.provider_err(step))?;
            if d.status == DropletStatus::Active {
                self.saga.new_ip = d.public_ipv4;
                break;
            }
            if start.elapsed() >= timing.active_timeout {
                return Err(timeout(
                    format!("droplet {id} to be active"),
                    start.elapsed(),
                ));
            }
            tokio::time::sleep(timing.poll).await;
        }
        let start = Instant::now();
        let generation = self.saga.new_generation();
        while !self.ctx.joins.joined(&self.saga.droplet, generation).await {
            if start.elapsed() >= timing.join_timeout {
                let what = format!(
                    "the agent of {} generation {generation} to join",
                    self.saga.droplet
                );
                return Err(timeout(what, start.elapsed()));
            }
            tokio::time::sleep(timing.poll).await;
        }
        Ok(())
    }
}
