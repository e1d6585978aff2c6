//! Where the restore's git server listens so that kind's nodes reach it, and the proof that
//! they do before Flux is told to fetch from it.
//!
//! The server runs on this machine, outside the cluster it outlives. kind's nodes are
//! containers on a Docker bridge network (`kind`, or `KIND_EXPERIMENTAL_DOCKER_NETWORK`:
//! ledger KIND-8), and where they reach this machine depends on where the engine runs:
//!
//! - **A native engine on Linux**: the bridge's gateway address is an address of this machine.
//!   The server binds there and the nodes fetch from it.
//! - **An engine in a VM** (Docker Desktop, colima, Podman machine, any engine a macOS or
//!   Windows client talks to): the gateway lives inside the VM, so a bind there fails
//!   (kind#2405). These runtimes give containers a host alias that their VM network forwards
//!   to this machine's loopback (`host.docker.internal`, `host.containers.internal`,
//!   `host.lima.internal`: ledger KIND-10, GVP-1). The server binds `127.0.0.1` — nothing
//!   beyond this machine can reach it — and the alias is resolved *inside a node*, as kind's
//!   own entrypoint does (KIND-10), so the address handed to Flux is an IP: pods resolve names
//!   through CoreDNS, which never reads the node's `/etc/hosts`, where Podman writes its alias.
//! - **Rootless Docker** (and rootless Podman behind the Docker API): the bridge lives in
//!   rootlesskit's network namespace and the host's loopback is not forwarded into it by
//!   default, but the nodes' connections leave through this machine's own stack: the server
//!   binds this machine's outbound address and the nodes use it ([`Route::HostAddress`]).
//!
//! A bind that works does not prove the nodes get through: a host firewall (ufw's default
//! deny) drops bridge traffic to the host, and a VM runtime may not forward the alias. [`probe_from`]
//! asks the repository's smart-HTTP advertisement from inside a node, as source-controller
//! will, and says what to look at when it fails.

use crate::process::Cmd;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::vocab::{kind_network, KIND_PROVIDER_ENV};

/// Where the engine runs its containers, as far as the git server is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineHost {
    /// A native engine on this Linux machine: the bridge gateway is one of its addresses.
    Native,
    /// An engine in a VM: containers reach this machine's loopback through a host alias. The
    /// runtime's name.
    Vm(String),
    /// Rootless Docker: neither the gateway nor this machine's loopback is reachable from the
    /// nodes by default.
    Rootless,
}

/// The host aliases VM runtimes give containers, tried in this order inside a node: Docker
/// Desktop's (which kind's entrypoint itself looks up: KIND-10; gvproxy, under Podman machine,
/// answers it too), Podman's (GVP-1), lima's (colima). The first that resolves to a
/// non-loopback IPv4 address is the one the nodes use.
pub const HOST_ALIASES: &[&str] = &[
    "host.docker.internal",
    "host.containers.internal",
    "host.lima.internal",
];

/// Classifies `docker info --format '{{json .}}'` (ledger KIND-8). `OperatingSystem` is the
/// daemon host's distribution (`PRETTY_NAME`), so Docker Desktop names itself there; rootless
/// Docker (and rootless Podman behind the Docker API) lists `name=rootless` in
/// `SecurityOptions`, the test kind itself makes; `Name` is the daemon host's hostname, which
/// colima sets to its profile (`colima`, `colima-<profile>`); a client on macOS or Windows always
/// talks to an engine in a VM (Podman machine, OrbStack, Rancher Desktop…). Rootful Podman on
/// Linux is not told apart and needs not be: its bridge gateway is an address of this machine,
/// like Docker's.
pub fn classify(info: &serde_json::Value, client_os: &str) -> EngineHost {
    let s = |k: &str| info.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let rootless = info
        .get("SecurityOptions")
        .and_then(|v| v.as_array())
        .is_some_and(|o| {
            o.iter()
                .filter_map(|x| x.as_str())
                .any(|x| x.split(',').any(|part| part == "name=rootless"))
        });
    if rootless {
        return EngineHost::Rootless;
    }
    if s("OperatingSystem").contains("Docker Desktop") {
        return EngineHost::Vm("Docker Desktop".into());
    }
    let name = s("Name");
    if name == "colima" || name.starts_with("colima-") {
        return EngineHost::Vm("colima".into());
    }
    if client_os != "linux" {
        return EngineHost::Vm(format!("a Docker engine in a VM ({client_os})"));
    }
    EngineHost::Native
}

/// Where the git server listens and the address the nodes use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeAt {
    pub bind: SocketAddr,
    pub host: String,
    /// The Docker network the nodes are on (for the firewall hint).
    pub network: String,
    /// How the nodes' connections get to `bind`.
    pub route: Route,
}

/// How the nodes' connections reach the git server on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A native engine: the bridge's gateway is this machine's address.
    Gateway,
    /// An engine in a VM: a host alias the runtime forwards to this machine's loopback.
    Alias(HostAlias),
    /// A rootless engine: rootlesskit's user-mode network opens the nodes' connections from
    /// this machine's own network stack, so they reach its own (non-loopback) address, as
    /// rootless Podman's `host.containers.internal` does (podman@v5.8.2
    /// `vendor/go.podman.io/common/libnetwork/etchosts/ip.go:72-73`; ledger KIND-8).
    HostAddress { runtime: String },
}

/// A VM runtime's host alias, as a node resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAlias {
    pub runtime: String,
    pub name: String,
    pub ip: Ipv4Addr,
}

/// The first IPv4 gateway among the IPAM configs `docker network inspect` printed as
/// `GATEWAY|SUBNET` words (IPv6 ones skipped). Some Docker versions print the gateway with a
/// prefix length (`172.18.0.1/16`) or leave it empty; then the subnet's first host is the
/// gateway, as Docker assigns it.
pub fn first_ipv4(ipam: &str) -> Option<Ipv4Addr> {
    ipam.split_whitespace().find_map(|config| {
        let (gateway, subnet) = config.split_once('|').unwrap_or((config, ""));
        let gateway = gateway.split('/').next().unwrap_or("");
        gateway.parse().ok().or_else(|| {
            let net: Ipv4Addr = subnet.split('/').next()?.parse().ok()?;
            Some(Ipv4Addr::from(u32::from(net) + 1))
        })
    })
}

/// Decides where to serve for the nodes of the kind network ([`kind_network`]); `node` is a
/// running node of the cluster, needed where the engine runs in a VM (the alias is resolved
/// inside it).
pub async fn serve_at(node: Option<&str>) -> Result<ServeAt, String> {
    serve_at_on(&kind_network(), node).await
}

/// [`serve_at`] for the Docker network `network`.
pub async fn serve_at_on(network: &str, node: Option<&str>) -> Result<ServeAt, String> {
    if let Ok(p) = std::env::var(KIND_PROVIDER_ENV) {
        if !p.is_empty() && p != "docker" {
            return Err(format!(
                "{KIND_PROVIDER_ENV}={p}: the restore check serves its git repository on the kind network's gateway, which it finds through Docker; kind's {p} provider is not supported yet (issue #14)"
            ));
        }
    }
    let info = Cmd::new("docker")
        .args(["info", "--format", "{{json .}}"])
        .timeout(Duration::from_secs(30))
        .run()
        .await
        .map_err(|e| format!("asking the Docker engine where it runs: {e}"))?;
    let info: serde_json::Value = serde_json::from_str(info.stdout_str().trim())
        .map_err(|e| format!("`docker info` printed no JSON: {e}"))?;
    match classify(&info, std::env::consts::OS) {
        EngineHost::Native => serve_on_gateway(network).await,
        EngineHost::Vm(runtime) => {
            let node = node.ok_or_else(|| {
                format!("{runtime} runs the kind nodes in a VM: the address they reach this machine at is resolved inside a node, and the cluster has none yet")
            })?;
            let alias = resolve_alias(node, HOST_ALIASES).await.map_err(|e| {
                format!("{runtime} runs the kind nodes in a VM, where the kind network's gateway is not an address of this machine (kind#2405), and {e}")
            })?;
            Ok(ServeAt {
                bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
                host: alias.1.to_string(),
                network: network.to_string(),
                route: Route::Alias(HostAlias {
                    runtime,
                    name: alias.0,
                    ip: alias.1,
                }),
            })
        }
        EngineHost::Rootless => serve_on_host_address(network, "rootless Docker"),
    }
}

/// Serves on this machine's own outbound IPv4 address, for a rootless engine: the kind
/// network's gateway lives in rootlesskit's namespace (kind#2405) and the host's loopback is
/// not forwarded into it by default, but a node's connection leaves through this machine's
/// stack and reaches its own address. That address is on the machine's network: the server is
/// read-only, serves only the run's repository (sealed, never plaintext, secrets) and lives
/// for the restore check.
pub fn serve_on_host_address(network: &str, runtime: &str) -> Result<ServeAt, String> {
    let ip = outbound_ipv4().map_err(|e| {
        format!("{runtime}: the kind nodes reach this machine at its own address, and it has none to offer: {e}")
    })?;
    Ok(ServeAt {
        bind: SocketAddr::new(IpAddr::V4(ip), 0),
        host: ip.to_string(),
        network: network.to_string(),
        route: Route::HostAddress {
            runtime: runtime.to_string(),
        },
    })
}

/// The IPv4 address this machine's default route leaves from: a UDP socket "connected" to a
/// documentation address (RFC 5737; connecting a UDP socket sends nothing) tells which local
/// address the kernel would use.
pub fn outbound_ipv4() -> Result<Ipv4Addr, String> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
    s.connect((Ipv4Addr::new(192, 0, 2, 1), 9))
        .map_err(|e| format!("no IPv4 default route ({e})"))?;
    match s.local_addr().map_err(|e| e.to_string())?.ip() {
        IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Ok(ip),
        other => Err(format!("the default route leaves from {other}")),
    }
}

/// The IPv4 gateway of `network`, where a native engine's nodes reach this machine.
async fn serve_on_gateway(network: &str) -> Result<ServeAt, String> {
    let out = Cmd::new("docker")
        .args([
            "network",
            "inspect",
            network,
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}|{{.Subnet}} {{end}}",
        ])
        .timeout(Duration::from_secs(30))
        .run()
        .await
        .map_err(|e| format!("finding the {network} network's gateway: {e}"))?;
    let text = out.stdout_str();
    let gateway = first_ipv4(&text).ok_or_else(|| {
        format!(
            "the {network} network has no IPv4 gateway (docker said {:?})",
            text.trim()
        )
    })?;
    Ok(ServeAt {
        bind: SocketAddr::new(IpAddr::V4(gateway), 0),
        host: gateway.to_string(),
        network: network.to_string(),
        route: Route::Gateway,
    })
}

/// The command that resolves `name` inside `container` the way kind's entrypoint does
/// (`getent ahostsv4`, glibc's resolver: `/etc/hosts`, then DNS; KIND-10). The name is `$0`.
pub fn resolve_cmd(container: &str, name: &str) -> Cmd {
    Cmd::new("docker")
        .args(["exec", container, "sh", "-c", "getent ahostsv4 \"$0\""])
        .arg(name)
        .timeout(Duration::from_secs(15))
}

/// The first address of `getent ahostsv4` output (`ADDRESS  STREAM name` lines) that is a
/// usable IPv4 address for the nodes: a loopback or unspecified one points back at the node
/// itself (kind's entrypoint rejects loopback for the same reason).
pub fn first_usable(getent: &str) -> Option<Ipv4Addr> {
    getent
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse::<Ipv4Addr>().ok())
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// The first of `aliases` that resolves, inside `node`, to a usable address.
pub async fn resolve_alias(node: &str, aliases: &[&str]) -> Result<(String, Ipv4Addr), String> {
    let mut tried = Vec::new();
    for name in aliases {
        match resolve_cmd(node, name).run().await {
            Ok(out) => match first_usable(&out.stdout_str()) {
                Some(ip) => return Ok((name.to_string(), ip)),
                None => tried.push(format!(
                    "{name}: no usable IPv4 address ({:?})",
                    out.stdout_str().trim()
                )),
            },
            Err(e) => tried.push(format!("{name}: {e}")),
        }
    }
    Err(format!(
        "none of the runtime's host aliases resolves inside the node {node} ({}); the runtime gives containers no way to reach this machine that meshproof knows",
        tried.join("; ")
    ))
}

/// The command that fetches `url`'s smart-HTTP advertisement from inside `container`: with
/// curl where the container has it (kind's node image does: kind@v0.32.0
/// `images/base/Dockerfile:81`), else busybox wget. The URL is passed as `$0`, never spliced
/// into the script. No `-T` for wget: Debian bookworm's static busybox crashes on it; the
/// command's own timeout bounds the wait.
pub fn probe_cmd(container: &str, repo_url: &str) -> Cmd {
    let url = format!(
        "{}/info/refs?service=git-upload-pack",
        repo_url.trim_end_matches('/')
    );
    Cmd::new("docker")
        .args(["exec", container, "sh", "-c"])
        .arg(
            "if command -v curl >/dev/null 2>&1; then curl -fsS -m 10 -o /dev/null \"$0\"; \
             else wget -q -O /dev/null \"$0\"; fi",
        )
        .arg(url)
        .timeout(Duration::from_secs(30))
}

/// Proves `container` (a kind node) reaches the repository at `repo_url`; otherwise says what
/// to look at.
pub async fn probe_from(container: &str, repo_url: &str, at: &ServeAt) -> Result<(), String> {
    match probe_cmd(container, repo_url).run().await {
        Ok(_) => Ok(()),
        Err(e) => Err(unreachable_hint(container, repo_url, at, &e.to_string())),
    }
}

/// What a failed probe tells the user: a firewall on a native engine; the runtime's forwarding
/// of its alias in a VM; a firewall on this machine's own address for a rootless engine.
pub fn unreachable_hint(container: &str, repo_url: &str, at: &ServeAt, error: &str) -> String {
    let port = url_port(repo_url)
        .map(|p| p.to_string())
        .unwrap_or_else(|| "<port>".into());
    match &at.route {
        Route::Gateway => format!(
            "the kind node {container} cannot fetch {repo_url} ({error}). The git server listens on {} of this machine, the {} network's gateway: a host firewall that drops traffic from the bridge to the host is the usual cause (ufw's default deny: allow it with `ufw allow in from <the {} subnet> to {} port {port} proto tcp`)",
            at.bind.ip(),
            at.network,
            at.network,
            at.bind.ip(),
        ),
        Route::HostAddress { runtime } => format!(
            "the kind node {container} cannot fetch {repo_url} ({error}). The git server listens on {}:{port}, this machine's own address, which {runtime}'s network reaches from this machine's stack: a firewall on this machine that refuses port {port} on that address is the usual cause",
            at.bind.ip(),
        ),
        Route::Alias(a) => format!(
            "the kind node {container} cannot fetch {repo_url} ({error}). The git server listens on this machine's loopback (127.0.0.1:{port}); the node resolved {} to {}, which {} should forward to this machine's loopback. Check that the runtime's host networking is on (Docker Desktop: host networking/`host.docker.internal` is not disabled; Podman machine: gvproxy networking, not user-mode-networking off; colima: the VM's network address is reachable), and that no firewall on this machine refuses the runtime's forwarded connections",
            a.name, a.ip, a.runtime,
        ),
    }
}

fn url_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_ipv4_gateway_is_picked_over_ipv6() {
        let gw = Some(Ipv4Addr::new(172, 18, 0, 1));
        assert_eq!(
            first_ipv4("fc00:f853:ccd:e793::1|fc00:f853:ccd:e793::/64 172.18.0.1|172.18.0.0/16 "),
            gw
        );
        // Old Docker: the gateway with its prefix length, or no gateway at all.
        assert_eq!(first_ipv4("172.18.0.1/16|172.18.0.0/16"), gw);
        assert_eq!(first_ipv4("|172.18.0.0/16"), gw);
        assert_eq!(first_ipv4("172.18.0.1"), gw);
        assert_eq!(first_ipv4("fc00::1|fc00::/64"), None);
        assert_eq!(first_ipv4(""), None);
    }

    #[test]
    fn engines_in_a_vm_or_a_user_namespace_are_recognised() {
        let native = json!({"OperatingSystem": "Debian GNU/Linux 12 (bookworm)", "Name": "ci", "SecurityOptions": ["name=seccomp,profile=default"]});
        assert_eq!(classify(&native, "linux"), EngineHost::Native);
        assert_eq!(
            classify(&native, "macos"),
            EngineHost::Vm("a Docker engine in a VM (macos)".into())
        );
        let desktop = json!({"OperatingSystem": "Docker Desktop", "Name": "docker-desktop"});
        assert_eq!(
            classify(&desktop, "linux"),
            EngineHost::Vm("Docker Desktop".into())
        );
        let rootless = json!({"OperatingSystem": "Ubuntu 24.04", "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"]});
        assert_eq!(classify(&rootless, "linux"), EngineHost::Rootless);
        // kind splits each entry on commas (KIND-8).
        let rootless_podman = json!({"OperatingSystem": "fedora", "ServerVersion": "5.8.2", "SecurityOptions": ["name=seccomp,profile=default,name=rootless"]});
        assert_eq!(classify(&rootless_podman, "linux"), EngineHost::Rootless);
        // Rootful Podman answers the Docker API with its distribution and a bare version: the
        // gateway path, as for Docker.
        let podman = json!({"OperatingSystem": "fedora", "ServerVersion": "5.8.2", "SecurityOptions": ["name=seccomp,profile=default"]});
        assert_eq!(classify(&podman, "linux"), EngineHost::Native);
        let colima = json!({"OperatingSystem": "Ubuntu 24.04 LTS", "Name": "colima-dev"});
        assert_eq!(classify(&colima, "linux"), EngineHost::Vm("colima".into()));
    }

    #[test]
    fn getent_output_yields_the_first_address_that_is_not_the_node_itself() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().ok();
        assert_eq!(
            first_usable("192.168.65.254  STREAM host.docker.internal\n192.168.65.254  DGRAM  \n"),
            ip("192.168.65.254")
        );
        // kind's entrypoint rejects a loopback answer: it is the node itself (KIND-10).
        assert_eq!(
            first_usable("127.0.0.1  STREAM host.docker.internal\n0.0.0.0 STREAM x\n192.168.127.254 STREAM x\n"),
            ip("192.168.127.254")
        );
        assert_eq!(first_usable("127.0.1.1  STREAM x\n"), None);
        assert_eq!(first_usable(""), None);
        assert_eq!(first_usable("getent: not found\n"), None);
    }

    #[test]
    fn the_alias_is_resolved_with_the_name_as_an_argument() {
        let argv = resolve_cmd("n", "host.docker.internal").argv();
        assert_eq!(argv[..4], ["exec", "n", "sh", "-c"]);
        assert!(!argv[4].contains("host.docker"));
        assert_eq!(argv[5], "host.docker.internal");
    }

    #[test]
    fn a_failed_probe_names_the_firewall_on_a_native_engine_and_the_alias_in_a_vm() {
        let native = ServeAt {
            bind: "172.18.0.1:0".parse().unwrap(),
            host: "172.18.0.1".into(),
            network: "kind".into(),
            route: Route::Gateway,
        };
        let url = "http://172.18.0.1:41234/desired.git";
        let h = unreachable_hint("n", url, &native, "exit 7");
        assert!(
            h.contains("ufw allow in from <the kind subnet> to 172.18.0.1 port 41234"),
            "{h}"
        );
        let vm = ServeAt {
            bind: "127.0.0.1:0".parse().unwrap(),
            host: "192.168.65.254".into(),
            network: "kind".into(),
            route: Route::Alias(HostAlias {
                runtime: "Docker Desktop".into(),
                name: "host.docker.internal".into(),
                ip: Ipv4Addr::new(192, 168, 65, 254),
            }),
        };
        let h = unreachable_hint(
            "n",
            "http://192.168.65.254:41234/desired.git",
            &vm,
            "exit 7",
        );
        assert!(
            h.contains("127.0.0.1:41234")
                && h.contains("resolved host.docker.internal to 192.168.65.254")
                && h.contains("Docker Desktop")
                && !h.contains("ufw"),
            "{h}"
        );
    }

    #[test]
    fn the_probe_passes_the_url_as_an_argument_never_in_the_script() {
        let c = probe_cmd(
            "meshproof-x-control-plane",
            "http://172.18.0.1:41234/desired.git",
        );
        let argv = c.argv();
        assert_eq!(
            &argv[..5],
            [
                "exec",
                "meshproof-x-control-plane",
                "sh",
                "-c",
                argv[4].as_str()
            ]
        );
        assert!(!argv[4].contains("172.18"));
        assert_eq!(
            argv[5],
            "http://172.18.0.1:41234/desired.git/info/refs?service=git-upload-pack"
        );
        assert_eq!(url_port("http://172.18.0.1:41234/desired.git"), Some(41234));
    }
}
