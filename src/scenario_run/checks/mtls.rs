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
//! 2. **Path self-check**: the control echoes the `Host` the gateway sent (`Http_Host`). A pod
//!    IP there means the gateway addresses functions by pod IP (OpenFaaS CE, ledger OF-3/OF-4).
//!    Under Istio sidecars such traffic bypasses the mesh's mTLS and routes (IS-8), so the check
//!    is an **error** naming that cause — never a mesh fail or pass. Linkerd meshes pod-IP
//!    traffic (LD-7): there the addressing is only recorded.
//! 3. The same capture for the meshed function, **always stopped and judged**: a sentinel in
//!    plaintext **fails** whatever the HTTP outcome; failed requests otherwise make it an
//!    **error** carrying the first answer's body; else every flow must be TLS with the mesh's
//!    ClientHello (on Linkerd, on the proxy's inbound port too).
//! 4. Identity: every echoed request (`fprocess=env` prints the request headers as `Http_*`
//!    variables) carries the gateway's mesh identity: on Istio the **last**
//!    `X-Forwarded-Client-Cert` element's `URI=` (the one the function's sidecar appended),
//!    compared exactly; on Linkerd `l5d-client-id`.
//! 5. Strict (optional): a plaintext client in an unmeshed namespace calling the function's
//!    Service directly must be refused. On Istio, STRICT refuses by closing the connection
//!    (IS-9): a reset or close passes, a 403 **fails** (the port took plaintext and a policy
//!    answered), and a leftover AuthorizationPolicy in the namespace, which could close the
//!    connection itself, makes the probe an **error**. On Linkerd the proxy answers a bare 403,
//!    which counts only when the function proxy's `inbound_http_authz_deny_total` rose.

use super::addressing::{addressing, echoed, pod_ip_under_istio, Addressing};
use super::deny::{attribute, Attribution, Observed};
use crate::check::http::{Classification, Denial};
use crate::check::{CheckName, Outcome, Verdict};
use crate::scenario::{Mesh, MtlsCheck};
use crate::scenario_run::linkerd::AuthzCounters;
use serde::Serialize;
use std::time::Duration;

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
    /// `transport-header` mode (ledger LD-7, LD-9); `None` for a pod without a Linkerd proxy.
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
    /// Requests that got no 2xx answer in the end (status and the start of the body, or the
    /// transport error), in order; requests the phase's time ran out for count here too.
    pub failures: Vec<String>,
}

#[allow(async_fn_in_trait)]
pub trait MtlsDriver {
    /// Captures `eth0` of `function`'s pod — only TCP on the check's port (and on Linkerd the
    /// proxy's inbound port) exchanged with the gateway's pods, so kubelet probes and other
    /// peers stay out — while sending `requests` requests to it through the gateway, each with
    /// a fresh sentinel (header and body), retrying transient failures until `deadline` runs
    /// out. The capture is stopped and returned even when requests failed; `Err` only when
    /// there is no capture.
    async fn capture_traffic(
        &mut self,
        function: &str,
        requests: u32,
        deadline: Duration,
    ) -> Result<Traffic, String>;
    /// A plaintext request from an unmeshed namespace straight to the function's Service.
    async fn plaintext_probe(&mut self, function: &str, port: u16) -> Result<Observed, String>;
    /// Istio: the AuthorizationPolicies that apply to the function's namespace (its own and the
    /// root namespace's), by name. A plaintext probe proves STRICT only when none could answer.
    async fn authorization_policies(&mut self) -> Result<Vec<String>, String>;
    /// Linkerd: the function pod proxy's authorization counters for `port`.
    async fn proxy_counters(&mut self, function: &str, port: u16) -> Result<AuthzCounters, String>;
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

/// The `URI=` of the **last** element of an `X-Forwarded-Client-Cert` value: the element the
/// receiving sidecar appended (`APPEND_FORWARD`, ledger IS-12), whose `URI` is the client that
/// connected to it. Elements are separated by `,`, fields by `;`; values may be quoted.
pub fn xfcc_last_uri(xfcc: &str) -> Option<String> {
    let mut elements = Vec::new();
    let (mut cur, mut quoted) = (String::new(), false);
    for c in xfcc.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => elements.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    elements.push(cur);
    let last = elements.pop()?;
    last.split(';').find_map(|field| {
        let (k, v) = field.trim().split_once('=')?;
        k.eq_ignore_ascii_case("URI")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Checks one echoed environment: Istio's last XFCC element must carry exactly the gateway's
/// SPIFFE URI; Linkerd's client id must *equal* the identity.
pub fn identity_ok(mesh: Mesh, body: &str, var: &str, expected: &str) -> Result<(), String> {
    match (mesh, echoed(body, var)) {
        (_, None) => Err(format!("no {var} in the echoed request")),
        (Mesh::Istio, Some(v)) => {
            let want = expected.strip_prefix("URI=").unwrap_or(expected);
            match xfcc_last_uri(&v) {
                Some(uri) if uri == want => Ok(()),
                Some(uri) => Err(format!(
                    "the last {var} element has URI={uri}, expected {want} ({var}={v:?})"
                )),
                None => Err(format!("the last {var} element has no URI ({var}={v:?})")),
            }
        }
        (Mesh::Linkerd, Some(v)) if v == expected => Ok(()),
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
    /// Requests without a 2xx answer in the end.
    pub failures: Vec<String>,
    /// Per sentinel: outcome and plaintext hits.
    pub judgements: Vec<(Outcome, u64)>,
    /// The engine's evidence for the first sentinel (flows, ClientHellos).
    pub engine_evidence: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct MtlsTrialEvidence {
    pub control: Option<PhaseEvidence>,
    /// How the gateway addressed the control (its echoed `Host`).
    pub gateway_addressing: Option<Addressing>,
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
        failures: t.failures.clone(),
        judgements: verdicts
            .iter()
            .map(|v| (v.outcome, v.sentinel_hits))
            .collect(),
        engine_evidence: verdicts.first().map(|v| v.evidence.clone()),
    };
    (verdicts, ev)
}

/// Packets tcpdump reports it lost (`N packets dropped by kernel`, `… by interface`, from its
/// final report on stderr: tcpdump.c `info()`, one per line at exit, `, `-separated on
/// SIGUSR1; ledger TD-1), summed; `None` when the log has no such line. A capture with holes
/// cannot show that plaintext was absent: the missing packets may be exactly the plaintext.
pub fn dropped_packets(capture_log: &str) -> Option<u64> {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"(?:^|[,\s])(\d+) packets? dropped by (?:kernel|interface)\b")
            .expect("static regex")
    });
    let mut total = None;
    for c in RE.captures_iter(capture_log) {
        let n: u64 = c[1].parse().unwrap_or(u64::MAX);
        total = Some(total.unwrap_or(0u64).saturating_add(n));
    }
    total
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

/// What the strict probe's answer means. Pure.
pub fn strict_judgement(mesh: Mesh, obs: &Observed) -> (Outcome, Option<String>) {
    let refused = "a plaintext client from an unmeshed namespace";
    match (&obs.classification, mesh) {
        (Classification::Denied(Denial::ConnectionReset | Denial::ConnectionClosed), _) => {
            (Outcome::Pass, None)
        }
        (Classification::Denied(Denial::Forbidden { .. }), Mesh::Istio) => (
            Outcome::Fail,
            Some(format!(
                "strict: {refused} got HTTP 403 ({}): the port accepted plaintext and a policy answered; under STRICT Istio closes the connection before any HTTP",
                obs.detail
            )),
        ),
        (Classification::Denied(Denial::Forbidden { .. }), Mesh::Linkerd) => {
            match &obs.attribution {
                Some(Attribution::Mesh { .. }) => (Outcome::Pass, None),
                _ => (
                    Outcome::Error,
                    Some(format!("strict: {refused} got {}", obs.describe())),
                ),
            }
        }
        (Classification::Allowed { .. }, _) => (
            Outcome::Fail,
            Some(format!("strict: {refused} was not refused: {}", obs.describe())),
        ),
        (Classification::Undecided { .. }, _) => (
            Outcome::Error,
            Some(format!(
                "strict: the plaintext probe could not be decided: {}",
                obs.describe()
            )),
        ),
    }
}

/// The first failures of a phase, for the reasons.
fn first_failures(t: &Traffic) -> String {
    t.failures
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ")
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
    // Each phase's requests, retries included, share half the check's traffic time.
    let phase = m.timeout / 2;
    // 1. The control.
    let control = match driver
        .capture_traffic(m.control.as_str(), m.requests, phase)
        .await
    {
        Ok(t) => t,
        Err(e) => return error(ev, format!("negative control ({}): {e}", m.control)),
    };
    let (cv, cev) = judge_all(judge, &control, m.control.as_str(), mesh, m.port);
    ev.control = Some(cev);
    if let Err(e) = control_judgement(&cv) {
        let why = if control.failures.is_empty() {
            e
        } else {
            format!(
                "{e} ({} of {} requests to the control failed: {})",
                control.failures.len(),
                m.requests,
                first_failures(&control)
            )
        };
        return error(ev, why);
    }
    // 2. How does the gateway address functions?
    ev.gateway_addressing = addressing(&control.responses);
    match (&ev.gateway_addressing, mesh) {
        (Some(Addressing::PodIp { host }), Mesh::Istio) => {
            let why = pod_ip_under_istio(host, m.control.as_str());
            return error(ev, why);
        }
        (None, _) => {
            return error(
                ev,
                format!(
                    "the control's echo has no Http_Host, so how the gateway addresses functions is unknown (is {} running `fprocess=env`?)",
                    m.control
                ),
            )
        }
        _ => {}
    }
    // 3. The meshed function.
    let traffic = match driver
        .capture_traffic(m.function.as_str(), m.requests, phase)
        .await
    {
        Ok(t) => t,
        Err(e) => return error(ev, format!("capturing {}: {e}", m.function)),
    };
    let (fv, fev) = judge_all(judge, &traffic, m.function.as_str(), mesh, m.port);
    ev.function = Some(fev);
    if fv.is_empty() {
        return error(ev, format!("no request was sent to {}", m.function));
    }
    let mut outcome = Outcome::Pass;
    let mut reasons = Vec::new();
    let plaintext = fv
        .iter()
        .any(|v| v.outcome == Outcome::Fail && v.sentinel_hits > 0);
    if let Some(lost) = dropped_packets(&traffic.capture_log).filter(|n| *n > 0) {
        if !plaintext {
            // A sentinel in the clear is conclusive whatever was lost; its absence is not.
            return error(
                ev,
                format!(
                    "the capture of {} lost {lost} packets (tcpdump's report: dropped by kernel or interface): the packets missing may be the plaintext, so a clean capture proves nothing",
                    m.function
                ),
            );
        }
    }
    if !plaintext && !traffic.failures.is_empty() {
        // Nothing conclusive on the wire, and the traffic did not go through.
        return error(
            ev,
            format!(
                "{} of {} requests to {} through the gateway failed (no sentinel seen in plaintext): {}",
                traffic.failures.len(),
                m.requests,
                m.function,
                first_failures(&traffic)
            ),
        );
    }
    for v in fv.iter().filter(|v| v.outcome != Outcome::Pass) {
        outcome = outcome.worst(v.outcome);
        for r in v.reasons.iter().take(3) {
            if !reasons.contains(r) {
                reasons.push(r.clone());
            }
        }
    }
    if plaintext && !traffic.failures.is_empty() {
        reasons.push(format!(
            "{} requests failed as well: {}",
            traffic.failures.len(),
            first_failures(&traffic)
        ));
    }
    // 4. Identity.
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
    // 5. Strict.
    if m.strict {
        match strict_probe(driver, m, mesh).await {
            Ok(obs) => {
                let (o, why) = strict_judgement(mesh, &obs);
                outcome = outcome.worst(o);
                reasons.extend(why);
                ev.strict = Some(obs);
            }
            Err(e) => {
                outcome = outcome.worst(Outcome::Error);
                reasons.push(format!("strict: {e}"));
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

/// The strict probe with what makes its answer mean something: no Istio policy that could
/// answer in STRICT's place, the Linkerd proxy's counters around it.
async fn strict_probe<D: MtlsDriver>(
    driver: &mut D,
    m: &MtlsCheck,
    mesh: Mesh,
) -> Result<Observed, String> {
    match mesh {
        Mesh::Istio => {
            let policies = driver.authorization_policies().await?;
            if !policies.is_empty() {
                return Err(format!(
                    "AuthorizationPolicies apply to the function's namespace ({}): one could refuse the plaintext client itself, so the probe would not show STRICT",
                    policies.join(", ")
                ));
            }
            let mut obs = driver.plaintext_probe(m.function.as_str(), m.port).await?;
            obs.attribution = attribute(mesh, &obs.classification, None);
            Ok(obs)
        }
        Mesh::Linkerd => {
            let before = driver.proxy_counters(m.function.as_str(), m.port).await;
            let mut obs = driver.plaintext_probe(m.function.as_str(), m.port).await?;
            let after = driver.proxy_counters(m.function.as_str(), m.port).await;
            let counters = match (before, after) {
                (Ok(b), Ok(a)) => Ok((b, a)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            obs.attribution = attribute(mesh, &obs.classification, Some(counters));
            Ok(obs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tcpdump's final report (tcpdump.c `info()`): singular and plural, kernel and interface.
    #[test]
    fn drops_are_read_from_tcpdumps_report() {
        let log = "listening on eth0, link-type EN10MB\n12 packets captured\n16 packets received by filter\n3 packets dropped by kernel\n1 packet dropped by interface\n";
        assert_eq!(dropped_packets(log), Some(4));
        assert_eq!(
            dropped_packets("5 packets captured\n0 packets dropped by kernel\n"),
            Some(0)
        );
        assert_eq!(dropped_packets("listening on eth0\n"), None);
        // The one-line form (tcpdump's `info(0)`, on SIGUSR1), fields separated by ", ".
        assert_eq!(
            dropped_packets(
                "9 packets captured, 9 packets received by filter, 2 packets dropped by kernel\n"
            ),
            Some(2)
        );
        assert_eq!(dropped_packets("x17 packets dropped by kernel"), None);
    }
}
