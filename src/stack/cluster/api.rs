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

/// One object by its type and name: what the stack asks about (is a component there already?)
/// and deletes by name (a chart's CRD that `helm uninstall` keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `v1`, `apps/v1`, `apiextensions.k8s.io/v1`.
    pub api_version: String,
    pub kind: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// A namespaced object of the core group (`v1`).
    pub fn core(kind: &str, namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    pub fn namespace(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: name.into(),
        }
    }

    pub fn crd(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: None,
            name: name.into(),
        }
    }

    pub fn deployment(namespace: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    /// The object as a manifest naming only it (for [`ClusterApi::delete`]).
    pub fn manifest(&self) -> String {
        let mut meta = serde_json::json!({ "name": self.name });
        if let Some(ns) = &self.namespace {
            meta["namespace"] = serde_json::json!(ns);
        }
        serde_json::json!({ "apiVersion": self.api_version, "kind": self.kind, "metadata": meta })
            .to_string()
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Objects of one kind in one namespace, by label selector (the sealing keys a sealed-secrets
/// controller generated: its chart does not own them, so `helm uninstall` leaves them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    /// A label selector, e.g. `sealedsecrets.bitnami.com/sealed-secrets-key`.
    pub selector: String,
}

impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "every {} in {} labelled {}",
            self.kind, self.namespace, self.selector
        )
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
///   With a `run_id`, every object the apply *creates* is labelled [`RUN_ID_LABEL`]`=run_id`
///   (objects that existed keep their labels), so teardown on an existing cluster removes the
///   namespaces and cluster-scoped objects the run brought (CRDs, webhooks, cluster roles of
///   `linkerd install`'s output, the Gateway API CRDs) and nothing it found.
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
/// - [`exists`](ClusterApi::exists): whether the named object exists; a kind the server does not
///   serve counts as absent. Used to find components already on a cluster and to choose
///   between installing and upgrading.
/// - [`delete`](ClusterApi::delete): delete every object named in the manifest (only `apiVersion`,
///   `kind` and `metadata` are read); one that is gone already is no error. Returns how many
///   were deleted. Does not wait for finalizers.
/// - [`delete_selected`](ClusterApi::delete_selected): delete every object of a [`Selection`];
///   returns how many.
/// - [`cleanup_labelled`](ClusterApi::cleanup_labelled): delete every namespace and every
///   cluster-scoped object labelled `label=run_id` (waiting, bounded, for namespaces to go), and
///   nothing else. Used on clusters meshproof did not create.
pub trait ClusterApi: Send + Sync {
    fn apply<'a>(
        &'a self,
        target: &'a KubeTarget,
        manifest: &'a str,
        run_id: Option<&'a str>,
    ) -> ApiFuture<'a, ()>;
    fn create<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, bool>;
    fn patch_existing<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str)
        -> ApiFuture<'a, ()>;
    fn exists<'a>(&'a self, target: &'a KubeTarget, object: &'a ObjectRef) -> ApiFuture<'a, bool>;
    fn delete<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, usize>;
    fn delete_selected<'a>(
        &'a self,
        target: &'a KubeTarget,
        selection: &'a Selection,
    ) -> ApiFuture<'a, usize>;
    /// Waits until every Node is `Ready`; the error carries each node's conditions.
    fn nodes_ready<'a>(&'a self, target: &'a KubeTarget, timeout: Duration) -> ApiFuture<'a, ()>;
    fn cleanup_labelled<'a>(
        &'a self,
        target: &'a KubeTarget,
        label: &'a str,
        run_id: &'a str,
    ) -> ApiFuture<'a, ()>;
}
