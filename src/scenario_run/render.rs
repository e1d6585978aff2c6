//! Rendering scenario steps for one trial: the manifest variant of the trial's mesh with the
//! step's own variables laid over the trial's, the OpenFaaS deploy request, and the object a
//! `wait` names. Pure: everything here is decided before anything touches a cluster, so the
//! rules are unit-tested and the plan (`crate::plan::describe_step`) renders the same way.

use crate::kubeops::manifest::parse_manifests;
use crate::kubeops::RUN_ID_LABEL;
use crate::scenario::template::{Template, Vars};
use crate::scenario::{DataPlane, DeploySpec, Manifests, Source, WaitFor, WaitSpec};
use indexmap::IndexMap;
use std::time::Duration;

/// Why a step could not be rendered (an unknown variable, a manifest without a variant for this
/// mesh, a wait target that names no object). Validation catches most of these at load time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// The rendered text of a manifest step, and where it came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedManifest {
    pub origin: String,
    pub yaml: String,
}

fn render(t: &Template, vars: &Vars, what: &str) -> Result<String, RenderError> {
    t.render(vars)
        .map_err(|e| RenderError(format!("{what}: {e}")))
}

/// The manifest variant for `data_plane` (never the sidecar `istio` one on ambient), rendered
/// with `vars` overlaid by the step's own `vars`.
pub fn render_manifests(
    m: &Manifests,
    data_plane: DataPlane,
    vars: &Vars,
) -> Result<RenderedManifest, RenderError> {
    let v = vars.overlay(&m.vars);
    let src = m
        .for_data_plane(data_plane)
        .ok_or_else(|| RenderError(format!("the step has no manifest for {data_plane}")))?;
    let origin = match src {
        Source::Inline(_) => "inline manifest".to_string(),
        Source::File { path, .. } => path.display().to_string(),
    };
    let yaml = render(src.template(), &v, &origin)?;
    Ok(RenderedManifest { origin, yaml })
}

/// One Kubernetes object named by a manifest: enough to delete it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ObjectRef {
    /// `v1`, `apps/v1`, `security.istio.io/v1`…
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The objects a rendered manifest names, in document order. Namespaced objects that name no
/// namespace are given `default_namespace` (what apply does with them).
/// The one served resource a wait target's kind names: `kind` (or plural) alone, or
/// `kind.group` — needed when several API groups serve the kind (`HTTPRoute` is served by both
/// `gateway.networking.k8s.io` and Linkerd's `policy.linkerd.io`, ledger LD-16), where the
/// unqualified name is an error listing the groups instead of whichever discovery met first.
pub fn pick_kind(
    spec: &str,
    served: Vec<(kube::api::ApiResource, bool)>,
) -> Result<(kube::api::ApiResource, bool), String> {
    let spec_l = spec.to_ascii_lowercase();
    let (kind, group) = match spec_l.split_once('.') {
        Some((k, g)) => (k.to_string(), Some(g.to_string())),
        None => (spec_l.clone(), None),
    };
    let mut hits: Vec<(kube::api::ApiResource, bool)> = served
        .into_iter()
        .filter(|(ar, _)| ar.kind.to_ascii_lowercase() == kind || ar.plural == kind)
        .filter(|(ar, _)| group.as_deref().is_none_or(|g| ar.group == g))
        .collect();
    hits.sort_by(|a, b| a.0.group.cmp(&b.0.group));
    hits.dedup_by(|a, b| a.0.group == b.0.group);
    match hits.len() {
        0 => Err(format!("no kind {spec:?} is served by the cluster")),
        1 => Ok(hits.remove(0)),
        _ => Err(format!(
            "kind {spec:?} is served by several API groups ({}): write it as {kind}.<group>/<name>, e.g. {kind}.{}",
            hits.iter()
                .map(|(ar, _)| if ar.group.is_empty() { "core" } else { ar.group.as_str() })
                .collect::<Vec<_>>()
                .join(", "),
            hits[0].0.group
        )),
    }
}

/// The Secrets cert-manager will write for the `cert-manager.io` Certificates in `yaml` (each
/// one's `spec.secretName`, in its namespace). cert-manager does not own them by default
/// (`--enable-certificate-owner-ref` is off, ledger CM-4), so deleting a Certificate leaves its
/// Secret behind: a trial that applied the Certificate removes the Secret too.
pub fn certificate_secrets(
    yaml: &str,
    default_namespace: &str,
) -> Result<Vec<ObjectRef>, RenderError> {
    let objs = parse_manifests(yaml).map_err(|e| RenderError(e.to_string()))?;
    Ok(objs
        .iter()
        .filter(|m| m.gvk.group == "cert-manager.io" && m.gvk.kind == "Certificate")
        .filter_map(|m| {
            let secret = m.object.data.pointer("/spec/secretName")?.as_str()?;
            Some(ObjectRef {
                api_version: "v1".into(),
                kind: "Secret".into(),
                namespace: Some(
                    m.object
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| default_namespace.to_string()),
                ),
                name: secret.to_string(),
            })
        })
        .collect())
}

pub fn objects_of(yaml: &str, default_namespace: &str) -> Result<Vec<ObjectRef>, RenderError> {
    let objs = parse_manifests(yaml).map_err(|e| RenderError(e.to_string()))?;
    Ok(objs
        .iter()
        .map(|m| {
            let api_version = if m.gvk.group.is_empty() {
                m.gvk.version.clone()
            } else {
                format!("{}/{}", m.gvk.group, m.gvk.version)
            };
            let cluster_scoped = is_cluster_scoped_kind(&m.gvk.kind);
            let namespace = if cluster_scoped {
                None
            } else {
                Some(
                    m.object
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| default_namespace.to_string()),
                )
            };
            ObjectRef {
                api_version,
                kind: m.gvk.kind.clone(),
                namespace,
                name: m.name().to_string(),
            }
        })
        .collect())
}

/// Kinds the scenarios use that are cluster-scoped. Anything else is treated as namespaced; a
/// delete resolves the real scope through discovery anyway.
fn is_cluster_scoped_kind(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "CustomResourceDefinition"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "ClusterIssuer"
            | "GatewayClass"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
    )
}

/// An OpenFaaS function as the gateway REST API (`/system/functions`) and the `Function` CRD
/// both describe it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FunctionRequest {
    pub service: String,
    pub image: String,
    /// `fprocess`, the command the watchdog runs per request.
    pub env_process: Option<String>,
    pub env_vars: IndexMap<String, String>,
    pub labels: IndexMap<String, String>,
    pub annotations: IndexMap<String, String>,
}

/// What keeps a function's pods out of the mesh: a pod annotation for Istio sidecars (IS-6)
/// and Linkerd, the pod label `istio.io/dataplane-mode: none` under Istio ambient (IS-21), whose
/// istio-cni reads labels only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOut {
    Annotation(&'static str, &'static str),
    Label(&'static str, &'static str),
}

/// The opt-out of `plane` (see [`OptOut`]).
pub fn unmeshed_opt_out(plane: DataPlane) -> OptOut {
    match plane {
        DataPlane::IstioSidecar => OptOut::Annotation("sidecar.istio.io/inject", "false"),
        DataPlane::IstioAmbient => OptOut::Label("istio.io/dataplane-mode", "none"),
        DataPlane::Linkerd => OptOut::Annotation("linkerd.io/inject", "disabled"),
    }
}

/// The deploy request of a `deploy` step: `fprocess` becomes the watchdog process, the other
/// `env` entries plain variables; the function carries the run-id label (so a person can see
/// which run made it); `meshed: false` adds the data plane's opt-out ([`unmeshed_opt_out`]).
/// Request labels and annotations go onto the function's pod template (ledger OF-8).
pub fn render_deploy(
    d: &DeploySpec,
    plane: DataPlane,
    vars: &Vars,
    run_id: &str,
) -> Result<FunctionRequest, RenderError> {
    let image = render(&d.image, vars, &format!("image of function {}", d.function))?;
    let mut env_vars = d.env.clone();
    let env_process = env_vars.shift_remove("fprocess");
    let mut labels = d.labels.clone();
    labels.insert(RUN_ID_LABEL.to_string(), run_id.to_string());
    let mut annotations = d.annotations.clone();
    if !d.meshed {
        match unmeshed_opt_out(plane) {
            OptOut::Annotation(k, v) => {
                annotations.insert(k.to_string(), v.to_string());
            }
            OptOut::Label(k, v) => {
                labels.insert(k.to_string(), v.to_string());
            }
        }
    }
    Ok(FunctionRequest {
        service: d.function.as_str().to_string(),
        image,
        env_process,
        env_vars,
        labels,
        annotations,
    })
}

impl FunctionRequest {
    /// The JSON body of `POST`/`PUT /system/functions` (OpenFaaS CE gateway).
    pub fn gateway_body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "service": self.service,
            "image": self.image,
            "envVars": self.env_vars,
            "labels": self.labels,
            "annotations": self.annotations,
        });
        if let Some(p) = &self.env_process {
            body["envProcess"] = serde_json::Value::String(p.clone());
        }
        body
    }

    /// An `openfaas.com/v1` Function for OpenFaaS Pro's operator, in `namespace`.
    pub fn function_cr_yaml(&self, namespace: &str) -> String {
        let mut environment = self.env_vars.clone();
        if let Some(p) = &self.env_process {
            environment.insert("fprocess".into(), p.clone());
        }
        let doc = serde_json::json!({
            "apiVersion": "openfaas.com/v1",
            "kind": "Function",
            "metadata": { "name": self.service, "namespace": namespace },
            "spec": {
                "name": self.service,
                "image": self.image,
                "environment": environment,
                "labels": self.labels,
                "annotations": self.annotations,
            }
        });
        // JSON is YAML; serde_json cannot fail on a Value.
        doc.to_string()
    }
}

/// What a `wait` step waits for, with its object resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitTarget {
    /// `deployment/NAME` rolled out.
    Rollout { namespace: String, name: String },
    /// Every pod matching the selector Ready (at least one).
    PodsReady { namespace: String, selector: String },
    /// `crd/NAME` Established.
    Established { name: String },
    /// `KIND/NAME` has `status.conditions[type].status == status`.
    Condition {
        kind: String,
        namespace: Option<String>,
        name: String,
        type_: String,
        status: String,
    },
}

impl std::fmt::Display for WaitTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitTarget::Rollout { namespace, name } => {
                write!(f, "deployment {namespace}/{name} rolled out")
            }
            WaitTarget::PodsReady {
                namespace,
                selector,
            } => write!(f, "pods {selector} in {namespace} Ready"),
            WaitTarget::Established { name } => write!(f, "CRD {name} Established"),
            WaitTarget::Condition {
                kind,
                namespace,
                name,
                type_,
                status,
            } => match namespace {
                Some(ns) => write!(f, "{kind} {ns}/{name} {type_}={status}"),
                None => write!(f, "{kind} {name} {type_}={status}"),
            },
        }
    }
}

/// Resolves a `wait` step: `target` is `kind/name` (a label selector for `podsReady`); the
/// namespace defaults to `default` like kubectl's.
pub fn render_wait(w: &WaitSpec, vars: &Vars) -> Result<(WaitTarget, Duration), RenderError> {
    let target = render(&w.target, vars, "wait target")?;
    let namespace = match &w.namespace {
        Some(n) => render(n, vars, "wait namespace")?,
        None => "default".to_string(),
    };
    let split = |t: &str| -> Result<(String, String), RenderError> {
        t.split_once('/')
            .filter(|(k, n)| !k.is_empty() && !n.is_empty() && !n.contains('/'))
            .map(|(k, n)| (k.to_ascii_lowercase(), n.to_string()))
            .ok_or_else(|| RenderError(format!("wait target {t:?} is not KIND/NAME")))
    };
    let t = match w.wait_for {
        WaitFor::Rollout => {
            let (kind, name) = split(&target)?;
            if !matches!(kind.as_str(), "deployment" | "deployments" | "deploy") {
                return Err(RenderError(format!(
                    "wait for: rollout supports deployment/NAME (functions are Deployments), not {kind}/…"
                )));
            }
            WaitTarget::Rollout { namespace, name }
        }
        WaitFor::PodsReady => WaitTarget::PodsReady {
            namespace,
            selector: target,
        },
        WaitFor::Established => {
            let name = match target.split_once('/') {
                Some((k, n))
                    if matches!(
                        k.to_ascii_lowercase().as_str(),
                        "crd" | "crds" | "customresourcedefinition" | "customresourcedefinitions"
                    ) =>
                {
                    n.to_string()
                }
                Some(_) => {
                    return Err(RenderError(format!(
                        "wait for: established needs crd/NAME, got {target:?}"
                    )))
                }
                None => target,
            };
            WaitTarget::Established { name }
        }
        WaitFor::Condition => {
            let (kind, name) = split(&target)?;
            let (type_, status) = w
                .condition
                .clone()
                .ok_or_else(|| RenderError("wait for: condition without a condition".into()))?;
            // A namespaced wait without `namespace:` is unusual for conditions; keep `None`
            // only when the user gave none *and* the kind turns out cluster-scoped (resolved
            // at run time), so carry the rendered default here.
            let ns = if w.namespace.is_some() {
                Some(namespace)
            } else {
                None
            };
            WaitTarget::Condition {
                kind,
                namespace: ns,
                name,
                type_,
                status,
            }
        }
    };
    Ok((t, w.timeout))
}
