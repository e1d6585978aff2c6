//! The one place the trial calls the mtls packet-capture engine ([`crate::check::mtls`]), so
//! that its API can change without touching the check's logic: the mesh's preset ClientHello
//! rules (Istio ALPN, Linkerd SNI suffix), the check's port, one sentinel per judgement.

use super::mtls::{EngineVerdict, MtlsJudge};
use crate::check::mtls::{self, CheckSpec, HelloRules};
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

impl MtlsJudge for Engine {
    fn judge(
        &self,
        pcap: &[u8],
        input_name: &str,
        sentinel: &str,
        mesh: Mesh,
        port: u16,
    ) -> EngineVerdict {
        let spec = CheckSpec {
            sentinel: sentinel.to_string(),
            port: Some(port),
            rules: rules_for(mesh),
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
