//! Loading schemas from a directory and indexing them by group/version/kind.
//!
//! Two sources: CRD documents in `*.yaml`/`*.yml` files (multi-document; every served version's
//! `schema.openAPIV3Schema`) and Kubernetes OpenAPI v3 documents in `*.json` files (every
//! `components.schemas` entry carrying `x-kubernetes-group-version-kind`). Files that are neither
//! (a chart's `values.yaml`) contribute nothing; files that cannot be parsed are errors.

use super::gvk::Gvk;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Provider directories preferred for an API group when several define the same kind (see the
/// module documentation of [`crate::schema`] for why).
pub const PREFERRED_PROVIDERS: &[(&str, &str)] = &[("gateway.networking.k8s.io", "gateway-api")];

/// The OpenAPI component every object's `metadata` is checked against.
pub(crate) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{0}: not a directory")]
    NotADirectory(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: document {doc}: invalid YAML: {message}")]
    Yaml {
        path: PathBuf,
        doc: usize,
        message: String,
    },
    #[error("{path}: invalid JSON: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: document {doc}: bad CustomResourceDefinition: {message}")]
    BadCrd {
        path: PathBuf,
        doc: usize,
        message: String,
    },
    #[error("{0}: no CustomResourceDefinition or OpenAPI v3 schema found")]
    Empty(PathBuf),
}

/// Which dialect a schema is written in; they differ in two rules (see [`crate::schema`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A CRD's structural schema.
    Crd,
    /// Kubernetes' OpenAPI v3 for built-in kinds.
    BuiltIn,
}

/// What a schema node is interpreted in: its dialect and, for OpenAPI, the `$ref` targets.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub origin: Origin,
    /// `components.schemas` of the OpenAPI document; empty for CRDs.
    pub refs: Map<String, Value>,
}

#[derive(Debug)]
enum Root {
    Inline(Value),
    Named(String),
}

/// One schema for one GVK from one file.
#[derive(Debug)]
pub(crate) struct Candidate {
    /// File path relative to the schema directory, `/`-separated.
    pub provider: String,
    /// The first directory of `provider` (`gateway-api`, `linkerd`), or "" at top level.
    pub dir: String,
    pub ctx: Arc<Ctx>,
    root: Root,
}

impl Candidate {
    pub fn schema(&self) -> &Value {
        static EMPTY: Value = Value::Null;
        match &self.root {
            Root::Inline(v) => v,
            Root::Named(n) => self.ctx.refs.get(n).unwrap_or(&EMPTY),
        }
    }
}

/// Every schema found under a directory, by GVK.
#[derive(Debug)]
pub struct SchemaSet {
    index: BTreeMap<Gvk, Vec<Candidate>>,
    object_meta: Option<Arc<Ctx>>,
    regexes: Mutex<HashMap<String, Result<Arc<regex::Regex>, String>>>,
}

impl SchemaSet {
    /// Loads every CRD and OpenAPI v3 document under `dir` (recursively, in sorted path order).
    pub fn load_dir(dir: &Path) -> Result<SchemaSet, SchemaError> {
        if !dir.is_dir() {
            return Err(SchemaError::NotADirectory(dir.to_path_buf()));
        }
        let mut files = Vec::new();
        walk(dir, &mut files)?;
        files.sort();
        let mut set = SchemaSet {
            index: BTreeMap::new(),
            object_meta: None,
            regexes: Mutex::new(HashMap::new()),
        };
        for f in &files {
            let rel = f.strip_prefix(dir).unwrap_or(f);
            let provider = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>();
            let dir_name = if provider.len() > 1 {
                provider[0].clone()
            } else {
                String::new()
            };
            let provider = provider.join("/");
            match f.extension().and_then(|e| e.to_str()) {
                Some("yaml" | "yml") => set.load_yaml(f, &provider, &dir_name)?,
                Some("json") => set.load_json(f, &provider, &dir_name)?,
                _ => {}
            }
        }
        if set.index.is_empty() {
            return Err(SchemaError::Empty(dir.to_path_buf()));
        }
        for (gvk, cands) in set.index.iter_mut() {
            let preferred: Vec<&str> = PREFERRED_PROVIDERS
                .iter()
                .filter(|(g, _)| *g == gvk.group)
                .map(|(_, d)| *d)
                .collect();
            // Stable: load order is kept within each class.
            cands.sort_by_key(|c| !preferred.contains(&c.dir.as_str()));
        }
        Ok(set)
    }

    fn add(&mut self, gvk: Gvk, c: Candidate) {
        self.index.entry(gvk).or_default().push(c);
    }

    fn load_yaml(&mut self, path: &Path, provider: &str, dir: &str) -> Result<(), SchemaError> {
        let text = std::fs::read_to_string(path).map_err(|e| SchemaError::Io {
            path: path.into(),
            source: e,
        })?;
        let crd_ctx = Arc::new(Ctx {
            origin: Origin::Crd,
            refs: Map::new(),
        });
        for (i, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let doc = i + 1;
            let v = Value::deserialize(de).map_err(|e| SchemaError::Yaml {
                path: path.into(),
                doc,
                message: e.to_string(),
            })?;
            if v.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
                continue;
            }
            let bad = |message: String| SchemaError::BadCrd {
                path: path.into(),
                doc,
                message,
            };
            let spec = v.get("spec").ok_or_else(|| bad("no spec".into()))?;
            let group = spec
                .get("group")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no spec.group".into()))?;
            let kind = spec
                .get("names")
                .and_then(|n| n.get("kind"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no spec.names.kind".into()))?;
            let versions = spec
                .get("versions")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("no spec.versions".into()))?;
            for ver in versions {
                let name = ver
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("a version has no name".into()))?;
                if ver.get("served").and_then(Value::as_bool) != Some(true) {
                    continue;
                }
                let schema = ver
                    .get("schema")
                    .and_then(|s| s.get("openAPIV3Schema"))
                    .ok_or_else(|| {
                        bad(format!(
                            "served version {name} has no schema.openAPIV3Schema"
                        ))
                    })?;
                self.add(
                    Gvk::new(group, name, kind),
                    Candidate {
                        provider: provider.to_string(),
                        dir: dir.to_string(),
                        ctx: crd_ctx.clone(),
                        root: Root::Inline(schema.clone()),
                    },
                );
            }
        }
        Ok(())
    }

    fn load_json(&mut self, path: &Path, provider: &str, dir: &str) -> Result<(), SchemaError> {
        let bytes = std::fs::read(path).map_err(|e| SchemaError::Io {
            path: path.into(),
            source: e,
        })?;
        let mut v: Value = serde_json::from_slice(&bytes).map_err(|e| SchemaError::Json {
            path: path.into(),
            message: e.to_string(),
        })?;
        let Some(Value::Object(schemas)) = v
            .get_mut("components")
            .and_then(|c| c.get_mut("schemas"))
            .map(Value::take)
        else {
            return Ok(());
        };
        let mut gvks = Vec::new();
        for (name, s) in &schemas {
            let Some(list) = s
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array)
            else {
                continue;
            };
            for g in list {
                let part = |k: &str| g.get(k).and_then(Value::as_str);
                if let (Some(group), Some(version), Some(kind)) =
                    (part("group"), part("version"), part("kind"))
                {
                    gvks.push((Gvk::new(group, version, kind), name.clone()));
                }
            }
        }
        let has_meta = schemas.contains_key(OBJECT_META);
        let ctx = Arc::new(Ctx {
            origin: Origin::BuiltIn,
            refs: schemas,
        });
        if has_meta && self.object_meta.is_none() {
            self.object_meta = Some(ctx.clone());
        }
        for (gvk, name) in gvks {
            self.add(
                gvk,
                Candidate {
                    provider: provider.to_string(),
                    dir: dir.to_string(),
                    ctx: ctx.clone(),
                    root: Root::Named(name),
                },
            );
        }
        Ok(())
    }

    /// Every known GVK, sorted.
    pub fn known_gvks(&self) -> impl Iterator<Item = &Gvk> {
        self.index.keys()
    }

    pub fn is_known(&self, gvk: &Gvk) -> bool {
        self.index.contains_key(gvk)
    }

    /// The files defining `gvk`, the one validation uses first.
    pub fn providers(&self, gvk: &Gvk) -> Vec<&str> {
        self.index
            .get(gvk)
            .map(|c| c.iter().map(|c| c.provider.as_str()).collect())
            .unwrap_or_default()
    }

    /// Versions served for a group and kind (for "no schema" messages).
    pub fn versions_of(&self, group: &str, kind: &str) -> Vec<&str> {
        self.index
            .keys()
            .filter(|g| g.group == group && g.kind == kind)
            .map(|g| g.version.as_str())
            .collect()
    }

    pub(crate) fn candidate(&self, gvk: &Gvk) -> Option<&Candidate> {
        self.index.get(gvk).and_then(|c| c.first())
    }

    /// The ObjectMeta schema, with the OpenAPI document its `$ref`s resolve in.
    pub(crate) fn object_meta(&self) -> Option<(&Arc<Ctx>, &Value)> {
        let ctx = self.object_meta.as_ref()?;
        ctx.refs.get(OBJECT_META).map(|s| (ctx, s))
    }

    /// The number of CEL rules (`x-kubernetes-validations` entries) anywhere in the schema used
    /// for `gvk`: what an offline check of that kind leaves unevaluated at most.
    pub fn cel_rule_count(&self, gvk: &Gvk) -> usize {
        fn count(v: &Value) -> usize {
            match v {
                Value::Object(m) => m
                    .iter()
                    .map(|(k, x)| {
                        if k == "x-kubernetes-validations" {
                            x.as_array().map(Vec::len).unwrap_or(0)
                        } else {
                            count(x)
                        }
                    })
                    .sum(),
                Value::Array(a) => a.iter().map(count).sum(),
                _ => 0,
            }
        }
        self.candidate(gvk).map(|c| count(c.schema())).unwrap_or(0)
    }

    /// A compiled pattern, or why it cannot be compiled (cached).
    pub(crate) fn regex(&self, pattern: &str) -> Result<Arc<regex::Regex>, String> {
        let mut cache = match self.regexes.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        cache
            .entry(pattern.to_string())
            .or_insert_with(|| {
                regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 22)
                    .build()
                    .map(Arc::new)
                    .map_err(|e| {
                        e.to_string()
                            .lines()
                            .last()
                            .unwrap_or("does not compile")
                            .trim()
                            .to_string()
                    })
            })
            .clone()
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SchemaError> {
    let rd = std::fs::read_dir(dir).map_err(|e| SchemaError::Io {
        path: dir.into(),
        source: e,
    })?;
    for entry in rd {
        let entry = entry.map_err(|e| SchemaError::Io {
            path: dir.into(),
            source: e,
        })?;
        let p = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}
