//! The pure deny/allow rules: an observed request outcome → allowed, denied, or undecided.
//!
//! The central distinction is *when* the connection failed. A refusal at connect (RST to the
//! SYN) means nothing is listening — the service is down — and a deny rule that only "works"
//! because the service is down has proved nothing, so that is undecided (an *error* verdict).
//! A reset or EOF *after* the TCP connection was established is what an L4 policy in a mesh
//! proxy looks like (Istio's TCP AuthorizationPolicy, Linkerd's opaque-port policy), so it is a
//! denial. At L7, only 403 is a denial; 401 (authentication), 404 (routing) and 5xx (upstream
//! failure) mean the request was not judged by an authorization policy at all.

use serde::Serialize;

/// Bytes of body kept as evidence.
pub const BODY_PREFIX_MAX: usize = 256;

/// The body Envoy sends for an Istio `AuthorizationPolicy` denial.
pub const ISTIO_RBAC_BODY: &str = "RBAC: access denied";

/// What one request attempt observed, before any interpretation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// An HTTP status line and headers arrived (the body may be partial).
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body_prefix: Vec<u8>,
    },
    /// The host name did not resolve.
    DnsFailure(String),
    /// Connection refused at connect: nothing listens on the port.
    ConnectRefused,
    /// Any other failure to establish TCP (unreachable network or host…).
    ConnectFailed(String),
    /// TCP did not establish within the timeout.
    ConnectTimeout,
    /// The established connection was reset (RST) before a response arrived.
    ResetAfterConnect,
    /// The established connection was closed (FIN) before any response byte.
    EofAfterConnect,
    /// Connected and sent the request, but no complete response head within the timeout.
    ResponseTimeout,
    /// Something arrived that is not an HTTP/1.x response head.
    Malformed(String),
    /// An outcome this module has no rule for (e.g. an unmapped curl exit code).
    Unclassified(String),
}

/// Who, judging by the response, produced a 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DenySource {
    /// Body `RBAC: access denied`: Envoy's RBAC filter, i.e. an Istio AuthorizationPolicy.
    IstioRbac,
    /// An `l5d-proxy-error` header: the Linkerd proxy answered, not the application.
    LinkerdProxy,
    /// `server: envoy` (or `istio-envoy`, what an Istio inbound sidecar calls itself, ledger
    /// IS-10) without the RBAC body: Envoy answered, by some other rule.
    Envoy,
    /// Nothing identifies the sender; possibly the application itself.
    Unknown,
}

/// How a request was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum Denial {
    /// An HTTP 403.
    Forbidden { source: DenySource },
    /// RST after the connection was established (L4 policy).
    ConnectionReset,
    /// Clean close before any response (L4 policy).
    ConnectionClosed,
}

/// The interpretation of an [`Observation`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "class", rename_all = "lowercase")]
pub enum Classification {
    Allowed {
        status: u16,
    },
    Denied(Denial),
    /// Neither allowed nor denied: the check cannot decide from this observation.
    Undecided {
        why: String,
    },
}

/// What the user expects the policy to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allowed,
    Denied,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Who sent a 403, from its headers and body.
pub fn deny_source(headers: &[(String, String)], body_prefix: &[u8]) -> DenySource {
    let body = String::from_utf8_lossy(body_prefix);
    if body.trim_start().starts_with(ISTIO_RBAC_BODY) {
        DenySource::IstioRbac
    } else if header(headers, "l5d-proxy-error").is_some() {
        DenySource::LinkerdProxy
    } else if header(headers, "server")
        .is_some_and(|s| s.eq_ignore_ascii_case("envoy") || s.eq_ignore_ascii_case("istio-envoy"))
    {
        DenySource::Envoy
    } else {
        DenySource::Unknown
    }
}

/// Classifies one observation. Pure.
pub fn classify(obs: &Observation) -> Classification {
    let undecided = |why: String| Classification::Undecided { why };
    match obs {
        Observation::Response { status, headers, body_prefix } => match *status {
            200..=399 => Classification::Allowed { status: *status },
            403 => Classification::Denied(Denial::Forbidden { source: deny_source(headers, body_prefix) }),
            401 => undecided("HTTP 401: the request was rejected for missing/invalid authentication, not by an authorization policy".into()),
            404 => undecided("HTTP 404: nothing is routed at this path, so no policy was exercised".into()),
            s @ 500..=599 => undecided(format!("HTTP {s}: the upstream failed, so no policy decision is visible")),
            s => undecided(format!("HTTP {s} is neither an allow (2xx/3xx) nor a policy denial (403)")),
        },
        Observation::DnsFailure(e) => undecided(format!("DNS lookup failed ({e}): the target does not exist, which is not a denial")),
        Observation::ConnectRefused => {
            undecided("connection refused at connect: nothing is listening (service down), which is not a policy denial".into())
        }
        Observation::ConnectFailed(e) => undecided(format!("TCP connect failed ({e}): the service is unreachable, which is not a policy denial")),
        Observation::ConnectTimeout => undecided("TCP connect timed out: unreachable, which is not a policy denial".into()),
        Observation::ResetAfterConnect => Classification::Denied(Denial::ConnectionReset),
        Observation::EofAfterConnect => Classification::Denied(Denial::ConnectionClosed),
        Observation::ResponseTimeout => undecided("connected, but no response arrived within the timeout".into()),
        Observation::Malformed(e) => undecided(format!("the response is not HTTP/1.x: {e}")),
        Observation::Unclassified(e) => undecided(e.clone()),
    }
}

/// Compares a classification with the expectation: match → pass, opposite → fail,
/// undecided → error. Returns the outcome and its reason.
pub fn judge(expect: Expect, class: &Classification) -> (crate::check::Outcome, String) {
    use crate::check::Outcome;
    match (expect, class) {
        (Expect::Allowed, Classification::Allowed { status }) => (
            Outcome::Pass,
            format!("allowed as expected (HTTP {status})"),
        ),
        (Expect::Denied, Classification::Denied(d)) => (
            Outcome::Pass,
            format!("denied as expected ({})", describe(d)),
        ),
        (Expect::Allowed, Classification::Denied(d)) => (
            Outcome::Fail,
            format!(
                "expected allowed, but the request was denied ({})",
                describe(d)
            ),
        ),
        (Expect::Denied, Classification::Allowed { status }) => (
            Outcome::Fail,
            format!("expected denied, but the request was allowed (HTTP {status})"),
        ),
        (_, Classification::Undecided { why }) => (
            Outcome::Error,
            format!("cannot tell allowed from denied: {why}"),
        ),
    }
}

fn describe(d: &Denial) -> String {
    match d {
        Denial::Forbidden {
            source: DenySource::IstioRbac,
        } => "HTTP 403 with Istio's `RBAC: access denied` body".into(),
        Denial::Forbidden {
            source: DenySource::LinkerdProxy,
        } => "HTTP 403 from the Linkerd proxy (l5d-proxy-error header)".into(),
        Denial::Forbidden {
            source: DenySource::Envoy,
        } => "HTTP 403 from Envoy".into(),
        Denial::Forbidden {
            source: DenySource::Unknown,
        } => "HTTP 403 from an unidentified sender".into(),
        Denial::ConnectionReset => "connection reset after it was established".into(),
        Denial::ConnectionClosed => {
            "connection closed after it was established, before any response".into()
        }
    }
}

/// Maps what `curl -s -o /dev/null -w '%{http_code}' URL` reported (its exit code and the
/// `http_code`, which curl prints as `000` when it got no response) to an [`Observation`].
///
/// curl's exit codes: 6 could not resolve host; 7 failed to connect (refused or unreachable:
/// curl does not tell them apart, and neither is a denial); 28 operation timed out; 52 empty
/// reply (the connection closed before any response byte); 55 failed sending data and 56
/// failure receiving data (the established connection was reset); 22 is `--fail`'s "HTTP error
/// ≥ 400", where `http_code` still holds the status.
pub fn observation_from_curl(exit_code: i32, http_code: u16) -> Observation {
    let response = |status: u16| Observation::Response {
        status,
        headers: Vec::new(),
        body_prefix: Vec::new(),
    };
    match exit_code {
        0 | 22 if http_code > 0 => response(http_code),
        0 | 22 => {
            Observation::Unclassified(format!("curl exited {exit_code} without an HTTP status"))
        }
        6 => Observation::DnsFailure("curl exit 6: could not resolve host".into()),
        7 => Observation::ConnectFailed(
            "curl exit 7: failed to connect (refused or unreachable)".into(),
        ),
        28 => Observation::Unclassified(
            "curl exit 28: timed out (connect or response), which is not a denial".into(),
        ),
        52 => Observation::EofAfterConnect,
        55 | 56 => Observation::ResetAfterConnect,
        other => {
            Observation::Unclassified(format!("curl exit {other} has no allow/deny meaning here"))
        }
    }
}

/// Classifies a curl result from an in-cluster probe; see [`observation_from_curl`].
pub fn classify_curl(exit_code: i32, http_code: u16) -> Classification {
    classify(&observation_from_curl(exit_code, http_code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Outcome;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Observation {
        Observation::Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body_prefix: body.as_bytes().to_vec(),
        }
    }

    fn undecided(c: &Classification) -> bool {
        matches!(c, Classification::Undecided { .. })
    }

    #[test]
    fn success_and_redirects_are_allowed() {
        for s in [200, 204, 301, 302, 399] {
            assert_eq!(
                classify(&resp(s, &[], "")),
                Classification::Allowed { status: s }
            );
        }
    }

    #[test]
    fn forbidden_is_denied_with_its_source() {
        let istio = classify(&resp(403, &[("server", "envoy")], "RBAC: access denied"));
        assert_eq!(
            istio,
            Classification::Denied(Denial::Forbidden {
                source: DenySource::IstioRbac
            })
        );
        let linkerd = classify(&resp(403, &[("L5d-Proxy-Error", "unauthorized")], ""));
        assert_eq!(
            linkerd,
            Classification::Denied(Denial::Forbidden {
                source: DenySource::LinkerdProxy
            })
        );
        let envoy = classify(&resp(403, &[("Server", "Envoy")], "no"));
        assert_eq!(
            envoy,
            Classification::Denied(Denial::Forbidden {
                source: DenySource::Envoy
            })
        );
        // What an Istio inbound sidecar calls itself when an unmeshed client reaches it directly
        // (istio 1.30.3 pilot/pkg/networking/util/proxy_headers.go).
        let inbound = classify(&resp(403, &[("server", "istio-envoy")], "no"));
        assert_eq!(
            inbound,
            Classification::Denied(Denial::Forbidden {
                source: DenySource::Envoy
            })
        );
        let app = classify(&resp(403, &[], "forbidden"));
        assert_eq!(
            app,
            Classification::Denied(Denial::Forbidden {
                source: DenySource::Unknown
            })
        );
    }

    #[test]
    fn other_statuses_are_undecided() {
        for s in [100, 400, 401, 404, 405, 429, 500, 502, 503, 504] {
            assert!(undecided(&classify(&resp(s, &[], ""))), "{s}");
        }
    }

    #[test]
    fn refused_at_connect_is_not_a_denial_but_reset_after_connect_is() {
        assert!(undecided(&classify(&Observation::ConnectRefused)));
        assert!(undecided(&classify(&Observation::ConnectFailed(
            "unreachable".into()
        ))));
        assert!(undecided(&classify(&Observation::ConnectTimeout)));
        assert!(undecided(&classify(&Observation::DnsFailure(
            "NXDOMAIN".into()
        ))));
        assert!(undecided(&classify(&Observation::ResponseTimeout)));
        assert!(undecided(&classify(&Observation::Malformed(
            "SSH-2.0".into()
        ))));
        assert_eq!(
            classify(&Observation::ResetAfterConnect),
            Classification::Denied(Denial::ConnectionReset)
        );
        assert_eq!(
            classify(&Observation::EofAfterConnect),
            Classification::Denied(Denial::ConnectionClosed)
        );
    }

    #[test]
    fn judge_matches_expectations() {
        let allowed = Classification::Allowed { status: 200 };
        let denied = Classification::Denied(Denial::ConnectionReset);
        let unknown = Classification::Undecided { why: "x".into() };
        assert_eq!(judge(Expect::Allowed, &allowed).0, Outcome::Pass);
        assert_eq!(judge(Expect::Denied, &denied).0, Outcome::Pass);
        assert_eq!(judge(Expect::Allowed, &denied).0, Outcome::Fail);
        assert_eq!(judge(Expect::Denied, &allowed).0, Outcome::Fail);
        assert_eq!(judge(Expect::Denied, &unknown).0, Outcome::Error);
        assert_eq!(judge(Expect::Allowed, &unknown).0, Outcome::Error);
    }

    #[test]
    fn curl_exit_codes() {
        assert_eq!(
            classify_curl(0, 200),
            Classification::Allowed { status: 200 }
        );
        assert_eq!(
            classify_curl(0, 403),
            Classification::Denied(Denial::Forbidden {
                source: DenySource::Unknown
            })
        );
        assert_eq!(
            classify_curl(22, 403),
            Classification::Denied(Denial::Forbidden {
                source: DenySource::Unknown
            })
        );
        assert!(undecided(&classify_curl(22, 503)));
        assert!(undecided(&classify_curl(0, 0)), "exit 0 with http_code 000");
        assert!(undecided(&classify_curl(6, 0)), "DNS");
        assert!(undecided(&classify_curl(7, 0)), "couldn't connect");
        assert!(undecided(&classify_curl(28, 0)), "timeout");
        assert_eq!(
            classify_curl(52, 0),
            Classification::Denied(Denial::ConnectionClosed)
        );
        assert_eq!(
            classify_curl(56, 0),
            Classification::Denied(Denial::ConnectionReset)
        );
        assert_eq!(
            classify_curl(55, 0),
            Classification::Denied(Denial::ConnectionReset)
        );
        assert!(
            undecided(&classify_curl(35, 0)),
            "TLS connect error is unmapped"
        );
    }
}
