//! What an environment *was*: the versions a verdict was reached against.
//!
//! A certification is only reproducible if the report says exactly what it ran on. Every field is
//! always present in `report.json`; what is not known yet (the server version before the cluster
//! answers) is `null`, never omitted, so consumers can tell "unknown" from "forgot to record".

use crate::images::resolve::PinSource;
use crate::preflight;
use crate::process::tools::Tool;
use crate::scenario::{ClusterSpec, Edition, EnvironmentSpec, Suite};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fingerprint {
    pub suite: String,
    pub environment: String,
    pub kubernetes: KubernetesFacts,
    pub mesh: MeshFacts,
    pub openfaas: OpenFaasFacts,
    /// Declared version of each optional component (certManager, flux, sealedSecrets,
    /// gatewayApi); `null` when the suite does not install it.
    pub components: BTreeMap<String, Option<String>>,
    /// Client version of each tool a run drives; `null` when missing or not checked.
    pub tools: BTreeMap<String, Option<String>>,
    /// The images trials deploy, by role (`function`, `probe`, `capture`).
    #[serde(default)]
    pub images: BTreeMap<String, ImageFacts>,
    /// Every image the environment's kubelets reported running once it was provisioned (the
    /// mesh, OpenFaaS, every component), with the digest each resolved to: what `meshproof
    /// images` rendered beforehand, as it actually ran. `null` until read, and on an existing
    /// cluster, whose other workloads are not the run's to report.
    #[serde(default)]
    pub running: Option<Vec<crate::kubeops::running::RunningImage>>,
    /// How each image in [`Fingerprint::running`] reached the nodes, by its reference, with
    /// the same routes as [`ImageFacts::via`]: the mesh's and every chart's images, not only
    /// the suite's, so an image from a registry no local mirror served (`no-mirror`) shows up.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub running_via: BTreeMap<String, crate::mirror::evidence::Route>,
}

/// One image: what the suite said and what the run deployed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageFacts {
    /// As the suite wrote it (a tag, or a tag pinned by digest).
    pub declared: Option<String>,
    /// What pods ran, always pinned by digest; `null` until a tag is resolved at run start.
    pub deployed: Option<String>,
    /// `suite` (the suite pinned it) or `registry` (resolved from its tag when the run began).
    pub pinned_by: Option<PinSource>,
    /// How the nodes got it: `direct` (mirrors off), `unknown` (a mirror the user runs, or an
    /// existing cluster's own configuration), `local-mirror` with the access-log line of the
    /// run's local mirror that served its manifest, `not-seen` (a local mirror ran and served
    /// no manifest of it), `no-mirror` (none ran for its registry). Absent before the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<crate::mirror::evidence::Route>,
}

impl ImageFacts {
    /// What the suite declares: deployed as written if pinned, else unknown until resolved.
    pub fn declared(image: &crate::images::ImageRef) -> ImageFacts {
        let pinned = image.is_pinned();
        ImageFacts {
            declared: Some(image.to_string()),
            deployed: pinned.then(|| image.to_string()),
            pinned_by: pinned.then_some(PinSource::Suite),
            via: None,
        }
    }

    /// The facts of a resolved image.
    pub fn resolved(r: &crate::images::Resolved) -> ImageFacts {
        ImageFacts {
            declared: Some(r.declared.to_string()),
            deployed: Some(r.deployed.to_string()),
            pinned_by: Some(r.source),
            via: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesFacts {
    /// `kind` or `existing`.
    pub provider: Option<String>,
    /// The version the suite asks for (the node image tag), e.g. `v1.34.0`.
    pub requested_version: Option<String>,
    /// What the API server says (`/version` gitVersion) once the cluster answers.
    pub server_version: Option<String>,
    /// The node image reference, `kindest/node:v1.34.0@sha256:…`.
    pub node_image: Option<String>,
    /// The digest part of the node image, `sha256:…`.
    pub node_image_digest: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshFacts {
    pub name: Option<String>,
    pub version: Option<String>,
    /// What the mesh reports about itself once installed (control-plane version).
    pub installed_version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenFaasFacts {
    pub chart_version: Option<String>,
    /// `ce` or `pro`.
    pub edition: Option<String>,
}

/// Component keys always present in `components`.
pub const COMPONENTS: [&str; 4] = ["certManager", "flux", "gatewayApi", "sealedSecrets"];

/// Tools always present in `tools`.
pub const TOOLS: [Tool; 8] = [
    Tool::Docker,
    Tool::Kind,
    Tool::Helm,
    Tool::Istioctl,
    Tool::Linkerd,
    Tool::Flux,
    Tool::Kubeseal,
    Tool::Git,
];

impl Fingerprint {
    /// What the suite declares for this environment; run-time facts are `null`.
    pub fn declared(suite: &Suite, env: &EnvironmentSpec) -> Fingerprint {
        let (provider, node_image) = match &env.cluster {
            ClusterSpec::Kind { node_image, .. } => ("kind", Some(node_image)),
            ClusterSpec::Existing { .. } => ("existing", None),
        };
        let c = &suite.components;
        let version = |v: &Option<crate::scenario::Version>| v.as_ref().map(|v| v.to_string());
        let components = BTreeMap::from([
            ("certManager".to_string(), version(&c.cert_manager)),
            ("flux".to_string(), version(&c.flux)),
            ("gatewayApi".to_string(), version(&c.gateway_api)),
            ("traefik".to_string(), version(&c.traefik)),
            ("sealedSecrets".to_string(), version(&c.sealed_secrets)),
        ]);
        Fingerprint {
            suite: suite.name.to_string(),
            environment: env.name.clone(),
            kubernetes: KubernetesFacts {
                provider: Some(provider.into()),
                requested_version: node_image
                    .and_then(|i| i.kube_version_tag())
                    .map(str::to_string),
                server_version: None,
                node_image: node_image.map(|i| i.to_string()),
                node_image_digest: node_image
                    .and_then(|i| i.as_str().split_once('@'))
                    .map(|(_, d)| d.to_string()),
            },
            mesh: MeshFacts {
                name: Some(env.mesh.mesh().as_str().to_string()),
                version: Some(env.mesh.version().to_string()),
                installed_version: None,
            },
            openfaas: OpenFaasFacts {
                chart_version: Some(suite.openfaas.chart.to_string()),
                edition: Some(match suite.openfaas.edition {
                    Edition::Ce => "ce".into(),
                    Edition::Pro { .. } => "pro".into(),
                }),
            },
            components,
            tools: TOOLS
                .iter()
                .map(|t| (t.program().to_string(), None))
                .collect(),
            images: suite
                .images
                .iter()
                .map(|(role, image)| (role.key().to_string(), ImageFacts::declared(image)))
                .collect(),
            running: None,
            running_via: BTreeMap::new(),
        }
    }

    /// Records the images a run deployed.
    pub fn with_images(mut self, resolved: &[crate::images::Resolved]) -> Fingerprint {
        for r in resolved {
            self.images
                .insert(r.role.key().to_string(), ImageFacts::resolved(r));
        }
        self
    }

    /// Sets how every image reached the nodes ([`crate::mirror::evidence::Route`]): the same
    /// `route` for all, or, with local mirrors, each image's own from the mirrors' logs.
    pub fn with_routes(
        mut self,
        route: impl Fn(&crate::images::ImageRef) -> crate::mirror::evidence::Route,
    ) -> Fingerprint {
        for facts in self.images.values_mut() {
            let Some(image) = facts
                .deployed
                .as_deref()
                .or(facts.declared.as_deref())
                .and_then(|s| crate::images::ImageRef::parse(s).ok())
            else {
                continue;
            };
            facts.via = Some(route(&image));
        }
        for running in self.running.iter().flatten() {
            if let Ok(image) = crate::images::ImageRef::parse(&running.image) {
                self.running_via
                    .insert(running.image.clone(), route(&image));
            }
        }
        self
    }

    /// How many running images took each route (`local-mirror`, `no-mirror`, …), and the
    /// registries of those no local mirror served. Empty before the routes are known.
    pub fn running_routes(&self) -> (BTreeMap<&'static str, usize>, BTreeSet<String>) {
        use crate::mirror::evidence::Route;
        let mut counts = BTreeMap::new();
        let mut unmirrored = BTreeSet::new();
        for (image, route) in &self.running_via {
            let name = match route {
                Route::Direct => "direct",
                Route::Unknown => "unknown",
                Route::LocalMirror { .. } => "local-mirror",
                Route::NotSeen { .. } => "not-seen",
                Route::NoMirror => "no-mirror",
            };
            *counts.entry(name).or_insert(0) += 1;
            if matches!(route, Route::NoMirror) {
                if let Ok(i) = crate::images::ImageRef::parse(image) {
                    unmirrored.insert(crate::mirror::upstream::Upstream::of(&i).name);
                }
            }
        }
        (counts, unmirrored)
    }

    /// Adds the tool versions preflight found (without their paths on this machine).
    pub fn with_tools(mut self, report: &preflight::Report) -> Fingerprint {
        for (finding, _) in &report.findings {
            if let preflight::Requirement::Tool(t) = &finding.requirement {
                let v = finding
                    .ok
                    .then(|| strip_location(&finding.detail))
                    .filter(|v| !v.is_empty());
                self.tools.insert(t.program().to_string(), v);
            }
        }
        self
    }

    /// Overlays the known (non-null) facts of `other` onto this fingerprint.
    pub fn merge(&mut self, other: &Fingerprint) {
        fn put(dst: &mut Option<String>, src: &Option<String>) {
            if src.is_some() {
                dst.clone_from(src);
            }
        }
        let (k, o) = (&mut self.kubernetes, &other.kubernetes);
        put(&mut k.provider, &o.provider);
        put(&mut k.requested_version, &o.requested_version);
        put(&mut k.server_version, &o.server_version);
        put(&mut k.node_image, &o.node_image);
        put(&mut k.node_image_digest, &o.node_image_digest);
        put(&mut self.mesh.name, &other.mesh.name);
        put(&mut self.mesh.version, &other.mesh.version);
        put(
            &mut self.mesh.installed_version,
            &other.mesh.installed_version,
        );
        put(
            &mut self.openfaas.chart_version,
            &other.openfaas.chart_version,
        );
        put(&mut self.openfaas.edition, &other.openfaas.edition);
        for (map, src) in [
            (&mut self.components, &other.components),
            (&mut self.tools, &other.tools),
        ] {
            for (key, v) in src {
                let slot = map.entry(key.clone()).or_insert(None);
                put(slot, v);
            }
        }
        if other.running.is_some() {
            self.running.clone_from(&other.running);
        }
        for (image, route) in &other.running_via {
            self.running_via.insert(image.clone(), route.clone());
        }
        for (role, facts) in &other.images {
            let mine = self.images.entry(role.clone()).or_default();
            put(&mut mine.declared, &facts.declared);
            put(&mut mine.deployed, &facts.deployed);
            if facts.pinned_by.is_some() {
                mine.pinned_by = facts.pinned_by;
            }
            if facts.via.is_some() {
                mine.via.clone_from(&facts.via);
            }
        }
    }
}

/// `"v0.30.0 (/usr/local/bin/kind)"` → `"v0.30.0"`: the path is this machine's business.
fn strip_location(detail: &str) -> String {
    match detail.rfind(" (") {
        Some(i) if detail.ends_with(')') => detail[..i].trim().to_string(),
        _ => detail.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_path_but_keeps_the_version() {
        assert_eq!(
            strip_location("kind v0.30.0 go1.24 linux/amd64 (/usr/bin/kind)"),
            "kind v0.30.0 go1.24 linux/amd64"
        );
        assert_eq!(strip_location("v3.19.0"), "v3.19.0");
    }

    #[test]
    fn image_routes_are_recorded_merged_and_serialised() {
        use crate::mirror::evidence::Route;
        let mut f = Fingerprint::default();
        f.images.insert(
            "probe".into(),
            ImageFacts {
                deployed: Some("curlimages/curl:8.11.1@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
                ..Default::default()
            },
        );
        let json = serde_json::to_value(&f).unwrap();
        assert!(
            json["images"]["probe"].get("via").is_none(),
            "no route before the run: {json}"
        );
        let routed = f.clone().with_routes(|image| {
            assert_eq!(image.repository(), "curlimages/curl");
            Route::LocalMirror {
                container: "meshproof-mirror-ab12cd-docker-io".into(),
                evidence: "GET /v2/curlimages/curl/manifests/sha256:aa 200".into(),
            }
        });
        let json = serde_json::to_value(&routed).unwrap();
        assert_eq!(json["images"]["probe"]["via"]["route"], "local-mirror");
        assert_eq!(
            json["images"]["probe"]["via"]["container"],
            "meshproof-mirror-ab12cd-docker-io"
        );
        f.merge(&routed);
        assert_eq!(f, routed, "the route reaches the report's fingerprint");
        let direct = f.clone().with_routes(|_| Route::Direct);
        assert_eq!(
            serde_json::to_value(&direct).unwrap()["images"]["probe"]["via"],
            serde_json::json!({"route": "direct"})
        );
    }

    #[test]
    fn every_running_image_gets_its_route_and_unmirrored_registries_are_named() {
        use crate::mirror::evidence::{route_of, Route};
        use crate::mirror::Upstream;
        let ran = |image: &str| crate::kubeops::running::RunningImage {
            image: image.into(),
            image_id: None,
            used_by: vec!["ns/c".into()],
        };
        let mut f = Fingerprint {
            running: Some(vec![
                ran("docker.io/istio/proxyv2:1.30.3"),
                ran("ghcr.io/openfaas/gateway:0.27.13"),
                ran("example.org/team/sidecar:1"),
            ]),
            ..Default::default()
        };
        assert!(f.running_routes().0.is_empty(), "no routes before the run");
        // docker.io served the manifest, ghcr.io's mirror ran and served nothing of it, and
        // no mirror ran for example.org.
        let containers = BTreeMap::from([
            (Upstream::new("docker.io"), "m-docker".to_string()),
            (Upstream::new("ghcr.io"), "m-ghcr".to_string()),
        ]);
        let served = BTreeMap::from([(
            "m-docker".to_string(),
            BTreeMap::from([(
                "istio/proxyv2".to_string(),
                "GET /v2/istio/proxyv2/manifests/1.30.3 200".to_string(),
            )]),
        )]);
        f = f.with_routes(|i| route_of(i, &containers, &served));
        assert!(matches!(
            f.running_via["docker.io/istio/proxyv2:1.30.3"],
            Route::LocalMirror { .. }
        ));
        assert!(matches!(
            f.running_via["ghcr.io/openfaas/gateway:0.27.13"],
            Route::NotSeen { .. }
        ));
        assert_eq!(f.running_via["example.org/team/sidecar:1"], Route::NoMirror);
        let (counts, unmirrored) = f.running_routes();
        assert_eq!(counts["local-mirror"], 1);
        assert_eq!(counts["not-seen"], 1);
        assert_eq!(counts["no-mirror"], 1);
        assert_eq!(unmirrored.into_iter().collect::<Vec<_>>(), ["example.org"]);
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(
            json["runningVia"]["example.org/team/sidecar:1"]["route"],
            "no-mirror"
        );
        // The report's merge keeps them.
        let mut merged = Fingerprint::default();
        merged.merge(&f);
        assert_eq!(merged.running_via, f.running_via);
    }

    #[test]
    fn merge_keeps_known_facts_and_adds_new_ones() {
        let mut a = Fingerprint::default();
        a.mesh.version = Some("1.30.3".into());
        a.tools.insert("kind".into(), None);
        let mut b = Fingerprint::default();
        b.kubernetes.server_version = Some("v1.34.0".into());
        b.tools.insert("kind".into(), Some("v0.30.0".into()));
        b.running = Some(vec![crate::kubeops::running::RunningImage {
            image: "x:1".into(),
            image_id: Some("x@sha256:ab".into()),
            used_by: vec!["ns/c".into()],
        }]);
        a.merge(&b);
        assert_eq!(a.running, b.running, "what ran is taken when known");
        a.merge(&Fingerprint::default());
        assert_eq!(
            a.running, b.running,
            "an unknown list never erases a known one"
        );
        assert_eq!(a.mesh.version.as_deref(), Some("1.30.3"));
        assert_eq!(a.kubernetes.server_version.as_deref(), Some("v1.34.0"));
        assert_eq!(a.tools["kind"].as_deref(), Some("v0.30.0"));
    }
}
