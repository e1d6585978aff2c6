//! `Inventory::diff`, a pure function: every kind of difference, and no secret value in any
//! rendering of it (Display, Debug, JSON), checked with real values.

use base64::Engine;
use meshproof::check::restore::inventory::{Change, FunctionField, Inventory, SecretRef};
use serde_json::json;

const SECRET_A: &str = "correct-horse-battery-staple-AAAA";
const SECRET_B: &str = "correct-horse-battery-staple-BBBB";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn deployment(
    name: &str,
    image: &str,
    env: &[(&str, &str)],
    replicas: Option<i64>,
) -> serde_json::Value {
    let env: Vec<_> = env
        .iter()
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": name, "namespace": "openfaas-fn", "labels": { "faas_function": name } },
        "spec": { "template": { "spec": { "containers": [ { "name": name, "image": image, "env": env } ] } } }
    });
    if let Some(r) = replicas {
        d["spec"]["replicas"] = json!(r);
    }
    d
}

fn secret(name: &str, data: &[(&str, &str)]) -> serde_json::Value {
    let data: serde_json::Map<_, _> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(b64(v))))
        .collect();
    json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name, "namespace": "openfaas-fn", "uid": "x" }, "data": data })
}

fn inv(deps: &[serde_json::Value], secrets: &[serde_json::Value]) -> Inventory {
    let mut i = Inventory::default();
    i.add_function_deployments(deps).unwrap();
    for s in secrets {
        i.add_secret(s).unwrap();
    }
    i
}

fn base() -> Inventory {
    inv(
        &[
            deployment(
                "env",
                "img:1",
                &[("fprocess", "env"), ("MODE", "a")],
                Some(2),
            ),
            deployment("figlet", "fig:1", &[], None),
        ],
        &[secret(
            "meshproof-restore",
            &[("token", SECRET_A), ("extra", SECRET_B)],
        )],
    )
}

fn assert_no_secret(text: &str) {
    for v in [SECRET_A, SECRET_B] {
        assert!(!text.contains(v), "secret value in {text}");
        assert!(!text.contains(&b64(v)), "base64 secret value in {text}");
        assert!(
            !text.contains(&hex::encode(v)),
            "hex secret value in {text}"
        );
    }
}

fn renderings(d: &meshproof::restore::InventoryDiff) -> String {
    format!("{d}\n{d:?}\n{}", serde_json::to_string(d).unwrap())
}

#[test]
fn identical_inventories_have_no_changes() {
    let d = Inventory::diff(&base(), &base());
    assert!(d.is_identical());
    assert_eq!(d.to_string(), "identical");
}

#[test]
fn absent_replicas_default_to_one_and_sidecars_are_ignored() {
    let i = base();
    assert_eq!(i.functions["figlet"].replicas, 1);
    let mut d = deployment(
        "env",
        "img:1",
        &[("fprocess", "env"), ("MODE", "a")],
        Some(2),
    );
    // A sidecar listed first must not be taken for the function container.
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap();
    containers.insert(0, json!({ "name": "istio-proxy", "image": "proxy:1" }));
    let mut j = Inventory::default();
    j.add_function_deployments(&[d]).unwrap();
    assert_eq!(j.functions["env"].image, "img:1");
}

#[test]
fn added_and_removed_functions() {
    let after = inv(
        &[
            deployment(
                "env",
                "img:1",
                &[("fprocess", "env"), ("MODE", "a")],
                Some(2),
            ),
            deployment("new", "n:1", &[], None),
        ],
        &[secret(
            "meshproof-restore",
            &[("token", SECRET_A), ("extra", SECRET_B)],
        )],
    );
    let d = Inventory::diff(&base(), &after);
    assert_eq!(
        d.changes,
        vec![
            Change::FunctionRemoved {
                name: "figlet".into()
            },
            Change::FunctionAdded { name: "new".into() }
        ]
    );
    let text = d.to_string();
    assert!(
        text.contains("function figlet is missing") && text.contains("function new appeared"),
        "{text}"
    );
}

#[test]
fn changed_function_fields_are_named() {
    let after = inv(
        &[
            deployment(
                "env",
                "img:2",
                &[("fprocess", "env"), ("MODE", "b"), ("NEW", "x")],
                Some(3),
            ),
            deployment("figlet", "fig:1", &[], None),
        ],
        &[secret(
            "meshproof-restore",
            &[("token", SECRET_A), ("extra", SECRET_B)],
        )],
    );
    let d = Inventory::diff(&base(), &after);
    let fields: Vec<&FunctionField> = d
        .changes
        .iter()
        .map(|c| match c {
            Change::FunctionChanged { name, field, .. } if name == "env" => field,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            &FunctionField::Image,
            &FunctionField::Replicas,
            &FunctionField::Env("MODE".into()),
            &FunctionField::Env("NEW".into())
        ]
    );
    let text = d.to_string();
    assert!(
        text.contains(r#"function env: image changed from "img:1" to "img:2""#),
        "{text}"
    );
    assert!(
        text.contains(r#"env NEW changed from (absent) to "x""#),
        "{text}"
    );
}

#[test]
fn env_from_secret_is_recorded_by_reference_only() {
    let mut d = deployment("env", "img:1", &[], None);
    d["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{ "name": "TOKEN", "valueFrom": { "secretKeyRef": { "name": "meshproof-restore", "key": "token" } } }]);
    let i = inv(&[d], &[]);
    assert_eq!(
        i.functions["env"].env["TOKEN"],
        "valueFrom:secretKeyRef:meshproof-restore/token"
    );
}

#[test]
fn changed_secret_digest_is_reported_without_the_values() {
    let after = inv(
        &[
            deployment(
                "env",
                "img:1",
                &[("fprocess", "env"), ("MODE", "a")],
                Some(2),
            ),
            deployment("figlet", "fig:1", &[], None),
        ],
        &[secret(
            "meshproof-restore",
            &[("token", SECRET_B), ("extra", SECRET_B)],
        )],
    );
    let d = Inventory::diff(&base(), &after);
    assert_eq!(d.changes.len(), 1);
    assert!(matches!(&d.changes[0], Change::SecretDigestChanged { key, .. } if key == "token"));
    let text = renderings(&d);
    assert!(
        text.contains(
            "secret openfaas-fn/meshproof-restore: value of key \"token\" changed (hmac-sha256:"
        ),
        "{text}"
    );
    assert_no_secret(&text);
    // A 12-digit prefix of the keyed digest is shown; the plain SHA-256 of the value (which a
    // dictionary could match for a weak secret) is not there at all.
    let keyed = meshproof::check::restore::inventory::ValueDigest::of(SECRET_A.as_bytes()).short();
    assert_eq!(keyed.len(), 12);
    assert!(text.contains(&keyed), "{text}");
    let plain = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(SECRET_A.as_bytes()));
    assert!(!text.contains(&plain[..8]), "{text}");
}

#[test]
fn missing_secret_and_missing_key() {
    let no_secret = inv(
        &[
            deployment(
                "env",
                "img:1",
                &[("fprocess", "env"), ("MODE", "a")],
                Some(2),
            ),
            deployment("figlet", "fig:1", &[], None),
        ],
        &[],
    );
    let d = Inventory::diff(&base(), &no_secret);
    assert_eq!(
        d.changes,
        vec![Change::SecretMissing {
            secret: SecretRef::new("openfaas-fn", "meshproof-restore")
        }]
    );
    let one_key = inv(
        &[
            deployment(
                "env",
                "img:1",
                &[("fprocess", "env"), ("MODE", "a")],
                Some(2),
            ),
            deployment("figlet", "fig:1", &[], None),
        ],
        &[secret("meshproof-restore", &[("token", SECRET_A)])],
    );
    let d = Inventory::diff(&base(), &one_key);
    assert_eq!(
        d.changes,
        vec![Change::SecretKeyMissing {
            secret: SecretRef::new("openfaas-fn", "meshproof-restore"),
            key: "extra".into()
        }]
    );
    let reverse = Inventory::diff(&one_key, &base());
    assert!(matches!(&reverse.changes[0], Change::SecretKeyAdded { key, .. } if key == "extra"));
    let appeared = Inventory::diff(&no_secret, &base());
    assert!(matches!(&appeared.changes[0], Change::SecretAdded { .. }));
    assert_no_secret(&renderings(&d));
}

#[test]
fn inventory_itself_never_holds_values() {
    let i = base();
    let text = format!("{i:?}\n{}", serde_json::to_string(&i).unwrap());
    assert_no_secret(&text);
}

#[test]
fn malformed_secret_data_is_an_error_that_names_the_key_only() {
    let mut s = secret("x", &[("token", SECRET_A)]);
    s["data"]["token"] = json!(format!("{SECRET_A}!!not base64"));
    let e = Inventory::default().add_secret(&s).unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(
        text.contains("token") && text.contains("not base64"),
        "{text}"
    );
    assert_no_secret(&text);
}
