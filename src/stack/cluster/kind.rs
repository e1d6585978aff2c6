//! kind clusters: one control-plane node on the suite's pinned image, host ports mapped onto the
//! ingress NodePorts, the kubeconfig in the run's temp dir (never `~/.kube/config`).

use crate::process::Cmd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `kind create cluster` waits for the control plane (`--wait`).
pub const READY_WAIT: &str = "120s";

/// A kind cluster meshproof creates (or is about to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindCluster {
    pub name: String,
    /// The 0600 kubeconfig kind writes, inside the run's temp dir.
    pub kubeconfig: PathBuf,
    /// The generated kind config file.
    pub config: PathBuf,
}

impl KindCluster {
    pub fn new(name: String, work_dir: &Path) -> KindCluster {
        KindCluster {
            name,
            kubeconfig: work_dir.join("kubeconfig"),
            config: work_dir.join("kind-config.yaml"),
        }
    }

    /// `kind create cluster --name N --config FILE --kubeconfig KCFG --wait 120s`.
    pub fn create_cmd(&self) -> Cmd {
        Cmd::new("kind")
            .args([
                "create",
                "cluster",
                "--name",
                self.name.as_str(),
                "--config",
            ])
            .arg(self.config.as_os_str())
            .arg("--kubeconfig")
            .arg(self.kubeconfig.as_os_str())
            .args(["--wait", READY_WAIT])
            // Pulling a node image on a cold machine takes minutes.
            .timeout(Duration::from_secs(600))
    }

    /// `kind version`: the node images the suites pin by digest were built by one kind release
    /// (ledger KIND-2, KIND-9), whose version tools.yaml pins; another release may not run them.
    pub fn version_cmd() -> Cmd {
        Cmd::new("kind")
            .arg("version")
            .timeout(Duration::from_secs(30))
    }

    /// `kind delete cluster --name N --kubeconfig KCFG`; allowed during shutdown.
    pub fn delete_cmd(&self) -> Cmd {
        Cmd::new("kind")
            .args([
                "delete",
                "cluster",
                "--name",
                self.name.as_str(),
                "--kubeconfig",
            ])
            .arg(self.kubeconfig.as_os_str())
            .timeout(Duration::from_secs(180))
            .during_shutdown()
    }

    /// `kind export logs DIR --name N`; allowed during shutdown.
    pub fn export_logs_cmd(&self, dir: &Path) -> Cmd {
        Cmd::new("kind")
            .args(["export", "logs"])
            .arg(dir.as_os_str())
            .args(["--name", self.name.as_str()])
            .timeout(Duration::from_secs(180))
            .during_shutdown()
    }

    /// What a user runs to delete the cluster by hand.
    pub fn manual_delete(&self) -> String {
        Cmd::new("kind")
            .args(["delete", "cluster", "--name", self.name.as_str()])
            .display()
    }
}
