//! The one place the trial calls the mtls packet-capture engine ([`crate::check::mtls`]), so
//! that its API can change without touching the check's logic: the mesh's preset ClientHello
//! rules (Istio ALPN, Linkerd SNI suffix), the ports a function's traffic arrives on (the app
//! port, and on Linkerd the proxy's inbound port, where the ALPN `transport.l5d.io/v1` is
//! required too), one sentinel per judgement.

use super::mtls::{EngineVerdict, MtlsJudge, WirePorts};
use crate::check::mtls::{
    self, CheckSpec, HelloRules, PortExpect, PortRules, LINKERD_TRANSPORT_ALPN,
};
use crate::scenario::Mesh;

/// The production judge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Engine;

/// The engine's preset rules for `mesh`.
pub fn rules_for(mesh: Mesh) -> HelloRules {
    let m = match mesh {
        Mesh::Istio => mtls::Mesh::Istio,
        Mesh::Linkerd => mtls::Mesh::Linkerd,
    };
    HelloRules::build(Some(m), &[], None)
}

/// Which flows are judged, and the stricter rules for Linkerd's inbound port.
pub fn scope_for(mesh: Mesh, ports: WirePorts) -> (Vec<u16>, Vec<PortRules>) {
    match (mesh, ports.proxy_inbound) {
        (Mesh::Linkerd, Some(inbound)) if inbound != ports.app => (
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
        mesh: Mesh,
        ports: WirePorts,
    ) -> EngineVerdict {
        let (ports, port_rules) = scope_for(mesh, ports);
        let spec = CheckSpec {
            sentinel: sentinel.to_string(),
            ports,
            rules: rules_for(mesh),
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
