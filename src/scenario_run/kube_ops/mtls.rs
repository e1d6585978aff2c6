//! The mtls check's cluster side: an ephemeral tcpdump container on the function pod's `eth0`
//! (only the gateway's flows) while the gateway sends sentinel requests, and the plaintext
//! client in an unmeshed namespace for the strict probe.

use super::functions::GATEWAY_REQUEST_TIMEOUT;
use super::probes::probe_image;
use super::KubeTrial;
use crate::check::Verdict;
use crate::images::ImageRole;
use crate::kubeops::capture::{self, CaptureSpec};
use crate::kubeops::RUN_ID_LABEL;
use crate::scenario::template::Vars;
use crate::scenario::{Mesh, MtlsCheck};
use crate::scenario_run::checks::deny::Observed;
use crate::scenario_run::checks::mtls::{self, MtlsDriver, Traffic};
use crate::scenario_run::checks::mtls_engine;
use crate::scenario_run::tracker::Tracker;
use crate::vocab::{FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};
use serde_json::Value;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Largest pcap kept in memory per capture.
const MAX_PCAP_BYTES: usize = 256 * 1024 * 1024;

impl KubeTrial {
    pub(super) async fn mtls(
        &mut self,
        m: &MtlsCheck,
        vars: &Vars,
        tracker: &mut Tracker,
    ) -> Result<Verdict<Value>, String> {
        let image = probe_image(None, vars)?;
        let capture_image = vars
            .get(ImageRole::Capture.var())
            .ok_or("no capture image: the `images.capture` variable is not set")?
            .to_string();
        let gateway_sa = vars
            .get("gateway.serviceAccount")
            .unwrap_or("openfaas-controller")
            .to_string();
        let mesh = self.cfg.mesh;
        let mut driver = KubeMtls {
            trial: self,
            tracker,
            probe_image: image,
            capture_image,
            port: m.port,
        };
        Ok(mtls::run_mtls(
            &mut driver,
            &mtls_engine::Engine,
            m,
            mesh,
            GATEWAY_NAMESPACE,
            &gateway_sa,
        )
        .await
        .erase())
    }
}

/// [`MtlsDriver`] on a trial.
struct KubeMtls<'a> {
    trial: &'a mut KubeTrial,
    tracker: &'a mut Tracker,
    probe_image: String,
    capture_image: String,
    /// The function port the check judges.
    port: u16,
}

/// How long one request of the mtls traffic may keep failing transiently (a 503 while a
/// just-Ready pod's endpoint reaches the proxies) before the capture is given up.
const MTLS_REQUEST_RETRY_FOR: Duration = Duration::from_secs(30);

impl MtlsDriver for KubeMtls<'_> {
    async fn capture_traffic(&mut self, function: &str, requests: u32) -> Result<Traffic, String> {
        let base = self.trial.gateway_base().await?;
        let target = self.trial.function_pod(function).await?;
        let (pod, container) = (target.name.as_str(), target.container.as_str());
        // On Linkerd, meshed peers connect to the proxy's inbound port, not the app port
        // (ledger LD-1): both are captured and judged.
        let proxy_inbound = match self.trial.cfg.mesh {
            Mesh::Linkerd => crate::scenario_run::linkerd::inbound_port(&target.pod),
            Mesh::Istio => None,
        };
        let ports: Vec<u16> = std::iter::once(self.port)
            .chain(proxy_inbound.filter(|&p| p != self.port))
            .collect();
        let id = self.trial.next_id();
        let suffix = hex::encode(rand::random::<[u8; 3]>());
        // Only the gateway's traffic with the function: under Linkerd, kubelet probes reach the
        // application port in plaintext on eth0, and they are not what the check is about.
        let peers = self.trial.gateway_pod_ips().await?;
        let mut spec = CaptureSpec::tcpdump(&format!("meshproof-capture-{id}-{suffix}"), container)
            .with_filter(capture::peer_filter(&ports, &peers));
        spec.image = self.capture_image.clone();
        let mut cap =
            capture::start_capture(&self.trial.streaming, FUNCTIONS_NAMESPACE, pod, &spec)
                .await
                .map_err(|e| e.to_string())?;
        let mut stream = cap.take_pcap().ok_or("the capture has no output stream")?;
        let reader = tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if buf.len() + n > MAX_PCAP_BYTES {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                }
            }
            buf
        });
        // tcpdump needs a moment after its header to be listening.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let http = reqwest::Client::builder()
            .timeout(GATEWAY_REQUEST_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let mut traffic = Traffic {
            proxy_inbound,
            ..Traffic::default()
        };
        let mut send_errors = Vec::new();
        for _ in 0..requests {
            let sentinel = mtls::new_sentinel();
            let started = std::time::Instant::now();
            let last_error = loop {
                let r = http
                    .post(format!("{base}/function/{function}"))
                    .header("X-Meshproof-Sentinel", &sentinel)
                    .body(sentinel.clone())
                    .send()
                    .await;
                let error = match r {
                    Ok(resp) if resp.status().is_success() => {
                        traffic
                            .responses
                            .push(resp.text().await.unwrap_or_default());
                        break None;
                    }
                    Ok(resp) => format!("HTTP {}", resp.status()),
                    Err(e) => e.to_string(),
                };
                if started.elapsed() >= MTLS_REQUEST_RETRY_FOR {
                    break Some(error);
                }
                traffic.retries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            };
            traffic.sentinels.push(sentinel);
            if let Some(e) = last_error {
                send_errors.push(e);
            }
        }
        // Let the last packets reach the capture before stopping it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let end = cap
            .stop(Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        traffic.pcap = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .map_err(|_| "reading the capture stream timed out".to_string())?
            .map_err(|e| e.to_string())?;
        traffic.capture_log = end.stderr;
        if !send_errors.is_empty() {
            return Err(format!(
                "{} of {requests} requests to {function} through the gateway failed: {}",
                send_errors.len(),
                send_errors
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        Ok(traffic)
    }

    async fn plaintext_probe(&mut self, function: &str, port: u16) -> Result<Observed, String> {
        let ns = format!(
            "meshproof-plain-{}",
            self.trial.cfg.run_id.as_str().to_ascii_lowercase()
        );
        let ns: String = ns
            .chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string();
        let (label, value) = match self.trial.cfg.mesh {
            Mesh::Istio => ("istio-injection", "disabled"),
            Mesh::Linkerd => ("linkerd.io/inject", "disabled"),
        };
        let mut doc = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {RUN_ID_LABEL: self.trial.cfg.run_id.as_str()}}
        });
        // Linkerd reads its opt-out from an annotation, Istio from a label.
        match self.trial.cfg.mesh {
            Mesh::Istio => doc["metadata"]["labels"][label] = Value::String(value.into()),
            Mesh::Linkerd => doc["metadata"]["annotations"] = serde_json::json!({ label: value }),
        }
        self.trial
            .apply_tracked(&doc.to_string(), self.tracker)
            .await?;
        let image = self.probe_image.clone();
        let pod = self
            .trial
            .probe_pod(&ns, "default", &image, self.tracker)
            .await?;
        let url = format!("http://{function}.{FUNCTIONS_NAMESPACE}:{port}/");
        Ok(self.trial.curl_from(&ns, &pod, &url).await)
    }
}
