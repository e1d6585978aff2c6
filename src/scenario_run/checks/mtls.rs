//! The `mtls` check in a trial, over an [`MtlsDriver`] (capture + traffic + plaintext probe)
//! and an [`MtlsJudge`] (the packet-capture verdict engine).
//!
//! Order, as the plan prints it:
//! 1. **Negative control**: capture `eth0` of the *unmeshed* control function's pod while the
//!    gateway sends it `requests` requests, each with a fresh random sentinel in a header and
//!    the body. The engine must find the sentinels in plaintext (its verdict: fail, with
//!    sentinel hits). Otherwise the capture is blind (wrong interface, wrong pod, traffic that
//!    never arrived) and a "no plaintext" result for the real function would prove nothing:
//!    the check is an **error**.
//! 2. The same for the meshed function: every sentinel's judgement must **pass** (no sentinel in
//!    plaintext, every flow TLS with the mesh's ClientHello).
//! 3. Identity: every echoed request (`fprocess=env` prints the request headers as `Http_*`
//!    variables) carries the gateway's mesh identity.
//! 4. Strict (optional): a plaintext client in an unmeshed namespace calling the function's
//!    Service directly must be refused (reset/EOF after connect).

use super::deny::Observed;
use crate::check::http::Classification;
use crate::check::{CheckName, Outcome, Verdict};
use crate::scenario::{Mesh, MtlsCheck};
use serde::Serialize;

/// The engine's judgement of one capture for one sentinel, reduced to what the trial needs.
#[derive(Debug, Clone, Serialize)]
pub struct EngineVerdict {
    pub outcome: Outcome,
    pub reasons: Vec<String>,
    /// Plaintext occurrences of the sentinel in the capture.
    pub sentinel_hits: u64,
    pub evidence: serde_json::Value,
}

/// The ports a function pod's traffic arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WirePorts {
    /// The function's own port (the check's `port`): plaintext arrives here.
    pub app: u16,
    /// Linkerd's proxy inbound port, where meshed peers connect in the default
    /// `transport-header` mode (ledger LD-1, LD-2); `None` for a pod without a Linkerd proxy.
    pub proxy_inbound: Option<u16>,
}

/// Judges a pcap byte stream. The production judge is [`super::mtls_engine::Engine`].
pub trait MtlsJudge {
    fn judge(
        &self,
        pcap: &[u8],
        input_name: &str,
        sentinel: &str,
        mesh: Mesh,
        ports: WirePorts,
    ) -> EngineVerdict;
}

/// What one capture phase produced.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub pcap: Vec<u8>,
    /// The sentinel each request carried, in order.
    pub sentinels: Vec<String>,
    /// Response bodies (the echoed environment), in order.
    pub responses: Vec<String>,
    /// tcpdump's own report (`N packets captured`).
    pub capture_log: String,
    /// Requests sent again after a transient failure (a 503 while a just-Ready pod's endpoint
    /// reaches the proxies); each kept its sentinel.
    pub retries: u32,
    /// The Linkerd proxy's inbound port of the captured pod (also captured and judged).
    pub proxy_inbound: Option<u16>,
}

#[allow(async_fn_in_trait)]
pub trait MtlsDriver {
    /// Captures `eth0` of `function`'s pod — only TCP on the check's port exchanged with the
    /// gateway's pods, so kubelet probes and other peers stay out — while sending `requests`
    /// requests to it through the gateway, each with a fresh sentinel (header and body).
    async fn capture_traffic(&mut self, function: &str, requests: u32) -> Result<Traffic, String>;
    /// A plaintext request from an unmeshed namespace straight to the function's Service.
    async fn plaintext_probe(&mut self, function: &str, port: u16) -> Result<Observed, String>;
}

/// A fresh random sentinel: long enough never to occur in ciphertext by chance.
pub fn new_sentinel() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("meshproof-sentinel-{}", hex::encode(bytes))
}

/// The identity line the echoed environment must contain, per mesh.
pub fn identity_expectation(mesh: Mesh, gateway_ns: &str, gateway_sa: &str) -> (String, String) {
    match mesh {
        Mesh::Istio => (
            "Http_X_Forwarded_Client_Cert".into(),
            format!("URI=spiffe://cluster.local/ns/{gateway_ns}/sa/{gateway_sa}"),
        ),
        Mesh::Linkerd => (
            "Http_L5d_Client_Id".into(),
            format!("{gateway_sa}.{gateway_ns}.serviceaccount.identity.linkerd.cluster.local"),
        ),
    }
}

/// Checks one echoed environment: Istio's XFCC must *contain* the URI; Linkerd's client id must
/// *equal* the identity.
pub fn identity_ok(mesh: Mesh, body: &str, var: &str, expected: &str) -> Result<(), String> {
    let value = body
        .lines()
        .find_map(|l| l.strip_prefix(var).and_then(|r| r.strip_prefix('=')));
    match (mesh, value) {
        (_, None) => Err(format!("no {var} in the echoed request")),
        (Mesh::Istio, Some(v)) if v.contains(expected) => Ok(()),
        (Mesh::Linkerd, Some(v)) if v.trim() == expected => Ok(()),
        (_, Some(v)) => Err(format!("{var}={v:?}, expected {expected}")),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseEvidence {
    pub function: String,
    pub requests: u32,
    pub pcap_bytes: usize,
    pub capture_log: String,
    /// Requests retried after a transient failure.
    pub retries: u32,
    /// Per sentinel: outcome and plaintext hits.
    pub judgements: Vec<(Outcome, u64)>,
    /// The engine's evidence for the first sentinel (flows, ClientHellos).
    pub engine_evidence: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct MtlsTrialEvidence {
    pub control: Option<PhaseEvidence>,
    pub function: Option<PhaseEvidence>,
    pub identity_var: Option<String>,
    pub identity_expected: Option<String>,
    pub identity_failures: Vec<String>,
    pub strict: Option<Observed>,
}

fn judge_all<J: MtlsJudge>(
    judge: &J,
    t: &Traffic,
    name: &str,
    mesh: Mesh,
    port: u16,
) -> (Vec<EngineVerdict>, PhaseEvidence) {
    let verdicts: Vec<EngineVerdict> = t
        .sentinels
        .iter()
        .map(|s| {
            let ports = WirePorts {
                app: port,
                proxy_inbound: t.proxy_inbound,
            };
            judge.judge(&t.pcap, name, s, mesh, ports)
        })
        .collect();
    let ev = PhaseEvidence {
        function: name.to_string(),
        requests: t.sentinels.len() as u32,
        pcap_bytes: t.pcap.len(),
        capture_log: t.capture_log.clone(),
        retries: t.retries,
        judgements: verdicts
            .iter()
            .map(|v| (v.outcome, v.sentinel_hits))
            .collect(),
        engine_evidence: verdicts.first().map(|v| v.evidence.clone()),
    };
    (verdicts, ev)
}

/// Decides the control: every request's sentinel must be seen in plaintext.
pub fn control_judgement(verdicts: &[EngineVerdict]) -> Result<(), String> {
    if verdicts.is_empty() {
        return Err("capture is blind: no request was sent to the control".into());
    }
    if let Some(v) = verdicts.iter().find(|v| v.outcome == Outcome::Error) {
        return Err(format!(
            "the mtls engine could not judge the control capture: {}",
            v.reasons.join("; ")
        ));
    }
    let unseen = verdicts
        .iter()
        .filter(|v| !(v.outcome == Outcome::Fail && v.sentinel_hits > 0))
        .count();
    if unseen > 0 {
        return Err(format!(
            "capture is blind: {unseen} of {} sentinels sent to the UNMESHED control were not seen in plaintext on its eth0, so a clean capture of the meshed function would prove nothing",
            verdicts.len()
        ));
    }
    Ok(())
}

/// Runs the whole mtls check (see the module docs).
pub async fn run_mtls<D: MtlsDriver, J: MtlsJudge>(
    driver: &mut D,
    judge: &J,
    m: &MtlsCheck,
    mesh: Mesh,
    gateway_ns: &str,
    gateway_sa: &str,
) -> Verdict<MtlsTrialEvidence> {
    let mut ev = MtlsTrialEvidence::default();
    let error =
        |ev, reason: String| Verdict::new(CheckName::Mtls, Outcome::Error, vec![reason], ev);
    // 1. The control.
    let control = match driver.capture_traffic(m.control.as_str(), m.requests).await {
        Ok(t) => t,
        Err(e) => return error(ev, format!("negative control ({}): {e}", m.control)),
    };
    let (cv, cev) = judge_all(judge, &control, m.control.as_str(), mesh, m.port);
    ev.control = Some(cev);
    if let Err(e) = control_judgement(&cv) {
        return error(ev, e);
    }
    // 2. The meshed function.
    let traffic = match driver
        .capture_traffic(m.function.as_str(), m.requests)
        .await
    {
        Ok(t) => t,
        Err(e) => return error(ev, format!("capturing {}: {e}", m.function)),
    };
    let (fv, fev) = judge_all(judge, &traffic, m.function.as_str(), mesh, m.port);
    ev.function = Some(fev);
    let mut outcome = Outcome::Pass;
    let mut reasons = Vec::new();
    if fv.is_empty() {
        return error(ev, format!("no request was sent to {}", m.function));
    }
    for v in fv.iter().filter(|v| v.outcome != Outcome::Pass) {
        outcome = outcome.worst(v.outcome);
        for r in v.reasons.iter().take(3) {
            if !reasons.contains(r) {
                reasons.push(r.clone());
            }
        }
    }
    // 3. Identity.
    let (var, expected) = identity_expectation(mesh, gateway_ns, gateway_sa);
    for (i, body) in traffic.responses.iter().enumerate() {
        if let Err(e) = identity_ok(mesh, body, &var, &expected) {
            ev.identity_failures.push(format!("request {}: {e}", i + 1));
        }
    }
    if traffic.responses.is_empty() {
        ev.identity_failures
            .push("no echoed request to check".into());
    }
    if !ev.identity_failures.is_empty() {
        outcome = outcome.worst(Outcome::Fail);
        reasons.push(format!(
            "{} of {} echoed requests lack the gateway identity ({var} with {expected}); first: {}",
            ev.identity_failures.len(),
            traffic.responses.len().max(1),
            ev.identity_failures[0]
        ));
    }
    ev.identity_var = Some(var);
    ev.identity_expected = Some(expected);
    // 4. Strict.
    if m.strict {
        match driver.plaintext_probe(m.function.as_str(), m.port).await {
            Ok(obs) => {
                if !matches!(obs.classification, Classification::Denied(_)) {
                    outcome = outcome.worst(Outcome::Fail);
                    reasons.push(format!(
                        "strict: a plaintext client from an unmeshed namespace was not refused by {}: {:?} ({})",
                        m.function, obs.classification, obs.detail
                    ));
                }
                ev.strict = Some(obs);
            }
            Err(e) => {
                outcome = outcome.worst(Outcome::Error);
                reasons.push(format!("strict: the plaintext probe could not run: {e}"));
            }
        }
    }
    if outcome == Outcome::Pass {
        reasons.push(format!(
            "the control showed all {} sentinels in plaintext; the meshed function's capture showed none and only mesh TLS; every request carried the gateway identity{}",
            cv.len(),
            if m.strict { "; a plaintext client was refused" } else { "" }
        ));
    }
    Verdict::new(CheckName::Mtls, outcome, reasons, ev)
}
