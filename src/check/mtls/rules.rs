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

/// A mesh whose wire conventions are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mesh {
    Istio,
    Linkerd,
}

/// The rules every judged ClientHello must satisfy. Empty rules accept any ClientHello (the check
/// then proves only "no plaintext, every flow starts with TLS").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HelloRules {
    pub mesh: Option<Mesh>,
    /// The ClientHello must offer at least one of these ALPN protocols (when non-empty).
    pub alpn_any_of: Vec<String>,
    /// The SNI must be present and end with this suffix (when set).
    pub sni_suffix: Option<String>,
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
                sni_suffix: None,
            },
            Some(Mesh::Linkerd) => HelloRules {
                mesh,
                alpn_any_of: Vec::new(),
                sni_suffix: Some(LINKERD_SNI_SUFFIX.to_string()),
            },
            None => HelloRules::default(),
        };
        for a in expect_alpn {
            if !rules.alpn_any_of.contains(a) {
                rules.alpn_any_of.push(a.clone());
            }
        }
        if let Some(s) = expect_sni_suffix {
            rules.sni_suffix = Some(s.to_string());
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
        if let Some(suffix) = &self.sni_suffix {
            match &hello.sni {
                Some(sni) if sni.ends_with(suffix.as_str()) && sni.len() > suffix.len() => {}
                Some(sni) => broken.push(format!("SNI {sni:?} does not end with {suffix:?}")),
                None => broken.push(format!("no SNI (expected a name ending with {suffix:?})")),
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
        assert_eq!(r.sni_suffix.as_deref(), Some(".example"));
        let r = HelloRules::build(Some(Mesh::Istio), &["my-proto".into()], None);
        assert!(
            r.alpn_any_of.contains(&"istio".to_string())
                && r.alpn_any_of.contains(&"my-proto".to_string())
        );
        assert!(r.check(&hello(None, &["my-proto"])).is_ok());
    }

    #[test]
    fn no_rules_accept_any_hello() {
        assert!(HelloRules::build(None, &[], None)
            .check(&hello(None, &[]))
            .is_ok());
    }
}
