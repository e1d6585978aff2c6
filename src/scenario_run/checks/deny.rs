//! The `deny` check's order of events, over a [`DenyDriver`] that does the probing.
//!
//! 0. **Can the mesh deny it at all?** On Linkerd, a probe whose port and path are a kubelet
//!    `httpGet` probe of the target pods is authorized for every client while the pod's
//!    `Server` has no routes (ledger LD-12): such a probe is refused up front, an **error**.
//! 1. **Negative control.** Every probe runs *before* the policy exists and must show its
//!    `before` outcome (usually allowed); undecided answers are retried for
//!    [`DenyTiming::before_for`]. A probe that is already denied proves nothing about the
//!    policy — the path may be broken, or another trial's policy may still be there — so the
//!    check is an **error**, and the policy is never applied.
//! 2. The policy is applied.
//! 3. Each probe is polled until it shows its `after` outcome or the settle timeout passes;
//!    a probe that never changes **fails** with its last observation (an undecided last
//!    observation — timeout, 5xx, DNS — is an **error**: the check cannot tell).
//!    **A 403 counts as denied only when it is shown to come from the mesh** ([`attribute`]):
//!    Istio's RBAC filter answers with the body `RBAC: access denied`; Linkerd's proxy sends a
//!    bare 403 to a meshed client (its own proxy strips `l5d-proxy-error`, ledger LD-11), so its
//!    denial is proven by `inbound_http_authz_deny_total` rising on the target pods' proxies
//!    across the probe. Any other 403 — the application's own — is undecided, an **error**.
//!    **On Istio ambient** there are two enforcement points (ledger IS-22): the destination
//!    node's ztunnel, which refuses an L4 policy's connection by closing it (curl sees a reset
//!    or an empty reply, never a 403), and a waypoint (Envoy), which answers an L7 policy's
//!    request with `403 RBAC: access denied`. A reset or close counts as denied only when the
//!    destination ztunnel logged a policy rejection for that very connection (probe pod →
//!    target pods) during the attempt; otherwise it is undecided, an **error**. A 403 counts
//!    only with Envoy's RBAC body, and is the waypoint's. The expectation's `enforcer` (default
//!    ztunnel) must be who answered: a 403 where ztunnel was expected, or a reset where a
//!    waypoint was expected, **fails** naming both. Elsewhere a reset or close after connect
//!    stays a denial without attribution (sidecars and Linkerd refuse that way too), and an
//!    `enforcer` is an **error**: it names an ambient enforcement point.
//! 4. The OpenFaaS pods must still be Ready: a policy that also cut the kubelet's probes
//!    "denies" by breaking the workloads, which **fails**.

use crate::check::http::{Classification, Denial, DenySource};
use crate::check::{CheckName, Outcome, Verdict};
use crate::scenario::template::Vars;
use crate::scenario::{Allowance, DataPlane, DenyCheck, Enforcer, Mesh, ProbeFrom};
use crate::scenario_run::linkerd::AuthzCounters;
use crate::scenario_run::ztunnel::{self, ZtunnelView};
use serde::Serialize;
use std::time::{Duration, Instant, SystemTime};

/// A probe with its URL rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedProbe {
    pub name: String,
    #[serde(serialize_with = "ser_from")]
    pub from: ProbeFrom,
    pub url: String,
    pub before: Allowance,
    pub after: Allowance,
    /// Istio ambient: who must answer the denial (`None`: ztunnel, when `after` is denied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcer: Option<Enforcer>,
}

impl RenderedProbe {
    /// The enforcement point that must answer this probe's denial on `plane`: on ambient the
    /// expectation's `enforcer`, ztunnel by default; `None` elsewhere, or when the probe is not
    /// expected to be denied.
    pub fn expected_enforcer(&self, plane: DataPlane) -> Option<Enforcer> {
        (plane == DataPlane::IstioAmbient && self.after == Allowance::Denied)
            .then(|| self.enforcer.unwrap_or(Enforcer::Ztunnel))
    }
}

fn enforcer_word(e: Enforcer) -> &'static str {
    match e {
        Enforcer::Ztunnel => "ztunnel",
        Enforcer::Waypoint => "a waypoint",
    }
}

fn ser_from<S: serde::Serializer>(f: &ProbeFrom, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match f {
        ProbeFrom::Probe => "probe",
        ProbeFrom::Outside => "outside",
    })
}

/// Renders every expectation's URL.
pub fn render_probes(d: &DenyCheck, vars: &Vars) -> Result<Vec<RenderedProbe>, String> {
    d.expectations
        .iter()
        .map(|e| {
            Ok(RenderedProbe {
                name: e.name.clone(),
                from: e.from,
                url: e
                    .url
                    .render(vars)
                    .map_err(|err| format!("probe {}: {err}", e.name))?,
                before: e.before,
                after: e.after,
                enforcer: e.enforcer,
            })
        })
        .collect()
}

/// One probe attempt: how it was classified, and what was seen (curl exit code and status, or
/// the live observation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub classification: Classification,
    pub detail: String,
    /// For a 403: whether it was shown to come from the mesh ([`attribute`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Attribution>,
}

/// Who refused a request (a 403 anywhere; a reset or close on Istio ambient), as far as the
/// evidence shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "shown", rename_all = "lowercase")]
pub enum Attribution {
    /// The mesh denied it; `by` says how that was shown, `enforcer` which ambient enforcement
    /// point it was (`None` off ambient).
    Mesh {
        by: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        enforcer: Option<Enforcer>,
    },
    /// Nothing shows the mesh sent it.
    Unshown { why: String },
}

impl Attribution {
    fn mesh(by: impl Into<String>) -> Attribution {
        Attribution::Mesh {
            by: by.into(),
            enforcer: None,
        }
    }

    /// The ambient enforcement point shown to have answered.
    pub fn enforcer(&self) -> Option<Enforcer> {
        match self {
            Attribution::Mesh { enforcer, .. } => *enforcer,
            Attribution::Unshown { .. } => None,
        }
    }
}

/// What was read from the mesh around one attempt to tell who refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshEvidence {
    /// Nothing was read.
    None,
    /// Linkerd: the target proxies' counters before and after (`Err` when unreadable).
    Linkerd(Result<(AuthzCounters, AuthzCounters), String>),
    /// Istio ambient: the destination ztunnels' access log over the attempt's window (`Err`
    /// when unreadable).
    Ztunnel(Result<(ZtunnelView, ztunnel::Window), String>),
}

impl Observed {
    pub fn new(classification: Classification, detail: impl Into<String>) -> Observed {
        Observed {
            classification,
            detail: detail.into(),
            attribution: None,
        }
    }

    /// An observation that cannot be decided, with why.
    pub fn undecided(why: impl Into<String>) -> Observed {
        Observed::new(Classification::Undecided { why: why.into() }, "")
    }

    /// Allowed, denied (by the mesh), or undecided. A 403 not shown to come from the mesh is
    /// undecided: it may be the application's own answer. So is a reset or close whose
    /// attribution was sought (Istio ambient) and not shown; one nobody sought to attribute
    /// stays a denial.
    pub fn allowance(&self) -> Option<Allowance> {
        match &self.classification {
            Classification::Allowed { .. } => Some(Allowance::Allowed),
            Classification::Denied(Denial::Forbidden { .. }) => match self.attribution {
                Some(Attribution::Mesh { .. }) => Some(Allowance::Denied),
                _ => None,
            },
            Classification::Denied(_) => match self.attribution {
                Some(Attribution::Unshown { .. }) => None,
                _ => Some(Allowance::Denied),
            },
            Classification::Undecided { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match (&self.classification, &self.attribution) {
            (Classification::Allowed { status }, _) => {
                format!("allowed (HTTP {status}; {})", self.detail)
            }
            (Classification::Denied(d), Some(Attribution::Mesh { by, .. })) => {
                format!("denied ({d:?}, by the mesh: {by}; {})", self.detail)
            }
            (Classification::Denied(d), Some(Attribution::Unshown { why })) => format!(
                "undecided ({d:?} not shown to come from the mesh: {why}; {})",
                self.detail
            ),
            (Classification::Denied(d), None) => format!("denied ({d:?}; {})", self.detail),
            (Classification::Undecided { why }, _) => {
                format!("undecided ({why}; {})", self.detail)
            }
        }
    }
}

/// Whether a refusal came from the mesh, from `evidence` read around the attempt. `None` for
/// an answer nobody needs to attribute: anything allowed or undecided, and a reset or close off
/// Istio ambient (sidecars and Linkerd refuse at the connection too, and nothing else on the
/// path does, so it stays a denial as before).
pub fn attribute(
    plane: DataPlane,
    classification: &Classification,
    evidence: MeshEvidence,
) -> Option<Attribution> {
    let unshown = |why: String| Some(Attribution::Unshown { why });
    let source = match classification {
        Classification::Denied(Denial::Forbidden { source }) => source,
        Classification::Denied(Denial::ConnectionReset | Denial::ConnectionClosed)
            if plane == DataPlane::IstioAmbient =>
        {
            return attribute_close(evidence);
        }
        _ => return None,
    };
    match (plane, source) {
        // The only Envoy on an ambient path is a waypoint: its RBAC filter's body (IS-10).
        (DataPlane::IstioAmbient, DenySource::IstioRbac) => Some(Attribution::Mesh {
            by: "a waypoint (Envoy's RBAC filter: body `RBAC: access denied`)".into(),
            enforcer: Some(Enforcer::Waypoint),
        }),
        (DataPlane::IstioAmbient, _) => unshown(
            "no `RBAC: access denied` body, so not a waypoint's RBAC filter (ztunnel never answers with HTTP: the application or another proxy answered)".into(),
        ),
        (DataPlane::IstioSidecar, DenySource::IstioRbac) => {
            Some(Attribution::mesh("Istio's RBAC filter (body `RBAC: access denied`)"))
        }
        (DataPlane::IstioSidecar, _) => unshown(
            "no `RBAC: access denied` body, so not Istio's RBAC filter (the application or another proxy may have answered)".into(),
        ),
        (DataPlane::Linkerd, DenySource::LinkerdProxy) => {
            Some(Attribution::mesh("the Linkerd proxy (`l5d-proxy-error` header)"))
        }
        (DataPlane::Linkerd, _) => match evidence {
            MeshEvidence::Linkerd(Ok((before, after))) if after.denied > before.denied => {
                Some(Attribution::mesh(format!(
                    "inbound_http_authz_deny_total rose by {} on the target's Linkerd proxies",
                    after.denied - before.denied
                )))
            }
            MeshEvidence::Linkerd(Ok(_)) => unshown(
                "inbound_http_authz_deny_total did not rise on the target's Linkerd proxies: the 403 came from elsewhere (the application?)".into(),
            ),
            MeshEvidence::Linkerd(Err(e)) => {
                unshown(format!("the target's Linkerd proxy metrics could not be read: {e}"))
            }
            _ => unshown("the target's Linkerd proxy metrics were not read".into()),
        },
    }
}

/// A reset or close on ambient: ztunnel's, when the destination ztunnel logged a policy
/// rejection of this connection in the attempt's window (IS-22).
fn attribute_close(evidence: MeshEvidence) -> Option<Attribution> {
    let why = match evidence {
        MeshEvidence::Ztunnel(Ok((view, window))) => {
            match ztunnel::policy_rejection(&view.lines, &view.sources, &view.targets, window) {
                Some(line) => {
                    return Some(Attribution::Mesh {
                        by: format!(
                            "the destination ztunnel ({}) logged `{}` for {} -> {}",
                            view.ztunnels.join(", "),
                            line.rejection().unwrap_or_default(),
                            line.src_addr.as_deref().unwrap_or("?"),
                            line.dst_hbone_addr
                                .as_deref()
                                .or(line.dst_addr.as_deref())
                                .unwrap_or("?")
                        ),
                        enforcer: Some(Enforcer::Ztunnel),
                    })
                }
                None => format!(
                    "the destination ztunnel ({}) logged no policy rejection of a connection from {} to {} during the attempt ({} completed connections read), so nothing shows the mesh closed it",
                    if view.ztunnels.is_empty() { "none found".to_string() } else { view.ztunnels.join(", ") },
                    ips(&view.sources),
                    ips(&view.targets),
                    view.lines.len()
                ),
            }
        }
        MeshEvidence::Ztunnel(Err(e)) => {
            format!("the destination ztunnel's access log could not be read: {e}")
        }
        _ => "the destination ztunnel's access log was not read".into(),
    };
    Some(Attribution::Unshown { why })
}

fn ips(v: &[std::net::IpAddr]) -> String {
    if v.is_empty() {
        return "(no address)".into();
    }
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A kubelet `httpGet` probe of one of a probe's target pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeletProbe {
    pub pod: String,
    pub container: String,
    /// `readiness`, `liveness` or `startup`.
    pub kind: String,
    pub port: u16,
    pub path: String,
}

/// The pods a probe's URL reaches (the Service its host names) and the pod port its URL port
/// maps to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeTarget {
    pub namespace: String,
    pub service: String,
    pub pods: Vec<String>,
    pub container_port: u16,
    pub kubelet_probes: Vec<KubeletProbe>,
}

/// Where a probe URL's host points: `svc`, `svc.ns`, `svc.ns.svc` or
/// `svc.ns.svc.<cluster domain>` (`ns` defaults to `default_ns`), and its port (80 by default).
pub fn service_of(url: &str, default_ns: &str) -> Result<(String, String, u16), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = u.host_str().ok_or_else(|| format!("{url} has no host"))?;
    let port = u.port_or_known_default().unwrap_or(80);
    let mut parts = host.split('.');
    let svc = parts.next().unwrap_or_default().to_string();
    let ns = match (parts.next(), parts.next()) {
        (None, _) => default_ns.to_string(),
        (Some(ns), None | Some("svc")) => ns.to_string(),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{host} is not a Service name (svc, svc.ns or svc.ns.svc.<domain>)"
            ))
        }
    };
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("{host} is an IP address, not a Service name"));
    }
    Ok((svc, ns, port))
}

/// The target of a probe: the pods Service `svc` selects (not being deleted), the pod port its
/// `port` maps to, and every `httpGet` probe (readiness, liveness, startup) of their
/// containers, init containers included (native sidecars have probes too). Pure.
pub fn probe_target(
    service: &k8s_openapi::api::core::v1::Service,
    pods: &[k8s_openapi::api::core::v1::Pod],
    port: u16,
) -> Result<ProbeTarget, String> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let name = service.metadata.name.clone().unwrap_or_default();
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let object = format!("service {namespace}/{name}");
    let spec = service.spec.clone().unwrap_or_default();
    let svc_port = spec
        .ports
        .iter()
        .flatten()
        .find(|p| p.port == i32::from(port))
        .ok_or_else(|| format!("{object} has no port {port}"))?;
    let pods: Vec<_> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    if pods.is_empty() {
        return Err(format!("{object} selects no pod"));
    }
    let containers =
        |p: &k8s_openapi::api::core::v1::Pod| -> Vec<k8s_openapi::api::core::v1::Container> {
            p.spec
                .iter()
                .flat_map(|s| {
                    s.init_containers
                        .iter()
                        .flatten()
                        .chain(s.containers.iter())
                })
                .cloned()
                .collect()
        };
    let named_port = |p: &k8s_openapi::api::core::v1::Pod, name: &str| -> Option<u16> {
        containers(p)
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|cp| cp.name.as_deref() == Some(name))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
    };
    let resolve = |p: &k8s_openapi::api::core::v1::Pod,
                   v: &Option<IntOrString>,
                   default: u16|
     -> Option<u16> {
        match v {
            None => Some(default),
            Some(IntOrString::Int(n)) => u16::try_from(*n).ok(),
            Some(IntOrString::String(s)) => s.parse().ok().or_else(|| named_port(p, s)),
        }
    };
    let container_port = resolve(pods[0], &svc_port.target_port, port).ok_or_else(|| {
        format!(
            "{object}: targetPort {:?} matches no container port",
            svc_port.target_port
        )
    })?;
    let mut kubelet_probes = Vec::new();
    for pod in &pods {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        for c in containers(pod) {
            for (kind, probe) in [
                ("readiness", &c.readiness_probe),
                ("liveness", &c.liveness_probe),
                ("startup", &c.startup_probe),
            ] {
                let Some(get) = probe.as_ref().and_then(|p| p.http_get.as_ref()) else {
                    continue;
                };
                let Some(port) = resolve(pod, &Some(get.port.clone()), 0) else {
                    continue;
                };
                kubelet_probes.push(KubeletProbe {
                    pod: pod_name.clone(),
                    container: c.name.clone(),
                    kind: kind.into(),
                    port,
                    path: get.path.clone().unwrap_or_else(|| "/".into()),
                });
            }
        }
    }
    Ok(ProbeTarget {
        namespace,
        service: name,
        pods: pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect(),
        container_port,
        kubelet_probes,
    })
}

/// The URL's path without its query (`/` when empty).
fn url_path(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| "/".into())
}

/// The kubelet probe a deny probe collides with, if it does: same pod port, same path.
/// Linkerd authorizes such paths for every client while a `Server` has no routes, so the mesh
/// can never deny that request (ledger LD-12).
pub fn kubelet_probe_collision<'a>(url: &str, target: &'a ProbeTarget) -> Option<&'a KubeletProbe> {
    let path = url_path(url);
    target
        .kubelet_probes
        .iter()
        .find(|k| k.port == target.container_port && k.path == path)
}

/// What the deny check needs from the cluster.
#[allow(async_fn_in_trait)]
pub trait DenyDriver {
    /// One attempt of `probe` (never fails: problems are undecided observations). It leaves
    /// [`Observed::attribution`] empty: [`run_deny`] attributes.
    async fn probe(&mut self, probe: &RenderedProbe) -> Observed;
    async fn apply_policy(&mut self) -> Result<(), String>;
    /// `Ok` when every pod of the OpenFaaS namespaces is Ready.
    async fn workloads_ready(&mut self) -> Result<(), String>;
    /// The pods `probe`'s URL reaches and their kubelet probes (asked on Linkerd only).
    async fn target(&mut self, probe: &RenderedProbe) -> Result<ProbeTarget, String>;
    /// The Linkerd authorization counters of `probe`'s target pods, summed (Linkerd only).
    async fn counters(&mut self, probe: &RenderedProbe) -> Result<AuthzCounters, String>;
    /// Istio ambient: the access log of the ztunnels on the nodes of `probe`'s target pods since
    /// `since`, with the probe pod's IPs as sources and the target pods' IPs as targets.
    async fn ztunnel_log(
        &mut self,
        probe: &RenderedProbe,
        since: SystemTime,
    ) -> Result<ZtunnelView, String> {
        let _ = (probe, since);
        Err("this driver cannot read ztunnel's access log".into())
    }
}

/// How patient the check is.
#[derive(Debug, Clone, Copy)]
pub struct DenyTiming {
    /// How long each probe may take to reach its `after` outcome once the policy is applied.
    pub settle: Duration,
    /// Pause between attempts.
    pub poll: Duration,
    /// How long a before-probe is retried while its observation is undecided (a just-started
    /// pod's endpoint still reaching the proxies).
    pub before_for: Duration,
    /// How long after the policy the pods' readiness is judged: a pod turns NotReady only after
    /// `periodSeconds × failureThreshold` failed probes (30 s with the defaults the OpenFaaS
    /// chart keeps), so judging it the moment the probes flip would miss a policy that cut them.
    pub ready_hold: Duration,
    /// Istio ambient: how long after a refused attempt ztunnel's log is read again for its
    /// rejection line (written as the connection completes, read through the API server).
    pub log_wait: Duration,
}

/// [`DenyTiming::ready_hold`] in a run: the default readiness period × threshold, plus slack.
pub const READY_HOLD: Duration = Duration::from_secs(40);
/// [`DenyTiming::before_for`] in a run.
pub const BEFORE_FOR: Duration = Duration::from_secs(30);
/// [`DenyTiming::log_wait`] in a run.
pub const LOG_WAIT: Duration = Duration::from_secs(5);
/// Slack around an attempt's window when its ztunnel lines are matched: the API server's clock
/// against this machine's, and the line written after the client saw the close.
const WINDOW_SLACK: Duration = Duration::from_secs(2);

impl DenyTiming {
    pub fn for_check(d: &DenyCheck) -> DenyTiming {
        DenyTiming {
            settle: d.timeout,
            poll: Duration::from_millis(500),
            before_for: BEFORE_FOR,
            ready_hold: READY_HOLD,
            log_wait: LOG_WAIT,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeEvidence {
    #[serde(flatten)]
    pub probe: RenderedProbe,
    /// The pods the URL reaches (on Linkerd, where the mesh's counters are read from them).
    pub target: Option<ProbeTarget>,
    pub observed_before: Option<Observed>,
    pub observed_after: Option<Observed>,
    pub after_attempts: u32,
    pub after_seconds: Option<f64>,
    /// Linkerd: requests the target proxies let through as kubelet probe paths during the last
    /// attempt (a probe that stayed allowed for that reason says so).
    pub probe_path_allows: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DenyEvidence {
    pub probes: Vec<ProbeEvidence>,
    pub policy_applied: bool,
    /// Why workloads were not Ready after the policy, if they were not.
    pub workloads_not_ready: Option<String>,
}

fn word(a: Allowance) -> &'static str {
    match a {
        Allowance::Allowed => "allowed",
        Allowance::Denied => "denied",
    }
}

fn from_word(f: ProbeFrom) -> &'static str {
    match f {
        ProbeFrom::Probe => "the probe pod",
        ProbeFrom::Outside => "outside",
    }
}

/// Before the policy, any denial is a denial: the control only needs to know the probe was not
/// already refused (attribution decides only what counts as the policy's effect).
fn raw_allowance(o: &Observed) -> Option<Allowance> {
    match o.classification {
        Classification::Allowed { .. } => Some(Allowance::Allowed),
        Classification::Denied(_) => Some(Allowance::Denied),
        Classification::Undecided { .. } => None,
    }
}

/// Whether the Linkerd counters of a probe's URL target say anything about it. An outside
/// probe goes through the gateway's port-forward, which enters the gateway pod on localhost,
/// past its proxy: what could deny it is the proxy of the function the gateway then calls.
fn counters_apply(p: &RenderedProbe, plane: DataPlane) -> bool {
    plane == DataPlane::Linkerd && p.from == ProbeFrom::Probe
}

/// Whether a refusal of this attempt needs ztunnel's word: on ambient, a probe from the probe
/// pod expected to be denied that was reset or closed (an outside probe's reset is the
/// port-forward's, never a policy's).
fn needs_ztunnel(p: &RenderedProbe, plane: DataPlane, c: &Classification) -> bool {
    plane == DataPlane::IstioAmbient
        && p.from == ProbeFrom::Probe
        && p.after == Allowance::Denied
        && matches!(
            c,
            Classification::Denied(Denial::ConnectionReset | Denial::ConnectionClosed)
        )
}

/// One after-policy attempt, attributed: on Linkerd the target proxies' counters are read
/// around it; on ambient a refusal is looked up in the destination ztunnel's log.
async fn attempt<D: DenyDriver>(
    driver: &mut D,
    p: &RenderedProbe,
    plane: DataPlane,
    timing: &DenyTiming,
) -> (Observed, Option<u64>) {
    if !counters_apply(p, plane) {
        let since = SystemTime::now();
        let mut obs = driver.probe(p).await;
        let evidence = if needs_ztunnel(p, plane, &obs.classification) {
            MeshEvidence::Ztunnel(ztunnel_window(driver, p, since, timing).await)
        } else {
            MeshEvidence::None
        };
        obs.attribution = attribute(plane, &obs.classification, evidence);
        return (obs, None);
    }
    let before = driver.counters(p).await;
    let mut obs = driver.probe(p).await;
    let after = driver.counters(p).await;
    let probe_allows = match (&before, &after) {
        (Ok(b), Ok(a)) => Some(a.probe_allowed.saturating_sub(b.probe_allowed)),
        _ => None,
    };
    let counters = match (before, after) {
        (Ok(b), Ok(a)) => Ok((b, a)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    obs.attribution = attribute(plane, &obs.classification, MeshEvidence::Linkerd(counters));
    (obs, probe_allows)
}

/// The destination ztunnels' log over an attempt that began at `since`, read until it holds
/// the attempt's rejection or [`DenyTiming::log_wait`] has passed.
async fn ztunnel_window<D: DenyDriver>(
    driver: &mut D,
    p: &RenderedProbe,
    since: SystemTime,
    timing: &DenyTiming,
) -> Result<(ZtunnelView, ztunnel::Window), String> {
    let from = time::OffsetDateTime::from(since) - WINDOW_SLACK;
    let waited = Instant::now();
    loop {
        let view = driver.ztunnel_log(p, since).await?;
        let window = ztunnel::Window {
            from,
            to: time::OffsetDateTime::now_utc() + WINDOW_SLACK,
        };
        let found =
            ztunnel::policy_rejection(&view.lines, &view.sources, &view.targets, window).is_some();
        if found || waited.elapsed() >= timing.log_wait {
            return Ok((view, window));
        }
        tokio::time::sleep(timing.poll.min(Duration::from_secs(1))).await;
    }
}

/// Runs the deny check (see the module docs for the order and the verdict rules).
pub async fn run_deny<D: DenyDriver>(
    driver: &mut D,
    probes: &[RenderedProbe],
    timing: DenyTiming,
    plane: DataPlane,
) -> Verdict<DenyEvidence> {
    let mesh = plane.mesh();
    let mut ev = DenyEvidence {
        probes: probes
            .iter()
            .map(|p| ProbeEvidence {
                probe: p.clone(),
                target: None,
                observed_before: None,
                observed_after: None,
                after_attempts: 0,
                after_seconds: None,
                probe_path_allows: None,
            })
            .collect(),
        policy_applied: false,
        workloads_not_ready: None,
    };
    // An enforcement point is an ambient notion: elsewhere it names nothing that could answer.
    let misplaced: Vec<String> = probes
        .iter()
        .filter(|p| p.enforcer.is_some() && plane != DataPlane::IstioAmbient)
        .map(|p| {
            format!(
                "{} names enforcer {}, but this environment's data plane is {plane:?}: only Istio ambient has ztunnel and waypoints",
                p.name,
                enforcer_word(p.enforcer.unwrap_or(Enforcer::Ztunnel))
            )
        })
        .collect();
    if !misplaced.is_empty() {
        return Verdict::new(CheckName::Http, Outcome::Error, misplaced, ev);
    }
    // 0. On Linkerd: can the mesh deny these requests at all?
    if mesh == Mesh::Linkerd {
        let mut problems = Vec::new();
        for (i, p) in probes.iter().enumerate() {
            let expects_denial = p.after == Allowance::Denied || p.before == Allowance::Denied;
            if !expects_denial || !counters_apply(p, plane) {
                continue;
            }
            match driver.target(p).await {
                Ok(t) => {
                    if let Some(k) = kubelet_probe_collision(&p.url, &t) {
                        problems.push(format!(
                            "{} ({}) cannot be denied by Linkerd: GET {} on port {} is the {} probe of {} (container {}), and Linkerd authorizes kubelet probe paths for every client while a Server has no routes (linkerd2 edge-26.8.3 policy-controller/k8s/index/src/inbound/index.rs); probe a path no kubelet probe uses",
                            p.name, p.url, k.path, k.port, k.kind, k.pod, k.container
                        ));
                    }
                    ev.probes[i].target = Some(t);
                }
                Err(e) => problems.push(format!(
                    "{} ({}): cannot find the pods it reaches, so a Linkerd denial could not be shown: {e}",
                    p.name, p.url
                )),
            }
        }
        if !problems.is_empty() {
            return Verdict::new(CheckName::Http, Outcome::Error, problems, ev);
        }
    }
    // 1. Negative control: before the policy.
    let mut control_errors = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let start = Instant::now();
        let mut obs = driver.probe(p).await;
        while raw_allowance(&obs).is_none() && start.elapsed() < timing.before_for {
            tokio::time::sleep(timing.poll).await;
            obs = driver.probe(p).await;
        }
        match raw_allowance(&obs) {
            Some(a) if a == p.before => {}
            Some(_) => control_errors.push(format!(
                "the deny check proves nothing: {} ({} from {}) was already {} before the policy existed (expected {})",
                p.name,
                p.url,
                from_word(p.from),
                obs.describe(),
                word(p.before)
            )),
            None => control_errors.push(format!(
                "the deny check proves nothing: {} ({} from {}) could not be decided before the policy: {}",
                p.name,
                p.url,
                from_word(p.from),
                obs.describe()
            )),
        }
        ev.probes[i].observed_before = Some(obs);
    }
    if !control_errors.is_empty() {
        return Verdict::new(CheckName::Http, Outcome::Error, control_errors, ev);
    }
    // 2. The policy.
    let policy_at = Instant::now();
    if let Err(e) = driver.apply_policy().await {
        return Verdict::new(
            CheckName::Http,
            Outcome::Error,
            vec![format!("applying the policy failed: {e}")],
            ev,
        );
    }
    ev.policy_applied = true;
    // 3. Until each probe flips.
    let mut outcome = Outcome::Pass;
    let mut reasons = Vec::new();
    for (i, p) in probes.iter().enumerate() {
        let start = Instant::now();
        let mut attempts = 0;
        let (last, probe_allows) = loop {
            let (obs, probe_allows) = attempt(driver, p, plane, &timing).await;
            attempts += 1;
            if obs.allowance() == Some(p.after) || start.elapsed() >= timing.settle {
                break (obs, probe_allows);
            }
            tokio::time::sleep(timing.poll).await;
        };
        ev.probes[i].after_attempts = attempts;
        ev.probes[i].after_seconds = Some(start.elapsed().as_secs_f64());
        ev.probes[i].probe_path_allows = probe_allows;
        let why_allowed = match probe_allows {
            Some(n) if n > 0 && last.allowance() == Some(Allowance::Allowed) => {
                " — Linkerd authorized it as a kubelet probe path (authz_name=probe)"
            }
            _ => "",
        };
        let answered_by = last.attribution.as_ref().and_then(Attribution::enforcer);
        match (last.allowance(), p.expected_enforcer(plane)) {
            (Some(a), Some(want)) if a == p.after && answered_by != Some(want) => {
                outcome = outcome.worst(Outcome::Fail);
                reasons.push(format!(
                    "{} ({} from {}): expected {} to deny it, but {} did: {}",
                    p.name,
                    p.url,
                    from_word(p.from),
                    enforcer_word(want),
                    answered_by.map_or("an unnamed enforcement point", enforcer_word),
                    last.describe()
                ));
            }
            (Some(a), _) if a == p.after => {}
            (Some(_), _) => {
                outcome = outcome.worst(Outcome::Fail);
                reasons.push(format!(
                    "{} ({} from {}): expected {} after the policy, still {} after {} (last of {attempts} attempts){why_allowed}",
                    p.name,
                    p.url,
                    from_word(p.from),
                    word(p.after),
                    last.describe(),
                    humantime::format_duration(timing.settle)
                ));
            }
            (None, _) => {
                outcome = outcome.worst(Outcome::Error);
                reasons.push(format!(
                    "{} ({} from {}): expected {} after the policy, but the last of {attempts} attempts was {}",
                    p.name,
                    p.url,
                    from_word(p.from),
                    word(p.after),
                    last.describe()
                ));
            }
        }
        ev.probes[i].observed_after = Some(last);
    }
    // 4. The workloads survived the policy — judged once a probe cut by it would have made a
    // pod NotReady.
    let judge_at = policy_at + timing.ready_hold;
    let now = Instant::now();
    if judge_at > now {
        tokio::time::sleep(judge_at - now).await;
    }
    if let Err(e) = driver.workloads_ready().await {
        outcome = outcome.worst(Outcome::Fail);
        reasons.push(format!("after the policy, OpenFaaS pods are not Ready (did the policy cut kubelet probes?): {e}"));
        ev.workloads_not_ready = Some(e);
    }
    if outcome == Outcome::Pass {
        reasons.push(format!(
            "all {} probes showed their before outcome without the policy and their after outcome with it, every denial shown to come from the mesh; OpenFaaS pods stayed Ready",
            probes.len()
        ));
    }
    Verdict::new(CheckName::Http, outcome, reasons, ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Pod, Service};

    #[test]
    fn probe_urls_name_a_service() {
        let s = |u: &str| service_of(u, "openfaas-fn");
        assert_eq!(
            s("http://gateway.openfaas:8080/function/env"),
            Ok(("gateway".into(), "openfaas".into(), 8080))
        );
        assert_eq!(
            s("http://env2.openfaas-fn.svc.cluster.local:8080/"),
            Ok(("env2".into(), "openfaas-fn".into(), 8080))
        );
        assert_eq!(
            s("http://env2/"),
            Ok(("env2".into(), "openfaas-fn".into(), 80))
        );
        assert!(s("http://10.244.0.7:8080/").is_err());
        assert!(s("http://a.b.c:8080/").is_err());
    }

    /// The OpenFaaS chart's gateway pod (15.0.6 `templates/gateway-dep.yaml`): the gateway's
    /// readiness and liveness `GET /healthz :8080`, faas-netes' liveness `GET /healthz :8081`,
    /// and a native-sidecar proxy with its own probe; the Service's targetPort by name.
    #[test]
    fn a_target_resolves_named_ports_and_collects_every_httpget_probe() {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "gateway", "namespace": "openfaas"},
            "spec": {"selector": {"app": "gateway"}, "ports": [{"port": 8080, "targetPort": "http"}]}
        }))
        .unwrap();
        let get = |path: &str, port: serde_json::Value| serde_json::json!({"httpGet": {"path": path, "port": port}});
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "gateway-7d9"},
            "spec": {
                "initContainers": [{"name": "linkerd-proxy", "readinessProbe": get("/ready", serde_json::json!(4191))}],
                "containers": [
                    {"name": "gateway", "ports": [{"name": "http", "containerPort": 8080}],
                     "readinessProbe": get("/healthz", serde_json::json!("http")),
                     "livenessProbe": get("/healthz", serde_json::json!(8080))},
                    {"name": "faas-netes", "livenessProbe": get("/healthz", serde_json::json!(8081))}
                ]
            }
        }))
        .unwrap();
        let mut leaving = pod.clone();
        leaving.metadata.name = Some("gateway-old".into());
        leaving.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
        );
        let t = probe_target(&service, &[pod, leaving], 8080).unwrap();
        assert_eq!(t.pods, ["gateway-7d9"]);
        assert_eq!(t.container_port, 8080);
        let probes: Vec<(String, u16, &str)> = t
            .kubelet_probes
            .iter()
            .map(|k| (k.kind.clone(), k.port, k.path.as_str()))
            .collect();
        assert_eq!(
            probes,
            [
                ("readiness".to_string(), 4191, "/ready"),
                ("readiness".to_string(), 8080, "/healthz"),
                ("liveness".to_string(), 8080, "/healthz"),
                ("liveness".to_string(), 8081, "/healthz"),
            ]
        );
        let hit = kubelet_probe_collision("http://gateway.openfaas:8080/healthz?x=1", &t).unwrap();
        assert_eq!(
            (hit.container.as_str(), hit.kind.as_str()),
            ("gateway", "readiness")
        );
        assert!(kubelet_probe_collision("http://gateway.openfaas:8080/function/env", &t).is_none());
        assert!(probe_target(&service, &[], 8080).is_err());
        assert!(probe_target(&service, &t_pods(), 9999).is_err());
    }

    fn t_pods() -> Vec<Pod> {
        vec![Pod::default()]
    }

    #[test]
    fn only_403s_are_attributed_and_each_mesh_by_its_own_evidence() {
        let f = |s| Classification::Denied(Denial::Forbidden { source: s });
        let c = |d| AuthzCounters {
            denied: d,
            probe_allowed: 0,
        };
        let lk = |r| MeshEvidence::Linkerd(r);
        assert_eq!(
            attribute(
                DataPlane::IstioSidecar,
                &Classification::Allowed { status: 200 },
                MeshEvidence::None
            ),
            None
        );
        // Off ambient a reset is nobody's to attribute: it stays a denial.
        for plane in [DataPlane::Linkerd, DataPlane::IstioSidecar] {
            assert_eq!(
                attribute(
                    plane,
                    &Classification::Denied(Denial::ConnectionReset),
                    MeshEvidence::None
                ),
                None
            );
        }
        assert!(matches!(
            attribute(
                DataPlane::IstioSidecar,
                &f(DenySource::IstioRbac),
                MeshEvidence::None
            ),
            Some(Attribution::Mesh { enforcer: None, .. })
        ));
        assert!(matches!(
            attribute(
                DataPlane::Linkerd,
                &f(DenySource::IstioRbac),
                lk(Ok((c(1), c(1))))
            ),
            Some(Attribution::Unshown { .. })
        ));
        assert!(matches!(
            attribute(
                DataPlane::Linkerd,
                &f(DenySource::LinkerdProxy),
                MeshEvidence::None
            ),
            Some(Attribution::Mesh { .. })
        ));
        assert!(matches!(
            attribute(
                DataPlane::Linkerd,
                &f(DenySource::Unknown),
                lk(Ok((c(4), c(5))))
            ),
            Some(Attribution::Mesh { .. })
        ));
        assert!(matches!(
            attribute(
                DataPlane::Linkerd,
                &f(DenySource::Unknown),
                lk(Err("x".into()))
            ),
            Some(Attribution::Unshown { .. })
        ));
    }

    // ------------------------------------------------------------ Istio ambient

    /// A destination ztunnel's access log line for a refused connection, in ztunnel 1.30.3's
    /// plain format (see `crate::scenario_run::ztunnel`'s tests for where each part is read).
    fn rejection_line(src: &str, dst: &str, at: time::OffsetDateTime) -> String {
        let at = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        format!("{at} {at}\terror\taccess\tconnection complete\tsrc.addr={src}:51234 src.workload=\"probe\" dst.addr={dst}:15008 dst.hbone_addr={dst}:8080 direction=\"inbound\" bytes_sent=0 bytes_recv=0 duration=\"0ms\" error=\"connection closed due to policy rejection: allow policies exist, but none allowed\"")
    }

    const PROBE_IP: &str = "10.244.1.7";
    const TARGET_IP: &str = "10.244.2.9";

    /// A deny driver whose probe answers come from a script (before the policy: allowed; after:
    /// `after`) and whose ztunnel writes a rejection line for each refused attempt when
    /// `logs_rejections`.
    struct AmbientDouble {
        after: Classification,
        logs_rejections: bool,
        policy: bool,
        log: String,
        log_reads: u32,
    }

    impl AmbientDouble {
        fn new(after: Classification, logs_rejections: bool) -> Self {
            AmbientDouble {
                after,
                logs_rejections,
                policy: false,
                log: String::new(),
                log_reads: 0,
            }
        }
    }

    impl DenyDriver for AmbientDouble {
        async fn probe(&mut self, _p: &RenderedProbe) -> Observed {
            if !self.policy {
                return Observed::new(Classification::Allowed { status: 200 }, "curl exit 0");
            }
            if self.logs_rejections
                && matches!(
                    self.after,
                    Classification::Denied(Denial::ConnectionReset | Denial::ConnectionClosed)
                )
            {
                let line = rejection_line(PROBE_IP, TARGET_IP, time::OffsetDateTime::now_utc());
                self.log.push_str(&line);
                self.log.push('\n');
            }
            Observed::new(self.after.clone(), "curl exit 56")
        }
        async fn apply_policy(&mut self) -> Result<(), String> {
            self.policy = true;
            Ok(())
        }
        async fn workloads_ready(&mut self) -> Result<(), String> {
            Ok(())
        }
        async fn target(&mut self, _p: &RenderedProbe) -> Result<ProbeTarget, String> {
            Err("not asked on ambient".into())
        }
        async fn counters(&mut self, _p: &RenderedProbe) -> Result<AuthzCounters, String> {
            Err("not asked on ambient".into())
        }
        async fn ztunnel_log(
            &mut self,
            _p: &RenderedProbe,
            _since: SystemTime,
        ) -> Result<ZtunnelView, String> {
            self.log_reads += 1;
            Ok(ZtunnelView {
                ztunnels: vec!["istio-system/ztunnel-abc on kind-worker2".into()],
                sources: vec![PROBE_IP.parse().unwrap()],
                targets: vec![TARGET_IP.parse().unwrap()],
                lines: ztunnel::parse_log(&self.log),
            })
        }
    }

    fn probe(enforcer: Option<Enforcer>) -> RenderedProbe {
        RenderedProbe {
            name: "function-to-gateway".into(),
            from: ProbeFrom::Probe,
            url: "http://gateway.openfaas:8080/".into(),
            before: Allowance::Allowed,
            after: Allowance::Denied,
            enforcer,
        }
    }

    fn quick() -> DenyTiming {
        DenyTiming {
            settle: Duration::from_millis(50),
            poll: Duration::from_millis(5),
            before_for: Duration::ZERO,
            ready_hold: Duration::ZERO,
            log_wait: Duration::ZERO,
        }
    }

    fn reset() -> Classification {
        Classification::Denied(Denial::ConnectionReset)
    }

    fn waypoint_403() -> Classification {
        Classification::Denied(Denial::Forbidden {
            source: DenySource::IstioRbac,
        })
    }

    async fn run_ambient(
        d: &mut AmbientDouble,
        enforcer: Option<Enforcer>,
    ) -> Verdict<DenyEvidence> {
        run_deny(d, &[probe(enforcer)], quick(), DataPlane::IstioAmbient).await
    }

    #[tokio::test]
    async fn on_ambient_a_reset_is_denied_only_with_the_destination_ztunnels_rejection() {
        let mut d = AmbientDouble::new(reset(), true);
        let v = run_ambient(&mut d, None).await;
        assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
        let by = v.evidence.probes[0].observed_after.as_ref().unwrap();
        assert!(
            matches!(&by.attribution, Some(Attribution::Mesh { enforcer: Some(Enforcer::Ztunnel), by }) if by.contains("policy rejection") && by.contains(PROBE_IP)),
            "{by:?}"
        );
        // The same reset without the line: nothing shows ztunnel closed it.
        let mut d = AmbientDouble::new(reset(), false);
        let v = run_ambient(&mut d, None).await;
        assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
        assert!(
            v.reasons[0].contains("logged no policy rejection"),
            "{:?}",
            v.reasons
        );
        assert!(d.log_reads > 0);
        // An empty reply is looked up the same way.
        let mut d = AmbientDouble::new(Classification::Denied(Denial::ConnectionClosed), true);
        assert_eq!(run_ambient(&mut d, None).await.outcome, Outcome::Pass);
    }

    #[tokio::test]
    async fn on_ambient_the_enforcer_that_answered_must_be_the_expected_one() {
        // A waypoint's 403 where ztunnel (the default) was expected.
        let mut d = AmbientDouble::new(waypoint_403(), false);
        let v = run_ambient(&mut d, None).await;
        assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
        assert!(
            v.reasons[0].contains("expected ztunnel to deny it, but a waypoint did"),
            "{:?}",
            v.reasons
        );
        // ... passes when the waypoint was expected.
        let mut d = AmbientDouble::new(waypoint_403(), false);
        let v = run_ambient(&mut d, Some(Enforcer::Waypoint)).await;
        assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
        // ztunnel's reset where a waypoint was expected.
        let mut d = AmbientDouble::new(reset(), true);
        let v = run_ambient(&mut d, Some(Enforcer::Waypoint)).await;
        assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
        assert!(
            v.reasons[0].contains("expected a waypoint to deny it, but ztunnel did"),
            "{:?}",
            v.reasons
        );
        // A 403 without Envoy's RBAC body is nobody's the check can name.
        let mut d = AmbientDouble::new(
            Classification::Denied(Denial::Forbidden {
                source: DenySource::Unknown,
            }),
            false,
        );
        assert_eq!(
            run_ambient(&mut d, Some(Enforcer::Waypoint)).await.outcome,
            Outcome::Error
        );
    }

    #[tokio::test]
    async fn off_ambient_a_reset_stays_a_denial_and_an_enforcer_is_an_error() {
        let mut d = AmbientDouble::new(reset(), false);
        let v = run_deny(&mut d, &[probe(None)], quick(), DataPlane::IstioSidecar).await;
        assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
        assert_eq!(d.log_reads, 0, "no ztunnel off ambient");
        let mut d = AmbientDouble::new(reset(), false);
        let v = run_deny(
            &mut d,
            &[probe(Some(Enforcer::Ztunnel))],
            quick(),
            DataPlane::Linkerd,
        )
        .await;
        assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
        assert!(
            v.reasons[0].contains("only Istio ambient"),
            "{:?}",
            v.reasons
        );
        assert!(!v.evidence.policy_applied);
    }
}
