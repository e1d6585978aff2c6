//! The images a cluster's kubelets report running, with the digest each one resolved to.
//!
//! `meshproof images` says what a run *will* pull, rendered from the install commands; the
//! report's fingerprint records what the nodes *did* run: every container's `image` and the
//! `imageID` the kubelet reports for it (the content a tag was resolved to when it was pulled,
//! from the container runtime). A tag that moved between two runs shows up here even when the
//! suite and the charts did not change.

use super::call::call;
use super::error::KubeError;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::Client;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One image as run: the reference a pod spec named, the runtime's id for it (a digest
/// reference, `null` while a container has not started), and where it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunningImage {
    pub image: String,
    pub image_id: Option<String>,
    /// `namespace/container`, sorted, once each.
    pub used_by: Vec<String>,
}

/// Every image the pods' container statuses (init containers included: native sidecars and
/// mesh init containers are images the nodes pulled too) report, grouped by image and id,
/// sorted. Pure.
pub fn running_images(pods: &[Pod]) -> Vec<RunningImage> {
    let mut by: BTreeMap<(String, Option<String>), BTreeSet<String>> = BTreeMap::new();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let Some(status) = &pod.status else { continue };
        for c in status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
        {
            // Docker-shim era runtimes prefixed the id with its scheme; containerd (kind's)
            // reports the bare digest reference.
            let id = c
                .image_id
                .trim_start_matches("docker-pullable://")
                .trim_start_matches("docker://");
            let id = (!id.is_empty()).then(|| id.to_string());
            by.entry((c.image.clone(), id))
                .or_default()
                .insert(format!("{ns}/{}", c.name));
        }
    }
    by.into_iter()
        .map(|((image, image_id), used)| RunningImage {
            image,
            image_id,
            used_by: used.into_iter().collect(),
        })
        .collect()
}

/// The images running in every namespace of the cluster `client` reaches (one list call,
/// with the API's deadline).
pub async fn list_running_images(client: &Client) -> Result<Vec<RunningImage>, KubeError> {
    let pods: Api<Pod> = Api::all(client.clone());
    let list = call("pods (all namespaces)", pods.list(&ListParams::default())).await?;
    Ok(running_images(&list.items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, statuses: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "p", "namespace": ns },
            "status": statuses,
        }))
        .unwrap()
    }

    #[test]
    fn images_are_grouped_with_the_runtimes_id_and_where_they_ran() {
        let a = "ghcr.io/openfaas/gateway:0.27.13";
        let id = "ghcr.io/openfaas/gateway@sha256:aaaa";
        let pods = [
            pod(
                "openfaas",
                serde_json::json!({
                    "initContainerStatuses": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.30.3", "imageID": "docker-pullable://docker.io/istio/proxyv2@sha256:bbbb", "ready": false, "restartCount": 0}],
                    "containerStatuses": [
                        {"name": "gateway", "image": a, "imageID": id, "ready": true, "restartCount": 0},
                        {"name": "faas-netes", "image": "ghcr.io/openfaas/faas-netes:0.18.17", "imageID": "", "ready": false, "restartCount": 0}
                    ]
                }),
            ),
            pod(
                "openfaas",
                serde_json::json!({"containerStatuses": [{"name": "gateway", "image": a, "imageID": id, "ready": true, "restartCount": 0}]}),
            ),
            pod("kube-system", serde_json::json!({})),
        ];
        let got = running_images(&pods);
        assert_eq!(
            got,
            vec![
                RunningImage {
                    image: "docker.io/istio/proxyv2:1.30.3".into(),
                    image_id: Some("docker.io/istio/proxyv2@sha256:bbbb".into()),
                    used_by: vec!["openfaas/istio-init".into()],
                },
                // Not started yet: no id, never a made-up one.
                RunningImage {
                    image: "ghcr.io/openfaas/faas-netes:0.18.17".into(),
                    image_id: None,
                    used_by: vec!["openfaas/faas-netes".into()],
                },
                RunningImage {
                    image: a.into(),
                    image_id: Some(id.into()),
                    used_by: vec!["openfaas/gateway".into()],
                },
            ]
        );
    }
}
