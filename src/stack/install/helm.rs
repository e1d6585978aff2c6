//! Helm command lines. Repositories are registered in a config and cache inside the run's
//! temp dir (`HELM_REPOSITORY_CONFIG`/`HELM_REPOSITORY_CACHE`), so a run never edits the user's
//! Helm setup and two runs never race on it.

use crate::process::Cmd;
use crate::stack::cluster::api::KubeTarget;
use std::path::Path;
use std::time::Duration;

/// How long `helm upgrade --install --wait` may take (image pulls on a fresh kind node).
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `helm uninstall --wait --timeout 5m` may take, with a margin for Helm's own.
pub const UNINSTALL_TIMEOUT: Duration = Duration::from_secs(360);

pub struct Helm<'a> {
    pub target: &'a KubeTarget,
    pub work_dir: &'a Path,
}

/// One `--set`/`--set-file` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Set(String, String),
    File(String, String),
}

impl Value {
    pub fn set(k: &str, v: impl Into<String>) -> Value {
        Value::Set(k.into(), v.into())
    }
}

impl Helm<'_> {
    fn base(&self) -> Cmd {
        Cmd::new("helm")
            .env(
                "HELM_REPOSITORY_CONFIG",
                self.work_dir.join("helm/repositories.yaml"),
            )
            .env("HELM_REPOSITORY_CACHE", self.work_dir.join("helm/cache"))
    }

    /// `helm repo add NAME URL --force-update` (idempotent).
    pub fn repo_add(&self, name: &str, url: &str) -> Cmd {
        self.base()
            .args(["repo", "add", name, url, "--force-update"])
            .timeout(Duration::from_secs(120))
    }

    /// `helm upgrade --install` (idempotent), pinned, waiting until every resource is ready.
    pub fn upgrade_install(
        &self,
        release: &str,
        chart: &str,
        version: &str,
        namespace: &str,
        values: &[Value],
    ) -> Cmd {
        let mut c = self.base().args([
            "upgrade",
            "--install",
            release,
            chart,
            "--version",
            version,
            "--namespace",
            namespace,
        ]);
        c = c
            .arg("--kubeconfig")
            .arg(self.target.kubeconfig.as_os_str());
        if let Some(ctx) = &self.target.context {
            c = c.args(["--kube-context", ctx.as_str()]);
        }
        c = c.args(["--wait", "--timeout", "10m"]);
        for v in values {
            c = match v {
                Value::Set(k, v) => c.args(["--set".to_string(), format!("{k}={v}")]),
                Value::File(k, path) => c.args(["--set-file".to_string(), format!("{k}={path}")]),
            };
        }
        c.timeout(INSTALL_TIMEOUT + Duration::from_secs(60))
    }

    /// `helm uninstall` of a release this run installed on an existing cluster, waiting until
    /// its resources are gone. A release that never got installed (the install failed early)
    /// is no error (`--ignore-not-found`, Helm 3.13+).
    pub fn uninstall(&self, release: &str, namespace: &str) -> Cmd {
        let mut c = self.base().args([
            "uninstall",
            release,
            "--namespace",
            namespace,
            "--ignore-not-found",
            "--wait",
            "--timeout",
            "5m",
        ]);
        c = c
            .arg("--kubeconfig")
            .arg(self.target.kubeconfig.as_os_str());
        if let Some(ctx) = &self.target.context {
            c = c.args(["--kube-context", ctx.as_str()]);
        }
        c.timeout(UNINSTALL_TIMEOUT)
    }
}
