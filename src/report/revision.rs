//! The git revision a run was made from, asked of `git` at run time: a report must name the
//! exact commit a vendor certifies, and a build script would go stale between builds.

use crate::process::Cmd;
use std::path::Path;
use std::time::Duration;

/// `git rev-parse HEAD` in `dir`, or `"unknown"` when `dir` is not a git checkout, git is
/// missing, or it does not answer within 10 s. A checkout with uncommitted changes gets a
/// `-dirty` suffix: its verdicts do not belong to the commit alone.
pub async fn git_revision(dir: &Path) -> String {
    let head = Cmd::new("git")
        .args(["rev-parse", "--verify", "HEAD"])
        .cwd(dir)
        .timeout(Duration::from_secs(10))
        .run()
        .await;
    let rev = match head {
        Ok(o) => o.stdout_str().trim().to_string(),
        Err(_) => return "unknown".into(),
    };
    if rev.len() != 40 || !rev.chars().all(|c| c.is_ascii_hexdigit()) {
        return "unknown".into();
    }
    let status = Cmd::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .cwd(dir)
        .timeout(Duration::from_secs(10))
        .run()
        .await;
    match status {
        Ok(o) if o.stdout_str().trim().is_empty() => rev,
        Ok(_) => format!("{rev}-dirty"),
        Err(_) => rev,
    }
}

/// The commit part of a revision (without `-dirty`).
pub fn commit(rev: &str) -> &str {
    rev.strip_suffix("-dirty").unwrap_or(rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outside_a_checkout_it_is_unknown() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(git_revision(d.path()).await, "unknown");
    }

    #[tokio::test]
    async fn in_a_fresh_repository_it_is_the_head_commit() {
        if which::which("git").is_err() {
            assert!(std::env::var("CI").is_err(), "git is required under CI");
            eprintln!("skipped: git not installed");
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(args)
                .current_dir(d.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q"]);
        std::fs::write(d.path().join("f"), "1").unwrap();
        git(&["add", "f"]);
        git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "commit",
            "-q",
            "-m",
            "c",
        ]);
        let head = git(&["rev-parse", "HEAD"]);
        assert_eq!(git_revision(d.path()).await, head);
        std::fs::write(d.path().join("f"), "2").unwrap();
        assert_eq!(git_revision(d.path()).await, format!("{head}-dirty"));
        assert_eq!(commit(&format!("{head}-dirty")), head);
    }
}
