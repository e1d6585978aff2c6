//! The restore's git server, reachable from a container on kind's network — for real: a Docker
//! engine (Debian's `dockerd`), a user-defined bridge network standing in for `kind`, a local
//! busybox image (no registry), meshproof's smart-HTTP server on the address meshproof derives,
//! and the node probe meshproof runs before bootstrapping Flux (issue #14).
//!
//! The network is named by `KIND_EXPERIMENTAL_DOCKER_NETWORK`, as kind lets a user do
//! (CONTRACTS.md KIND-8): that proves the override is honoured, and leaves a real `kind`
//! network on the machine alone.

mod support_harness;

use meshproof::restore::reach;
use meshproof::restore::repo::GitRepo;
use meshproof::restore::serve::GitHttpServer;
use std::process::Command;
use std::time::Duration;

const IMAGE: &str = "meshproof-test-busybox:1";

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A local image holding Debian's static busybox (`sh`, `wget`, `sleep`).
fn busybox_image() {
    if Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .unwrap()
        .status
        .success()
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for a in ["sh", "wget", "sleep"] {
        std::os::unix::fs::symlink("busybox", bin.join(a)).unwrap();
    }
    let tar = Command::new("tar")
        .args(["-C"])
        .arg(root.path())
        .args(["-c", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut import = Command::new("docker")
        .args(["import", "-", IMAGE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(import.wait().unwrap().success());
}

/// A network and a container on it, removed on drop.
struct Node {
    network: String,
    container: String,
}

impl Node {
    fn start() -> Node {
        busybox_image();
        let suffix: String = format!("{}-{}", std::process::id(), rand_suffix());
        let network = format!("meshproof-test-kind-{suffix}");
        docker(&["network", "create", &network]);
        let container = docker(&[
            "run",
            "-d",
            "--rm",
            "--network",
            &network,
            IMAGE,
            "sleep",
            "300",
        ]);
        Node { network, container }
    }
}

fn rand_suffix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{t:x}")
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .output();
    }
}

async fn served_repo(at: &reach::ServeAt) -> (GitRepo, GitHttpServer, String) {
    let t = Duration::from_secs(30);
    let mut repo = GitRepo::init("git", t).await.unwrap();
    repo.write_file("kustomization.yaml", "resources: []\n")
        .unwrap();
    repo.commit("desired state").await.unwrap();
    repo.publish("desired").await.unwrap();
    let server = GitHttpServer::start(at.bind, repo.served_root(), "git", t)
        .await
        .unwrap();
    let url = server.url(&at.host, "desired");
    (repo, server, url)
}

/// The address meshproof derives for the network `KIND_EXPERIMENTAL_DOCKER_NETWORK` names is
/// where a container on it fetches the repository's smart-HTTP advertisement.
async fn a_container_on_the_kind_network_reaches_the_served_repository() {
    let node = Node::start();
    // The only test in this binary that touches the variable.
    std::env::set_var(reach::NETWORK_ENV, &node.network);
    let at = reach::serve_at().await.expect("a native engine");
    std::env::remove_var(reach::NETWORK_ENV);
    assert_eq!(at.network, node.network);
    let gateway = docker(&[
        "network",
        "inspect",
        &node.network,
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]);
    assert_eq!(at.host, gateway, "the gateway of the overridden network");
    let (_repo, _server, url) = served_repo(&at).await;
    reach::probe_from(&node.container, &url, &at)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A repository that is not served: the probe fails, and says what to look at.
    let missing = url.replace("/desired", "/absent");
    let err = reach::probe_from(&node.container, &missing, &at)
        .await
        .expect_err("not served");
    assert!(
        err.contains("cannot fetch") && err.contains("firewall") && err.contains(&node.network),
        "{err}"
    );
}

/// Nothing listens: the probe fails within its timeout with the hint.
async fn a_port_nobody_listens_on_fails_the_probe_with_the_firewall_hint() {
    let node = Node::start();
    let at = reach::serve_at_on(&node.network)
        .await
        .expect("a native engine");
    let listener = std::net::TcpListener::bind((at.host.as_str(), 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://{}:{port}/desired.git", at.host);
    let err = reach::probe_from(&node.container, &url, &at)
        .await
        .expect_err("nothing listens");
    assert!(err.contains(&format!("port {port}")), "{err}");
}

fn main() -> std::process::ExitCode {
    use support_harness::{Case, Need};
    support_harness::run(vec![
        Case::tokio(
            "a_container_on_the_kind_network_reaches_the_served_repository",
            &[Need::Docker],
            a_container_on_the_kind_network_reaches_the_served_repository,
        ),
        Case::tokio(
            "a_port_nobody_listens_on_fails_the_probe_with_the_firewall_hint",
            &[Need::Docker],
            a_port_nobody_listens_on_fails_the_probe_with_the_firewall_hint,
        ),
    ])
}
