//! The desired state meshproof commits to git: OpenFaaS functions, their configuration, the
//! Secrets they use (sealed before they are committed) and the `kustomization.yaml` that Flux
//! applies.
//!
//! How functions are declared depends on the OpenFaaS edition:
//! - **Pro** ships the `openfaas.com/v1` `Function` operator, so functions are `Function` CRs
//!   and the operator creates their Deployments and Services.
//! - **CE** has no operator (its only deploy API is the gateway's REST endpoint, which is not
//!   GitOps). So for CE meshproof commits what faas-netes itself would create: a Deployment and
//!   a Service named after the function in `openfaas-fn`, labelled `faas_function: <name>` —
//!   the label faas-netes lists functions by — with the container on port 8080 and `fprocess`
//!   in its environment. The gateway then lists and invokes them like any deployed function.
//!
//! Either way the running function is a Deployment labelled `faas_function`, which is what the
//! [`crate::check::restore::inventory`] records.

use crate::vocab::FUNCTIONS_NAMESPACE;
use base64::Engine;
use rand::Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt;

/// How functions are written to git.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionFormat {
    /// OpenFaaS Pro: `openfaas.com/v1` `Function` CRs.
    FunctionCr,
    /// OpenFaaS CE: Deployment + Service, labelled like faas-netes' own.
    Deployment,
}

/// One function of the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub name: String,
    pub image: String,
    pub env: BTreeMap<String, String>,
    /// Secrets (in the functions' namespace) mounted at `/var/openfaas/secrets/<key>`.
    pub secrets: Vec<String>,
    pub replicas: u32,
}

impl FunctionSpec {
    /// The scenario's function: `fprocess=env` (so it echoes its environment, a quick proof of
    /// which config it runs with) plus a config marker that the inventory must find again.
    pub fn echo(name: &str, image: &str, secrets: Vec<String>) -> FunctionSpec {
        let mut env = BTreeMap::new();
        env.insert("fprocess".into(), "env".into());
        env.insert("MESHPROOF_CONFIG".into(), format!("restore-{name}"));
        FunctionSpec {
            name: name.into(),
            image: image.into(),
            env,
            secrets,
            replicas: 1,
        }
    }
}

/// A secret value: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn new(bytes: impl Into<Vec<u8>>) -> SecretValue {
        SecretValue(bytes.into())
    }

    /// 32 random bytes, hex-encoded: a fresh value per run, so a secret that "came back" cannot
    /// have come from anywhere but the sealed copy in git.
    pub fn random() -> SecretValue {
        let bytes: [u8; 32] = rand::rng().random();
        SecretValue(hex::encode(bytes).into_bytes())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// A plaintext Secret before sealing.
#[derive(Debug, Clone)]
pub struct PlainSecret {
    pub namespace: String,
    pub name: String,
    pub data: BTreeMap<String, SecretValue>,
}

impl PlainSecret {
    /// The Secret manifest `kubeseal` reads (values base64 in `data`).
    pub fn manifest_yaml(&self) -> String {
        let data: serde_json::Map<String, serde_json::Value> = self
            .data
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    base64::engine::general_purpose::STANDARD
                        .encode(v.expose())
                        .into(),
                )
            })
            .collect();
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": self.name, "namespace": self.namespace },
            "type": "Opaque",
            "data": data,
        });
        serde_yaml::to_string(&obj).unwrap_or_default()
    }
}

fn yaml(v: &serde_json::Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

/// The manifests of one function, as YAML documents.
pub fn function_manifests(f: &FunctionSpec, format: FunctionFormat) -> String {
    let env: Vec<serde_json::Value> = f
        .env
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    match format {
        FunctionFormat::FunctionCr => {
            let env_map: serde_json::Map<String, serde_json::Value> = f
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            let mut spec = json!({
                "name": f.name,
                "image": f.image,
                "environment": env_map,
                "labels": { "com.openfaas.scale.min": f.replicas.to_string() },
            });
            if !f.secrets.is_empty() {
                spec["secrets"] = json!(f.secrets);
            }
            yaml(&json!({
                "apiVersion": "openfaas.com/v1",
                "kind": "Function",
                "metadata": { "name": f.name, "namespace": FUNCTIONS_NAMESPACE },
                "spec": spec,
            }))
        }
        FunctionFormat::Deployment => {
            let labels = json!({ "faas_function": f.name, "app": f.name });
            let mut container = json!({
                "name": f.name,
                "image": f.image,
                "env": env,
                "ports": [{ "name": "http", "containerPort": 8080, "protocol": "TCP" }],
                // The classic watchdog answers health only on `/_/health`; any other path runs
                // the function, which says nothing about readiness (ledger OF-11).
                "readinessProbe": { "httpGet": { "path": "/_/health", "port": 8080 }, "periodSeconds": 2 },
            });
            let mut pod_spec = json!({ "containers": [] });
            if !f.secrets.is_empty() {
                // faas-netes mounts every function secret into one projected volume here.
                container["volumeMounts"] = json!([{ "name": "secrets", "mountPath": "/var/openfaas/secrets", "readOnly": true }]);
                let sources: Vec<serde_json::Value> = f
                    .secrets
                    .iter()
                    .map(|s| json!({ "secret": { "name": s } }))
                    .collect();
                pod_spec["volumes"] =
                    json!([{ "name": "secrets", "projected": { "sources": sources } }]);
            }
            pod_spec["containers"] = json!([container]);
            let deployment = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": { "name": f.name, "namespace": FUNCTIONS_NAMESPACE, "labels": labels },
                "spec": {
                    "replicas": f.replicas,
                    "selector": { "matchLabels": { "faas_function": f.name } },
                    "template": { "metadata": { "labels": labels }, "spec": pod_spec },
                },
            });
            let service = json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": { "name": f.name, "namespace": FUNCTIONS_NAMESPACE, "labels": { "faas_function": f.name } },
                "spec": {
                    "selector": { "faas_function": f.name },
                    "ports": [{ "name": "http", "port": 8080, "targetPort": 8080, "protocol": "TCP" }],
                },
            });
            format!("{}---\n{}", yaml(&deployment), yaml(&service))
        }
    }
}

/// `kustomization.yaml` listing `resources` (paths relative to the repository root).
pub fn kustomization(resources: &[String]) -> String {
    yaml(&json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_value_debug_hides_the_value() {
        let v = SecretValue::new("hunter2-very-secret");
        assert_eq!(format!("{v:?}"), "SecretValue(***)");
        let s = PlainSecret {
            namespace: "n".into(),
            name: "s".into(),
            data: [("k".to_string(), v)].into(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(s
            .manifest_yaml()
            .contains(&base64::engine::general_purpose::STANDARD.encode("hunter2-very-secret")));
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(SecretValue::random(), SecretValue::random());
        assert_eq!(SecretValue::random().expose().len(), 64);
    }

    #[test]
    fn ce_functions_are_labelled_like_faas_netes() {
        let f = FunctionSpec::echo("env", "img:1", vec!["s".into()]);
        let docs: Vec<serde_json::Value> = function_manifests(&f, FunctionFormat::Deployment)
            .split("---\n")
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect();
        assert_eq!(docs[0]["kind"], "Deployment");
        assert_eq!(docs[0]["metadata"]["labels"]["faas_function"], "env");
        assert_eq!(docs[0]["metadata"]["namespace"], "openfaas-fn");
        assert_eq!(
            docs[0]["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
            8080
        );
        // faas-netes' own probe path, the watchdog's only health handler (OF-11).
        assert_eq!(
            docs[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
                ["path"],
            "/_/health"
        );
        assert_eq!(docs[1]["kind"], "Service");
        assert_eq!(docs[1]["spec"]["selector"]["faas_function"], "env");
        let mut inv = crate::restore::Inventory::default();
        inv.add_function_deployments(&docs[..1]).unwrap();
        assert_eq!(inv.functions["env"].image, "img:1");
        assert_eq!(inv.functions["env"].env["fprocess"], "env");
    }

    #[test]
    fn pro_functions_are_function_crs() {
        let f = FunctionSpec::echo("env", "img:1", vec![]);
        let doc: serde_json::Value =
            serde_yaml::from_str(&function_manifests(&f, FunctionFormat::FunctionCr)).unwrap();
        assert_eq!(doc["apiVersion"], "openfaas.com/v1");
        assert_eq!(doc["kind"], "Function");
        assert_eq!(doc["spec"]["environment"]["fprocess"], "env");
    }
}
