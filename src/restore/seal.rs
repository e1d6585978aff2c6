//! Sealing Secrets offline with `kubeseal --cert`, and fetching that certificate.
//!
//! The controller's name and namespace are always passed explicitly: kubeseal defaults to
//! `sealed-secrets-controller` in `kube-system`, while the Helm chart names its controller after
//! the release (`sealed-secrets`) — relying on either default silently talks to nothing.
//!
//! The plaintext Secret is handed to kubeseal on stdin, straight from memory — it never touches
//! a file, so no exit path can leave it behind; its values are registered with the command's
//! redactor, so no error can echo them, and the sealed output is checked to contain none of
//! them before it can be committed.

use crate::process::{Cmd, ProcessError, Redactor};
use crate::restore::desired::PlainSecret;
use base64::Engine;
use std::path::Path;
use std::time::Duration;

/// The sealed-secrets controller kubeseal talks to (for `--fetch-cert`) or seals for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub name: String,
    pub namespace: String,
}

impl Default for Controller {
    /// `sealed-secrets-controller` in `kube-system`: kubeseal's defaults, made explicit; the
    /// installer must name the Helm release's controller the same
    /// (`fullnameOverride=sealed-secrets-controller`).
    fn default() -> Self {
        Controller {
            name: "sealed-secrets-controller".into(),
            namespace: "kube-system".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("kubeseal failed: {0}")]
    Process(#[from] ProcessError),
    #[error("could not write the Secret for kubeseal: {0}")]
    Io(std::io::Error),
    #[error("kubeseal output for {secret} is not a SealedSecret: {why}")]
    BadOutput { secret: String, why: String },
    #[error("kubeseal output for {secret} contains a plaintext value; refusing to commit it")]
    Leaked { secret: String },
    #[error("fetched certificate is not PEM")]
    NotPem,
}

/// `kubeseal --fetch-cert …`: prints the controller's public certificate (PEM).
pub fn fetch_cert_cmd(kubeseal: &str, kubeconfig: &Path, c: &Controller, timeout: Duration) -> Cmd {
    Cmd::new(kubeseal)
        .arg("--fetch-cert")
        .args([
            "--controller-name",
            c.name.as_str(),
            "--controller-namespace",
            c.namespace.as_str(),
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig.as_os_str())
        .timeout(timeout)
}

/// `kubeseal --cert CERT --format yaml …` reading the Secret on stdin: no cluster involved.
pub fn seal_cmd(kubeseal: &str, cert: &Path, c: &Controller, timeout: Duration) -> Cmd {
    Cmd::new(kubeseal)
        .arg("--cert")
        .arg(cert.as_os_str())
        .args(["--format", "yaml"])
        .args([
            "--controller-name",
            c.name.as_str(),
            "--controller-namespace",
            c.namespace.as_str(),
        ])
        .timeout(timeout)
}

/// Fetches the certificate and checks it looks like PEM.
pub async fn fetch_cert(
    kubeseal: &str,
    kubeconfig: &Path,
    c: &Controller,
    timeout: Duration,
) -> Result<String, SealError> {
    let out = fetch_cert_cmd(kubeseal, kubeconfig, c, timeout)
        .run()
        .await?;
    let pem = out.stdout_str();
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(SealError::NotPem);
    }
    Ok(pem)
}

/// Seals `secret` for the certificate at `cert`. Returns the SealedSecret YAML. `_workdir` is
/// kept for callers: nothing is written there any more (the plaintext goes on stdin).
pub async fn seal(
    kubeseal: &str,
    cert: &Path,
    c: &Controller,
    secret: &PlainSecret,
    _workdir: &Path,
    timeout: Duration,
) -> Result<String, SealError> {
    let id = format!("{}/{}", secret.namespace, secret.name);
    let input = secret.manifest_yaml().into_bytes();
    let mut redactor = Redactor::default();
    for v in secret.data.values() {
        redactor.add(&String::from_utf8_lossy(v.expose()));
        redactor.add(&base64::engine::general_purpose::STANDARD.encode(v.expose()));
    }
    let out = seal_cmd(kubeseal, cert, c, timeout)
        .stdin(input)
        .redact(&redactor)
        .run()
        .await?;
    let sealed = out.stdout_str();
    check_sealed(&id, secret, &sealed)?;
    Ok(sealed)
}

/// The output must be one SealedSecret for the same name/namespace, with an encrypted entry per
/// key, and must not contain any plaintext value (raw or base64).
fn check_sealed(id: &str, secret: &PlainSecret, sealed: &str) -> Result<(), SealError> {
    for v in secret.data.values() {
        let raw = String::from_utf8_lossy(v.expose());
        let b64 = base64::engine::general_purpose::STANDARD.encode(v.expose());
        if (raw.len() >= 4 && sealed.contains(raw.as_ref())) || sealed.contains(&b64) {
            return Err(SealError::Leaked { secret: id.into() });
        }
    }
    let bad = |why: &str| SealError::BadOutput {
        secret: id.into(),
        why: why.into(),
    };
    let doc: serde_json::Value = serde_yaml::from_str(sealed).map_err(|_| bad("not YAML"))?;
    if doc.get("kind").and_then(|k| k.as_str()) != Some("SealedSecret") {
        return Err(bad("kind is not SealedSecret"));
    }
    if doc.pointer("/metadata/name").and_then(|n| n.as_str()) != Some(secret.name.as_str())
        || doc.pointer("/metadata/namespace").and_then(|n| n.as_str())
            != Some(secret.namespace.as_str())
    {
        return Err(bad("name or namespace differ from the Secret's"));
    }
    let enc = doc
        .pointer("/spec/encryptedData")
        .and_then(|e| e.as_object())
        .ok_or_else(|| bad("no spec.encryptedData"))?;
    for k in secret.data.keys() {
        if !enc.contains_key(k) {
            return Err(bad(&format!("no encrypted entry for key {k:?}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_is_always_explicit() {
        let c = Controller::default();
        let argv = seal_cmd(
            "kubeseal",
            Path::new("/t/cert.pem"),
            &c,
            Duration::from_secs(5),
        )
        .argv();
        assert_eq!(
            argv,
            [
                "--cert",
                "/t/cert.pem",
                "--format",
                "yaml",
                "--controller-name",
                "sealed-secrets-controller",
                "--controller-namespace",
                "kube-system"
            ]
        );
        let argv = fetch_cert_cmd("kubeseal", Path::new("/k"), &c, Duration::from_secs(5)).argv();
        assert_eq!(
            argv,
            [
                "--fetch-cert",
                "--controller-name",
                "sealed-secrets-controller",
                "--controller-namespace",
                "kube-system",
                "--kubeconfig",
                "/k"
            ]
        );
    }
}
