//! The external tools meshproof drives, how to find them, and how a user gets them.

use super::ProcessError;
use std::path::PathBuf;

/// A CLI meshproof needs for a real run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    Docker,
    Kind,
    Helm,
    Istioctl,
    Linkerd,
    Flux,
    Kubeseal,
    Git,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Docker => "docker",
            Tool::Kind => "kind",
            Tool::Helm => "helm",
            Tool::Istioctl => "istioctl",
            Tool::Linkerd => "linkerd",
            Tool::Flux => "flux",
            Tool::Kubeseal => "kubeseal",
            Tool::Git => "git",
        }
    }

    /// How to install it: a pinned tool (tools.yaml) through `meshproof tools install`.
    pub fn hint(self) -> String {
        let pinned = crate::toolchain::table::Table::pinned()
            .and_then(|t| t.version(self.program()))
            .map(|v| {
                format!(
                    "run `meshproof tools install` (installs {} {v}, the pinned release, into the per-user cache meshproof searches), or install {v} yourself: ",
                    self.program()
                )
            })
            .unwrap_or_default();
        let own = match self {
            Tool::Docker => "install Docker Engine (https://docs.docker.com/engine/install/) and start the daemon",
            Tool::Kind => "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
            Tool::Helm => "https://helm.sh/docs/intro/install/",
            Tool::Istioctl => "https://istio.io/latest/docs/setup/additional-setup/download-istio-release/",
            Tool::Linkerd => "https://linkerd.io/2/getting-started/",
            Tool::Flux => "https://fluxcd.io/flux/installation/",
            Tool::Kubeseal => "https://github.com/bitnami/sealed-secrets#kubeseal",
            Tool::Git => "install git (e.g. `apt-get install git`)",
        };
        format!("{pinned}{own}")
    }

    /// Arguments that print the tool's own (client) version without touching a cluster.
    pub fn version_args(self) -> &'static [&'static str] {
        match self {
            Tool::Docker => &["version", "--format", "{{.Client.Version}}"],
            Tool::Kind => &["version"],
            Tool::Helm => &["version", "--short"],
            Tool::Istioctl => &["version", "--remote=false"],
            Tool::Linkerd => &["version", "--client", "--short"],
            Tool::Flux => &["version", "--client"],
            Tool::Kubeseal => &["--version"],
            Tool::Git => &["--version"],
        }
    }

    pub fn from_program(p: &str) -> Option<Tool> {
        [
            Tool::Docker,
            Tool::Kind,
            Tool::Helm,
            Tool::Istioctl,
            Tool::Linkerd,
            Tool::Flux,
            Tool::Kubeseal,
            Tool::Git,
        ]
        .into_iter()
        .find(|t| t.program() == p)
    }
}

/// Directories searched before `PATH` (colon-separated). Tests point it at a directory of
/// test-double CLIs for the child processes they spawn, without touching their own `PATH`.
pub const TOOL_PATH_ENV: &str = "MESHPROOF_TOOL_PATH";

/// Finds `program` in `MESHPROOF_TOOL_PATH`, then the pinned release `meshproof tools install`
/// put in the per-user cache (so the pinned one wins over whatever `PATH` has), then on `PATH`
/// (or takes it as a path when it contains `/`).
pub fn find(program: &str) -> Result<PathBuf, ProcessError> {
    if let Some(dirs) = std::env::var_os(TOOL_PATH_ENV).filter(|d| !d.is_empty()) {
        if !program.contains('/') {
            if let Ok(cwd) = std::env::current_dir() {
                if let Ok(p) = which::which_in(program, Some(dirs), cwd) {
                    return Ok(p);
                }
            }
        }
    }
    if !program.contains('/') {
        if let Some(p) = crate::toolchain::cached_binary(program) {
            return Ok(p);
        }
    }
    which::which(program).map_err(|_| ProcessError::NotFound {
        program: program.to_string(),
        hint: Tool::from_program(program)
            .map(Tool::hint)
            .unwrap_or_else(|| "install it or put it on PATH".to_string()),
    })
}
