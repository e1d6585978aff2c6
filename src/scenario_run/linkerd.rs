//! What a trial reads off a Linkerd-meshed pod: the proxy container (a native sidecar in
//! `initContainers` since Linkerd made that the default, or a classic one in `containers`), the
//! port meshed peers connect to, and the proxy's authorization counters.
//!
//! Pure functions over the pod spec and the `/metrics` text, so each rule is tested on the
//! shapes upstream renders (ledger LD-1, LD-2, LD-3).

use k8s_openapi::api::core::v1::{Container, Pod};
use std::net::SocketAddr;

/// The proxy container's name (linkerd2 `pkg/k8s/labels.go` `ProxyContainerName`).
pub const PROXY_CONTAINER: &str = "linkerd-proxy";
/// The env var holding the proxy's inbound listen address (`charts/partials/templates/_proxy.tpl`).
pub const INBOUND_LISTEN_ENV: &str = "LINKERD2_PROXY_INBOUND_LISTEN_ADDR";
/// The chart's default inbound port (`proxy.ports.inbound`).
pub const DEFAULT_INBOUND_PORT: u16 = 4143;
/// The proxy's admin port, which serves `/metrics` (`proxy.ports.admin`).
pub const ADMIN_PORT: u16 = 4191;

/// The `linkerd-proxy` container of a pod: init containers first (native sidecar), then
/// containers — the order Linkerd's destination controller searches
/// (`controller/api/destination/endpoint_translator.go`).
pub fn proxy_container(pod: &Pod) -> Option<&Container> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .find(|c| c.name == PROXY_CONTAINER)
}

/// The port meshed peers connect to on this pod in Linkerd's default `transport-header` mode:
/// the proxy's `LINKERD2_PROXY_INBOUND_LISTEN_ADDR` (`0.0.0.0:4143` by default, `[::]:4143` with
/// IPv6), or 4143 when the variable is missing or unreadable. `None` for a pod without a
/// Linkerd proxy (an unmeshed control).
pub fn inbound_port(pod: &Pod) -> Option<u16> {
    let proxy = proxy_container(pod)?;
    let from_env = proxy
        .env
        .iter()
        .flatten()
        .find(|e| e.name == INBOUND_LISTEN_ENV)
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.trim().parse::<SocketAddr>().ok())
        .map(|a| a.port());
    Some(from_env.unwrap_or(DEFAULT_INBOUND_PORT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    fn proxy(addr: Option<&str>) -> serde_json::Value {
        let env: Vec<serde_json::Value> = addr
            .map(|a| serde_json::json!({"name": INBOUND_LISTEN_ENV, "value": a}))
            .into_iter()
            .collect();
        serde_json::json!({"name": "linkerd-proxy", "image": "cr.l5d.io/linkerd/proxy", "env": env})
    }

    #[test]
    fn the_inbound_port_comes_from_the_native_sidecar_in_init_containers() {
        // The injector's native-sidecar patch: linkerd-init, then the proxy, in initContainers
        // (linkerd2 edge-26.8.3 controller/proxy-injector/fake/data/pod.nativesidecar.patch.json).
        let native = pod(serde_json::json!({
            "metadata": {"name": "env-1"},
            "spec": {
                "initContainers": [
                    {"name": "linkerd-init", "image": "x"},
                    proxy(Some("0.0.0.0:4143")).as_object().unwrap().clone()
                ],
                "containers": [{"name": "env", "image": "y"}]
            }
        }));
        assert_eq!(inbound_port(&native), Some(4143));
        let custom = pod(serde_json::json!({"spec": {
            "initContainers": [proxy(Some("[::]:4999"))],
            "containers": [{"name": "env"}]
        }}));
        assert_eq!(inbound_port(&custom), Some(4999), "IPv6 form");
    }

    #[test]
    fn a_classic_sidecar_or_a_missing_variable_still_answer_and_an_unmeshed_pod_does_not() {
        let classic = pod(serde_json::json!({"spec": {
            "containers": [{"name": "env"}, proxy(Some("0.0.0.0:4242"))]
        }}));
        assert_eq!(inbound_port(&classic), Some(4242));
        let bare = pod(serde_json::json!({"spec": {"containers": [{"name": "env"}, proxy(None)]}}));
        assert_eq!(inbound_port(&bare), Some(DEFAULT_INBOUND_PORT));
        let garbled = pod(serde_json::json!({"spec": {"containers": [proxy(Some("4143"))]}}));
        assert_eq!(inbound_port(&garbled), Some(DEFAULT_INBOUND_PORT));
        let unmeshed = pod(serde_json::json!({"spec": {"containers": [{"name": "env"}]}}));
        assert_eq!(inbound_port(&unmeshed), None);
    }
}
