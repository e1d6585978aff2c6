//! The deny check's cluster side: probes from a probe pod or from outside (through the
//! gateway port-forward), the policy applied and tracked, and every OpenFaaS pod still Ready.

use super::probes::probe_image;
use super::KubeTrial;
use crate::check::http::{self, classify, Classification, HttpRequest};
use crate::check::Verdict;
use crate::kubeops::call::call;
use crate::kubeops::wait;
use crate::scenario::template::Vars;
use crate::scenario::DenyCheck;
use crate::scenario_run::checks::deny::{self, DenyDriver, DenyTiming, Observed, RenderedProbe};
use crate::scenario_run::render;
use crate::scenario_run::tracker::Tracker;
use crate::vocab::{FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;

impl KubeTrial {
    pub(super) async fn deny(
        &mut self,
        d: &DenyCheck,
        vars: &Vars,
        tracker: &mut Tracker,
    ) -> Result<Verdict<Value>, String> {
        let probes = deny::render_probes(d, vars)?;
        let policy =
            render::render_manifests(&d.policy, self.cfg.mesh, vars).map_err(|e| e.to_string())?;
        let ns = d.probe.namespace.render(vars).map_err(|e| e.to_string())?;
        let image = probe_image(d.probe.image.as_deref(), vars)?;
        let pod = if probes
            .iter()
            .any(|p| p.from == crate::scenario::ProbeFrom::Probe)
        {
            Some(
                self.probe_pod(&ns, &d.probe.service_account, &image, tracker)
                    .await?,
            )
        } else {
            None
        };
        let mut driver = KubeDeny {
            trial: self,
            tracker,
            ns,
            pod,
            policy: policy.yaml,
        };
        Ok(
            deny::run_deny(&mut driver, &probes, DenyTiming::for_check(d))
                .await
                .erase(),
        )
    }

    /// A request from this machine through the gateway port-forward, for `from: outside`
    /// probes: the URL's path is kept, host and port become the forward's.
    async fn outside(&mut self, url: &str) -> Observed {
        let base = match self.gateway_base().await {
            Ok(b) => b,
            Err(e) => {
                return Observed {
                    classification: Classification::Undecided { why: e },
                    detail: String::new(),
                }
            }
        };
        let path = reqwest::Url::parse(url)
            .map(|u| http::probe::request_target(&u))
            .unwrap_or_else(|_| "/".into());
        let req = match HttpRequest::parse(&format!("{base}{path}"), "GET", &[]) {
            Ok(r) => r,
            Err(e) => {
                return Observed {
                    classification: Classification::Undecided { why: e.to_string() },
                    detail: String::new(),
                }
            }
        };
        let attempt = http::probe::observe(&req, http::DEFAULT_TIMEOUT).await;
        Observed {
            classification: outside_classification(&attempt.observation),
            detail: format!(
                "{} via the gateway port-forward",
                http::observation_kind(&attempt.observation)
            ),
        }
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
    pod: Option<String>,
    policy: String,
}

impl DenyDriver for KubeDeny<'_> {
    async fn probe(&mut self, p: &RenderedProbe) -> Observed {
        match p.from {
            crate::scenario::ProbeFrom::Outside => self.trial.outside(&p.url).await,
            crate::scenario::ProbeFrom::Probe => match &self.pod {
                Some(pod) => self.trial.curl_from(&self.ns, pod, &p.url).await,
                None => Observed {
                    classification: Classification::Undecided {
                        why: "no probe pod".into(),
                    },
                    detail: String::new(),
                },
            },
        }
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
