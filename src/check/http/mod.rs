//! `http` verdict engine: the deny/allow judge.
//!
//! One request is sent and its outcome classified (see [`classify`] for the rules and why a
//! refused connection is *not* a denial): 2xx/3xx → allowed; 403 → denied (with who sent it:
//! Istio's `RBAC: access denied`, the Linkerd proxy, Envoy, or unknown); reset or EOF after the
//! connection was established → denied (L4 policy); everything else (401, 404, other 4xx, 5xx,
//! DNS failure, refused or failed connect, timeouts, non-HTTP replies) → undecided. The
//! classification is then compared with `--expect`: match → pass, opposite → fail,
//! undecided → error.
//!
//! [`probe`] does the I/O over a raw TCP connection (so the stage of a failure is known);
//! [`classify`] is pure and also serves in-cluster probes that only have curl's exit code and
//! `%{http_code}` ([`classify_curl`]).

pub mod classify;
pub mod curl;
pub mod probe;

use std::time::Duration;

use serde::Serialize;

use crate::check::{CheckName, Outcome, Verdict};
pub use classify::{
    classify, classify_curl, observation_from_curl, Classification, Denial, DenySource, Expect,
    Observation,
};
pub use probe::{HttpRequest, RequestError, Timings};

/// Default for `--timeout`: the whole request (DNS, connect, response head) must end within it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Response headers worth keeping as evidence (they identify who answered).
const EVIDENCE_HEADERS: [&str; 5] = [
    "server",
    "l5d-proxy-error",
    "content-type",
    "content-length",
    "x-envoy-upstream-service-time",
];

/// Everything `check http` needs, as the user gave it.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub url: String,
    pub expect: Expect,
    /// `NAME:VALUE` strings.
    pub headers: Vec<String>,
    pub method: String,
    pub timeout: Duration,
}

impl HttpOptions {
    pub fn new(url: impl Into<String>, expect: Expect) -> Self {
        HttpOptions {
            url: url.into(),
            expect,
            headers: Vec::new(),
            method: "GET".into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What `check http` observed.
#[derive(Debug, Clone, Serialize)]
pub struct HttpEvidence {
    pub url: String,
    pub method: String,
    pub expect: Expect,
    /// The raw observation's kind: `response`, `reset-after-connect`, `connect-refused`…
    pub observed: Option<String>,
    pub status: Option<u16>,
    /// Up to 256 bytes of the body, lossily decoded as UTF-8.
    pub body_prefix: Option<String>,
    pub headers: Vec<(String, String)>,
    pub classification: Option<Classification>,
    pub connected_to: Option<String>,
    pub timings: Option<Timings>,
}

/// The kebab-case name of an observation, for evidence.
pub fn observation_kind(o: &Observation) -> &'static str {
    match o {
        Observation::Response { .. } => "response",
        Observation::DnsFailure(_) => "dns-failure",
        Observation::ConnectRefused => "connect-refused",
        Observation::ConnectFailed(_) => "connect-failed",
        Observation::ConnectTimeout => "connect-timeout",
        Observation::ResetAfterConnect => "reset-after-connect",
        Observation::EofAfterConnect => "eof-after-connect",
        Observation::ResponseTimeout => "response-timeout",
        Observation::Malformed(_) => "malformed-response",
        Observation::Unclassified(_) => "unclassified",
    }
}

/// Sends one request and judges it against `opts.expect`.
pub async fn check_http(opts: &HttpOptions) -> Verdict<HttpEvidence> {
    let mut ev = HttpEvidence {
        url: opts.url.clone(),
        method: opts.method.to_ascii_uppercase(),
        expect: opts.expect,
        observed: None,
        status: None,
        body_prefix: None,
        headers: Vec::new(),
        classification: None,
        connected_to: None,
        timings: None,
    };
    let req = match HttpRequest::parse(&opts.url, &opts.method, &opts.headers) {
        Ok(r) => r,
        Err(e) => return Verdict::new(CheckName::Http, Outcome::Error, vec![e.to_string()], ev),
    };
    let attempt = probe::observe(&req, opts.timeout).await;
    ev.observed = Some(observation_kind(&attempt.observation).to_string());
    ev.connected_to = attempt.connected_to.map(|a| a.to_string());
    ev.timings = Some(attempt.timings.clone());
    if let Observation::Response {
        status,
        headers,
        body_prefix,
    } = &attempt.observation
    {
        ev.status = Some(*status);
        ev.body_prefix = Some(String::from_utf8_lossy(body_prefix).into_owned());
        ev.headers = headers
            .iter()
            .filter(|(k, _)| EVIDENCE_HEADERS.iter().any(|h| k.eq_ignore_ascii_case(h)))
            .cloned()
            .collect();
    }
    let class = classify(&attempt.observation);
    let (outcome, reason) = classify::judge(opts.expect, &class);
    ev.classification = Some(class);
    // Even a pass keeps its one-line reason: "denied as expected (HTTP 403 with Istio's body)"
    // tells the reader *how* it was denied.
    let reasons = vec![reason];
    Verdict::new(CheckName::Http, outcome, reasons, ev)
}
