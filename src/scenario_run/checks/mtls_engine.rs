//! The one place the trial calls the mtls packet-capture engine, so that its API can change
//! without touching the check's logic.
//!
//! The engine (`crate::check::mtls`, issue #3) is being finished on its own branch and is not
//! part of this one yet: until it is merged, [`Engine`] answers every capture with an **error**
//! verdict saying so — never a pass, and the control rule then reports the engine error, not a
//! blind capture. Wiring it is this body (its API: `check<R: Read>(input, input_name,
//! &CheckSpec) -> Verdict<MtlsEvidence>`):
//!
//! ```text
//! use crate::check::mtls::{check, CheckSpec, HelloRules, Mesh as M};
//! let rules = HelloRules::build(Some(match mesh { Mesh::Istio => M::Istio, Mesh::Linkerd => M::Linkerd }), &[], None);
//! let v = check(pcap, input_name, &CheckSpec { sentinel: sentinel.into(), port: Some(port), rules });
//! EngineVerdict { outcome: v.outcome, reasons: v.reasons.clone(),
//!                 sentinel_hits: v.evidence.sentinel_hits_total, evidence: v.erase().evidence }
//! ```

use super::mtls::{EngineVerdict, MtlsJudge};
use crate::check::Outcome;
use crate::scenario::Mesh;

/// The production judge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Engine;

/// The reason every capture gets until the engine is merged.
pub const ENGINE_NOT_MERGED: &str =
    "not yet implemented: the mtls packet-capture engine (issue #3, branch wt-mtls) is not merged into this build";

impl MtlsJudge for Engine {
    fn judge(
        &self,
        pcap: &[u8],
        input_name: &str,
        _sentinel: &str,
        mesh: Mesh,
        port: u16,
    ) -> EngineVerdict {
        EngineVerdict {
            outcome: Outcome::Error,
            reasons: vec![ENGINE_NOT_MERGED.to_string()],
            sentinel_hits: 0,
            evidence: serde_json::json!({
                "input": input_name, "pcap_bytes": pcap.len(), "mesh": mesh.as_str(), "port": port
            }),
        }
    }
}
