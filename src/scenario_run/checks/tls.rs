//! The `tls` check in a trial: the ingress certificate judged by the TLS engine with the
//! cluster CA as the only trust root, retried until it passes (cert-manager and the ingress
//! take a while to serve a new certificate), then two negative controls on the same endpoint:
//!
//! - judged as host `wrong.<host>`, it MUST fail (the name check is live);
//! - judged against a CA generated on the spot, it MUST fail (the trust check is live).
//!
//! If either control passes, the judge is blind and the check is an **error**, whatever the
//! main verdict said. When the server refuses the wrong SNI outright (an ingress with no route
//! for that name closes the handshake), the control re-judges the chain the main check was
//! served with the wrong name — the same rules, on the same certificate.

use crate::check::tls::{
    self, judge, CheckedName, Criteria, Observed, TlsEvidence, TlsOptions, TlsVersion,
};
use crate::check::{CheckName, Outcome, Verdict};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to judge.
#[derive(Debug, Clone)]
pub struct TlsTrialInput {
    pub host: String,
    pub port: u16,
    pub path: String,
    /// Where the host is reached (`127.0.0.1`: kind maps the ingress to the host).
    pub connect_ip: String,
    /// The cluster CA in PEM. Never logged.
    pub ca_pem: String,
    pub min_days: u32,
    pub min_protocol: TlsVersion,
    /// The status `GET <path>` must answer with over the checked session (`None`: the
    /// handshake alone is judged).
    pub expect_status: Option<u16>,
    /// How long the main check is retried.
    pub timeout: Duration,
    pub retry_pause: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct ControlEvidence {
    pub outcome: Outcome,
    pub reasons: Vec<String>,
    /// `handshake` (the engine judged a live handshake) or `served-chain` (re-judged).
    pub judged_by: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsCheckEvidence {
    pub attempts: u32,
    pub main: Verdict<TlsEvidence>,
    pub wrong_host: Option<ControlEvidence>,
    pub foreign_ca: Option<ControlEvidence>,
}

fn options(i: &TlsTrialInput, ca: &Path, per_attempt: Duration) -> TlsOptions {
    let mut o = TlsOptions::new(format!("https://{}:{}{}", i.host, i.port, i.path));
    o.resolve = Some(format!("{}:{}", i.host, i.connect_ip));
    o.ca_file = Some(ca.to_path_buf());
    o.min_days = Some(i.min_days);
    o.min_protocol = i.min_protocol;
    o.timeout = per_attempt;
    o.expect_status = i.expect_status;
    o
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    crate::private_fs::write_private(path, text.as_bytes())
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

/// A CA nobody has signed anything with.
pub fn fresh_ca_pem() -> Result<String, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(
        DnType::CommonName,
        "meshproof foreign CA (negative control)",
    );
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(cert.pem())
}

/// Re-judges the chain served to the main check as `name` (the wrong-host fallback).
fn rejudge_as(
    ev: &TlsEvidence,
    name: &str,
    min_days: u32,
    min_protocol: TlsVersion,
) -> Option<(Outcome, Vec<String>)> {
    let leaf = ev.leaf.as_ref()?;
    let observed = Observed {
        chain: vec![leaf.facts.clone()],
        unparseable: Vec::new(),
        trust: ev.chain_trust.clone()?,
        handshake_signature_error: ev.handshake_signature_error.clone(),
        protocol: ev.protocol,
    };
    let criteria = Criteria {
        name: CheckedName::parse(name)?,
        min_days: Some(min_days),
        min_protocol,
    };
    let j = judge(&observed, &criteria, time::OffsetDateTime::now_utc());
    Some((j.outcome, j.reasons))
}

/// Runs the check with its controls; `work_dir` (private) receives the CA files.
pub async fn run_tls_check(i: &TlsTrialInput, work_dir: &Path) -> Verdict<TlsCheckEvidence> {
    let ca_file: PathBuf = work_dir.join("cluster-ca.pem");
    let foreign_file: PathBuf = work_dir.join("foreign-ca.pem");
    let fail_setup = |reason: String| {
        Verdict::new(
            CheckName::Tls,
            Outcome::Error,
            vec![reason],
            TlsCheckEvidence {
                attempts: 0,
                main: Verdict::new(
                    CheckName::Tls,
                    Outcome::Error,
                    vec!["not run".into()],
                    empty_evidence(i),
                ),
                wrong_host: None,
                foreign_ca: None,
            },
        )
    };
    if let Err(e) = write_private(&ca_file, &i.ca_pem) {
        return fail_setup(e);
    }
    let per_attempt = tls::DEFAULT_TIMEOUT.min(i.timeout.max(Duration::from_secs(1)));
    // Main check, retried until pass or timeout.
    let start = Instant::now();
    let mut attempts = 0;
    let main = loop {
        attempts += 1;
        let v = tls::check_tls(&options(i, &ca_file, per_attempt)).await;
        if v.outcome == Outcome::Pass || start.elapsed() + i.retry_pause >= i.timeout {
            break v;
        }
        tokio::time::sleep(i.retry_pause).await;
    };
    let mut ev = TlsCheckEvidence {
        attempts,
        main: main.clone(),
        wrong_host: None,
        foreign_ca: None,
    };
    if main.outcome != Outcome::Pass {
        let mut reasons = vec![format!(
            "the ingress certificate did not pass within {} ({attempts} attempts); last verdict {}:",
            humantime::format_duration(i.timeout),
            main.outcome
        )];
        reasons.extend(main.reasons.iter().cloned());
        return Verdict::new(CheckName::Tls, main.outcome, reasons, ev);
    }
    // Control 1: the wrong host name.
    let wrong = format!("wrong.{}", i.host);
    let mut o = options(i, &ca_file, per_attempt);
    o.servername = Some(wrong.clone());
    let w = tls::check_tls(&o).await;
    let wrong_ev = match w.outcome {
        Outcome::Error => match rejudge_as(&main.evidence, &wrong, i.min_days, i.min_protocol) {
            Some((outcome, reasons)) => ControlEvidence {
                outcome,
                reasons: std::iter::once(format!(
                    "the server refused SNI {wrong}: {}",
                    w.reasons.join("; ")
                ))
                .chain(reasons)
                .collect(),
                judged_by: "served-chain".into(),
            },
            None => ControlEvidence {
                outcome: Outcome::Error,
                reasons: w.reasons.clone(),
                judged_by: "handshake".into(),
            },
        },
        outcome => ControlEvidence {
            outcome,
            reasons: w.reasons.clone(),
            judged_by: "handshake".into(),
        },
    };
    ev.wrong_host = Some(wrong_ev.clone());
    // Control 2: a CA that signed nothing.
    let foreign_ev = match fresh_ca_pem().and_then(|pem| write_private(&foreign_file, &pem)) {
        Ok(()) => {
            let f = tls::check_tls(&options(i, &foreign_file, per_attempt)).await;
            ControlEvidence {
                outcome: f.outcome,
                reasons: f.reasons,
                judged_by: "handshake".into(),
            }
        }
        Err(e) => ControlEvidence {
            outcome: Outcome::Error,
            reasons: vec![format!("generating a CA: {e}")],
            judged_by: "none".into(),
        },
    };
    ev.foreign_ca = Some(foreign_ev.clone());
    let _ = std::fs::remove_file(&foreign_file);
    let mut reasons = Vec::new();
    for (label, c) in [
        (format!("judged as host {wrong}"), &wrong_ev),
        (
            "judged against a freshly generated CA".to_string(),
            &foreign_ev,
        ),
    ] {
        match c.outcome {
            Outcome::Fail => {}
            Outcome::Pass => reasons.push(format!(
                "the TLS judge is blind: the endpoint PASSED when {label}, which must fail"
            )),
            Outcome::Error => reasons.push(format!(
                "the negative control could not be judged ({label}): {}",
                c.reasons.join("; ")
            )),
        }
    }
    if reasons.is_empty() {
        let mut r = vec![format!("the ingress certificate passed (attempt {attempts}); it failed as expected when judged as {wrong} and against a foreign CA")];
        r.extend(main.reasons.iter().cloned());
        Verdict::new(CheckName::Tls, Outcome::Pass, r, ev)
    } else {
        Verdict::new(CheckName::Tls, Outcome::Error, reasons, ev)
    }
}

fn empty_evidence(i: &TlsTrialInput) -> TlsEvidence {
    TlsEvidence {
        url: format!("https://{}:{}{}", i.host, i.port, i.path),
        server_name: None,
        sni: None,
        connected_to: None,
        trust_roots: None,
        min_protocol: i.min_protocol,
        min_days: Some(i.min_days),
        timeout_ms: i.timeout.as_millis(),
        checked_at: String::new(),
        failed_stage: Some("input".into()),
        protocol: None,
        cipher_suite: None,
        alpn: None,
        alpn_offered: Vec::new(),
        leaf: None,
        chain_length: 0,
        chain: Vec::new(),
        chain_trust: None,
        handshake_signature_error: None,
        connect_ms: None,
        handshake_ms: None,
        expected_status: i.expect_status,
        http_status: None,
        http_error: None,
    }
}
