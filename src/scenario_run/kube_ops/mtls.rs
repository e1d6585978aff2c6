//! The mtls check's cluster side: an ephemeral tcpdump container on the function pod's `eth0`
//! (only the gateway's flows — and on Istio ambient the waypoints' too, with ztunnel's HBONE
//! port) while the gateway sends sentinel requests, the plaintext client in an unmeshed
//! namespace for the strict probe, and on ambient the function node's ztunnel access log.

use super::functions::GATEWAY_REQUEST_TIMEOUT;
use super::probes::probe_image;
use super::KubeTrial;
use crate::check::mtls::HBONE_PORT;
use crate::check::Verdict;
use crate::images::ImageRole;
use crate::kubeops::call::call;
use crate::kubeops::capture::{self, CaptureSpec};
use crate::kubeops::RUN_ID_LABEL;
use crate::scenario::template::Vars;
use crate::scenario::{DataPlane, Mesh, MtlsCheck};
use crate::scenario_run::checks::deny::Observed;
use crate::scenario_run::checks::mtls::{self, AmbientPeers, MtlsDriver, Traffic};
use crate::scenario_run::checks::mtls_engine;
use crate::scenario_run::linkerd::AuthzCounters;
use crate::scenario_run::tracker::Tracker;
use crate::scenario_run::ztunnel::ZtunnelView;
use crate::vocab::{CAPTURE_START, FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde_json::Value;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Istio's root namespace, whose policies apply mesh-wide (`meshConfig.rootNamespace`).
const ISTIO_ROOT_NAMESPACE: &str = "istio-system";

fn authorization_policy() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("security.istio.io", "v1", "AuthorizationPolicy"),
        "authorizationpolicies",
    )
}

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
        let plane = self.cfg.data_plane;
        let mut driver = KubeMtls {
            trial: self,
            tracker,
            probe_image: image,
            capture_image,
            port: m.port,
            plaintext_client: None,
        };
        Ok(mtls::run_mtls(
            &mut driver,
            &mtls_engine::Engine,
            m,
            plane,
            GATEWAY_NAMESPACE,
            &gateway_sa,
        )
        .await
        .erase())
    }
}

impl KubeMtls<'_> {
    /// Sends `requests` sentinel requests to `function` through the gateway, each retried on
    /// a transient failure for [`MTLS_REQUEST_RETRY_FOR`], all within `deadline`. A request
    /// that never got a 2xx answer is recorded in `traffic.failures` with the status and the
    /// start of the last answer's body; `Err` only when no HTTP client could be built.
    async fn send_sentinels(
        &mut self,
        base: &str,
        function: &str,
        requests: u32,
        deadline: Duration,
        traffic: &mut Traffic,
    ) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(GATEWAY_REQUEST_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let phase_start = std::time::Instant::now();
        for i in 0..requests {
            if phase_start.elapsed() >= deadline {
                traffic.failures.push(format!(
                    "{} requests not sent: the phase's {} ran out",
                    requests - i,
                    humantime::format_duration(deadline)
                ));
                break;
            }
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
                    Ok(resp) => {
                        let status = resp.status();
                        let body = resp.text().await.unwrap_or_default();
                        let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
                        self.trial.redact(format!("HTTP {status}: {excerpt:?}"))
                    }
                    Err(e) => e.to_string(),
                };
                if started.elapsed() >= MTLS_REQUEST_RETRY_FOR || phase_start.elapsed() >= deadline
                {
                    break Some(error);
                }
                traffic.retries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            };
            traffic.sentinels.push(sentinel);
            if let Some(e) = last_error {
                traffic.failures.push(e);
            }
        }
        Ok(())
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
    /// The strict probe's client pod (namespace, name), once started.
    plaintext_client: Option<(String, String)>,
}

/// How long one request of the mtls traffic may keep failing transiently (a 503 while a
/// just-Ready pod's endpoint reaches the proxies) before it counts as failed; the phase's
/// deadline bounds all of them together.
const MTLS_REQUEST_RETRY_FOR: Duration = Duration::from_secs(30);
/// Bytes of a failed answer's body kept in the reasons.
const BODY_EXCERPT: usize = 200;

impl MtlsDriver for KubeMtls<'_> {
    async fn capture_traffic(
        &mut self,
        function: &str,
        requests: u32,
        deadline: Duration,
    ) -> Result<Traffic, String> {
        let base = self.trial.gateway_base().await?;
        let target = self.trial.function_pod(function).await?;
        let (pod, container) = (target.name.as_str(), target.container.as_str());
        // On Linkerd, meshed peers connect to the proxy's inbound port, not the app port
        // (ledger LD-7): both are captured and judged.
        let proxy_inbound = match self.trial.cfg.mesh {
            Mesh::Linkerd => crate::scenario_run::linkerd::inbound_port(&target.pod),
            Mesh::Istio => None,
        };
        // On Istio ambient peers reach the pod through ztunnel's HBONE port (ledger IS-19).
        let tunnel = (self.trial.cfg.data_plane == DataPlane::IstioAmbient).then_some(HBONE_PORT);
        let ports: Vec<u16> = std::iter::once(self.port)
            .chain(proxy_inbound.filter(|&p| p != self.port))
            .chain(tunnel.filter(|&p| p != self.port))
            .collect();
        let id = self.trial.next_id();
        let suffix = hex::encode(rand::random::<[u8; 3]>());
        // Only the gateway's traffic with the function: under Linkerd, kubelet probes reach the
        // application port in plaintext on eth0, and they are not what the check is about.
        // On ambient a waypoint in the path is the function's peer (IS-24): its pods too.
        let mut peers = self.trial.gateway_pod_ips().await?;
        if tunnel.is_some() {
            peers.extend(self.trial.waypoint_pod_ips(FUNCTIONS_NAMESPACE).await?);
        }
        let mut spec = CaptureSpec::tcpdump(&format!("meshproof-capture-{id}-{suffix}"), container)
            .with_filter(capture::peer_filter(&ports, &peers));
        spec.image = self.capture_image.clone();
        spec.start_timeout = CAPTURE_START;
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
        let mut traffic = Traffic {
            proxy_inbound,
            ..Traffic::default()
        };
        // From here on the capture is always stopped and returned, whatever the requests did:
        // a sentinel in plaintext is conclusive even when the answers were errors.
        let sent = self
            .send_sentinels(&base, function, requests, deadline, &mut traffic)
            .await;
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
        sent?;
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
        // Ambient enrols by label: the namespace has none, and the pod opts out (IS-21).
        let labels: &[(&str, &str)] = match self.trial.cfg.data_plane {
            DataPlane::IstioAmbient => &[("istio.io/dataplane-mode", "none")],
            _ => &[],
        };
        let pod = self
            .trial
            .probe_pod(&ns, "default", &image, labels, self.tracker)
            .await?;
        self.plaintext_client = Some((ns.clone(), pod.clone()));
        let url = format!("http://{function}.{FUNCTIONS_NAMESPACE}:{port}/");
        Ok(self.trial.curl_from(&ns, &pod, &url).await)
    }

    async fn authorization_policies(&mut self) -> Result<Vec<String>, String> {
        // The function namespace's own, and the root namespace's (mesh-wide).
        let mut names = Vec::new();
        for ns in [FUNCTIONS_NAMESPACE, ISTIO_ROOT_NAMESPACE] {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.trial.client.clone(), ns, &authorization_policy());
            match call(
                &format!("AuthorizationPolicies in {ns}"),
                api.list(&ListParams::default()),
            )
            .await
            {
                Ok(list) => names.extend(
                    list.items
                        .into_iter()
                        .filter_map(|o| o.metadata.name.map(|n| format!("{ns}/{n}"))),
                ),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(names)
    }

    async fn ambient_peers(&mut self) -> Result<AmbientPeers, String> {
        Ok(AmbientPeers {
            gateway: self.trial.gateway_pod_ips().await?,
            waypoints: self.trial.waypoint_pod_ips(FUNCTIONS_NAMESPACE).await?,
        })
    }

    async fn ztunnel_inbound(
        &mut self,
        function: &str,
        since: std::time::SystemTime,
    ) -> Result<ZtunnelView, String> {
        let target = self.trial.function_pod(function).await?;
        self.trial
            .ztunnel_view(FUNCTIONS_NAMESPACE, &[target.name], Vec::new(), since)
            .await
    }

    async fn ztunnel_of_gateway(
        &mut self,
        since: std::time::SystemTime,
    ) -> Result<ZtunnelView, String> {
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.trial.client.clone(), GATEWAY_NAMESPACE);
        let list = call(
            "gateway pods",
            pods.list(&ListParams::default().labels("app=gateway")),
        )
        .await
        .map_err(|e| e.to_string())?;
        let names: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        self.trial
            .ztunnel_view(GATEWAY_NAMESPACE, &names, Vec::new(), since)
            .await
    }

    async fn plaintext_client_ips(&mut self) -> Result<Vec<std::net::IpAddr>, String> {
        let (ns, pod) = self
            .plaintext_client
            .clone()
            .ok_or("the plaintext client has not been started")?;
        Ok(super::ztunnel::pod_ips(&self.trial.pod(&ns, &pod).await?))
    }

    async fn proxy_counters(&mut self, function: &str, port: u16) -> Result<AuthzCounters, String> {
        let url = format!("http://{function}.{FUNCTIONS_NAMESPACE}:{port}/");
        let target = self.trial.probe_target(&url, FUNCTIONS_NAMESPACE).await?;
        self.trial.linkerd_counters(&target).await
    }
}
