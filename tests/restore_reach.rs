//! The restore's git server, reachable from a container on kind's network — for real: a Docker
//! engine (Debian's `dockerd`), a user-defined bridge network standing in for `kind`, a local
//! busybox image (no registry), meshproof's smart-HTTP server on the address meshproof derives,
//! and the node probe meshproof runs before bootstrapping Flux (issue #14).
//!
//! The network is named by `KIND_EXPERIMENTAL_DOCKER_NETWORK`, as kind lets a user do
//! (CONTRACTS.md KIND-8): that proves the override is honoured, and leaves a real `kind`
//! network on the machine alone.

mod support_docker;
mod support_harness;

use meshproof::restore::reach;
use meshproof::restore::repo::GitRepo;
use meshproof::restore::serve::GitHttpServer;
use std::process::Command;
use std::time::Duration;
use support_docker::{docker, import_image, rand_suffix};

const IMAGE: &str = "meshproof-test-busybox:1";
/// Busybox plus glibc's `getent` (the resolver kind's node image has: Debian's libc-bin) and a
/// Debian `nsswitch.conf`, so names resolve as they do in a kind node: `/etc/hosts`, then DNS.
const GETENT_IMAGE: &str = "meshproof-test-getent:1";

/// A local image holding Debian's static busybox (`sh`, `wget`, `sleep`).
fn busybox_image() {
    import_image(IMAGE, |_| {});
}

/// [`GETENT_IMAGE`]: the busybox image plus `/usr/bin/getent` and the libraries `ldd` names.
fn getent_image() {
    import_image(GETENT_IMAGE, |root| {
        support_docker::copy_with_libraries(root, &["/usr/bin/getent"]);
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/nsswitch.conf"), "hosts: files dns\n").unwrap();
    });
}

/// A network and a container on it, removed on drop.
struct Node {
    network: String,
    container: String,
}

impl Node {
    fn start() -> Node {
        busybox_image();
        Node::start_on(IMAGE, |_| Vec::new())
    }

    /// A node whose `/etc/hosts` maps each `(name, address)` that `hosts` returns for the
    /// network's gateway, as `docker run --add-host` writes it.
    fn start_with_hosts(hosts: impl FnOnce(&str) -> Vec<(String, String)>) -> Node {
        getent_image();
        Node::start_on(GETENT_IMAGE, hosts)
    }

    fn start_on(image: &str, hosts: impl FnOnce(&str) -> Vec<(String, String)>) -> Node {
        let suffix: String = format!("{}-{}", std::process::id(), rand_suffix());
        let network = format!("meshproof-test-kind-{suffix}");
        docker(&["network", "create", &network]);
        let gateway = docker(&[
            "network",
            "inspect",
            &network,
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        ]);
        let mut args: Vec<String> = ["run", "-d", "--rm", "--network", &network]
            .iter()
            .map(|a| a.to_string())
            .collect();
        for (name, addr) in hosts(&gateway) {
            args.push("--add-host".into());
            args.push(format!("{name}:{addr}"));
        }
        args.extend([image.to_string(), "sleep".into(), "300".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let container = docker(&args);
        Node { network, container }
    }
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

/// Serves the repository at `at`, proves `node` fetches it, then returns the URL and the error
/// of a fetch of a repository that is not served (the hint the probe gives).
async fn fetched_then_refused(node: &Node, at: &reach::ServeAt) -> (String, String) {
    let (_repo, _server, url) = served_repo(at).await;
    reach::probe_from(&node.container, &url, at)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let missing = url.replace("/desired", "/absent");
    let err = reach::probe_from(&node.container, &missing, at)
        .await
        .expect_err("not served");
    (url, err)
}

/// The address meshproof derives for the network `KIND_EXPERIMENTAL_DOCKER_NETWORK` names is
/// where a container on it fetches the repository's smart-HTTP advertisement.
async fn a_container_on_the_kind_network_reaches_the_served_repository() {
    let node = Node::start();
    // The only test in this binary that touches the variable.
    std::env::set_var(meshproof::vocab::KIND_NETWORK_ENV, &node.network);
    let at = reach::serve_at(None).await.expect("a native engine");
    std::env::remove_var(meshproof::vocab::KIND_NETWORK_ENV);
    assert_eq!(at.network, node.network);
    let gateway = docker(&[
        "network",
        "inspect",
        &node.network,
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]);
    assert_eq!(at.host, gateway, "the gateway of the overridden network");
    let (_, err) = fetched_then_refused(&node, &at).await;
    // A repository that is not served: the probe fails, and says what to look at.
    assert!(
        err.contains("cannot fetch") && err.contains("firewall") && err.contains(&node.network),
        "{err}"
    );
}

/// Nothing listens: the probe fails within its timeout with the hint.
async fn a_port_nobody_listens_on_fails_the_probe_with_the_firewall_hint() {
    let node = Node::start();
    let at = reach::serve_at_on(&node.network, None)
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

/// On a VM runtime the nodes reach this machine through a host alias, resolved inside a node
/// (CONTRACTS.md KIND-10). The engine here is native, so the alias is written into the node's
/// `/etc/hosts` with `--add-host` (as Podman writes `host.containers.internal`), pointing at the
/// network's gateway where the test's server listens. Proven for real: the resolution inside the
/// container with glibc's `getent` (the first alias, `host.docker.internal`, does not resolve
/// here, so the next one is taken), and that the URL built from the resolved address is what the
/// node fetches. Not provable here: that a VM runtime forwards its alias to this machine's
/// loopback (GVP-1 and KIND-10 carry that evidence; the probe checks it on the user's machine).
async fn a_host_alias_resolved_inside_the_node_is_where_it_fetches_the_repository() {
    let node =
        Node::start_with_hosts(|gw| vec![("host.containers.internal".to_string(), gw.to_string())]);
    let gateway = docker(&[
        "network",
        "inspect",
        &node.network,
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
    ]);
    let (name, ip) = reach::resolve_alias(&node.container, reach::HOST_ALIASES)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(name, "host.containers.internal");
    assert_eq!(ip.to_string(), gateway);
    let at = reach::ServeAt {
        bind: std::net::SocketAddr::new(ip.into(), 0),
        host: ip.to_string(),
        network: node.network.clone(),
        route: reach::Route::Alias(reach::HostAlias {
            runtime: "Podman".into(),
            name,
            ip,
        }),
    };
    let (url, err) = fetched_then_refused(&node, &at).await;
    assert!(url.starts_with(&format!("http://{gateway}:")), "{url}");
    // Not served: the hint is about the runtime's forwarding, not a bridge firewall.
    assert!(
        err.contains("resolved host.containers.internal to") && err.contains("loopback"),
        "{err}"
    );
}

/// A rootless engine's nodes reach this machine at its own outbound address: meshproof serves
/// there and a container on the bridge fetches the repository from it (here through the native
/// engine's bridge; under rootlesskit through its user-mode network, which the probe proves on
/// the user's machine).
async fn the_rootless_route_serves_on_this_machines_address_and_a_node_fetches_it() {
    let node = Node::start();
    let at = reach::serve_on_host_address(&node.network, "rootless Docker")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!at.bind.ip().is_loopback(), "{at:?}");
    assert_eq!(at.host, at.bind.ip().to_string());
    let (_, err) = fetched_then_refused(&node, &at).await;
    assert!(
        err.contains("this machine's own address") && err.contains("rootless Docker"),
        "{err}"
    );
}

/// A node where no alias resolves: the error names every alias tried, inside which node.
async fn a_node_without_any_host_alias_is_an_error_naming_each_alias() {
    let node = Node::start_with_hosts(|_| Vec::new());
    let err = reach::resolve_alias(&node.container, reach::HOST_ALIASES)
        .await
        .expect_err("no alias resolves on a native engine's plain container");
    for alias in reach::HOST_ALIASES {
        assert!(err.contains(alias), "{err}");
    }
    assert!(err.contains(&node.container), "{err}");
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
            "a_host_alias_resolved_inside_the_node_is_where_it_fetches_the_repository",
            &[Need::Docker],
            a_host_alias_resolved_inside_the_node_is_where_it_fetches_the_repository,
        ),
        Case::tokio(
            "the_rootless_route_serves_on_this_machines_address_and_a_node_fetches_it",
            &[Need::Docker],
            the_rootless_route_serves_on_this_machines_address_and_a_node_fetches_it,
        ),
        Case::tokio(
            "a_node_without_any_host_alias_is_an_error_naming_each_alias",
            &[Need::Docker],
            a_node_without_any_host_alias_is_an_error_naming_each_alias,
        ),
        Case::tokio(
            "a_port_nobody_listens_on_fails_the_probe_with_the_firewall_hint",
            &[Need::Docker],
            a_port_nobody_listens_on_fails_the_probe_with_the_firewall_hint,
        ),
    ])
}
