//! What is running: OpenFaaS functions and Secrets, recorded so that two records — before the
//! cluster was destroyed and after it was rebuilt — can be compared.
//!
//! Secrets are recorded as a keyed digest of each data value (HMAC-SHA-256 under a random key
//! that lives only in this process), never the value: a record can be put in a report. A plain
//! hash would not do — a weak password's SHA-256 is one dictionary away — while a keyed digest
//! only says whether two values *of this run* are equal. Reports show 12 hex digits of it.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// `namespace/name` of a Secret (serialized as that string, so it can key a JSON map).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

impl SecretRef {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> SecretRef {
        SecretRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Keyed digest of one secret value, comparable within this process only. `Display` shows a
/// 12-digit prefix.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValueDigest([u8; 32]);

/// The process's digest key: random, never written anywhere.
fn key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(rand::random)
}

impl ValueDigest {
    pub fn of(bytes: &[u8]) -> ValueDigest {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(key()).expect("HMAC takes a key of any length");
        mac.update(bytes);
        ValueDigest(mac.finalize().into_bytes().into())
    }

    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl fmt::Display for ValueDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hmac-sha256:{}…", self.short())
    }
}

impl fmt::Debug for ValueDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for ValueDigest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// One function as deployed: what must come back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionRecord {
    pub image: String,
    /// Environment of the function container. `valueFrom` entries are recorded by reference
    /// (`valueFrom:secretKeyRef:NAME/KEY`), never resolved.
    pub env: BTreeMap<String, String>,
    pub replicas: i64,
}

/// Functions by name and Secrets by reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub functions: BTreeMap<String, FunctionRecord>,
    pub secrets: BTreeMap<SecretRef, BTreeMap<String, ValueDigest>>,
}

/// An object the inventory could not read (its shape, never its data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("{kind} without metadata.name")]
    NoName { kind: &'static str },
    #[error("function {name}: Deployment has no container")]
    NoContainer { name: String },
    #[error("Secret {secret} key {key:?}: data is not base64")]
    NotBase64 { secret: SecretRef, key: String },
    #[error("Secret {secret} key {key:?}: data is not a string")]
    NotAString { secret: SecretRef, key: String },
}

fn str_at<'a>(v: &'a serde_json::Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(|x| x.as_str())
}

impl Inventory {
    /// Reads functions from Deployments (OpenFaaS labels function Deployments
    /// `faas_function: <name>`; the function name is that label, falling back to the
    /// Deployment's name). The function container is the one named like the function, else the
    /// first (a mesh sidecar injected at admission does not appear in the Deployment spec).
    pub fn add_function_deployments(
        &mut self,
        deployments: &[serde_json::Value],
    ) -> Result<(), InventoryError> {
        for d in deployments {
            let name = str_at(d, "/metadata/labels/faas_function")
                .or_else(|| str_at(d, "/metadata/name"))
                .ok_or(InventoryError::NoName { kind: "Deployment" })?
                .to_string();
            let containers = d
                .pointer("/spec/template/spec/containers")
                .and_then(|c| c.as_array());
            let container = containers
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(&name))
                        .or(cs.first())
                })
                .ok_or_else(|| InventoryError::NoContainer { name: name.clone() })?;
            let image = container
                .get("image")
                .and_then(|i| i.as_str())
                .unwrap_or("")
                .to_string();
            let mut env = BTreeMap::new();
            for e in container
                .get("env")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
            {
                let Some(k) = e.get("name").and_then(|n| n.as_str()) else {
                    continue;
                };
                let v = if let Some(v) = e.get("value").and_then(|v| v.as_str()) {
                    v.to_string()
                } else if let Some(r) = e.pointer("/valueFrom/secretKeyRef") {
                    format!(
                        "valueFrom:secretKeyRef:{}/{}",
                        r.get("name").and_then(|n| n.as_str()).unwrap_or(""),
                        r.get("key").and_then(|n| n.as_str()).unwrap_or("")
                    )
                } else if let Some(r) = e.pointer("/valueFrom/configMapKeyRef") {
                    format!(
                        "valueFrom:configMapKeyRef:{}/{}",
                        r.get("name").and_then(|n| n.as_str()).unwrap_or(""),
                        r.get("key").and_then(|n| n.as_str()).unwrap_or("")
                    )
                } else {
                    "valueFrom:other".to_string()
                };
                env.insert(k.to_string(), v);
            }
            // Kubernetes defaults an absent `replicas` to 1.
            let replicas = d
                .pointer("/spec/replicas")
                .and_then(|r| r.as_i64())
                .unwrap_or(1);
            self.functions.insert(
                name,
                FunctionRecord {
                    image,
                    env,
                    replicas,
                },
            );
        }
        Ok(())
    }

    /// Records a Secret's data as digests of the decoded values (`data` is base64;
    /// `stringData` never comes back from the API server).
    pub fn add_secret(&mut self, secret: &serde_json::Value) -> Result<(), InventoryError> {
        let sref = SecretRef::new(
            str_at(secret, "/metadata/namespace").unwrap_or(""),
            str_at(secret, "/metadata/name").ok_or(InventoryError::NoName { kind: "Secret" })?,
        );
        let mut digests = BTreeMap::new();
        if let Some(data) = secret.get("data").and_then(|d| d.as_object()) {
            for (k, v) in data {
                let s = v.as_str().ok_or_else(|| InventoryError::NotAString {
                    secret: sref.clone(),
                    key: k.clone(),
                })?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| InventoryError::NotBase64 {
                        secret: sref.clone(),
                        key: k.clone(),
                    })?;
                digests.insert(k.clone(), ValueDigest::of(&bytes));
            }
        }
        self.secrets.insert(sref, digests);
        Ok(())
    }

    /// What changed from `before` to `after`. Pure.
    pub fn diff(before: &Inventory, after: &Inventory) -> InventoryDiff {
        let mut changes = Vec::new();
        for (name, b) in &before.functions {
            match after.functions.get(name) {
                None => changes.push(Change::FunctionRemoved { name: name.clone() }),
                Some(a) => {
                    if a.image != b.image {
                        changes.push(Change::FunctionChanged {
                            name: name.clone(),
                            field: FunctionField::Image,
                            before: Some(b.image.clone()),
                            after: Some(a.image.clone()),
                        });
                    }
                    if a.replicas != b.replicas {
                        changes.push(Change::FunctionChanged {
                            name: name.clone(),
                            field: FunctionField::Replicas,
                            before: Some(b.replicas.to_string()),
                            after: Some(a.replicas.to_string()),
                        });
                    }
                    let keys: BTreeSet<&String> = b.env.keys().chain(a.env.keys()).collect();
                    for k in keys {
                        let (bv, av) = (b.env.get(k), a.env.get(k));
                        if bv != av {
                            changes.push(Change::FunctionChanged {
                                name: name.clone(),
                                field: FunctionField::Env(k.clone()),
                                before: bv.cloned(),
                                after: av.cloned(),
                            });
                        }
                    }
                }
            }
        }
        for name in after.functions.keys() {
            if !before.functions.contains_key(name) {
                changes.push(Change::FunctionAdded { name: name.clone() });
            }
        }
        for (sref, b) in &before.secrets {
            match after.secrets.get(sref) {
                None => changes.push(Change::SecretMissing {
                    secret: sref.clone(),
                }),
                Some(a) => {
                    let keys: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
                    for k in keys {
                        match (b.get(k), a.get(k)) {
                            (Some(_), None) => changes.push(Change::SecretKeyMissing {
                                secret: sref.clone(),
                                key: k.clone(),
                            }),
                            (None, Some(_)) => changes.push(Change::SecretKeyAdded {
                                secret: sref.clone(),
                                key: k.clone(),
                            }),
                            (Some(bd), Some(ad)) if bd != ad => {
                                changes.push(Change::SecretDigestChanged {
                                    secret: sref.clone(),
                                    key: k.clone(),
                                    before: bd.clone(),
                                    after: ad.clone(),
                                })
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        for sref in after.secrets.keys() {
            if !before.secrets.contains_key(sref) {
                changes.push(Change::SecretAdded {
                    secret: sref.clone(),
                });
            }
        }
        InventoryDiff { changes }
    }
}

/// Which field of a function changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionField {
    Image,
    Replicas,
    Env(String),
}

impl fmt::Display for FunctionField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FunctionField::Image => f.write_str("image"),
            FunctionField::Replicas => f.write_str("replicas"),
            FunctionField::Env(k) => write!(f, "env {k}"),
        }
    }
}

/// One difference between two inventories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    FunctionAdded {
        name: String,
    },
    FunctionRemoved {
        name: String,
    },
    FunctionChanged {
        name: String,
        field: FunctionField,
        before: Option<String>,
        after: Option<String>,
    },
    SecretAdded {
        secret: SecretRef,
    },
    SecretMissing {
        secret: SecretRef,
    },
    SecretKeyAdded {
        secret: SecretRef,
        key: String,
    },
    SecretKeyMissing {
        secret: SecretRef,
        key: String,
    },
    SecretDigestChanged {
        secret: SecretRef,
        key: String,
        before: ValueDigest,
        after: ValueDigest,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn opt(v: &Option<String>) -> String {
            v.as_ref()
                .map(|s| format!("{s:?}"))
                .unwrap_or_else(|| "(absent)".into())
        }
        match self {
            Change::FunctionAdded { name } => write!(f, "function {name} appeared"),
            Change::FunctionRemoved { name } => write!(f, "function {name} is missing"),
            Change::FunctionChanged {
                name,
                field,
                before,
                after,
            } => {
                write!(
                    f,
                    "function {name}: {field} changed from {} to {}",
                    opt(before),
                    opt(after)
                )
            }
            Change::SecretAdded { secret } => write!(f, "secret {secret} appeared"),
            Change::SecretMissing { secret } => write!(f, "secret {secret} is missing"),
            Change::SecretKeyAdded { secret, key } => {
                write!(f, "secret {secret}: key {key:?} appeared")
            }
            Change::SecretKeyMissing { secret, key } => {
                write!(f, "secret {secret}: key {key:?} is missing")
            }
            Change::SecretDigestChanged {
                secret,
                key,
                before,
                after,
            } => {
                write!(
                    f,
                    "secret {secret}: value of key {key:?} changed ({before} → {after})"
                )
            }
        }
    }
}

/// Every difference, in a stable order (functions, then secrets, each sorted by name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InventoryDiff {
    pub changes: Vec<Change>,
}

impl InventoryDiff {
    pub fn is_identical(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for InventoryDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return f.write_str("identical");
        }
        for (i, c) in self.changes.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}
