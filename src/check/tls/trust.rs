//! Trust roots and chain building (rustls-webpki).
//!
//! With `--ca FILE` that file's certificates are the *only* roots: a mesh or cluster CA must not be
//! "helped" by public roots, or a certificate from the wrong CA could pass. Without `--ca`, the
//! Debian/Ubuntu system bundle at [`SYSTEM_BUNDLE`] is used (read as a file, so no extra crate and
//! no platform verifier whose behaviour differs between machines).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use time::OffsetDateTime;

use super::judge::ChainTrust;

/// The system trust bundle used when no `--ca` is given.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why the trust roots could not be loaded. Always an *error* verdict.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read CA file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("CA file {path} contains no PEM certificate")]
    Empty { path: PathBuf },
    #[error("CA file {path}: certificate #{index} is not PEM-decodable: {message}")]
    Pem {
        path: PathBuf,
        index: usize,
        message: String,
    },
    #[error("CA file {path}: certificate #{index} cannot be used as a trust anchor: {message}")]
    Anchor {
        path: PathBuf,
        index: usize,
        message: String,
    },
}

/// Loaded trust anchors and where they came from (for evidence).
#[derive(Debug)]
pub struct TrustRoots {
    pub source: String,
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustRoots {
    /// Loads every PEM certificate of `path` as a trust anchor. With `strict` false (the system
    /// bundle) undecodable entries are skipped; a user's `--ca` file must be entirely valid.
    pub fn from_pem_file(path: &Path, strict: bool) -> Result<TrustRoots, TrustError> {
        let bytes = std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut anchors = Vec::new();
        for (index, item) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
            let der = match item {
                Ok(der) => der,
                Err(e) if strict => {
                    return Err(TrustError::Pem {
                        path: path.to_path_buf(),
                        index,
                        message: e.to_string(),
                    })
                }
                Err(_) => continue,
            };
            match webpki::anchor_from_trusted_cert(&der) {
                Ok(a) => anchors.push(a.to_owned()),
                Err(e) if strict => {
                    return Err(TrustError::Anchor {
                        path: path.to_path_buf(),
                        index,
                        message: format!("{e:?}"),
                    })
                }
                Err(_) => continue,
            }
        }
        if anchors.is_empty() {
            return Err(TrustError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(TrustRoots {
            source: format!("{} ({} certificates)", path.display(), anchors.len()),
            anchors,
        })
    }

    /// `--ca FILE` if given, else the system bundle.
    pub fn load(ca: Option<&Path>) -> Result<TrustRoots, TrustError> {
        match ca {
            Some(p) => {
                let mut r = Self::from_pem_file(p, true)?;
                r.source = format!("--ca {}", r.source);
                Ok(r)
            }
            None => {
                let mut r = Self::from_pem_file(Path::new(SYSTEM_BUNDLE), false)?;
                r.source = format!("system bundle {}", r.source);
                Ok(r)
            }
        }
    }

    /// Does the served chain (leaf first) lead to one of these roots for server authentication?
    ///
    /// Validity windows are judged separately per certificate, so a time error at `now` is
    /// retried at an instant inside every served certificate's window: "expired" and "untrusted"
    /// then stay two distinct findings instead of webpki reporting only the first it meets.
    pub fn verify_chain(
        &self,
        served: &[CertificateDer<'static>],
        windows: &[(OffsetDateTime, OffsetDateTime)],
        now: OffsetDateTime,
    ) -> ChainTrust {
        let Some((leaf, intermediates)) = served.split_first() else {
            return ChainTrust::Untrusted("no certificate was served".into());
        };
        let ee = match webpki::EndEntityCert::try_from(leaf) {
            Ok(ee) => ee,
            Err(e) => return ChainTrust::Untrusted(format!("leaf certificate rejected: {e:?}")),
        };
        let algs = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all;
        let verify_at = |t: OffsetDateTime| {
            let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
            ee.verify_for_usage(
                algs,
                &self.anchors,
                intermediates,
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)),
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .map(|_| ())
        };
        match verify_at(now) {
            Ok(()) => ChainTrust::Trusted,
            Err(webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }) => {
                let latest_start = windows.iter().map(|w| w.0).max();
                let earliest_end = windows.iter().map(|w| w.1).min();
                match (latest_start, earliest_end) {
                    (Some(s), Some(e)) if s <= e => match verify_at(s) {
                        Ok(()) => ChainTrust::Trusted,
                        Err(err) => ChainTrust::Untrusted(format!("{err:?}")),
                    },
                    _ => ChainTrust::Untrusted(
                        "the served certificates' validity windows do not overlap, so no instant exists at which the chain is valid".into(),
                    ),
                }
            }
            Err(e) => ChainTrust::Untrusted(describe(&e)),
        }
    }
}

/// A path-building error in words, after webpki's name for it.
fn describe(e: &webpki::Error) -> String {
    use webpki::Error as E;
    let words = match e {
        E::UnknownIssuer => "no path to a trusted root (issuer not among the trust anchors)",
        E::CaUsedAsEndEntity => {
            "the server presents a CA certificate as its own (a CA may sign server certificates, not be one)"
        }
        E::EndEntityUsedAsCa => "a server (end-entity) certificate signed another certificate",
        E::InvalidSignatureForPublicKey => "a signature in the chain does not verify",
        E::RequiredEkuNotFoundContext(_) => {
            "the certificate is not allowed for TLS servers (no serverAuth EKU)"
        }
        E::PathLenConstraintViolated => "the chain is longer than a CA's path-length constraint allows",
        E::CertNotValidForName(_) => "the certificate does not name this host",
        E::BadDer | E::BadDerTime => "a certificate in the chain is not valid DER",
        _ => return format!("{e:?}"),
    };
    format!(
        "{}: {words}",
        format!("{e:?}").split(['(', ' ', '{']).next().unwrap_or("")
    )
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    #[test]
    fn path_errors_are_said_in_words_after_their_name() {
        let d = describe(&webpki::Error::CaUsedAsEndEntity);
        assert!(
            d.starts_with("CaUsedAsEndEntity: the server presents a CA certificate as its own"),
            "{d}"
        );
        assert!(describe(&webpki::Error::UnknownIssuer).starts_with("UnknownIssuer: no path"));
        // What has no words yet still says its name.
        assert_eq!(
            describe(&webpki::Error::UnsupportedCertVersion),
            "UnsupportedCertVersion"
        );
    }
}
