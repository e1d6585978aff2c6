//! The images a suite's scenarios deploy, by the role they play.
//!
//! Scenarios do not name images; they use `${images.function}`, `${images.probe}` and
//! `${images.capture}`, so one suite line pins an image for every scenario that uses it.

use super::reference::ImageRef;

/// What an image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageRole {
    /// OpenFaaS functions: the classic watchdog on Alpine; `fprocess` picks what runs
    /// (`env` echoes the request headers, `echo stable` a fixed body).
    Function,
    /// Probe pods that make requests: needs `curl`.
    Probe,
    /// The ephemeral container that captures a pod's wire: needs `sh` and `tcpdump`.
    Capture,
}

impl ImageRole {
    pub const ALL: [ImageRole; 3] = [ImageRole::Function, ImageRole::Probe, ImageRole::Capture];

    /// The key under `images:` in a suite.
    pub fn key(self) -> &'static str {
        match self {
            ImageRole::Function => "function",
            ImageRole::Probe => "probe",
            ImageRole::Capture => "capture",
        }
    }

    /// The scenario variable carrying the image.
    pub fn var(self) -> &'static str {
        match self {
            ImageRole::Function => "images.function",
            ImageRole::Probe => "images.probe",
            ImageRole::Capture => "images.capture",
        }
    }

    /// The image a suite gets when it does not say. Probe and capture images are pinned (the
    /// digests of the multi-arch indexes, as published); the OpenFaaS function image is only
    /// published as `latest`, so it is resolved at run time unless the suite pins it.
    pub fn default_image(self) -> &'static str {
        match self {
            ImageRole::Function => "ghcr.io/openfaas/alpine:latest",
            ImageRole::Probe => {
                "curlimages/curl:8.11.1@sha256:c1fe1679c34d9784c1b0d1e5f62ac0a79fca01fb6377cdd33e90473c6f9f9a69"
            }
            ImageRole::Capture => {
                "nicolaka/netshoot:v0.13@sha256:a20c2531bf35436ed3766cd6cfe89d352b050ccc4d7005ce6400adf97503da1b"
            }
        }
    }
}

/// One image per role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Images {
    pub function: ImageRef,
    pub probe: ImageRef,
    pub capture: ImageRef,
}

impl Default for Images {
    fn default() -> Self {
        let d = |r: ImageRole| {
            ImageRef::parse(r.default_image()).expect("built-in image references parse")
        };
        Images {
            function: d(ImageRole::Function),
            probe: d(ImageRole::Probe),
            capture: d(ImageRole::Capture),
        }
    }
}

impl Images {
    pub fn get(&self, role: ImageRole) -> &ImageRef {
        match role {
            ImageRole::Function => &self.function,
            ImageRole::Probe => &self.probe,
            ImageRole::Capture => &self.capture,
        }
    }

    pub fn set(&mut self, role: ImageRole, image: ImageRef) {
        match role {
            ImageRole::Function => self.function = image,
            ImageRole::Probe => self.probe = image,
            ImageRole::Capture => self.capture = image,
        }
    }

    /// Roles whose image is on a tag only.
    pub fn unpinned(&self) -> Vec<ImageRole> {
        ImageRole::ALL
            .into_iter()
            .filter(|r| !self.get(*r).is_pinned())
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = (ImageRole, &ImageRef)> {
        ImageRole::ALL.into_iter().map(move |r| (r, self.get(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_only_the_function_image_is_unpinned() {
        let i = Images::default();
        assert_eq!(i.unpinned(), vec![ImageRole::Function]);
        assert!(i
            .probe
            .to_string()
            .starts_with("curlimages/curl:8.11.1@sha256:"));
        assert!(i
            .capture
            .to_string()
            .starts_with("nicolaka/netshoot:v0.13@sha256:"));
    }

    #[test]
    fn vars_and_keys_are_distinct() {
        let vars: std::collections::BTreeSet<_> = ImageRole::ALL.iter().map(|r| r.var()).collect();
        assert_eq!(vars.len(), 3);
        for r in ImageRole::ALL {
            assert_eq!(r.var(), format!("images.{}", r.key()));
        }
    }
}
