//! What a trial reads off a Linkerd-meshed pod: the proxy container (a native sidecar in
//! `initContainers` since Linkerd made that the default, or a classic one in `containers`), the
//! port meshed peers connect to, and the proxy's authorization counters.
//!
//! Pure functions over the pod spec and the `/metrics` text, so each rule is tested on the
//! shapes upstream renders (ledger LD-7, LD-9, LD-13).

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

/// The proxy's inbound authorization counters for one target port, summed over every series
/// (ledger LD-13: `inbound_http_authz_deny_total` carries no `authz_*` labels;
/// `target_port` is the app port even for traffic that arrived on the inbound port).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AuthzCounters {
    /// `inbound_http_authz_deny_total`: requests the proxy refused (a 403 it sent itself).
    pub denied: u64,
    /// `inbound_http_authz_allow_total{authz_name="probe"}`: requests it let through as kubelet
    /// probe paths (authorized for every client while a Server has no routes, ledger LD-12).
    pub probe_allowed: u64,
}

impl std::ops::Add for AuthzCounters {
    type Output = AuthzCounters;
    fn add(self, o: AuthzCounters) -> AuthzCounters {
        AuthzCounters {
            denied: self.denied + o.denied,
            probe_allowed: self.probe_allowed + o.probe_allowed,
        }
    }
}

/// Reads [`AuthzCounters`] for `target_port` out of a proxy's `/metrics` text. A family that is
/// absent counts 0: the proxy emits a counter only once it has counted something.
pub fn authz_counters(metrics: &str, target_port: u16) -> Result<AuthzCounters, String> {
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| format!("the proxy's metrics do not parse: {e}"))?;
    let port = target_port.to_string();
    let mut c = AuthzCounters::default();
    for s in &scrape.samples {
        if s.labels.get("target_port") != Some(port.as_str()) {
            continue;
        }
        let n = match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        // Counters are integers; a float that is not one means the text is not what we read.
        if !(n >= 0.0 && n.fract() == 0.0) {
            return Err(format!("{} = {n} is not a count", s.metric));
        }
        match s.metric.as_str() {
            "inbound_http_authz_deny_total" => c.denied += n as u64,
            "inbound_http_authz_allow_total" if s.labels.get("authz_name") == Some("probe") => {
                c.probe_allowed += n as u64
            }
            _ => {}
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape linkerd2-proxy v2.366.0 writes (`linkerd/app/inbound/src/metrics/authz.rs`,
    /// label sets from `linkerd/app/core/src/metrics.rs`): the deny series has route and server
    /// labels, no `authz_*`; the allow series adds them.
    const METRICS: &str = r#"# HELP inbound_http_authz_allow_total The total number of inbound HTTP requests that were authorized
# TYPE inbound_http_authz_allow_total counter
inbound_http_authz_allow_total{target_addr="10.244.0.9:8080",target_ip="10.244.0.9",target_port="8080",srv_group="policy.linkerd.io",srv_kind="server",srv_name="gateway-http",srv_port="8080",route_group="",route_kind="default",route_name="probe",authz_group="",authz_kind="default",authz_name="probe",tls="no_identity",no_tls_reason="no_tls_from_remote"} 12
inbound_http_authz_allow_total{target_addr="10.244.0.9:8080",target_ip="10.244.0.9",target_port="8080",srv_group="policy.linkerd.io",srv_kind="server",srv_name="gateway-http",srv_port="8080",route_group="",route_kind="default",route_name="default",authz_group="policy.linkerd.io",authz_kind="authorizationpolicy",authz_name="gateway-from-core",tls="true",client_id="openfaas-controller.openfaas.serviceaccount.identity.linkerd.cluster.local"} 40
inbound_http_authz_allow_total{target_addr="10.244.0.9:4191",target_ip="10.244.0.9",target_port="4191",srv_group="",srv_kind="default",srv_name="all-unauthenticated",srv_port="4191",route_group="",route_kind="default",route_name="probe",authz_group="",authz_kind="default",authz_name="probe",tls="no_identity",no_tls_reason="no_tls_from_remote"} 99
# HELP inbound_http_authz_deny_total The total number of inbound HTTP requests that could not be processed due to a proxy error.
# TYPE inbound_http_authz_deny_total counter
inbound_http_authz_deny_total{target_addr="10.244.0.9:8080",target_ip="10.244.0.9",target_port="8080",srv_group="policy.linkerd.io",srv_kind="server",srv_name="gateway-http",srv_port="8080",route_group="",route_kind="default",route_name="default",tls="true",client_id="default.openfaas-fn.serviceaccount.identity.linkerd.cluster.local"} 3
inbound_http_authz_deny_total{target_addr="10.244.0.9:8080",target_ip="10.244.0.9",target_port="8080",srv_group="policy.linkerd.io",srv_kind="server",srv_name="gateway-http",srv_port="8080",route_group="",route_kind="default",route_name="default",tls="no_identity",no_tls_reason="no_tls_from_remote"} 1
inbound_http_authz_deny_total{target_addr="10.244.0.9:9090",target_ip="10.244.0.9",target_port="9090",srv_group="policy.linkerd.io",srv_kind="server",srv_name="prometheus-http",srv_port="9090",route_group="",route_kind="default",route_name="default",tls="true",client_id="default.openfaas-fn.serviceaccount.identity.linkerd.cluster.local"} 7
request_total{direction="inbound",target_addr="10.244.0.9:8080",target_port="8080"} 500
"#;

    #[test]
    fn authorization_counters_are_summed_per_target_port() {
        assert_eq!(
            authz_counters(METRICS, 8080),
            Ok(AuthzCounters {
                denied: 4,
                probe_allowed: 12
            })
        );
        assert_eq!(
            authz_counters(METRICS, 9090),
            Ok(AuthzCounters {
                denied: 7,
                probe_allowed: 0
            })
        );
        // The admin port's own probe allows (and /metrics scrapes) never count for the app.
        assert_eq!(authz_counters(METRICS, 4191).unwrap().denied, 0);
        // A proxy that has denied nothing yet has no deny family at all.
        assert_eq!(authz_counters("", 8080), Ok(AuthzCounters::default()));
        assert!(authz_counters(
            "inbound_http_authz_deny_total{target_port=\"8080\"} 1.5",
            8080
        )
        .is_err());
    }

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
