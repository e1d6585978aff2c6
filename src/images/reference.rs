//! One image reference, `[registry/]repository[:tag][@sha256:<digest>]`.
//!
//! Parsing is `oci-spec`'s (the grammar Docker and containerd use, including Docker Hub's
//! short names), so `curlimages/curl:8.11.1` means what a kubelet thinks it means. Only SHA-256
//! digests are accepted as pins: they are what registries serve and kubelets verify.

use oci_client::Reference;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageRefError {
    #[error("image {input:?} is not a valid image reference: {reason}")]
    Syntax { input: String, reason: String },
    #[error(
        "image {input:?}: only sha256 digests are accepted (`@sha256:<64 lowercase hex digits>`)"
    )]
    Digest { input: String },
}

/// `sha256:` and 64 lowercase hex digits: the only pin accepted.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A parsed image reference; [`ImageRef::digest`] is its pin, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Exactly as written (what pods get, so a short Docker Hub name stays short).
    written: String,
    parsed: Reference,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, ImageRefError> {
        if s.trim() != s || s.is_empty() {
            return Err(ImageRefError::Syntax {
                input: s.into(),
                reason: "empty or surrounded by spaces".into(),
            });
        }
        let parsed = Reference::from_str(s).map_err(|e| ImageRefError::Syntax {
            input: s.into(),
            reason: e.to_string(),
        })?;
        if parsed.digest().is_some_and(|d| !is_sha256_digest(d)) {
            return Err(ImageRefError::Digest { input: s.into() });
        }
        Ok(ImageRef {
            written: s.to_string(),
            parsed,
        })
    }

    /// The `sha256:…` pin, if the reference carries one.
    pub fn digest(&self) -> Option<&str> {
        self.parsed.digest()
    }

    pub fn is_pinned(&self) -> bool {
        self.digest().is_some()
    }

    /// The registry host the reference names (`docker.io` for Docker Hub short names).
    pub fn registry(&self) -> &str {
        self.parsed.registry()
    }

    pub fn repository(&self) -> &str {
        self.parsed.repository()
    }

    pub fn tag(&self) -> Option<&str> {
        self.parsed.tag()
    }

    /// This reference pinned to `digest`, keeping the tag for the reader (`repo:tag@sha256:…`);
    /// an existing pin is replaced.
    pub fn pinned(&self, digest: &str) -> Result<ImageRef, ImageRefError> {
        let base = self
            .written
            .split_once('@')
            .map_or(self.written.as_str(), |(b, _)| b);
        ImageRef::parse(&format!("{base}@{digest}"))
    }

    /// The reference to ask a registry about: the tag only (a pinned reference would make the
    /// registry look up the digest instead of the tag).
    pub fn tag_reference(&self) -> Reference {
        match self.parsed.tag() {
            Some(t) => Reference::with_tag(
                self.parsed.registry().into(),
                self.parsed.repository().into(),
                t.into(),
            ),
            None => Reference::with_tag(
                self.parsed.registry().into(),
                self.parsed.repository().into(),
                "latest".into(),
            ),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.written
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:c1fe1679c34d9784c1b0d1e5f62ac0a79fca01fb6377cdd33e90473c6f9f9a69";

    #[test]
    fn docker_hub_short_names_resolve_to_docker_io() {
        let r = ImageRef::parse("curlimages/curl:8.11.1").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "curlimages/curl");
        assert_eq!(r.tag(), Some("8.11.1"));
        assert!(!r.is_pinned());
        assert_eq!(
            r.to_string(),
            "curlimages/curl:8.11.1",
            "written form is kept"
        );
        let lib = ImageRef::parse("alpine").unwrap();
        assert_eq!(lib.repository(), "library/alpine");
    }

    #[test]
    fn pins_are_sha256_only_and_lowercase() {
        let r = ImageRef::parse(&format!("curlimages/curl:8.11.1@{D}")).unwrap();
        assert_eq!(r.digest(), Some(D));
        assert!(ImageRef::parse(&format!(
            "curlimages/curl:8.11.1@{}",
            D.to_uppercase().replace("SHA256", "sha256")
        ))
        .is_err());
        assert!(ImageRef::parse("curlimages/curl@sha256:abc").is_err());
        let sha512 = format!("x/y@sha512:{}", "a".repeat(128));
        assert!(matches!(
            ImageRef::parse(&sha512),
            Err(ImageRefError::Digest { .. }) | Err(ImageRefError::Syntax { .. })
        ));
    }

    #[test]
    fn other_registries_and_ports() {
        let r = ImageRef::parse("ghcr.io/openfaas/alpine:latest").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("ghcr.io", "openfaas/alpine", Some("latest"))
        );
        let local = ImageRef::parse("127.0.0.1:5000/meshproof/alpine:1").unwrap();
        assert_eq!(local.registry(), "127.0.0.1:5000");
    }

    #[test]
    fn pinning_keeps_the_tag_and_replaces_an_old_pin() {
        let r = ImageRef::parse("ghcr.io/openfaas/alpine:latest").unwrap();
        let p = r.pinned(D).unwrap();
        assert_eq!(p.to_string(), format!("ghcr.io/openfaas/alpine:latest@{D}"));
        let other = format!("sha256:{}", "0".repeat(64));
        assert_eq!(p.pinned(&other).unwrap().digest(), Some(other.as_str()));
        assert_eq!(p.tag_reference().whole(), "ghcr.io/openfaas/alpine:latest");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for s in [
            "",
            " x",
            "a b",
            "Upper:tag",
            "x:",
            "@sha256:",
            "::",
            "x/y:t@",
            "ghcr.io/",
        ] {
            assert!(ImageRef::parse(s).is_err(), "{s:?} parsed");
        }
    }
}
