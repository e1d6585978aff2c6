//! Every custom resource the restore flow generates validates against the real CRD schema in
//! `../shared/crds` (Flux GitRepository/Kustomization, OpenFaaS Function, and the SealedSecret
//! shape the flow's kubeseal double produces). A small structural validator: types, unknown
//! fields, required fields, patterns and enums — the parts of OpenAPI v3 these CRDs use.

use meshproof::restore::desired::{function_manifests, FunctionFormat, FunctionSpec};
use meshproof::restore::flux::{self, FluxSpec};
use serde_json::Value;
use std::path::Path;

fn crd_schema(file: &str, version: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/crds")
        .join(file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let crd: Value = serde_yaml::from_str(&text).unwrap();
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{file} has no version {version}"))["schema"]["openAPIV3Schema"]
        .clone()
}

fn validate(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("properties").is_none()
    {
        return;
    }
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            errors.push(format!("{path}: expected int-or-string"));
        }
        return;
    }
    match schema.get("type").and_then(|t| t.as_str()) {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                return errors.push(format!("{path}: expected object"));
            };
            for r in schema
                .get("required")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
            {
                let r = r.as_str().unwrap();
                if !obj.contains_key(r) {
                    errors.push(format!("{path}: missing required {r}"));
                }
            }
            let props = schema.get("properties").and_then(|p| p.as_object());
            for (k, child) in obj {
                let sub = format!("{path}.{k}");
                if let Some(s) = props.and_then(|p| p.get(k)) {
                    validate(s, child, &sub, errors);
                } else if let Some(ap) =
                    schema.get("additionalProperties").filter(|a| a.is_object())
                {
                    validate(ap, child, &sub, errors);
                } else if props.is_some() {
                    errors.push(format!("{sub}: unknown field"));
                }
            }
        }
        Some("array") => {
            let Some(a) = v.as_array() else {
                return errors.push(format!("{path}: expected array"));
            };
            for (i, item) in a.iter().enumerate() {
                validate(&schema["items"], item, &format!("{path}[{i}]"), errors);
            }
        }
        Some("string") => {
            let Some(s) = v.as_str() else {
                return errors.push(format!("{path}: expected string"));
            };
            if let Some(p) = schema.get("pattern").and_then(|p| p.as_str()) {
                if !regex::Regex::new(p).unwrap().is_match(s) {
                    errors.push(format!("{path}: {s:?} does not match {p}"));
                }
            }
            if let Some(e) = schema.get("enum").and_then(|e| e.as_array()) {
                if !e.iter().any(|x| x == v) {
                    errors.push(format!("{path}: {s:?} not in {e:?}"));
                }
            }
        }
        Some("boolean") if !v.is_boolean() => errors.push(format!("{path}: expected boolean")),
        Some("integer") if !(v.is_i64() || v.is_u64()) => {
            errors.push(format!("{path}: expected integer"))
        }
        _ => {}
    }
}

fn errors(schema: &Value, v: &Value) -> Vec<String> {
    let mut e = Vec::new();
    validate(schema, v, "", &mut e);
    e
}

#[test]
fn flux_objects_validate() {
    let spec = FluxSpec::new("v2.9.4");
    let g = flux::git_repository(&spec, "http://172.18.0.1:39017/desired.git");
    let k = flux::kustomization(&spec);
    let gs = crd_schema("flux/source.toolkit.fluxcd.io_gitrepositories.yaml", "v1");
    let ks = crd_schema("flux/kustomize.toolkit.fluxcd.io_kustomizations.yaml", "v1");
    assert_eq!(errors(&gs, &g), Vec::<String>::new());
    assert_eq!(errors(&ks, &k), Vec::<String>::new());
}

#[test]
fn the_validator_catches_mistakes() {
    let spec = FluxSpec::new("v2.9.4");
    let gs = crd_schema("flux/source.toolkit.fluxcd.io_gitrepositories.yaml", "v1");
    let ks = crd_schema("flux/kustomize.toolkit.fluxcd.io_kustomizations.yaml", "v1");
    // git:// is not accepted by Flux: the reason meshproof serves smart HTTP.
    assert!(!errors(&gs, &flux::git_repository(&spec, "git://host/desired.git")).is_empty());
    let mut g = flux::git_repository(&spec, "http://h/d.git");
    g["spec"]["timeout"] = "1h".into();
    assert!(
        !errors(&gs, &g).is_empty(),
        "timeout pattern allows only ms|s|m"
    );
    let mut k = flux::kustomization(&spec);
    k["spec"].as_object_mut().unwrap().remove("prune");
    k["spec"]["wiat"] = true.into();
    let e = errors(&ks, &k);
    assert!(
        e.iter().any(|x| x.contains("missing required prune"))
            && e.iter().any(|x| x.contains("wiat")),
        "{e:?}"
    );
}

#[test]
fn pro_function_cr_validates() {
    let f = FunctionSpec::echo(
        "env",
        "ghcr.io/openfaas/alpine:latest",
        vec!["meshproof-restore".into()],
    );
    let doc: Value =
        serde_yaml::from_str(&function_manifests(&f, FunctionFormat::FunctionCr)).unwrap();
    let s = crd_schema("openfaas/openfaas.com_functions.yaml", "v1");
    assert_eq!(errors(&s, &doc), Vec::<String>::new());
}

#[test]
fn sealed_secret_shape_validates() {
    let doc: Value = serde_yaml::from_str(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: meshproof-restore, namespace: openfaas-fn}\nspec:\n  encryptedData: {token: AgBy3i4OJSWK}\n  template: {metadata: {name: meshproof-restore, namespace: openfaas-fn}}\n",
    )
    .unwrap();
    let s = crd_schema("sealed-secrets/bitnami.com_sealedsecrets.yaml", "v1alpha1");
    assert_eq!(errors(&s, &doc), Vec::<String>::new());
}
