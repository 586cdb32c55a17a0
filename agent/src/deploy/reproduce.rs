//! Reproducing a release: check out the exact commit a deploy tag was built
//! from and write the deploy manifest (project, tag, commit, image ids,
//! services) beside the checkout.

use std::path::{Path, PathBuf};

use super::git::{self, GitError};
use super::release_log::{DeployManifest, MANIFEST_FILE, MANIFEST_VERSION, ReleaseRecord};
use crate::spec::{GitConfig, ProjectDeployment};

#[derive(Debug, thiserror::Error)]
pub enum ReproduceError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("tag {tag} now points at {found}, but the release was built from {recorded}")]
    CommitMoved {
        tag: String,
        recorded: String,
        found: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a reproduction wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reproduced {
    pub checkout: PathBuf,
    pub manifest: PathBuf,
    pub commit: String,
}

/// Clones `rec`'s project at its tag into `<dir>/<project>` and writes
/// `<dir>/infra-deploy.json`.
pub async fn reproduce(
    git_config: &GitConfig,
    rec: &ReleaseRecord,
    deployment: &ProjectDeployment,
    dir: &Path,
) -> Result<Reproduced, ReproduceError> {
    let io = |context: String| move |source| ReproduceError::Io { context, source };
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    let checkout = dir.join(&rec.project);
    git::clone(&git_config.repo_url(&rec.project), &rec.tag, &checkout).await?;
    let commit = git::head(&checkout).await?;
    if let Some(recorded) = rec.commit.as_ref().filter(|c| **c != commit) {
        return Err(ReproduceError::CommitMoved {
            tag: rec.tag.clone(),
            recorded: recorded.clone(),
            found: commit,
        });
    }
    let manifest = DeployManifest {
        version: MANIFEST_VERSION,
        project: rec.project.clone(),
        tag: rec.tag.clone(),
        commit: Some(commit.clone()),
        images: rec.images.clone(),
        services: deployment
            .services
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let path = dir.join(MANIFEST_FILE);
    let text = serde_json::to_string_pretty(&manifest).expect("manifest serializes");
    std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
    Ok(Reproduced {
        checkout,
        manifest: path,
        commit,
    })
}
