//! The restore check's cluster side.
//!
//! [`KubeClusterOps`] implements [`crate::restore::ClusterOps`] on the kube layer (dynamic
//! list/get, server-side apply, rollout restart). The [`crate::restore::Lifecycle`] — destroy
//! the trial's environment, provision a new one for the same `EnvironmentSpec` — needs the
//! session's environment slot, so it lives with the session (`run/trial.rs`); a trial without
//! one (`KubeTrial` on its own) answers the check with [`LIFECYCLE_NOT_YET`], an **error**.

use crate::check::{CheckName, Outcome, Verdict};
use crate::kubeops::apply::{apply_yaml, ApplyOptions};
use crate::kubeops::call::call;
use crate::kubeops::{wait, RunId};
use crate::restore::{ClusterOps, OpsError, ResourceKind};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::Client;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const LIFECYCLE_NOT_YET: &str =
    "not yet implemented: restore: rebuilding the environment from a trial (a restore::Lifecycle on the stack's environment: destroy = its teardown, create + install = its provisioning for the same EnvironmentSpec)";

/// The verdict of a restore check asked of a trial that has no lifecycle: an error, never a
/// pass.
pub(super) fn without_lifecycle() -> Verdict<serde_json::Value> {
    Verdict::new(
        CheckName::Restore,
        Outcome::Error,
        vec![LIFECYCLE_NOT_YET.to_string()],
        serde_json::Value::Null,
    )
}

/// Deadline of a rollout restart.
const RESTART_TIMEOUT: Duration = Duration::from_secs(300);

/// [`ClusterOps`] on a kube client bound to one cluster.
#[derive(Clone)]
pub struct KubeClusterOps {
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub run_id: Option<RunId>,
}

fn resource(kind: ResourceKind) -> ApiResource {
    let (group, version) = match kind.api_version().split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", kind.api_version()),
    };
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind.kind()),
        kind.plural(),
    )
}

fn ops_err(e: impl std::fmt::Display) -> OpsError {
    OpsError(e.to_string())
}

impl ClusterOps for KubeClusterOps {
    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    async fn list(
        &self,
        kind: ResourceKind,
        namespace: &str,
        label_selector: Option<&str>,
    ) -> Result<Vec<serde_json::Value>, OpsError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource(kind));
        let mut lp = ListParams::default();
        if let Some(s) = label_selector {
            lp = lp.labels(s);
        }
        let what = format!("{} in {namespace}", kind.plural());
        match call(&what, api.list(&lp)).await {
            Ok(l) => l
                .items
                .iter()
                .map(|o| serde_json::to_value(o).map_err(ops_err))
                .collect(),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(ops_err(e)),
        }
    }

    async fn get(
        &self,
        kind: ResourceKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, OpsError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource(kind));
        let what = format!("{} {namespace}/{name}", kind.kind());
        match call(&what, api.get_opt(name)).await {
            Ok(Some(o)) => serde_json::to_value(&o).map(Some).map_err(ops_err),
            Ok(None) => Ok(None),
            Err(e) => Err(ops_err(e)),
        }
    }

    async fn apply(&self, yaml: &str) -> Result<(), OpsError> {
        let opts = ApplyOptions {
            force: true,
            run_id: self.run_id.clone(),
            ..ApplyOptions::default()
        };
        apply_yaml(&self.client, yaml, &opts)
            .await
            .map(|_| ())
            .map_err(ops_err)
    }

    async fn restart_deployment(&self, namespace: &str, name: &str) -> Result<(), OpsError> {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), namespace);
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(ops_err)?;
        let patch = serde_json::json!({
            "spec": { "template": { "metadata": { "annotations": { "kubectl.kubernetes.io/restartedAt": now } } } }
        });
        call(
            &format!("deployment {namespace}/{name}"),
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await
        .map_err(ops_err)?;
        wait::deployment_rolled_out(&self.client, namespace, name, RESTART_TIMEOUT)
            .await
            .map(|_| ())
            .map_err(ops_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_are_built_from_the_flows_kinds() {
        let ar = resource(ResourceKind::SealedSecret);
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("bitnami.com", "v1alpha1", "sealedsecrets")
        );
        let ar = resource(ResourceKind::Secret);
        assert_eq!((ar.group.as_str(), ar.api_version.as_str()), ("", "v1"));
    }
}
