//! The pure decision: capture analysis + rules → verdict. No I/O here.
//!
//! Order of precedence:
//! 1. No packets at all → **error** (nothing to judge).
//! 2. The sentinel in any TCP payload, or a judged flow that does not start with an acceptable
//!    ClientHello → **fail**. A violation seen is conclusive even on a truncated capture.
//! 3. No TCP payload, no flow to a `--port`, a truncated capture, a judged flow whose start was not
//!    captured, or no TLS flow at all → **error**: absence of a violation cannot be certified.
//! 4. Otherwise **pass**: at least one TLS flow, every judged flow's ClientHello meets the rules.

use super::capture::CaptureStats;
use super::flows::{Dir, FlowAnalysis, FlowRecord, Orientation, PacketCounts, SentinelHit};
use super::rules::HelloRules;
use super::tls_hello::FirstRecord;
use crate::check::{CheckName, Outcome, Verdict};
use serde::Serialize;

/// What capture reading and flow analysis produced.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub capture: CaptureStats,
    pub flows: FlowAnalysis,
}

/// How one flow fared against the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "snake_case")]
pub enum FlowResult {
    Pass,
    Fail(String),
    /// The flow is in scope but the capture does not show enough to decide it.
    Undetermined(String),
    /// Out of scope (other port, or no payload).
    NotJudged(String),
}

/// One flow in the evidence: what was seen and how it was judged.
#[derive(Debug, Clone, Serialize)]
pub struct FlowEvidence {
    #[serde(flatten)]
    pub flow: FlowRecord,
    pub rule: FlowResult,
}

/// The evidence of an `mtls` verdict.
#[derive(Debug, Clone, Serialize)]
pub struct MtlsEvidence {
    /// Where the capture came from (`-` for stdin).
    pub input: String,
    /// Set when the capture could not be read at all.
    pub input_error: Option<String>,
    pub capture: Option<CaptureStats>,
    pub packets: Option<PacketCounts>,
    /// The ports whose flows are judged (every flow when empty).
    pub ports: Vec<u16>,
    pub rules: HelloRules,
    /// Stricter rules for flows to particular ports (Linkerd's proxy inbound port).
    pub port_rules: Vec<PortRules>,
    pub sentinel_len: usize,
    pub sentinel_hits_total: u64,
    /// The first hits (at most 100), in capture order.
    pub sentinel_hits: Vec<SentinelHit>,
    pub flows_total: usize,
    pub flows: Vec<FlowEvidence>,
}

/// Rules for the flows to one port, instead of the general ones: on Linkerd's proxy inbound
/// port every meshed connection carries ALPN `transport.l5d.io/v1` (ledger LD-7), on the app
/// port none does; under Istio ambient a peer reaches the pod only through HBONE, so the app port
/// carries nothing from a peer (IS-19).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortRules {
    pub port: u16,
    pub expect: PortExpect,
}

/// What the flows to one port must show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PortExpect {
    /// A ClientHello meeting these rules.
    Hello { rules: HelloRules },
    /// No payload at all: any byte a client sends here went around the mesh's tunnel.
    /// `except` are clients whose flows are not judged (with why), such as the kubelet's
    /// probes, which istio-cni lets through from its SNAT address (IS-20).
    NoPayload { except: Vec<ExemptClient> },
}

/// A client address whose flows a [`PortExpect::NoPayload`] port does not judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExemptClient {
    pub ip: std::net::IpAddr,
    pub why: String,
}

/// What the judge needs besides the analysis.
#[derive(Debug, Clone)]
pub struct JudgeInput<'a> {
    pub input: &'a str,
    pub rules: &'a HelloRules,
    /// Judge only flows to these ports (every flow carrying payload when empty).
    pub ports: &'a [u16],
    pub port_rules: &'a [PortRules],
    pub sentinel_len: usize,
}

impl JudgeInput<'_> {
    /// What a flow whose server port is `port` must show.
    fn expect_for(&self, port: u16) -> Expect<'_> {
        match self.port_rules.iter().find(|r| r.port == port) {
            Some(PortRules {
                expect: PortExpect::Hello { rules },
                ..
            }) => Expect::Hello(rules),
            Some(PortRules {
                expect: PortExpect::NoPayload { except },
                ..
            }) => Expect::NoPayload(except),
            None => Expect::Hello(self.rules),
        }
    }
}

enum Expect<'a> {
    Hello(&'a HelloRules),
    NoPayload(&'a [ExemptClient]),
}

/// Flows listed in full in the evidence; the rest are counted in `flows_total`. Failing and
/// undetermined flows are listed first so they are never the ones left out.
const MAX_FLOWS_LISTED: usize = 1000;
const MAX_REASONS_PER_KIND: usize = 5;

/// Decides the verdict. Pure: same analysis and rules, same verdict.
pub fn judge(analysis: &Analysis, j: &JudgeInput<'_>) -> Verdict<MtlsEvidence> {
    let fa = &analysis.flows;
    let cap = &analysis.capture;
    let results: Vec<FlowResult> = fa.flows.iter().map(|f| judge_flow(f, j)).collect();

    let mut fail = Vec::new();
    let mut error = Vec::new();

    for h in fa.sentinel_hits.iter().take(MAX_REASONS_PER_KIND) {
        fail.push(format!(
            "sentinel in plaintext: flow {} ({}) {}, packet {}{}",
            h.flow,
            h.flow_label,
            dir_name(h.direction),
            h.packet,
            h.stream_offset
                .map(|o| format!(", stream offset {o}"))
                .unwrap_or_default()
        ));
    }
    if fa.sentinel_hits_total > MAX_REASONS_PER_KIND as u64 {
        fail.push(format!("… {} sentinel hits in all", fa.sentinel_hits_total));
    }
    let mut n_fail = 0;
    let mut n_undetermined = 0;
    let mut n_pass = 0;
    let mut n_judged = 0;
    for (f, r) in fa.flows.iter().zip(&results) {
        let label = format!(
            "flow {} ({} -> {}, first packet {})",
            f.id, f.client, f.server, f.first_packet
        );
        match r {
            FlowResult::Pass => {
                n_pass += 1;
                n_judged += 1;
            }
            FlowResult::Fail(why) => {
                n_fail += 1;
                n_judged += 1;
                if n_fail <= MAX_REASONS_PER_KIND {
                    fail.push(format!("{label}: {why}"));
                }
            }
            FlowResult::Undetermined(why) => {
                n_undetermined += 1;
                n_judged += 1;
                if n_undetermined <= MAX_REASONS_PER_KIND {
                    error.push(format!("{label}: {why}"));
                }
            }
            FlowResult::NotJudged(_) => {}
        }
    }
    if n_fail > MAX_REASONS_PER_KIND {
        fail.push(format!("… {n_fail} failing flows in all"));
    }
    if n_undetermined > MAX_REASONS_PER_KIND {
        error.push(format!("… {n_undetermined} undetermined flows in all"));
    }

    let truncated = cap
        .truncated
        .as_ref()
        .map(|t| format!("capture truncated {t}; only the part before was analysed"));
    let (outcome, mut reasons) = if cap.packets == 0 {
        (
            Outcome::Error,
            vec!["capture holds no packets: nothing to judge".to_string()],
        )
    } else if !fail.is_empty() {
        (Outcome::Fail, fail)
    } else if fa.counts.tcp_with_payload == 0 {
        (
            Outcome::Error,
            vec![format!(
                "capture holds no TCP payload ({} packets, {} TCP): nothing to judge",
                cap.packets, fa.counts.tcp
            )],
        )
    } else if n_judged == 0 {
        let why = match j.ports {
            [] => "no flow carried payload: nothing to judge".to_string(),
            ports => format!(
                "no flow to port {} carried payload: nothing to judge",
                port_list(ports)
            ),
        };
        (Outcome::Error, vec![why])
    } else if let Some(t) = &truncated {
        (
            Outcome::Error,
            vec![format!(
                "{t}: no violation in what was read, but the rest cannot be certified"
            )],
        )
    } else if n_undetermined > 0 {
        (Outcome::Error, error)
    } else if n_pass == 0 {
        (Outcome::Error, vec!["no TLS flow was seen".to_string()])
    } else {
        (
            Outcome::Pass,
            vec![format!(
                "{n_pass} flow(s) judged: each starts with a ClientHello meeting the rules; sentinel not found in plaintext"
            )],
        )
    };
    // Without a mesh's rules a pass says only "TLS on the wire": nothing on the wire shows a
    // client certificate (TLS 1.3 encrypts it), so say what was not checked.
    if outcome == Outcome::Pass && j.rules == &HelloRules::default() && j.port_rules.is_empty() {
        reasons.push(
            "no mesh rules (--mesh istio|linkerd, --expect-alpn, --expect-sni-suffix): this shows TLS on the wire only, not mutual authentication or a mesh identity".into(),
        );
    }
    if outcome == Outcome::Fail {
        if let Some(t) = truncated {
            reasons.push(t);
        }
    }
    if outcome != Outcome::Pass && fa.counts.undecodable > 0 && fa.counts.ip == 0 {
        reasons.push(format!(
            "{} packets could not be decoded (link types: {})",
            fa.counts.undecodable,
            cap.linktypes.join(", ")
        ));
    }

    // Evidence: problem flows first, then the rest, capped.
    let mut order: Vec<usize> = (0..fa.flows.len()).collect();
    order.sort_by_key(|&i| match results[i] {
        FlowResult::Fail(_) => 0,
        FlowResult::Undetermined(_) => 1,
        FlowResult::Pass => 2,
        FlowResult::NotJudged(_) => 3,
    });
    let flows = order
        .into_iter()
        .take(MAX_FLOWS_LISTED)
        .map(|i| FlowEvidence {
            flow: fa.flows[i].clone(),
            rule: results[i].clone(),
        })
        .collect();
    let evidence = MtlsEvidence {
        input: j.input.to_string(),
        input_error: None,
        capture: Some(cap.clone()),
        packets: Some(fa.counts.clone()),
        ports: j.ports.to_vec(),
        rules: j.rules.clone(),
        port_rules: j.port_rules.to_vec(),
        sentinel_len: j.sentinel_len,
        sentinel_hits_total: fa.sentinel_hits_total,
        sentinel_hits: fa.sentinel_hits.clone(),
        flows_total: fa.flows.len(),
        flows,
    };
    Verdict::new(CheckName::Mtls, outcome, reasons, evidence)
}

/// The verdict for a capture that could not be read at all.
pub fn unreadable(j: &JudgeInput<'_>, error: String) -> Verdict<MtlsEvidence> {
    let evidence = MtlsEvidence {
        input: j.input.to_string(),
        input_error: Some(error.clone()),
        capture: None,
        packets: None,
        ports: j.ports.to_vec(),
        rules: j.rules.clone(),
        port_rules: j.port_rules.to_vec(),
        sentinel_len: j.sentinel_len,
        sentinel_hits_total: 0,
        sentinel_hits: Vec::new(),
        flows_total: 0,
        flows: Vec::new(),
    };
    Verdict::new(
        CheckName::Mtls,
        Outcome::Error,
        vec![format!("cannot read capture {}: {error}", j.input)],
        evidence,
    )
}

fn port_list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

fn judge_flow(f: &FlowRecord, j: &JudgeInput<'_>) -> FlowResult {
    let mut server_port = f.server.port();
    if !j.ports.is_empty() {
        let to = j.ports.iter().copied().find(|&p| {
            f.server.port() == p
                || (f.orientation != Orientation::Handshake && f.client.port() == p)
        });
        match to {
            Some(p) => server_port = p,
            None => {
                return FlowResult::NotJudged(format!("not a flow to port {}", port_list(j.ports)))
            }
        }
    }
    let rules = match j.expect_for(server_port) {
        Expect::Hello(rules) => rules,
        Expect::NoPayload(except) => {
            let client = if f.server.port() == server_port {
                f.client.ip()
            } else {
                f.server.ip()
            };
            if let Some(e) = except.iter().find(|e| e.ip == client) {
                return FlowResult::NotJudged(format!("from {}: {}", e.ip, e.why));
            }
            if !f.has_payload() {
                return FlowResult::NotJudged("no payload".into());
            }
            return FlowResult::Fail(format!(
                "payload on port {server_port}, which a peer reaches only around the mesh's tunnel ({} bytes from the client, {} to it)",
                f.client_to_server.payload_bytes, f.server_to_client.payload_bytes
            ));
        }
    };
    if !f.has_payload() {
        return FlowResult::NotJudged("no payload".into());
    }
    if f.client_to_server.payload_bytes == 0 {
        return match &f.first_server_record {
            Some(FirstRecord::NotTls { first_bytes_text, .. }) if f.orientation == Orientation::Handshake => {
                FlowResult::Fail(format!("server spoke first in cleartext ({first_bytes_text:?}) and the client sent nothing"))
            }
            _ => FlowResult::Undetermined("only server-to-client bytes were captured: no ClientHello to judge".into()),
        };
    }
    if !f.client_stream_start_seen {
        return FlowResult::Undetermined(
            "the start of the client stream was not captured (connection began before the capture, or a hole at its start): \
             open new connections while capturing"
                .into(),
        );
    }
    match &f.first_client_record {
        None => FlowResult::Undetermined("the client stream's first bytes were not captured".into()),
        Some(FirstRecord::ClientHello { hello, .. }) => match rules.check(hello) {
            Ok(()) => FlowResult::Pass,
            Err(why) => FlowResult::Fail(format!("ClientHello does not meet the mesh rules: {why}")),
        },
        Some(FirstRecord::MalformedHandshake { detail, .. }) => {
            FlowResult::Fail(format!("first client record is a TLS handshake record but not a valid ClientHello: {detail}"))
        }
        Some(FirstRecord::OtherTlsRecord { content_type, .. }) => {
            FlowResult::Fail(format!("first client record has TLS content type {content_type}, not a handshake (22)"))
        }
        Some(FirstRecord::NotTls { first_bytes_hex, first_bytes_text }) => FlowResult::Fail(format!(
            "connection does not start with a TLS handshake record: first bytes {first_bytes_text:?} ({first_bytes_hex})"
        )),
        Some(FirstRecord::Incomplete { bytes }) => {
            FlowResult::Undetermined(format!("the client stream ended after {bytes} bytes, before a complete ClientHello"))
        }
    }
}

fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::ClientToServer => "client->server",
        Dir::ServerToClient => "server->client",
    }
}
