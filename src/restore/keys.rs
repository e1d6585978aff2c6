//! Backing up and restoring the sealed-secrets controller's private keys.
//!
//! Whoever holds these keys can read every SealedSecret ever sealed for the cluster, so the
//! backup is as small and short-lived as it can be: only the fields a restore needs, in a file
//! created 0600 inside the run's private temp dir, deleted when the [`KeyBackup`] guard drops.
//! Nothing of the key reaches a log or an error: `Debug` shows names only, and errors from the
//! cluster while applying the keys are passed through a [`Redactor`] holding the key material.

use crate::private_fs::create_private;
use crate::process::Redactor;
use base64::Engine;
use std::fmt;
use std::path::{Path, PathBuf};

/// The label every sealing key Secret carries (`=active` on the one used for new seals).
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no sealing key Secret found (label {KEY_LABEL}) — nothing to back up")]
    NoKeys,
    #[error("sealing key Secret #{index} has no metadata.name")]
    NoName { index: usize },
    #[error("sealing key Secret {name} has no data")]
    NoData { name: String },
    #[error("could not write the key backup {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not read the key backup {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key backup {path} is not a YAML List of Secrets")]
    Malformed { path: PathBuf },
}

/// Keeps only what recreates the key Secret: apiVersion, kind, name, namespace, labels, type,
/// data. Dropped: uid, resourceVersion, creationTimestamp, managedFields, ownerReferences,
/// selfLink, generation, and *all* annotations (`kubectl.kubernetes.io/last-applied-configuration`
/// would carry a second copy of the key).
pub fn strip(index: usize, secret: &serde_json::Value) -> Result<serde_json::Value, KeyError> {
    let name = secret
        .pointer("/metadata/name")
        .and_then(|n| n.as_str())
        .ok_or(KeyError::NoName { index })?
        .to_string();
    let data = secret
        .get("data")
        .and_then(|d| d.as_object())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| KeyError::NoData { name: name.clone() })?;
    let mut meta = serde_json::Map::new();
    meta.insert("name".into(), name.into());
    if let Some(ns) = secret.pointer("/metadata/namespace") {
        meta.insert("namespace".into(), ns.clone());
    }
    if let Some(l) = secret.pointer("/metadata/labels") {
        meta.insert("labels".into(), l.clone());
    }
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), "v1".into());
    out.insert("kind".into(), "Secret".into());
    out.insert("metadata".into(), meta.into());
    out.insert(
        "type".into(),
        secret
            .get("type")
            .cloned()
            .unwrap_or_else(|| "kubernetes.io/tls".into()),
    );
    out.insert("data".into(), serde_json::Value::Object(data.clone()));
    Ok(out.into())
}

/// The backed-up keys: a 0600 file that is removed when this guard drops.
pub struct KeyBackup {
    path: PathBuf,
    names: Vec<String>,
    /// The keys' public certificates (`tls.crt`, PEM): not secret.
    certificates: Vec<String>,
    redactor: Redactor,
}

impl fmt::Debug for KeyBackup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyBackup")
            .field("path", &self.path)
            .field("names", &self.names)
            .finish()
    }
}

impl KeyBackup {
    /// Strips `secrets` (the controller namespace's Secrets labelled [`KEY_LABEL`]) and writes
    /// them as a YAML `List` to `dir/sealing-keys.yaml`, mode 0600 from creation.
    pub fn write(dir: &Path, secrets: &[serde_json::Value]) -> Result<KeyBackup, KeyError> {
        if secrets.is_empty() {
            return Err(KeyError::NoKeys);
        }
        let items = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| strip(i, s))
            .collect::<Result<Vec<_>, _>>()?;
        let names = items
            .iter()
            .filter_map(|i| {
                i.pointer("/metadata/name")
                    .and_then(|n| n.as_str())
                    .map(String::from)
            })
            .collect();
        let redactor = redactor_for(&items);
        let certificates = items
            .iter()
            .filter_map(|i| i.pointer("/data/tls.crt").and_then(|c| c.as_str()))
            .filter_map(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
            .map(|c| String::from_utf8_lossy(&c).into_owned())
            .collect();
        let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items });
        // serde_yaml cannot fail on a JSON value; an error would only be an empty backup.
        let yaml =
            serde_yaml::to_string(&list).map_err(|_| KeyError::Malformed { path: dir.into() })?;
        let path = dir.join("sealing-keys.yaml");
        create_private(&path, yaml.as_bytes()).map_err(|source| KeyError::Write {
            path: path.clone(),
            source,
        })?;
        // A signal exit skips destructors; the handler deletes it then.
        crate::private_fs::delete_on_signal_exit(&path);
        Ok(KeyBackup {
            path,
            names,
            certificates,
            redactor,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the backed-up key Secrets (safe to report).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The public certificates of the backed-up keys (PEM), to check that the backup holds the
    /// key the secrets were sealed for.
    pub fn certificates(&self) -> &[String] {
        &self.certificates
    }

    /// Blanks the key material out of any text (for errors from applying the keys).
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The key Secrets as a multi-document YAML string, ready for server-side apply.
    pub fn restore_documents(&self) -> Result<String, KeyError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| KeyError::Read {
            path: self.path.clone(),
            source,
        })?;
        let list: serde_json::Value =
            serde_yaml::from_str(&text).map_err(|_| KeyError::Malformed {
                path: self.path.clone(),
            })?;
        let items = list
            .get("items")
            .and_then(|i| i.as_array())
            .filter(|i| !i.is_empty())
            .ok_or_else(|| KeyError::Malformed {
                path: self.path.clone(),
            })?;
        let mut out = String::new();
        for item in items {
            out.push_str("---\n");
            out.push_str(
                &serde_yaml::to_string(item).map_err(|_| KeyError::Malformed {
                    path: self.path.clone(),
                })?,
            );
        }
        Ok(out)
    }
}

impl Drop for KeyBackup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        crate::private_fs::forget_on_signal_exit(&self.path);
    }
}

/// Every data value, base64 and decoded line by line, as redaction patterns.
fn redactor_for(items: &[serde_json::Value]) -> Redactor {
    let mut r = Redactor::default();
    for item in items {
        for v in item
            .get("data")
            .and_then(|d| d.as_object())
            .into_iter()
            .flat_map(|d| d.values())
        {
            let Some(b64) = v.as_str() else { continue };
            r.add(b64);
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    // PEM headers (`-----BEGIN …`) are not secret; body lines are.
                    if line.len() >= 16 && !line.starts_with("-----") {
                        r.add(line.trim());
                    }
                }
            }
        }
    }
    r
}
