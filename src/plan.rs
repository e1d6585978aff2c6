//! Planning: the pure expansion of suites × scenarios into environments, trials and the ordered
//! steps a run will take. No I/O — `meshproof plan`, `meshproof list` and the e2e harness all read
//! the same plan, so what is listed is what runs.

use crate::scenario::template::{Template, Vars};
use crate::scenario::*;
pub use crate::vocab::{Phase, PlannedStep, FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};
use std::sync::Arc;

/// One environment instance: a cluster that some trials share.
#[derive(Debug, Clone)]
pub struct EnvPlan {
    /// Unique key: the environment name, or `<env>::<scenario>` for a dedicated environment.
    pub key: String,
    pub suite: Arc<Suite>,
    pub env: EnvironmentSpec,
    pub trials: Vec<TrialPlan>,
}

/// One e2e trial: a scenario in an environment.
#[derive(Debug, Clone)]
pub struct TrialPlan {
    /// `<environment>::<scenario>`, the libtest name.
    pub name: String,
    pub env_key: String,
    /// The suite environment (its preflight requirements), shared by dedicated environments.
    pub env: EnvironmentSpec,
    pub mesh: Mesh,
    /// The environment's data plane: which manifest variants and waits the trial takes.
    pub data_plane: DataPlane,
    pub scenario: Arc<Scenario>,
    /// Static ignore reason (the scenario's `ignore`).
    pub ignore: Option<String>,
}

/// Expands every suite of the catalog. Environments and trials come out sorted by name.
pub fn expand(catalog: &Catalog) -> Vec<EnvPlan> {
    let mut envs = Vec::new();
    for suite in &catalog.suites {
        for env in &suite.environments {
            let mesh = env.mesh.mesh();
            let data_plane = env.mesh.data_plane();
            let mut shared = EnvPlan {
                key: env.name.clone(),
                suite: suite.clone(),
                env: env.clone(),
                trials: Vec::new(),
            };
            for name in &suite.scenarios {
                let Some(sc) = catalog.scenario(name) else {
                    continue;
                };
                if !sc.applies_to(data_plane) {
                    continue;
                }
                let trial_name = format!("{}::{}", env.name, sc.name);
                match sc.lifecycle {
                    Lifecycle::Shared => shared.trials.push(TrialPlan {
                        name: trial_name,
                        env_key: shared.key.clone(),
                        env: env.clone(),
                        mesh,
                        data_plane,
                        scenario: sc.clone(),
                        ignore: sc.ignore.clone(),
                    }),
                    Lifecycle::Dedicated => envs.push(EnvPlan {
                        key: trial_name.clone(),
                        suite: suite.clone(),
                        env: env.clone(),
                        trials: vec![TrialPlan {
                            name: trial_name.clone(),
                            env_key: trial_name,
                            env: env.clone(),
                            mesh,
                            data_plane,
                            scenario: sc.clone(),
                            ignore: sc.ignore.clone(),
                        }],
                    }),
                }
            }
            if !shared.trials.is_empty() {
                envs.push(shared);
            }
        }
    }
    for e in &mut envs {
        e.trials.sort_by(|a, b| a.name.cmp(&b.name));
    }
    envs.sort_by(|a, b| a.key.cmp(&b.key));
    envs
}

/// Every trial of a plan in the order a run takes them: by environment, the trials sharing an
/// environment first and those with one of their own (`restore`, which destroys its cluster)
/// last, each group by name. Run in plain name order, `restore` would come between `mtls` and
/// `tls`, and the shared environment, evicted for it (the same host ports), would be built
/// twice.
pub fn trials(envs: &[EnvPlan]) -> Vec<TrialPlan> {
    let mut t: Vec<TrialPlan> = envs.iter().flat_map(|e| e.trials.iter().cloned()).collect();
    t.sort_by(|a, b| {
        (&a.env.name, a.dedicated(), &a.name).cmp(&(&b.env.name, b.dedicated(), &b.name))
    });
    t
}

impl TrialPlan {
    /// Whether the trial has an environment of its own.
    pub fn dedicated(&self) -> bool {
        self.env_key != self.env.name
    }
}

/// The variables a scenario of this environment is rendered with. `run_id` is `None` when
/// planning (it prints as `<run-id>`).
pub fn vars_for(
    suite: &Suite,
    env: &EnvironmentSpec,
    scenario: &Scenario,
    run_id: Option<&str>,
) -> Vars {
    vars_with_images(suite, env, scenario, run_id, &suite.images)
}

/// [`vars_for`] with `images` in `${images.*}` instead of the suite's own: a run deploys the
/// images it pinned when the environment came up (the suite may name a tag).
pub fn vars_with_images(
    suite: &Suite,
    env: &EnvironmentSpec,
    scenario: &Scenario,
    run_id: Option<&str>,
    images: &crate::images::Images,
) -> Vars {
    let mut v = Vars::default();
    v.set("mesh", env.mesh.mesh().as_str());
    v.set("suite", suite.name.as_str());
    v.set("environment", env.name.as_str());
    v.set("runId", run_id.unwrap_or("<run-id>"));
    v.set("namespace.functions", FUNCTIONS_NAMESPACE);
    v.set("namespace.gateway", GATEWAY_NAMESPACE);
    let ports = match &env.cluster {
        ClusterSpec::Kind { host_ports, .. } => *host_ports,
        ClusterSpec::Existing { .. } => HostPorts::default(),
    };
    v.set("ingress.httpPort", ports.http.to_string());
    v.set("ingress.httpsPort", ports.https.to_string());
    // The chart runs the gateway as `<release>-controller`, or `<release>-operator` with the
    // Pro operator (chart/openfaas/templates/gateway-dep.yaml); the release is `openfaas`.
    let sa = match suite.openfaas.edition {
        Edition::Ce => "openfaas-controller",
        Edition::Pro { .. } => "openfaas-operator",
    };
    v.set("gateway.serviceAccount", sa);
    v.set("openfaas.edition", suite.openfaas.edition.as_str());
    // Where the ingress's TLS secret lives: Istio's ingress gateway reads `credentialName` from
    // its own namespace; on ambient the ingress is a Gateway API Gateway of class `istio` that
    // the tls scenario makes in the same namespace, whose listener reads a Secret of its own
    // namespace (ledger IS-27); on Linkerd, Traefik reads it from the Ingress's namespace.
    v.set(
        "ingress.namespace",
        match env.mesh.mesh() {
            Mesh::Istio => "istio-system",
            Mesh::Linkerd => GATEWAY_NAMESPACE,
        },
    );
    for (role, image) in images.iter() {
        v.set(role.var(), image.as_str());
    }
    let v = v.overlay(&scenario.vars);
    // Suite values override scenario defaults (image digests, hosts).
    v.overlay(&suite.vars)
}

fn render(t: &Template, vars: &Vars) -> String {
    t.render(vars)
        .unwrap_or_else(|e| format!("{} (render error: {e})", t.source()))
}

/// The ordered steps of one environment: provisioning, installs, each trial's steps (with the
/// negative controls spelled out), teardown.
pub fn steps(env: &EnvPlan, catalog: &Catalog) -> Vec<PlannedStep> {
    steps_with_mirror(env, catalog, &crate::mirror::MirrorSetting::Off)
}

/// [`steps`], with kind nodes pulling through `mirror`.
pub fn steps_with_mirror(
    env: &EnvPlan,
    catalog: &Catalog,
    mirror: &crate::mirror::MirrorSetting,
) -> Vec<PlannedStep> {
    let suite = &env.suite;
    let mut out = Vec::new();
    let reqs = crate::preflight::env_requirements(suite, &env.env, catalog);
    out.push(PlannedStep {
        phase: Phase::Preflight,
        title: "check the tools this environment needs".into(),
        detail: reqs
            .iter()
            .map(|r| match r {
                crate::preflight::Requirement::Tool(t) => {
                    match crate::preflight::pins(*t).into_iter().next() {
                        Some(v) => format!(
                            "{} {v} (tools.yaml; `meshproof tools install`, or on PATH)",
                            t.program()
                        ),
                        None => format!("{} on PATH", t.program()),
                    }
                }
                crate::preflight::Requirement::DockerDaemon => {
                    "docker daemon answers `docker info`".into()
                }
                crate::preflight::Requirement::Kubeconfig(p) => {
                    format!(
                        "kubeconfig {}",
                        p.as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|| "from KUBECONFIG".into())
                    )
                }
                crate::preflight::Requirement::ProLicense(p) => format!(
                    "OpenFaaS Pro license {} (never printed, logged or passed on a command line)",
                    p.as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| format!("from ${}", crate::scenario::LICENSE_FILE_ENV))
                ),
            })
            .collect(),
    });
    out.push(PlannedStep {
        phase: Phase::Preflight,
        title: "pin the images its trials deploy".into(),
        detail: suite
            .images
            .iter()
            .map(|(role, image)| {
                if image.is_pinned() {
                    format!("{} {image} (pinned by the suite)", role.key())
                } else {
                    format!(
                        "{} {image}: not pinned — its tag is resolved to a digest before the cluster is created; pods get the digest, report.json records it",
                        role.key()
                    )
                }
            })
            .collect(),
    });
    out.extend(crate::stack::plan::provision_and_install(
        suite, &env.env, &env.key, mirror,
    ));
    for t in &env.trials {
        let vars = vars_for(suite, &env.env, &t.scenario, None);
        let mut detail = Vec::new();
        if let Some(r) = &t.ignore {
            detail.push(format!("ignored unless run with --ignored: {r}"));
        }
        for (i, s) in t.scenario.steps.iter().enumerate() {
            for line in describe_step(s, t.data_plane, &vars) {
                detail.push(format!("{:>2}. {line}", i + 1));
            }
        }
        detail.push("cleanup: delete every object this trial applied or deployed".into());
        out.push(PlannedStep {
            phase: Phase::Trial,
            title: t.name.clone(),
            detail,
        });
    }
    out.push(PlannedStep {
        phase: Phase::Teardown,
        title: "tear down".into(),
        detail: crate::stack::plan::teardown(&env.env, &env.key),
    });
    out
}

fn manifest_line(verb: &str, m: &Manifests, data_plane: DataPlane, vars: &Vars) -> String {
    let v = vars.overlay(&m.vars);
    let overrides = if m.vars.is_empty() {
        String::new()
    } else {
        format!(
            " with {}",
            m.vars
                .iter()
                .map(|(k, val)| format!("{k}={val}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match m.for_data_plane(data_plane) {
        Some(Source::File { path, text }) => {
            let kinds = kinds_of(&render(text, &v));
            format!(
                "{verb} {} ({kinds}){overrides} — server-side apply, field manager meshproof",
                path.display()
            )
        }
        Some(Source::Inline(t)) => format!(
            "{verb} inline manifest ({}){overrides}",
            kinds_of(&render(t, &v))
        ),
        None => format!("{verb}: no manifest for {data_plane}"),
    }
}

fn kinds_of(text: &str) -> String {
    match crate::scenario::manifest_yaml::manifest_documents(text) {
        Ok(docs) => docs
            .iter()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["kind"].as_str().unwrap_or("?"),
                    d["metadata"]["name"].as_str().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("unparsable: {e}"),
    }
}

/// One scenario step as plan lines, with each check's negative controls in run order.
pub fn describe_step(step: &Step, data_plane: DataPlane, vars: &Vars) -> Vec<String> {
    match step {
        Step::Apply(m) => vec![manifest_line("apply", m, data_plane, vars)],
        Step::Delete(m) => vec![manifest_line("delete", m, data_plane, vars)],
        Step::Deploy(d) => {
            let injection = if d.meshed {
                "meshed".to_string()
            } else {
                match data_plane {
                    DataPlane::IstioSidecar => {
                        "unmeshed (annotation sidecar.istio.io/inject=false)".into()
                    }
                    DataPlane::IstioAmbient => {
                        "unmeshed (label istio.io/dataplane-mode=none)".into()
                    }
                    DataPlane::Linkerd => "unmeshed (annotation linkerd.io/inject=disabled)".into(),
                }
            };
            let env: Vec<String> = d.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![format!(
                "deploy function {} image {} env [{}], {injection}, via the gateway REST API (CE) or Function CRD (Pro)",
                d.function,
                render(&d.image, vars),
                env.join(", ")
            )]
        }
        Step::Wait(w) => {
            let what = match w.wait_for {
                WaitFor::Rollout => "rolled out".to_string(),
                WaitFor::PodsReady => "pods Ready".to_string(),
                WaitFor::Established => "Established".to_string(),
                WaitFor::Condition => {
                    let (t, s) = w.condition.clone().unwrap_or_default();
                    format!("condition {t}={s}")
                }
            };
            let ns = w
                .namespace
                .as_ref()
                .map(|n| format!(" in {}", render(n, vars)))
                .unwrap_or_default();
            if !w.applies_to(data_plane) {
                return vec![format!(
                    "(no wait on {data_plane}: this wait is for {})",
                    w.mesh.map(DataPlane::scenario_key).unwrap_or("")
                )];
            }
            vec![format!(
                "wait until {}{ns} is {what} (timeout {})",
                render(&w.target, vars),
                humantime::format_duration(w.timeout)
            )]
        }
        Step::Check(c) => describe_check(c, data_plane, vars),
    }
}

fn describe_check(c: &Check, data_plane: DataPlane, vars: &Vars) -> Vec<String> {
    let mesh = data_plane.mesh();
    let ambient = data_plane == DataPlane::IstioAmbient;
    let fns = vars
        .get("namespace.functions")
        .unwrap_or(FUNCTIONS_NAMESPACE)
        .to_string();
    let gw_sa = vars
        .get("gateway.serviceAccount")
        .unwrap_or("openfaas-controller")
        .to_string();
    match c {
        Check::Mtls(m) => {
            let (ports, rules) = match mesh {
                Mesh::Istio if ambient => (
                    format!("port 15008, ztunnel's HBONE inbound, and the app port {}", m.port),
                    "HBONE: TLS 1.3 only, ALPN exactly h2, no SNI; any payload a peer sends to the app port fails (CONTRACTS.md IS-19)",
                ),
                Mesh::Istio => (
                    format!("port {}", m.port),
                    "ClientHello ALPN one of istio-peer-exchange, istio-http/1.1, istio-http/1.0, istio-h2, istio",
                ),
                Mesh::Linkerd => (
                    format!("port {} and the proxy's inbound port (LINKERD2_PROXY_INBOUND_LISTEN_ADDR, 4143 by default)", m.port),
                    "ClientHello SNI ending in .serviceaccount.identity.linkerd.cluster.local, and ALPN transport.l5d.io/v1 on the inbound port",
                ),
            };
            let identity = match mesh {
                Mesh::Istio if ambient => format!("spiffe://cluster.local/ns/{GATEWAY_NAMESPACE}/sa/{gw_sa}, shown by the `src.identity` of ztunnel's access log lines for the gateway's connections (ztunnel adds no X-Forwarded-Client-Cert)"),
                Mesh::Istio => format!("the last X-Forwarded-Client-Cert element has exactly URI=spiffe://cluster.local/ns/{GATEWAY_NAMESPACE}/sa/{gw_sa}"),
                Mesh::Linkerd => format!("l5d-client-id is {gw_sa}.{GATEWAY_NAMESPACE}.serviceaccount.identity.linkerd.cluster.local"),
            };
            let mut v = vec![
                format!(
                    "check mtls — negative control first: capture eth0 of {}'s pod (ephemeral container `tcpdump -i eth0 -U -B 16384 -w -`) while the gateway sends {} requests, each with a fresh sentinel in a header and the body; every sentinel MUST be seen in plaintext, else the check errors (blind capture)",
                    m.control, m.requests
                ),
                format!(
                    "check mtls — path self-check: the Host the control saw (Http_Host) tells how the gateway addresses functions; a pod IP under Istio sidecars is an error (pod-IP traffic bypasses the sidecars' mTLS){}",
                    match data_plane {
                        DataPlane::IstioSidecar => "",
                        DataPlane::IstioAmbient => " — recorded only on Istio ambient, whose ztunnel captures pod-IP traffic",
                        DataPlane::Linkerd => " — recorded only on Linkerd, which meshes pod-IP traffic",
                    }
                ),
                format!(
                    "check mtls — capture eth0 of {}'s pod ({ports}) while the gateway sends {} requests with fresh sentinels: no sentinel in plaintext (whatever the answers), every flow TLS, {rules}",
                    m.function, m.requests
                ),
                format!("check mtls — every echoed request shows the gateway identity: {identity}"),
            ];
            if m.strict {
                let how = match mesh {
                    Mesh::Istio if ambient => "ztunnel resets or closes the connection (a 403 fails: the port took plaintext)",
                    Mesh::Istio => "the connection is closed (a 403 fails: the port took plaintext); no AuthorizationPolicy may apply to the namespace",
                    Mesh::Linkerd => "a 403 that inbound_http_authz_deny_total on the function's proxy counted",
                };
                v.push(format!(
                    "check mtls — strict: a plaintext client in an unmeshed namespace calling {}.{fns}:{} directly is refused: {how}",
                    m.function, m.port
                ));
            }
            v.push(format!(
                "check mtls — timeout {} for traffic and judging, plus {} for the capture containers and client pod it starts",
                humantime::format_duration(m.timeout),
                humantime::format_duration(2 * crate::vocab::CAPTURE_START + crate::vocab::POD_START)
            ));
            v
        }
        Check::Deny(d) => {
            let image = d.probe.image.clone().or_else(|| vars.get(crate::images::ImageRole::Probe.var()).map(str::to_string)).unwrap_or_else(|| "<images.probe>".into());
            let mut v = Vec::new();
            if mesh == Mesh::Linkerd {
                v.push("check deny — refuse a probe whose port and path are a kubelet httpGet probe of the pods it reaches (Linkerd authorizes those for every client)".to_string());
            }
            v.push(format!(
                "check deny — probe pod in {} (service account {}, created if missing; image {image}, `sleep infinity`; meshed by the namespace's {}), Ready",

                render(&d.probe.namespace, vars),
                d.probe.service_account,
                if ambient { "ambient enrolment" } else { "injection" }
            ));
            for e in &d.expectations {
                v.push(format!(
                    "check deny — negative control, before the policy: {} {} from {} must be {:?}",
                    e.name,
                    render(&e.url, vars),
                    from_label(e.from),
                    e.before
                ));
            }
            v.push(manifest_line("check deny — apply policy", &d.policy, data_plane, vars));
            for e in &d.expectations {
                let shown = match (mesh, e.enforcer) {
                    (Mesh::Istio, _) if ambient && e.after == Allowance::Allowed => "an answer from the function",
                    (Mesh::Istio, Some(Enforcer::Waypoint)) => "enforced by the waypoint: a 403 with Istio's `RBAC: access denied` body; a reset ztunnel logged as its rejection fails (the denial came from ztunnel)",
                    (Mesh::Istio, _) if ambient => "enforced by the destination's ztunnel: a reset or close after connect, with ztunnel's policy-rejection log line for that connection; a waypoint's 403 fails (ztunnel answers none), any other 403 is an error",
                    (Mesh::Istio, _) => "a 403 is denied only with Istio's `RBAC: access denied` body; reset = denied",
                    (Mesh::Linkerd, _) => "a 403 is denied only if inbound_http_authz_deny_total rose on the target pods' proxies; reset = denied",
                };
                v.push(format!(
                    "check deny — after the policy: {} {} from {} must be {:?} within {} ({shown}; {})",
                    e.name,
                    render(&e.url, vars),
                    from_label(e.from),
                    e.after,
                    humantime::format_duration(d.timeout),
                    if ambient { "401/404/5xx/timeout = error" } else { "any other 403, 401/404/5xx/timeout = error" }
                ));
            }
            v.push(format!("check deny — every pod in {GATEWAY_NAMESPACE} and {fns} is still Ready (the policy did not cut kubelet probes)"));
            v
        }
        Check::Canary(c) => {
            let split: Vec<String> = c.split.variants().iter().map(|v| format!("{}={}", v.name, v.weight.percent())).collect();
            let pro = vars.get("openfaas.edition") == Some("pro");
            let gateway = if pro {
                format!("then the same through the gateway (OpenFaaS Pro calls the Service), after one echoed Host shows the gateway addresses {} by name", c.function)
            } else {
                "not through the gateway: OpenFaaS CE's gateway calls pod IPs, where no Service split applies".to_string()
            };
            vec![
                format!(
                    "check canary — traffic from a meshed client pod in {fns} (images.probe, curl in batches) calling http://{}.{fns}.svc.cluster.local:8080/, where the mesh's Service split applies; {gateway}",
                    c.function
                ),
                format!(
                    "check canary — converge: {} consecutive classified responses, counted once every routed variant has answered (an unclassified one, or one from a weight-0 variant, restarts the count)",
                    c.converge
                ),
                format!(
                    "check canary — sequential test of split {} ±{} pp at confidence {} (at most {} requests, timeout {})",
                    split.join("/"),
                    c.tolerance.points(),
                    c.confidence.level(),
                    c.max_requests,
                    humantime::format_duration(c.timeout)
                ),
            ]
        }
        Check::Tls(t) => {
            let host = render(&t.host, vars);
            let port = vars.get("ingress.httpsPort").unwrap_or("30043").to_string();
            let proto = match t.min_protocol {
                MinProtocol::Tls12 => "1.2",
                MinProtocol::Tls13 => "1.3",
            };
            vec![
                format!("check tls — read the CA from secret {}/{} key {}", t.ca_secret.namespace, t.ca_secret.name, t.ca_secret.key),
                format!(
                    "check tls --url https://{host}:{port}{} --resolve {host}:127.0.0.1 --ca <cluster CA> --min-days {} --min-protocol {proto}, retried until it passes (timeout {})",
                    t.path,
                    t.min_days,
                    humantime::format_duration(t.timeout)
                ),
                format!("check tls — negative control: the same endpoint judged as host wrong.{host} must fail (if the server refuses that SNI, its served chain is re-judged as wrong.{host})"),
                "check tls — negative control: the same endpoint judged against a freshly generated CA must fail; a control that passes makes the check an error (blind judge)".into(),
            ]
        }
        Check::Restore(r) => vec![
            "check restore — install sealed-secrets and flux; serve a git repository made by meshproof to the cluster".into(),
            format!(
                "check restore — commit functions [{}] and SealedSecrets [{}] sealed offline with the controller certificate",
                r.functions.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", "),
                r.sealed_secrets.iter().map(|(ns, n)| format!("{ns}/{n}")).collect::<Vec<_>>().join(", ")
            ),
            "check restore — wait for Kustomization Ready at HEAD, SealedSecrets Synced=True, functions answering; record inventory".into(),
            "check restore — back up sealing keys (0600 file in the run's temp dir)".into(),
            "check restore — destroy the cluster; create a new one; install the stack again".into(),
            "check restore — negative control: before the key is restored every SealedSecret must fail with 'no key could decrypt secret', and nothing unseals during a short hold".into(),
            "check restore — restore keys, restart the controller, reconcile, restart functions still waiting for their Secret; inventories must match; report RTO by phase (without the hold)".into(),
            format!(
                "check restore — recovery budget {}",
                r.max_recovery.map(|d| humantime::format_duration(d).to_string()).unwrap_or_else(|| "none (measured only)".into())
            ),
        ],
    }
}

fn from_label(f: ProbeFrom) -> &'static str {
    match f {
        ProbeFrom::Probe => "the probe pod",
        ProbeFrom::Outside => "outside, through the gateway",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::loader::{load_text, Document};
    use std::path::Path;

    const SUITE: &str = "kind: Suite
name: s
cluster:
  provider: kind
  nodeImage: kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a
mesh: { name: linkerd, version: edge-26.8.3 }
openfaas: { chart: 15.0.6 }
components: { gatewayApi: { version: v1.5.1 }, flux: { version: v2.9.4 }, sealedSecrets: { version: 2.19.1 } }
scenarios: [b, a, only-istio, r]
vars: { who: suite }
matrix:
  kubernetes:
    - { name: '1.34', nodeImage: 'kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a' }
    - { name: '1.33', nodeImage: 'kindest/node:v1.33.4@sha256:25a6018e48dfcaee478f4a59af81157a437f15e6e140bf103f85a2e7cd0cbbf2' }
";

    fn scenario(name: &str, extra: &str) -> String {
        format!(
            "kind: Scenario\nname: {name}\n{extra}vars: {{ who: scenario }}\nsteps:\n  - check:\n      deny:\n        policy: {{ inline: \"apiVersion: v1\\nkind: Namespace\\nmetadata: {{name: x}}\\n\" }}\n        expect: [{{ name: p, url: 'http://${{who}}', after: denied }}]\n"
        )
    }

    fn catalog() -> Catalog {
        let read = |_: &Path| -> std::io::Result<String> { Err(std::io::Error::other("none")) };
        let mut c = Catalog::default();
        let Document::Suite(s) = load_text(Path::new("s.yaml"), SUITE, &read).unwrap() else {
            panic!()
        };
        c.suites.push(Arc::from(s));
        for (n, extra) in [("a", ""), ("b", ""), ("only-istio", "meshes: [istio]\n")] {
            let Document::Scenario(s) =
                load_text(Path::new("x.yaml"), &scenario(n, extra), &read).unwrap()
            else {
                panic!()
            };
            c.scenarios.push(Arc::from(s));
        }
        let restore = "kind: Scenario\nname: r\nsteps:\n  - check:\n      restore: { functions: [env], sealedSecrets: [{ namespace: n, name: s }] }\n";
        let Document::Scenario(s) = load_text(Path::new("r.yaml"), restore, &read).unwrap() else {
            panic!()
        };
        c.scenarios.push(Arc::from(s));
        c
    }

    #[test]
    fn expands_matrix_cells_skips_other_meshes_and_sorts() {
        let envs = expand(&catalog());
        let names: Vec<String> = trials(&envs).into_iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "s[k8s=1.33]::a",
                "s[k8s=1.33]::b",
                "s[k8s=1.33]::r",
                "s[k8s=1.34]::a",
                "s[k8s=1.34]::b",
                "s[k8s=1.34]::r",
            ]
        );
    }

    /// The preflight step names each pinned tool's version from tools.yaml, not from any other
    /// place (issue #16).
    #[test]
    fn the_tool_step_names_the_tables_versions() {
        let c =
            crate::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let env = expand(&c)
            .into_iter()
            .find(|e| e.key == "linkerd[k8s=1.36]")
            .unwrap();
        let step = steps(&env, &c).into_iter().next().unwrap();
        assert_eq!(step.title, "check the tools this environment needs");
        let table = crate::toolchain::table::Table::committed().unwrap();
        for tool in ["kind", "helm", "linkerd", "flux", "kubeseal"] {
            let want = format!("{tool} {} (tools.yaml", table.version(tool).unwrap());
            assert!(
                step.detail.iter().any(|d| d.starts_with(&want)),
                "{want} in {:?}",
                step.detail
            );
        }
        assert!(
            step.detail.iter().any(|d| d == "git on PATH"),
            "{:?}",
            step.detail
        );
    }

    /// The shipped suites: in each cell the shared environment's trials run first, restore last.
    #[test]
    fn trials_with_an_environment_of_their_own_run_last_in_their_cell() {
        let c =
            crate::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let names: Vec<String> = trials(&expand(&c))
            .into_iter()
            .filter(|t| t.env.name == "istio[k8s=1.36]")
            .map(|t| t.name.rsplit("::").next().unwrap().to_string())
            .collect();
        assert_eq!(names, ["canary", "deny", "mtls", "tls", "restore"]);
    }

    #[test]
    fn destructive_scenarios_get_an_environment_of_their_own() {
        let envs = expand(&catalog());
        let keys: Vec<&str> = envs.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "s[k8s=1.33]",
                "s[k8s=1.33]::r",
                "s[k8s=1.34]",
                "s[k8s=1.34]::r"
            ]
        );
        let shared = &envs[0];
        assert_eq!(shared.trials.len(), 2);
        assert!(shared.trials.iter().all(|t| t.env_key == "s[k8s=1.33]"));
        assert_eq!(envs[1].trials[0].env_key, "s[k8s=1.33]::r");
    }

    #[test]
    fn suite_vars_override_scenario_vars_and_builtins_are_set() {
        let c = catalog();
        let envs = expand(&c);
        let t = &envs[0].trials[0];
        let v = vars_for(&envs[0].suite, &envs[0].env, &t.scenario, Some("r1"));
        assert_eq!(v.get("who"), Some("suite"));
        assert_eq!(v.get("mesh"), Some("linkerd"));
        assert_eq!(v.get("runId"), Some("r1"));
        assert_eq!(v.get("namespace.functions"), Some("openfaas-fn"));
        assert_eq!(v.get("gateway.serviceAccount"), Some("openfaas-controller"));
        assert_eq!(v.get("environment"), Some("s[k8s=1.33]"));
    }

    #[test]
    fn the_plan_spells_out_negative_controls_before_the_checks() {
        let c = catalog();
        let envs = expand(&c);
        let steps = steps(&envs[0], &c);
        let trial = steps.iter().find(|s| s.title == "s[k8s=1.33]::a").unwrap();
        let before = trial
            .detail
            .iter()
            .position(|d| d.contains("negative control, before the policy"))
            .unwrap();
        let apply = trial
            .detail
            .iter()
            .position(|d| d.contains("apply policy"))
            .unwrap();
        let after = trial
            .detail
            .iter()
            .position(|d| d.contains("after the policy"))
            .unwrap();
        assert!(before < apply && apply < after, "{:#?}", trial.detail);
        assert!(steps.first().is_some_and(|s| s.phase == Phase::Preflight));
        assert!(steps.last().is_some_and(|s| s.phase == Phase::Teardown));
    }
}
