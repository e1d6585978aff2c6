//! [`ClusterApi`] on the real Kubernetes API, through [`crate::kubeops`].

use super::api::{ApiError, ApiFuture, ClusterApi, KubeTarget, RUN_ID_LABEL, STACK_FIELD_MANAGER};
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
