//! The report's SHA-256: detects a `report.json` edited after the run.
//!
//! The hash covers the *canonical* body: the JSON document without its `sha256` field,
//! serialized compactly with object keys sorted (recursively). Canonicalizing the parsed value
//! rather than hashing bytes means re-indenting the file does not break it, while changing any
//! value, key or array element does. It is tamper-*evidence* against edits, not a signature:
//! whoever can edit the file can recompute the hash.

use super::model::Report;
use super::ReportError;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The key that holds the hash.
pub const FIELD: &str = "sha256";

/// Canonical JSON: compact, object keys sorted at every level.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// SHA-256 (hex) of the canonical form of `doc` without its `sha256` field.
pub fn digest(doc: &Value) -> String {
    let mut body = doc.clone();
    if let Value::Object(map) = &mut body {
        map.remove(FIELD);
    }
    hex::encode(Sha256::digest(canonical(&body).as_bytes()))
}

/// Serializes a report with its hash filled in, as `report.json` stores it (pretty-printed).
pub fn seal(report: &Report) -> Result<String, ReportError> {
    let mut doc = serde_json::to_value(report).map_err(ReportError::Serialize)?;
    // Hash what a reader will parse: round-trip once so the hashed value is the parsed one.
    let text = serde_json::to_string(&doc).map_err(ReportError::Serialize)?;
    doc = serde_json::from_str(&text).map_err(ReportError::Serialize)?;
    let sum = digest(&doc);
    if let Value::Object(map) = &mut doc {
        map.insert(FIELD.into(), Value::String(sum));
    }
    let mut pretty = serde_json::to_string_pretty(&doc).map_err(ReportError::Serialize)?;
    pretty.push('\n');
    Ok(pretty)
}

/// Whether a report's stored hash matches its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    Intact {
        sha256: String,
    },
    /// The body was changed after the hash was computed.
    Mismatch {
        stored: String,
        computed: String,
    },
    /// The report carries no hash at all.
    Unsealed {
        computed: String,
    },
}

impl Integrity {
    pub fn is_intact(&self) -> bool {
        matches!(self, Integrity::Intact { .. })
    }
}

/// Reads a report and checks its hash. A mismatching report is still returned (to be shown,
/// with the warning); a file that is not a report at all is an error.
pub fn load(path: &Path) -> Result<(Report, Integrity), ReportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let computed = digest(&doc);
    let integrity = match doc.get(FIELD) {
        Some(Value::String(stored)) if *stored == computed => {
            Integrity::Intact { sha256: computed }
        }
        Some(Value::String(stored)) => Integrity::Mismatch {
            stored: stored.clone(),
            computed,
        },
        _ => Integrity::Unsealed { computed },
    };
    let report: Report = serde_json::from_value(doc).map_err(|e| ReportError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok((report, integrity))
}

/// Verifies a `report.json`: `Ok` only when its stored hash matches its content.
pub fn verify(path: &Path) -> Result<Report, ReportError> {
    match load(path)? {
        (report, Integrity::Intact { .. }) => Ok(report),
        (_, Integrity::Mismatch { stored, computed }) => Err(ReportError::Tampered {
            path: path.to_path_buf(),
            stored,
            computed,
        }),
        (_, Integrity::Unsealed { .. }) => Err(ReportError::Unsealed {
            path: path.to_path_buf(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_at_every_level() {
        let a = json!({"b": 1, "a": {"z": [3, {"y": 1, "x": 2}], "c": "é\n"}});
        assert_eq!(
            canonical(&a),
            r#"{"a":{"c":"é\n","z":[3,{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn digest_ignores_the_hash_field_and_key_order_but_not_values() {
        let a = json!({"x": 1, "y": [1, 2]});
        let b = json!({"y": [1, 2], "x": 1, "sha256": "whatever"});
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&json!({"x": 1, "y": [2, 1]})));
        assert_ne!(digest(&a), digest(&json!({"x": 2, "y": [1, 2]})));
    }

    #[test]
    fn floats_survive_the_round_trip() {
        // Evidence carries statistics; a float that reads back differently would break the hash.
        let v = json!({"p": 0.1f64 + 0.2f64, "q": 1e-300, "r": 2.0f64 / 3.0f64});
        let back: Value = serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
        assert_eq!(digest(&v), digest(&back));
    }
}
