//! The release log of the deploy pipeline: which releases (tag, commit,
//! image id per service) each project+environment ran, the live one, and
//! the last [`KEEP`](super::releases::KEEP) kept. [`ReleaseLog`] is the seam:
//! [`LocalReleaseLog`] keeps it in memory or in a versioned JSON file (the
//! CLI's local cloud); the cluster's log records `Command::RecordRelease`.
//! Also the deploy manifest written beside a reproduced checkout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::releases::{Releases, RollbackError};
use crate::spec::ServiceSpec;

/// One deployed release of a project+environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    pub project: String,
    pub env: String,
    pub tag: String,
    /// Commit the images were built from, when known.
    pub commit: Option<String>,
    /// Image id per service name.
    pub images: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseLogError {
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    #[error("release log {path}: {message}")]
    Store { path: String, message: String },
}

/// Where releases are recorded.
#[async_trait]
pub trait ReleaseLog: Send + Sync {
    /// Records `rec` as the live release of its project+env; returns the
    /// releases pruned from that project+env (never another's).
    async fn record(&self, rec: ReleaseRecord) -> Result<Vec<ReleaseRecord>, ReleaseLogError>;
    /// Marks a kept release live again (a rollback).
    async fn set_live(&self, project: &str, env: &str, tag: &str) -> Result<(), ReleaseLogError>;
    /// Kept releases of project+env, newest first.
    async fn history(
        &self,
        project: &str,
        env: &str,
    ) -> Result<Vec<ReleaseRecord>, ReleaseLogError>;
    async fn live(
        &self,
        project: &str,
        env: &str,
    ) -> Result<Option<ReleaseRecord>, ReleaseLogError>;
    /// The previous (or the named) kept release.
    async fn rollback_target(
        &self,
        project: &str,
        env: &str,
        to: Option<&str>,
    ) -> Result<ReleaseRecord, ReleaseLogError>;
}

/// The persisted book: bookkeeping plus the records (versioned).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Book {
    version: u32,
    releases: Releases,
    /// Keyed by `project/env/tag`.
    records: BTreeMap<String, ReleaseRecord>,
}

const BOOK_VERSION: u32 = 1;

fn key(project: &str, env: &str, tag: &str) -> String {
    format!("{project}/{env}/{tag}")
}

/// A release log in memory, optionally saved to a JSON file after each change.
#[derive(Debug)]
pub struct LocalReleaseLog {
    path: Option<PathBuf>,
    book: Mutex<Book>,
}

impl Default for LocalReleaseLog {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl LocalReleaseLog {
    pub fn in_memory() -> Self {
        LocalReleaseLog {
            path: None,
            book: Mutex::new(Book {
                version: BOOK_VERSION,
                releases: Releases::new(),
                records: BTreeMap::new(),
            }),
        }
    }

    /// Opens (or starts) the log at `path`.
    pub fn open(path: &Path) -> Result<Self, ReleaseLogError> {
        let store = |message: String| ReleaseLogError::Store {
            path: path.display().to_string(),
            message,
        };
        let book = match std::fs::read_to_string(path) {
            Ok(text) => {
                let book: Book = serde_json::from_str(&text).map_err(|e| store(e.to_string()))?;
                if book.version != BOOK_VERSION {
                    return Err(store(format!("unsupported version {}", book.version)));
                }
                book
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::in_memory().into_book(),
            Err(e) => return Err(store(e.to_string())),
        };
        Ok(LocalReleaseLog {
            path: Some(path.to_path_buf()),
            book: Mutex::new(book),
        })
    }

    fn into_book(self) -> Book {
        self.book.into_inner().expect("release book")
    }

    fn change<T>(&self, f: impl FnOnce(&mut Book) -> T) -> Result<T, ReleaseLogError> {
        let (out, text) = {
            let mut book = self.book.lock().expect("release book");
            let out = f(&mut book);
            let text = self
                .path
                .as_ref()
                .map(|_| serde_json::to_string_pretty(&*book).expect("book serializes"));
            (out, text)
        };
        if let (Some(path), Some(text)) = (&self.path, text) {
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| ReleaseLogError::Store {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(out)
    }

    fn read<T>(&self, f: impl FnOnce(&Book) -> T) -> T {
        f(&self.book.lock().expect("release book"))
    }
}

fn records_of(book: &Book, project: &str, env: &str) -> Vec<ReleaseRecord> {
    book.releases
        .history(project, env)
        .iter()
        .filter_map(|r| book.records.get(&key(project, env, &r.tag)).cloned())
        .collect()
}

#[async_trait]
impl ReleaseLog for LocalReleaseLog {
    async fn record(&self, rec: ReleaseRecord) -> Result<Vec<ReleaseRecord>, ReleaseLogError> {
        self.change(|book| {
            let image = serde_json::to_string(&rec.images).expect("images serialize");
            let pruned = book
                .releases
                .record(&rec.project, &rec.env, &rec.tag, &image);
            book.records
                .insert(key(&rec.project, &rec.env, &rec.tag), rec);
            pruned
                .iter()
                .filter_map(|p| book.records.remove(&key(&p.project, &p.env, &p.tag)))
                .collect()
        })
    }

    async fn set_live(&self, project: &str, env: &str, tag: &str) -> Result<(), ReleaseLogError> {
        self.change(|book| book.releases.set_live(project, env, tag))
    }

    async fn history(
        &self,
        project: &str,
        env: &str,
    ) -> Result<Vec<ReleaseRecord>, ReleaseLogError> {
        Ok(self.read(|book| records_of(book, project, env)))
    }

    async fn live(
        &self,
        project: &str,
        env: &str,
    ) -> Result<Option<ReleaseRecord>, ReleaseLogError> {
        Ok(self.read(|book| {
            let live = book.releases.live(project, env)?;
            book.records.get(&key(project, env, &live.tag)).cloned()
        }))
    }

    async fn rollback_target(
        &self,
        project: &str,
        env: &str,
        to: Option<&str>,
    ) -> Result<ReleaseRecord, ReleaseLogError> {
        self.read(|book| {
            let r = book.releases.rollback_target(project, env, to)?;
            Ok(book.records[&key(project, env, &r.tag)].clone())
        })
    }
}

/// Version of the deploy manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// What a release is made of, written beside a reproduced checkout
/// (`infra-deploy.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployManifest {
    pub version: u32,
    pub project: String,
    pub tag: String,
    pub commit: Option<String>,
    /// Image id per service.
    pub images: BTreeMap<String, String>,
    pub services: BTreeMap<String, ServiceSpec>,
}

/// File name of the manifest beside a checkout.
pub const MANIFEST_FILE: &str = "infra-deploy.json";

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(project: &str, env: &str, tag: &str) -> ReleaseRecord {
        ReleaseRecord {
            project: project.into(),
            env: env.into(),
            tag: tag.into(),
            commit: Some("abc".into()),
            images: BTreeMap::from([("web".into(), format!("sha256:{tag}"))]),
        }
    }

    #[tokio::test]
    async fn keeps_three_per_project_env_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("releases.json");
        let log = LocalReleaseLog::open(&path).unwrap();
        log.record(rec("other", "uat", "t0")).await.unwrap();
        let mut pruned = Vec::new();
        for t in ["t1", "t2", "t3", "t4"] {
            pruned.extend(log.record(rec("shop", "uat", t)).await.unwrap());
        }
        assert_eq!(pruned, vec![rec("shop", "uat", "t1")]);
        let again = LocalReleaseLog::open(&path).unwrap();
        let tags: Vec<String> = again
            .history("shop", "uat")
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.tag)
            .collect();
        assert_eq!(tags, ["t4", "t3", "t2"]);
        assert_eq!(again.history("other", "uat").await.unwrap().len(), 1);
        let back = again.rollback_target("shop", "uat", None).await.unwrap();
        assert_eq!(back, rec("shop", "uat", "t3"));
        again.set_live("shop", "uat", "t3").await.unwrap();
        assert_eq!(again.live("shop", "uat").await.unwrap().unwrap().tag, "t3");
        let err = again.rollback_target("shop", "uat", Some("t1")).await;
        assert!(err.unwrap_err().to_string().contains("t1"));
    }
}
