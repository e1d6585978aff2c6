//! Sealing-key backup: 0600 from creation, cluster metadata stripped, key material round-trips,
//! the file disappears with its guard, and no key material reaches a log or error string.

use base64::Engine;
use meshproof::private_fs::temp_private_dir;
use meshproof::restore::keys::{strip, KeyBackup, KeyError, KEY_LABEL};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

struct Key {
    cert_pem: String,
    key_pem: String,
    obj: serde_json::Value,
}

/// A key Secret as the API server returns it, with real PEM key material from rcgen.
fn key_secret(name: &str) -> Key {
    let ck = rcgen::generate_simple_self_signed(vec!["sealed-secrets".into()]).unwrap();
    let cert_pem = ck.cert.pem();
    let key_pem = ck.key_pair.serialize_pem();
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let last_applied = json!({ "data": { "tls.key": b(&key_pem) } }).to_string();
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": name,
            "namespace": "kube-system",
            "labels": { KEY_LABEL: "active" },
            "annotations": { "kubectl.kubernetes.io/last-applied-configuration": last_applied },
            "uid": "8c1f0d52-8d34-4c4e-9d6f-0f2f6e3c1a11",
            "resourceVersion": "1234",
            "creationTimestamp": "2026-11-21T20:00:00Z",
            "generation": 1,
            "selfLink": "/api/v1/namespaces/kube-system/secrets/x",
            "managedFields": [{ "manager": "controller", "operation": "Update" }],
            "ownerReferences": [{ "apiVersion": "v1", "kind": "Namespace", "name": "kube-system", "uid": "u" }],
        },
        "data": { "tls.crt": b(&cert_pem), "tls.key": b(&key_pem) },
    });
    Key {
        cert_pem,
        key_pem,
        obj,
    }
}

fn key_body_lines(pem: &str) -> Vec<&str> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .collect()
}

#[test]
fn metadata_is_stripped_to_what_a_restore_needs() {
    let k = key_secret("sealed-secrets-keyabcde");
    let s = strip(0, &k.obj).unwrap();
    let meta = s["metadata"].as_object().unwrap();
    let mut fields: Vec<&String> = meta.keys().collect();
    fields.sort();
    assert_eq!(fields, ["labels", "name", "namespace"]);
    assert_eq!(s["metadata"]["labels"][KEY_LABEL], "active");
    assert_eq!(s["type"], "kubernetes.io/tls");
    assert_eq!(s["data"], k.obj["data"]);
    let text = s.to_string();
    for gone in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
        "ownerReferences",
        "selfLink",
        "generation",
        "annotations",
        "last-applied",
    ] {
        assert!(!text.contains(gone), "{gone} survived: {text}");
    }
}

#[test]
fn backup_is_0600_round_trips_and_is_removed_on_drop() {
    let dir = temp_private_dir("keys-test").unwrap();
    let (k1, k2) = (
        key_secret("sealed-secrets-key1"),
        key_secret("sealed-secrets-key2"),
    );
    let backup = KeyBackup::write(dir.path(), &[k1.obj.clone(), k2.obj.clone()]).unwrap();
    let path = backup.path().to_path_buf();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        backup.names(),
        ["sealed-secrets-key1", "sealed-secrets-key2"]
    );
    assert_eq!(
        backup.certificates(),
        [k1.cert_pem.clone(), k2.cert_pem.clone()]
    );

    // The file is a YAML List of the stripped Secrets.
    let list: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    // The documents to apply carry the very same key material.
    let docs = backup.restore_documents().unwrap();
    let parsed: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&docs)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(parsed.len(), 2);
    for (doc, k) in parsed.iter().zip([&k1, &k2]) {
        let dec = |f: &str| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(doc["data"][f].as_str().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(dec("tls.key"), k.key_pem);
        assert_eq!(dec("tls.crt"), k.cert_pem);
        assert!(doc["metadata"].get("uid").is_none());
    }

    // Neither Debug nor the redactor's output shows key material.
    let debug = format!("{backup:?}");
    let redacted = backup.redactor().apply(&format!(
        "apply failed: {} {}",
        k1.obj["data"]["tls.key"].as_str().unwrap(),
        key_body_lines(&k1.key_pem).join("\n")
    ));
    for text in [&debug, &redacted] {
        assert!(
            !text.contains(k1.obj["data"]["tls.key"].as_str().unwrap()),
            "{text}"
        );
        for line in key_body_lines(&k1.key_pem) {
            assert!(!text.contains(line), "key line in {text}");
        }
    }
    drop(backup);
    assert!(
        !path.exists(),
        "backup must be deleted when the guard drops"
    );
}

#[test]
fn errors_name_the_secret_but_never_the_key() {
    let dir = temp_private_dir("keys-test").unwrap();
    assert!(matches!(
        KeyBackup::write(dir.path(), &[]),
        Err(KeyError::NoKeys)
    ));
    let k = key_secret("sealed-secrets-key1");
    let mut no_name = k.obj.clone();
    no_name["metadata"].as_object_mut().unwrap().remove("name");
    let e = KeyBackup::write(dir.path(), &[no_name]).unwrap_err();
    let mut no_data = k.obj.clone();
    no_data["data"] = json!({});
    let e2 = KeyBackup::write(dir.path(), &[no_data]).unwrap_err();
    for text in [format!("{e} {e:?}"), format!("{e2} {e2:?}")] {
        assert!(
            !text.contains(k.obj["data"]["tls.key"].as_str().unwrap()),
            "{text}"
        );
        for line in key_body_lines(&k.key_pem) {
            assert!(!text.contains(line), "{text}");
        }
    }
    assert!(e2.to_string().contains("sealed-secrets-key1"));
    // A second backup into the same dir must not silently reuse (or truncate) an existing file.
    let _first = KeyBackup::write(dir.path(), std::slice::from_ref(&k.obj)).unwrap();
    let e3 = KeyBackup::write(dir.path(), std::slice::from_ref(&k.obj)).unwrap_err();
    assert!(matches!(e3, KeyError::Write { .. }));
}
