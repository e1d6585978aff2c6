//! Facts about one served certificate, parsed with x509-parser.
//!
//! The judge works on these facts rather than on DER so that its rules can be unit-tested with
//! hand-written values and a fixed clock, and so that the evidence shows exactly what the judge
//! saw.

use std::net::IpAddr;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A subject alternative name as served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
    /// Any other kind (URI, e-mail…), rendered for evidence only; never matched.
    Other(String),
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(d) => write!(f, "DNS:{d}"),
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Other(o) => f.write_str(o),
        }
    }
}

impl Serialize for San {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The subject public key, as far as key strength is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFacts {
    Rsa {
        bits: usize,
    },
    /// `curve` is the named-curve OID's common name (`P-256`…) or the dotted OID if unknown.
    Ec {
        curve: String,
    },
    Ed25519,
    Ed448,
    Other {
        algorithm_oid: String,
    },
}

impl std::fmt::Display for KeyFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyFacts::Rsa { bits } => write!(f, "RSA {bits} bits"),
            KeyFacts::Ec { curve } => write!(f, "EC {curve}"),
            KeyFacts::Ed25519 => f.write_str("Ed25519"),
            KeyFacts::Ed448 => f.write_str("Ed448"),
            KeyFacts::Other { algorithm_oid } => write!(f, "unknown key algorithm {algorithm_oid}"),
        }
    }
}

impl Serialize for KeyFacts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Everything the judge needs to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    /// Colon-separated hex, as `openssl x509 -serial` shows it (modulo colons).
    pub serial: String,
    pub sans: Vec<San>,
    #[serde(serialize_with = "rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub not_after: OffsetDateTime,
    pub key: KeyFacts,
    pub is_ca: bool,
}

impl CertFacts {
    /// True when subject and issuer are the same name (a self-issued, typically self-signed, cert).
    pub fn is_self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// Whole days from `now` until `notAfter`, rounded down (negative once expired).
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        ((self.not_after - now).as_seconds_f64() / 86_400.0).floor() as i64
    }
}

/// Formats a timestamp as RFC 3339 (UTC).
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn rfc3339<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*t))
}

/// A served certificate that x509-parser could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate #{index} in the served chain cannot be parsed: {message}")]
pub struct ParseError {
    pub index: usize,
    pub message: String,
}

/// Parses one DER certificate (`index` is its position in the served chain, for messages).
pub fn parse_cert(index: usize, der: &[u8]) -> Result<CertFacts, ParseError> {
    let err = |message: String| ParseError { index, message };
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| err(e.to_string()))?;
    let validity = cert.validity();
    let time_of = |t: &x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_err(|e| err(format!("validity out of range: {e}")))
    };
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().map(san_of).collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(err(format!("bad subjectAltName: {e}"))),
    };
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    Ok(CertFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        sans,
        not_before: time_of(&validity.not_before)?,
        not_after: time_of(&validity.not_after)?,
        key: key_of(cert.public_key()),
        is_ca,
    })
}

fn san_of(g: &GeneralName<'_>) -> San {
    match g {
        GeneralName::DNSName(d) => San::Dns(d.to_string()),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => San::Ip(IpAddr::from(
                <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
            )),
            16 => San::Ip(IpAddr::from(
                <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
            )),
            _ => San::Other(format!("IP:<{} bytes>", bytes.len())),
        },
        GeneralName::URI(u) => San::Other(format!("URI:{u}")),
        GeneralName::RFC822Name(e) => San::Other(format!("email:{e}")),
        other => San::Other(format!("{other:?}")),
    }
}

fn key_of(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> KeyFacts {
    let alg = spki.algorithm.algorithm.to_id_string();
    match alg.as_str() {
        "1.2.840.113549.1.1.1" => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => KeyFacts::Rsa {
                bits: rsa.key_size(),
            },
            _ => KeyFacts::Other { algorithm_oid: alg },
        },
        "1.2.840.10045.2.1" => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let curve = match curve_oid.as_deref() {
                Some("1.2.840.10045.3.1.7") => "P-256".to_string(),
                Some("1.3.132.0.34") => "P-384".to_string(),
                Some("1.3.132.0.35") => "P-521".to_string(),
                Some(other) => other.to_string(),
                None => "unnamed curve".to_string(),
            };
            KeyFacts::Ec { curve }
        }
        "1.3.101.112" => KeyFacts::Ed25519,
        "1.3.101.113" => KeyFacts::Ed448,
        _ => KeyFacts::Other { algorithm_oid: alg },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_rcgen_certificate() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["a.test".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        params.not_before = time::macros::datetime!(2030-01-02 03:04:05 UTC);
        params.not_after = time::macros::datetime!(2031-01-02 03:04:05 UTC);
        let cert = params.self_signed(&key).unwrap();
        let f = parse_cert(0, cert.der()).unwrap();
        assert_eq!(
            f.sans,
            vec![
                San::Dns("a.test".into()),
                San::Ip("127.0.0.1".parse().unwrap())
            ]
        );
        assert_eq!(
            f.key,
            KeyFacts::Ec {
                curve: "P-384".into()
            }
        );
        assert_eq!(format_rfc3339(f.not_before), "2030-01-02T03:04:05Z");
        assert!(f.is_self_issued());
        assert_eq!(
            f.days_left(time::macros::datetime!(2031-01-01 03:04:06 UTC)),
            0
        );
        assert_eq!(
            f.days_left(time::macros::datetime!(2031-01-02 03:04:06 UTC)),
            -1
        );
    }

    #[test]
    fn garbage_is_a_parse_error_not_a_panic() {
        let e = parse_cert(2, b"\x30\x03\x01\x01").unwrap_err();
        assert_eq!(e.index, 2);
    }
}
