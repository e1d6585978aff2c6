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
//! (`x-kubernetes-validations` in schemas, since 1.23; `selectableFields` in versions, since
//! 1.30). Server-side apply builds a typed patch against the server's own CRD schema and fails
//! with `field not declared in schema`. We first apply the CRD unchanged (so a current cluster
//! gets the CEL rules), and only on that specific failure apply again with exactly those
//! fields removed. We chose this over a create/replace fallback because it keeps server-side
//! apply's semantics on old servers too: field ownership, conflict detection, and idempotence
//! (a second run reports `unchanged`). The server would drop those fields anyway (README of
//! kube-rig), so nothing enforceable is lost. The [`Applied::stripped_fields`] flag reports it.
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

/// Fields of CRDs that API servers older than their introduction reject under SSA.
/// Schema keyword (any depth under `openAPIV3Schema`).
pub const NEWER_SCHEMA_KEYWORDS: &[&str] = &["x-kubernetes-validations"];
/// Fields of `spec.versions[]`.
pub const NEWER_VERSION_FIELDS: &[&str] = &["selectableFields"];

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
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            force: false,
            run_id: None,
            default_namespace: "default".into(),
            crd_timeout: Duration::from_secs(60),
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
}

impl Applier {
    pub fn new(client: Client, opts: ApplyOptions) -> Self {
        Applier {
            client,
            opts,
            cache: HashMap::new(),
            discovery_deadline: None,
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
        match self.apply_object(m, m.object.clone(), false).await {
            Err(KubeError::Api { message, .. }) if message.contains(UNKNOWN_FIELD_MARKER) => {
                let mut stripped = m.object.clone();
                strip_newer_crd_fields(&mut stripped.data);
                self.apply_object(m, stripped, true).await
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
        let mut pp = PatchParams::apply(FIELD_MANAGER);
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

/// Removes [`NEWER_SCHEMA_KEYWORDS`] from every schema and [`NEWER_VERSION_FIELDS`] from every
/// version of a CRD's data (`spec...`).
pub fn strip_newer_crd_fields(data: &mut Value) {
    let Some(versions) = data
        .get_mut("spec")
        .and_then(|s| s.get_mut("versions"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for v in versions {
        if let Some(vo) = v.as_object_mut() {
            for f in NEWER_VERSION_FIELDS {
                vo.remove(*f);
            }
        }
        if let Some(schema) = v.get_mut("schema") {
            strip_keywords(schema);
        }
    }
}

fn strip_keywords(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for k in NEWER_SCHEMA_KEYWORDS {
                map.remove(*k);
            }
            for child in map.values_mut() {
                strip_keywords(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_keywords),
        _ => {}
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
        strip_newer_crd_fields(&mut d);
        let s = d.to_string();
        assert!(!s.contains("x-kubernetes-validations"), "{s}");
        assert!(!s.contains("selectableFields"), "{s}");
        assert!(s.contains("maxLength"), "{s}");
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
