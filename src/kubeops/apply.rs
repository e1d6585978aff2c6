//! Server-side apply of multi-document manifests, through discovery.
//!
//! Why server-side apply: the API server merges, validates and records ownership
//! (`managedFields`) itself, so a run's changes are attributable to the `meshproof` field
//! manager and a field owned by someone else is a *conflict* (never silently overwritten
//! unless `force` is asked for).
//!
//! Order inside one batch: CustomResourceDefinitions first, each waited on until `Established`,
//! then Namespaces, then everything else in document order. Kinds are resolved through
//! `kube::discovery` per group/version; the cache is dropped once CRDs are established, and a
//! kind that a just-established CRD serves is re-resolved until it appears (discovery lags the
//! `Established` condition by a moment).
//!
//! ## CRDs written for newer clusters
//! Current CRD bundles carry fields an older API server does not know
//! (`x-kubernetes-validations` in schemas: CEL rules, on by default since 1.25;
//! `selectableFields` in versions: on by default since 1.31). An old server either rejects
//! them under server-side apply (`field not declared in schema`) or, depending on where they
//! sit, accepts the apply and silently drops them — and then *every* later apply differs from
//! the stored object, so the CRD is rewritten on each run and never reported `unchanged`.
//! Both were observed on v1.20 with the shared bundles.
//!
//! So the decision is made *before* applying, from the server's version (`/version`, fetched
//! once per [`Applier`]): fields the server does not support are removed from the CRD, which
//! is exactly what the server would store anyway, so nothing enforceable is lost. As a safety
//! net, a `field not declared in schema` failure still triggers one retry with every known
//! newer field removed. We chose stripping over a create/replace fallback because it keeps
//! server-side apply's semantics on old servers too: field ownership, conflict detection and
//! idempotence (a second run reports `unchanged`). [`Applied::stripped_fields`] reports it.
//!
//! A manifest's `status` is never applied: it is owned by the server and controllers.
//!
//! ## The run-id label
//! With a run id, an object the run *creates* gets `meshproof.dev/run-id=<id>`; an object that
//! already existed keeps whatever run-id label it had (usually none). Cleanup deletes by this
//! label, so a pre-existing namespace or CRD that a run merely re-applies is never deleted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, ApiCapabilities, Scope};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::call::call;
use super::error::KubeError;
use super::manifest::{parse_manifests, ManifestObject};
use super::run_label::{RunId, FIELD_MANAGER, RUN_ID_LABEL};
use super::wait;

/// CRD schema keyword for CEL rules (any depth under `openAPIV3Schema`).
pub const VALIDATIONS_KEYWORD: &str = "x-kubernetes-validations";
/// CRD `spec.versions[]` field for field selectors.
pub const SELECTABLE_FIELDS: &str = "selectableFields";

/// Which newer CRD fields a server keeps. Decided from its version (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrdFieldSupport {
    /// `x-kubernetes-validations` (CEL), enabled by default since 1.25.
    pub validations: bool,
    /// `selectableFields`, enabled by default since 1.31.
    pub selectable_fields: bool,
}

impl CrdFieldSupport {
    /// A server that keeps everything (nothing is stripped).
    pub const ALL: CrdFieldSupport = CrdFieldSupport {
        validations: true,
        selectable_fields: true,
    };
    /// A server that keeps none of the newer fields.
    pub const NONE: CrdFieldSupport = CrdFieldSupport {
        validations: false,
        selectable_fields: false,
    };

    /// From `/version`'s `major`/`minor` (e.g. `"1"`, `"20"` or `"27+"`). Unparsable versions
    /// count as current: the `field not declared` retry still covers them.
    pub fn for_version(major: &str, minor: &str) -> Self {
        let num = |s: &str| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<u32>()
                .ok()
        };
        match (num(major), num(minor)) {
            (Some(1), Some(m)) => CrdFieldSupport {
                validations: m >= 25,
                selectable_fields: m >= 31,
            },
            _ => CrdFieldSupport::ALL,
        }
    }
}

/// The server's error for a field its typed schema does not know.
const UNKNOWN_FIELD_MARKER: &str = "field not declared in schema";

/// How to apply a batch.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Server-side dry run (`dryRun=All`): validated and defaulted by the server, not stored.
    pub dry_run: bool,
    /// Take ownership of conflicting fields (`force=true`). Off by default: a conflict is an error.
    pub force: bool,
    /// Label created objects with `meshproof.dev/run-id=<id>`.
    pub run_id: Option<RunId>,
    /// Namespace for namespaced objects that do not name one.
    pub default_namespace: String,
    /// Deadline for each CRD to become Established, and for its kinds to appear in discovery.
    pub crd_timeout: Duration,
    /// Server-side-apply field manager ([`FIELD_MANAGER`] for scenarios; the stack uses its
    /// own so a scenario re-applying a namespace never takes over the stack's fields).
    pub field_manager: String,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            force: false,
            run_id: None,
            default_namespace: "default".into(),
            crd_timeout: Duration::from_secs(60),
            field_manager: FIELD_MANAGER.to_string(),
        }
    }
}

/// What an apply did to one object, judged by `resourceVersion` before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    Created,
    Configured,
    Unchanged,
}

/// Result for one applied object.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    /// `Kind namespace/name` or `Kind name`.
    pub object: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub action: ApplyAction,
    pub resource_version: Option<String>,
    /// True when newer-cluster CRD fields had to be stripped for this server.
    pub stripped_fields: bool,
}

/// Per-object results of [`dry_run_all`]: every object is tried, failures do not stop the rest.
#[derive(Debug)]
pub struct DryRunReport {
    pub results: Vec<(String, Result<Applied, KubeError>)>,
}

impl DryRunReport {
    /// The objects the server rejected, with the reason.
    pub fn rejected(&self) -> Vec<(&str, &KubeError)> {
        self.results
            .iter()
            .filter_map(|(o, r)| r.as_ref().err().map(|e| (o.as_str(), e)))
            .collect()
    }

    /// True when the server accepted every object.
    pub fn all_accepted(&self) -> bool {
        self.results.iter().all(|(_, r)| r.is_ok())
    }
}

/// Server-side applies every object of the multi-document `yaml`, in dependency order, stopping
/// at the first failure.
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    opts: &ApplyOptions,
) -> Result<Vec<Applied>, KubeError> {
    let objects = parse_manifests(yaml)?;
    Applier::new(client.clone(), opts.clone())
        .apply_all(objects)
        .await
}

/// Server-side dry run (`dryRun=All`) of every object in `yaml`; the server validates each one
/// (schema, admission) without storing anything. Errors only for unparsable YAML; per-object
/// rejections are in the report. Kinds of CRDs in the same batch are not installed by a dry
/// run, so their objects are reported as discovery failures.
pub async fn dry_run_all(client: &Client, yaml: &str) -> Result<DryRunReport, KubeError> {
    let objects = parse_manifests(yaml)?;
    let opts = ApplyOptions {
        dry_run: true,
        ..ApplyOptions::default()
    };
    let mut applier = Applier::new(client.clone(), opts);
    let mut results = Vec::new();
    for m in ordered(objects) {
        let id = display_name(
            &m.gvk.kind,
            m.object.metadata.namespace.as_deref(),
            m.name(),
        );
        let r = applier.apply_one(&m).await;
        results.push((id, r));
    }
    Ok(DryRunReport { results })
}

/// CRDs first, then namespaces, then the rest; stable within each group.
fn ordered(mut objects: Vec<ManifestObject>) -> Vec<ManifestObject> {
    objects.sort_by_key(|m| {
        if m.is_crd() {
            0
        } else if m.is_namespace() {
            1
        } else {
            2
        }
    });
    objects
}

/// `Kind ns/name` or `Kind name`.
pub fn display_name(kind: &str, ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// Applies objects with one discovery cache.
pub struct Applier {
    client: Client,
    opts: ApplyOptions,
    cache: HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>,
    /// Set after CRDs were established: unknown kinds are then retried until this deadline.
    discovery_deadline: Option<Instant>,
    /// Learned from `/version` when the first CRD is applied.
    crd_support: Option<CrdFieldSupport>,
}

impl Applier {
    pub fn new(client: Client, opts: ApplyOptions) -> Self {
        Applier {
            client,
            opts,
            cache: HashMap::new(),
            discovery_deadline: None,
            crd_support: None,
        }
    }

    /// Applies `objects` in dependency order (see the module docs).
    pub async fn apply_all(
        &mut self,
        objects: Vec<ManifestObject>,
    ) -> Result<Vec<Applied>, KubeError> {
        let objects = ordered(objects);
        let mut out = Vec::with_capacity(objects.len());
        let mut crds = Vec::new();
        let mut iter = objects.into_iter().peekable();
        while let Some(m) = iter.next_if(|m| m.is_crd()) {
            let applied = self.apply_one(&m).await?;
            crds.push(m.name().to_string());
            out.push(applied);
        }
        if !crds.is_empty() && !self.opts.dry_run {
            for name in &crds {
                wait::crd_established(&self.client, name, self.opts.crd_timeout).await?;
            }
            // Discovery refresh: the new kinds must be looked up afresh.
            self.cache.clear();
            self.discovery_deadline = Some(Instant::now() + self.opts.crd_timeout);
        }
        for m in iter {
            out.push(self.apply_one(&m).await?);
        }
        Ok(out)
    }

    /// Resolves a kind through discovery, retrying while a just-established CRD's kind is not
    /// served yet.
    async fn resolve(
        &mut self,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, ApiCapabilities), KubeError> {
        if let Some(hit) = self.cache.get(gvk) {
            return Ok(hit.clone());
        }
        let what = format!("discovery of {}/{} {}", gvk.group, gvk.version, gvk.kind);
        loop {
            let res = call(&what, discovery::pinned_kind(&self.client, gvk)).await;
            match res {
                Ok(found) => {
                    self.cache.insert(gvk.clone(), found.clone());
                    return Ok(found);
                }
                Err(e) => {
                    let missing = matches!(&e, KubeError::Api { code: 404, .. })
                        || matches!(
                            &e,
                            KubeError::Request {
                                source: kube::Error::Discovery(_),
                                ..
                            }
                        );
                    let retry =
                        missing && self.discovery_deadline.is_some_and(|d| Instant::now() < d);
                    if retry {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                    let api_version = if gvk.group.is_empty() {
                        gvk.version.clone()
                    } else {
                        format!("{}/{}", gvk.group, gvk.version)
                    };
                    return Err(if missing {
                        KubeError::Discovery(format!(
                            "kind {} ({api_version}) is not served by the cluster",
                            gvk.kind
                        ))
                    } else {
                        KubeError::Discovery(format!("{what}: {e}"))
                    });
                }
            }
        }
    }

    /// Applies one object (CRDs with the newer-field fallback described in the module docs).
    pub async fn apply_one(&mut self, m: &ManifestObject) -> Result<Applied, KubeError> {
        if !m.is_crd() {
            return self.apply_object(m, m.object.clone(), false).await;
        }
        let support = match self.crd_support {
            Some(s) => s,
            None => {
                let info = call("API server version", self.client.apiserver_version()).await?;
                let s = CrdFieldSupport::for_version(&info.major, &info.minor);
                self.crd_support = Some(s);
                s
            }
        };
        let mut obj = m.object.clone();
        let stripped = strip_unsupported_crd_fields(&mut obj.data, support);
        match self.apply_object(m, obj, stripped).await {
            Err(KubeError::Api { message, .. }) if message.contains(UNKNOWN_FIELD_MARKER) => {
                let mut obj = m.object.clone();
                strip_unsupported_crd_fields(&mut obj.data, CrdFieldSupport::NONE);
                self.apply_object(m, obj, true).await
            }
            other => other,
        }
    }

    async fn apply_object(
        &mut self,
        m: &ManifestObject,
        mut obj: DynamicObject,
        stripped_fields: bool,
    ) -> Result<Applied, KubeError> {
        let (ar, caps) = self.resolve(&m.gvk).await?;
        let name = m.name().to_string();
        let ns = match caps.scope {
            Scope::Namespaced => Some(
                obj.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.opts.default_namespace.clone()),
            ),
            // Like kubectl: a namespace on a cluster-scoped object is meaningless; drop it.
            Scope::Cluster => None,
        };
        obj.metadata.namespace = ns.clone();
        // Status belongs to the server and controllers. Some shipped manifests carry a stub
        // (`status: {acceptedNames: ..., conditions: []}` in Linkerd's CRDs); applying it would
        // make `meshproof` claim those fields and conflict with `kube-apiserver`.
        if let Some(data) = obj.data.as_object_mut() {
            data.remove("status");
        }
        let object = display_name(&ar.kind, ns.as_deref(), &name);
        let api: Api<DynamicObject> = match &ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => Api::all_with(self.client.clone(), &ar),
        };
        let before = call(&object, api.get_opt(&name)).await?;
        if let Some(run) = &self.opts.run_id {
            let label = match &before {
                None => Some(run.as_str().to_string()),
                Some(b) => b.labels().get(RUN_ID_LABEL).cloned(),
            };
            if let Some(value) = label {
                obj.labels_mut().insert(RUN_ID_LABEL.to_string(), value);
            }
        }
        let mut pp = PatchParams::apply(&self.opts.field_manager);
        if self.opts.force {
            pp = pp.force();
        }
        if self.opts.dry_run {
            pp = pp.dry_run();
        }
        let after = call(&object, api.patch(&name, &pp, &Patch::Apply(&obj))).await?;
        let action = match &before {
            None => ApplyAction::Created,
            Some(b) if self.opts.dry_run => {
                if comparable(b) == comparable(&after) {
                    ApplyAction::Unchanged
                } else {
                    ApplyAction::Configured
                }
            }
            Some(b) if b.resource_version() == after.resource_version() => ApplyAction::Unchanged,
            Some(_) => ApplyAction::Configured,
        };
        Ok(Applied {
            object,
            kind: ar.kind.clone(),
            namespace: ns,
            name,
            action,
            resource_version: after.resource_version(),
            stripped_fields,
        })
    }
}

/// An object without the metadata every write changes, for dry-run change detection.
fn comparable(o: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "generation"] {
            meta.remove(k);
        }
    }
    v
}

/// Removes the CRD fields `support` says the server does not keep from a CRD's data; true if
/// anything was removed.
pub fn strip_unsupported_crd_fields(data: &mut Value, support: CrdFieldSupport) -> bool {
    let Some(versions) = data
        .get_mut("spec")
        .and_then(|s| s.get_mut("versions"))
        .and_then(Value::as_array_mut)
    else {
        return false;
    };
    let mut removed = false;
    for v in versions {
        if !support.selectable_fields {
            if let Some(vo) = v.as_object_mut() {
                removed |= vo.remove(SELECTABLE_FIELDS).is_some();
            }
        }
        if !support.validations {
            if let Some(schema) = v.get_mut("schema") {
                removed |= strip_keyword(schema, VALIDATIONS_KEYWORD);
            }
        }
    }
    removed
}

fn strip_keyword(v: &mut Value, key: &str) -> bool {
    match v {
        Value::Object(map) => {
            let mut removed = map.remove(key).is_some();
            for child in map.values_mut() {
                removed |= strip_keyword(child, key);
            }
            removed
        }
        Value::Array(items) => {
            // Every item must be visited: no short-circuiting `any`.
            let mut removed = false;
            for item in items {
                removed |= strip_keyword(item, key);
            }
            removed
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_only_newer_fields_at_every_depth() {
        let mut d = json!({"spec": {"versions": [{"name": "v1", "selectableFields": [{"jsonPath": ".spec.x"}],
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-validations": [{"rule": "true"}],
              "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": "1 == 1"}],
                "properties": {"x": {"type": "string", "maxLength": 3}}}}}}}]}});
        let original = d.clone();
        assert!(!strip_unsupported_crd_fields(&mut d, CrdFieldSupport::ALL));
        assert_eq!(d, original);
        let mut only_cel = d.clone();
        assert!(strip_unsupported_crd_fields(
            &mut only_cel,
            CrdFieldSupport::for_version("1", "28")
        ));
        let s = only_cel.to_string();
        assert!(!s.contains("selectableFields") && s.contains("x-kubernetes-validations"));
        assert!(strip_unsupported_crd_fields(
            &mut d,
            CrdFieldSupport::for_version("1", "20+")
        ));
        let s = d.to_string();
        assert!(!s.contains("x-kubernetes-validations"), "{s}");
        assert!(!s.contains("selectableFields"), "{s}");
        assert!(s.contains("maxLength"), "{s}");
    }

    #[test]
    fn support_follows_the_server_version() {
        assert_eq!(
            CrdFieldSupport::for_version("1", "20"),
            CrdFieldSupport::NONE
        );
        assert_eq!(
            CrdFieldSupport::for_version("1", "33"),
            CrdFieldSupport::ALL
        );
        assert_eq!(CrdFieldSupport::for_version("", ""), CrdFieldSupport::ALL);
    }

    #[test]
    fn crds_then_namespaces_then_the_rest() {
        let y = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: a.b.c}\n";
        let kinds: Vec<String> = ordered(parse_manifests(y).unwrap())
            .into_iter()
            .map(|m| m.gvk.kind)
            .collect();
        assert_eq!(
            kinds,
            ["CustomResourceDefinition", "Namespace", "ConfigMap"]
        );
    }
}
