//! Offline validation of Kubernetes manifests against the real schemas of the APIs they target.
//!
//! meshproof applies Istio, Linkerd, Gateway API, cert-manager and core Kubernetes objects. The API
//! server *prunes* a field it does not know (a typo'd `spec.htpp` silently disappears with the
//! default field validation), so a manifest that "applies fine" may not do what it says. This
//! module checks every manifest against the schemas the cluster will use — CRD
//! `openAPIV3Schema`s and Kubernetes' own OpenAPI v3 documents, loaded from a directory (the
//! project's `../shared/crds`) — without a cluster.
//!
//! # Why a hand-written validator and not the `jsonschema` crate
//! Kubernetes schemas are *structural* OpenAPI v3 schemas with extensions a generic JSON-Schema
//! validator does not understand: `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`,
//! `x-kubernetes-embedded-resource`, `nullable`, list types, and the rule that a field not named
//! in `properties` is an *error* unless the schema preserves unknown fields (JSON Schema allows it
//! by default). Built-in kinds add a second dialect: `$ref`s wrapped in `allOf`, and
//! `type: object` without properties meaning "free-form" (RawExtension) where in a CRD it means
//! "empty object". The rules Kubernetes enforces are few; a focused walker ([`validator`]) states
//! them plainly and gives field paths in the form Kubernetes prints them (`spec.http[0].route[1].weight`).
//!
//! # What is not checked, and said so
//! CEL rules (`x-kubernetes-validations`) cannot be evaluated without a CEL implementation; every
//! rule met on the way is listed in [`Report::not_evaluated`], never silently counted as passed.
//! The same holds for `pattern`s the `regex` crate cannot compile (Kubernetes uses Go's RE2,
//! which `regex` mostly but not entirely matches). Formats other than `byte`, `int32`, `int64`,
//! `ipv4` and `ipv6` are not checked.
//!
//! # Several providers for one kind
//! Linkerd's bundle and the Gateway API bundle both define `httproutes.gateway.networking.k8s.io`
//! (Linkerd ships an older, experimental-channel copy). All candidates are kept; a document is
//! validated against the *first* candidate serving its exact group/version/kind, where candidates
//! from a provider directory listed in [`PREFERRED_PROVIDERS`] for that group come first, then
//! load order (sorted paths). Not "accept if any accepts": a field only the older Linkerd copy
//! knows would pass yet be pruned by the cluster, which runs the Gateway API release the suite
//! installs (`components.gatewayApi`). Versions only Linkerd's copy serves (e.g. `v1alpha2`
//! TCPRoute) still validate, against Linkerd's copy.

mod gvk;
pub mod manifests;
mod set;
mod validator;

pub use gvk::Gvk;
pub use manifests::{validate_yaml_text, Finding, RenderedManifest};
pub use set::{SchemaError, SchemaSet, PREFERRED_PROVIDERS};

use crate::scenario::path::{FieldPath, Seg};

/// One way a document does not satisfy its schema. Ordered by path, then message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Violation {
    /// Field path as Kubernetes prints it, e.g. `spec.http[0].route[1].weight`; keys that
    /// contain `.` or brackets are quoted: `metadata.annotations["linkerd.io/inject"]`.
    pub path: String,
    pub message: String,
    /// The same path, structured, for locating the field in YAML text.
    pub at: FieldPath,
}

impl Violation {
    pub(crate) fn new(at: &FieldPath, message: impl Into<String>) -> Violation {
        Violation {
            path: render_path(at),
            message: message.into(),
            at: at.clone(),
        }
    }
}

impl PartialOrd for Violation {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Violation {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // `at` renders to `path`; it only breaks ties between keys that render alike.
        (&self.path, &self.message)
            .cmp(&(&other.path, &other.message))
            .then_with(|| format!("{:?}", self.at).cmp(&format!("{:?}", other.at)))
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Something the schema asks for that this validator did not check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NotEvaluated {
    pub path: String,
    pub what: Unchecked,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Unchecked {
    /// An `x-kubernetes-validations` CEL rule, with its message if the schema gives one.
    CelRule {
        rule: String,
        message: Option<String>,
    },
    /// A `pattern` the regex crate cannot compile.
    Pattern { pattern: String, reason: String },
    /// The schema directory had no OpenAPI document with ObjectMeta, so `metadata` was only
    /// checked to be an object.
    NoObjectMetaSchema,
}

impl std::fmt::Display for NotEvaluated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.what {
            Unchecked::CelRule { rule, .. } => {
                write!(
                    f,
                    "{}: CEL rule not evaluated: {}",
                    self.path,
                    rule.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            }
            Unchecked::Pattern { pattern, reason } => {
                write!(
                    f,
                    "{}: pattern not checked ({reason}): {pattern}",
                    self.path
                )
            }
            Unchecked::NoObjectMetaSchema => write!(
                f,
                "{}: not checked against ObjectMeta (no OpenAPI schema for it)",
                self.path
            ),
        }
    }
}

/// The result of validating one document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// CEL rules and patterns met on the fields present that were not evaluated (deduplicated).
    pub not_evaluated: Vec<NotEvaluated>,
    /// The schema file the document was validated against (relative to the schema directory).
    pub provider: Option<String>,
}

impl Report {
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Renders a field path the way Kubernetes error messages do.
pub fn render_path(p: &FieldPath) -> String {
    let mut out = String::new();
    for seg in &p.0 {
        match seg {
            Seg::Key(k) => {
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$');
                if plain {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                } else {
                    out.push_str(&format!("[{}]", serde_json::Value::String(k.clone())));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        out.push_str("(document)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_kubernetes() {
        let p = FieldPath::root()
            .key("spec")
            .key("http")
            .index(0)
            .key("route")
            .index(1)
            .key("weight");
        assert_eq!(render_path(&p), "spec.http[0].route[1].weight");
        let p = FieldPath::root()
            .key("metadata")
            .key("annotations")
            .key("linkerd.io/inject");
        assert_eq!(
            render_path(&p),
            "metadata.annotations[\"linkerd.io/inject\"]"
        );
        assert_eq!(render_path(&FieldPath::root()), "(document)");
    }
}
