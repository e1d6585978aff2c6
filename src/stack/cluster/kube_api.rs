//! [`ClusterApi`] on the real Kubernetes API, through [`crate::kubeops`].

use super::api::{
    ApiError, ApiFuture, ClusterApi, KubeTarget, ObjectRef, Selection, RUN_ID_LABEL,
    STACK_FIELD_MANAGER,
};
use crate::kubeops::apply::{apply_yaml, ApplyOptions};
use crate::kubeops::cleanup::cleanup_run;
use crate::kubeops::client::{client_from_kubeconfig, ClientOptions};
use crate::kubeops::manifest::parse_manifests;
use crate::kubeops::run_label::RunId;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::Scope;
use kube::Client;
use std::time::Duration;

/// How long a cleanup of an existing cluster may take (namespace finalization included).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(300);
/// Per-request bound for the plain create.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// The production [`ClusterApi`].
#[derive(Debug, Default, Clone, Copy)]
pub struct KubeClusterApi;

async fn client(target: &KubeTarget) -> Result<Client, ApiError> {
    let opts = ClientOptions {
        context: target.context.clone(),
        ..ClientOptions::default()
    };
    client_from_kubeconfig(&target.kubeconfig, &opts)
        .await
        .map_err(|e| ApiError(e.to_string()))
}

impl ClusterApi for KubeClusterApi {
    fn apply<'a>(
        &'a self,
        target: &'a KubeTarget,
        manifest: &'a str,
        run_id: Option<&'a str>,
    ) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let client = client(target).await?;
            let run_id = run_id
                .map(RunId::new)
                .transpose()
                .map_err(|e| ApiError(e.to_string()))?;
            let opts = ApplyOptions {
                force: true,
                field_manager: STACK_FIELD_MANAGER.to_string(),
                crd_timeout: Duration::from_secs(120),
                run_id,
                ..ApplyOptions::default()
            };
            // kubeops errors name objects and server messages, never manifest bodies.
            apply_yaml(&client, manifest, &opts)
                .await
                .map(|_| ())
                .map_err(|e| ApiError(e.to_string()))
        })
    }

    fn patch_existing<'a>(
        &'a self,
        target: &'a KubeTarget,
        manifest: &'a str,
    ) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let client = client(target).await?;
            for m in parse_manifests(manifest).map_err(|e| ApiError(e.to_string()))? {
                let (ar, caps) = kube::discovery::pinned_kind(&client, &m.gvk)
                    .await
                    .map_err(|e| ApiError(format!("discovery of {}: {e}", m.gvk.kind)))?;
                let ns = m.object.metadata.namespace.clone();
                let api: Api<DynamicObject> = match (caps.scope, &ns) {
                    (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
                    (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
                    (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
                };
                let what = label(&m.gvk.kind, ns.as_deref(), m.name());
                let found = tokio::time::timeout(CREATE_TIMEOUT, api.get_opt(m.name()))
                    .await
                    .map_err(|_| ApiError(format!("reading {what} timed out")))?
                    .map_err(|e| ApiError(format!("reading {what}: {e}")))?;
                if found.is_none() {
                    return Err(ApiError(format!(
                        "{what} does not exist, so there is nothing to patch (was it installed?)"
                    )));
                }
            }
            self.apply(target, manifest, None).await
        })
    }

    fn exists<'a>(&'a self, target: &'a KubeTarget, object: &'a ObjectRef) -> ApiFuture<'a, bool> {
        Box::pin(async move {
            let client = client(target).await?;
            let gvk = gvk(&object.api_version, &object.kind);
            let Some(api) = api_for(&client, &gvk, object.namespace.as_deref()).await? else {
                return Ok(false);
            };
            tokio::time::timeout(CREATE_TIMEOUT, api.get_metadata_opt(&object.name))
                .await
                .map_err(|_| ApiError(format!("reading {object} timed out")))?
                .map(|o| o.is_some())
                .map_err(|e| ApiError(format!("reading {object}: {e}")))
        })
    }

    fn delete<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, usize> {
        Box::pin(async move {
            let client = client(target).await?;
            let mut deleted = 0;
            for m in parse_manifests(manifest).map_err(|e| ApiError(e.to_string()))? {
                let ns = m.object.metadata.namespace.clone();
                let Some(api) = api_for(&client, &m.gvk, ns.as_deref()).await? else {
                    continue; // the kind is gone (its CRD was deleted first): so is the object
                };
                let what = label(&m.gvk.kind, ns.as_deref(), m.name());
                deleted += usize::from(delete_named(&api, m.name(), &what).await?);
            }
            Ok(deleted)
        })
    }

    fn delete_selected<'a>(
        &'a self,
        target: &'a KubeTarget,
        selection: &'a Selection,
    ) -> ApiFuture<'a, usize> {
        Box::pin(async move {
            let client = client(target).await?;
            let gvk = gvk(&selection.api_version, &selection.kind);
            let Some(api) = api_for(&client, &gvk, Some(&selection.namespace)).await? else {
                return Ok(0);
            };
            let lp = ListParams::default().labels(&selection.selector);
            let list = tokio::time::timeout(CREATE_TIMEOUT, api.list_metadata(&lp))
                .await
                .map_err(|_| ApiError(format!("listing {selection} timed out")))?
                .map_err(|e| ApiError(format!("listing {selection}: {e}")))?;
            let mut deleted = 0;
            for name in list.items.into_iter().filter_map(|o| o.metadata.name) {
                let what = label(&selection.kind, Some(&selection.namespace), &name);
                deleted += usize::from(delete_named(&api, &name, &what).await?);
            }
            Ok(deleted)
        })
    }

    fn nodes_ready<'a>(&'a self, target: &'a KubeTarget, timeout: Duration) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let client = client(target).await?;
            crate::kubeops::wait::nodes_ready(&client, timeout)
                .await
                .map_err(|e| ApiError(e.to_string()))
        })
    }

    fn create<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, bool> {
        Box::pin(async move {
            let client = client(target).await?;
            let mut objs = parse_manifests(manifest).map_err(|e| ApiError(e.to_string()))?;
            if objs.len() != 1 {
                return Err(ApiError(format!(
                    "create takes exactly one object, got {}",
                    objs.len()
                )));
            }
            let m = objs.remove(0);
            let (ar, caps) = kube::discovery::pinned_kind(&client, &m.gvk)
                .await
                .map_err(|e| ApiError(format!("discovery of {}: {e}", m.gvk.kind)))?;
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Cluster => Api::all_with(client, &ar),
                Scope::Namespaced => {
                    let ns = m
                        .object
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into());
                    Api::namespaced_with(client, &ns, &ar)
                }
            };
            let pp = PostParams {
                field_manager: Some(STACK_FIELD_MANAGER.to_string()),
                ..PostParams::default()
            };
            match tokio::time::timeout(CREATE_TIMEOUT, api.create(&pp, &m.object)).await {
                Err(_) => Err(ApiError(format!(
                    "creating {} {} timed out",
                    m.gvk.kind,
                    m.name()
                ))),
                Ok(Ok(_)) => Ok(true),
                Ok(Err(kube::Error::Api(s))) if s.code == 409 => Ok(false),
                Ok(Err(e)) => Err(ApiError(format!(
                    "creating {} {}: {e}",
                    m.gvk.kind,
                    m.name()
                ))),
            }
        })
    }

    fn cleanup_labelled<'a>(
        &'a self,
        target: &'a KubeTarget,
        label: &'a str,
        run_id: &'a str,
    ) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            if label != RUN_ID_LABEL {
                return Err(ApiError(format!(
                    "cleanup knows only the {RUN_ID_LABEL} label, not {label}"
                )));
            }
            let client = client(target).await?;
            let run = RunId::new(run_id).map_err(|e| ApiError(e.to_string()))?;
            cleanup_run(&client, &run, CLEANUP_TIMEOUT)
                .await
                .map(|_| ())
                .map_err(|e| ApiError(e.to_string()))
        })
    }
}

/// `Kind ns/name` or `Kind name`, as errors name an object.
fn label(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// `apps/v1` + `Deployment`, `v1` + `Secret`.
fn gvk(api_version: &str, kind: &str) -> kube::core::GroupVersionKind {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    kube::core::GroupVersionKind::gvk(group, version, kind)
}

/// Deletes one object (bounded); `false` when it was gone already.
async fn delete_named(api: &Api<DynamicObject>, name: &str, what: &str) -> Result<bool, ApiError> {
    match tokio::time::timeout(CREATE_TIMEOUT, api.delete(name, &DeleteParams::default())).await {
        Err(_) => Err(ApiError(format!("deleting {what} timed out"))),
        Ok(Ok(_)) => Ok(true),
        Ok(Err(kube::Error::Api(s))) if s.code == 404 => Ok(false),
        Ok(Err(e)) => Err(ApiError(format!("deleting {what}: {e}"))),
    }
}

/// The dynamic API for a kind, scoped to `namespace` when the kind is namespaced; `None` when
/// the server does not serve the kind at all (its CRD is not installed).
async fn api_for(
    client: &Client,
    gvk: &kube::core::GroupVersionKind,
    namespace: Option<&str>,
) -> Result<Option<Api<DynamicObject>>, ApiError> {
    let (ar, caps) = match kube::discovery::pinned_kind(client, gvk).await {
        Ok(found) => found,
        // Discovery answers 404 for a group/version nobody serves, and "not found" for a kind
        // missing from a served group.
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
        Err(kube::Error::Discovery(_)) => return Ok(None),
        Err(e) => return Err(ApiError(format!("discovery of {}: {e}", gvk.kind))),
    };
    Ok(Some(match (caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), &ar),
        (Scope::Cluster, _) => Api::all_with(client.clone(), &ar),
    }))
}
