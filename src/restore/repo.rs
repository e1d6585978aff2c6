//! The git repository the cluster reads: created in a temp dir with the real `git`, written by
//! meshproof, committed, and published as a bare repository for [`crate::restore::serve`].
//!
//! Flux names a revision `<branch>@sha1:<commit>`; [`GitRepo::head_revision`] returns HEAD in
//! that form so the flow can require the Kustomization to be Ready at *exactly* this commit.

use crate::process::{Cmd, ProcessError};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The branch meshproof commits to and Flux follows.
pub const BRANCH: &str = "main";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("git: {0}")]
    Git(#[from] ProcessError),
    #[error("repository I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("file path {0:?} must be relative and stay inside the repository")]
    BadPath(String),
    #[error("git printed {0:?} where a commit id was expected")]
    BadCommit(String),
    #[error("nothing committed yet")]
    NoCommit,
}

/// A Flux source revision: `main@sha1:<40 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct FluxRevision(String);

impl FluxRevision {
    /// From a branch and a full commit id; `None` unless the id is 40 lowercase hex digits.
    pub fn new(branch: &str, commit: &str) -> Option<FluxRevision> {
        let ok = commit.len() == 40
            && commit
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| FluxRevision(format!("{branch}@sha1:{commit}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FluxRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A working repository plus its bare, served copy, both in one temp dir removed on drop.
pub struct GitRepo {
    git: String,
    timeout: Duration,
    dir: tempfile::TempDir,
    head: Option<String>,
}

impl GitRepo {
    /// `git init` on branch `main`, with a local identity (the machine's global git config is
    /// neither needed nor touched) and signing off. SHA-1 object names always: Flux's revisions
    /// are `main@sha1:<40 hex>` (ledger FLUX-7), and a git whose default is SHA-256
    /// (`GIT_DEFAULT_HASH`, `init.defaultObjectFormat`, Git 3.0) would break the revision
    /// check.
    pub async fn init(git: &str, timeout: Duration) -> Result<GitRepo, RepoError> {
        let dir = tempfile::Builder::new()
            .prefix("meshproof-gitops-")
            .tempdir()?;
        std::fs::create_dir(dir.path().join("work"))?;
        std::fs::create_dir(dir.path().join("served"))?;
        let repo = GitRepo {
            git: git.into(),
            timeout,
            dir,
            head: None,
        };
        repo.git(&[
            "init",
            "--quiet",
            "--object-format=sha1",
            "--initial-branch",
            BRANCH,
        ])
        .await?;
        for (k, v) in [
            ("user.name", "meshproof"),
            ("user.email", "meshproof@localhost"),
            ("commit.gpgsign", "false"),
            ("core.hooksPath", "/dev/null"),
        ] {
            repo.git(&["config", "--local", k, v]).await?;
        }
        Ok(repo)
    }

    fn cmd(&self, args: &[&str]) -> Cmd {
        Cmd::new(self.git.clone())
            .args(args.iter().copied())
            .cwd(self.work_dir())
            // Keep the user's global/system config out: reproducible commits, no hooks, no signing.
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .timeout(self.timeout)
    }

    async fn git(&self, args: &[&str]) -> Result<String, RepoError> {
        Ok(self.cmd(args).run().await?.stdout_str())
    }

    /// The working tree.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The directory [`crate::restore::serve`] serves (`GIT_PROJECT_ROOT`).
    pub fn served_root(&self) -> PathBuf {
        self.dir.path().join("served")
    }

    /// Writes `content` to `rel` (directories created as needed).
    pub fn write_file(&self, rel: &str, content: &str) -> Result<(), RepoError> {
        let p = Path::new(rel);
        if rel.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(RepoError::BadPath(rel.into()));
        }
        let full = self.work_dir().join(p);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(full, content)?;
        Ok(())
    }

    /// Commits everything and returns the full commit id.
    pub async fn commit(&mut self, message: &str) -> Result<String, RepoError> {
        self.git(&["add", "--all"]).await?;
        self.git(&[
            "commit",
            "--quiet",
            "--no-verify",
            "--allow-empty",
            "-m",
            message,
        ])
        .await?;
        let sha = self.git(&["rev-parse", "HEAD"]).await?.trim().to_string();
        FluxRevision::new(BRANCH, &sha).ok_or_else(|| RepoError::BadCommit(sha.clone()))?;
        self.head = Some(sha.clone());
        Ok(sha)
    }

    /// HEAD as Flux reports it: `main@sha1:<hex>`.
    pub fn head_revision(&self) -> Result<FluxRevision, RepoError> {
        let sha = self.head.as_deref().ok_or(RepoError::NoCommit)?;
        FluxRevision::new(BRANCH, sha).ok_or_else(|| RepoError::BadCommit(sha.into()))
    }

    /// Publishes the branch to `served/<name>.git` (a bare repository, created on first use).
    /// No `update-server-info`: the repository is served over the smart protocol only, the one
    /// Flux speaks.
    pub async fn publish(&self, name: &str) -> Result<PathBuf, RepoError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(RepoError::BadPath(name.into()));
        }
        if self.head.is_none() {
            return Err(RepoError::NoCommit);
        }
        let bare = self.served_root().join(format!("{name}.git"));
        if !bare.exists() {
            let s = bare.to_string_lossy().into_owned();
            self.git(&[
                "init",
                "--quiet",
                "--bare",
                "--object-format=sha1",
                "--initial-branch",
                BRANCH,
                &s,
            ])
            .await?;
        }
        let s = bare.to_string_lossy().into_owned();
        let refspec = format!("{BRANCH}:{BRANCH}");
        self.git(&["push", "--quiet", "--force", &s, &refspec])
            .await?;
        Ok(bare)
    }

    /// Files tracked at HEAD (for tests and reports).
    pub async fn tracked_files(&self) -> Result<Vec<String>, RepoError> {
        Ok(self
            .git(&["ls-files"])
            .await?
            .lines()
            .map(String::from)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_revision_format() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            FluxRevision::new("main", sha).unwrap().as_str(),
            format!("main@sha1:{sha}")
        );
        assert!(FluxRevision::new("main", "0123").is_none());
        assert!(FluxRevision::new("main", &sha.to_uppercase()).is_none());
    }
}
