//! What a trial reads off Istio ambient's ztunnel: its access log, the one place a connection's
//! fate under ambient is written down.
//!
//! Under ambient there is no sidecar to answer a denial with a body: the destination node's
//! ztunnel closes the connection (ledger IS-22), so a reset or an empty reply is the mesh's only
//! when ztunnel logged a policy rejection for exactly that connection. And without a waypoint no
//! proxy adds `X-Forwarded-Client-Cert`, so the caller's identity is what ztunnel logged as
//! `src.identity` for the connection it accepted (IS-23). Both come from the line ztunnel writes
//! when a connection completes (istio/ztunnel 1.30.3 `src/proxy/metrics.rs:503-528,728-754`).
//!
//! Pure: the driver fetches the log text (with the API server's timestamps), this parses it and
//! decides, so every rule is tested on lines in upstream's own format.

use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Where ztunnel runs: istioctl installs the chart into `istio-system`, and the DaemonSet's pods
/// carry `app: ztunnel` (istio 1.30.3 `manifests/charts/ztunnel/templates/daemonset.yaml:25,31`).
pub const ZTUNNEL_NAMESPACE: &str = "istio-system";
/// The ztunnel pods' label selector (see [`ZTUNNEL_NAMESPACE`]).
pub const ZTUNNEL_SELECTOR: &str = "app=ztunnel";
/// ztunnel's container (`daemonset.yaml:64`).
pub const ZTUNNEL_CONTAINER: &str = "istio-proxy";
/// The message of ztunnel's access log line, written when a connection completes
/// (`src/proxy/metrics.rs:513,523`).
pub const CONNECTION_COMPLETE: &str = "connection complete";
/// The `error` of a connection ztunnel refused by an authorization policy
/// (`src/proxy.rs:415`, `AuthorizationPolicyRejection`), followed by the reason
/// (`src/proxy.rs:371-379`: `explicitly denied by: <ns>/<name>`, `allow policies exist, but
/// none allowed`).
pub const POLICY_REJECTION: &str = "connection closed due to policy rejection";
/// The names istiod gives the ztunnel DENY policies a STRICT PeerAuthentication becomes: the
/// mesh- or namespace-wide one, and a workload's (istio 1.30.3
/// `pilot/pkg/serviceregistry/ambient/authorization.go:37,221-226`,
/// `pilot/pkg/model/authentication.go:50,235`).
pub const STRICT_POLICY_NAMES: [&str; 2] = [
    "istio_converted_static_strict",
    "converted_peer_authentication_",
];
/// The label istio's waypoint deployments put on their pods: the gateway class `istio-waypoint`
/// (istio 1.30.3 `manifests/charts/istio-control/istio-discovery/files/waypoint.yaml:68-72`,
/// `pkg/config/constants/constants.go:181`).
pub const WAYPOINT_POD_SELECTOR: &str =
    "gateway.networking.k8s.io/gateway-class-name=istio-waypoint";

/// One access log line of a completed connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessLine {
    /// When it was written: the API server's timestamp when the log was read with
    /// `timestamps=true`, else ztunnel's own.
    #[serde(skip)]
    pub at: Option<OffsetDateTime>,
    /// `inbound` (this ztunnel accepted it for a local pod) or `outbound`.
    pub direction: Option<String>,
    pub src_addr: Option<String>,
    /// The peer's SPIFFE identity; ztunnel writes it only for mTLS (HBONE) connections
    /// (`metrics.rs:734`).
    pub src_identity: Option<String>,
    /// The outer address (`<pod IP>:15008` for HBONE).
    pub dst_addr: Option<String>,
    /// The address inside the tunnel (`<pod IP>:<app port>`).
    pub dst_hbone_addr: Option<String>,
    pub error: Option<String>,
    /// The line as read (for the evidence).
    pub raw: String,
}

fn ip_of(addr: &Option<String>) -> Option<IpAddr> {
    let a = addr.as_deref()?;
    a.parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| a.parse::<IpAddr>())
        .ok()
}

impl AccessLine {
    pub fn src_ip(&self) -> Option<IpAddr> {
        ip_of(&self.src_addr)
    }

    /// Whether the connection was to one of `ips` (outer or tunnelled address).
    fn to_any(&self, ips: &[IpAddr]) -> bool {
        [ip_of(&self.dst_addr), ip_of(&self.dst_hbone_addr)]
            .into_iter()
            .flatten()
            .any(|ip| ips.contains(&ip))
    }

    fn inbound(&self) -> bool {
        self.direction.as_deref() == Some("inbound")
    }

    /// The policy rejection this line records, if it records one.
    pub fn rejection(&self) -> Option<&str> {
        self.error
            .as_deref()
            .filter(|e| e.starts_with(POLICY_REJECTION))
    }
}

/// A time window, with slack on both sides for clocks and log flushing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

impl Window {
    fn holds(&self, l: &AccessLine) -> bool {
        l.at.is_some_and(|t| t >= self.from && t <= self.to)
    }
}

fn rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Reads one value of ztunnel's plain format: `{value:?}` of a `&str`/`String` is a quoted,
/// escaped string; a `%`-recorded address is bare (`src/telemetry.rs:186-194`).
fn take_value(s: &str) -> (String, &str) {
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, other)) => out.push(other),
                    None => break,
                },
                '"' => return (out, &rest[i + 1..]),
                _ => out.push(c),
            }
        }
        (out, "")
    } else {
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        (s[..end].to_string(), &s[end..])
    }
}

/// `key=value` pairs of a plain line's fields.
fn plain_fields(mut s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start();
        let Some(eq) = s.find('=') else { break };
        let key = s[..eq].to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            // Not a field: skip the token.
            let end = s.find(char::is_whitespace).unwrap_or(s.len());
            s = &s[end..];
            if s.is_empty() {
                break;
            }
            continue;
        }
        let (value, rest) = take_value(&s[eq + 1..]);
        out.push((key, value));
        s = rest;
    }
    out
}

/// Parses one log line, as read from the API server with or without its timestamp prefix, in
/// ztunnel's plain format (`<time>\t<level>\taccess\tconnection complete\t<k=v …>`,
/// `src/telemetry.rs:219-259`) or its JSON format (`LOG_FORMAT=json`: `level`, `time`, `scope`,
/// `message` and the fields as flat keys, `:343-384`). `None` for anything but a completed
/// connection's line.
pub fn parse_line(line: &str) -> Option<AccessLine> {
    let line = line.trim_end();
    // The API server's prefix (`timestamps=true`): an RFC 3339 time and a space.
    let (prefix_at, body) = match line.split_once(' ') {
        Some((first, rest)) if rfc3339(first).is_some() => (rfc3339(first), rest),
        _ => (None, line),
    };
    let body = body.trim_start();
    if body.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        if v["message"].as_str() != Some(CONNECTION_COMPLETE) {
            return None;
        }
        let at = prefix_at.or_else(|| v["time"].as_str().and_then(rfc3339));
        return Some(access_line(at, |k| v[k].as_str().map(str::to_string), line));
    }
    let at_msg = body.find(CONNECTION_COMPLETE)?;
    let own_at = body.split_whitespace().next().and_then(rfc3339);
    let fields = plain_fields(&body[at_msg + CONNECTION_COMPLETE.len()..]);
    let field = |k: &str| {
        fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    Some(access_line(prefix_at.or(own_at), field, line))
}

/// The line's fields by their ztunnel names, whichever format `field` reads them from.
fn access_line(
    at: Option<OffsetDateTime>,
    field: impl Fn(&str) -> Option<String>,
    raw: &str,
) -> AccessLine {
    AccessLine {
        at,
        direction: field("direction"),
        src_addr: field("src.addr"),
        src_identity: field("src.identity"),
        dst_addr: field("dst.addr"),
        dst_hbone_addr: field("dst.hbone_addr"),
        error: field("error"),
        raw: raw.to_string(),
    }
}

/// Every completed connection's line in a log text.
pub fn parse_log(text: &str) -> Vec<AccessLine> {
    text.lines().filter_map(parse_line).collect()
}

/// What the destination ztunnel(s) logged over a window, and the addresses that matter: the
/// client's pod IPs and the destination pods' IPs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ZtunnelView {
    /// The ztunnel pods read (`istio-system/<name>` on `<node>`).
    pub ztunnels: Vec<String>,
    pub sources: Vec<IpAddr>,
    pub targets: Vec<IpAddr>,
    pub lines: Vec<AccessLine>,
}

/// The inbound line in `w` that records a policy rejection of a connection from one of `sources`
/// to one of `targets`, if there is one.
pub fn policy_rejection<'a>(
    lines: &'a [AccessLine],
    sources: &[IpAddr],
    targets: &[IpAddr],
    w: Window,
) -> Option<&'a AccessLine> {
    lines.iter().find(|l| {
        l.inbound()
            && l.rejection().is_some()
            && l.src_ip().is_some_and(|ip| sources.contains(&ip))
            && l.to_any(targets)
            && w.holds(l)
    })
}

/// Whether a rejection names a policy istiod made from a STRICT PeerAuthentication.
pub fn is_strict_rejection(rejection: &str) -> bool {
    STRICT_POLICY_NAMES.iter().any(|n| rejection.contains(n))
}

/// Why an identity could not be shown from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityProblem {
    /// Nothing to judge: the check cannot tell (an error).
    CannotTell(String),
    /// A connection from the gateway carried another identity, or none (a fail).
    Wrong(String),
    /// The function's peers were waypoints only: the gateway's identity is on the hop to the
    /// waypoint ([`gateway_identity_to_waypoints`]), not here.
    ThroughWaypoint(String),
}

/// Shows from ztunnel's inbound lines in `w` that every connection from the gateway's pods
/// (`gateway`) to the function's pods (`targets`) carried `expected` as `src.identity`. Lines
/// from waypoint pods (`waypoints`) name the waypoint, not the gateway: traffic that only came
/// that way leaves the gateway's identity unshown here. `Ok` with the number of lines.
pub fn gateway_identity(
    lines: &[AccessLine],
    gateway: &[IpAddr],
    waypoints: &[IpAddr],
    targets: &[IpAddr],
    expected: &str,
    w: Window,
) -> Result<usize, IdentityProblem> {
    let to_function: Vec<&AccessLine> = lines
        .iter()
        .filter(|l| l.inbound() && l.to_any(targets) && w.holds(l))
        .collect();
    let from_gateway: Vec<&AccessLine> = to_function
        .iter()
        .copied()
        .filter(|l| l.src_ip().is_some_and(|ip| gateway.contains(&ip)))
        .collect();
    if from_gateway.is_empty() {
        let via_waypoint = to_function
            .iter()
            .filter(|l| l.src_ip().is_some_and(|ip| waypoints.contains(&ip)))
            .count();
        if via_waypoint > 0 {
            return Err(IdentityProblem::ThroughWaypoint(format!("the function's ztunnel logged {via_waypoint} connections from waypoint pods and none from the gateway's pods: its log names the waypoint, so the gateway's identity is not shown there")));
        }
        return Err(IdentityProblem::CannotTell(format!(
            "the function's ztunnel logged no completed connection from the gateway's pods ({}) in the check's window ({} lines of completed connections to the function): ztunnel writes the line when a connection ends, so a connection the gateway keeps open is not there yet",
            ips_text(gateway),
            to_function.len()
        )));
    }
    all_carry(
        &from_gateway,
        expected,
        "connections from the gateway to the function were logged by ztunnel",
        |l| match &l.src_identity {
            Some(id) => format!(
                "src.identity={id} from {}",
                l.src_addr.as_deref().unwrap_or("?")
            ),
            None => format!(
                "no src.identity (not mTLS) from {}",
                l.src_addr.as_deref().unwrap_or("?")
            ),
        },
    )
}

/// `lines.len()` when every line carries `expected` as its `src.identity`; else the wrong
/// ones (the first three, each told by `describe`), counted against all, as `what` logged them.
fn all_carry(
    lines: &[&AccessLine],
    expected: &str,
    what: &str,
    describe: impl Fn(&AccessLine) -> String,
) -> Result<usize, IdentityProblem> {
    let wrong: Vec<String> = lines
        .iter()
        .filter(|l| l.src_identity.as_deref() != Some(expected))
        .map(|l| describe(l))
        .collect();
    if wrong.is_empty() {
        return Ok(lines.len());
    }
    Err(IdentityProblem::Wrong(format!(
        "{} of {} {what} without the gateway's identity {expected}: {}",
        wrong.len(),
        lines.len(),
        wrong.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
    )))
}

fn ips_text(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// With a waypoint in the path: the gateway's identity on its hop to the waypoint, from the
/// gateway node's ztunnel. A waypoint pod is not captured by ztunnel (istio 1.30.3
/// `waypoint.yaml:63`, `istio.io/dataplane-mode: none`) and terminates HBONE itself, so the
/// only ztunnel on that hop is the gateway's, whose outbound line carries the identity it
/// presented (`src/proxy/metrics.rs:734`, written only for mTLS). Every outbound line in `w`
/// from the gateway's pods to a waypoint pod must carry `expected`; none is an error.
pub fn gateway_identity_to_waypoints(
    lines: &[AccessLine],
    gateway: &[IpAddr],
    waypoints: &[IpAddr],
    expected: &str,
    w: Window,
) -> Result<usize, IdentityProblem> {
    let hops: Vec<&AccessLine> = lines
        .iter()
        .filter(|l| {
            l.direction.as_deref() == Some("outbound")
                && l.src_ip().is_some_and(|ip| gateway.contains(&ip))
                && ip_of(&l.dst_addr).is_some_and(|ip| waypoints.contains(&ip))
                && w.holds(l)
        })
        .collect();
    if hops.is_empty() {
        return Err(IdentityProblem::CannotTell(format!(
            "the traffic reached the function through waypoint pods ({}), and the gateway's ztunnel logged no completed connection from the gateway's pods ({}) to them in the check's window",
            ips_text(waypoints),
            ips_text(gateway)
        )));
    }
    all_carry(
        &hops,
        expected,
        "connections from the gateway to a waypoint were logged by the gateway's ztunnel",
        |l| {
            format!(
                "src.identity={} to {}",
                l.src_identity.as_deref().unwrap_or("(none: not mTLS)"),
                l.dst_addr.as_deref().unwrap_or("?")
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// istio/ztunnel 1.30.3 `README.md:151-156` (an access log line, the values real, written
    /// there across lines for reading) laid out the way `src/telemetry.rs:219-259` writes it at
    /// that tag: time, lowercase level, target, message, then `k=v` fields, tab-separated.
    const SUCCESS: &str = "2024-04-11T15:38:42.182974Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.24:46238 src.workload=\"shell-6d8bcd654d-t88gp\" src.namespace=\"default\" src.identity=\"spiffe://cluster.local/ns/default/sa/default\" dst.addr=10.244.0.42:15008 dst.hbone_addr=10.96.108.116:80 dst.service=\"echo.default.svc.cluster.local\" direction=\"outbound\" bytes_sent=67 bytes_recv=490 duration=\"13ms\"";

    /// The inbound side of a refused connection: the `error` text is the one
    /// `tests/namespaced.rs:1047-1053` asserts at 1.30.3 (`connection closed due to policy
    /// rejection: allow policies exist, but none allowed`), `dst.addr` the original 15008
    /// address and `dst.hbone_addr` the target (`src/proxy/inbound.rs:461-466`), level `error`
    /// (`metrics.rs:516-524`). Read through the API server with `timestamps=true`.
    const REJECTED: &str = "2026-12-06T03:00:01.500000000Z 2026-12-06T03:00:01.499812Z\terror\taccess\tconnection complete\tsrc.addr=10.244.1.7:51234 src.workload=\"meshproof-probe-r1-1\" src.namespace=\"openfaas-fn\" dst.addr=10.244.2.9:15008 dst.hbone_addr=10.244.2.9:8080 dst.service=\"gateway.openfaas.svc.cluster.local\" dst.workload=\"gateway-7d9\" dst.namespace=\"openfaas\" direction=\"inbound\" bytes_sent=0 bytes_recv=0 duration=\"0ms\" error=\"connection closed due to policy rejection: allow policies exist, but none allowed\"";

    fn t(s: &str) -> OffsetDateTime {
        rfc3339(s).unwrap()
    }

    fn window(from: &str, to: &str) -> Window {
        Window {
            from: t(from),
            to: t(to),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn plain_lines_are_read_field_by_field() {
        let l = parse_line(SUCCESS).unwrap();
        assert_eq!(l.at, Some(t("2024-04-11T15:38:42.182974Z")));
        assert_eq!(l.direction.as_deref(), Some("outbound"));
        assert_eq!(l.src_ip(), Some(ip("10.244.0.24")));
        assert_eq!(
            l.src_identity.as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/default")
        );
        assert_eq!(l.dst_hbone_addr.as_deref(), Some("10.96.108.116:80"));
        assert_eq!(l.error, None);
        assert_eq!(l.rejection(), None);

        let r = parse_line(REJECTED).unwrap();
        assert_eq!(
            r.at,
            Some(t("2026-12-06T03:00:01.5Z")),
            "the API server's time first"
        );
        assert_eq!(
            r.rejection(),
            Some(
                "connection closed due to policy rejection: allow policies exist, but none allowed"
            )
        );
        assert_eq!(r.src_identity, None);
        // Not a completed connection: no line.
        assert_eq!(
            parse_line("2026-12-06T03:00:00Z\tinfo\tztunnel\tstarting"),
            None
        );
        assert_eq!(
            parse_log(&format!("{SUCCESS}\nnoise\n{REJECTED}\n")).len(),
            2
        );
    }

    /// `LOG_FORMAT=json` (`src/telemetry.rs:343-384`): the keys the upstream tests assert on
    /// (`tests/namespaced.rs:176-195`: `scope`, `message`, `src.identity`, `dst.addr`, …).
    #[test]
    fn json_lines_are_read_too() {
        let line = r#"{"level":"info","time":"2026-12-06T03:00:02.1Z","scope":"access","message":"connection complete","src.addr":"10.244.0.5:40000","src.workload":"gateway-7d9","src.identity":"spiffe://cluster.local/ns/openfaas/sa/openfaas-controller","dst.addr":"10.244.2.30:15008","dst.hbone_addr":"10.244.2.30:8080","direction":"inbound","bytes_sent":10,"bytes_recv":20,"duration":"3ms"}"#;
        let l = parse_line(line).unwrap();
        assert_eq!(l.at, Some(t("2026-12-06T03:00:02.1Z")));
        assert_eq!(l.direction.as_deref(), Some("inbound"));
        assert_eq!(
            l.src_identity.as_deref(),
            Some("spiffe://cluster.local/ns/openfaas/sa/openfaas-controller")
        );
        assert!(parse_line(r#"{"message":"connection opened","direction":"inbound"}"#).is_none());
    }

    #[test]
    fn a_rejection_counts_only_for_its_connection_and_window() {
        let lines = parse_log(&format!("{SUCCESS}\n{REJECTED}"));
        let w = window("2026-12-06T03:00:00Z", "2026-12-06T03:00:03Z");
        let (probe, gw) = (ip("10.244.1.7"), ip("10.244.2.9"));
        assert!(policy_rejection(&lines, &[probe], &[gw], w).is_some());
        // Another client, another target, another time: not this connection's.
        assert!(policy_rejection(&lines, &[ip("10.244.1.8")], &[gw], w).is_none());
        assert!(policy_rejection(&lines, &[probe], &[ip("10.244.2.10")], w).is_none());
        let before = window("2026-12-06T02:59:00Z", "2026-12-06T03:00:00Z");
        assert!(policy_rejection(&lines, &[probe], &[gw], before).is_none());
        // An outbound line of the same pair is the client's ztunnel, not the destination's.
        let outbound = REJECTED.replace("direction=\"inbound\"", "direction=\"outbound\"");
        assert!(policy_rejection(&parse_log(&outbound), &[probe], &[gw], w).is_none());
    }

    #[test]
    fn strict_rejections_are_told_from_other_policies() {
        assert!(is_strict_rejection(
            "connection closed due to policy rejection: explicitly denied by: istio-system/istio_converted_static_strict"
        ));
        assert!(is_strict_rejection(
            "connection closed due to policy rejection: explicitly denied by: openfaas-fn/converted_peer_authentication_fn"
        ));
        assert!(!is_strict_rejection(
            "connection closed due to policy rejection: explicitly denied by: openfaas-fn/deny-all"
        ));
    }

    #[test]
    fn the_gateways_identity_is_shown_only_by_its_own_connections() {
        let line = |src: &str, id: Option<&str>| {
            let id = id
                .map(|i| format!(" src.identity=\"{i}\""))
                .unwrap_or_default();
            format!("2026-12-06T03:00:02Z\tinfo\taccess\tconnection complete\tsrc.addr={src}:40000{id} dst.addr=10.244.2.30:15008 dst.hbone_addr=10.244.2.30:8080 direction=\"inbound\"")
        };
        let want = "spiffe://cluster.local/ns/openfaas/sa/openfaas-controller";
        let (gw, wp, f) = (ip("10.244.0.5"), ip("10.244.0.77"), ip("10.244.2.30"));
        let w = window("2026-12-06T03:00:00Z", "2026-12-06T03:00:05Z");
        let judge = |text: String| gateway_identity(&parse_log(&text), &[gw], &[wp], &[f], want, w);
        assert_eq!(judge(line("10.244.0.5", Some(want))), Ok(1));
        assert!(matches!(
            judge(format!(
                "{}\n{}",
                line("10.244.0.5", Some(want)),
                line(
                    "10.244.0.5",
                    Some("spiffe://cluster.local/ns/openfaas/sa/other")
                )
            )),
            Err(IdentityProblem::Wrong(_))
        ));
        assert!(matches!(
            judge(line("10.244.0.5", None)),
            Err(IdentityProblem::Wrong(_))
        ));
        assert!(matches!(
            judge(String::new()),
            Err(IdentityProblem::CannotTell(_))
        ));
        assert!(matches!(
            judge(line(
                "10.244.0.77",
                Some("spiffe://cluster.local/ns/openfaas-fn/sa/waypoint")
            )),
            Err(IdentityProblem::ThroughWaypoint(_))
        ));
        // Then the hop to the waypoint, from the gateway's ztunnel, shows the identity.
        let hop = |id: &str| {
            format!("2026-12-06T03:00:02Z\tinfo\taccess\tconnection complete\tsrc.addr=10.244.0.5:40000 src.identity=\"{id}\" dst.addr=10.244.0.77:15008 dst.hbone_addr=10.96.0.20:8080 direction=\"outbound\"")
        };
        let via =
            |text: String| gateway_identity_to_waypoints(&parse_log(&text), &[gw], &[wp], want, w);
        assert_eq!(via(hop(want)), Ok(1));
        assert!(matches!(
            via(hop("spiffe://cluster.local/ns/openfaas/sa/other")),
            Err(IdentityProblem::Wrong(_))
        ));
        assert!(matches!(
            via(String::new()),
            Err(IdentityProblem::CannotTell(_))
        ));
        // The function's own inbound line is no hop to a waypoint.
        assert!(matches!(
            via(line("10.244.0.5", Some(want))),
            Err(IdentityProblem::CannotTell(_))
        ));
        // Outside the window it does not count.
        let late = window("2026-12-06T03:01:00Z", "2026-12-06T03:02:00Z");
        assert!(matches!(
            gateway_identity(
                &parse_log(&line("10.244.0.5", Some(want))),
                &[gw],
                &[],
                &[f],
                want,
                late
            ),
            Err(IdentityProblem::CannotTell(_))
        ));
    }
}
