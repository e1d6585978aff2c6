//! The one place the trial calls the mtls packet-capture engine ([`crate::check::mtls`]), so
//! that its API can change without touching the check's logic: the data plane's preset
//! ClientHello rules (Istio sidecars' ALPN, ambient's HBONE, Linkerd's SNI suffix), the ports a
//! function's traffic arrives on (the app port; on Linkerd the proxy's inbound port, where the
//! ALPN `transport.l5d.io/v1` is required too; on Istio ambient ztunnel's 15008, with no payload
//! allowed on the app port: the `istio-ambient` preset scope, ledger IS-19), one sentinel per
//! judgement.

use super::mtls::{EngineVerdict, MtlsJudge, WirePorts};
use crate::check::mtls::{
    self, CheckSpec, HelloRules, PortExpect, PortRules, LINKERD_TRANSPORT_ALPN,
};
use crate::scenario::DataPlane;

/// The production judge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Engine;

/// The engine's mesh preset for a data plane.
pub fn engine_mesh(plane: DataPlane) -> mtls::Mesh {
    match plane {
        DataPlane::IstioSidecar => mtls::Mesh::Istio,
        DataPlane::IstioAmbient => mtls::Mesh::IstioAmbient,
        DataPlane::Linkerd => mtls::Mesh::Linkerd,
    }
}

/// The engine's preset rules for `plane`.
pub fn rules_for(plane: DataPlane) -> HelloRules {
    HelloRules::build(Some(engine_mesh(plane)), &[], None)
}

/// Which flows are judged, and the stricter rules: Linkerd's inbound port; ambient's preset
/// scope (15008 judged, no payload on the app port).
pub fn scope_for(plane: DataPlane, ports: WirePorts) -> (Vec<u16>, Vec<PortRules>) {
    if let Some(scope) = mtls::preset::scope(engine_mesh(plane), &[ports.app], &[]) {
        return scope;
    }
    match (plane, ports.proxy_inbound) {
        (DataPlane::Linkerd, Some(inbound)) if inbound != ports.app => (
            vec![ports.app, inbound],
            vec![PortRules {
                port: inbound,
                expect: PortExpect::Hello {
                    rules: HelloRules::build(
                        Some(mtls::Mesh::Linkerd),
                        &[LINKERD_TRANSPORT_ALPN.to_string()],
                        None,
                    ),
                },
            }],
        ),
        _ => (vec![ports.app], Vec::new()),
    }
}

impl MtlsJudge for Engine {
    fn judge(
        &self,
        pcap: &[u8],
        input_name: &str,
        sentinel: &str,
        plane: DataPlane,
        ports: WirePorts,
    ) -> EngineVerdict {
        let (ports, port_rules) = scope_for(plane, ports);
        let spec = CheckSpec {
            sentinel: sentinel.to_string(),
            ports,
            rules: rules_for(plane),
            port_rules,
        };
        let v = mtls::check(pcap, input_name, &spec);
        EngineVerdict {
            outcome: v.outcome,
            reasons: v.reasons.clone(),
            sentinel_hits: v.evidence.sentinel_hits_total,
            evidence: v.erase().evidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::mtls::{PortExpect, HBONE_PORT};

    #[test]
    fn each_data_plane_gets_its_preset_and_ambient_its_port_scope() {
        let ports = WirePorts {
            app: 8080,
            proxy_inbound: None,
        };
        let (judged, rules) = scope_for(DataPlane::IstioAmbient, ports);
        assert_eq!(judged, vec![HBONE_PORT, 8080]);
        assert!(
            matches!(&rules[..], [r] if r.port == 8080 && matches!(r.expect, PortExpect::NoPayload { .. }))
        );
        assert_eq!(
            rules_for(DataPlane::IstioAmbient).alpn_any_of,
            vec!["h2".to_string()]
        );
        assert!(rules_for(DataPlane::IstioAmbient).tls13_only);
        assert_eq!(
            scope_for(DataPlane::IstioSidecar, ports),
            (vec![8080], vec![])
        );
        assert_ne!(
            rules_for(DataPlane::IstioSidecar),
            rules_for(DataPlane::IstioAmbient)
        );
    }
}
