//! The pure TLS judge: served-chain facts + a clock + the criteria → outcome and reasons.
//!
//! No I/O and no hidden clock, so every rule is unit-tested with a fixed `now`. Each failed
//! criterion yields its own reason (an expired certificate for the wrong host gives two), because
//! an operator fixing one problem must not be surprised by the next.

use std::net::IpAddr;

use serde::Serialize;
use time::OffsetDateTime;

use super::facts::{format_rfc3339, CertFacts, KeyFacts, San};
use super::target::CheckedName;
use crate::check::Outcome;

/// A TLS protocol version that rustls can negotiate. Ordered: `Tls12 < Tls13`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1.2")]
    Tls12,
    #[serde(rename = "TLSv1.3")]
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        })
    }
}

impl std::str::FromStr for TlsVersion {
    type Err = String;
    /// Accepts `1.2`/`1.3` (the CLI form) and `TLSv1.2`/`TLSv1.3`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .trim_start_matches("TLSv")
            .trim_start_matches("tlsv")
        {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(format!(
                "unsupported TLS version {s:?}: expected 1.2 or 1.3"
            )),
        }
    }
}

/// Whether the served chain builds a path to a trusted root. Validity windows are *not* part of
/// this (the judge checks them per certificate, so an expired leaf and an untrusted issuer are
/// two separate reasons).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "lowercase")]
pub enum ChainTrust {
    Trusted,
    Untrusted(String),
}

/// What a completed handshake showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The served chain, leaf first, in the order the server sent it.
    pub chain: Vec<CertFacts>,
    /// Served certificates that could not be parsed (with their position).
    pub unparseable: Vec<String>,
    pub trust: ChainTrust,
    /// The server's handshake signature (CertificateVerify / ServerKeyExchange) failed to verify
    /// with the leaf's key. The handshake is let through so that the chain can still be shown.
    pub handshake_signature_error: Option<String>,
    pub protocol: Option<TlsVersion>,
}

/// What the endpoint must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criteria {
    pub name: CheckedName,
    /// Minimum whole days left before the leaf's notAfter; `None` checks only that it is unexpired.
    pub min_days: Option<u32>,
    pub min_protocol: TlsVersion,
}

/// The judge's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub outcome: Outcome,
    pub reasons: Vec<String>,
}

/// RSA moduli below this many bits fail (NIST SP 800-57: 2048 is the floor since 2013).
pub const MIN_RSA_BITS: usize = 2048;

/// Judges a completed handshake. Never returns `Error`: by the time there are facts, the check
/// could decide.
pub fn judge(obs: &Observed, criteria: &Criteria, now: OffsetDateTime) -> Judgement {
    let mut reasons = Vec::new();
    reasons.extend(obs.unparseable.iter().cloned());

    match obs.chain.first() {
        None => reasons.push("the server presented no parsable leaf certificate".to_string()),
        Some(leaf) => {
            if let ChainTrust::Untrusted(why) = &obs.trust {
                let hint = if obs.chain.len() == 1 && leaf.is_self_issued() {
                    " (the leaf is self-signed)"
                } else {
                    ""
                };
                reasons.push(format!(
                    "certificate chain does not lead to a trusted CA{hint}: {why}"
                ));
            }
            if !name_matches(&leaf.sans, &criteria.name) {
                let sans: Vec<String> = leaf.sans.iter().map(|s| s.to_string()).collect();
                reasons.push(format!(
                    "certificate is not valid for {} {}: its SANs are [{}]",
                    match criteria.name {
                        CheckedName::Dns(_) => "host",
                        CheckedName::Ip(_) => "IP address",
                    },
                    criteria.name,
                    sans.join(", ")
                ));
            }
            let days_left = leaf.days_left(now);
            if let Some(min) = criteria.min_days {
                if now <= leaf.not_after && days_left < i64::from(min) {
                    reasons.push(format!(
                        "leaf certificate has {days_left} days left (expires {}), fewer than the required {min}",
                        format_rfc3339(leaf.not_after)
                    ));
                }
            }
        }
    }

    for (i, cert) in obs.chain.iter().enumerate() {
        let who = if i == 0 {
            "leaf certificate".to_string()
        } else {
            format!("chain certificate #{i} ({})", cert.subject)
        };
        if now < cert.not_before {
            reasons.push(format!(
                "{who} is not valid yet: notBefore is {}",
                format_rfc3339(cert.not_before)
            ));
        }
        if now > cert.not_after {
            let ago = (now.unix_timestamp() - cert.not_after.unix_timestamp()).div_euclid(86_400);
            reasons.push(format!(
                "{who} expired at {} ({ago} days ago)",
                format_rfc3339(cert.not_after)
            ));
        }
        if let Some(weak) = key_weakness(&cert.key) {
            reasons.push(format!("{who} has a weak key: {weak}"));
        }
    }

    if let Some(e) = &obs.handshake_signature_error {
        let why = match obs.chain.first().map(|l| &l.key) {
            Some(KeyFacts::Rsa { bits }) if *bits < MIN_RSA_BITS => {
                " (the verifier refuses RSA keys below 2048 bits)"
            }
            _ => "",
        };
        reasons.push(format!(
            "the server's handshake signature could not be verified with the leaf's key{why}: {e}"
        ));
    }

    match obs.protocol {
        Some(v) if v >= criteria.min_protocol => {}
        Some(v) => reasons.push(format!(
            "negotiated {v} (the best the server agreed to when offered TLSv1.2 and TLSv1.3), below the required {}",
            criteria.min_protocol
        )),
        None => reasons.push("the negotiated protocol version is unknown".to_string()),
    }

    let outcome = if reasons.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    Judgement { outcome, reasons }
}

/// Why a key is too weak, or `None` if it is acceptable.
pub fn key_weakness(key: &KeyFacts) -> Option<String> {
    match key {
        KeyFacts::Rsa { bits } if *bits < MIN_RSA_BITS => {
            Some(format!("RSA {bits} bits < {MIN_RSA_BITS}"))
        }
        KeyFacts::Rsa { .. } | KeyFacts::Ed25519 | KeyFacts::Ed448 => None,
        KeyFacts::Ec { curve } if matches!(curve.as_str(), "P-256" | "P-384" | "P-521") => None,
        KeyFacts::Ec { curve } => Some(format!(
            "EC curve {curve} is not one of P-256, P-384, P-521"
        )),
        KeyFacts::Other { algorithm_oid } => Some(format!(
            "key algorithm {algorithm_oid} is not recognised as strong"
        )),
    }
}

/// RFC 6125 matching against SANs only (the subject CN is ignored, as browsers and rustls do):
/// DNS names compare case-insensitively, a `*` may stand for exactly one whole left-most label
/// (and never for a label of a two-label name like `*.com`); IP addresses match IP SANs only.
pub fn name_matches(sans: &[San], name: &CheckedName) -> bool {
    match name {
        CheckedName::Ip(ip) => sans
            .iter()
            .any(|s| matches!(s, San::Ip(sip) if ip_eq(sip, ip))),
        CheckedName::Dns(host) => {
            let host = normalise(host);
            sans.iter().any(|s| match s {
                San::Dns(pattern) => dns_matches(&normalise(pattern), &host),
                _ => false,
            })
        }
    }
}

fn normalise(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

fn ip_eq(a: &IpAddr, b: &IpAddr) -> bool {
    a == b || a.to_canonical() == b.to_canonical()
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            if !suffix.contains('.') || suffix.contains('*') {
                return false;
            }
            match host.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == suffix,
                None => false,
            }
        }
        None => !pattern.contains('*') && pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn leaf() -> CertFacts {
        CertFacts {
            subject: "CN=gw.example.test".into(),
            issuer: "CN=Test CA".into(),
            serial: "01".into(),
            sans: vec![
                San::Dns("gw.example.test".into()),
                San::Ip("127.0.0.1".parse().unwrap()),
            ],
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: datetime!(2026-12-31 0:00 UTC),
            key: KeyFacts::Ec {
                curve: "P-256".into(),
            },
            is_ca: false,
        }
    }

    fn observed(leaf: CertFacts) -> Observed {
        Observed {
            chain: vec![leaf],
            unparseable: vec![],
            trust: ChainTrust::Trusted,
            handshake_signature_error: None,
            protocol: Some(TlsVersion::Tls13),
        }
    }

    fn criteria() -> Criteria {
        Criteria {
            name: CheckedName::Dns("gw.example.test".into()),
            min_days: None,
            min_protocol: TlsVersion::Tls12,
        }
    }

    #[test]
    fn a_good_endpoint_passes() {
        let j = judge(&observed(leaf()), &criteria(), NOW);
        assert_eq!(
            j,
            Judgement {
                outcome: Outcome::Pass,
                reasons: vec![]
            }
        );
    }

    #[test]
    fn expired_and_wrong_host_are_two_reasons() {
        let mut l = leaf();
        l.not_after = datetime!(2026-05-01 0:00 UTC);
        let mut c = criteria();
        c.name = CheckedName::Dns("other.example.test".into());
        let j = judge(&observed(l), &c, NOW);
        assert_eq!(j.outcome, Outcome::Fail);
        assert_eq!(j.reasons.len(), 2, "{:?}", j.reasons);
        assert!(j
            .reasons
            .iter()
            .any(|r| r.contains("not valid for host other.example.test")));
        assert!(j
            .reasons
            .iter()
            .any(|r| r.contains("expired at 2026-05-01T00:00:00Z (31 days ago)")));
    }

    #[test]
    fn not_yet_valid_fails() {
        let mut l = leaf();
        l.not_before = datetime!(2026-07-01 0:00 UTC);
        let j = judge(&observed(l), &criteria(), NOW);
        assert_eq!(j.outcome, Outcome::Fail);
        assert!(j.reasons[0].contains("not valid yet"), "{:?}", j.reasons);
    }

    #[test]
    fn min_days_is_a_boundary_on_whole_days() {
        let mut c = criteria();
        // 2026-06-01 12:00 → 2026-12-31 00:00 is 212.5 days: 212 whole days.
        c.min_days = Some(212);
        assert_eq!(judge(&observed(leaf()), &c, NOW).outcome, Outcome::Pass);
        c.min_days = Some(213);
        let j = judge(&observed(leaf()), &c, NOW);
        assert_eq!(j.outcome, Outcome::Fail);
        assert!(j.reasons[0].contains("212 days left"), "{:?}", j.reasons);
    }

    #[test]
    fn untrusted_self_signed_leaf_says_so() {
        let mut l = leaf();
        l.issuer = l.subject.clone();
        let mut o = observed(l);
        o.trust = ChainTrust::Untrusted("UnknownIssuer".into());
        let j = judge(&o, &criteria(), NOW);
        assert_eq!(j.outcome, Outcome::Fail);
        assert!(j.reasons[0].contains("self-signed"), "{:?}", j.reasons);
    }

    #[test]
    fn key_strength_rules() {
        assert!(key_weakness(&KeyFacts::Rsa { bits: 1024 }).is_some());
        assert!(key_weakness(&KeyFacts::Rsa { bits: 2047 }).is_some());
        assert!(key_weakness(&KeyFacts::Rsa { bits: 2048 }).is_none());
        assert!(key_weakness(&KeyFacts::Ec {
            curve: "P-256".into()
        })
        .is_none());
        assert!(key_weakness(&KeyFacts::Ec {
            curve: "1.3.132.0.10".into()
        })
        .is_some());
        assert!(key_weakness(&KeyFacts::Ed25519).is_none());
        let mut l = leaf();
        l.key = KeyFacts::Rsa { bits: 1024 };
        let j = judge(&observed(l), &criteria(), NOW);
        assert_eq!(
            j.reasons,
            vec!["leaf certificate has a weak key: RSA 1024 bits < 2048".to_string()]
        );
    }

    #[test]
    fn protocol_below_minimum_fails() {
        let mut o = observed(leaf());
        o.protocol = Some(TlsVersion::Tls12);
        let mut c = criteria();
        assert_eq!(judge(&o, &c, NOW).outcome, Outcome::Pass);
        c.min_protocol = TlsVersion::Tls13;
        let j = judge(&o, &c, NOW);
        assert_eq!(j.outcome, Outcome::Fail);
        assert!(
            j.reasons[0].contains("negotiated TLSv1.2"),
            "{:?}",
            j.reasons
        );
    }

    #[test]
    fn intermediate_problems_are_reported_per_certificate() {
        let mut inter = leaf();
        inter.subject = "CN=Intermediate".into();
        inter.not_after = datetime!(2026-01-01 0:00 UTC);
        inter.key = KeyFacts::Rsa { bits: 1024 };
        let mut o = observed(leaf());
        o.chain.push(inter);
        let j = judge(&o, &criteria(), NOW);
        assert_eq!(j.reasons.len(), 2, "{:?}", j.reasons);
        assert!(j
            .reasons
            .iter()
            .all(|r| r.contains("chain certificate #1 (CN=Intermediate)")));
    }

    #[test]
    fn handshake_signature_failure_fails() {
        let mut o = observed(leaf());
        o.handshake_signature_error = Some("bad signature".into());
        assert_eq!(judge(&o, &criteria(), NOW).outcome, Outcome::Fail);
    }

    #[test]
    fn empty_chain_fails() {
        let mut o = observed(leaf());
        o.chain.clear();
        assert_eq!(judge(&o, &criteria(), NOW).outcome, Outcome::Fail);
    }

    #[test]
    fn san_matching() {
        let sans = vec![
            San::Dns("*.svc.example.test".into()),
            San::Dns("Exact.Example.Test.".into()),
            San::Ip("::1".parse().unwrap()),
        ];
        let dns = |s: &str| CheckedName::Dns(s.into());
        assert!(name_matches(&sans, &dns("a.svc.example.test")));
        assert!(
            !name_matches(&sans, &dns("a.b.svc.example.test")),
            "wildcard spans one label only"
        );
        assert!(
            !name_matches(&sans, &dns("svc.example.test")),
            "wildcard needs a label"
        );
        assert!(name_matches(&sans, &dns("exact.example.test")));
        assert!(!name_matches(&sans, &dns("example.test")));
        assert!(name_matches(
            &sans,
            &CheckedName::Ip("::1".parse().unwrap())
        ));
        assert!(!name_matches(
            &sans,
            &CheckedName::Ip("127.0.0.1".parse().unwrap())
        ));
        // A DNS SAN spelling an IP does not match an IP name (RFC 6125 §6.2.1).
        assert!(!name_matches(
            &[San::Dns("127.0.0.1".into())],
            &CheckedName::Ip("127.0.0.1".parse().unwrap())
        ));
        assert!(!name_matches(&[San::Dns("*.com".into())], &dns("a.com")));
    }
}
