//! The pieces of a kind cluster config that make every node's containerd use the mirrors:
//! a `containerdConfigPatches` entry setting the CRI registry `config_path`, and an
//! `extraMounts` entry putting the generated hosts tree there (ledger KIND-1, CTD-1, CTD-6).

use serde_json::{json, Value};
use std::path::Path;

/// Where containerd reads the hosts tree inside a node.
pub const NODE_CERTS_DIR: &str = "/etc/containerd/certs.d";

/// The patch kind merges into each node's `/etc/containerd/config.toml` before containerd is
/// restarted (CTD-6). kind's node config is `version = 2`, so the key is the CRI plugin's
/// version-2 name; containerd 2.x migrates it to `io.containerd.cri.v1.images` (CTD-1).
pub fn containerd_config_patch() -> String {
    format!(
        "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{NODE_CERTS_DIR}\"\n"
    )
}

/// The bind mount of the hosts tree written on this machine (read-only: a node never writes it).
pub fn extra_mount(host_dir: &Path) -> Value {
    json!({
        "containerPath": NODE_CERTS_DIR,
        "hostPath": host_dir.display().to_string(),
        "readOnly": true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_is_toml_setting_the_cri_registry_config_path() {
        let v: toml::Value = toml::from_str(&containerd_config_patch()).unwrap();
        assert_eq!(
            v["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"].as_str(),
            Some("/etc/containerd/certs.d")
        );
    }
}
