//! Linkerd, with the CLI (`linkerd install --crds`, `linkerd install`, `linkerd check`; the CLI
//! prints manifests that meshproof applies, and must be the suite's release: it installs its
//! own) or the Helm charts `linkerd-crds` and `linkerd-control-plane`.
//!
//! Helm needs an identity trust anchor and an issuer: meshproof generates them per run (ECDSA
//! P-256; a root CA, and an issuer CA signed by it with the CN Linkerd's identity service
//! expects), writes them to 0600 files in the run's temp dir and hands Helm the paths. The
//! anchor's private key is never written anywhere: nothing needs to sign with it again.

use super::helm::{Helm, Value};
use super::InstallCtx;
use crate::process::Cmd;
use crate::scenario::LinkerdInstall;
use crate::scenario::StackComponent;
use crate::stack::actions::{Action, ComponentPlan};
use crate::stack::cluster::api::ObjectRef;
use crate::stack::cluster::uninstall::Uninstall;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const REPO: (&str, &str) = ("linkerd-edge", "https://helm.linkerd.io/edge");
pub const NAMESPACE: &str = "linkerd";
/// The issuer CN Linkerd's identity controller requires.
pub const ISSUER_CN: &str = "identity.linkerd.cluster.local";
pub const ANCHOR_CN: &str = "root.linkerd.cluster.local";

/// Where the generated identity files live (inside the environment's work dir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub trust_anchor: PathBuf,
    pub issuer_crt: PathBuf,
    pub issuer_key: PathBuf,
}

impl CertFiles {
    pub fn in_dir(work_dir: &Path) -> CertFiles {
        let d = work_dir.join("linkerd-identity");
        CertFiles {
            trust_anchor: d.join("ca.crt"),
            issuer_crt: d.join("issuer.crt"),
            issuer_key: d.join("issuer.key"),
        }
    }
}

/// Freshly generated identity material, PEM encoded.
pub struct Identity {
    pub trust_anchor_pem: String,
    pub issuer_crt_pem: String,
    /// Secret: register with the run's redactor.
    pub issuer_key_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("generating Linkerd identity certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A trust anchor (self-signed root CA, 1 year) and an issuer CA (path length 0, 1 year) signed
/// by it.
pub fn generate_identity() -> Result<Identity, IdentityError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
        PKCS_ECDSA_P256_SHA256,
    };
    let now = time::OffsetDateTime::now_utc();
    let params = |cn: &str, ca: BasicConstraints| -> Result<CertificateParams, rcgen::Error> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(ca);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.not_before = now - time::Duration::hours(1);
        p.not_after = now + time::Duration::days(365);
        Ok(p)
    };
    let anchor_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let anchor = params(ANCHOR_CN, BasicConstraints::Unconstrained)?.self_signed(&anchor_key)?;
    let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let issuer = params(ISSUER_CN, BasicConstraints::Constrained(0))?.signed_by(
        &issuer_key,
        &anchor,
        &anchor_key,
    )?;
    Ok(Identity {
        trust_anchor_pem: anchor.pem(),
        issuer_crt_pem: issuer.pem(),
        issuer_key_pem: issuer_key.serialize_pem(),
    })
}

/// Writes the identity into `files`, each file 0600 (created with that mode, never wider).
pub fn write_identity(id: &Identity, files: &CertFiles) -> Result<(), IdentityError> {
    for (path, text) in [
        (&files.trust_anchor, &id.trust_anchor_pem),
        (&files.issuer_crt, &id.issuer_crt_pem),
        (&files.issuer_key, &id.issuer_key_pem),
    ] {
        crate::private_fs::write_private(path, text.as_bytes()).map_err(|source| {
            IdentityError::Write {
                path: path.clone(),
                source,
            }
        })?;
    }
    Ok(())
}

/// `edge-26.8.3` → chart version `2026.8.3` (edge charts are versioned by date).
pub fn chart_version(release: &str) -> Option<String> {
    let rest = release.strip_prefix("edge-")?;
    let (yy, tail) = rest.split_once('.')?;
    (yy.len() == 2 && yy.chars().all(|c| c.is_ascii_digit())).then(|| format!("20{yy}.{tail}"))
}

/// `linkerd install|upgrade [--crds …]`, its output applied. The Gateway API CRDs are the
/// suite's (installed first, at the version it pins): never Linkerd's bundled copy, which the
/// Gateway API's `safe-upgrades` admission policy (v1.5 and later) would refuse as a downgrade.
fn cli_render(ctx: &InstallCtx<'_>, verb: &str, crds: bool) -> Action {
    let mut c = Cmd::new("linkerd").arg(verb);
    if crds {
        c = c.args(["--crds", "--set", "installGatewayAPI=false"]);
    }
    Action::ApplyOutput {
        cmd: with_target(c, ctx).timeout(Duration::from_secs(120)),
    }
}

fn with_target(mut c: Cmd, ctx: &InstallCtx<'_>) -> Cmd {
    c = c.arg("--kubeconfig").arg(ctx.target.kubeconfig.as_os_str());
    if let Some(context) = &ctx.target.context {
        c = c.args(["--context", context.as_str()]);
    }
    c
}

pub fn helm_values(files: &CertFiles) -> Vec<Value> {
    let p = |p: &PathBuf| p.display().to_string();
    vec![
        Value::File("identityTrustAnchorsPEM".into(), p(&files.trust_anchor)),
        Value::File("identity.issuer.tls.crtPEM".into(), p(&files.issuer_crt)),
        Value::File("identity.issuer.tls.keyPEM".into(), p(&files.issuer_key)),
    ]
}

/// What marks a Linkerd install: its namespace and its policy CRD.
fn footprint() -> Vec<ObjectRef> {
    vec![
        ObjectRef::namespace(NAMESPACE),
        ObjectRef::crd("servers.policy.linkerd.io"),
    ]
}

pub fn plan(ctx: &InstallCtx<'_>, version: &str, how: LinkerdInstall) -> ComponentPlan {
    match how {
        LinkerdInstall::Cli => ComponentPlan {
            id: StackComponent::Linkerd,
            component: "Linkerd",
            version: version.to_string(),
            footprint: footprint(),
            // Everything `linkerd install` prints, meshproof applies: what that creates carries
            // the run-id label and goes with the labelled cleanup.
            uninstall: vec![],
            notes: vec![
                "linkerd CLI of the pinned release; its manifests are server-side applied".into(),
            ],
            actions: vec![
                Action::CheckVersion {
                    cmd: Cmd::new("linkerd")
                        .args(["version", "--client", "--short"])
                        .timeout(Duration::from_secs(30)),
                    pinned: version.to_string(),
                },
                // `linkerd install` refuses a cluster that has `linkerd-config` (a kept cluster
                // re-provisioned, an existing one): there the CLI's own upgrade renders the
                // manifests instead (ledger LD-3; CLI installs only — a Helm-installed Linkerd
                // has no `linkerd-config-overrides`, and `linkerd upgrade` says so).
                Action::IfExists {
                    object: ObjectRef::core("ConfigMap", NAMESPACE, "linkerd-config"),
                    why: "Linkerd is installed already; upgrading it to the pinned release".into(),
                    then: vec![
                        cli_render(ctx, "upgrade", true),
                        cli_render(ctx, "upgrade", false),
                    ],
                    otherwise: vec![
                        cli_render(ctx, "install", true),
                        cli_render(ctx, "install", false),
                    ],
                },
                Action::Run {
                    cmd: with_target(Cmd::new("linkerd").args(["check", "--wait", "5m"]), ctx)
                        .timeout(Duration::from_secs(360)),
                },
            ],
        },
        LinkerdInstall::Helm => {
            let Some(chart) = chart_version(version) else {
                return ComponentPlan {
                    id: StackComponent::Linkerd,
                    component: "Linkerd",
                    version: version.to_string(),
                    footprint: footprint(),
                    uninstall: vec![],
                    notes: vec![],
                    actions: vec![Action::NotYet {
                        what: format!("Helm install of Linkerd {version}"),
                        commands: vec![],
                        reason: "only edge releases map to a known chart version (edge-YY.M.N → 20YY.M.N); use `install: cli`".into(),
                    }],
                };
            };
            let helm = Helm {
                target: ctx.target,
                work_dir: ctx.work_dir,
            };
            let files = CertFiles::in_dir(ctx.work_dir);
            ComponentPlan {
                id: StackComponent::Linkerd,
                component: "Linkerd",
                version: version.to_string(),
                footprint: footprint(),
                uninstall: ["linkerd-control-plane", "linkerd-crds"]
                    .into_iter()
                    .map(|r| Uninstall::Run(helm.uninstall(r, NAMESPACE)))
                    .collect(),
                notes: vec![
                    format!("Helm charts version {chart}; trust anchor + issuer generated by meshproof (ECDSA P-256, issuer CN {ISSUER_CN}), 0600 files"),
                ],
                actions: vec![
                    Action::namespace(NAMESPACE, ctx.run_id, None),
                    Action::Run { cmd: helm.repo_add(REPO.0, REPO.1) },
                    Action::Run {
                        cmd: helm.upgrade_install(
                            "linkerd-crds",
                            "linkerd-edge/linkerd-crds",
                            &chart,
                            NAMESPACE,
                            &[Value::set("installGatewayAPI", "false")],
                        ),
                    },
                    Action::Run {
                        cmd: helm.upgrade_install(
                            "linkerd-control-plane",
                            "linkerd-edge/linkerd-control-plane",
                            &chart,
                            NAMESPACE,
                            &helm_values(&files),
                        ),
                    },
                    Action::Run {
                        cmd: with_target(Cmd::new("linkerd").args(["check", "--wait", "5m"]), ctx).timeout(Duration::from_secs(360)),
                    },
                ],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn chart_versions_follow_the_edge_date() {
        assert_eq!(chart_version("edge-26.8.3").as_deref(), Some("2026.8.3"));
        assert_eq!(chart_version("stable-2.14.10"), None);
    }

    #[test]
    fn issuer_is_a_p256_ca_signed_by_the_anchor_with_linkerds_cn() {
        let id = generate_identity().unwrap();
        let (_, anchor_pem) =
            x509_parser::pem::parse_x509_pem(id.trust_anchor_pem.as_bytes()).unwrap();
        let (_, issuer_pem) =
            x509_parser::pem::parse_x509_pem(id.issuer_crt_pem.as_bytes()).unwrap();
        let anchor = anchor_pem.parse_x509().unwrap();
        let issuer = issuer_pem.parse_x509().unwrap();
        let cn = |c: &X509Certificate| {
            c.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(cn(&issuer), ISSUER_CN);
        assert_eq!(cn(&anchor), ANCHOR_CN);
        assert_eq!(issuer.issuer(), anchor.subject());
        assert!(
            chain_verifies(&id),
            "a leaf signed by the issuer must verify up to the anchor"
        );
        assert!(anchor.is_ca() && issuer.is_ca());
        let bc = issuer.basic_constraints().unwrap().unwrap().value;
        assert_eq!(bc.path_len_constraint, Some(0));
        // id-ecPublicKey with the prime256v1 curve.
        assert_eq!(
            issuer.public_key().algorithm.algorithm.to_id_string(),
            "1.2.840.10045.2.1"
        );
        let curve = issuer
            .public_key()
            .algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap();
        assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7");
        assert!(id.issuer_key_pem.contains("PRIVATE KEY"));
    }

    /// Signs a leaf with the issuer, as Linkerd's identity controller does for every proxy, and
    /// verifies leaf → issuer → anchor with webpki.
    fn chain_verifies(id: &Identity) -> bool {
        use rcgen::{CertificateParams, KeyPair};
        use rustls_pki_types::{CertificateDer, UnixTime};
        let issuer_key = KeyPair::from_pem(&id.issuer_key_pem).unwrap();
        let issuer_params = CertificateParams::from_ca_cert_pem(&id.issuer_crt_pem).unwrap();
        let issuer = issuer_params.self_signed(&issuer_key).unwrap();
        let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = CertificateParams::new(vec![
            "web.ns.serviceaccount.identity.linkerd.cluster.local".to_string(),
        ])
        .unwrap()
        .signed_by(&leaf_key, &issuer, &issuer_key)
        .unwrap();
        let der = |pem: &str| {
            x509_parser::pem::parse_x509_pem(pem.as_bytes())
                .unwrap()
                .1
                .contents
        };
        let anchor_der = CertificateDer::from(der(&id.trust_anchor_pem));
        let issuer_der = CertificateDer::from(der(&id.issuer_crt_pem));
        let anchor = webpki::anchor_from_trusted_cert(&anchor_der).unwrap();
        let ee = webpki::EndEntityCert::try_from(leaf.der()).unwrap();
        ee.verify_for_usage(
            &[webpki::ring::ECDSA_P256_SHA256],
            &[anchor],
            &[issuer_der],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .is_ok()
    }

    #[test]
    fn a_foreign_issuer_does_not_verify_against_the_anchor() {
        // Guards the chain check above against passing vacuously.
        let a = generate_identity().unwrap();
        let b = generate_identity().unwrap();
        let mixed = Identity {
            trust_anchor_pem: a.trust_anchor_pem,
            issuer_crt_pem: b.issuer_crt_pem,
            issuer_key_pem: b.issuer_key_pem,
        };
        assert!(!chain_verifies(&mixed));
    }

    #[test]
    fn identity_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = CertFiles::in_dir(dir.path());
        write_identity(&generate_identity().unwrap(), &files).unwrap();
        for p in [&files.trust_anchor, &files.issuer_crt, &files.issuer_key] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
    }
}
