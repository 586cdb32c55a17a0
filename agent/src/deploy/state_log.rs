//! [`StateReleaseLog`]: the pipeline's [`ReleaseLog`] kept in the
//! replicated cluster state (`Command::RecordRelease` / `SetLiveRelease`),
//! so any later leader knows the releases. Reads replay the state's
//! history into the pure bookkeeping of [`LocalReleaseLog`] (last
//! [`KEEP`](super::releases::KEEP) per project+env, the live one).

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::release_log::{LocalReleaseLog, ReleaseLog, ReleaseLogError, ReleaseRecord};
use crate::orchestrator::StateStore;
use crate::state::{Command, Response, release_key};

/// Releases recorded through Raft.
pub struct StateReleaseLog<'a> {
    pub store: &'a dyn StateStore,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn store_err(message: String) -> ReleaseLogError {
    ReleaseLogError::Store {
        path: "cluster state".into(),
        message,
    }
}

impl StateReleaseLog<'_> {
    /// The bookkeeping of project+env as the state has it.
    async fn replay(&self, project: &str, env: &str) -> Result<LocalReleaseLog, ReleaseLogError> {
        let state = self.store.read().await.map_err(|e| store_err(e.0))?;
        let log = LocalReleaseLog::in_memory();
        let key = release_key(project, env);
        for r in state.releases.get(&key).into_iter().flatten() {
            log.record(ReleaseRecord {
                project: project.into(),
                env: env.into(),
                tag: r.tag.clone(),
                commit: r.commit.clone(),
                images: r.images.clone(),
            })
            .await?;
        }
        if let Some(tag) = state.live_releases.get(&key) {
            log.set_live(project, env, tag).await?;
        }
        Ok(log)
    }

    async fn commit(&self, command: Command) -> Result<(), ReleaseLogError> {
        match self.store.write(command).await {
            Ok(Response::Rejected { reason }) => Err(store_err(reason)),
            Ok(_) => Ok(()),
            Err(e) => Err(store_err(e.0)),
        }
    }
}

#[async_trait]
impl ReleaseLog for StateReleaseLog<'_> {
    async fn record(&self, rec: ReleaseRecord) -> Result<Vec<ReleaseRecord>, ReleaseLogError> {
        let pruned = self
            .replay(&rec.project, &rec.env)
            .await?
            .record(rec.clone())
            .await?;
        self.commit(Command::RecordRelease {
            project: rec.project,
            environment: rec.env,
            tag: rec.tag,
            images: rec.images,
            commit: rec.commit,
            at_ms: now_ms(),
        })
        .await?;
        Ok(pruned)
    }

    async fn set_live(&self, project: &str, env: &str, tag: &str) -> Result<(), ReleaseLogError> {
        self.commit(Command::SetLiveRelease {
            project: project.into(),
            environment: env.into(),
            tag: tag.into(),
            at_ms: now_ms(),
        })
        .await
    }

    async fn history(
        &self,
        project: &str,
        env: &str,
    ) -> Result<Vec<ReleaseRecord>, ReleaseLogError> {
        self.replay(project, env).await?.history(project, env).await
    }

    async fn live(
        &self,
        project: &str,
        env: &str,
    ) -> Result<Option<ReleaseRecord>, ReleaseLogError> {
        self.replay(project, env).await?.live(project, env).await
    }

    async fn rollback_target(
        &self,
        project: &str,
        env: &str,
        to: Option<&str>,
    ) -> Result<ReleaseRecord, ReleaseLogError> {
        self.replay(project, env)
            .await?
            .rollback_target(project, env, to)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::orchestrator::MemoryStore;

    fn rec(env: &str, tag: &str) -> ReleaseRecord {
        ReleaseRecord {
            project: "shop".into(),
            env: env.into(),
            tag: tag.into(),
            commit: Some(format!("c-{tag}")),
            images: BTreeMap::from([("web".into(), format!("sha256:{tag}"))]),
        }
    }

    #[tokio::test]
    async fn keeps_three_survives_a_new_reader_and_rolls_back() {
        let store = MemoryStore::default();
        let log = StateReleaseLog { store: &store };
        let mut pruned = Vec::new();
        for t in ["t1", "t2", "t3", "t4"] {
            pruned.extend(log.record(rec("uat", t)).await.unwrap());
        }
        log.record(rec("prod", "t4")).await.unwrap();
        assert_eq!(pruned, vec![rec("uat", "t1")]);
        // Another leader reading the same state sees the same book.
        let other = StateReleaseLog { store: &store };
        let tags: Vec<String> = other
            .history("shop", "uat")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.tag)
            .collect();
        assert_eq!(tags, ["t4", "t3", "t2"]);
        let back = other.rollback_target("shop", "uat", None).await.unwrap();
        assert_eq!(back, rec("uat", "t3"));
        other.set_live("shop", "uat", "t3").await.unwrap();
        assert_eq!(log.live("shop", "uat").await.unwrap().unwrap().tag, "t3");
        assert_eq!(
            store.snapshot().current_release("shop", "uat").unwrap().tag,
            "t3"
        );
        assert_eq!(
            log.live("shop", "prod").await.unwrap(),
            Some(rec("prod", "t4"))
        );
        let err = log.set_live("shop", "uat", "nope").await.unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
