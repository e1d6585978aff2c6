//! Running a command in a pod's container and collecting its output and exit status.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use kube::Client;
use tokio::io::AsyncReadExt;

use super::call::call;
use super::error::KubeError;

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Exit code; `None` when the server reported no status (connection dropped).
    pub exit_code: Option<i32>,
    /// The server's failure message when the command did not exit 0.
    pub failure: Option<String>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Runs `command` in `ns/pod` (container `container`, or the pod's default), with no stdin,
/// and waits for it to exit within `timeout`.
pub async fn exec(
    client: &Client,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    command: &[&str],
    timeout: Duration,
) -> Result<ExecOutput, KubeError> {
    let object = format!("pod {ns}/{pod}");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut ap = AttachParams::default()
        .stdin(false)
        .stdout(true)
        .stderr(true);
    if let Some(c) = container {
        ap = ap.container(c);
    }
    let cmd: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let run = async {
        let mut proc = call(&object, api.exec(pod, cmd, &ap)).await?;
        let mut out_r = proc.stdout();
        let mut err_r = proc.stderr();
        let status = proc.take_status();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let read_out = async {
            if let Some(r) = out_r.as_mut() {
                r.read_to_end(&mut out).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            if let Some(r) = err_r.as_mut() {
                r.read_to_end(&mut err).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (a, b) = tokio::join!(read_out, read_err);
        a.and(b).map_err(|e| KubeError::Stream {
            op: "exec",
            object: object.clone(),
            msg: format!("reading output: {e}"),
        })?;
        let status = match status {
            Some(s) => s.await,
            None => None,
        };
        drop(out_r);
        drop(err_r);
        let _ = proc.join().await;
        let (exit_code, failure) = match status {
            None => (None, None),
            Some(s) if s.status.as_deref() == Some("Success") => (Some(0), None),
            Some(s) => (Some(exit_code_of(&s)), s.message.clone()),
        };
        Ok(ExecOutput {
            stdout: out,
            stderr: err,
            exit_code,
            failure,
        })
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(KubeError::Timeout {
            what: format!("exec {command:?} in {object}"),
            state: "command still running".into(),
            after: timeout,
        }),
    }
}

/// The exit code from a failed exec's status: `details.causes[reason=ExitCode].message`; a
/// failure without one (e.g. command not found) is reported as 126 like a shell would.
fn exit_code_of(s: &Status) -> i32 {
    s.details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.parse().ok())
        })
        .unwrap_or(126)
}
