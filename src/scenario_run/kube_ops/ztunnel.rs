//! Istio ambient's cluster side, shared by the deny and mtls drivers: the ztunnel on a pod's
//! node and its access log over a window (parsed by [`crate::scenario_run::ztunnel`]), and the
//! waypoint pods of a namespace (a capture's peers when a waypoint is in the path).

use super::KubeTrial;
use crate::kubeops::call::call;
use crate::kubeops::{logs, wait};
use crate::scenario_run::ztunnel::{
    self, ZtunnelView, WAYPOINT_POD_SELECTOR, ZTUNNEL_CONTAINER, ZTUNNEL_NAMESPACE,
    ZTUNNEL_SELECTOR,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use std::net::IpAddr;
use std::time::SystemTime;

/// A pod's IPs (`status.podIPs`, else `status.podIP`).
pub(super) fn pod_ips(p: &Pod) -> Vec<IpAddr> {
    let status = p.status.as_ref();
    let mut ips: Vec<IpAddr> = status
        .iter()
        .flat_map(|s| s.pod_ips.iter().flatten())
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    ips
}

impl KubeTrial {
    pub(super) async fn pod(&self, ns: &str, name: &str) -> Result<Pod, String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        call(&format!("pod {ns}/{name}"), api.get(name))
            .await
            .map_err(|e| e.to_string())
    }

    /// What the ztunnels on the nodes of `pods` (in `ns`) logged since `since`: the targets are
    /// those pods' IPs, the sources `sources`. The log is read with the API server's
    /// timestamps, over whole seconds back to `since` plus a margin.
    pub(super) async fn ztunnel_view(
        &self,
        ns: &str,
        pods: &[String],
        sources: Vec<IpAddr>,
        since: SystemTime,
    ) -> Result<ZtunnelView, String> {
        let mut targets = Vec::new();
        let mut nodes = Vec::new();
        for name in pods {
            let p = self.pod(ns, name).await?;
            targets.extend(pod_ips(&p));
            if let Some(node) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                if !nodes.contains(&node) {
                    nodes.push(node);
                }
            }
        }
        if nodes.is_empty() {
            return Err(format!(
                "none of {ns}/{} is scheduled on a node",
                pods.join(", ")
            ));
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ZTUNNEL_NAMESPACE);
        let list = call(
            &format!("ztunnel pods ({ZTUNNEL_SELECTOR}) in {ZTUNNEL_NAMESPACE}"),
            api.list(&ListParams::default().labels(ZTUNNEL_SELECTOR)),
        )
        .await
        .map_err(|e| e.to_string())?;
        let since_seconds = SystemTime::now()
            .duration_since(since)
            .map(|d| d.as_secs() as i64 + 5)
            .unwrap_or(5);
        let mut view = ZtunnelView {
            sources,
            targets,
            ..ZtunnelView::default()
        };
        for node in &nodes {
            let on_node: Vec<&Pod> = list
                .items
                .iter()
                .filter(|z| {
                    z.metadata.deletion_timestamp.is_none()
                        && z.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
                })
                .collect();
            if on_node.is_empty() {
                return Err(format!(
                    "no ztunnel pod ({ZTUNNEL_SELECTOR} in {ZTUNNEL_NAMESPACE}) on node {node}, where {ns}/{} runs",
                    pods.join(", ")
                ));
            }
            for z in on_node {
                let name = z.metadata.name.clone().unwrap_or_default();
                let text = logs::pod_logs_since(
                    &self.client,
                    ZTUNNEL_NAMESPACE,
                    &name,
                    ZTUNNEL_CONTAINER,
                    since_seconds,
                )
                .await
                .map_err(|e| e.to_string())?;
                view.lines.extend(ztunnel::parse_log(&text));
                view.ztunnels
                    .push(format!("{ZTUNNEL_NAMESPACE}/{name} on {node}"));
            }
        }
        Ok(view)
    }

    /// The IPs of the Ready waypoint pods in `ns` (pods of gateway class `istio-waypoint`);
    /// none is fine.
    pub(super) async fn waypoint_pod_ips(&self, ns: &str) -> Result<Vec<IpAddr>, String> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let list = call(
            &format!("waypoint pods ({WAYPOINT_POD_SELECTOR}) in {ns}"),
            api.list(&ListParams::default().labels(WAYPOINT_POD_SELECTOR)),
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && wait::pod_is_ready(p))
            .flat_map(pod_ips)
            .collect())
    }
}
