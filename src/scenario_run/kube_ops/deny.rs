//! The deny check's cluster side: probes from a probe pod or from outside (through the
//! gateway port-forward), the policy applied and tracked, and every OpenFaaS pod still Ready.

use super::probes::probe_image;
use super::KubeTrial;
use crate::check::http::{self, classify, Classification, HttpRequest};
use crate::check::Verdict;
use crate::kubeops::call::call;
use crate::kubeops::portforward::forward_pod;
use crate::kubeops::wait;
use crate::scenario::template::Vars;
use crate::scenario::DenyCheck;
use crate::scenario_run::checks::deny::{
    self, DenyDriver, DenyTiming, Observed, ProbeTarget, RenderedProbe,
};
use crate::scenario_run::linkerd::{self, AuthzCounters};
use crate::scenario_run::render;
use crate::scenario_run::tracker::Tracker;
use crate::scenario_run::ztunnel::ZtunnelView;
use crate::vocab::{FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// Deadline of one read of a Linkerd proxy's `/metrics`.
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);

impl KubeTrial {
    pub(super) async fn deny(
        &mut self,
        d: &DenyCheck,
        vars: &Vars,
        tracker: &mut Tracker,
    ) -> Result<Verdict<Value>, String> {
        let probes = deny::render_probes(d, vars)?;
        // The trial's own data plane: an ambient trial takes the policy's `istioAmbient`
        // variant, never the sidecar one.
        let policy = render::render_manifests(&d.policy, self.cfg.data_plane, vars)
            .map_err(|e| e.to_string())?;
        let ns = d.probe.namespace.render(vars).map_err(|e| e.to_string())?;
        let image = probe_image(d.probe.image.as_deref(), vars)?;
        let plane = self.cfg.data_plane;
        let mut driver = KubeDeny {
            trial: self,
            tracker,
            ns,
            service_account: d.probe.service_account.clone(),
            image,
            pod: None,
            policy: policy.yaml,
            targets: HashMap::new(),
        };
        Ok(
            deny::run_deny(&mut driver, &probes, DenyTiming::for_check(d), plane)
                .await
                .erase(),
        )
    }

    /// A request from this machine through the gateway port-forward, for `from: outside`
    /// probes: the URL's path is kept, host and port become the forward's.
    async fn outside(&mut self, url: &str) -> Observed {
        let base = match self.gateway_base().await {
            Ok(b) => b,
            Err(e) => return Observed::undecided(e),
        };
        let path = reqwest::Url::parse(url)
            .map(|u| http::probe::request_target(&u))
            .unwrap_or_else(|_| "/".into());
        let req = match HttpRequest::parse(&format!("{base}{path}"), "GET", &[]) {
            Ok(r) => r,
            Err(e) => return Observed::undecided(e.to_string()),
        };
        let attempt = http::probe::observe(&req, http::DEFAULT_TIMEOUT).await;
        Observed::new(
            outside_classification(&attempt.observation),
            format!(
                "{} via the gateway port-forward",
                http::observation_kind(&attempt.observation)
            ),
        )
    }

    /// The pods a probe URL reaches, resolved through the Service its host names.
    pub(super) async fn probe_target(
        &self,
        url: &str,
        default_ns: &str,
    ) -> Result<ProbeTarget, String> {
        let (svc, ns, port) = deny::service_of(url, default_ns)?;
        let services: Api<Service> = Api::namespaced(self.client.clone(), &ns);
        let service = call(&format!("service {ns}/{svc}"), services.get(&svc))
            .await
            .map_err(|e| e.to_string())?;
        let selector = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if selector.is_empty() {
            return Err(format!("service {ns}/{svc} has no selector"));
        }
        let labels = selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let list = call(
            &format!("pods of service {ns}/{svc}"),
            pods.list(&ListParams::default().labels(&labels)),
        )
        .await
        .map_err(|e| e.to_string())?;
        deny::probe_target(&service, &list.items, port)
    }

    /// The Linkerd authorization counters of `target`'s pods for its pod port, summed: each
    /// proxy's `/metrics` on the admin port, read through a port-forward (localhost is always
    /// authorized by the proxy, whatever the pod's inbound policy).
    pub(super) async fn linkerd_counters(
        &self,
        target: &ProbeTarget,
    ) -> Result<AuthzCounters, String> {
        let http = reqwest::Client::builder()
            .timeout(METRICS_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let mut sum = AuthzCounters::default();
        for pod in &target.pods {
            let pf = forward_pod(
                &self.streaming,
                &target.namespace,
                pod,
                linkerd::ADMIN_PORT,
                ([127, 0, 0, 1], 0).into(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let url = format!("http://{}/metrics", pf.local_addr());
            let text = async {
                let r = http.get(&url).send().await?.error_for_status()?;
                r.text().await
            }
            .await
            .map_err(|e| {
                format!(
                    "{}/{pod}:{} /metrics: {e}",
                    target.namespace,
                    linkerd::ADMIN_PORT
                )
            });
            pf.stop().await;
            sum = sum + linkerd::authz_counters(&text?, target.container_port)?;
        }
        Ok(sum)
    }
}

/// An outside probe's observation. The TCP peer of an outside probe is the local port-forward,
/// not the mesh: a connection it closes or resets means the forward's stream failed (the pod
/// went away, the API server hiccupped), never that a policy denied the request — so only an
/// HTTP answer decides; anything else is undecided.
pub fn outside_classification(o: &http::Observation) -> Classification {
    match o {
        http::Observation::ResetAfterConnect | http::Observation::EofAfterConnect => Classification::Undecided {
            why: "the gateway port-forward closed the connection without an HTTP answer (its stream to the pod failed; not a policy decision)".into(),
        },
        other => classify(other),
    }
}

/// [`DenyDriver`] on a trial.
struct KubeDeny<'a> {
    trial: &'a mut KubeTrial,
    tracker: &'a mut Tracker,
    ns: String,
    service_account: String,
    image: String,
    /// The probe pod, started at the first in-pod probe (so a check refused up front starts
    /// none); its start's error is kept, not retried on every attempt.
    pod: Option<Result<String, String>>,
    policy: String,
    /// Each probe's target, resolved once (by probe name).
    targets: HashMap<String, ProbeTarget>,
}

impl KubeDeny<'_> {
    async fn probe_pod(&mut self) -> Result<String, String> {
        if let Some(started) = &self.pod {
            return started.clone();
        }
        let started = self
            .trial
            .probe_pod(
                &self.ns,
                &self.service_account,
                &self.image,
                &[],
                self.tracker,
            )
            .await;
        self.pod = Some(started.clone());
        started
    }
}

impl DenyDriver for KubeDeny<'_> {
    async fn probe(&mut self, p: &RenderedProbe) -> Observed {
        match p.from {
            crate::scenario::ProbeFrom::Outside => self.trial.outside(&p.url).await,
            crate::scenario::ProbeFrom::Probe => match &self.pod {
                Some(Err(e)) => Observed::undecided(format!("no probe pod: {e}")),
                _ => match self.probe_pod().await {
                    Ok(pod) => self.trial.curl_from(&self.ns, &pod, &p.url).await,
                    Err(e) => Observed::undecided(format!("no probe pod: {e}")),
                },
            },
        }
    }

    async fn target(&mut self, p: &RenderedProbe) -> Result<ProbeTarget, String> {
        if let Some(t) = self.targets.get(&p.name) {
            return Ok(t.clone());
        }
        let t = self.trial.probe_target(&p.url, &self.ns).await?;
        self.targets.insert(p.name.clone(), t.clone());
        Ok(t)
    }

    async fn counters(&mut self, p: &RenderedProbe) -> Result<AuthzCounters, String> {
        let t = self.target(p).await?;
        self.trial.linkerd_counters(&t).await
    }

    async fn ztunnel_log(
        &mut self,
        p: &RenderedProbe,
        since: std::time::SystemTime,
    ) -> Result<ZtunnelView, String> {
        let pod = match &self.pod {
            Some(Ok(pod)) => pod.clone(),
            _ => return Err("no probe pod, so no source address to look for".into()),
        };
        let sources = super::ztunnel::pod_ips(&self.trial.pod(&self.ns, &pod).await?);
        let t = self.target(p).await?;
        self.trial
            .ztunnel_view(&t.namespace, &t.pods, sources, since)
            .await
    }

    async fn apply_policy(&mut self) -> Result<(), String> {
        let yaml = self.policy.clone();
        self.trial.apply_tracked(&yaml, self.tracker).await
    }

    async fn workloads_ready(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        for ns in [GATEWAY_NAMESPACE, FUNCTIONS_NAMESPACE] {
            let pods: Api<Pod> = Api::namespaced(self.trial.client.clone(), ns);
            let list = call(&format!("pods in {ns}"), pods.list(&ListParams::default()))
                .await
                .map_err(|e| e.to_string())?;
            for p in list.items {
                let done = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Succeeded");
                if p.metadata.deletion_timestamp.is_none() && !done && !wait::pod_is_ready(&p) {
                    problems.push(format!("{ns}/{}", p.metadata.name.unwrap_or_default()));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("not Ready: {}", problems.join(", ")))
        }
    }
}
