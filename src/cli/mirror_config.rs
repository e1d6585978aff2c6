//! `meshproof mirror-config --out DIR REGISTRY...`: the configuration of one pull-through proxy
//! per registry (the CNCF distribution registry, `registry:2`), for a runner that starts its own
//! mirrors (the nightly does). Writes `DIR/<slug>/config.yml` 0600 — the only place a
//! registry's credentials (`MESHPROOF_MIRROR_<KEY>_USERNAME`/`_TOKEN`) are written — and prints
//! the `MESHPROOF_MIRROR` value that sends each registry to its proxy at
//! `http://meshproof-mirror-<slug>:5000` (the container name on the kind network).

use crate::mirror::proxy::{Credentials, ProxyConfig};
use crate::mirror::{MirrorSetting, Upstream};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the configs go (one directory per registry).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
    /// The registries to mirror, as image references name them (`docker.io`, `ghcr.io`, …).
    #[arg(required = true, value_name = "REGISTRY")]
    pub registries: Vec<String>,
}

/// The container name of a registry's proxy on the kind network: the name `--mirror keep`
/// gives its own.
pub fn container_name(u: &Upstream) -> String {
    crate::mirror::local::container_name(u, None)
}

pub fn run(args: Args) -> i32 {
    let mut value = Vec::new();
    for r in &args.registries {
        let u = Upstream::new(r);
        let url = format!("http://{}:5000", container_name(&u));
        // The same rules as --mirror: a bad registry name is refused here, not in a node.
        if let Err(e) = MirrorSetting::parse(&[format!("{r}={url}")]) {
            eprintln!("meshproof: error: {e}");
            return 2;
        }
        let credentials = match Credentials::from_env(&u) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("meshproof: error: {e}");
                return 2;
            }
        };
        let config = ProxyConfig {
            upstream: u.clone(),
            listen: ":5000".into(),
            storage: "/var/lib/registry".into(),
            credentials,
        };
        let path = args.out.join(u.slug()).join("config.yml");
        if let Err(e) = config.write(&path) {
            eprintln!("meshproof: error: {e}");
            return 2;
        }
        eprintln!(
            "{}: {} → {} ({}{})",
            path.display(),
            u.name,
            u.server,
            container_name(&u),
            if config.credentials.is_some() {
                ", with credentials"
            } else {
                ", anonymous"
            }
        );
        value.push(format!("{r}={url}"));
    }
    outln!("{}", value.join(","));
    0
}
