//! The canary check's cluster side. The split is sampled where a Service-level route applies:
//! from a meshed client pod in the functions namespace calling the function's Service, in
//! batches of curl exec'd in the pod (ledger IS-8, LD-15); on OpenFaaS Pro also through the
//! gateway, whose requests then address the Service too — after checking, from one echoed
//! `Host`, that they do. OpenFaaS CE's gateway calls pod IPs, where no split can apply, so there
//! the gateway path is skipped with that reason.

use super::probes::probe_image;
use super::{Deployer, KubeTrial};
use crate::check::canary::{batch, Classifier, Sample, UnclassifiedKind};
use crate::check::{CheckName, Outcome, Verdict};
use crate::kubeops::exec;
use crate::scenario::template::Vars;
use crate::scenario::{CanaryCheck, DataPlane};
use crate::scenario_run::checks::addressing::{
    addressing, pod_ip_under_ambient, pod_ip_under_istio, Addressing,
};
use crate::scenario_run::checks::canary::{self as canary_check, combine, TrafficSource};
use crate::scenario_run::tracker::Tracker;
use crate::vocab::FUNCTIONS_NAMESPACE;
use kube::Client;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Requests per exec'd batch.
const BATCH: u32 = 25;
/// curl's limit per request in a batch, seconds.
const REQUEST_SECS: u32 = 5;
/// Deadline of one batch's exec.
const BATCH_TIMEOUT: Duration = Duration::from_secs((BATCH * REQUEST_SECS + 30) as u64);

/// Why the gateway path is not sampled on CE (on every data plane: under Istio ambient the
/// pod-IP call is meshed by ztunnel, but a waypoint's HTTPRoute split applies to
/// Service-addressed traffic, ledger IS-24).
const CE_GATEWAY: &str = "OpenFaaS CE: its gateway calls function pods by IP (faas-netes), where no Service-level split can apply; the split was sampled from a meshed client calling the Service";

/// Samples from a client pod, a batch at a time.
struct PodSampler {
    client: Client,
    pod: String,
    url: String,
    classifier: Classifier,
    queue: VecDeque<Sample>,
}

impl PodSampler {
    async fn sample(&mut self) -> Sample {
        if self.queue.is_empty() {
            let argv = batch::command(&self.url, BATCH, REQUEST_SECS);
            let cmd: Vec<&str> = argv.iter().map(String::as_str).collect();
            match exec::exec(
                &self.client,
                FUNCTIONS_NAMESPACE,
                &self.pod,
                Some("probe"),
                &cmd,
                BATCH_TIMEOUT,
            )
            .await
            {
                Ok(out) => self.queue.extend(batch::parse(
                    &String::from_utf8_lossy(&out.stdout),
                    &self.classifier,
                )),
                Err(e) => {
                    return Sample::unclassified(
                        UnclassifiedKind::Transport,
                        format!("exec in the client pod failed: {e}"),
                    )
                }
            }
        }
        self.queue.pop_front().unwrap_or_else(|| {
            Sample::unclassified(
                UnclassifiedKind::Transport,
                "the client pod's batch returned no response",
            )
        })
    }
}

impl KubeTrial {
    pub(super) async fn canary(
        &mut self,
        c: &CanaryCheck,
        vars: &Vars,
        tracker: &mut Tracker,
    ) -> Result<Verdict<Value>, String> {
        let client = self.canary_from_client(c, vars, tracker).await?;
        let mut parts = vec![(TrafficSource::MeshedClient, client)];
        let skipped = match self.cfg.deployer {
            Deployer::FunctionCrd => {
                parts.push((
                    TrafficSource::Gateway,
                    self.canary_through_gateway(c).await?,
                ));
                None
            }
            Deployer::Gateway => Some((TrafficSource::Gateway, CE_GATEWAY)),
        };
        Ok(combine(parts, skipped))
    }

    /// The split as a meshed client pod in the functions namespace sees it, calling the
    /// function's Service.
    async fn canary_from_client(
        &mut self,
        c: &CanaryCheck,
        vars: &Vars,
        tracker: &mut Tracker,
    ) -> Result<Verdict<Value>, String> {
        let pod = match &self.canary_client {
            Some(p) => p.clone(),
            None => {
                let image = probe_image(None, vars)?;
                let p = self
                    .probe_pod(FUNCTIONS_NAMESPACE, "default", &image, &[], tracker)
                    .await?;
                self.canary_client = Some(p.clone());
                p
            }
        };
        let url = format!(
            "http://{}.{FUNCTIONS_NAMESPACE}.svc.cluster.local:8080/",
            c.function
        );
        let config = canary_check::engine_config(c, &format!("{url} from a meshed client pod"))?;
        let sampler = Arc::new(Mutex::new(PodSampler {
            client: self.client.clone(),
            pod,
            url,
            classifier: canary_check::classifier(&config),
            queue: VecDeque::new(),
        }));
        Ok(canary_check::run_canary_check(c, &config, || {
            let s = sampler.clone();
            async move { s.lock().await.sample().await }
        })
        .await)
    }

    /// The split through the gateway (Pro), once one echoed `Host` shows the gateway
    /// addresses the function's Service.
    async fn canary_through_gateway(&mut self, c: &CanaryCheck) -> Result<Verdict<Value>, String> {
        let base = self.gateway_base().await?;
        let url = format!("{base}/function/{}", c.function);
        if let Some(why) = self.gateway_addresses_pods(&url, c).await? {
            return Ok(Verdict::new(
                CheckName::Canary,
                Outcome::Error,
                vec![why],
                Value::Null,
            ));
        }
        let config =
            canary_check::engine_config(c, &format!("{}/function/{}", "gateway", c.function))?;
        let sampler = crate::check::canary::HttpSampler::new(
            &url,
            Default::default(),
            None,
            canary_check::classifier(&config),
            config.request_timeout,
        )
        .map_err(|e| e.to_string())?;
        Ok(canary_check::run_canary_check(c, &config, || {
            let s = sampler.clone();
            async move { s.sample().await }
        })
        .await)
    }

    /// `Some(why)` when the gateway calls the function by pod IP under Istio sidecars (the
    /// split cannot apply there); on Linkerd a pod-IP call is meshed but not split either.
    async fn gateway_addresses_pods(
        &mut self,
        url: &str,
        c: &CanaryCheck,
    ) -> Result<Option<String>, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| e.to_string())?;
        let body = http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?
            .text()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        Ok(match addressing(&[body]) {
            Some(Addressing::PodIp { host }) => Some(match self.cfg.data_plane {
                DataPlane::IstioSidecar => pod_ip_under_istio(&host, c.function.as_str()),
                DataPlane::IstioAmbient => pod_ip_under_ambient(&host),
                DataPlane::Linkerd => format!(
                    "the gateway addresses functions by pod IP (Host: {host}): Linkerd applies a Service's HTTPRoute only to traffic addressed to the Service, so the split cannot apply through this gateway"
                ),
            }),
            Some(Addressing::Service { .. }) => None,
            None => Some(format!(
                "{} does not echo the Host it was called with (`fprocess: env` does): how the gateway addresses it is unknown",
                c.function
            )),
        })
    }
}
