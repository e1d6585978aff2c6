//! The registries images come from, named as image references name them (`docker.io`,
//! `ghcr.io`, `registry.k8s.io`, `host:port`), and the server containerd really talks to.

use crate::images::ImageRef;
use std::collections::BTreeSet;

/// A registry host namespace (containerd's term: the registry part of an image reference) and
/// the URL of its server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Upstream {
    /// As image references name it: `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub name: String,
    /// Where containerd sends the requests: `https://registry-1.docker.io` for `docker.io`
    /// (containerd's own default, ledger CTD-4), `https://<name>` otherwise.
    pub server: String,
}

impl Upstream {
    /// A registry reached over HTTPS, as containerd reaches it by default.
    pub fn new(name: &str) -> Upstream {
        let host = if name == "docker.io" {
            "registry-1.docker.io"
        } else {
            name
        };
        Upstream {
            name: name.to_string(),
            server: format!("https://{host}"),
        }
    }

    /// A registry served over plain HTTP (a registry on loopback, as the tests start).
    pub fn plain_http(name: &str) -> Upstream {
        Upstream {
            name: name.to_string(),
            server: format!("http://{name}"),
        }
    }

    /// The upstream of an image reference.
    pub fn of(image: &ImageRef) -> Upstream {
        Upstream::new(image.registry())
    }

    /// Every registry the images come from, each once, sorted.
    pub fn all_of<'a>(images: impl IntoIterator<Item = &'a ImageRef>) -> Vec<Upstream> {
        images
            .into_iter()
            .map(Upstream::of)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The word in the environment variables that carry this upstream's credentials for a
    /// mirror: `DOCKERHUB` for Docker Hub, else the name upper-cased with every other character
    /// an underscore (`GHCR_IO`, `REGISTRY_K8S_IO`).
    pub fn credentials_key(&self) -> String {
        if self.name == "docker.io" {
            return "DOCKERHUB".into();
        }
        self.name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect()
    }

    /// A name for things made per upstream (a proxy's container, its config file):
    /// `docker-io`, `registry-k8s-io`, `127-0-0-1-5000`.
    pub fn slug(&self) -> String {
        self.name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect()
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_served_by_registry_1() {
        assert_eq!(
            Upstream::new("docker.io").server,
            "https://registry-1.docker.io"
        );
        assert_eq!(Upstream::new("ghcr.io").server, "https://ghcr.io");
        assert_eq!(
            Upstream::plain_http("127.0.0.1:5000").server,
            "http://127.0.0.1:5000"
        );
    }

    #[test]
    fn upstreams_come_from_the_images_each_once() {
        let imgs: Vec<ImageRef> = [
            "curlimages/curl:8.11.1",
            "nicolaka/netshoot:v0.13",
            "ghcr.io/openfaas/alpine:latest",
            "registry.k8s.io/pause:3.10",
        ]
        .iter()
        .map(|s| ImageRef::parse(s).unwrap())
        .collect();
        let names: Vec<String> = Upstream::all_of(&imgs)
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["docker.io", "ghcr.io", "registry.k8s.io"]);
    }

    #[test]
    fn credential_keys_and_slugs() {
        assert_eq!(Upstream::new("docker.io").credentials_key(), "DOCKERHUB");
        assert_eq!(
            Upstream::new("registry.k8s.io").credentials_key(),
            "REGISTRY_K8S_IO"
        );
        assert_eq!(Upstream::new("cr.l5d.io").slug(), "cr-l5d-io");
        assert_eq!(Upstream::new("127.0.0.1:5000").slug(), "127-0-0-1-5000");
    }
}
