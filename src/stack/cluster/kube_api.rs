//! [`ClusterApi`] on the real Kubernetes API, through [`crate::kubeops`].

use super::api::{
    ApiError, ApiFuture, ClusterApi, CoreObject, KubeTarget, RUN_ID_LABEL, STACK_FIELD_MANAGER,
};
use crate::kubeops::apply::{apply_yaml, ApplyOptions};
use crate::kubeops::cleanup::cleanup_run;
use crate::kubeops::client::{client_from_kubeconfig, ClientOptions};
use crate::kubeops::manifest::parse_manifests;
use crate::kubeops::run_label::RunId;
use kube::api::{Api, DynamicObject, PostParams};
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
    fn apply<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let client = client(target).await?;
            let opts = ApplyOptions {
                force: true,
                field_manager: STACK_FIELD_MANAGER.to_string(),
                crd_timeout: Duration::from_secs(120),
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
                let what = format!(
                    "{} {}{}",
                    m.gvk.kind,
                    ns.map(|n| format!("{n}/")).unwrap_or_default(),
                    m.name()
                );
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
            self.apply(target, manifest).await
        })
    }

    fn exists<'a>(&'a self, target: &'a KubeTarget, object: &'a CoreObject) -> ApiFuture<'a, bool> {
        Box::pin(async move {
            let client = client(target).await?;
            let gvk = kube::core::GroupVersionKind::gvk("", "v1", &object.kind);
            let (ar, _) = kube::discovery::pinned_kind(&client, &gvk)
                .await
                .map_err(|e| ApiError(format!("discovery of {}: {e}", object.kind)))?;
            let api: Api<DynamicObject> = Api::namespaced_with(client, &object.namespace, &ar);
            tokio::time::timeout(CREATE_TIMEOUT, api.get_metadata_opt(&object.name))
                .await
                .map_err(|_| ApiError(format!("reading {object} timed out")))?
                .map(|o| o.is_some())
                .map_err(|e| ApiError(format!("reading {object}: {e}")))
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
