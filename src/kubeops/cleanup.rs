//! Removing exactly what a run created.
//!
//! The promise towards an existing cluster: a run deletes only objects carrying its run-id
//! label (set by [`super::apply`] on objects the run created). Labelled namespaces are deleted
//! (their contents go with them) and waited on until finalized; then labelled cluster-scoped
//! objects of every listable kind are deleted, CRDs last because deleting a CRD deletes all its
//! custom resources. Unlabelled objects of the same kinds are never touched.
//!
//! Namespaced objects a run created inside a namespace it did *not* create (e.g. a Function
//! in an existing `openfaas-fn`) are not covered here: scenario steps delete those explicitly.
//!
//! Kinds are enumerated per API group (preferred version) instead of with one
//! `Discovery::run`, so that one broken aggregated API (a metrics server that is not ready)
//! cannot stop a cleanup; groups that could not be listed are reported in `skipped_groups`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::core::GroupVersion;
use kube::discovery::{self, verbs, ApiResource, Scope};
use kube::{Client, ResourceExt};

use super::apply::display_name;
use super::call::call;
use super::error::KubeError;
use super::run_label::RunId;
use super::wait::namespace_gone;

/// What a cleanup removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CleanupReport {
    pub deleted_namespaces: Vec<String>,
    /// `Kind name` of deleted cluster-scoped objects.
    pub deleted_cluster_objects: Vec<String>,
    /// API groups that could not be enumerated (objects of their kinds were not looked for).
    pub skipped_groups: Vec<String>,
}

/// Deletes the namespaces and cluster-scoped objects labelled with `run`, and waits (within
/// `timeout` overall) until the namespaces are gone. Any deletion failure or namespace that is
/// still there at the deadline is a [`KubeError::Cleanup`].
pub async fn cleanup_run(
    client: &Client,
    run: &RunId,
    timeout: Duration,
) -> Result<CleanupReport, KubeError> {
    let deadline = Instant::now() + timeout;
    let selector = run.selector();
    let lp = ListParams::default().labels(&selector);
    let mut report = CleanupReport::default();
    let mut failures = Vec::new();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in call("namespaces", namespaces.list(&lp)).await?.items {
        let name = ns.name_any();
        match call(
            &format!("Namespace {name}"),
            namespaces.delete(&name, &DeleteParams::background()),
        )
        .await
        {
            Ok(_) => report.deleted_namespaces.push(name),
            Err(e) if e.is_not_found() => report.deleted_namespaces.push(name),
            Err(e) => failures.push(e.to_string()),
        }
    }

    let (kinds, skipped) = cluster_scoped_kinds(client).await?;
    report.skipped_groups = skipped;
    // CRDs last: deleting one removes every custom resource of its kinds.
    let (crds, others): (Vec<_>, Vec<_>) = kinds.into_iter().partition(|ar| {
        ar.group == "apiextensions.k8s.io" && ar.kind == "CustomResourceDefinition"
    });
    for ar in others.into_iter().chain(crds) {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        let listed = match call(&format!("list {}", ar.kind), api.list(&lp)).await {
            Ok(l) => l.items,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        for obj in listed {
            let id = display_name(&ar.kind, None, &obj.name_any());
            match call(
                &id,
                api.delete(&obj.name_any(), &DeleteParams::background()),
            )
            .await
            {
                Ok(_) => report.deleted_cluster_objects.push(id),
                Err(e) if e.is_not_found() => report.deleted_cluster_objects.push(id),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }

    for name in &report.deleted_namespaces {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = namespace_gone(client, name, left.max(Duration::from_millis(1))).await {
            failures.push(e.to_string());
        }
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(KubeError::Cleanup { failures })
    }
}

/// Every cluster-scoped kind (except Namespace) that supports list and delete, at its group's
/// preferred version; plus the groups that could not be enumerated.
async fn cluster_scoped_kinds(
    client: &Client,
) -> Result<(Vec<ApiResource>, Vec<String>), KubeError> {
    let mut gvs = vec![GroupVersion::gv("", "v1")];
    let groups = call("API group list", client.list_api_groups()).await?;
    for g in groups.groups {
        let version = g
            .preferred_version
            .map(|v| v.version)
            .or_else(|| g.versions.first().map(|v| v.version.clone()));
        if let Some(v) = version {
            gvs.push(GroupVersion::gv(&g.name, &v));
        }
    }
    let mut kinds = Vec::new();
    let mut skipped = Vec::new();
    for gv in gvs {
        let group = match call(
            &format!("discovery of {}", gv.api_version()),
            discovery::pinned_group(client, &gv),
        )
        .await
        {
            Ok(g) => g,
            Err(e) => {
                skipped.push(format!("{}: {e}", gv.api_version()));
                continue;
            }
        };
        for (ar, caps) in group.recommended_resources() {
            let cluster = matches!(caps.scope, Scope::Cluster);
            let is_ns = ar.group.is_empty() && ar.kind == "Namespace";
            if cluster
                && !is_ns
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE)
            {
                kinds.push(ar);
            }
        }
    }
    Ok((kinds, skipped))
}
