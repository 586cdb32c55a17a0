//! Release bookkeeping (pure): the last [`KEEP`] releases of each
//! project+environment, which one is live, and what a rollback goes back to.

use serde::{Deserialize, Serialize};

/// Releases kept per project+environment.
pub const KEEP: usize = 3;

/// One deployed release of a project+environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub project: String,
    pub env: String,
    /// The deploy tag (`v1.2.0-uat-20261125-0907`).
    pub tag: String,
    /// The image id the release runs.
    pub image: String,
    /// Recording order, increasing across all releases.
    pub seq: u64,
}

/// Why no rollback target exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("{project}/{env} has no releases")]
    NoReleases { project: String, env: String },
    #[error("{project}/{env} has no release older than the live {live}")]
    NoPrevious {
        project: String,
        env: String,
        live: String,
    },
    #[error("{project}/{env} has no kept release `{tag}` (kept: {})", kept.join(", "))]
    UnknownTag {
        project: String,
        env: String,
        tag: String,
        kept: Vec<String>,
    },
}

/// The release history of every project+environment (persisted; versioned).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Releases {
    pub version: u32,
    next_seq: u64,
    entries: Vec<Release>,
    /// (project, env, live tag).
    live: Vec<(String, String, String)>,
}

impl Releases {
    pub const FORMAT_VERSION: u32 = 1;

    pub fn new() -> Self {
        Releases {
            version: Self::FORMAT_VERSION,
            ..Default::default()
        }
    }

    /// Records a deployed release as live; returns the releases pruned from
    /// the same project+env (never another one's, never the live one).
    pub fn record(&mut self, project: &str, env: &str, tag: &str, image: &str) -> Vec<Release> {
        self.next_seq += 1;
        self.entries
            .retain(|r| !(r.project == project && r.env == env && r.tag == tag));
        self.entries.push(Release {
            project: project.into(),
            env: env.into(),
            tag: tag.into(),
            image: image.into(),
            seq: self.next_seq,
        });
        self.set_live(project, env, tag);
        let keep: Vec<u64> = self
            .history(project, env)
            .iter()
            .take(KEEP)
            .map(|r| r.seq)
            .collect();
        let mut pruned = Vec::new();
        self.entries.retain(|r| {
            let mine = r.project == project && r.env == env;
            if mine && !keep.contains(&r.seq) && r.tag != tag {
                pruned.push(r.clone());
                false
            } else {
                true
            }
        });
        pruned
    }

    /// Kept releases of project+env, newest first.
    pub fn history(&self, project: &str, env: &str) -> Vec<&Release> {
        let mut v: Vec<&Release> = self
            .entries
            .iter()
            .filter(|r| r.project == project && r.env == env)
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.seq));
        v
    }

    /// The live release of project+env.
    pub fn live(&self, project: &str, env: &str) -> Option<&Release> {
        let (_, _, tag) = self
            .live
            .iter()
            .find(|(p, e, _)| p == project && e == env)?;
        self.entries
            .iter()
            .find(|r| r.project == project && r.env == env && &r.tag == tag)
    }

    /// What a rollback goes to: `to` if given (a kept release), otherwise
    /// the newest release older than the live one.
    pub fn rollback_target(
        &self,
        project: &str,
        env: &str,
        to: Option<&str>,
    ) -> Result<&Release, RollbackError> {
        let history = self.history(project, env);
        let Some(live) = self.live(project, env) else {
            return Err(RollbackError::NoReleases {
                project: project.into(),
                env: env.into(),
            });
        };
        match to {
            Some(tag) => history
                .iter()
                .copied()
                .find(|r| r.tag == tag)
                .ok_or_else(|| RollbackError::UnknownTag {
                    project: project.into(),
                    env: env.into(),
                    tag: tag.into(),
                    kept: history.iter().map(|r| r.tag.clone()).collect(),
                }),
            None => history
                .iter()
                .copied()
                .find(|r| r.seq < live.seq)
                .ok_or_else(|| RollbackError::NoPrevious {
                    project: project.into(),
                    env: env.into(),
                    live: live.tag.clone(),
                }),
        }
    }

    /// Marks a kept release live again (after a rollback).
    pub fn set_live(&mut self, project: &str, env: &str, tag: &str) {
        self.live.retain(|(p, e, _)| !(p == project && e == env));
        self.live.push((project.into(), env.into(), tag.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(v: &[&Release]) -> Vec<String> {
        v.iter().map(|r| r.tag.clone()).collect()
    }

    #[test]
    fn keeps_last_three_per_project_env() {
        let mut r = Releases::new();
        r.record("shop", "uat", "t0", "img-other");
        for i in 1..=5 {
            let pruned = r.record("shop", "prod", &format!("t{i}"), &format!("img{i}"));
            let want: Vec<String> = if i > KEEP {
                vec![format!("t{}", i - KEEP)]
            } else {
                vec![]
            };
            assert_eq!(
                pruned.iter().map(|p| p.tag.clone()).collect::<Vec<_>>(),
                want
            );
        }
        assert_eq!(tags(&r.history("shop", "prod")), ["t5", "t4", "t3"]);
        // Another env of the same project is untouched.
        assert_eq!(tags(&r.history("shop", "uat")), ["t0"]);
        assert_eq!(r.live("shop", "prod").unwrap().image, "img5");
    }

    #[test]
    fn rollback_goes_to_previous_then_older() {
        let mut r = Releases::new();
        for t in ["a", "b", "c"] {
            r.record("p", "prod", t, t);
        }
        assert_eq!(r.rollback_target("p", "prod", None).unwrap().tag, "b");
        r.set_live("p", "prod", "b");
        assert_eq!(r.rollback_target("p", "prod", None).unwrap().tag, "a");
        r.set_live("p", "prod", "a");
        let err = r.rollback_target("p", "prod", None).unwrap_err();
        assert!(matches!(err, RollbackError::NoPrevious { .. }), "{err}");
        assert_eq!(r.rollback_target("p", "prod", Some("c")).unwrap().tag, "c");
        let err = r.rollback_target("p", "prod", Some("zz")).unwrap_err();
        assert!(err.to_string().contains("kept: c, b, a"), "{err}");
        assert!(matches!(
            r.rollback_target("p", "uat", None),
            Err(RollbackError::NoReleases { .. })
        ));
    }

    #[test]
    fn new_deploy_after_rollback_prunes_oldest_not_live() {
        let mut r = Releases::new();
        for t in ["a", "b", "c"] {
            r.record("p", "prod", t, t);
        }
        r.set_live("p", "prod", "a");
        let pruned = r.record("p", "prod", "d", "d");
        assert_eq!(pruned.len(), 1);
        assert_eq!(pruned[0].tag, "a");
        assert_eq!(tags(&r.history("p", "prod")), ["d", "c", "b"]);
        assert_eq!(r.rollback_target("p", "prod", None).unwrap().tag, "c");
    }

    #[test]
    fn serde_round_trip_keeps_version() {
        let mut r = Releases::new();
        r.record("p", "prod", "a", "img");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"version\":1"));
        let back: Releases = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
