//! The saga executor: runs the steps `next_step` picks against the cloud
//! provider and the cluster state, committing the record before and after
//! each step. A resumed step first looks for what it already did (a droplet
//! created under an earlier fencing token, a rebuild action already started).

use tokio::time::Instant;

use super::policy::{Admission, AdmissionFacts, RecoveryPolicy, admit, parse_snapshot_name};
use super::saga::{
    Decision, Fence, FenceAction, FenceFacts, Progress, ReplaceFacts, Replacement, SAGA_VERSION,
    SagaOutcome, SagaRecord, SourceImage, Step, choose_replacement, fence_action, next_step,
    old_needs_destroy,
};
use super::{Notice, RecoveryError, SagaCtx};
use crate::provider::{
    CreateDroplets, DropletAction, DropletStatus, ImageRef, OperationId, ProviderError, SshKeyRef,
};

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

struct Run<'a> {
    saga: SagaRecord,
    ctx: SagaCtx<'a>,
    tag_created: bool,
}

impl Run<'_> {
    fn provider_err(&self, step: Step) -> impl Fn(ProviderError) -> RecoveryError + use<> {
        let droplet = self.saga.droplet.clone();
        move |source| RecoveryError::Provider {
            droplet: droplet.clone(),
            step,
            source,
        }
    }

    fn inconsistent(&self, step: Step, reason: &str) -> RecoveryError {
        RecoveryError::Inconsistent {
            droplet: self.saga.droplet.clone(),
            step,
            reason: reason.to_string(),
        }
    }

    async fn commit(&mut self, step: Step, progress: Progress) -> Result<(), RecoveryError> {
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
            Step::Unroute => fx
                .remove_target(&self.saga.droplet)
                .await
                .map_err(effect_err)?,
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

    async fn act(&mut self, droplet_id: u64, action: DropletAction) -> Result<(), ProviderError> {
        self.tag(droplet_id).await?;
        let p = self.ctx.provider;
        let a = p.droplet_action(droplet_id, &action).await?;
        p.wait_action(a.id).await.map(|_| ())
    }

    async fn destroy(&self, droplet_id: u64) -> Result<(), ProviderError> {
        match self.ctx.provider.delete_droplet(droplet_id).await {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// `Some(is_off)` if the droplet exists.
    async fn observe_off(&self, droplet_id: u64) -> Result<Option<bool>, ProviderError> {
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

    /// The newest snapshot named `<droplet>-<YYYYMMDD-HHMM>`.
    async fn latest_snapshot(&self) -> Result<Option<u64>, ProviderError> {
        let all = self.ctx.provider.list_snapshots().await?;
        Ok(all
            .into_iter()
            .filter(|s| parse_snapshot_name(&s.name).is_some_and(|(d, _)| d == self.saga.droplet))
            .max_by_key(|s| (s.created_at, s.id))
            .map(|s| s.id))
    }

    async fn replace(&mut self, resuming: bool) -> Result<(), RecoveryError> {
        let err = self.provider_err(Step::Replace);
        let plan = match (resuming, self.saga.replacement.clone()) {
            (true, Some(plan)) => plan,
            _ => {
                let old_droplet = match (self.saga.fence, self.saga.old_droplet_id) {
                    (Some(Fence::PoweredOff), Some(id)) => {
                        self.observe_off(id).await.map_err(&err)?.map(|_| id)
                    }
                    _ => None,
                };
                let facts = ReplaceFacts {
                    old_droplet,
                    latest_snapshot: self.latest_snapshot().await.map_err(&err)?,
                    rebuild_failed: false,
                };
                let plan = choose_replacement(facts, &self.saga.template.base_image);
                self.saga.replacement = Some(plan.clone());
                self.commit(Step::Replace, Progress::Started).await?;
                plan
            }
        };
        let (droplet_id, image) = match plan {
            Replacement::Create { image } => {
                let found = if resuming {
                    self.find_created().await.map_err(&err)?
                } else {
                    None
                };
                let id = match found {
                    Some(id) => id,
                    None => self.create(&image).await.map_err(&err)?,
                };
                self.saga.new_droplet_id = Some(id);
                return Ok(());
            }
            Replacement::RebuildInPlace { droplet_id, image } => (droplet_id, image),
        };
        let rebuilt = match self
            .find_rebuild(droplet_id, resuming)
            .await
            .map_err(&err)?
        {
            Some(action) => self.ctx.provider.wait_action(action).await.map(|_| ()),
            None => {
                let image = image_ref(&image);
                self.act(droplet_id, DropletAction::Rebuild { image }).await
            }
        };
        match rebuilt {
            Ok(()) => {
                self.saga.new_droplet_id = Some(droplet_id);
                Ok(())
            }
            Err(e @ ProviderError::ActionErrored { .. }) => {
                tracing::warn!(droplet_id, error = %e, "rebuild failed; creating a new droplet");
                let facts = ReplaceFacts {
                    old_droplet: Some(droplet_id),
                    latest_snapshot: match &image {
                        SourceImage::Snapshot { id } => Some(*id),
                        SourceImage::Base { .. } => None,
                    },
                    rebuild_failed: true,
                };
                let plan = choose_replacement(facts, &self.saga.template.base_image);
                self.saga.replacement = Some(plan.clone());
                self.commit(Step::Replace, Progress::Started).await?;
                let id = self.create(plan.image()).await.map_err(&err)?;
                self.saga.new_droplet_id = Some(id);
                Ok(())
            }
            Err(e) => Err(err(e)),
        }
    }

    /// A droplet this saga created under any of its tokens (a create is never repeated).
    async fn find_created(&self) -> Result<Option<u64>, ProviderError> {
        for token in self.saga.all_tokens() {
            let tag = OperationId::new(token.operation_id())?.tag();
            let found = self.ctx.provider.list_droplets(Some(&tag)).await?;
            if let Some(d) = found.iter().find(|d| d.name == self.saga.droplet) {
                tracing::info!(droplet_id = d.id, %tag, "adopting the droplet an earlier run created");
                return Ok(Some(d.id));
            }
        }
        Ok(None)
    }

    /// A rebuild of the droplet started by this step (only when resuming).
    async fn find_rebuild(
        &self,
        droplet_id: u64,
        resuming: bool,
    ) -> Result<Option<u64>, ProviderError> {
        let Some(since) = self.saga.step_started_at.filter(|_| resuming) else {
            return Ok(None);
        };
        let skew = chrono::Duration::from_std(self.ctx.timing.skew).unwrap_or_default();
        let actions = self.ctx.provider.list_droplet_actions(droplet_id).await?;
        Ok(actions
            .into_iter()
            .filter(|a| a.kind == "rebuild" && a.started_at.is_some_and(|t| t >= since - skew))
            .map(|a| a.id)
            .max())
    }

    async fn create(&mut self, image: &SourceImage) -> Result<u64, ProviderError> {
        let t = &self.saga.template;
        let mut tags = t.tags.clone();
        tags.push(self.saga.token.tag());
        let req = CreateDroplets {
            names: vec![self.saga.droplet.clone()],
            region: t.region.clone(),
            size: t.size.clone(),
            image: image_ref(image),
            ssh_keys: t.ssh_key_ids.iter().map(|i| SshKeyRef::Id(*i)).collect(),
            tags,
            user_data: t.user_data.clone(),
            vpc_uuid: t.vpc_uuid.clone(),
            ipv6: false,
            monitoring: true,
            operation_id: Some(OperationId::new(self.saga.token.operation_id())?),
        };
        let created = self.ctx.provider.create_droplets(&req).await?;
        for a in &created.action_ids {
            self.ctx.provider.wait_action(*a).await?;
        }
        let d = created
            .droplets
            .first()
            .ok_or_else(|| ProviderError::Decode {
                method: "POST".into(),
                path: "/v2/droplets".into(),
                field: "droplet".into(),
                message: "the create answer holds no droplet".into(),
            })?;
        Ok(d.id)
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

fn image_ref(image: &SourceImage) -> ImageRef {
    match image {
        SourceImage::Snapshot { id } => ImageRef::Id(*id),
        SourceImage::Base { slug } => ImageRef::Slug(slug.clone()),
    }
}
