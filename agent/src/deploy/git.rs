//! Git through the `git` CLI: clone a project at a branch, read its tags,
//! write a deploy tag (and push it when the origin accepts it).

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// A failed git command (URLs have their credentials masked).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("`git {args}` failed ({status}): {stderr}")]
    Failed {
        args: String,
        status: String,
        stderr: String,
    },
}

/// Whether a deploy tag reached the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagWritten {
    /// Tagged in the clone and pushed to `origin`.
    Pushed,
    /// Tagged in the clone only; the push failed for this reason.
    LocalOnly { reason: String },
}

/// Masks `user:password@` in URLs so tokens never reach logs or errors.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(char::is_whitespace) {
        match word.find("://") {
            Some(scheme_end) => {
                let rest = &word[scheme_end + 3..];
                let host_end = rest.find('/').unwrap_or(rest.len());
                match rest[..host_end].rfind('@') {
                    Some(at) => {
                        out.push_str(&word[..scheme_end + 3]);
                        out.push_str("***");
                        out.push_str(&rest[at..]);
                    }
                    None => out.push_str(word),
                }
            }
            None => out.push_str(word),
        }
    }
    out
}

async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = cmd.output().await.map_err(GitError::Spawn)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(GitError::Failed {
            args: redact_url(&args.join(" ")),
            status: out.status.to_string(),
            stderr: redact_url(String::from_utf8_lossy(&out.stderr).trim()),
        })
    }
}

/// Clones `url` (anything git accepts, including a local path) at `branch`
/// into `dest`, with all tags.
pub async fn clone(url: &str, branch: &str, dest: &Path) -> Result<(), GitError> {
    let dest = dest.to_string_lossy();
    git(
        None,
        &["clone", "--quiet", "--branch", branch, "--", url, &dest],
    )
    .await?;
    Ok(())
}

/// Clones project `project` from `git_config.url_pattern` at `branch`.
pub async fn clone_project(
    git_config: &crate::spec::GitConfig,
    project: &str,
    branch: &str,
    dest: &Path,
) -> Result<(), GitError> {
    clone(&git_config.repo_url(project), branch, dest).await
}

/// All tag names of the repository at `repo`.
pub async fn tags(repo: &Path) -> Result<Vec<String>, GitError> {
    let out = git(Some(repo), &["tag", "--list"]).await?;
    Ok(out.lines().map(str::to_string).collect())
}

/// The commit checked out at `repo`.
pub async fn head(repo: &Path) -> Result<String, GitError> {
    Ok(git(Some(repo), &["rev-parse", "HEAD"])
        .await?
        .trim()
        .to_string())
}

/// Tags HEAD of the clone at `repo` with `tag` and pushes the tag to
/// `origin`; a rejected push (read-only origin) is reported, not an error.
pub async fn write_tag(repo: &Path, tag: &str) -> Result<TagWritten, GitError> {
    git(Some(repo), &["tag", "--", tag]).await?;
    let refspec = format!("refs/tags/{tag}");
    match git(Some(repo), &["push", "--quiet", "origin", &refspec]).await {
        Ok(_) => Ok(TagWritten::Pushed),
        Err(e) => Ok(TagWritten::LocalOnly {
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            redact_url("clone https://user:tok3n@github.com/org/x.git dest"),
            "clone https://***@github.com/org/x.git dest"
        );
        assert_eq!(
            redact_url("fatal: https://github.com/a@b"),
            "fatal: https://github.com/a@b"
        );
        assert_eq!(redact_url("/srv/git/x.git"), "/srv/git/x.git");
    }
}
