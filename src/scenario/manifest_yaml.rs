//! Manifest text as YAML: the structural check a scenario's manifests get at load time, and the
//! split of rendered manifest text into documents for the kube layer and the schema validator.
//!
//! Apart from [`super::loader`] (suite and scenario files) so that validation, which checks
//! manifests, does not import the loader that calls it. The serde_yaml error helpers live here
//! because both use them.

use super::diag::Pos;
use super::template::Template;
use serde::Deserialize;

/// Where serde_yaml says an error is.
pub(crate) fn location(e: &serde_yaml::Error) -> Option<Pos> {
    e.location().map(|l| Pos {
        line: l.line(),
        col: l.column(),
    })
}

/// Drops serde_yaml's trailing " at line L column C": the diagnostic carries the position.
pub(crate) fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// A manifest must be YAML whose documents are Kubernetes objects (`apiVersion`, `kind`,
/// `metadata.name`). Checked with placeholders substituted, so `${x}` in a value is fine.
pub(crate) fn check_manifest_docs(t: &Template) -> Result<(), (Pos, String)> {
    let mut vars = super::template::Vars::default();
    for (n, _) in t.vars() {
        vars.set(n, "placeholder");
    }
    let text = t.render(&vars).map_err(|e| (Pos::START, e.to_string()))?;
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let v = match serde_yaml::Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                let pos = location(&e).unwrap_or(Pos::START);
                return Err((
                    pos,
                    format!(
                        "document {}: invalid YAML: {}",
                        i + 1,
                        strip_location(&e.to_string())
                    ),
                ));
            }
        };
        if v.is_null() {
            continue;
        }
        let ok = v.get("apiVersion").and_then(|x| x.as_str()).is_some()
            && v.get("kind").and_then(|x| x.as_str()).is_some()
            && v.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|x| x.as_str())
                .is_some();
        if !ok {
            return Err((
                Pos::START,
                format!(
                    "document {}: a manifest needs apiVersion, kind and metadata.name",
                    i + 1
                ),
            ));
        }
    }
    Ok(())
}

/// Splits rendered manifest text into its YAML documents as JSON values (nulls dropped), for
/// the kube layer and the schema validator.
pub fn manifest_documents(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v =
            serde_json::Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}
