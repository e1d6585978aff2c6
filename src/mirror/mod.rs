//! Pull-through registry mirrors for kind clusters (issue #17).
//!
//! Every kind node pulls every image through its own containerd, once per cluster, and a run
//! makes up to three clusters per environment: without a mirror, Docker Hub's anonymous rate
//! limit is reached on a laptop or a self-hosted runner. containerd can send a registry's pulls
//! to a mirror first: with the CRI plugin's registry `config_path` set, it reads one
//! `hosts.toml` per registry host namespace (ledger CTD-1…CTD-6). Mirrors never rewrite image
//! references, so digest pins stay valid and nothing is loaded into a node by hand.
//!
//! - [`upstream`]: the registries images come from and where containerd really talks to them
//!   (`docker.io` is `registry-1.docker.io`).
//! - [`setting`]: the user's choice (`--mirror`, `MESHPROOF_MIRROR`): off, one mirror for every
//!   registry, a mirror per registry, or local pull-through containers started by the run.
//! - [`hosts`]: the `hosts.toml` files, and the directory tree containerd reads.
//! - [`kind`]: the kind config pieces: the containerd config patch and the mount of the tree.
//! - [`proxy`]: the configuration of a pull-through proxy (the CNCF distribution registry), the
//!   only place upstream credentials go (a 0600 file).
//! - [`probe`]: a mirror that does not answer fails the run before a cluster exists, naming the
//!   registry it mirrors (containerd itself would wait on it: its registry client has no
//!   response timeout).
//! - [`local`]: `--mirror local|keep`: a registry container per upstream on kind's network,
//!   started before the cluster, removed at the end of the run (`local`) or kept (`keep`);
//!   [`pool`] holds a run's containers.
//! - [`evidence`]: whether an image came through a local mirror, read from its access log.

pub mod evidence;
pub mod hosts;
pub mod kind;
pub mod local;
pub mod pool;
pub mod probe;
pub mod proxy;
pub mod setting;
pub mod upstream;

pub use hosts::{HostsDir, MirrorHost};
pub use setting::{MirrorSetting, NodeMirror};
pub use upstream::Upstream;

/// Everything that can go wrong configuring or reaching a mirror.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("--mirror {input:?}: {reason}")]
    Setting { input: String, reason: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the mirror {mirror} for {registry} did not answer GET /v2/ within {timeout}: {reason}; check that it runs and is reachable from this machine, or run without --mirror")]
    NoAnswer {
        mirror: String,
        registry: String,
        timeout: String,
        reason: String,
    },
    #[error("{0}")]
    NotYet(String),
    /// A local mirror container could not be started, reused, read or removed.
    #[error("{0}")]
    Local(String),
}

/// The directory, inside an environment's private directory, that holds its nodes' hosts tree.
pub const NODE_HOSTS_DIR: &str = "containerd-certs.d";

/// What a kind environment's nodes get: the hosts tree written under `env_dir`, every mirror in
/// it asked for `/v2/` first (a silent one stops the run here, naming its registry). `None`
/// when the setting is `off`.
pub async fn prepare_node(
    setting: &MirrorSetting,
    env_dir: &std::path::Path,
    timeout: std::time::Duration,
) -> Result<Option<NodeMirror>, MirrorError> {
    if let MirrorSetting::Local { .. } = setting {
        return Err(MirrorError::Local(
            "--mirror local/keep: the nodes' hosts tree names the run's mirror containers; start them first (mirror::pool::Pool::ensure, then prepare_node_local)".into(),
        ));
    }
    let Some(hosts) = setting.hosts()? else {
        return Ok(None);
    };
    let mut asked = std::collections::BTreeSet::new();
    for f in &hosts.files {
        if asked.insert(f.mirror.url.clone()) {
            let registry = f
                .upstream
                .as_ref()
                .map_or_else(|| "every registry".to_string(), |u| u.name.clone());
            probe::probe(&f.mirror, &registry, timeout).await?;
        }
    }
    let host_dir = env_dir.join(NODE_HOSTS_DIR);
    hosts.write(&host_dir)?;
    Ok(Some(NodeMirror { hosts, host_dir }))
}

/// What a kind environment's nodes get with local mirrors: every registry in `containers`
/// (upstream → container name) sent to `http://<container>:5000` first, then to the registry
/// itself. No probe from this machine (a container name resolves only on the Docker network):
/// the containers were seen listening when they started ([`local::start`]).
pub fn prepare_node_local(
    containers: &std::collections::BTreeMap<Upstream, String>,
    env_dir: &std::path::Path,
) -> Result<NodeMirror, MirrorError> {
    let hosts = local_hosts(containers);
    let host_dir = env_dir.join(NODE_HOSTS_DIR);
    hosts.write(&host_dir)?;
    Ok(NodeMirror { hosts, host_dir })
}

/// The hosts tree of local mirror containers (upstream → container name).
pub fn local_hosts(containers: &std::collections::BTreeMap<Upstream, String>) -> HostsDir {
    let per = containers
        .iter()
        .map(|(u, c)| (u.clone(), local::node_url(c)))
        .collect();
    HostsDir::new(None, &per)
}
