//! The cluster half of a trial: [`TrialOps`] and the check drivers on the kube layer
//! ([`crate::kubeops`]) and the OpenFaaS gateway.
//!
//! - apply: server-side apply with field manager `meshproof` (never the stack's
//!   `meshproof-stack`) and the run-id label on created objects;
//! - delete: by the objects a manifest names, resolved through discovery; absent is fine;
//! - deploy: OpenFaaS CE through the gateway REST API (`/system/functions`, basic auth from the
//!   `basic-auth` secret, registered with the redactor and never logged) over a port-forward to
//!   `svc/gateway:8080`; OpenFaaS Pro as an `openfaas.com/v1` Function;
//! - checks: probe pods and exec'd curl (deny, strict mTLS), ephemeral tcpdump containers
//!   (mTLS), HTTP through the gateway port-forward (canary, outside probes), the CA secret
//!   (TLS).

use super::checks::deny::{self, DenyDriver, DenyTiming, Observed, RenderedProbe};
use super::checks::mtls::{self, MtlsDriver, Traffic};
use super::checks::{
    canary as canary_check, mtls_engine, restore as restore_check, tls as tls_check, POD_START,
};
use super::executor::{AppliedObject, TrialOps};
use super::render::{self, FunctionRequest, ObjectRef, WaitTarget};
use super::tracker::Tracker;
use crate::check::http::{self, classify, Classification, HttpRequest};
use crate::check::tls::TlsVersion;
use crate::check::{CheckName, Outcome, Verdict};
use crate::images::ImageRole;
use crate::kubeops::apply::{apply_yaml, ApplyAction, ApplyOptions};
use crate::kubeops::call::call;
use crate::kubeops::capture::{self, CaptureSpec};
use crate::kubeops::portforward::{forward_service, PortForward};
use crate::kubeops::{
    client_from_kubeconfig, exec, wait, ClientOptions, KubeError, RunId, FIELD_MANAGER,
    RUN_ID_LABEL,
};
use crate::plan::{FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};
use crate::process::Redactor;
use crate::scenario::template::Vars;
use crate::scenario::{Check, DenyCheck, Mesh, MinProtocol, MtlsCheck};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams};
use kube::core::{GroupVersion, GroupVersionKind};
use kube::discovery::{self, Scope};
use kube::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Largest pcap kept in memory per capture.
const MAX_PCAP_BYTES: usize = 256 * 1024 * 1024;
/// Deadline of one request through the gateway.
const GATEWAY_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Deadline of one exec'd curl (curl's own `--max-time` is 5 s).
const EXEC_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a namespace deletion is waited on.
const NAMESPACE_GONE: Duration = Duration::from_secs(100);

/// OpenFaaS edition, as far as deploying functions is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployer {
    /// CE: the gateway REST API.
    Gateway,
    /// Pro: `openfaas.com/v1` Function objects.
    FunctionCrd,
}

/// Everything a trial needs to reach its environment.
#[derive(Debug, Clone)]
pub struct KubeTrialConfig {
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
    pub mesh: Mesh,
    pub deployer: Deployer,
    pub run_id: RunId,
    /// The environment's secrets; the gateway password is added to it.
    pub redactor: Redactor,
    /// Private (0700) directory for files a check writes (the cluster CA).
    pub work_dir: PathBuf,
}

struct Gateway {
    pf: PortForward,
    user: String,
    password: String,
    http: reqwest::Client,
}

/// A trial bound to one cluster.
pub struct KubeTrial {
    client: Client,
    streaming: Client,
    cfg: KubeTrialConfig,
    gateway: Option<Gateway>,
    seq: u32,
}

fn is_meshproof_sidecar(name: &str) -> bool {
    matches!(
        name,
        "istio-proxy" | "linkerd-proxy" | "istio-init" | "linkerd-init"
    )
}

impl KubeTrial {
    pub async fn connect(cfg: KubeTrialConfig) -> Result<KubeTrial, String> {
        let opts = ClientOptions {
            context: cfg.context.clone(),
            ..ClientOptions::default()
        };
        let client = client_from_kubeconfig(&cfg.kubeconfig, &opts)
            .await
            .map_err(|e| e.to_string())?;
        let sopts = ClientOptions {
            context: cfg.context.clone(),
            ..ClientOptions::streaming()
        };
        let streaming = client_from_kubeconfig(&cfg.kubeconfig, &sopts)
            .await
            .map_err(|e| e.to_string())?;
        Ok(KubeTrial {
            client,
            streaming,
            cfg,
            gateway: None,
            seq: 0,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The environment's secrets plus those this trial learned (the gateway password).
    pub fn redactor(&self) -> &Redactor {
        &self.cfg.redactor
    }

    fn redact(&self, text: impl std::fmt::Display) -> String {
        self.cfg.redactor.apply(&text.to_string())
    }

    fn next_id(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            run_id: Some(self.cfg.run_id.clone()),
            field_manager: FIELD_MANAGER.to_string(),
            ..ApplyOptions::default()
        }
    }

    /// The gateway port-forward and credentials, set up on first use.
    async fn gateway(&mut self) -> Result<&Gateway, String> {
        if self.gateway.is_none() {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), GATEWAY_NAMESPACE);
            let s = call("secret openfaas/basic-auth", secrets.get("basic-auth"))
                .await
                .map_err(|e| e.to_string())?;
            let data = s.data.unwrap_or_default();
            let field = |k: &str| {
                data.get(k)
                    .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
                    .ok_or_else(|| format!("secret openfaas/basic-auth has no key {k}"))
            };
            let user = field("basic-auth-user")?;
            let password = field("basic-auth-password")?;
            self.cfg.redactor.add(&password);
            let pf = forward_service(
                &self.streaming,
                GATEWAY_NAMESPACE,
                "gateway",
                8080,
                ([127, 0, 0, 1], 0).into(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let http = reqwest::Client::builder()
                .timeout(GATEWAY_REQUEST_TIMEOUT)
                .connect_timeout(GATEWAY_REQUEST_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())?;
            self.gateway = Some(Gateway {
                pf,
                user,
                password,
                http,
            });
        }
        self.gateway
            .as_ref()
            .ok_or_else(|| "no gateway".to_string())
    }

    async fn gateway_base(&mut self) -> Result<String, String> {
        Ok(format!("http://{}", self.gateway().await?.pf.local_addr()))
    }

    /// `/system/functions` with basic auth; returns status and body (redacted).
    async fn system_functions(
        &mut self,
        method: reqwest::Method,
        body: &Value,
    ) -> Result<(u16, String), String> {
        let g = self.gateway().await?;
        let url = format!("http://{}/system/functions", g.pf.local_addr());
        let r = g
            .http
            .request(method.clone(), &url)
            .basic_auth(&g.user, Some(&g.password))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{method} /system/functions: {e}"))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Ok((status, self.redact(text.trim())))
    }

    /// Resolves a kind written in a wait target (`certificate`, `Certificate`, `certificates`)
    /// through discovery, one API group at a time.
    async fn resolve_kind(&self, kind: &str) -> Result<(ApiResource, bool), String> {
        let k = kind.to_ascii_lowercase();
        let mut gvs = vec![GroupVersion::gv("", "v1")];
        let groups = call("API group list", self.client.list_api_groups())
            .await
            .map_err(|e| e.to_string())?;
        for g in groups.groups {
            if let Some(v) = g
                .preferred_version
                .map(|v| v.version)
                .or_else(|| g.versions.first().map(|v| v.version.clone()))
            {
                gvs.push(GroupVersion::gv(&g.name, &v));
            }
        }
        for gv in gvs {
            let Ok(group) = call(
                &format!("discovery of {}", gv.api_version()),
                discovery::pinned_group(&self.client, &gv),
            )
            .await
            else {
                continue;
            };
            for (ar, caps) in group.recommended_resources() {
                if ar.kind.to_ascii_lowercase() == k || ar.plural == k {
                    return Ok((ar, matches!(caps.scope, Scope::Namespaced)));
                }
            }
        }
        Err(format!("no kind {kind:?} is served by the cluster"))
    }

    async fn delete_object(&self, o: &ObjectRef) -> Result<(), String> {
        let (group, version) = match o.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), o.api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &o.kind);
        let (ar, caps) = match call(
            &format!("discovery of {}", o.kind),
            discovery::pinned_kind(&self.client, &gvk),
        )
        .await
        {
            Ok(r) => r,
            // The kind is gone (its CRD was removed): so is the object.
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let api: Api<DynamicObject> = match (&caps.scope, &o.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (Scope::Namespaced, None) => Api::namespaced_with(self.client.clone(), "default", &ar),
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &ar),
        };
        match call(
            &o.to_string(),
            api.delete(&o.name, &DeleteParams::background()),
        )
        .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        if o.kind == "Namespace" && ar.group.is_empty() {
            wait::namespace_gone(&self.client, &o.name, NAMESPACE_GONE)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Applies `yaml` and records what it created.
    async fn apply_tracked(&mut self, yaml: &str, tracker: &mut Tracker) -> Result<(), String> {
        for a in self.apply(yaml).await? {
            tracker.object(&a.object, a.created);
        }
        Ok(())
    }

    /// A `sleep infinity` pod with curl in `ns`, Ready; created objects are tracked.
    async fn probe_pod(
        &mut self,
        ns: &str,
        sa: &str,
        image: &str,
        tracker: &mut Tracker,
    ) -> Result<String, String> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        if call(&format!("serviceaccount {ns}/{sa}"), sas.get_opt(sa))
            .await
            .map_err(|e| e.to_string())?
            .is_none()
        {
            let doc = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}});
            self.apply_tracked(&doc.to_string(), tracker).await?;
        }
        let name = format!(
            "meshproof-probe-{}-{}",
            self.cfg.run_id.as_str().to_ascii_lowercase(),
            self.next_id()
        );
        let name: String = name
            .chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string();
        let doc = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": "meshproof-probe", "meshproof.dev/probe": name}},
            "spec": {
                "serviceAccountName": sa,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "probe", "image": image, "command": ["sleep", "infinity"]}]
            }
        });
        self.apply_tracked(&doc.to_string(), tracker).await?;
        wait::pods_ready(
            &self.client,
            ns,
            &format!("meshproof.dev/probe={name}"),
            1,
            POD_START,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(name)
    }

    /// `curl` from a probe pod, classified.
    async fn curl_from(&self, ns: &str, pod: &str, url: &str) -> Observed {
        // curl with the response head and a body prefix kept, so a 403 says who sent it.
        let argv = http::curl::command(url, 5);
        let cmd: Vec<&str> = argv.iter().map(String::as_str).collect();
        match exec::exec(&self.client, ns, pod, Some("probe"), &cmd, EXEC_TIMEOUT).await {
            Ok(out) => {
                let code = http::curl::status(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
                match out.exit_code {
                    Some(exit) => Observed {
                        classification: classify(&http::curl::observation(exit, &out.stdout)),
                        detail: format!(
                            "curl exit {exit}, http_code {code:03}{}",
                            if stderr.is_empty() {
                                String::new()
                            } else {
                                format!(", {stderr}")
                            }
                        ),
                    },
                    None => Observed {
                        classification: Classification::Undecided {
                            why: "exec reported no exit status".into(),
                        },
                        detail: out.failure.unwrap_or_default(),
                    },
                }
            }
            Err(e) => Observed {
                classification: Classification::Undecided {
                    why: format!("exec failed: {e}"),
                },
                detail: String::new(),
            },
        }
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

    /// The Ready pod of function `name` and its function container.
    async fn function_pod(&self, name: &str) -> Result<(String, String), String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), FUNCTIONS_NAMESPACE);
        let list = call(
            &format!("pods of function {name}"),
            pods.list(&ListParams::default().labels(&format!("faas_function={name}"))),
        )
        .await
        .map_err(|e| e.to_string())?;
        // The newest Ready pod: right after a function is re-created, a pod of the deleted
        // Deployment may still be Ready without a deletion timestamp yet.
        let pod = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && wait::pod_is_ready(p))
            .max_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp))
            .ok_or_else(|| format!("no Ready pod of function {name} (label faas_function={name}) in {FUNCTIONS_NAMESPACE}"))?;
        let containers: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        let container = containers
            .iter()
            .find(|c| c.as_str() == name)
            .or_else(|| containers.iter().find(|c| !is_meshproof_sidecar(c)))
            .cloned()
            .ok_or_else(|| format!("pod of function {name} has no application container"))?;
        Ok((pod.metadata.name.unwrap_or_default(), container))
    }

    /// The IPs of the OpenFaaS gateway's Ready pods: the only peers whose traffic with a
    /// function the mtls check judges.
    async fn gateway_pod_ips(&self) -> Result<Vec<std::net::IpAddr>, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), GATEWAY_NAMESPACE);
        let list = call(
            "gateway pods",
            pods.list(&ListParams::default().labels("app=gateway")),
        )
        .await
        .map_err(|e| e.to_string())?;
        let ips: Vec<std::net::IpAddr> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && wait::pod_is_ready(p))
            .flat_map(|p| p.status.iter().flat_map(|s| s.pod_ips.iter().flatten()))
            .filter_map(|ip| ip.ip.parse().ok())
            .collect();
        if ips.is_empty() {
            return Err(format!(
                "no Ready gateway pod (label app=gateway) with an IP in {GATEWAY_NAMESPACE}"
            ));
        }
        Ok(ips)
    }

    async fn run_check(
        &mut self,
        check: &Check,
        vars: &Vars,
        tracker: &mut Tracker,
    ) -> Result<Verdict<Value>, String> {
        match check {
            Check::Deny(d) => self.deny(d, vars, tracker).await,
            Check::Mtls(m) => self.mtls(m, vars, tracker).await,
            Check::Canary(c) => {
                let base = self.gateway_base().await?;
                let url = format!("{base}/function/{}", c.function);
                let config = canary_check::engine_config(
                    c,
                    &format!("{}/function/{}", "gateway", c.function),
                )?;
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
            Check::Tls(t) => {
                let host = t.host.render(vars).map_err(|e| e.to_string())?;
                let port: u16 = vars
                    .get("ingress.httpsPort")
                    .and_then(|p| p.parse().ok())
                    .ok_or("the ingress https port is not set")?;
                let secrets: Api<Secret> =
                    Api::namespaced(self.client.clone(), &t.ca_secret.namespace);
                let what = format!("secret {}/{}", t.ca_secret.namespace, t.ca_secret.name);
                let s = call(&what, secrets.get(&t.ca_secret.name))
                    .await
                    .map_err(|e| e.to_string())?;
                let ca = s
                    .data
                    .unwrap_or_default()
                    .get(&t.ca_secret.key)
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                    .ok_or_else(|| format!("{what} has no key {}", t.ca_secret.key))?;
                let input = tls_check::TlsTrialInput {
                    host,
                    port,
                    path: t.path.clone(),
                    connect_ip: "127.0.0.1".into(),
                    ca_pem: ca,
                    min_days: t.min_days,
                    min_protocol: match t.min_protocol {
                        MinProtocol::Tls12 => TlsVersion::Tls12,
                        MinProtocol::Tls13 => TlsVersion::Tls13,
                    },
                    // The OpenFaaS gateway's health endpoint, through the ingress route: a
                    // certificate served in front of a route that points nowhere must not pass.
                    expect_status: Some(200),
                    timeout: t.timeout,
                    retry_pause: Duration::from_secs(5),
                };
                crate::private_fs::private_dir(&self.cfg.work_dir)
                    .map_err(|e| format!("{}: {e}", self.cfg.work_dir.display()))?;
                Ok(tls_check::run_tls_check(&input, &self.cfg.work_dir)
                    .await
                    .erase())
            }
            Check::Restore(_) => Ok(Verdict::new(
                CheckName::Restore,
                Outcome::Error,
                vec![restore_check::LIFECYCLE_NOT_YET.to_string()],
                Value::Null,
            )),
        }
    }

    async fn deny(
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

    async fn mtls(
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

/// The curl image for probe pods: the check's own, else the suite's `images.probe`.
fn probe_image(own: Option<&str>, vars: &Vars) -> Result<String, String> {
    own.or_else(|| vars.get(ImageRole::Probe.var()))
        .map(str::to_string)
        .ok_or_else(|| "no probe image: the `images.probe` variable is not set".into())
}

impl TrialOps for KubeTrial {
    async fn apply(&mut self, yaml: &str) -> Result<Vec<AppliedObject>, String> {
        let named = render::objects_of(yaml, "default").map_err(|e| self.redact(e))?;
        let applied = apply_yaml(&self.client, yaml, &self.apply_options())
            .await
            .map_err(|e| self.redact(e))?;
        Ok(applied
            .iter()
            .map(|a| {
                let object = named
                    .iter()
                    .find(|o| {
                        o.kind == a.kind
                            && o.name == a.name
                            && (o.namespace.is_none() || o.namespace == a.namespace)
                    })
                    .cloned()
                    .unwrap_or_else(|| ObjectRef {
                        api_version: String::new(),
                        kind: a.kind.clone(),
                        namespace: a.namespace.clone(),
                        name: a.name.clone(),
                    });
                let object = ObjectRef {
                    namespace: a.namespace.clone().or(object.namespace.clone()),
                    ..object
                };
                AppliedObject {
                    object,
                    created: a.action == ApplyAction::Created,
                }
            })
            .collect())
    }

    async fn delete(&mut self, objects: &[ObjectRef]) -> Result<(), String> {
        let mut errors = Vec::new();
        for o in objects {
            if let Err(e) = self.delete_object(o).await {
                errors.push(format!("{o}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(self.redact(errors.join("; ")))
        }
    }

    async fn deploy(&mut self, f: &FunctionRequest) -> Result<(), String> {
        match self.cfg.deployer {
            Deployer::FunctionCrd => {
                self.apply(&f.function_cr_yaml(FUNCTIONS_NAMESPACE)).await?;
                Ok(())
            }
            Deployer::Gateway => {
                let body = f.gateway_body();
                let (status, text) = self.system_functions(reqwest::Method::POST, &body).await?;
                if (200..300).contains(&status) {
                    return Ok(());
                }
                // An existing function (from a re-run) is updated in place.
                if status == 409 || text.contains("already exists") {
                    let (status, text) = self.system_functions(reqwest::Method::PUT, &body).await?;
                    if (200..300).contains(&status) {
                        return Ok(());
                    }
                    return Err(format!(
                        "PUT /system/functions for {}: HTTP {status}: {text}",
                        f.service
                    ));
                }
                Err(format!(
                    "POST /system/functions for {}: HTTP {status}: {text}",
                    f.service
                ))
            }
        }
    }

    async fn remove_function(&mut self, name: &str) -> Result<(), String> {
        match self.cfg.deployer {
            Deployer::FunctionCrd => {
                let o = ObjectRef {
                    api_version: "openfaas.com/v1".into(),
                    kind: "Function".into(),
                    namespace: Some(FUNCTIONS_NAMESPACE.into()),
                    name: name.into(),
                };
                self.delete_object(&o).await.map_err(|e| self.redact(e))
            }
            Deployer::Gateway => {
                let (status, text) = self
                    .system_functions(
                        reqwest::Method::DELETE,
                        &serde_json::json!({ "functionName": name }),
                    )
                    .await?;
                if (200..300).contains(&status) || status == 404 {
                    Ok(())
                } else {
                    Err(format!(
                        "DELETE /system/functions {name}: HTTP {status}: {text}"
                    ))
                }
            }
        }
    }

    async fn wait(&mut self, target: &WaitTarget, timeout: Duration) -> Result<(), String> {
        let r = match target {
            WaitTarget::Rollout { namespace, name } => {
                wait::deployment_rolled_out(&self.client, namespace, name, timeout)
                    .await
                    .map(|_| ())
            }
            WaitTarget::PodsReady {
                namespace,
                selector,
            } => wait::pods_ready(&self.client, namespace, selector, 1, timeout)
                .await
                .map(|_| ()),
            WaitTarget::Established { name } => wait::crd_established(&self.client, name, timeout)
                .await
                .map(|_| ()),
            WaitTarget::Condition {
                kind,
                namespace,
                name,
                type_,
                status,
            } => {
                let (ar, namespaced) = self.resolve_kind(kind).await?;
                let ns = if namespaced {
                    Some(namespace.as_deref().unwrap_or("default"))
                } else {
                    None
                };
                wait::custom_condition(&self.client, &ar, ns, name, type_, status, timeout)
                    .await
                    .map(|_| ())
            }
        };
        r.map_err(|e: KubeError| self.redact(e))
    }

    async fn check(&mut self, check: &Check, vars: &Vars, tracker: &mut Tracker) -> Verdict<Value> {
        let name = match check {
            Check::Mtls(_) => CheckName::Mtls,
            Check::Deny(_) => CheckName::Http,
            Check::Canary(_) => CheckName::Canary,
            Check::Tls(_) => CheckName::Tls,
            Check::Restore(_) => CheckName::Restore,
        };
        match self.run_check(check, vars, tracker).await {
            Ok(mut v) => {
                v.reasons = v.reasons.iter().map(|r| self.redact(r)).collect();
                v
            }
            Err(e) => Verdict::new(
                name,
                Outcome::Error,
                vec![format!(
                    "{} check could not run: {}",
                    check.kind(),
                    self.redact(e)
                )],
                Value::Null,
            ),
        }
    }

    async fn dump(&mut self, dir: &Path) -> Result<(), String> {
        crate::private_fs::private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let r = crate::kubeops::dump::dump_namespaces(
            &self.client,
            &[GATEWAY_NAMESPACE, FUNCTIONS_NAMESPACE],
            dir,
        )
        .await
        .map_err(|e| self.redact(e))?;
        if r.errors.is_empty() {
            Ok(())
        } else {
            Err(self.redact(r.errors.join("; ")))
        }
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
        let (pod, container) = self.trial.function_pod(function).await?;
        let id = self.trial.next_id();
        let suffix = hex::encode(rand::random::<[u8; 3]>());
        // Only the gateway's traffic with the function: under Linkerd, kubelet probes reach the
        // application port in plaintext on eth0, and they are not what the check is about.
        let peers = self.trial.gateway_pod_ips().await?;
        let mut spec =
            CaptureSpec::tcpdump(&format!("meshproof-capture-{id}-{suffix}"), &container)
                .with_filter(capture::peer_filter(self.port, &peers));
        spec.image = self.capture_image.clone();
        let mut cap =
            capture::start_capture(&self.trial.streaming, FUNCTIONS_NAMESPACE, &pod, &spec)
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
        let mut traffic = Traffic::default();
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
