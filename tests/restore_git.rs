//! The GitOps repository with the real `git`, served by meshproof's smart-HTTP server and
//! cloned back by a real `git clone` over loopback — the same protocol Flux's source-controller
//! speaks.

use meshproof::process::Cmd;
use meshproof::restore::desired::{self, FunctionFormat, FunctionSpec};
use meshproof::restore::repo::GitRepo;
use meshproof::restore::serve::GitHttpServer;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

async fn committed_repo() -> (GitRepo, String) {
    let mut repo = GitRepo::init("git", T).await.unwrap();
    let f = FunctionSpec::echo(
        "env",
        "ghcr.io/openfaas/alpine:latest",
        vec!["meshproof-restore".into()],
    );
    repo.write_file(
        "functions/env.yaml",
        &desired::function_manifests(&f, FunctionFormat::Deployment),
    )
    .unwrap();
    repo.write_file(
        "secrets/openfaas-fn-meshproof-restore.sealedsecret.yaml",
        "kind: SealedSecret\n",
    )
    .unwrap();
    repo.write_file(
        "kustomization.yaml",
        &desired::kustomization(&[
            "functions/env.yaml".into(),
            "secrets/openfaas-fn-meshproof-restore.sealedsecret.yaml".into(),
        ]),
    )
    .unwrap();
    let sha = repo.commit("desired state").await.unwrap();
    (repo, sha)
}

#[tokio::test]
async fn commit_has_the_files_and_head_is_in_flux_format() {
    let (repo, sha) = committed_repo().await;
    let mut files = repo.tracked_files().await.unwrap();
    files.sort();
    assert_eq!(
        files,
        [
            "functions/env.yaml",
            "kustomization.yaml",
            "secrets/openfaas-fn-meshproof-restore.sealedsecret.yaml"
        ]
    );
    // Independent check of HEAD with plain git.
    let head = Cmd::new("git")
        .args(["rev-parse", "HEAD"])
        .cwd(repo.work_dir())
        .run()
        .await
        .unwrap()
        .stdout_str();
    assert_eq!(head.trim(), sha);
    assert_eq!(
        repo.head_revision().unwrap().as_str(),
        format!("main@sha1:{sha}")
    );
    let branch = Cmd::new("git")
        .args(["symbolic-ref", "--short", "HEAD"])
        .cwd(repo.work_dir())
        .run()
        .await
        .unwrap();
    assert_eq!(branch.stdout_str().trim(), "main");
}

/// A git whose default object format is SHA-256 (`GIT_DEFAULT_HASH=sha256`, as Git 3.0 will
/// default): the repositories meshproof makes are SHA-1 all the same, so Flux's
/// `main@sha1:<40 hex>` revision matches (issue #14). The "git" here is a wrapper script around
/// the real git that sets the variable (a double of such a machine).
#[tokio::test]
async fn repositories_are_sha1_even_where_git_defaults_to_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let git = dir.path().join("git-sha256-default");
    std::fs::write(
        &git,
        "#!/bin/sh\n# TEST DOUBLE: the real git with SHA-256 as its default\nGIT_DEFAULT_HASH=sha256 exec git \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&git, std::fs::Permissions::from_mode(0o755)).unwrap();
    let git = git.to_string_lossy().into_owned();
    let mut repo = GitRepo::init(&git, T).await.unwrap();
    repo.write_file("kustomization.yaml", "resources: []\n")
        .unwrap();
    let sha = repo.commit("desired state").await.unwrap();
    assert_eq!(sha.len(), 40, "{sha}");
    assert_eq!(
        repo.head_revision().unwrap().as_str(),
        format!("main@sha1:{sha}")
    );
    let bare = repo.publish("desired").await.unwrap();
    let format = Cmd::new("git")
        .args(["rev-parse", "--show-object-format"])
        .cwd(&bare)
        .run()
        .await
        .unwrap();
    assert_eq!(format.stdout_str().trim(), "sha1");
}

#[tokio::test]
async fn a_second_commit_moves_head() {
    let (mut repo, first) = committed_repo().await;
    repo.write_file("functions/env.yaml", "changed: true\n")
        .unwrap();
    let second = repo.commit("change").await.unwrap();
    assert_ne!(first, second);
    assert!(repo.head_revision().unwrap().as_str().ends_with(&second));
}

#[tokio::test]
async fn paths_outside_the_repository_are_refused() {
    let repo = GitRepo::init("git", T).await.unwrap();
    assert!(repo.write_file("../escape.yaml", "x").is_err());
    assert!(repo.write_file("/etc/x", "x").is_err());
    assert!(repo.head_revision().is_err(), "no commit yet");
}

#[tokio::test]
async fn served_repository_clones_over_smart_http_at_head() {
    let (repo, sha) = committed_repo().await;
    repo.publish("desired").await.unwrap();
    let server = GitHttpServer::start("127.0.0.1:0".parse().unwrap(), repo.served_root(), "git", T)
        .await
        .unwrap();
    let url = server.url("127.0.0.1", "desired");
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/desired.git"),
        "{url}"
    );

    // ls-remote: the smart protocol's ref advertisement.
    let refs = Cmd::new("git")
        .args(["ls-remote", &url, "refs/heads/main"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .timeout(T)
        .run()
        .await
        .unwrap()
        .stdout_str();
    assert_eq!(refs.split_whitespace().next(), Some(sha.as_str()), "{refs}");

    // A full clone; the repository has no dumb-HTTP `info/refs` file, so only the smart
    // protocol (ref advertisement + upload-pack POST) can succeed.
    let dest = tempfile::tempdir().unwrap();
    let clone_dir = dest.path().join("c");
    Cmd::new("git")
        .args(["clone", "--quiet", "--branch", "main", &url])
        .arg(clone_dir.as_os_str())
        .env("GIT_TERMINAL_PROMPT", "0")
        .timeout(T)
        .run()
        .await
        .unwrap();
    let cloned_head = Cmd::new("git")
        .args(["rev-parse", "HEAD"])
        .cwd(&clone_dir)
        .run()
        .await
        .unwrap()
        .stdout_str();
    assert_eq!(cloned_head.trim(), sha);
    let log = server.requests();
    assert!(
        log.iter()
            .any(|l| l == "POST /desired.git/git-upload-pack 200"),
        "{log:?}"
    );
    assert!(
        !repo.served_root().join("desired.git/info/refs").exists(),
        "no dumb-protocol file"
    );
    let k = std::fs::read_to_string(clone_dir.join("kustomization.yaml")).unwrap();
    assert!(k.contains("functions/env.yaml"));

    // Read-only: a push is refused by http-backend (no authenticated user).
    Cmd::new("git")
        .args(["commit", "--quiet", "--allow-empty", "-m", "x"])
        .cwd(&clone_dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .run()
        .await
        .unwrap();
    let push = Cmd::new("git")
        .args(["push", "origin", "main"])
        .cwd(&clone_dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .timeout(T)
        .run()
        .await;
    assert!(push.is_err(), "anonymous push must be refused");
    let still = Cmd::new("git")
        .args(["ls-remote", &url, "refs/heads/main"])
        .timeout(T)
        .run()
        .await
        .unwrap()
        .stdout_str();
    assert!(still.starts_with(&sha));
}

#[tokio::test]
async fn unknown_repositories_and_traversal_are_not_served() {
    let (repo, _) = committed_repo().await;
    repo.publish("desired").await.unwrap();
    let server = GitHttpServer::start("127.0.0.1:0".parse().unwrap(), repo.served_root(), "git", T)
        .await
        .unwrap();
    let r = Cmd::new("git")
        .args(["ls-remote", &server.url("127.0.0.1", "nope")])
        .env("GIT_TERMINAL_PROMPT", "0")
        .timeout(T)
        .run()
        .await;
    assert!(r.is_err());
    // Raw request with a traversal path.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    s.write_all(b"GET /../work/.git/config HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}

/// A raw HTTP/1.1 exchange with the server.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut resp))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&resp).into_owned()
}

#[tokio::test]
async fn chunked_and_content_length_bodies_reach_upload_pack() {
    let (repo, sha) = committed_repo().await;
    repo.publish("desired").await.unwrap();
    let server = GitHttpServer::start("127.0.0.1:0".parse().unwrap(), repo.served_root(), "git", T)
        .await
        .unwrap();
    // A protocol-v0 upload-pack request that wants HEAD's commit, then "done".
    let want = format!("want {sha}\n");
    let body = format!(
        "{:04x}{want}0000{:04x}done\n",
        want.len() + 4,
        "done\n".len() + 4
    );
    let head = "POST /desired.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-git-upload-pack-request\r\n";
    let plain = raw(
        server.local_addr(),
        format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(
        plain.contains("application/x-git-upload-pack-result"),
        "{plain}"
    );
    assert!(plain.contains("PACK"), "a pack file comes back: {plain}");
    // The same body, chunked in two pieces.
    let (a, b) = body.split_at(10);
    let chunked = raw(
        server.local_addr(),
        format!(
            "{head}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(
        chunked.starts_with("HTTP/1.1 200") && chunked.contains("PACK"),
        "{chunked}"
    );
    // Malformed framing is a 400, not a hang.
    let bad = raw(
        server.local_addr(),
        format!("{head}Transfer-Encoding: chunked\r\n\r\nzz\r\n").as_bytes(),
    )
    .await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let method = raw(server.local_addr(), b"DELETE /desired.git HTTP/1.1\r\n\r\n").await;
    assert!(method.starts_with("HTTP/1.1 405"), "{method}");
}
