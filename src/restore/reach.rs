//! Where the restore's git server listens so that kind's nodes reach it, and the proof that
//! they do before Flux is told to fetch from it.
//!
//! The server runs on this machine, outside the cluster it outlives. kind's nodes are
//! containers on a Docker bridge network (`kind`, or `KIND_EXPERIMENTAL_DOCKER_NETWORK`:
//! ledger KIND-8), and on a Linux host with a native engine the bridge's gateway address is an
//! address of this machine: the server binds there and the nodes fetch from it. Where the
//! engine runs in a VM (Docker Desktop, colima, Podman machine) or in a user namespace
//! (rootless Docker), the gateway lives inside the VM or namespace, the bind fails (kind#2405),
//! and serving from there is not built yet: meshproof says so before anything is created.
//!
//! A bind that works does not prove the nodes get through: a host firewall (ufw's default
//! deny) drops bridge traffic to the host. [`probe_from`] asks the repository's smart-HTTP
//! advertisement from inside a node, as source-controller will, and names the firewall when it
//! fails.

use crate::process::Cmd;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// kind's override of its Docker network's name (kind@v0.30.0
/// `pkg/cluster/internal/providers/docker/provider.go:71-76`).
pub const NETWORK_ENV: &str = "KIND_EXPERIMENTAL_DOCKER_NETWORK";
/// kind's provider override: `podman` runs the nodes without Docker.
pub const PROVIDER_ENV: &str = "KIND_EXPERIMENTAL_PROVIDER";

/// The Docker network kind puts its nodes on.
pub fn kind_network() -> String {
    std::env::var(NETWORK_ENV)
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "kind".to_string())
}

/// Where the engine runs its containers, as far as the git server is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineHost {
    /// A native engine on this Linux machine: the bridge gateway is one of its addresses.
    Native,
    /// The bridge lives elsewhere (a VM, a user namespace): the runtime's name.
    Elsewhere(String),
}

/// Classifies `docker info --format '{{json .}}'`. Docker Desktop names itself in
/// `OperatingSystem`; rootless Docker lists `name=rootless` in `SecurityOptions`; colima's VM
/// is named `colima` (or `colima-<profile>`); a client on macOS or Windows always talks to an
/// engine in a VM.
pub fn classify(info: &serde_json::Value, client_os: &str) -> EngineHost {
    let s = |k: &str| info.get(k).and_then(|v| v.as_str()).unwrap_or("");
    if s("OperatingSystem").contains("Docker Desktop") {
        return EngineHost::Elsewhere("Docker Desktop".into());
    }
    let rootless = info
        .get("SecurityOptions")
        .and_then(|v| v.as_array())
        .is_some_and(|o| o.iter().any(|x| x.as_str() == Some("name=rootless")));
    if rootless {
        return EngineHost::Elsewhere("rootless Docker".into());
    }
    let name = s("Name");
    if name == "colima" || name.starts_with("colima-") {
        return EngineHost::Elsewhere("colima".into());
    }
    if s("OperatingSystem").to_ascii_lowercase().contains("podman")
        || s("ServerVersion").to_ascii_lowercase().contains("podman")
    {
        return EngineHost::Elsewhere("Podman".into());
    }
    if client_os != "linux" {
        return EngineHost::Elsewhere(format!("a Docker engine in a VM ({client_os})"));
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

/// Decides where to serve: the IPv4 gateway of the kind network ([`kind_network`]) on a
/// native engine, a clear "not yet" anywhere else.
pub async fn serve_at() -> Result<ServeAt, String> {
    serve_at_on(&kind_network()).await
}

/// [`serve_at`] for the Docker network `network`.
pub async fn serve_at_on(network: &str) -> Result<ServeAt, String> {
    if let Ok(p) = std::env::var(PROVIDER_ENV) {
        if !p.is_empty() && p != "docker" {
            return Err(format!(
                "{PROVIDER_ENV}={p}: the restore check serves its git repository on the kind network's gateway, which it finds through Docker; kind's {p} provider is not supported yet (issue #14)"
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
    if let EngineHost::Elsewhere(runtime) = classify(&info, std::env::consts::OS) {
        return Err(format!(
            "not yet: {runtime} runs the kind nodes where the kind network's gateway is not an address of this machine, so the restore check's git server cannot listen there (kind#2405); serving it through the runtime's host alias is issue #14's open part. Run the restore suite on a Linux host with a native Docker engine"
        ));
    }
    let network = network.to_string();
    let out = Cmd::new("docker")
        .args([
            "network",
            "inspect",
            network.as_str(),
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
        network,
    })
}

/// The command that fetches `url`'s smart-HTTP advertisement from inside `container`: with
/// curl where the container has it (kind's node image does: kind@v0.30.0
/// `images/base/Dockerfile:79`), else busybox wget. The URL is passed as `$0`, never spliced
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
        Err(e) => Err(format!(
            "the kind node {container} cannot fetch {repo_url} ({e}). The git server listens on {} of this machine, the {} network's gateway: a host firewall that drops traffic from the bridge to the host is the usual cause (ufw's default deny: allow it with `ufw allow in from <the {} subnet> to {} port {} proto tcp`)",
            at.bind.ip(),
            at.network,
            at.network,
            at.bind.ip(),
            url_port(repo_url).map(|p| p.to_string()).unwrap_or_else(|| "<port>".into()),
        )),
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
            EngineHost::Elsewhere("a Docker engine in a VM (macos)".into())
        );
        let desktop = json!({"OperatingSystem": "Docker Desktop", "Name": "docker-desktop"});
        assert_eq!(
            classify(&desktop, "linux"),
            EngineHost::Elsewhere("Docker Desktop".into())
        );
        let rootless = json!({"OperatingSystem": "Ubuntu 24.04", "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"]});
        assert_eq!(
            classify(&rootless, "linux"),
            EngineHost::Elsewhere("rootless Docker".into())
        );
        let colima = json!({"OperatingSystem": "Ubuntu 24.04 LTS", "Name": "colima-dev"});
        assert_eq!(
            classify(&colima, "linux"),
            EngineHost::Elsewhere("colima".into())
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
