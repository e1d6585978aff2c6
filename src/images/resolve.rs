//! Tag → digest, over the OCI distribution API.
//!
//! The digest is the registry's `Docker-Content-Digest` for the tag's manifest, asked for with
//! every manifest media type accepted — for a multi-arch image that is the *index* digest, the
//! same one `docker buildx imagetools inspect` prints and a kubelet resolves per platform.
//! Registries that want a token (ghcr.io, Docker Hub) get the anonymous bearer flow
//! (`oci-client` does the `WWW-Authenticate` dance). Registries on loopback are spoken to over
//! plain HTTP, as Docker and containerd do by default; every other one over HTTPS.

use super::reference::{is_sha256_digest, ImageRef};
use super::set::{ImageRole, Images};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use std::future::Future;
use std::time::Duration;

/// Why an image could not be resolved.
#[derive(Debug, thiserror::Error)]
#[error("resolving {image} at {registry}: {kind}")]
pub struct ResolveError {
    pub image: String,
    pub registry: String,
    pub kind: ResolveErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveErrorKind {
    #[error("no such image or tag")]
    NotFound,
    #[error("the registry refused anonymous access (private image? pin it by digest in the suite instead)")]
    Unauthorized,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the registry answered something meshproof cannot use: {0}")]
    Protocol(String),
    #[error("{0}")]
    Unreachable(String),
}

/// Where digests come from. [`Registry`] in a run; tests substitute their own.
pub trait DigestSource: Sync {
    /// The `sha256:…` digest `image`'s tag points at now.
    fn digest(&self, image: &ImageRef)
        -> impl Future<Output = Result<String, ResolveError>> + Send;
}

/// The OCI distribution API of the image's own registry, anonymously.
#[derive(Debug, Clone)]
pub struct Registry {
    /// Bound on one resolution, token exchange included.
    pub timeout: Duration,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            timeout: Duration::from_secs(30),
        }
    }
}

/// `127.0.0.1:5000`, `localhost:5000`, `[::1]:5000`: the registries Docker treats as insecure
/// without being told.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl DigestSource for Registry {
    async fn digest(&self, image: &ImageRef) -> Result<String, ResolveError> {
        let reference = image.tag_reference();
        let registry = reference.resolve_registry().to_string();
        let err = |kind| ResolveError {
            image: image.to_string(),
            registry: registry.clone(),
            kind,
        };
        let protocol = if is_loopback(&registry) {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let client = Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(self.timeout.min(Duration::from_secs(10))),
            read_timeout: Some(self.timeout),
            ..ClientConfig::default()
        });
        let digest = tokio::time::timeout(
            self.timeout,
            client.fetch_manifest_digest(&reference, &RegistryAuth::Anonymous),
        )
        .await
        .map_err(|_| err(ResolveErrorKind::Timeout(self.timeout)))?
        .map_err(|e| err(classify(e)))?;
        if is_sha256_digest(&digest) {
            Ok(digest)
        } else {
            Err(err(ResolveErrorKind::Protocol(format!(
                "digest {digest:?} is not a sha256 digest"
            ))))
        }
    }
}

fn classify(e: OciDistributionError) -> ResolveErrorKind {
    match e {
        OciDistributionError::ImageManifestNotFoundError(_) => ResolveErrorKind::NotFound,
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) =>
        {
            ResolveErrorKind::NotFound
        }
        OciDistributionError::ServerError { code: 404, .. } => ResolveErrorKind::NotFound,
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_)
        | OciDistributionError::ServerError {
            code: 401 | 403, ..
        } => ResolveErrorKind::Unauthorized,
        OciDistributionError::RequestError(r) => {
            let mut msg = r.to_string();
            let mut src = std::error::Error::source(&r);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            ResolveErrorKind::Unreachable(msg)
        }
        other => ResolveErrorKind::Protocol(other.to_string()),
    }
}

/// How an image came to be pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinSource {
    /// The suite pinned it.
    Suite,
    /// The suite named a tag; the registry said which digest it points at.
    Registry,
}

/// One image of a run, as declared and as deployed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resolved {
    pub role: ImageRole,
    pub declared: ImageRef,
    pub deployed: ImageRef,
    pub source: PinSource,
}

/// Pins every image of `images`: pinned ones as they are, the others to the digest their tag
/// points at now. All or nothing: a run never deploys an image it could not pin.
pub async fn pin_all<S: DigestSource>(
    images: &Images,
    source: &S,
) -> Result<(Images, Vec<Resolved>), ResolveError> {
    let mut out = images.clone();
    let mut record = Vec::new();
    for (role, image) in images.iter() {
        let (deployed, how) = if image.is_pinned() {
            (image.clone(), PinSource::Suite)
        } else {
            let digest = source.digest(image).await?;
            let pinned = image.pinned(&digest).map_err(|e| ResolveError {
                image: image.to_string(),
                registry: image.registry().to_string(),
                kind: ResolveErrorKind::Protocol(e.to_string()),
            })?;
            (pinned, PinSource::Registry)
        };
        out.set(role, deployed.clone());
        record.push(Resolved {
            role,
            declared: image.clone(),
            deployed,
            source: how,
        });
    }
    Ok((out, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn loopback_registries_are_plain_http() {
        for r in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
            "127.0.0.2",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "ghcr.io",
            "index.docker.io",
            "10.0.0.1:5000",
            "localhost.example.com:5000",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    /// A digest source that answers from a table and records what it was asked.
    struct Table(Vec<(&'static str, &'static str)>, Mutex<Vec<String>>);

    impl DigestSource for Table {
        async fn digest(&self, image: &ImageRef) -> Result<String, ResolveError> {
            self.1.lock().unwrap().push(image.to_string());
            self.0
                .iter()
                .find(|(i, _)| *i == image.as_str())
                .map(|(_, d)| d.to_string())
                .ok_or(ResolveError {
                    image: image.to_string(),
                    registry: image.registry().into(),
                    kind: ResolveErrorKind::NotFound,
                })
        }
    }

    #[tokio::test]
    async fn only_unpinned_images_are_asked_for_and_the_record_says_which() {
        let d = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let t = Table(
            vec![("ghcr.io/openfaas/alpine:latest", d)],
            Mutex::default(),
        );
        let (pinned, record) = pin_all(&Images::default(), &t).await.unwrap();
        assert_eq!(*t.1.lock().unwrap(), vec!["ghcr.io/openfaas/alpine:latest"]);
        assert_eq!(
            pinned.function.to_string(),
            format!("ghcr.io/openfaas/alpine:latest@{d}")
        );
        assert!(pinned.unpinned().is_empty());
        let sources: Vec<_> = record.iter().map(|r| (r.role, r.source)).collect();
        assert_eq!(
            sources,
            vec![
                (ImageRole::Function, PinSource::Registry),
                (ImageRole::Probe, PinSource::Suite),
                (ImageRole::Capture, PinSource::Suite)
            ]
        );
    }

    #[tokio::test]
    async fn a_failed_resolution_fails_the_whole_set() {
        let t = Table(vec![], Mutex::default());
        let e = pin_all(&Images::default(), &t).await.unwrap_err();
        assert!(matches!(e.kind, ResolveErrorKind::NotFound));
        assert_eq!(
            e.to_string(),
            "resolving ghcr.io/openfaas/alpine:latest at ghcr.io: no such image or tag"
        );
    }
}
