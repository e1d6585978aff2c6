//! Did an image come through a local mirror? The evidence is the mirror container's own access
//! log: distribution writes one line per request in the combined log format
//! (`IP - - [time] "GET /v2/<repository>/manifests/<ref>?ns=… HTTP/1.1" 200 …`, ledger CTD-10),
//! and a node pulling an image asks for its manifest first. A successful (2xx) manifest request
//! for the image's repository, in the log of the mirror of the image's registry, is the
//! evidence; nothing else is (a blob request names no image, a 404 served nothing).
//!
//! Pure: the caller reads the log (`docker logs`, with a timeout, before the container goes).

use super::Upstream;
use std::collections::BTreeMap;

/// How an image reached the nodes, as the report records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "route")]
pub enum Route {
    /// Mirrors were off: nodes pulled from the registry.
    Direct,
    /// A mirror the user runs: meshproof cannot see its log.
    Unknown,
    /// The local mirror's access log shows the manifest served.
    LocalMirror {
        container: String,
        /// The access-log line (the request, not the client's address).
        evidence: String,
    },
    /// A local mirror ran for the registry, and its log shows no manifest request for the
    /// repository: the image was pulled directly (the node fell back), or not pulled at all.
    NotSeen { container: String },
    /// No local mirror ran for the image's registry.
    NoMirror,
}

/// The repositories a mirror's log shows a 2xx manifest request for, each with its first such
/// request (`GET /v2/…/manifests/… 200`).
pub fn served_manifests(log: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        if let Some((repo, request)) = manifest_request(line) {
            out.entry(repo).or_insert(request);
        }
    }
    out
}

/// `(repository, "METHOD URI STATUS")` of a combined-log-format line that is a successful
/// manifest request.
fn manifest_request(line: &str) -> Option<(String, String)> {
    let open = line.find('"')?;
    let rest = &line[open + 1..];
    let close = rest.find('"')?;
    let mut req = rest[..close].split(' ');
    let method = req.next()?;
    let uri = req.next()?;
    if !matches!(method, "GET" | "HEAD") {
        return None;
    }
    let status = rest[close + 1..].split_whitespace().next()?;
    if !status.starts_with('2') || status.len() != 3 {
        return None;
    }
    let path = uri.split('?').next()?;
    let name = path.strip_prefix("/v2/")?;
    let (repo, reference) = name.rsplit_once("/manifests/")?;
    if repo.is_empty() || reference.is_empty() || reference.contains('/') {
        return None;
    }
    Some((repo.to_string(), format!("{method} {path} {status}")))
}

/// The route of `image`, given which local mirror served which registry and what each log
/// showed (`logs`: container → [`served_manifests`]).
pub fn route_of(
    image: &crate::images::ImageRef,
    containers: &BTreeMap<Upstream, String>,
    logs: &BTreeMap<String, BTreeMap<String, String>>,
) -> Route {
    let up = Upstream::of(image);
    let Some(container) = containers
        .iter()
        .find(|(u, _)| u.name == up.name)
        .map(|(_, c)| c.clone())
    else {
        return Route::NoMirror;
    };
    match logs.get(&container).and_then(|m| m.get(image.repository())) {
        Some(line) => Route::LocalMirror {
            container,
            evidence: line.clone(),
        },
        None => Route::NotSeen { container },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"time="2026-12-06T03:00:00Z" level=info msg="listening on [::]:5000"
172.18.0.3 - - [06/Dec/2026:03:00:01 +0000] "HEAD /v2/library/nginx/manifests/1.27?ns=docker.io HTTP/1.1" 200 0 "" "containerd/v2.1.4"
172.18.0.3 - - [06/Dec/2026:03:00:01 +0000] "GET /v2/curlimages/curl/blobs/sha256:aa HTTP/1.1" 200 12 "" "containerd/v2.1.4"
172.18.0.3 - - [06/Dec/2026:03:00:02 +0000] "GET /v2/nicolaka/netshoot/manifests/v0.13 HTTP/1.1" 404 19 "" "containerd/v2.1.4"
172.18.0.3 - - [06/Dec/2026:03:00:03 +0000] "GET /v2/openfaas/alpine/manifests/sha256:bb HTTP/1.1" 200 500 "" "containerd/v2.1.4"
"#;

    #[test]
    fn only_successful_manifest_requests_count() {
        let m = served_manifests(LOG);
        assert_eq!(
            m.keys().collect::<Vec<_>>(),
            ["library/nginx", "openfaas/alpine"],
            "a blob request and a 404 are no evidence"
        );
        assert_eq!(
            m["library/nginx"],
            "HEAD /v2/library/nginx/manifests/1.27 200"
        );
    }

    #[test]
    fn an_image_is_routed_by_its_registrys_mirror() {
        let containers = BTreeMap::from([(Upstream::new("docker.io"), "m-docker".to_string())]);
        let logs = BTreeMap::from([("m-docker".to_string(), served_manifests(LOG))]);
        let img = |s: &str| crate::images::ImageRef::parse(s).unwrap();
        assert!(matches!(
            route_of(&img("nginx:1.27"), &containers, &logs),
            Route::LocalMirror { container, .. } if container == "m-docker"
        ));
        assert_eq!(
            route_of(&img("nicolaka/netshoot:v0.13"), &containers, &logs),
            Route::NotSeen {
                container: "m-docker".into()
            }
        );
        assert_eq!(
            route_of(&img("ghcr.io/openfaas/alpine:latest"), &containers, &logs),
            Route::NoMirror,
            "the docker.io mirror's log says nothing about ghcr.io"
        );
    }
}
