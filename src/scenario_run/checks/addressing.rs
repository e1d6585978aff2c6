//! How the OpenFaaS gateway addresses a function, read from what the function saw: the `Host`
//! that `fprocess=env` echoes as `Http_Host` (classic-watchdog `handler.go`). A pod IP there is
//! OpenFaaS CE, whose faas-netes calls a random endpoint by IP (ledger OF-3, OF-4); a name is
//! the function's Service (OpenFaaS Pro with `directFunctions`). Under Istio sidecars only the
//! second is routed and encrypted by the mesh (IS-8), so the checks that judge gateway traffic
//! — mtls, canary through the gateway — read this first and stop on a pod IP with the cause.

use serde::Serialize;

/// How the gateway addresses functions, from the `Host` a function saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum Addressing {
    /// A pod IP (OpenFaaS CE's faas-netes picks an endpoint and calls it directly).
    PodIp { host: String },
    /// A name: the function's Service.
    Service { host: String },
}

/// The `Host` echoed by `fprocess=env` (`Http_Host=…`, classic-watchdog `handler.go`).
pub fn echoed(body: &str, var: &str) -> Option<String> {
    body.lines()
        .find_map(|l| l.strip_prefix(var).and_then(|r| r.strip_prefix('=')))
        .map(|v| v.trim().to_string())
}

/// How the gateway addressed the function whose echoes these are (the first echo that has a
/// `Host`).
pub fn addressing(responses: &[String]) -> Option<Addressing> {
    let host = responses.iter().find_map(|b| echoed(b, "Http_Host"))?;
    let name = host
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(&host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some(if name.parse::<std::net::IpAddr>().is_ok() {
        Addressing::PodIp { host }
    } else {
        Addressing::Service { host }
    })
}

/// The error a check gives when Istio sidecars cannot see the gateway's traffic as Service
/// traffic: never a mesh pass or fail.
pub fn pod_ip_under_istio(host: &str, seen_by: &str) -> String {
    format!(
        "the gateway addresses functions by pod IP (Host: {host}, as {seen_by} saw it): Istio sidecars send pod-IP traffic through PassthroughCluster in plaintext, so no mesh mTLS or route can apply to it. This is OpenFaaS CE's gateway (it calls pods through faas-netes); run OpenFaaS Pro with gateway.directFunctions=true"
    )
}

/// The error the canary check gives when the gateway calls a function by pod IP under Istio
/// ambient: ztunnel meshes that traffic (mTLS), but ztunnel sends a pod-addressed connection to
/// a waypoint only for a workload-addressed waypoint, and a Service's `HTTPRoute` split lives on
/// the Service's waypoint (istio/ztunnel 1.30.3 `src/proxy/outbound.rs:656-696`, ledger IS-24):
/// no split can apply to it.
pub fn pod_ip_under_ambient(host: &str) -> String {
    format!(
        "the gateway addresses functions by pod IP (Host: {host}): Istio ambient's ztunnel meshes that traffic, but a Service's HTTPRoute is applied by the Service's waypoint to traffic addressed to the Service, so the split cannot apply through this gateway"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_ip_host_is_told_from_a_service_name() {
        let env = |h: &str| vec![format!("PATH=/bin\nHttp_Host={h}\nHttp_Path=/\n")];
        assert_eq!(
            addressing(&env("10.244.0.12:8080")),
            Some(Addressing::PodIp {
                host: "10.244.0.12:8080".into()
            })
        );
        assert_eq!(
            addressing(&env("[fd00::12]:8080")),
            Some(Addressing::PodIp {
                host: "[fd00::12]:8080".into()
            })
        );
        assert_eq!(
            addressing(&env("env.openfaas-fn.svc.cluster.local:8080")),
            Some(Addressing::Service {
                host: "env.openfaas-fn.svc.cluster.local:8080".into()
            })
        );
        assert_eq!(addressing(&["no host here".to_string()]), None);
    }
}
