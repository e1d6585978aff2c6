//! Manifests against the real schemas in `<repo>/../shared/crds`: hand-written positives and
//! negatives per API, then every manifest the project's scenarios apply, rendered per
//! environment, and the `meshproof validate --schemas` command line.

use meshproof::schema::manifests::{check_rendered, render_catalog};
use meshproof::schema::{validate_yaml_text, Gvk, SchemaSet, Unchecked};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn crds_dir() -> PathBuf {
    repo().join("../shared/crds")
}

/// The schema set, loaded once per test binary. `None` (with a printed reason) only when the
/// directory is absent outside CI; under `CI=true` its absence fails the test.
fn schemas() -> Option<&'static SchemaSet> {
    static SET: OnceLock<Option<SchemaSet>> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = crds_dir();
        if !dir.is_dir() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{} is absent: CI must provide shared/ beside the repository",
                dir.display()
            );
            eprintln!("skipping: {} is absent (not CI)", dir.display());
            return None;
        }
        Some(SchemaSet::load_dir(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display())))
    })
    .as_ref()
}

fn yaml(text: &str) -> Value {
    let docs =
        meshproof::scenario::manifest_yaml::manifest_documents(text).expect("test YAML parses");
    assert_eq!(docs.len(), 1, "one document expected");
    docs.into_iter().next().unwrap_or(Value::Null)
}

fn assert_valid(set: &SchemaSet, text: &str) {
    let v = validate_yaml_text(set, text);
    assert!(
        v.is_empty(),
        "expected valid, got:\n{}",
        v.iter()
            .map(|(i, v)| format!("doc {i}: {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        !meshproof::scenario::manifest_yaml::manifest_documents(text)
            .unwrap()
            .is_empty()
    );
}

fn violations(set: &SchemaSet, text: &str) -> Vec<String> {
    set.validate(&yaml(text))
        .iter()
        .map(|v| v.to_string())
        .collect()
}

const VIRTUAL_SERVICE: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: env-canary-split, namespace: openfaas-fn }
spec:
  hosts: [env.openfaas-fn.svc.cluster.local]
  http:
    - route:
        - destination: { host: env.openfaas-fn.svc.cluster.local, port: { number: 8080 } }
          weight: WEIGHT
        - destination: { host: env-canary.openfaas-fn.svc.cluster.local, port: { number: 8080 } }
          weight: 10
"#;

#[test]
fn loads_every_provider_and_indexes_by_gvk() {
    let Some(set) = schemas() else { return };
    for (g, v, k) in [
        ("networking.istio.io", "v1", "VirtualService"),
        ("networking.istio.io", "v1alpha3", "VirtualService"),
        ("security.istio.io", "v1", "PeerAuthentication"),
        ("extensions.istio.io", "v1alpha1", "WasmPlugin"),
        ("policy.linkerd.io", "v1beta3", "Server"),
        ("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        ("cert-manager.io", "v1", "Certificate"),
        ("openfaas.com", "v1", "Function"),
        ("bitnami.com", "v1alpha1", "SealedSecret"),
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        ("", "v1", "Namespace"),
        ("", "v1", "Secret"),
        ("apps", "v1", "Deployment"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ] {
        assert!(
            set.is_known(&Gvk::new(g, v, k)),
            "{g}/{v} {k} should be known"
        );
    }
    let istio = set
        .known_gvks()
        .filter(|g| g.group.ends_with("istio.io"))
        .map(|g| g.kind.clone())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        istio.len(),
        15,
        "Istio's crd-all.gen.yaml holds 15 CRDs: {istio:?}"
    );
    assert!(!set.is_known(&Gvk::new("authentication.istio.io", "v1alpha1", "Policy")));
}

#[test]
fn duplicate_httproute_prefers_the_gateway_api_bundle_and_keeps_linkerds() {
    let Some(set) = schemas() else { return };
    let gvk = Gvk::new("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let providers = set.providers(&gvk);
    assert_eq!(providers.len(), 2, "{providers:?}");
    assert!(providers[0].starts_with("gateway-api/"), "{providers:?}");
    assert!(providers[1].starts_with("linkerd/"), "{providers:?}");
    // A version only Linkerd's older experimental bundle serves is still validated, against it.
    let tcp = Gvk::new("gateway.networking.k8s.io", "v1alpha2", "TCPRoute");
    assert!(
        set.providers(&tcp)
            .iter()
            .any(|p| p.starts_with("linkerd/")),
        "{:?}",
        set.providers(&tcp)
    );
}

#[test]
fn istio_virtual_service_weights_are_integers() {
    let Some(set) = schemas() else { return };
    assert_valid(set, &VIRTUAL_SERVICE.replace("WEIGHT", "90"));
    let v = set.validate(&yaml(&VIRTUAL_SERVICE.replace("WEIGHT", "\"ninety\"")));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].path, "spec.http[0].route[0].weight");
    assert!(v[0].message.contains("integer"), "{}", v[0].message);
    // A quoted number is a string too: the API server rejects it.
    let v = violations(set, &VIRTUAL_SERVICE.replace("WEIGHT", "\"90\""));
    assert_eq!(v.len(), 1, "{v:?}");
    // Out of the schema's range (`format: int32`).
    let v = violations(set, &VIRTUAL_SERVICE.replace("WEIGHT", "4294967296"));
    assert!(
        v.iter().any(
            |m| m.starts_with("spec.http[0].route[0].weight: 4294967296 does not fit in int32")
        ),
        "{v:?}"
    );
}

#[test]
fn unknown_fields_are_rejected_with_a_suggestion() {
    let Some(set) = schemas() else { return };
    let text = VIRTUAL_SERVICE
        .replace("WEIGHT", "90")
        .replace("  http:", "  htpp:");
    let v = set.validate(&yaml(&text));
    assert!(
        v.iter().any(|v| v.path == "spec.htpp"
            && v.message.contains("unknown field")
            && v.message.contains("\"http\"")),
        "{v:?}"
    );
    // Unknown fields in a CRD's metadata are ObjectMeta's business.
    let text = VIRTUAL_SERVICE
        .replace("WEIGHT", "90")
        .replace("metadata: {", "metadata: { lables: { a: b },");
    let v = violations(set, &text);
    assert!(
        v.iter()
            .any(|m| m.starts_with("metadata.lables: unknown field")),
        "{v:?}"
    );
    // Label values are strings.
    let text = VIRTUAL_SERVICE
        .replace("WEIGHT", "90")
        .replace("metadata: {", "metadata: { labels: { weight: 90 },");
    let v = violations(set, &text);
    assert!(
        v.iter()
            .any(|m| m.starts_with("metadata.labels.weight: must be of type string")),
        "{v:?}"
    );
}

#[test]
fn peer_authentication_mode_is_an_enum() {
    let Some(set) = schemas() else { return };
    let pa = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: default, namespace: openfaas-fn }\nspec:\n  mtls:\n    mode: MODE\n";
    assert_valid(set, &pa.replace("MODE", "STRICT"));
    let v = set.validate(&yaml(&pa.replace("MODE", "STRICTT")));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].path, "spec.mtls.mode");
    assert!(
        v[0].message.contains("unsupported value \"STRICTT\"")
            && v[0].message.contains("\"STRICT\""),
        "{}",
        v[0].message
    );
}

#[test]
fn istio_one_of_string_match_is_enforced() {
    let Some(set) = schemas() else { return };
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: x }\nspec:\n  hosts: [a]\n  http:\n    - match: [ { uri: URI } ]\n      route: [ { destination: { host: a } } ]\n";
    assert_valid(set, &vs.replace("URI", "{ prefix: /a }"));
    let v = violations(set, &vs.replace("URI", "{ prefix: /a, exact: /b }"));
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec.http[0].match[0].uri: matches 2 oneOf alternatives")),
        "{v:?}"
    );
}

#[test]
fn linkerd_policy_objects_pass() {
    let Some(set) = schemas() else { return };
    assert_valid(
        set,
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: { name: s, namespace: openfaas-fn }\nspec:\n  podSelector: { matchLabels: { app: x } }\n  port: 8080\n  proxyProtocol: HTTP/1\n",
    );
    assert_valid(
        set,
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: { name: a, namespace: openfaas-fn }\nspec:\n  targetRef: { group: policy.linkerd.io, kind: Server, name: s }\n  requiredAuthenticationRefs:\n    - { group: policy.linkerd.io, kind: MeshTLSAuthentication, name: m }\n",
    );
    assert_valid(
        set,
        "apiVersion: policy.linkerd.io/v1alpha1\nkind: MeshTLSAuthentication\nmetadata: { name: m, namespace: openfaas-fn }\nspec:\n  identityRefs: [ { kind: ServiceAccount, name: openfaas-controller, namespace: openfaas } ]\n",
    );
    // v1beta3 Server: exactly one of podSelector / externalWorkloadSelector; port is int-or-string.
    let v = violations(
        set,
        "apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: { name: s }\nspec:\n  podSelector: { matchLabels: { app: x } }\n  externalWorkloadSelector: { matchLabels: { app: x } }\n  port: true\n",
    );
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec: matches 2 oneOf alternatives")),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec.port: must be an integer or a string")),
        "{v:?}"
    );
}

#[test]
fn gateway_api_httproute_with_service_parent_and_weights_passes() {
    let Some(set) = schemas() else { return };
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r, namespace: openfaas-fn }\nspec:\n  parentRefs: [ { group: core, kind: Service, name: env, port: 8080 } ]\n  rules:\n    - backendRefs:\n        - { name: env, port: 8080, weight: 90 }\n        - { name: env-canary, port: 8080, weight: W }\n";
    assert_valid(set, &route.replace("W", "10"));
    let report = set.check(&yaml(&route.replace("W", "10")));
    assert!(
        report
            .provider
            .as_deref()
            .is_some_and(|p| p.starts_with("gateway-api/")),
        "{:?}",
        report.provider
    );
    // The Gateway API's CEL rules are listed as not evaluated, never counted as passed.
    assert!(
        report
            .not_evaluated
            .iter()
            .any(|n| matches!(n.what, Unchecked::CelRule { .. })),
        "{:?}",
        report.not_evaluated
    );
    let v = violations(set, &route.replace("W", "1000001"));
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec.rules[0].backendRefs[1].weight: must be <= 1000000")),
        "{v:?}"
    );
}

#[test]
fn cert_manager_certificate_and_cluster_issuer_pass() {
    let Some(set) = schemas() else { return };
    assert_valid(
        set,
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: { name: c, namespace: cert-manager }\nspec:\n  isCA: true\n  commonName: ca\n  secretName: ca\n  duration: 8760h\n  privateKey: { algorithm: ECDSA, size: 256 }\n  issuerRef: { name: selfsigned, kind: ClusterIssuer, group: cert-manager.io }\n",
    );
    assert_valid(set, "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: { name: ca }\nspec:\n  ca: { secretName: ca }\n");
    let v = violations(
        set,
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: { name: c }\nspec:\n  privateKey: { algorithm: DSA }\n  issuerRef: { name: x }\n",
    );
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec.secretName: required field missing")),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec.privateKey.algorithm: unsupported value")),
        "{v:?}"
    );
}

#[test]
fn core_kinds_use_the_kubernetes_openapi() {
    let Some(set) = schemas() else { return };
    assert_valid(set, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: openfaas-fn\n  labels: { istio-injection: enabled }\n  annotations:\n    config.linkerd.io/default-inbound-policy: all-authenticated\n");
    assert_valid(set, "apiVersion: v1\nkind: Secret\nmetadata: { name: s, namespace: openfaas }\ntype: Opaque\ndata: { password: aHVudGVyMg== }\nstringData: { user: admin }\n");
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: d, namespace: openfaas-fn }\nspec:\n  replicas: REPLICAS\n  selector: { matchLabels: { app: d } }\n  template:\n    metadata: { labels: { app: d } }\n    spec:\n      containers:\n        - name: d\n          image: ghcr.io/openfaas/alpine:latest\n          ports: [ { containerPort: 8080 } ]\n          resources: { limits: { cpu: 1, memory: 128Mi } }\n          readinessProbe: { httpGet: { path: /_/health, port: 8080 } }\n";
    assert_valid(set, &deployment.replace("REPLICAS", "1"));
    let v = set.validate(&yaml(&deployment.replace("REPLICAS", "\"1\"")));
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].path, "spec.replicas");
    // Unknown fields in built-in kinds, too (kubectl's strict field validation).
    let v = violations(
        set,
        &deployment.replace("REPLICAS", "1").replace(
            "      containers:",
            "      contianers: []\n      containers:",
        ),
    );
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec.template.spec.contianers: unknown field")),
        "{v:?}"
    );
    // Secret data must be base64.
    let v = violations(
        set,
        "apiVersion: v1\nkind: Secret\nmetadata: { name: s }\ndata: { password: not base64! }\n",
    );
    assert!(
        v.iter()
            .any(|m| m.starts_with("data.password: must be base64")),
        "{v:?}"
    );
    // int32 range.
    let v = violations(set, &deployment.replace("REPLICAS", "4294967296"));
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec.replicas:") && m.contains("int32")),
        "{v:?}"
    );
}

#[test]
fn removed_istio_policy_api_is_an_unknown_gvk() {
    let Some(set) = schemas() else { return };
    let v = set.validate(&yaml(
        "apiVersion: authentication.istio.io/v1alpha1\nkind: Policy\nmetadata: { name: default, namespace: openfaas-fn }\nspec:\n  peers: [ { mtls: {} } ]\n",
    ));
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].message
            .contains("no schema for authentication.istio.io/v1alpha1 Policy"),
        "{}",
        v[0].message
    );
    let v = violations(
        set,
        "apiVersion: networking.istio.io/v1alpha9\nkind: VirtualService\nmetadata: { name: x }\n",
    );
    assert!(
        v[0].contains("known versions of this kind: v1, v1alpha3, v1beta1"),
        "{v:?}"
    );
    let v = violations(set, "kind: Secret\nmetadata: { name: x }\n");
    assert_eq!(v, vec!["apiVersion: required field missing".to_string()]);
}

#[test]
fn openfaas_function_passes() {
    let Some(set) = schemas() else { return };
    assert_valid(
        set,
        "apiVersion: openfaas.com/v1\nkind: Function\nmetadata: { name: env, namespace: openfaas-fn }\nspec:\n  name: env\n  image: ghcr.io/openfaas/alpine:latest\n  environment: { fprocess: env }\n  labels: { com.openfaas.scale.min: \"1\" }\n  annotations: { linkerd.io/inject: disabled }\n",
    );
    let v = violations(set, "apiVersion: openfaas.com/v1\nkind: Function\nmetadata: { name: env }\nspec:\n  name: env\n");
    assert!(
        v.iter()
            .any(|m| m.starts_with("spec.image: required field missing")),
        "{v:?}"
    );
}

#[test]
fn multi_document_text_reports_document_indexes() {
    let Some(set) = schemas() else { return };
    let text = "apiVersion: v1\nkind: Namespace\nmetadata: { name: a }\n---\n# comment only\n---\napiVersion: v1\nkind: Namespace\nmetadata: { name: b }\nspec: { finalizer: [] }\n";
    let v = validate_yaml_text(set, text);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].0, 1);
    assert_eq!(v[0].1.path, "spec.finalizer");
    let bad = validate_yaml_text(set, "a: [1, 2\n");
    assert_eq!(bad.len(), 1);
    assert!(bad[0].1.message.starts_with("invalid YAML"));
}

/// A false-positive check on 3.5 MB of real objects: every CRD in the schema directory is itself
/// a valid `apiextensions.k8s.io/v1` CustomResourceDefinition (the API servers accepted them),
/// which walks Kubernetes' recursive JSONSchemaProps through `$ref`s. A typo in one is caught.
#[test]
fn every_shipped_crd_validates_as_a_custom_resource_definition() {
    let Some(set) = schemas() else { return };
    let mut files = Vec::new();
    let mut stack = vec![crds_dir()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    let mut crds = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let docs = meshproof::scenario::manifest_yaml::manifest_documents(&text).unwrap();
        for (i, d) in docs.iter().enumerate() {
            if d["kind"] != "CustomResourceDefinition" {
                continue;
            }
            crds += 1;
            let v = set.validate(d);
            assert!(v.is_empty(), "{} doc {}: {v:?}", f.display(), i + 1);
        }
    }
    assert!(crds >= 60, "only {crds} CRDs found");
    let server = std::fs::read_to_string(crds_dir().join("linkerd/policy_server.yaml")).unwrap();
    let typo = server
        .replacen("      served: true", "      servd: true", 1)
        .replacen("type: object", "type: 7", 1);
    let v: Vec<String> = validate_yaml_text(set, &typo)
        .into_iter()
        .map(|(_, v)| v.to_string())
        .collect();
    assert!(
        v.contains(
            &"spec.versions[0].servd: unknown field \"servd\" (did you mean \"served\"?)"
                .to_string()
        ),
        "{v:?}"
    );
    assert!(
        v.contains(&"spec.versions[0].served: required field missing".to_string()),
        "{v:?}"
    );
    assert!(
        v.iter().any(|m| m
            .starts_with("spec.versions[0].schema.openAPIV3Schema.type: must be of type string")),
        "{v:?}"
    );
}

/// Every manifest the scenarios apply, rendered for every environment, validates — and the
/// check is not vacuous: each manifest file is covered for each mesh that uses it, and the same
/// documents with one unknown field added fail.
#[test]
fn every_shipped_scenario_manifest_validates_for_every_environment() {
    let Some(set) = schemas() else { return };
    let catalog =
        meshproof::scenario::catalog::load_project(repo()).unwrap_or_else(|d| panic!("{d}"));
    let rendered = render_catalog(&catalog, "run-1").unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let (findings, cov) = check_rendered(set, &rendered);
    assert!(
        findings.is_empty(),
        "shipped manifests do not validate:\n{}",
        findings
            .iter()
            .map(|f| format!("{f}  [{}]", f.used_by))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Coverage: every file under scenarios/manifests is rendered, by every environment of
    // every mesh.
    let mut on_disk = Vec::new();
    for mesh_dir in std::fs::read_dir(repo().join("scenarios/manifests")).unwrap() {
        for f in std::fs::read_dir(mesh_dir.unwrap().path()).unwrap() {
            on_disk.push(f.unwrap().path().canonicalize().unwrap());
        }
    }
    let covered: Vec<PathBuf> = cov
        .files
        .iter()
        .map(|f| f.canonicalize().unwrap())
        .collect();
    for f in &on_disk {
        assert!(
            covered.contains(f),
            "{} is not applied by any trial",
            f.display()
        );
    }
    for mesh in ["istio", "linkerd"] {
        assert!(
            rendered
                .iter()
                .any(|m| m.used_by.iter().any(|u| u.starts_with(mesh))),
            "no {mesh} manifests rendered"
        );
    }
    // A step's own `vars` are applied: a file applied with different vars is rendered (and
    // validated) once per distinct result (canary's weight shifts).
    assert!(
        cov.renderings > on_disk.len(),
        "renderings: {}",
        cov.renderings
    );
    assert!(
        cov.documents >= on_disk.len(),
        "documents: {}",
        cov.documents
    );
    assert!(
        rendered.iter().any(|m| m.rendered.contains("weight: 50")),
        "the 50/50 canary step was not rendered"
    );

    // Non-vacuity: an unknown top-level spec field in each rendered document is caught.
    for m in &rendered {
        for (i, mut doc) in meshproof::scenario::manifest_yaml::manifest_documents(&m.rendered)
            .unwrap()
            .into_iter()
            .enumerate()
        {
            let target = if doc.get("spec").is_some() {
                &mut doc["spec"]
            } else {
                &mut doc["metadata"]
            };
            target["meshproofTypo"] = Value::Bool(true);
            let v = set.validate(&doc);
            assert!(
                v.iter()
                    .any(|v| v.message.starts_with("unknown field \"meshproofTypo\"")),
                "{} doc {}: a typo'd field was not caught: {v:?}",
                m.file.display(),
                i + 1
            );
        }
    }
}

#[test]
fn cli_validate_with_schemas() {
    if schemas().is_none() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_meshproof");
    let crds = crds_dir();
    // The project as shipped: exit 0.
    let out = std::process::Command::new(bin)
        .current_dir(repo())
        .args(["validate", "--schemas"])
        .arg(&crds)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("schemas: "), "{stdout}");

    // A copy with a quoted weight and a typo'd field: exit 1, one located line each.
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("suites"), &tmp.path().join("suites"));
    copy_dir(&repo().join("scenarios"), &tmp.path().join("scenarios"));
    let canary = tmp.path().join("scenarios/manifests/canary/istio.yaml");
    let text = std::fs::read_to_string(&canary).unwrap();
    let broken = text
        .replacen("weight: ${stableWeight}", "weight: \"${stableWeight}\"", 1)
        .replace("  hosts:", "  hots: []\n  hosts:");
    assert_ne!(broken, text);
    std::fs::write(&canary, &broken).unwrap();
    let out = std::process::Command::new(bin)
        .current_dir(tmp.path())
        .args(["validate", "--schemas"])
        .arg(&crds)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let weight_line = broken
        .lines()
        .position(|l| l.contains("weight: \"${stableWeight}\""))
        .unwrap()
        + 1;
    let hots_line = broken.lines().position(|l| l.contains("hots:")).unwrap() + 1;
    let expect_weight = format!(
        "scenarios/manifests/canary/istio.yaml:{weight_line}:19: error: doc 1 VirtualService/env-canary-split: spec.http[0].route[0].weight: must be of type integer, got string \"90\""
    );
    let expect_hots = format!("scenarios/manifests/canary/istio.yaml:{hots_line}:3: error: doc 1 VirtualService/env-canary-split: spec.hots: unknown field \"hots\"");
    assert!(
        stdout.lines().any(|l| l == expect_weight),
        "missing {expect_weight:?} in:\n{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with(&expect_hots)),
        "missing {expect_hots:?} in:\n{stdout}"
    );
    // Each distinct problem once, although three environments and three weight pairs render it.
    assert_eq!(
        stdout.lines().filter(|l| l.contains("spec.hots")).count(),
        1,
        "{stdout}"
    );

    // A later document of a multi-document file is located on its own line.
    let deny = tmp.path().join("scenarios/manifests/deny/linkerd.yaml");
    std::fs::write(&canary, &text).unwrap();
    let text = std::fs::read_to_string(&deny).unwrap();
    let broken = text.replacen(
        "  requiredAuthenticationRefs:",
        "  requiredAuthenticationRef:",
        1,
    );
    std::fs::write(&deny, &broken).unwrap();
    let out = std::process::Command::new(bin)
        .current_dir(tmp.path())
        .args(["validate", "--schemas"])
        .arg(&crds)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let line = broken
        .lines()
        .position(|l| l.contains("requiredAuthenticationRef:"))
        .unwrap()
        + 1;
    let want = format!(
        "scenarios/manifests/deny/linkerd.yaml:{line}:3: error: doc 3 AuthorizationPolicy/functions-from-gateway: spec.requiredAuthenticationRef: unknown field \"requiredAuthenticationRef\""
    );
    assert!(
        stdout.lines().any(|l| l.starts_with(&want)),
        "missing {want:?} in:\n{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.contains("doc 3 AuthorizationPolicy/functions-from-gateway: spec.requiredAuthenticationRefs: required field missing")),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.contains(": error: ")).count(),
        2,
        "{stdout}"
    );

    // A schema directory that does not exist is a usage error, not a pass.
    let out = std::process::Command::new(bin)
        .current_dir(repo())
        .args(["validate", "--schemas", "/nonexistent/crds"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Where each ingress of a rendered manifest reads its TLS Secret, against where the
/// manifest's cert-manager `Certificate` writes it. One line per mismatch.
///
/// The readers, per the ledger:
/// - an Istio `Gateway` (`networking.istio.io`) resolves `credentialName` in the ingress
///   gateway pod's namespace, which `istioctl install` makes `istio-system` (IS-16);
/// - a Gateway API `Gateway` reads `certificateRefs` in its own namespace when the ref names
///   none (IS-27);
/// - an `Ingress` (Traefik) reads `spec.tls[].secretName` in its own namespace (TR-6).
fn tls_secret_misplacements(rendered: &str) -> Vec<String> {
    let docs = meshproof::scenario::manifest_yaml::manifest_documents(rendered)
        .expect("rendered manifests parse");
    let str_at = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_str).map(str::to_string);
    let written: Vec<(String, String)> = docs
        .iter()
        .filter(|d| str_at(d, "/kind").as_deref() == Some("Certificate"))
        .filter_map(|d| {
            Some((
                str_at(d, "/metadata/namespace")?,
                str_at(d, "/spec/secretName")?,
            ))
        })
        .collect();
    let mut read: Vec<(String, String, String)> = Vec::new(); // (reader, namespace, secret)
    for d in &docs {
        let kind = str_at(d, "/kind").unwrap_or_default();
        let api = str_at(d, "/apiVersion").unwrap_or_default();
        let ns = str_at(d, "/metadata/namespace").unwrap_or_default();
        let name = str_at(d, "/metadata/name").unwrap_or_default();
        let list = |ptr: &str| {
            d.pointer(ptr)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        match (kind.as_str(), api.split('/').next().unwrap_or_default()) {
            ("Gateway", "networking.istio.io") => {
                for s in list("/spec/servers") {
                    if let Some(c) = str_at(&s, "/tls/credentialName") {
                        read.push((
                            format!("Istio Gateway {ns}/{name}"),
                            "istio-system".into(),
                            c,
                        ));
                    }
                }
            }
            ("Gateway", "gateway.networking.k8s.io") => {
                for l in list("/spec/listeners") {
                    for r in l
                        .pointer("/tls/certificateRefs")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let at = str_at(r, "/namespace").unwrap_or_else(|| ns.clone());
                        if let Some(secret) = str_at(r, "/name") {
                            read.push((format!("Gateway API Gateway {ns}/{name}"), at, secret));
                        }
                    }
                }
            }
            ("Ingress", "networking.k8s.io") => {
                for t in list("/spec/tls") {
                    if let Some(secret) = str_at(&t, "/secretName") {
                        read.push((format!("Ingress {ns}/{name}"), ns.clone(), secret));
                    }
                }
            }
            _ => {}
        }
    }
    read.into_iter()
        .filter(|(_, ns, secret)| !written.iter().any(|(wn, ws)| wn == ns && ws == secret))
        .map(|(who, ns, secret)| {
            format!("{who} reads Secret {ns}/{secret}, which no Certificate here writes (written: {written:?})")
        })
        .collect()
}

#[test]
fn every_ingress_reads_its_tls_secret_where_the_certificate_writes_it() {
    let catalog =
        meshproof::scenario::catalog::load_project(repo()).unwrap_or_else(|d| panic!("{d}"));
    let rendered = render_catalog(&catalog, "run-1").unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let mut readers = std::collections::BTreeSet::new();
    for m in rendered
        .iter()
        .filter(|m| m.rendered.contains("kind: Certificate"))
    {
        let problems = tls_secret_misplacements(&m.rendered);
        assert!(
            problems.is_empty(),
            "{}:\n{}\n[{}]",
            m.file.display(),
            problems.join("\n"),
            m.used_by.join(", ")
        );
        for reader in [
            "networking.istio.io",
            "gateway.networking.k8s.io/v1\nkind: Gateway",
            "kind: Ingress",
        ] {
            if m.rendered.contains(reader) {
                readers.insert(reader);
            }
        }
    }
    // Non-vacuity: each of the three readers is among the shipped manifests.
    assert_eq!(readers.len(), 3, "readers seen: {readers:?}");
}

#[test]
fn a_certificate_beside_the_wrong_ingress_is_caught() {
    let cert = |ns: &str| {
        format!(
            "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: c\n  namespace: {ns}\nspec:\n  secretName: tls\n"
        )
    };
    // Traefik's Ingress in openfaas with the Certificate in istio-system (the Istio value).
    let ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: i\n  namespace: openfaas\nspec:\n  tls:\n    - secretName: tls\n";
    let p = tls_secret_misplacements(&format!("{}---\n{ingress}", cert("istio-system")));
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("Ingress openfaas/i reads Secret openfaas/tls"),
        "{p:?}"
    );
    assert!(tls_secret_misplacements(&format!("{}---\n{ingress}", cert("openfaas"))).is_empty());
    // Istio's Gateway object in openfaas: the Secret must still be in istio-system.
    let gw = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata:\n  name: g\n  namespace: openfaas\nspec:\n  servers:\n    - port: {number: 443, name: https, protocol: HTTPS}\n      tls: {mode: SIMPLE, credentialName: tls}\n";
    assert_eq!(
        tls_secret_misplacements(&format!("{}---\n{gw}", cert("openfaas"))).len(),
        1
    );
    assert!(tls_secret_misplacements(&format!("{}---\n{gw}", cert("istio-system"))).is_empty());
    // A Gateway API Gateway reads its own namespace unless the ref names another.
    let gapi = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: a\n  namespace: istio-system\nspec:\n  gatewayClassName: istio\n  listeners:\n    - name: https\n      port: 443\n      protocol: HTTPS\n      tls:\n        certificateRefs:\n          - name: tls\n";
    assert_eq!(
        tls_secret_misplacements(&format!("{}---\n{gapi}", cert("openfaas"))).len(),
        1
    );
    assert!(tls_secret_misplacements(&format!("{}---\n{gapi}", cert("istio-system"))).is_empty());
}
