//! The words every layer of a run shares: the namespaces OpenFaaS runs in, the phases a plan
//! is printed in, the time a check allows a pod it starts, and the Docker network kind puts its
//! nodes on (the restore's git server and the local mirrors both join it).
//!
//! Why a module of its own: `plan` describes what `stack` and `scenario_run` execute, and all
//! three (with `restore`) name the same namespaces and phases. Kept here, below all of them,
//! no module has to import one that imports it back.

use std::time::Duration;

/// Namespace OpenFaaS core services run in.
pub const GATEWAY_NAMESPACE: &str = "openfaas";
/// Namespace OpenFaaS functions run in.
pub const FUNCTIONS_NAMESPACE: &str = "openfaas-fn";

/// Time to start a pod (image pull included) that a check creates for itself. The plan prints
/// it as part of a check's budget; the checks wait it.
pub const POD_START: Duration = Duration::from_secs(180);

/// Time for an ephemeral capture container to start, its image pull included: the capture
/// image is large, and its first pull on a fresh node takes minutes.
pub const CAPTURE_START: Duration = Duration::from_secs(300);

/// A step as the plan prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlannedStep {
    pub phase: Phase,
    pub title: String,
    /// Commands, values or sub-steps, one line each.
    pub detail: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Preflight,
    Provision,
    Install,
    Trial,
    Teardown,
}

/// kind's override of its Docker network's name (kind@v0.32.0
/// `pkg/cluster/internal/providers/docker/provider.go:72-73`; ledger KIND-8).
pub const KIND_NETWORK_ENV: &str = "KIND_EXPERIMENTAL_DOCKER_NETWORK";
/// kind's provider override: `podman` runs the nodes without Docker.
pub const KIND_PROVIDER_ENV: &str = "KIND_EXPERIMENTAL_PROVIDER";

/// The Docker network kind puts its nodes on.
pub fn kind_network() -> String {
    std::env::var(KIND_NETWORK_ENV)
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "kind".to_string())
}
