//! `tls` verdict engine: is a TLS endpoint serving a certificate a client should accept?
//!
//! One check connects with rustls (offering TLSv1.2 and TLSv1.3 and ALPN `h2`, `http/1.1`),
//! captures the served chain even when it would not validate, and judges it against:
//! a path to the trust roots (only `--ca` when given: no system roots then), the host or IP
//! name (SANs only), every served certificate's validity window, the days left on the leaf
//! (`--min-days`), the negotiated protocol (`--min-protocol`, default 1.2) and key strength
//! (RSA < 2048 bits fails; EC P-256/P-384/P-521 and Ed25519/Ed448 pass).
//!
//! Outcomes: *pass* when every criterion holds; *fail* with one reason per failed criterion;
//! *error* when the check could not decide (bad input, bad `--ca` file, DNS or connect failure,
//! timeout, a handshake that does not complete, a peer that is not speaking TLS).
//!
//! Protocol minimum: the client always offers both TLSv1.2 and TLSv1.3 and judges what the
//! server negotiates. A TLS 1.2-only server judged with `--min-protocol 1.3` is therefore a
//! *fail* ("negotiated TLSv1.2, below the required TLSv1.3") with the full chain as evidence,
//! rather than an *error* from a handshake that a 1.3-only client would have aborted: the
//! check did learn the answer. This tests the best version the server agrees to, not whether it
//! also still accepts older ones. A server that agrees to no version ≥ 1.2 is a *fail* too.
//!
//! Layout: [`target`] (URL/`--resolve`/`--servername`), [`trust`] (roots and path building),
//! [`probe`] (network), [`facts`] (X.509 parsing), [`judge`] (the pure rules).

pub mod facts;
pub mod judge;
pub mod probe;
pub mod target;
pub mod trust;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::check::{CheckName, Outcome, Verdict};
pub use facts::{CertFacts, KeyFacts, San};
pub use judge::{judge, ChainTrust, Criteria, Judgement, Observed, TlsVersion};
pub use target::{CheckedName, TlsTarget};

/// Default for `--timeout`: the whole check (DNS, connect, handshake) must end within it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `check tls` needs, as the user gave it.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    pub url: String,
    /// `HOST:IP` or curl's `HOST:PORT:IP`.
    pub resolve: Option<String>,
    /// The only trust roots when set; otherwise the system bundle [`trust::SYSTEM_BUNDLE`].
    pub ca_file: Option<PathBuf>,
    pub servername: Option<String>,
    pub min_days: Option<u32>,
    pub min_protocol: TlsVersion,
    pub timeout: Duration,
    /// When set, `GET <url path>` is sent after the handshake (Host: the checked name) and the
    /// answer must have this status.
    pub expect_status: Option<u16>,
}

impl TlsOptions {
    /// Options with defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        TlsOptions {
            url: url.into(),
            resolve: None,
            ca_file: None,
            servername: None,
            min_days: None,
            min_protocol: TlsVersion::Tls12,
            timeout: DEFAULT_TIMEOUT,
            expect_status: None,
        }
    }
}

/// A served certificate as shown in the chain listing.
#[derive(Debug, Clone, Serialize)]
pub struct ChainEntry {
    pub subject: String,
    pub issuer: String,
}

/// The leaf's details.
#[derive(Debug, Clone, Serialize)]
pub struct LeafEvidence {
    #[serde(flatten)]
    pub facts: CertFacts,
    pub days_left: i64,
}

/// What `check tls` observed. Fields are `None` when the check ended before observing them.
#[derive(Debug, Clone, Serialize)]
pub struct TlsEvidence {
    pub url: String,
    /// The name checked against the certificate (and sent as SNI if a DNS name).
    pub server_name: Option<CheckedName>,
    pub sni: Option<String>,
    pub connected_to: Option<String>,
    pub trust_roots: Option<String>,
    pub min_protocol: TlsVersion,
    pub min_days: Option<u32>,
    pub timeout_ms: u128,
    /// The clock the verdict was judged at (RFC 3339).
    pub checked_at: String,
    /// Where an error verdict stopped: input, trust, resolve, connect, handshake.
    pub failed_stage: Option<String>,
    pub protocol: Option<TlsVersion>,
    pub cipher_suite: Option<String>,
    pub alpn: Option<String>,
    pub alpn_offered: Vec<String>,
    pub leaf: Option<LeafEvidence>,
    pub chain_length: usize,
    pub chain: Vec<ChainEntry>,
    pub chain_trust: Option<ChainTrust>,
    pub handshake_signature_error: Option<String>,
    pub connect_ms: Option<f64>,
    pub handshake_ms: Option<f64>,
    /// The status the endpoint must answer `GET <path>` with, when asked.
    pub expected_status: Option<u16>,
    /// What it answered.
    pub http_status: Option<u16>,
    /// Why no status arrived.
    pub http_error: Option<String>,
}

/// Runs the whole check at the current time.
pub async fn check_tls(opts: &TlsOptions) -> Verdict<TlsEvidence> {
    check_tls_at(opts, OffsetDateTime::now_utc()).await
}

/// Runs the whole check, judging validity windows at `now`.
pub async fn check_tls_at(opts: &TlsOptions, now: OffsetDateTime) -> Verdict<TlsEvidence> {
    let mut ev = TlsEvidence {
        url: opts.url.clone(),
        server_name: None,
        sni: None,
        connected_to: None,
        trust_roots: None,
        min_protocol: opts.min_protocol,
        min_days: opts.min_days,
        timeout_ms: opts.timeout.as_millis(),
        checked_at: facts::format_rfc3339(now),
        failed_stage: None,
        protocol: None,
        cipher_suite: None,
        alpn: None,
        alpn_offered: probe::OFFERED_ALPN.iter().map(|s| s.to_string()).collect(),
        leaf: None,
        chain_length: 0,
        chain: Vec::new(),
        chain_trust: None,
        handshake_signature_error: None,
        connect_ms: None,
        handshake_ms: None,
        expected_status: opts.expect_status,
        http_status: None,
        http_error: None,
    };
    let error = |mut ev: TlsEvidence, stage: &str, reason: String| {
        ev.failed_stage = Some(stage.to_string());
        Verdict::new(CheckName::Tls, Outcome::Error, vec![reason], ev)
    };

    let target = match TlsTarget::parse(
        &opts.url,
        opts.resolve.as_deref(),
        opts.servername.as_deref(),
    ) {
        Ok(t) => t,
        Err(e) => return error(ev, "input", e.to_string()),
    };
    ev.server_name = Some(target.name.clone());
    ev.sni = match &target.name {
        CheckedName::Dns(d) => Some(d.clone()),
        CheckedName::Ip(_) => None,
    };
    let roots = match trust::TrustRoots::load(opts.ca_file.as_deref()) {
        Ok(r) => r,
        Err(e) => return error(ev, "trust", e.to_string()),
    };
    ev.trust_roots = Some(roots.source.clone());

    let get = opts.expect_status.map(|_| probe::HttpGet {
        host: match &target.name {
            CheckedName::Dns(d) => d.clone(),
            CheckedName::Ip(ip) => ip.to_string(),
        },
        path: target.path.clone(),
    });
    if get.is_some() {
        ev.alpn_offered = vec!["http/1.1".into()];
    }
    let hs = match probe::handshake(&target, opts.timeout, get.as_ref()).await {
        Ok(hs) => hs,
        Err(probe::ProbeError::NoCommonProtocol(msg)) => {
            ev.failed_stage = Some("handshake".into());
            let reason = format!("the server agrees to no TLS version ≥ TLSv1.2 (both TLSv1.2 and TLSv1.3 were offered): {msg}");
            return Verdict::new(CheckName::Tls, Outcome::Fail, vec![reason], ev);
        }
        Err(e) => {
            let stage = e.stage();
            return error(ev, stage, e.to_string());
        }
    };
    ev.connected_to = Some(hs.peer.to_string());
    ev.protocol = hs.protocol;
    ev.cipher_suite = hs.cipher_suite.clone();
    ev.alpn = hs.alpn.clone();
    ev.handshake_signature_error = hs.signature_error.clone();
    ev.connect_ms = Some(hs.connect_ms);
    ev.handshake_ms = Some(hs.handshake_ms);
    ev.chain_length = hs.served.len();

    let mut chain = Vec::new();
    let mut unparseable = Vec::new();
    for (i, der) in hs.served.iter().enumerate() {
        match facts::parse_cert(i, der) {
            Ok(f) => chain.push(f),
            Err(e) => {
                unparseable.push(e.to_string());
                if i == 0 {
                    break; // without a leaf, positions after it would be misleading
                }
            }
        }
    }
    ev.chain = chain
        .iter()
        .map(|c| ChainEntry {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
        })
        .collect();
    // The leaf is chain[0] only when served[0] parsed (parsing stops at an unparsable leaf).
    ev.leaf = chain.first().map(|f| LeafEvidence {
        days_left: f.days_left(now),
        facts: f.clone(),
    });
    let windows: Vec<_> = chain.iter().map(|c| (c.not_before, c.not_after)).collect();
    let trust = roots.verify_chain(&hs.served, &windows, now);
    ev.chain_trust = Some(trust.clone());

    let observed = Observed {
        chain,
        unparseable,
        trust,
        handshake_signature_error: hs.signature_error,
        protocol: hs.protocol,
    };
    let criteria = Criteria {
        name: target.name,
        min_days: opts.min_days,
        min_protocol: opts.min_protocol,
    };
    let j = judge(&observed, &criteria, now);
    let (mut outcome, mut reasons) = (j.outcome, j.reasons);
    if let (Some(expected), Some(get)) = (opts.expect_status, &get) {
        match &hs.http {
            Some(Ok(status)) => {
                ev.http_status = Some(*status);
                if *status != expected {
                    outcome = outcome.worst(Outcome::Fail);
                    reasons.push(format!(
                        "GET {} (Host {}) answered {status}, expected {expected}: the endpoint behind the certificate does not serve it",
                        get.path, get.host
                    ));
                }
            }
            Some(Err(e)) => {
                ev.http_error = Some(e.clone());
                outcome = outcome.worst(Outcome::Error);
                reasons.push(format!(
                    "GET {} (Host {}) got no answer: {e}",
                    get.path, get.host
                ));
            }
            None => {}
        }
    }
    Verdict::new(CheckName::Tls, outcome, reasons, ev)
}
