//! Flux: the command lines meshproof runs and the source/Kustomization objects it applies.
//!
//! Only flags known to exist are used: `flux install --version --components`,
//! `flux reconcile kustomization NAME --with-source`, and the global `--namespace`,
//! `--kubeconfig`, `--timeout`. Readiness is not read from the CLI's output: the flow waits on
//! the objects' JSON with the pure conditions in [`crate::check::restore`].

use crate::process::Cmd;
use crate::restore::repo::BRANCH;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// Where and how Flux is installed and what it is told to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxSpec {
    /// The pinned Flux distribution version (`v2.x.y`), from the suite's components.
    pub version: String,
    /// The namespace Flux runs in and its objects live in (`flux-system`).
    pub namespace: String,
    /// Name of the `GitRepository` and of the `Kustomization`.
    pub name: String,
}

impl FluxSpec {
    /// `version` as a suite writes it, `2.9.4` or `v2.9.4`: stored as `v2.9.4`, the only
    /// spelling `flux install --version` accepts (ledger FLUX-3). This is the one place the
    /// prefix is decided, for the installer and the restore flow alike.
    pub fn new(version: impl Into<String>) -> FluxSpec {
        let v: String = version.into();
        FluxSpec {
            version: if v.starts_with('v') {
                v
            } else {
                format!("v{v}")
            },
            namespace: "flux-system".into(),
            name: "meshproof-restore".into(),
        }
    }
}

fn humantime_flag(d: Duration) -> String {
    // Flux parses Go durations; whole seconds are always valid ("90s").
    format!("{}s", d.as_secs().max(1))
}

/// `flux version --client`: prints `flux: v2.9.4` (flux2 v2.9.4 `cmd/flux/version.go:86,128`).
/// Held to the pin before installing: `flux install --version` of the CLI's own version uses
/// the manifests embedded in the CLI; any other version downloads them from GitHub, and another
/// minor is refused (FLUX-3).
pub fn version_cmd(flux: &str) -> Cmd {
    Cmd::new(flux)
        .args(["version", "--client"])
        .timeout(Duration::from_secs(30))
}

/// `flux install` of the two controllers this scenario needs, at the pinned version.
pub fn install_cmd(flux: &str, spec: &FluxSpec, kubeconfig: &Path, timeout: Duration) -> Cmd {
    Cmd::new(flux)
        .arg("install")
        .arg(format!("--version={}", spec.version))
        .arg("--components=source-controller,kustomize-controller")
        .arg(format!("--namespace={}", spec.namespace))
        .arg(format!("--timeout={}", humantime_flag(timeout)))
        .arg("--kubeconfig")
        .arg(kubeconfig.as_os_str())
        .timeout(timeout + Duration::from_secs(30))
}

/// `flux uninstall --silent`: removes the controllers, the toolkit's custom resources (their
/// finalizers first), its CRDs and the namespace (flux2 v2.9.4 `cmd/flux/uninstall.go:53-103`,
/// ledger FLUX-10). Used on existing clusters the run installed Flux on.
pub fn uninstall_cmd(flux: &str, spec: &FluxSpec, kubeconfig: &Path, timeout: Duration) -> Cmd {
    Cmd::new(flux)
        .args(["uninstall", "--silent"])
        .arg(format!("--namespace={}", spec.namespace))
        .arg(format!("--timeout={}", humantime_flag(timeout)))
        .arg("--kubeconfig")
        .arg(kubeconfig.as_os_str())
        .timeout(timeout + Duration::from_secs(30))
}

/// `flux reconcile kustomization NAME --with-source`: fetch the source now, then apply it.
pub fn reconcile_cmd(flux: &str, spec: &FluxSpec, kubeconfig: &Path, timeout: Duration) -> Cmd {
    Cmd::new(flux)
        .args([
            "reconcile",
            "kustomization",
            spec.name.as_str(),
            "--with-source",
        ])
        .arg(format!("--namespace={}", spec.namespace))
        .arg(format!("--timeout={}", humantime_flag(timeout)))
        .arg("--kubeconfig")
        .arg(kubeconfig.as_os_str())
        .timeout(timeout + Duration::from_secs(30))
}

/// The `GitRepository` following `main` of `url`.
pub fn git_repository(spec: &FluxSpec, url: &str) -> serde_json::Value {
    json!({
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": { "name": spec.name, "namespace": spec.namespace },
        "spec": {
            "url": url,
            "ref": { "branch": BRANCH },
            "interval": "1m",
            "timeout": "60s",
        },
    })
}

/// The `Kustomization` applying the repository root, pruning what leaves git. It does not
/// `wait` for workloads: before the sealing key is restored the functions cannot start (their
/// secret does not exist yet), and the negative control must observe exactly that state.
pub fn kustomization(spec: &FluxSpec) -> serde_json::Value {
    json!({
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": { "name": spec.name, "namespace": spec.namespace },
        "spec": {
            "interval": "1m",
            "retryInterval": "10s",
            "timeout": "2m",
            "path": "./",
            "prune": true,
            "sourceRef": { "kind": "GitRepository", "name": spec.name },
        },
    })
}

/// Both objects as one multi-document YAML string.
pub fn sources_yaml(spec: &FluxSpec, url: &str) -> String {
    format!(
        "---\n{}---\n{}",
        serde_yaml::to_string(&git_repository(spec, url)).unwrap_or_default(),
        serde_yaml::to_string(&kustomization(spec)).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_gets_its_v_in_one_place() {
        assert_eq!(FluxSpec::new("2.9.4").version, "v2.9.4");
        assert_eq!(FluxSpec::new("v2.9.4").version, "v2.9.4");
    }

    #[test]
    fn install_is_pinned_and_minimal() {
        let s = FluxSpec::new("v2.9.4");
        let c = install_cmd("flux", &s, Path::new("/k"), Duration::from_secs(300));
        assert_eq!(
            c.argv(),
            [
                "install",
                "--version=v2.9.4",
                "--components=source-controller,kustomize-controller",
                "--namespace=flux-system",
                "--timeout=300s",
                "--kubeconfig",
                "/k"
            ]
        );
    }

    #[test]
    fn reconcile_pulls_the_source_first() {
        let s = FluxSpec::new("v2.9.4");
        let c = reconcile_cmd("flux", &s, Path::new("/k"), Duration::from_secs(120));
        assert_eq!(
            &c.argv()[..4],
            [
                "reconcile",
                "kustomization",
                "meshproof-restore",
                "--with-source"
            ]
        );
    }

    #[test]
    fn objects_reference_each_other() {
        let s = FluxSpec::new("v2.9.4");
        let g = git_repository(&s, "http://172.18.0.1:4000/desired.git");
        let k = kustomization(&s);
        assert_eq!(k["spec"]["sourceRef"]["name"], g["metadata"]["name"]);
        assert_eq!(g["spec"]["ref"]["branch"], "main");
        let text = sources_yaml(&s, "http://x/desired.git");
        let docs: Vec<&str> = text.split("---\n").filter(|d| !d.is_empty()).collect();
        assert_eq!(docs.len(), 2);
    }
}
