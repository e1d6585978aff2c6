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
//!    compared exactly; on Linkerd `l5d-client-id`. Istio ambient adds no header without a
//!    waypoint, so there the function node's ztunnel access log is read over the capture's
//!    window: every connection it accepted from the gateway's pods must carry the gateway's
//!    SPIFFE identity as `src.identity` (another identity, or none, **fails**; no line at all
//!    is an **error**: the check cannot tell; ledger IS-23).
//! 5. Strict (optional): a plaintext client in an unmeshed namespace calling the function's
//!    Service directly must be refused. On Istio, STRICT refuses by closing the connection
//!    (IS-9): a reset or close passes, a 403 **fails** (the port took plaintext and a policy
//!    answered), and a leftover AuthorizationPolicy in the namespace, which could close the
//!    connection itself, makes the probe an **error**. On Linkerd the proxy answers a bare 403,
//!    which counts only when the function proxy's `inbound_http_authz_deny_total` rose. On Istio
//!    ambient ztunnel enforces STRICT as a DENY policy istiod derives from the
//!    PeerAuthentication, and refuses by closing the connection (IS-22): a reset or close passes
//!    only when the function node's ztunnel logged a policy rejection of the probe's connection
//!    by that derived policy; a rejection by another policy, or none logged, is an **error**.
//!
//! On Istio ambient the capture also differs (IS-19): the peers are the gateway's pods and any
//! waypoint pods in the function namespace (a waypoint in the path is the function's peer), the
//! ports are the app port and ztunnel's HBONE port 15008, and the engine judges them with the
//! `istio-ambient` preset. The unmeshed control opts out with the pod label
//! `istio.io/dataplane-mode: none` (IS-21). The gateway's pod-IP addressing (OpenFaaS CE) is
//! meshed there: ztunnel looks the destination up by address (IS-24), so it is only recorded.

use super::addressing::{addressing, echoed, pod_ip_under_istio, Addressing};
use super::deny::{attribute, Attribution, MeshEvidence, Observed};
use crate::check::http::{Classification, Denial};
use crate::check::{CheckName, Outcome, Verdict};
use crate::scenario::{DataPlane, Enforcer, Mesh, MtlsCheck};
use crate::scenario_run::linkerd::AuthzCounters;
use crate::scenario_run::ztunnel::{self, IdentityProblem, ZtunnelView};
use serde::Serialize;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

/// How long ztunnel's log is read again for a line the check needs: the identity of a
/// connection is written when it ends, the rejection as the connection is refused.
pub const LOG_WAIT: Duration = Duration::from_secs(20);
/// When OpenFaaS CE's connection to a function ends after the last request: faas-provider's
/// proxy client closes idle connections after 5 s (faas-netes@0.18.17, vendored faas-provider
/// v0.25.12 `proxy/proxy.go:136`; ledger IS-23). Only then does ztunnel write its line.
pub const CE_IDLE_CLOSE: Duration = Duration::from_secs(5);
// The wait must outlast the idle close with room for ztunnel's write and the log read.
const _: () = assert!(LOG_WAIT.as_secs() >= 2 * CE_IDLE_CLOSE.as_secs() + 5);
/// Slack around a window of ztunnel lines: the API server's clock against this machine's.
const WINDOW_SLACK: Duration = Duration::from_secs(2);

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
        plane: DataPlane,
        ports: WirePorts,
    ) -> EngineVerdict;
}

/// Istio ambient: the pods whose connections to the function the capture keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AmbientPeers {
    pub gateway: Vec<IpAddr>,
    /// Waypoint pods in the function namespace (none when no waypoint is deployed).
    pub waypoints: Vec<IpAddr>,
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
    /// Istio ambient: the gateway's and the waypoints' pod IPs (the capture's peers).
    async fn ambient_peers(&mut self) -> Result<AmbientPeers, String> {
        Err("this driver cannot list ambient peers".into())
    }
    /// Istio ambient: what the ztunnel on `function`'s pod's node logged since `since`, with the
    /// function's pod IPs as targets.
    async fn ztunnel_inbound(
        &mut self,
        function: &str,
        since: SystemTime,
    ) -> Result<ZtunnelView, String> {
        let _ = (function, since);
        Err("this driver cannot read ztunnel's access log".into())
    }
    /// Istio ambient: what the ztunnels on the gateway pods' nodes logged since `since` (the
    /// hop to a waypoint).
    async fn ztunnel_of_gateway(&mut self, since: SystemTime) -> Result<ZtunnelView, String> {
        let _ = since;
        Err("this driver cannot read the gateway's ztunnel".into())
    }
    /// Istio ambient: the plaintext probe client's pod IPs (after [`Self::plaintext_probe`]).
    async fn plaintext_client_ips(&mut self) -> Result<Vec<IpAddr>, String> {
        Err("this driver does not know the plaintext client's address".into())
    }
    /// How long ztunnel's log is read again for a line ([`LOG_WAIT`] in a run).
    fn log_wait(&self) -> Duration {
        LOG_WAIT
    }
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
    /// Istio ambient: the data plane's facts the check used (peers, the identity's log lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ambient: Option<AmbientEvidence>,
}

/// What an ambient mtls check saw beyond the capture.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AmbientEvidence {
    pub peers: AmbientPeers,
    /// How the unmeshed control was kept out of the mesh.
    pub control_opt_out: String,
    /// The ztunnel pods whose logs showed the identity.
    pub ztunnels: Vec<String>,
    /// Connections from the gateway the function's ztunnel logged with its identity.
    pub identity_lines: usize,
}

fn judge_all<J: MtlsJudge>(
    judge: &J,
    t: &Traffic,
    name: &str,
    plane: DataPlane,
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
            judge.judge(&t.pcap, name, s, plane, ports)
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
pub fn strict_judgement(plane: DataPlane, obs: &Observed) -> (Outcome, Option<String>) {
    let refused = "a plaintext client from an unmeshed namespace";
    let mesh = plane.mesh();
    match (&obs.classification, mesh) {
        (Classification::Denied(Denial::ConnectionReset | Denial::ConnectionClosed), _)
            if plane == DataPlane::IstioAmbient =>
        {
            match &obs.attribution {
                Some(Attribution::Mesh { .. }) => (Outcome::Pass, None),
                _ => (
                    Outcome::Error,
                    Some(format!("strict: {refused} got {}", obs.describe())),
                ),
            }
        }
        (Classification::Denied(Denial::ConnectionReset | Denial::ConnectionClosed), _) => {
            (Outcome::Pass, None)
        }
        (Classification::Denied(Denial::Forbidden { .. }), Mesh::Istio)
            if plane == DataPlane::IstioAmbient =>
        {
            (
                Outcome::Fail,
                Some(format!(
                    "strict: {refused} got HTTP 403 ({}): the function's port took plaintext past ztunnel, which under STRICT closes the connection and never answers with HTTP",
                    obs.detail
                )),
            )
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
    plane: DataPlane,
    gateway_ns: &str,
    gateway_sa: &str,
) -> Verdict<MtlsTrialEvidence> {
    let mesh = plane.mesh();
    let ambient = plane == DataPlane::IstioAmbient;
    let mut ev = MtlsTrialEvidence::default();
    let error =
        |ev, reason: String| Verdict::new(CheckName::Mtls, Outcome::Error, vec![reason], ev);
    // Each phase's requests, retries included, share half the check's traffic time.
    let phase = m.timeout / 2;
    if ambient {
        match driver.ambient_peers().await {
            Ok(peers) => {
                ev.ambient = Some(AmbientEvidence {
                    peers,
                    control_opt_out: "pod label istio.io/dataplane-mode=none".into(),
                    ..AmbientEvidence::default()
                })
            }
            Err(e) => return error(ev, format!("the capture's peers on Istio ambient: {e}")),
        }
    }
    // 1. The control.
    let control = match driver
        .capture_traffic(m.control.as_str(), m.requests, phase)
        .await
    {
        Ok(t) => t,
        Err(e) => return error(ev, format!("negative control ({}): {e}", m.control)),
    };
    let (cv, cev) = judge_all(judge, &control, m.control.as_str(), plane, m.port);
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
    match (&ev.gateway_addressing, plane) {
        (Some(Addressing::PodIp { host }), DataPlane::IstioSidecar) => {
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
    let traffic_since = SystemTime::now();
    let traffic = match driver
        .capture_traffic(m.function.as_str(), m.requests, phase)
        .await
    {
        Ok(t) => t,
        Err(e) => return error(ev, format!("capturing {}: {e}", m.function)),
    };
    let (fv, fev) = judge_all(judge, &traffic, m.function.as_str(), plane, m.port);
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
    if ambient {
        let expected = format!("spiffe://cluster.local/ns/{gateway_ns}/sa/{gateway_sa}");
        let peers = ev
            .ambient
            .as_ref()
            .map(|a| a.peers.clone())
            .unwrap_or_default();
        match ambient_identity(
            driver,
            m.function.as_str(),
            traffic_since,
            &peers,
            &expected,
        )
        .await
        {
            Ok((n, ztunnels)) => {
                if let Some(a) = ev.ambient.as_mut() {
                    a.identity_lines = n;
                    a.ztunnels = ztunnels;
                }
            }
            Err(IdentityProblem::CannotTell(why) | IdentityProblem::ThroughWaypoint(why)) => {
                outcome = outcome.worst(Outcome::Error);
                reasons.push(format!("identity: {why}"));
                ev.identity_failures.push(why);
            }
            Err(IdentityProblem::Wrong(why)) => {
                outcome = outcome.worst(Outcome::Fail);
                reasons.push(format!("identity: {why}"));
                ev.identity_failures.push(why);
            }
        }
        ev.identity_var = Some("src.identity in the function node's ztunnel access log".into());
        ev.identity_expected = Some(expected);
    } else {
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
    }
    // 5. Strict.
    if m.strict {
        match strict_probe(driver, m, plane).await {
            Ok(obs) => {
                let (o, why) = strict_judgement(plane, &obs);
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
            "the control showed all {} sentinels in plaintext; the meshed function's capture showed none and only mesh TLS{}; {}{}",
            cv.len(),
            if ambient { " (HBONE to 15008, nothing on the app port)" } else { "" },
            if ambient {
                "every connection from the gateway the function's ztunnel logged carried the gateway identity"
            } else {
                "every request carried the gateway identity"
            },
            if m.strict { "; a plaintext client was refused" } else { "" }
        ));
    }
    Verdict::new(CheckName::Mtls, outcome, reasons, ev)
}

/// The window of a ztunnel read: from `since` (less the slack) to now (plus the slack).
fn window_since(since: SystemTime) -> ztunnel::Window {
    ztunnel::Window {
        from: time::OffsetDateTime::from(since) - WINDOW_SLACK,
        to: time::OffsetDateTime::now_utc() + WINDOW_SLACK,
    }
}

/// Istio ambient: the gateway's identity from the function node's ztunnel log since `since`
/// — or, when the function's peers were only waypoints, from the gateway node's ztunnel on the
/// hop to them — read again until it decides or [`MtlsDriver::log_wait`] has passed. `Ok` with
/// the number of lines and the ztunnels read.
async fn ambient_identity<D: MtlsDriver>(
    driver: &mut D,
    function: &str,
    since: SystemTime,
    peers: &AmbientPeers,
    expected: &str,
) -> Result<(usize, Vec<String>), IdentityProblem> {
    let unreadable = |what: &str, e: String| {
        IdentityProblem::CannotTell(format!("{what} ztunnel access log could not be read: {e}"))
    };
    let started = Instant::now();
    loop {
        let view = driver
            .ztunnel_inbound(function, since)
            .await
            .map_err(|e| unreadable("the function node's", e))?;
        let judged = match ztunnel::gateway_identity(
            &view.lines,
            &peers.gateway,
            &peers.waypoints,
            &view.targets,
            expected,
            window_since(since),
        ) {
            Ok(n) => Ok((n, view.ztunnels)),
            Err(IdentityProblem::ThroughWaypoint(_)) => {
                let hop = driver
                    .ztunnel_of_gateway(since)
                    .await
                    .map_err(|e| unreadable("the gateway node's", e))?;
                ztunnel::gateway_identity_to_waypoints(
                    &hop.lines,
                    &peers.gateway,
                    &peers.waypoints,
                    expected,
                    window_since(since),
                )
                .map(|n| (n, hop.ztunnels))
            }
            Err(e) => Err(e),
        };
        match judged {
            Err(IdentityProblem::CannotTell(_)) if started.elapsed() < driver.log_wait() => {
                tokio::time::sleep(Duration::from_secs(1).min(driver.log_wait())).await;
            }
            other => return other,
        }
    }
}

/// Istio ambient: who closed the plaintext probe's connection, from the function node's
/// ztunnel log since `since` — STRICT's derived DENY policy, another policy, or nobody shown.
async fn strict_attribution<D: MtlsDriver>(
    driver: &mut D,
    function: &str,
    since: SystemTime,
) -> Attribution {
    let sources = match driver.plaintext_client_ips().await {
        Ok(s) => s,
        Err(e) => return Attribution::Unshown { why: e },
    };
    let started = Instant::now();
    loop {
        let view = match driver.ztunnel_inbound(function, since).await {
            Ok(v) => v,
            Err(e) => {
                return Attribution::Unshown {
                    why: format!("the function node's ztunnel access log could not be read: {e}"),
                }
            }
        };
        let window = window_since(since);
        if let Some(line) = ztunnel::policy_rejection(&view.lines, &sources, &view.targets, window)
        {
            let rejection = line.rejection().unwrap_or_default().to_string();
            if ztunnel::is_strict_rejection(&rejection) {
                return Attribution::Mesh {
                    by: format!(
                        "ztunnel ({}) logged `{rejection}`: the DENY policy istiod derives from STRICT",
                        view.ztunnels.join(", ")
                    ),
                    enforcer: Some(Enforcer::Ztunnel),
                };
            }
            return Attribution::Unshown {
                why: format!(
                    "ztunnel ({}) refused it by another policy, not STRICT's: `{rejection}`",
                    view.ztunnels.join(", ")
                ),
            };
        }
        if started.elapsed() >= driver.log_wait() {
            return Attribution::Unshown {
                why: format!(
                    "the function node's ztunnel ({}) logged no policy rejection of a connection from the plaintext client during the probe, so nothing shows the mesh closed it",
                    view.ztunnels.join(", ")
                ),
            };
        }
        tokio::time::sleep(Duration::from_secs(1).min(driver.log_wait())).await;
    }
}

/// The strict probe with what makes its answer mean something: no Istio policy that could
/// answer in STRICT's place, the Linkerd proxy's counters around it, ztunnel's log on ambient.
async fn strict_probe<D: MtlsDriver>(
    driver: &mut D,
    m: &MtlsCheck,
    plane: DataPlane,
) -> Result<Observed, String> {
    match plane {
        DataPlane::IstioAmbient => {
            // No guard on other policies here: ztunnel's log names the policy that refused.
            let since = SystemTime::now();
            let mut obs = driver.plaintext_probe(m.function.as_str(), m.port).await?;
            if matches!(
                obs.classification,
                Classification::Denied(Denial::ConnectionReset | Denial::ConnectionClosed)
            ) {
                obs.attribution =
                    Some(strict_attribution(driver, m.function.as_str(), since).await);
            }
            Ok(obs)
        }
        DataPlane::IstioSidecar => {
            let policies = driver.authorization_policies().await?;
            if !policies.is_empty() {
                return Err(format!(
                    "AuthorizationPolicies apply to the function's namespace ({}): one could refuse the plaintext client itself, so the probe would not show STRICT",
                    policies.join(", ")
                ));
            }
            let mut obs = driver.plaintext_probe(m.function.as_str(), m.port).await?;
            obs.attribution = attribute(plane, &obs.classification, MeshEvidence::None);
            Ok(obs)
        }
        DataPlane::Linkerd => {
            let before = driver.proxy_counters(m.function.as_str(), m.port).await;
            let mut obs = driver.plaintext_probe(m.function.as_str(), m.port).await?;
            let after = driver.proxy_counters(m.function.as_str(), m.port).await;
            let counters = match (before, after) {
                (Ok(b), Ok(a)) => Ok((b, a)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            obs.attribution =
                attribute(plane, &obs.classification, MeshEvidence::Linkerd(counters));
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

    // ------------------------------------------------------------ Istio ambient

    use crate::scenario::Name;

    const GATEWAY_IP: &str = "10.244.0.5";
    const WAYPOINT_IP: &str = "10.244.0.77";
    const FUNCTION_IP: &str = "10.244.2.30";
    const CLIENT_IP: &str = "10.244.3.3";
    const GATEWAY_ID: &str = "spiffe://cluster.local/ns/openfaas/sa/openfaas-controller";

    /// A judge double: a capture is a list of words; `plaintext:<sentinel>` is the sentinel in the
    /// clear (fail with a hit), anything else passes. It records the data plane it was asked
    /// to judge for.
    struct WordJudge(std::sync::Mutex<Vec<DataPlane>>);

    impl MtlsJudge for WordJudge {
        fn judge(
            &self,
            pcap: &[u8],
            _input: &str,
            sentinel: &str,
            plane: DataPlane,
            _ports: WirePorts,
        ) -> EngineVerdict {
            self.0.lock().unwrap().push(plane);
            let hit = String::from_utf8_lossy(pcap).contains(&format!("plaintext:{sentinel}"));
            EngineVerdict {
                outcome: if hit { Outcome::Fail } else { Outcome::Pass },
                reasons: vec![],
                sentinel_hits: u64::from(hit),
                evidence: serde_json::Value::Null,
            }
        }
    }

    /// The ambient cluster as a script: the control answers in plaintext with a pod-IP `Host`
    /// (OpenFaaS CE), the function over HBONE; ztunnel's log holds `log` (lines of the
    /// format `crate::scenario_run::ztunnel`'s tests take from upstream).
    struct AmbientCluster {
        log: String,
        strict: Classification,
        /// What ztunnel logs when it refuses the plaintext client (`None`: nothing).
        strict_rejection: Option<&'static str>,
        /// What the gateway node's ztunnel logged (the hop to a waypoint).
        gateway_log: String,
    }

    fn completed(src: &str, identity: Option<&str>, error: Option<&str>) -> String {
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let id = identity
            .map(|i| format!(" src.identity=\"{i}\""))
            .unwrap_or_default();
        let err = error.map(|e| format!(" error=\"{e}\"")).unwrap_or_default();
        format!("{now} {now}\tinfo\taccess\tconnection complete\tsrc.addr={src}:40000{id} dst.addr={FUNCTION_IP}:15008 dst.hbone_addr={FUNCTION_IP}:8080 direction=\"inbound\"{err}\n")
    }

    impl MtlsDriver for AmbientCluster {
        async fn capture_traffic(
            &mut self,
            function: &str,
            _requests: u32,
            _deadline: Duration,
        ) -> Result<Traffic, String> {
            let sentinel = new_sentinel();
            let control = function != "env";
            Ok(Traffic {
                pcap: if control {
                    format!("plaintext:{sentinel}").into_bytes()
                } else {
                    b"hbone".to_vec()
                },
                sentinels: vec![sentinel],
                responses: vec![format!("Http_Host=10.244.2.31:8080\n")],
                ..Traffic::default()
            })
        }
        async fn plaintext_probe(&mut self, _f: &str, _port: u16) -> Result<Observed, String> {
            if let Some(r) = self.strict_rejection {
                self.log.push_str(&completed(CLIENT_IP, None, Some(r)));
            }
            Ok(Observed::new(self.strict.clone(), "curl exit 56"))
        }
        async fn authorization_policies(&mut self) -> Result<Vec<String>, String> {
            Err("not asked on ambient".into())
        }
        async fn proxy_counters(&mut self, _f: &str, _port: u16) -> Result<AuthzCounters, String> {
            Err("not asked on ambient".into())
        }
        async fn ambient_peers(&mut self) -> Result<AmbientPeers, String> {
            Ok(AmbientPeers {
                gateway: vec![GATEWAY_IP.parse().unwrap()],
                waypoints: vec![WAYPOINT_IP.parse().unwrap()],
            })
        }
        async fn ztunnel_inbound(
            &mut self,
            _f: &str,
            _since: SystemTime,
        ) -> Result<ZtunnelView, String> {
            Ok(ZtunnelView {
                ztunnels: vec!["istio-system/ztunnel-x on kind-worker".into()],
                sources: vec![],
                targets: vec![FUNCTION_IP.parse().unwrap()],
                lines: ztunnel::parse_log(&self.log),
            })
        }
        async fn plaintext_client_ips(&mut self) -> Result<Vec<IpAddr>, String> {
            Ok(vec![CLIENT_IP.parse().unwrap()])
        }
        async fn ztunnel_of_gateway(&mut self, _since: SystemTime) -> Result<ZtunnelView, String> {
            Ok(ZtunnelView {
                ztunnels: vec!["istio-system/ztunnel-g on kind-worker2".into()],
                lines: ztunnel::parse_log(&self.gateway_log),
                ..ZtunnelView::default()
            })
        }
        fn log_wait(&self) -> Duration {
            Duration::ZERO
        }
    }

    const STRICT_REJECTION: &str = "connection closed due to policy rejection: explicitly denied by: istio-system/istio_converted_static_strict";

    fn cluster() -> AmbientCluster {
        AmbientCluster {
            log: completed(GATEWAY_IP, Some(GATEWAY_ID), None),
            strict: Classification::Denied(Denial::ConnectionReset),
            strict_rejection: Some(STRICT_REJECTION),
            gateway_log: String::new(),
        }
    }

    fn check() -> MtlsCheck {
        MtlsCheck {
            function: Name::parse("env").unwrap(),
            control: Name::parse("env-nomesh").unwrap(),
            requests: 1,
            port: 8080,
            strict: true,
            timeout: Duration::from_secs(60),
        }
    }

    async fn run_ambient(d: &mut AmbientCluster) -> (Verdict<MtlsTrialEvidence>, Vec<DataPlane>) {
        let judge = WordJudge(Default::default());
        let v = run_mtls(
            d,
            &judge,
            &check(),
            DataPlane::IstioAmbient,
            "openfaas",
            "openfaas-controller",
        )
        .await;
        let planes = judge.0.into_inner().unwrap();
        (v, planes)
    }

    #[tokio::test]
    async fn on_ambient_pod_ips_are_meshed_and_the_identity_is_read_from_ztunnel() {
        let mut d = cluster();
        let (v, planes) = run_ambient(&mut d).await;
        assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
        assert!(
            planes.iter().all(|p| *p == DataPlane::IstioAmbient),
            "{planes:?}"
        );
        let a = v.evidence.ambient.as_ref().unwrap();
        assert_eq!(a.identity_lines, 1);
        assert_eq!(a.control_opt_out, "pod label istio.io/dataplane-mode=none");
        assert_eq!(
            a.peers.waypoints,
            vec![WAYPOINT_IP.parse::<IpAddr>().unwrap()]
        );
        assert!(matches!(
            v.evidence.gateway_addressing,
            Some(Addressing::PodIp { .. })
        ));
        // The same traffic under sidecars stops at the path self-check (IS-8).
        let mut d = cluster();
        let v = run_mtls(
            &mut d,
            &WordJudge(Default::default()),
            &check(),
            DataPlane::IstioSidecar,
            "openfaas",
            "openfaas-controller",
        )
        .await;
        assert_eq!(v.outcome, Outcome::Error);
        assert!(
            v.reasons[0].contains("PassthroughCluster"),
            "{:?}",
            v.reasons
        );
    }

    #[tokio::test]
    async fn on_ambient_another_identity_fails_and_no_line_is_an_error() {
        let mut d = cluster();
        d.log = completed(
            GATEWAY_IP,
            Some("spiffe://cluster.local/ns/openfaas-fn/sa/default"),
            None,
        );
        let (v, _) = run_ambient(&mut d).await;
        assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("without the gateway's identity")),
            "{:?}",
            v.reasons
        );
        // Plaintext from the gateway: no identity at all.
        let mut d = cluster();
        d.log = completed(GATEWAY_IP, None, None);
        assert_eq!(run_ambient(&mut d).await.0.outcome, Outcome::Fail);
        // Nothing logged: the check cannot tell.
        let mut d = cluster();
        d.log = String::new();
        let (v, _) = run_ambient(&mut d).await;
        assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("no completed connection")),
            "{:?}",
            v.reasons
        );
        // Only the waypoint's connections: the gateway's identity is not shown there, and the
        // gateway's ztunnel logged no hop to the waypoint either.
        let mut d = cluster();
        d.log = completed(
            WAYPOINT_IP,
            Some("spiffe://cluster.local/ns/openfaas-fn/sa/waypoint"),
            None,
        );
        let (v, _) = run_ambient(&mut d).await;
        assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("through waypoint pods")),
            "{:?}",
            v.reasons
        );
    }

    /// With a waypoint in the path the gateway's identity is on its hop to the waypoint, in the
    /// gateway node's ztunnel log (an outbound line; the waypoint itself is not captured).
    #[tokio::test]
    async fn on_ambient_through_a_waypoint_the_identity_is_read_on_the_gateways_hop() {
        let hop = |id: &str| {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            format!("{now} {now}\tinfo\taccess\tconnection complete\tsrc.addr={GATEWAY_IP}:40000 src.identity=\"{id}\" dst.addr={WAYPOINT_IP}:15008 dst.hbone_addr=10.96.0.20:8080 direction=\"outbound\"\n")
        };
        let through = |gateway_log: String| {
            let mut d = cluster();
            d.log = completed(
                WAYPOINT_IP,
                Some("spiffe://cluster.local/ns/openfaas-fn/sa/waypoint"),
                None,
            );
            d.gateway_log = gateway_log;
            d
        };
        let (v, _) = run_ambient(&mut through(hop(GATEWAY_ID))).await;
        assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
        assert_eq!(v.evidence.ambient.as_ref().unwrap().identity_lines, 1);
        let (v, _) = run_ambient(&mut through(hop(
            "spiffe://cluster.local/ns/openfaas/sa/other",
        )))
        .await;
        assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    }

    #[tokio::test]
    async fn on_ambient_strict_is_shown_by_ztunnels_rejection_under_the_strict_policy() {
        let mut d = cluster();
        d.strict = Classification::Denied(Denial::ConnectionClosed);
        let (v, _) = run_ambient(&mut d).await;
        assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
        // A close nobody logged is not STRICT's.
        let mut d = cluster();
        d.strict_rejection = None;
        let (v, _) = run_ambient(&mut d).await;
        assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("logged no policy rejection")),
            "{:?}",
            v.reasons
        );
        // Another policy refused it: not STRICT either.
        let mut d = cluster();
        d.strict_rejection = Some(
            "connection closed due to policy rejection: explicitly denied by: openfaas-fn/deny-all",
        );
        let (v, _) = run_ambient(&mut d).await;
        assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
        assert!(
            v.reasons.iter().any(|r| r.contains("not STRICT's")),
            "{:?}",
            v.reasons
        );
        // ztunnel never answers with HTTP: a 403 means the port took plaintext.
        let mut d = cluster();
        d.strict = Classification::Denied(Denial::Forbidden {
            source: crate::check::http::DenySource::IstioRbac,
        });
        assert_eq!(run_ambient(&mut d).await.0.outcome, Outcome::Fail);
    }
}
