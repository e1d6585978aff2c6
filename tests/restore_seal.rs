//! Sealing through a `kubeseal` test double (a script that records its argv and stdin and
//! prints a fake SealedSecret): the command line, the plaintext's path to kubeseal, and that no
//! secret value escapes into output or errors.

use meshproof::restore::desired::{PlainSecret, SecretValue};
use meshproof::restore::seal::{self, Controller, SealError};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);
const VALUE: &str = "s3cr3t-value-that-must-never-leak-0123456789";

/// Writes an executable `kubeseal-double` script into `dir`. `$REC` is the record dir.
fn double(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("kubeseal-double");
    let script = format!(
        "#!/bin/sh\n# TEST DOUBLE for kubeseal: records argv and stdin, prints canned output.\nREC='{}'\nprintf '%s\\n' \"$@\" > \"$REC/argv\"\n{body}\n",
        dir.display()
    );
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn secret() -> PlainSecret {
    PlainSecret {
        namespace: "openfaas-fn".into(),
        name: "meshproof-restore".into(),
        data: BTreeMap::from([("token".to_string(), SecretValue::new(VALUE))]),
    }
}

const SEALED: &str = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: meshproof-restore\n  namespace: openfaas-fn\nspec:\n  encryptedData:\n    token: AgBy3i4OJSWK+PiTySYZZA==\n";

#[tokio::test]
async fn seals_offline_with_explicit_controller_and_stdin_only() {
    let rec = tempfile::tempdir().unwrap();
    let work = meshproof::private_fs::temp_private_dir("t").unwrap();
    // The double also records what the work dir holds while it runs: no plaintext file, ever
    // (before, one sat there for the whole call and could outlive a killed run).
    let body = format!(
        "cat > \"$REC/stdin\"\nls -A '{}' > \"$REC/files\"\ncat <<'EOF'\n{SEALED}EOF",
        work.path().display()
    );
    let kubeseal = double(rec.path(), &body);
    let out = seal::seal(
        kubeseal.to_str().unwrap(),
        Path::new("/run/cert.pem"),
        &Controller::default(),
        &secret(),
        work.path(),
        T,
    )
    .await
    .unwrap();
    assert!(out.contains("kind: SealedSecret"));
    let argv = std::fs::read_to_string(rec.path().join("argv")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "--cert",
            "/run/cert.pem",
            "--format",
            "yaml",
            "--controller-name",
            "sealed-secrets-controller",
            "--controller-namespace",
            "kube-system"
        ]
    );
    assert!(
        !argv.contains(VALUE),
        "the value never goes on the command line"
    );
    let stdin: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(rec.path().join("stdin")).unwrap()).unwrap();
    assert_eq!(stdin["kind"], "Secret");
    assert_eq!(stdin["metadata"]["name"], "meshproof-restore");
    use base64::Engine;
    let got = base64::engine::general_purpose::STANDARD
        .decode(stdin["data"]["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(got, VALUE.as_bytes());
    assert_eq!(
        std::fs::read_to_string(rec.path().join("files"))
            .unwrap()
            .trim(),
        "",
        "no plaintext file exists while kubeseal runs"
    );
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "plaintext file removed after sealing"
    );
}

#[tokio::test]
async fn output_that_contains_the_plaintext_is_refused_without_repeating_it() {
    let rec = tempfile::tempdir().unwrap();
    let work = meshproof::private_fs::temp_private_dir("t").unwrap();
    // A broken "sealer" that echoes its input (base64 data included).
    let kubeseal = double(rec.path(), "cat");
    let e = seal::seal(
        kubeseal.to_str().unwrap(),
        Path::new("/c"),
        &Controller::default(),
        &secret(),
        work.path(),
        T,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, SealError::Leaked { .. }), "{e}");
    assert!(!format!("{e} {e:?}").contains(VALUE));
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn a_failing_kubeseal_does_not_echo_the_secret_in_the_error() {
    let rec = tempfile::tempdir().unwrap();
    let work = meshproof::private_fs::temp_private_dir("t").unwrap();
    let body = format!("echo 'error: cannot seal {VALUE}' >&2\nbase64 >&2\nexit 1");
    let kubeseal = double(rec.path(), &body);
    let e = seal::seal(
        kubeseal.to_str().unwrap(),
        Path::new("/c"),
        &Controller::default(),
        &secret(),
        work.path(),
        T,
    )
    .await
    .unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(text.contains("exited with 1"), "{text}");
    assert!(!text.contains(VALUE), "{text}");
    use base64::Engine;
    assert!(
        !text.contains(&base64::engine::general_purpose::STANDARD.encode(VALUE)),
        "{text}"
    );
}

#[tokio::test]
async fn output_for_another_secret_is_refused() {
    let rec = tempfile::tempdir().unwrap();
    let work = meshproof::private_fs::temp_private_dir("t").unwrap();
    let body = format!(
        "cat >/dev/null\ncat <<'EOF'\n{}EOF",
        SEALED.replace("meshproof-restore", "other")
    );
    let kubeseal = double(rec.path(), &body);
    let e = seal::seal(
        kubeseal.to_str().unwrap(),
        Path::new("/c"),
        &Controller::default(),
        &secret(),
        work.path(),
        T,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, SealError::BadOutput { .. }), "{e}");
}

#[tokio::test]
async fn fetch_cert_names_the_controller_and_checks_pem() {
    let rec = tempfile::tempdir().unwrap();
    let kubeseal = double(
        rec.path(),
        "echo '-----BEGIN CERTIFICATE-----'; echo MIIB; echo '-----END CERTIFICATE-----'",
    );
    let c = Controller {
        name: "sealed-secrets".into(),
        namespace: "sealed".into(),
    };
    let pem = seal::fetch_cert(
        kubeseal.to_str().unwrap(),
        Path::new("/tmp/kubeconfig"),
        &c,
        T,
    )
    .await
    .unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    let argv = std::fs::read_to_string(rec.path().join("argv")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "--fetch-cert",
            "--controller-name",
            "sealed-secrets",
            "--controller-namespace",
            "sealed",
            "--kubeconfig",
            "/tmp/kubeconfig"
        ]
    );
    let not_pem = double(rec.path(), "echo 'Error: cannot fetch certificate'");
    let e = seal::fetch_cert(not_pem.to_str().unwrap(), Path::new("/k"), &c, T)
        .await
        .unwrap_err();
    assert!(matches!(e, SealError::NotPem));
}

#[tokio::test]
async fn a_hanging_kubeseal_times_out() {
    let rec = tempfile::tempdir().unwrap();
    let work = meshproof::private_fs::temp_private_dir("t").unwrap();
    let kubeseal = double(rec.path(), "sleep 30");
    let started = std::time::Instant::now();
    let e = seal::seal(
        kubeseal.to_str().unwrap(),
        Path::new("/c"),
        &Controller::default(),
        &secret(),
        work.path(),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}
