//! Packet capture from inside a pod's network namespace through an ephemeral debug container.
//!
//! The mTLS check needs the bytes *on the pod's wire* (`eth0`, after the sidecar encrypted
//! them; never `lo`/`any`, where app↔sidecar traffic is plaintext by design). An ephemeral
//! container shares the pod's network namespace, so `tcpdump -i eth0 -U -B 16384 -w -` in it sees
//! exactly that; its stdout is a pcap stream we read through `attach`.
//!
//! Two details make the stream usable and the stop clean:
//! - **Start gate.** `attach` only delivers output produced after it connects, but tcpdump
//!   writes the pcap file header once, at start. The container therefore runs a tiny `sh`
//!   wrapper that waits for one line on stdin before starting tcpdump; we attach, then send it.
//! - **Stop.** A second line on stdin (or stdin closing, e.g. when this process dies) makes the
//!   wrapper send SIGTERM to exactly its own tcpdump (which flushes and exits), so no capture
//!   outlives its run and other captures in the same pod are untouched. (Ephemeral containers
//!   can never be removed from a pod; a stopped one just stays `terminated`.)
//!
//! Needs a kubelet (Kubernetes ≥ 1.23 for the stable `ephemeralcontainers` subresource); it
//! cannot run against the API-server-only test rig, where the request shapes are tested with a
//! mock instead.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, SimplexStream, WriteHalf};
use tokio::task::JoinHandle;

use super::call::call;
use super::error::KubeError;
use super::wait::wait_for;

/// Default image: has `sh` and `tcpdump` (the suite's `images.capture` default, pinned).
pub fn default_image() -> &'static str {
    crate::images::ImageRole::Capture.default_image()
}

/// The wrapper run by `sh -c`; `$@` is the capture command. See the module docs.
pub const GATE_SCRIPT: &str =
    "read -r _ || exit 0; \"$@\" & pid=$!; read -r _; kill -TERM \"$pid\" 2>/dev/null; wait \"$pid\"";

/// The tcpdump filter keeping only TCP on one of `ports` exchanged with one of `peers`, e.g.
/// `tcp port 8080 and ( host 10.244.0.7 or host 10.244.0.9 )`, or with two ports (Linkerd's
/// proxy inbound port beside the app port) `tcp and ( port 8080 or port 4143 ) and ( … )`. An
/// empty `peers` keeps all TCP on the ports.
pub fn peer_filter(ports: &[u16], peers: &[std::net::IpAddr]) -> Vec<String> {
    let mut f: Vec<String> = vec!["tcp".into()];
    match ports {
        [port] => f.extend(["port".to_string(), port.to_string()]),
        ports => {
            f.extend(["and", "("].map(String::from));
            for (i, p) in ports.iter().enumerate() {
                if i > 0 {
                    f.push("or".into());
                }
                f.extend(["port".to_string(), p.to_string()]);
            }
            f.push(")".into());
        }
    }
    if !peers.is_empty() {
        f.extend(["and", "("].map(String::from));
        for (i, p) in peers.iter().enumerate() {
            if i > 0 {
                f.push("or".into());
            }
            f.push("host".into());
            f.push(p.to_string());
        }
        f.push(")".into());
    }
    f
}

/// What to run and where.
#[derive(Debug, Clone)]
pub struct CaptureSpec {
    /// Name of the ephemeral container; must be unique in the pod (they can't be reused).
    pub container_name: String,
    /// Container whose process namespace the debug container joins.
    pub target_container: String,
    pub image: String,
    /// The capture command; default `tcpdump -i eth0 -U -B 16384 -w -`.
    pub command: Vec<String>,
    /// Deadline for the ephemeral container to be running (image pull included).
    pub start_timeout: Duration,
}

impl CaptureSpec {
    /// `tcpdump -i eth0 -U -B 16384 -w -` in [`default_image`], next to `target_container`.
    pub fn tcpdump(container_name: &str, target_container: &str) -> Self {
        CaptureSpec {
            container_name: container_name.into(),
            target_container: target_container.into(),
            image: default_image().into(),
            // -B 16384: a 16 MiB kernel buffer, so a capture container descheduled for a moment
            // does not drop packets (libpcap's default is 2 MiB); drops that happen anyway are
            // in tcpdump's final report, and the mtls check refuses to pass on them (ledger TD-1).
            command: ["tcpdump", "-i", "eth0", "-U", "-B", "16384", "-w", "-"]
                .map(String::from)
                .to_vec(),
            start_timeout: Duration::from_secs(120),
        }
    }

    /// Appends a capture filter (a tcpdump expression, one word per argument).
    pub fn with_filter(mut self, filter: Vec<String>) -> Self {
        self.command.extend(filter);
        self
    }

    /// The strategic-merge patch for the pod's `ephemeralcontainers` subresource. Strategic
    /// merge (keyed by container name) appends to existing ephemeral containers instead of
    /// replacing them.
    pub fn patch(&self) -> Value {
        let mut command = vec![
            "sh".to_string(),
            "-c".into(),
            GATE_SCRIPT.into(),
            "capture".into(),
        ];
        command.extend(self.command.iter().cloned());
        json!({
            "spec": {
                "ephemeralContainers": [{
                    "name": self.container_name,
                    "image": self.image,
                    "command": command,
                    "targetContainerName": self.target_container,
                    "stdin": true,
                    "stdinOnce": true,
                    "tty": false,
                    "securityContext": {"capabilities": {"add": ["NET_RAW", "NET_ADMIN"]}}
                }]
            }
        })
    }
}

/// A running capture. Read the pcap stream from [`Capture::take_pcap`]; end it with
/// [`Capture::stop`].
pub struct Capture {
    object: String,
    proc: Option<AttachedProcess>,
    stdin: Option<WriteHalf<SimplexStream>>,
    stdout: Option<ReadHalf<SimplexStream>>,
    stderr_task: Option<JoinHandle<Vec<u8>>>,
}

/// How a capture ended.
#[derive(Debug, Clone)]
pub struct CaptureEnd {
    /// tcpdump's diagnostics (`listening on eth0...`, `N packets captured`).
    pub stderr: String,
}

impl Capture {
    /// The pcap byte stream (raw tcpdump stdout). Available once.
    pub fn take_pcap(&mut self) -> Option<impl AsyncRead + Send + Unpin + use<>> {
        self.stdout.take()
    }

    /// Stops tcpdump (it flushes; the pcap stream then ends with EOF) and waits up to
    /// `timeout` for the attached process to finish. If the pcap stream was not taken, it is
    /// drained and discarded.
    pub async fn stop(mut self, timeout: Duration) -> Result<CaptureEnd, KubeError> {
        let object = self.object.clone();
        let fin = async {
            if let Some(mut stdin) = self.stdin.take() {
                // A line, then EOF: either one stops the wrapper's tcpdump.
                let _ = stdin.write_all(b"\n").await;
                let _ = stdin.shutdown().await;
            }
            if let Some(mut out) = self.stdout.take() {
                let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
            }
            let stderr = match self.stderr_task.take() {
                Some(t) => t.await.unwrap_or_default(),
                None => Vec::new(),
            };
            if let Some(p) = self.proc.take() {
                let _ = p.join().await;
            }
            CaptureEnd {
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            }
        };
        tokio::time::timeout(timeout, fin)
            .await
            .map_err(|_| KubeError::Timeout {
                what: format!("capture in {object} to stop"),
                state: "attached stream still open (is the pcap stream being read?)".into(),
                after: timeout,
            })
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(p) = &self.proc {
            p.abort();
        }
        if let Some(t) = &self.stderr_task {
            t.abort();
        }
    }
}

/// True once the named ephemeral container is running or has terminated.
fn ephemeral_started(pod: Option<&Pod>, name: &str) -> Option<Value> {
    let v = serde_json::to_value(pod?).ok()?;
    let st = v["status"]["ephemeralContainerStatuses"]
        .as_array()?
        .iter()
        .find(|c| c["name"].as_str() == Some(name))?
        .get("state")?
        .clone();
    (st["running"].is_object() || st["terminated"].is_object()).then_some(st)
}

/// Adds the ephemeral capture container to `ns/pod`, waits until it runs, attaches, and
/// starts the capture.
pub async fn start_capture(
    client: &Client,
    ns: &str,
    pod: &str,
    spec: &CaptureSpec,
) -> Result<Capture, KubeError> {
    let object = format!("pod {ns}/{pod} container {}", spec.container_name);
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    call(
        &object,
        api.patch_ephemeral_containers(
            pod,
            &PatchParams::default(),
            &Patch::Strategic(spec.patch()),
        ),
    )
    .await?;
    let name = spec.container_name.clone();
    let started = wait_for(
        api.clone(),
        "Pod",
        pod,
        spec.start_timeout,
        move |p: Option<&Pod>| ephemeral_started(p, &name).is_some(),
    )
    .await?;
    if let Some(state) = ephemeral_started(started.as_ref(), &spec.container_name) {
        if state["terminated"].is_object() {
            return Err(KubeError::Stream {
                op: "capture",
                object,
                msg: format!(
                    "ephemeral container exited before attach: {}",
                    super::state::container_state(&state)
                ),
            });
        }
    }
    let ap = AttachParams::default()
        .container(spec.container_name.clone())
        .stdin(true)
        .stdout(true)
        .stderr(true);
    let mut proc = call(&object, api.attach(pod, &ap)).await?;
    let mut stdin = proc.stdin().ok_or_else(|| KubeError::Stream {
        op: "capture",
        object: object.clone(),
        msg: "no stdin on attach".into(),
    })?;
    let stdout = proc.stdout();
    let stderr_task = proc.stderr().map(|mut e| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = e.read_to_end(&mut buf).await;
            buf
        })
    });
    // Open the start gate: tcpdump starts now, so its pcap header reaches us.
    stdin
        .write_all(b"\n")
        .await
        .map_err(|e| KubeError::Stream {
            op: "capture",
            object: object.clone(),
            msg: format!("starting tcpdump: {e}"),
        })?;
    Ok(Capture {
        object,
        proc: Some(proc),
        stdin: Some(stdin),
        stdout,
        stderr_task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_filter_is_one_word_per_argument() {
        let ips = ["10.244.0.7".parse().unwrap(), "fd00::9".parse().unwrap()];
        assert_eq!(
            peer_filter(&[8080], &ips).join(" "),
            "tcp port 8080 and ( host 10.244.0.7 or host fd00::9 )"
        );
        assert_eq!(peer_filter(&[8080], &[]).join(" "), "tcp port 8080");
        assert_eq!(
            peer_filter(&[8080, 4143], &ips[..1]).join(" "),
            "tcp and ( port 8080 or port 4143 ) and ( host 10.244.0.7 )"
        );
        let spec = CaptureSpec::tcpdump("c", "env").with_filter(peer_filter(&[8080], &ips[..1]));
        assert_eq!(
            spec.command.join(" "),
            "tcpdump -i eth0 -U -B 16384 -w - tcp port 8080 and ( host 10.244.0.7 )"
        );
    }
}
