//! Every manifest meshproof generates for the stack, one function each, returning YAML text.
//!
//! Built as `serde_json` values and serialised, never by string pasting, so that names, label
//! values and secret data are always correctly quoted. Tests parse each one and check it is a
//! well-formed Kubernetes object (schema validation is added by the schema layer).

use super::cluster::api::{MANAGED_BY_LABEL, RUN_ID_LABEL};
use crate::mirror::NodeMirror;
use crate::scenario::{DataPlane, HostPorts, PinnedImage};
use serde_json::{json, Map, Value};

/// Name of the basic-auth Secret the OpenFaaS chart reads when `generateBasicAuth=false`.
pub const BASIC_AUTH_SECRET: &str = "basic-auth";
/// The OpenFaaS admin user.
pub const BASIC_AUTH_USER: &str = "admin";
/// Secret holding an OpenFaaS Pro license (key `license`).
pub const LICENSE_SECRET: &str = "openfaas-license";

fn to_yaml(v: &Value) -> String {
    // serde_json::Value always serialises; an empty string would only hide a bug loudly.
    serde_yaml::to_string(v).unwrap_or_default()
}

fn run_labels(run_id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(RUN_ID_LABEL.into(), Value::String(run_id.into()));
    m.insert(
        MANAGED_BY_LABEL.0.into(),
        Value::String(MANAGED_BY_LABEL.1.into()),
    );
    m
}

/// The kind cluster: one control-plane node on the pinned image, the suite's host ports mapped
/// onto the same NodePorts, on loopback only.
///
/// With a registry mirror, the node's containerd reads the generated hosts tree: kind patches its
/// config to look there and mounts the tree read-only (ledger KIND-1, CTD-1, CTD-6).
pub fn kind_config(image: &PinnedImage, ports: HostPorts, mirror: Option<&NodeMirror>) -> String {
    let mapping = |p: u16| json!({ "containerPort": p, "hostPort": p, "listenAddress": "127.0.0.1", "protocol": "TCP" });
    let mut node = json!({
        "role": "control-plane",
        "image": image.as_str(),
        "extraPortMappings": [mapping(ports.http), mapping(ports.https)],
    });
    let mut cluster = json!({
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
    });
    if let Some(m) = mirror {
        node["extraMounts"] = json!([crate::mirror::kind::extra_mount(&m.host_dir)]);
        cluster["containerdConfigPatches"] =
            json!([crate::mirror::kind::containerd_config_patch()]);
    }
    cluster["nodes"] = json!([node]);
    to_yaml(&cluster)
}

/// A label or annotation.
pub type Pair = (&'static str, &'static str);

/// Istio's ambient enrolment label (istio 1.30.3 `pkg/config/constants/constants.go:190-193`,
/// `manifests/charts/istio-cni/values.yaml:59-66`: ledger IS-21); on a namespace, `ambient`
/// enrols its pods, on a pod `none` keeps it out.
pub const AMBIENT_LABEL: &str = "istio.io/dataplane-mode";
pub const AMBIENT_ENROLLED: &str = "ambient";
pub const AMBIENT_OPTED_OUT: &str = "none";

/// Labels and annotations that turn on the mesh for a namespace's pods.
///
/// Istio sidecars: the injection label. Istio ambient: the enrolment label
/// `istio.io/dataplane-mode=ambient`, and no injection (ledger IS-21). Linkerd: injection is an
/// annotation, and NATS (4222, server-speaks-first) is skipped in both directions, otherwise
/// the proxy waits for a client preface NATS never sends (ztunnel is L4 and needs no such
/// exception).
pub fn mesh_injection(data_plane: DataPlane) -> (Vec<Pair>, Vec<Pair>) {
    match data_plane {
        DataPlane::IstioSidecar => (vec![("istio-injection", "enabled")], vec![]),
        DataPlane::IstioAmbient => (vec![(AMBIENT_LABEL, AMBIENT_ENROLLED)], vec![]),
        DataPlane::Linkerd => (
            vec![],
            vec![
                ("linkerd.io/inject", "enabled"),
                ("config.linkerd.io/skip-inbound-ports", "4222"),
                ("config.linkerd.io/skip-outbound-ports", "4222"),
            ],
        ),
    }
}

/// A namespace, optionally meshed; labelled with the run id when meshproof creates it (`None`
/// for the settings applied to a namespace that existed before the run, which cleanup must
/// never delete).
pub fn namespace(name: &str, run_id: Option<&str>, data_plane: Option<DataPlane>) -> String {
    let mut labels = run_id.map(run_labels).unwrap_or_default();
    let mut annotations = Map::new();
    if let Some(dp) = data_plane {
        let (l, a) = mesh_injection(dp);
        for (k, v) in l {
            labels.insert(k.into(), Value::String(v.into()));
        }
        for (k, v) in a {
            annotations.insert(k.into(), Value::String(v.into()));
        }
    }
    let mut metadata = json!({ "name": name });
    if !labels.is_empty() {
        metadata["labels"] = Value::Object(labels);
    }
    if !annotations.is_empty() {
        metadata["annotations"] = Value::Object(annotations);
    }
    to_yaml(&json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": metadata }))
}

/// The OpenFaaS admin credentials (`generateBasicAuth=false` makes the chart read this).
/// Holds the password: hand it only to [`ClusterApi::apply`](super::cluster::api::ClusterApi).
pub fn basic_auth_secret(namespace: &str, run_id: &str, password: &str) -> String {
    to_yaml(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": BASIC_AUTH_SECRET, "namespace": namespace, "labels": run_labels(run_id) },
        "type": "Opaque",
        "stringData": { "basic-auth-user": BASIC_AUTH_USER, "basic-auth-password": password },
    }))
}

/// The OpenFaaS Pro license, read from the suite's license file. Holds the license.
pub fn license_secret(namespace: &str, run_id: &str, license: &str) -> String {
    to_yaml(&json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": LICENSE_SECRET, "namespace": namespace, "labels": run_labels(run_id) },
        "type": "Opaque",
        "stringData": { "license": license.trim() },
    }))
}

/// Namespace and name of Istio's ingress gateway Service (profile `default`, and the `gateway`
/// chart installed as release `istio-ingressgateway` in `istio-system`).
pub const ISTIO_INGRESS: (&str, &str) = ("istio-system", "istio-ingressgateway");

/// Server-side-apply patch that pins the ingress gateway's NodePorts to the host ports kind maps
/// (kind has no LoadBalancer). Ports are keyed by (port, protocol) in SSA, so only the http2 (80)
/// and https (443) entries change; the status port stays as Istio made it. `targetPort` is left
/// to the installer: istioctl's gateway chart targets 8080/8443, the `istio/gateway` Helm chart
/// 80/443, and forcing one onto the other would point the Service at a port nothing listens on.
pub fn istio_ingress_nodeports(ports: HostPorts) -> String {
    to_yaml(&json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": ISTIO_INGRESS.1, "namespace": ISTIO_INGRESS.0 },
        "spec": {
            "type": "NodePort",
            "ports": [
                { "name": "http2", "port": 80, "protocol": "TCP", "nodePort": ports.http },
                { "name": "https", "port": 443, "protocol": "TCP", "nodePort": ports.https },
            ],
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> PinnedImage {
        PinnedImage::parse(&format!("kindest/node:v1.33.4@sha256:{}", "ab".repeat(32))).unwrap()
    }

    /// Every generated Kubernetes manifest, for the structural checks below.
    fn all() -> Vec<(&'static str, String)> {
        vec![
            (
                "namespace plain",
                namespace("cert-manager", Some("a1b2c3"), None),
            ),
            (
                "namespace istio",
                namespace("openfaas", Some("a1b2c3"), Some(DataPlane::IstioSidecar)),
            ),
            (
                "namespace linkerd",
                namespace("openfaas-fn", Some("a1b2c3"), Some(DataPlane::Linkerd)),
            ),
            (
                "namespace existing",
                namespace("openfaas", None, Some(DataPlane::Linkerd)),
            ),
            (
                "namespace existing plain",
                namespace("cert-manager", None, None),
            ),
            (
                "basic-auth",
                basic_auth_secret("openfaas", "a1b2c3", "pw\"with: yaml'chars"),
            ),
            (
                "license",
                license_secret("openfaas", "a1b2c3", "eyJhbGciOi.license\n"),
            ),
            (
                "istio nodeports",
                istio_ingress_nodeports(HostPorts::default()),
            ),
        ]
    }

    #[test]
    fn every_generated_manifest_is_a_named_kubernetes_object() {
        for (what, text) in all() {
            let v: serde_yaml::Value =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
            for key in ["apiVersion", "kind"] {
                assert!(
                    v[key].as_str().is_some_and(|s| !s.is_empty()),
                    "{what}: no {key}\n{text}"
                );
            }
            assert!(
                v["metadata"]["name"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty()),
                "{what}: no metadata.name\n{text}"
            );
        }
    }

    #[test]
    fn namespaces_carry_the_run_id_and_the_mesh_switches() {
        let v: serde_yaml::Value = serde_yaml::from_str(&namespace(
            "openfaas",
            Some("a1b2c3"),
            Some(DataPlane::IstioSidecar),
        ))
        .unwrap();
        assert_eq!(
            v["metadata"]["labels"][RUN_ID_LABEL].as_str(),
            Some("a1b2c3")
        );
        assert_eq!(
            v["metadata"]["labels"]["istio-injection"].as_str(),
            Some("enabled")
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&namespace(
            "openfaas-fn",
            Some("a1b2c3"),
            Some(DataPlane::Linkerd),
        ))
        .unwrap();
        let a = &v["metadata"]["annotations"];
        assert_eq!(a["linkerd.io/inject"].as_str(), Some("enabled"));
        assert_eq!(
            a["config.linkerd.io/skip-inbound-ports"].as_str(),
            Some("4222")
        );
        assert_eq!(
            a["config.linkerd.io/skip-outbound-ports"].as_str(),
            Some("4222")
        );
        assert!(v["metadata"]["labels"]["istio-injection"].is_null());
        // Ambient: enrolled by label, never injected.
        let v: serde_yaml::Value = serde_yaml::from_str(&namespace(
            "openfaas-fn",
            Some("a1b2c3"),
            Some(DataPlane::IstioAmbient),
        ))
        .unwrap();
        assert_eq!(
            v["metadata"]["labels"]["istio.io/dataplane-mode"].as_str(),
            Some("ambient")
        );
        assert!(v["metadata"]["labels"]["istio-injection"].is_null());
        assert!(v["metadata"]["annotations"].is_null());
    }

    #[test]
    fn secret_data_round_trips_exactly() {
        let pw = "pw\"with: yaml'chars";
        let v: serde_yaml::Value =
            serde_yaml::from_str(&basic_auth_secret("openfaas", "a1b2c3", pw)).unwrap();
        assert_eq!(v["stringData"]["basic-auth-password"].as_str(), Some(pw));
        assert_eq!(v["stringData"]["basic-auth-user"].as_str(), Some("admin"));
        assert_eq!(v["metadata"]["name"].as_str(), Some("basic-auth"));
    }

    #[test]
    fn kind_config_pins_the_image_and_maps_ports_on_loopback() {
        let text = kind_config(
            &image(),
            HostPorts {
                http: 30080,
                https: 30043,
            },
            None,
        );
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert!(v.get("containerdConfigPatches").is_none(), "{text}");
        assert_eq!(v["apiVersion"].as_str(), Some("kind.x-k8s.io/v1alpha4"));
        assert_eq!(v["kind"].as_str(), Some("Cluster"));
        let nodes = v["nodes"].as_sequence().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0]["role"].as_str(), Some("control-plane"));
        assert_eq!(nodes[0]["image"].as_str(), Some(image().as_str()));
        let maps = nodes[0]["extraPortMappings"].as_sequence().unwrap();
        let got: Vec<(u64, u64, &str)> = maps
            .iter()
            .map(|m| {
                (
                    m["containerPort"].as_u64().unwrap(),
                    m["hostPort"].as_u64().unwrap(),
                    m["listenAddress"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![(30080, 30080, "127.0.0.1"), (30043, 30043, "127.0.0.1")]
        );
    }

    /// kind's config API v1alpha4 as kind v0.30.0 declares it
    /// (`pkg/apis/config/v1alpha4/types.go:20-31,75-83,96-119,251-289`; ledger KIND-1, CTD-6):
    /// the fields meshproof writes and their neighbours, nothing else, so a misspelt or
    /// misplaced key fails to parse here as it would fail kind's strict decoding.
    #[allow(dead_code)] // fields exist to be checked by deserialising, not read
    mod kind_v1alpha4 {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Cluster {
            pub kind: String,
            pub api_version: String,
            #[serde(default)]
            pub name: Option<String>,
            #[serde(default)]
            pub nodes: Vec<Node>,
            #[serde(default)]
            pub containerd_config_patches: Vec<String>,
            #[serde(default, rename = "containerdConfigPatchesJSON6902")]
            pub containerd_config_patches_json6902: Vec<String>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Node {
            pub role: String,
            pub image: String,
            #[serde(default)]
            pub extra_mounts: Vec<Mount>,
            #[serde(default)]
            pub extra_port_mappings: Vec<PortMapping>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct Mount {
            pub container_path: String,
            pub host_path: String,
            #[serde(default, rename = "readOnly")]
            pub read_only: bool,
            #[serde(default)]
            pub selinux_relabel: bool,
            #[serde(default)]
            pub propagation: Option<String>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        pub struct PortMapping {
            pub container_port: i32,
            pub host_port: i32,
            pub listen_address: String,
            pub protocol: String,
        }
    }

    fn node_mirror() -> NodeMirror {
        let mut per = std::collections::BTreeMap::new();
        per.insert(
            crate::mirror::Upstream::new("docker.io"),
            crate::mirror::MirrorHost {
                url: "http://meshproof-mirror-docker-io:5000".into(),
            },
        );
        NodeMirror {
            hosts: crate::mirror::HostsDir::new(None, &per),
            host_dir: "/tmp/run/env/containerd-certs.d".into(),
        }
    }

    #[test]
    fn kind_config_with_a_mirror_has_only_kind_v1alpha4_fields() {
        let text = kind_config(
            &image(),
            HostPorts {
                http: 30080,
                https: 30043,
            },
            Some(&node_mirror()),
        );
        let c: kind_v1alpha4::Cluster = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            (c.kind.as_str(), c.api_version.as_str()),
            ("Cluster", "kind.x-k8s.io/v1alpha4")
        );
        assert_eq!(c.containerd_config_patches.len(), 1);
        let patch: toml::Value = toml::from_str(&c.containerd_config_patches[0]).unwrap();
        assert_eq!(
            patch["plugins"]["io.containerd.grpc.v1.cri"]["registry"]["config_path"].as_str(),
            Some("/etc/containerd/certs.d")
        );
        let m = &c.nodes[0].extra_mounts[0];
        assert_eq!(m.container_path, "/etc/containerd/certs.d");
        assert_eq!(m.host_path, "/tmp/run/env/containerd-certs.d");
        assert!(m.read_only);
        assert_eq!(c.nodes[0].extra_port_mappings.len(), 2);
        // Without a mirror the same struct parses the config too.
        let plain = kind_config(&image(), HostPorts { http: 1, https: 2 }, None);
        let c: kind_v1alpha4::Cluster = serde_yaml::from_str(&plain).unwrap();
        assert!(c.containerd_config_patches.is_empty() && c.nodes[0].extra_mounts.is_empty());
    }

    #[test]
    fn the_kind_field_check_rejects_a_misplaced_key() {
        // The check above can fail: `extraMounts` at the cluster level is not a kind field.
        let text = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nextraMounts: []\n";
        let e = serde_yaml::from_str::<kind_v1alpha4::Cluster>(text).unwrap_err();
        assert!(e.to_string().contains("unknown field `extraMounts`"), "{e}");
    }
}
