//! Step c of the saga, replacing the fenced droplet: rebuild in place from the
//! latest snapshot, or create a new droplet under the saga's fencing-token tag.
//! A resumed step first adopts what an earlier run did (a droplet created under
//! any earlier token, a rebuild action started since the step began).

use super::RecoveryError;
use super::executor::Run;
use super::policy::parse_snapshot_name;
use super::saga::{
    Fence, Progress, ReplaceFacts, Replacement, SourceImage, Step, choose_replacement,
};
use crate::provider::{
    ActionStatus, CreateDroplets, DropletAction, ImageRef, OperationId, ProviderError, SshKeyRef,
};

impl Run<'_> {
    /// The newest snapshot named `<droplet>-<YYYYMMDD-HHMM>`.
    async fn latest_snapshot(&self) -> Result<Option<u64>, ProviderError> {
        let all = self.ctx.provider.list_snapshots().await?;
        Ok(all
            .into_iter()
            .filter(|s| parse_snapshot_name(&s.name).is_some_and(|(d, _)| d == self.saga.droplet))
            .max_by_key(|s| (s.created_at, s.id))
            .map(|s| s.id))
    }

    pub(super) async fn replace(&mut self, resuming: bool) -> Result<(), RecoveryError> {
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
            for d in found.iter().filter(|d| d.name == self.saga.droplet) {
                let actions = self.ctx.provider.list_droplet_actions(d.id).await?;
                let errored = actions
                    .iter()
                    .any(|a| a.kind == "create" && a.status == ActionStatus::Errored);
                if errored {
                    tracing::warn!(
                        droplet_id = d.id,
                        "an earlier create errored; destroying it"
                    );
                    self.destroy(d.id).await?;
                    continue;
                }
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
            if let Err(e) = self.ctx.provider.wait_action(*a).await {
                if matches!(e, ProviderError::ActionErrored { .. }) {
                    // A broken droplet must not be adopted by a resumed step.
                    for d in &created.droplets {
                        tracing::warn!(droplet_id = d.id, "create errored; destroying it");
                        self.destroy(d.id).await?;
                    }
                }
                return Err(e);
            }
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
}

fn image_ref(image: &SourceImage) -> ImageRef {
    match image {
        SourceImage::Snapshot { id } => ImageRef::Id(*id),
        SourceImage::Base { slug } => ImageRef::Slug(slug.clone()),
    }
}
