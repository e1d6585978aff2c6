//! The seam between the stack and the Kubernetes API.
//!
//! Installers need exactly two things from a cluster besides the CLIs they drive: apply a
//! manifest meshproof generated (namespaces, secrets, a Service patch, the Gateway API CRDs, the
//! output of `linkerd install`), and, for clusters meshproof did not create, remove what a run
//! labelled. The kube layer implements [`ClusterApi`] (`kube_api::KubeClusterApi`); tests use
//! a recording double. Keeping the trait this small keeps the stack testable without a cluster.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

/// Label every namespace and cluster-scoped object a run creates carries, valued with the run
/// id, so that cleanup on an existing cluster deletes exactly those (spelled once, in kubeops).
pub use crate::kubeops::run_label::RUN_ID_LABEL;
/// Marks objects meshproof manages (informational; cleanup keys on [`RUN_ID_LABEL`]).
pub const MANAGED_BY_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "meshproof");

/// The server-side-apply field manager of everything the stack applies. Deliberately not the
/// scenarios' manager (`meshproof`): a scenario that re-applies `Namespace openfaas-fn` with one
/// annotation would otherwise take ownership of the whole object and SSA would *remove* the
/// stack's injection annotations and run-id label.
pub const STACK_FIELD_MANAGER: &str = "meshproof-stack";

/// Which cluster to talk to: a kubeconfig file and, optionally, a context in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeTarget {
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
}

/// A failed Kubernetes API operation, already readable (and free of secret values: callers
/// hand manifests that may hold secrets, and the implementation must not echo their data).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ApiError(pub String);

/// A boxed future, so that `dyn ClusterApi` works (async fns in traits are not object-safe).
pub type ApiFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

/// A namespaced object of the core API group, by kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for CoreObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the stack needs from the Kubernetes API.
///
/// Contract:
/// - [`apply`](ClusterApi::apply): server-side apply (field manager [`STACK_FIELD_MANAGER`],
///   `force: true`)
///   of every document of a multi-document YAML, in order, resolving kinds by discovery; returns
///   when every object is accepted and every `CustomResourceDefinition` in it is `Established`
///   (bounded by the implementation's own timeout). The text may contain Secrets: never log it.
/// - [`create`](ClusterApi::create): create the single object in `manifest` (a POST, not an
///   apply); `Ok(true)` if created, `Ok(false)` if an object of that name already existed (left
///   untouched). Used for namespaces, so that a namespace that was there before the run is never
///   labelled with the run id — and so never deleted by cleanup.
/// - [`patch_existing`](ClusterApi::patch_existing): server-side apply like `apply`, but only to
///   objects that already exist: one that does not is an error naming it, never created. Used
///   to change what an installer made (the Istio ingress gateway's NodePorts), so that a profile
///   without that object fails instead of growing an empty, selector-less copy.
/// - [`nodes_ready`](ClusterApi::nodes_ready): every Node `Ready` within the timeout (`kind
///   create --wait` only warns when the control plane is not: ledger KIND-3).
/// - [`exists`](ClusterApi::exists): whether the named core/v1 object exists (`kind` of the
///   core group, e.g. `ConfigMap`); used to choose between installing and upgrading.
/// - [`cleanup_labelled`](ClusterApi::cleanup_labelled): delete every namespace and every
///   cluster-scoped object labelled `label=run_id` (waiting, bounded, for namespaces to go), and
///   nothing else. Used on clusters meshproof did not create.
pub trait ClusterApi: Send + Sync {
    fn apply<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, ()>;
    fn create<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, bool>;
    fn patch_existing<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str)
        -> ApiFuture<'a, ()>;
    fn exists<'a>(&'a self, target: &'a KubeTarget, object: &'a CoreObject) -> ApiFuture<'a, bool>;
    /// Waits until every Node is `Ready`; the error carries each node's conditions.
    fn nodes_ready<'a>(&'a self, target: &'a KubeTarget, timeout: Duration) -> ApiFuture<'a, ()>;
    fn cleanup_labelled<'a>(
        &'a self,
        target: &'a KubeTarget,
        label: &'a str,
        run_id: &'a str,
    ) -> ApiFuture<'a, ()>;
}
