//! What the restore flow needs from the outside world, as small traits.
//!
//! The kube layer implements [`ClusterOps`] (a client bound to one cluster); the cluster
//! providers/installers implement [`Lifecycle`]. Keeping the surface this narrow — JSON objects
//! in, YAML out — lets the flow be tested end to end with in-memory doubles, and keeps every
//! decision in pure functions over the JSON the API server returns.
//!
//! Contract for implementers (the lead wires these at merge):
//! - every method has its own timeout *and* the flow wraps each phase in one too;
//! - [`OpsError`] messages must never contain object contents: `apply` receives Secrets with
//!   key material, and `list` returns Secret data.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// A failed cluster operation, described without object contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OpsError(pub String);

/// The resource kinds the flow reads. `api_version`/`kind`/`plural` are what a dynamic client
/// needs; [`ResourceKind::ALL`] lists every one used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Secret,
    Deployment,
    Event,
    SealedSecret,
    GitRepository,
    Kustomization,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 6] = [
        ResourceKind::Secret,
        ResourceKind::Deployment,
        ResourceKind::Event,
        ResourceKind::SealedSecret,
        ResourceKind::GitRepository,
        ResourceKind::Kustomization,
    ];

    pub fn api_version(self) -> &'static str {
        match self {
            ResourceKind::Secret | ResourceKind::Event => "v1",
            ResourceKind::Deployment => "apps/v1",
            ResourceKind::SealedSecret => "bitnami.com/v1alpha1",
            ResourceKind::GitRepository => "source.toolkit.fluxcd.io/v1",
            ResourceKind::Kustomization => "kustomize.toolkit.fluxcd.io/v1",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            ResourceKind::Secret => "Secret",
            ResourceKind::Deployment => "Deployment",
            ResourceKind::Event => "Event",
            ResourceKind::SealedSecret => "SealedSecret",
            ResourceKind::GitRepository => "GitRepository",
            ResourceKind::Kustomization => "Kustomization",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            ResourceKind::Secret => "secrets",
            ResourceKind::Deployment => "deployments",
            ResourceKind::Event => "events",
            ResourceKind::SealedSecret => "sealedsecrets",
            ResourceKind::GitRepository => "gitrepositories",
            ResourceKind::Kustomization => "kustomizations",
        }
    }
}

/// A client bound to one cluster.
pub trait ClusterOps: Send + Sync {
    /// The kubeconfig of this cluster, for the CLIs (`flux`, `kubeseal`) the flow runs.
    fn kubeconfig(&self) -> &Path;

    /// Objects of `kind` in `namespace`, optionally filtered by a label selector
    /// (`key` or `key=value`), as the API server's JSON. Empty when there are none.
    fn list(
        &self,
        kind: ResourceKind,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> impl Future<Output = Result<Vec<serde_json::Value>, OpsError>> + Send;

    /// One object, or `None` when it does not exist.
    fn get(
        &self,
        kind: ResourceKind,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, OpsError>> + Send;

    /// Server-side applies every document of a multi-document YAML string (create or update).
    /// Receives Secrets with key material: must not log or echo the documents.
    fn apply(&self, yaml: &str) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// `kubectl rollout restart deployment/NAME`: patches the pod template annotation
    /// `kubectl.kubernetes.io/restartedAt` and returns once the new pods are Ready.
    fn restart_deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
}

/// The life of the cluster under test: destroy it, rebuild it.
pub trait Lifecycle: Send {
    type Cluster: ClusterOps;

    /// Destroys the cluster for good (kind: `kind delete cluster`).
    fn destroy(&mut self) -> impl Future<Output = Result<(), OpsError>> + Send;

    /// Creates a new cluster with the same spec and installs the suite's stack on it (mesh,
    /// OpenFaaS, sealed-secrets, Flux's controllers) exactly as for the first one — *not*
    /// Flux's sources, which the restore flow bootstraps itself — and returns a client bound
    /// to it. One step, because that is how a suite's environment comes up (and so the phase
    /// is named for all it holds: the rebuild). The sealed-secrets controller must come up as
    /// `sealed-secrets-controller` in `kube-system` (Helm:
    /// `fullnameOverride=sealed-secrets-controller`), which is what
    /// [`crate::restore::seal::Controller::default`] names explicitly.
    fn rebuild(&mut self) -> impl Future<Output = Result<Self::Cluster, OpsError>> + Send;
}

/// A monotonic clock, so that tests can measure phases on a clock they control.
pub trait Clock: Send + Sync {
    /// Time since an arbitrary, fixed origin.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock(std::time::Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(std::time::Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}
