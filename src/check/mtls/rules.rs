//! What a mesh's ClientHello must look like: ALPN and SNI rules, with Istio and Linkerd presets.
//!
//! Istio sidecars offer ALPN `istio-http/1.1, istio, http/1.1` on an HTTP/1.1 hop (or
//! `istio-peer-exchange, istio` on TCP) and SNI `outbound_.<port>_.<subset>_.<fqdn>` (ledger
//! IS-13). Linkerd proxies send SNI `<sa>.<ns>.serviceaccount.identity.linkerd.cluster.local`, the
//! *server's* identity; in the default `transport-header` mode every meshed pod-to-pod
//! connection goes to the peer proxy's inbound port (4143) and offers exactly one ALPN,
//! [`LINKERD_TRANSPORT_ALPN`] (ledger LD-7). In `transparent` mode it goes to the app port with no
//! ALPN at all. So the Linkerd preset requires the SNI suffix, and the trial adds the ALPN rule
//! for flows to the inbound port ([`super::PortRules`]).
//!
//! Istio's ambient data plane is neither: ztunnel opens HBONE (HTTP/2 CONNECT inside mTLS) to the
//! destination's port 15008 with ALPN exactly `h2`, no SNI, and TLS 1.3 only (istio/ztunnel
//! 1.30.3 `src/tls/certificate.rs:342-356`, `src/tls/lib.rs:42-51`, `src/config.rs:626`:
//! ledger IS-19). Its preset ([`Mesh::IstioAmbient`]) holds a ClientHello to that, and
//! [`super::preset`] adds the port scope: the app port must carry nothing from a peer.

use super::tls_hello::ClientHelloInfo;
use serde::Serialize;

/// ALPN values an Istio sidecar offers to another sidecar.
pub const ISTIO_ALPN: &[&str] = &[
    "istio-peer-exchange",
    "istio-http/1.1",
    "istio-http/1.0",
    "istio-h2",
    "istio",
];
/// SNI suffix of a Linkerd proxy-to-proxy connection.
pub const LINKERD_SNI_SUFFIX: &str = ".serviceaccount.identity.linkerd.cluster.local";
/// The ALPN a Linkerd proxy offers on a connection to a peer proxy's inbound port
/// (linkerd2-proxy v2.366.0 `linkerd/transport-header/src/lib.rs`: `PROTOCOL`).
pub const LINKERD_TRANSPORT_ALPN: &str = "transport.l5d.io/v1";
/// The only ALPN ztunnel offers on HBONE (ledger IS-19).
pub const HBONE_ALPN: &str = "h2";
/// ztunnel's inbound HBONE port (ledger IS-19).
pub const HBONE_PORT: u16 = 15008;

/// A mesh whose wire conventions are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Mesh {
    /// Istio with sidecars.
    Istio,
    /// Istio's ambient data plane (ztunnel, HBONE).
    IstioAmbient,
    Linkerd,
}

/// What the SNI of a ClientHello must be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "must", content = "suffix", rename_all = "snake_case")]
pub enum SniRule {
    /// Anything, or nothing.
    #[default]
    Any,
    /// Present and ending with this suffix (with a name in front of it).
    EndWith(String),
    /// Absent: ztunnel never sends SNI.
    BeAbsent,
}

/// The rules every judged ClientHello must satisfy. Empty rules accept any ClientHello (the check
/// then proves only "no plaintext, every flow starts with TLS").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HelloRules {
    pub mesh: Option<Mesh>,
    /// The ClientHello must offer at least one of these ALPN protocols (when non-empty).
    pub alpn_any_of: Vec<String>,
    pub sni: SniRule,
    /// Every version the ClientHello offers is TLS 1.3.
    pub tls13_only: bool,
}

impl HelloRules {
    /// Preset rules for `mesh`, then explicit expectations: `--expect-alpn` values join the
    /// accepted ALPN set, `--expect-sni-suffix` replaces the preset's suffix.
    pub fn build(
        mesh: Option<Mesh>,
        expect_alpn: &[String],
        expect_sni_suffix: Option<&str>,
    ) -> Self {
        let mut rules = match mesh {
            Some(Mesh::Istio) => HelloRules {
                mesh,
                alpn_any_of: ISTIO_ALPN.iter().map(|s| s.to_string()).collect(),
                ..HelloRules::default()
            },
            Some(Mesh::IstioAmbient) => HelloRules {
                mesh,
                alpn_any_of: vec![HBONE_ALPN.to_string()],
                sni: SniRule::BeAbsent,
                tls13_only: true,
            },
            Some(Mesh::Linkerd) => HelloRules {
                mesh,
                sni: SniRule::EndWith(LINKERD_SNI_SUFFIX.to_string()),
                ..HelloRules::default()
            },
            None => HelloRules::default(),
        };
        for a in expect_alpn {
            if !rules.alpn_any_of.contains(a) {
                rules.alpn_any_of.push(a.clone());
            }
        }
        if let Some(s) = expect_sni_suffix {
            rules.sni = SniRule::EndWith(s.to_string());
        }
        rules
    }

    /// Checks one ClientHello; `Err` says which rule it broke.
    pub fn check(&self, hello: &ClientHelloInfo) -> Result<(), String> {
        let mut broken = Vec::new();
        if !self.alpn_any_of.is_empty() && !hello.alpn.iter().any(|a| self.alpn_any_of.contains(a))
        {
            broken.push(format!(
                "ALPN {:?} offers none of the expected {:?}",
                hello.alpn, self.alpn_any_of
            ));
        }
        match (&self.sni, &hello.sni) {
            (SniRule::Any, _) | (SniRule::BeAbsent, None) => {}
            (SniRule::EndWith(suffix), Some(sni))
                if sni.ends_with(suffix.as_str()) && sni.len() > suffix.len() => {}
            (SniRule::EndWith(suffix), Some(sni)) => {
                broken.push(format!("SNI {sni:?} does not end with {suffix:?}"))
            }
            (SniRule::EndWith(suffix), None) => {
                broken.push(format!("no SNI (expected a name ending with {suffix:?})"))
            }
            (SniRule::BeAbsent, Some(sni)) => broken.push(format!(
                "SNI {sni:?} present (ztunnel's HBONE client sends none)"
            )),
        }
        if self.tls13_only {
            let offered = if hello.supported_versions.is_empty() {
                vec![hello.legacy_version.clone()]
            } else {
                hello.supported_versions.clone()
            };
            if offered.iter().any(|v| v != "TLS1.3") {
                broken.push(format!("offers {offered:?}, not TLS 1.3 only"));
            }
        }
        if broken.is_empty() {
            Ok(())
        } else {
            Err(broken.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(sni: Option<&str>, alpn: &[&str]) -> ClientHelloInfo {
        ClientHelloInfo {
            legacy_version: "TLS1.2".into(),
            supported_versions: vec!["TLS1.3".into()],
            max_version: "TLS1.3".into(),
            sni: sni.map(String::from),
            alpn: alpn.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn istio_needs_an_istio_alpn() {
        let r = HelloRules::build(Some(Mesh::Istio), &[], None);
        assert!(r
            .check(&hello(
                Some("outbound_.8080_._.x"),
                &["istio-peer-exchange", "istio"]
            ))
            .is_ok());
        assert!(r.check(&hello(None, &["istio-h2"])).is_ok());
        let e = r.check(&hello(Some("x"), &["h2", "http/1.1"])).unwrap_err();
        assert!(e.contains("ALPN"), "{e}");
        assert!(r.check(&hello(Some("x"), &[])).is_err());
    }

    #[test]
    fn linkerd_needs_the_identity_sni_and_not_alpn() {
        let r = HelloRules::build(Some(Mesh::Linkerd), &[], None);
        assert!(r
            .check(&hello(
                Some("x.ns.serviceaccount.identity.linkerd.cluster.local"),
                &[]
            ))
            .is_ok());
        assert!(r
            .check(&hello(
                Some("x.ns.serviceaccount.identity.linkerd.cluster.local"),
                &["transport.l5d.io/v1"]
            ))
            .is_ok());
        assert!(r
            .check(&hello(Some("gateway.openfaas.svc.cluster.local"), &[]))
            .is_err());
        assert!(r.check(&hello(None, &["transport.l5d.io/v1"])).is_err());
        // The bare suffix (no identity in front) is not an identity.
        assert!(r
            .check(&hello(
                Some(".serviceaccount.identity.linkerd.cluster.local"),
                &[]
            ))
            .is_err());
    }

    #[test]
    fn explicit_flags_add_alpn_and_override_sni() {
        let r = HelloRules::build(
            Some(Mesh::Linkerd),
            &["transport.l5d.io/v1".into()],
            Some(".example"),
        );
        assert_eq!(r.alpn_any_of, vec!["transport.l5d.io/v1"]);
        assert_eq!(r.sni, SniRule::EndWith(".example".into()));
        let r = HelloRules::build(Some(Mesh::Istio), &["my-proto".into()], None);
        assert!(
            r.alpn_any_of.contains(&"istio".to_string())
                && r.alpn_any_of.contains(&"my-proto".to_string())
        );
        assert!(r.check(&hello(None, &["my-proto"])).is_ok());
    }

    #[test]
    fn istio_ambient_needs_h2_no_sni_and_tls13_only() {
        let r = HelloRules::build(Some(Mesh::IstioAmbient), &[], None);
        assert!(r.check(&hello(None, &["h2"])).is_ok());
        let e = r
            .check(&hello(Some("echo.openfaas-fn"), &["h2"]))
            .unwrap_err();
        assert!(e.contains("SNI") && e.contains("present"), "{e}");
        let e = r.check(&hello(None, &["istio-http/1.1"])).unwrap_err();
        assert!(e.contains("ALPN"), "{e}");
        let mut tls12 = hello(None, &["h2"]);
        tls12.supported_versions = vec!["TLS1.3".into(), "TLS1.2".into()];
        let e = r.check(&tls12).unwrap_err();
        assert!(e.contains("not TLS 1.3 only"), "{e}");
        // No supported_versions extension: the legacy version is what is offered.
        let mut old = hello(None, &["h2"]);
        old.supported_versions = Vec::new();
        assert!(r.check(&old).is_err());
    }

    #[test]
    fn no_rules_accept_any_hello() {
        assert!(HelloRules::build(None, &[], None)
            .check(&hello(None, &[]))
            .is_ok());
    }
}
