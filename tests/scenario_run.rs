//! The trial executor and the checks' order of events, without a cluster: rendering per mesh,
//! the executor against a recording double of the cluster (`RecordingOps`), the deny check
//! against a scripted probe double, canary convergence against a scripted sampler, the TLS
//! check's negative controls against real TLS servers on loopback, and the mTLS control rule
//! over pcaps recorded by tcpdump on loopback.

mod support_tls;

use meshproof::check::canary::{Sample, UnclassifiedKind};
use meshproof::check::http::{Classification, Denial, DenySource};
use meshproof::check::tls::TlsVersion;
use meshproof::check::{CheckName, Outcome, Verdict};
use meshproof::scenario::loader::{load_text, Document};
use meshproof::scenario::template::Vars;
use meshproof::scenario::{Check, DataPlane, Mesh, Scenario, Step};
use meshproof::scenario_run::checks::canary::{converge, ConvergeRule, SETTLE};
use meshproof::scenario_run::checks::deny::{
    run_deny, DenyDriver, DenyTiming, KubeletProbe, Observed, ProbeTarget, RenderedProbe,
};
use meshproof::scenario_run::checks::tls::{run_tls_check, TlsTrialInput};
use meshproof::scenario_run::executor::{run_trial, AppliedObject, StepError, TrialOps, TrialSpec};
use meshproof::scenario_run::linkerd::AuthzCounters;
use meshproof::scenario_run::render::{self, FunctionRequest, ObjectRef, WaitTarget};
use meshproof::scenario_run::tracker::Tracker;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support_tls::{server_config, tls_server, window, Ca};

// ---------------------------------------------------------------- helpers

fn project_scenario(name: &str) -> Arc<Scenario> {
    let c = meshproof::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("project loads");
    c.scenarios
        .iter()
        .find(|s| s.name.as_str() == name)
        .cloned()
        .expect("scenario exists")
}

fn scenario(text: &str) -> Scenario {
    let read = |_: &Path| -> std::io::Result<String> {
        Err(std::io::Error::other("no files in this test"))
    };
    match load_text(Path::new("t.yaml"), text, &read) {
        Ok(Document::Scenario(s)) => *s,
        Ok(_) => panic!("not a scenario"),
        Err(e) => panic!("{e:?}"),
    }
}

fn vars(mesh: Mesh) -> Vars {
    let mut v = Vars::default();
    v.set("mesh", mesh.as_str());
    v.set("runId", "r1");
    v.set("namespace.functions", "openfaas-fn");
    v.set("namespace.gateway", "openfaas");
    v.set("gateway.serviceAccount", "openfaas-controller");
    v.set("ingress.httpsPort", "30043");
    for (role, image) in meshproof::images::Images::default().iter() {
        v.set(role.var(), image.as_str());
    }
    v
}

fn scenario_vars(s: &Scenario, mesh: Mesh) -> Vars {
    vars(mesh).overlay(&s.vars)
}

// ---------------------------------------------------------------- rendering

#[test]
fn each_mesh_gets_its_manifest_variant_and_the_step_vars_overlay() {
    let s = project_scenario("canary");
    let applies: Vec<_> = s
        .steps
        .iter()
        .filter_map(|st| {
            if let Step::Apply(m) = st {
                Some(m)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(applies.len(), 3);
    let istio = render::render_manifests(
        applies[0],
        DataPlane::IstioSidecar,
        &scenario_vars(&s, Mesh::Istio),
    )
    .unwrap();
    let linkerd = render::render_manifests(
        applies[0],
        DataPlane::Linkerd,
        &scenario_vars(&s, Mesh::Linkerd),
    )
    .unwrap();
    assert!(
        istio.yaml.contains("kind: VirtualService") && !istio.yaml.contains("HTTPRoute"),
        "{}",
        istio.yaml
    );
    assert!(
        linkerd.yaml.contains("kind: HTTPRoute") && !linkerd.yaml.contains("VirtualService"),
        "{}",
        linkerd.yaml
    );
    assert!(istio.yaml.contains("weight: 90") && istio.yaml.contains("weight: 10"));
    // The second apply overlays stableWeight/canaryWeight = 50/50 over the scenario's 90/10.
    let second = render::render_manifests(
        applies[1],
        DataPlane::IstioSidecar,
        &scenario_vars(&s, Mesh::Istio),
    )
    .unwrap();
    assert_eq!(
        second.yaml.matches("weight: 50").count(),
        2,
        "{}",
        second.yaml
    );
    let third = render::render_manifests(
        applies[2],
        DataPlane::Linkerd,
        &scenario_vars(&s, Mesh::Linkerd),
    )
    .unwrap();
    assert!(third.yaml.contains("weight: 0") && third.yaml.contains("weight: 100"));
    // Istio ambient takes its own variant, never the sidecar's VirtualService: a waypoint for the
    // Service and a Gateway API route whose parent is the Service in the core group ("").
    let ambient = render::render_manifests(
        applies[0],
        DataPlane::IstioAmbient,
        &scenario_vars(&s, Mesh::Istio),
    )
    .unwrap();
    assert!(
        !ambient.yaml.contains("VirtualService")
            && ambient.yaml.contains("gatewayClassName: istio-waypoint")
            && ambient.yaml.contains("istio.io/use-waypoint: waypoint")
            && ambient.yaml.contains("group: \"\"")
            && ambient.yaml.contains("weight: 90"),
        "{}",
        ambient.yaml
    );
    // A step with no variant for a data plane is an error there, not another data plane's.
    let deny = project_scenario("deny");
    let Some(Step::Check(Check::Deny(d))) = deny.steps.iter().find(|s| matches!(s, Step::Check(_)))
    else {
        panic!("deny has a deny check")
    };
    let only_sidecar = meshproof::scenario::Manifests {
        sources: meshproof::scenario::ManifestSources::PerMesh(Box::new(
            meshproof::scenario::PerMeshSources {
                istio: d.policy.for_data_plane(DataPlane::IstioSidecar).cloned(),
                linkerd: None,
                istio_ambient: None,
            },
        )),
        vars: Default::default(),
    };
    let err = render::render_manifests(
        &only_sidecar,
        DataPlane::IstioAmbient,
        &scenario_vars(&deny, Mesh::Istio),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the step has no manifest for istio-ambient"
    );
    let objs = render::objects_of(&istio.yaml, "default").unwrap();
    assert_eq!(
        objs,
        vec![ObjectRef {
            api_version: "networking.istio.io/v1".into(),
            kind: "VirtualService".into(),
            namespace: Some("openfaas-fn".into()),
            name: "env-canary-split".into()
        }]
    );
}

#[test]
fn unmeshed_functions_carry_the_meshs_opt_out_and_fprocess_is_the_watchdog_process() {
    let s = project_scenario("mtls");
    let deploys: Vec<_> = s
        .steps
        .iter()
        .filter_map(|st| {
            if let Step::Deploy(d) = st {
                Some(d)
            } else {
                None
            }
        })
        .collect();
    let control = deploys
        .iter()
        .find(|d| d.function.as_str() == "env-nomesh")
        .unwrap();
    let i = render::render_deploy(
        control,
        DataPlane::IstioSidecar,
        &scenario_vars(&s, Mesh::Istio),
        "r1",
    )
    .unwrap();
    assert_eq!(
        i.annotations
            .get("sidecar.istio.io/inject")
            .map(String::as_str),
        Some("false")
    );
    // Istio ambient: istio-cni reads a pod label, not the sidecar annotation (ledger IS-21).
    let a = render::render_deploy(
        control,
        DataPlane::IstioAmbient,
        &scenario_vars(&s, Mesh::Istio),
        "r1",
    )
    .unwrap();
    assert_eq!(
        a.labels.get("istio.io/dataplane-mode").map(String::as_str),
        Some("none")
    );
    assert!(a.annotations.is_empty(), "{:?}", a.annotations);
    assert_eq!(
        a.gateway_body()["labels"]["istio.io/dataplane-mode"],
        "none",
        "the CE gateway request carries it to the pod template"
    );
    let l = render::render_deploy(
        control,
        DataPlane::Linkerd,
        &scenario_vars(&s, Mesh::Linkerd),
        "r1",
    )
    .unwrap();
    assert_eq!(
        l.annotations.get("linkerd.io/inject").map(String::as_str),
        Some("disabled")
    );
    assert!(!l.annotations.contains_key("sidecar.istio.io/inject"));
    let meshed = deploys
        .iter()
        .find(|d| d.function.as_str() == "env")
        .unwrap();
    let m = render::render_deploy(
        meshed,
        DataPlane::IstioAmbient,
        &scenario_vars(&s, Mesh::Istio),
        "r1",
    )
    .unwrap();
    assert!(
        !m.labels.contains_key("istio.io/dataplane-mode"),
        "{:?}",
        m.labels
    );
    let m = render::render_deploy(
        meshed,
        DataPlane::IstioSidecar,
        &scenario_vars(&s, Mesh::Istio),
        "r1",
    )
    .unwrap();
    assert!(m.annotations.is_empty(), "{:?}", m.annotations);
    let body = m.gateway_body();
    assert_eq!(body["service"], "env");
    assert_eq!(body["image"], "ghcr.io/openfaas/alpine:latest");
    assert_eq!(body["envProcess"], "env");
    assert!(
        body["envVars"].as_object().unwrap().is_empty(),
        "fprocess is not also an env var"
    );
    assert_eq!(body["labels"]["meshproof.dev/run-id"], "r1");
    let cr: Value = serde_json::from_str(&m.function_cr_yaml("openfaas-fn")).unwrap();
    assert_eq!(cr["apiVersion"], "openfaas.com/v1");
    assert_eq!(cr["spec"]["environment"]["fprocess"], "env");
    assert_eq!(cr["metadata"]["namespace"], "openfaas-fn");
}

#[test]
fn wait_targets_map_to_the_right_wait() {
    let s = scenario(
        "kind: Scenario\nname: w\nsteps:\n  - wait: { for: rollout, target: deployment/env, namespace: \"${namespace.functions}\", timeout: 1m }\n  - wait: { for: condition, target: certificate/ca, namespace: cert-manager, condition: Ready=True, timeout: 1m }\n  - wait: { for: established, target: crd/functions.openfaas.com, timeout: 1m }\n  - wait: { for: podsReady, target: app=x, namespace: n, timeout: 1m }\n  - wait: { for: rollout, target: statefulset/x, timeout: 1m }\n  - check: { mtls: { function: env, control: env-nomesh } }\n",
    );
    let v = vars(Mesh::Istio);
    let w: Vec<_> = s
        .steps
        .iter()
        .filter_map(|st| {
            if let Step::Wait(w) = st {
                Some(render::render_wait(w, &v))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        w[0].as_ref().unwrap().0,
        WaitTarget::Rollout {
            namespace: "openfaas-fn".into(),
            name: "env".into()
        }
    );
    assert_eq!(
        w[1].as_ref().unwrap().0,
        WaitTarget::Condition {
            kind: "certificate".into(),
            namespace: Some("cert-manager".into()),
            name: "ca".into(),
            type_: "Ready".into(),
            status: "True".into()
        }
    );
    assert_eq!(
        w[2].as_ref().unwrap().0,
        WaitTarget::Established {
            name: "functions.openfaas.com".into()
        }
    );
    assert_eq!(
        w[3].as_ref().unwrap().0,
        WaitTarget::PodsReady {
            namespace: "n".into(),
            selector: "app=x".into()
        }
    );
    assert!(w[4]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("deployment/NAME"));
}

// ---------------------------------------------------------------- executor

/// A recording double of the cluster: logs every call, answers checks from a script.
#[derive(Default)]
struct RecordingOps {
    calls: Vec<String>,
    check_outcomes: VecDeque<Outcome>,
    hang_waits: bool,
    /// Objects reported as already existing (apply says `configured`).
    pre_existing: Vec<String>,
}

impl TrialOps for RecordingOps {
    async fn apply(&mut self, yaml: &str) -> Result<Vec<AppliedObject>, String> {
        let objs = render::objects_of(yaml, "default").map_err(|e| e.to_string())?;
        self.calls.push(format!(
            "apply {}",
            objs.iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(objs
            .into_iter()
            .map(|o| AppliedObject {
                created: !self.pre_existing.contains(&o.name),
                object: o,
            })
            .collect())
    }
    async fn delete(&mut self, objects: &[ObjectRef]) -> Result<(), String> {
        self.calls.push(format!(
            "delete {}",
            objects
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(())
    }
    async fn deploy(&mut self, f: &FunctionRequest) -> Result<(), String> {
        self.calls.push(format!("deploy {}", f.service));
        Ok(())
    }
    async fn remove_function(&mut self, name: &str) -> Result<(), String> {
        self.calls.push(format!("remove function {name}"));
        Ok(())
    }
    async fn wait(&mut self, target: &WaitTarget, _timeout: Duration) -> Result<(), String> {
        if self.hang_waits {
            std::future::pending::<()>().await;
        }
        self.calls.push(format!("wait {target}"));
        Ok(())
    }
    async fn check(
        &mut self,
        check: &Check,
        _vars: &Vars,
        _tracker: &mut Tracker,
    ) -> Verdict<Value> {
        self.calls.push(format!("check {}", check.kind()));
        let o = self.check_outcomes.pop_front().unwrap_or(Outcome::Error);
        Verdict::new(
            CheckName::Canary,
            o,
            if o == Outcome::Pass {
                vec![]
            } else {
                vec![format!("scripted {o}")]
            },
            Value::Null,
        )
    }
    async fn dump(&mut self, dir: &Path) -> Result<(), String> {
        self.calls.push(format!(
            "dump {}",
            dir.file_name().unwrap().to_string_lossy()
        ));
        Ok(())
    }
}

const TRIAL: &str = r#"kind: Scenario
name: t
vars: { image: "ghcr.io/openfaas/alpine:latest" }
steps:
  - apply: { inline: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: x}\n" }
  - deploy: { function: env, image: "${image}", env: { fprocess: env } }
  - wait: { for: rollout, target: deployment/env, namespace: "${namespace.functions}", timeout: 1s }
  - check:
      canary:
        function: env
        variants:
          - { name: a, pattern: "^a", weight: 50 }
          - { name: b, pattern: "^b", weight: 50 }
        tolerance: 5
        confidence: 0.99
  - apply: { inline: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: x}\n" }
  - delete: { inline: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b, namespace: x}\n" }
  - check:
      canary:
        function: env
        variants:
          - { name: a, pattern: "^a", weight: 50 }
          - { name: b, pattern: "^b", weight: 50 }
        tolerance: 5
        confidence: 0.99
"#;

fn spec<'a>(s: &'a Scenario, artifacts: Option<&Path>) -> TrialSpec<'a> {
    TrialSpec {
        name: "env::t",
        scenario: s,
        mesh: Mesh::Istio,
        data_plane: DataPlane::IstioSidecar,
        vars: scenario_vars(s, Mesh::Istio),
        run_id: "r1".into(),
        artifacts: artifacts.map(Path::to_path_buf),
    }
}

#[tokio::test]
async fn steps_run_in_order_and_cleanup_removes_only_what_the_trial_created() {
    let s = scenario(TRIAL);
    let mut ops = RecordingOps {
        check_outcomes: [Outcome::Pass, Outcome::Pass].into(),
        pre_existing: vec!["shared".into()],
        ..RecordingOps::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let report = run_trial(&mut ops, &spec(&s, Some(dir.path()))).await;
    assert!(report.passed(), "{:?}", report.failure_message());
    assert_eq!(report.verdicts.len(), 2);
    assert_eq!(
        ops.calls,
        [
            "apply ConfigMap x/a, ConfigMap x/shared",
            "deploy env",
            "wait deployment openfaas-fn/env rolled out",
            "check canary",
            "apply ConfigMap x/b",
            "delete ConfigMap x/b",
            "check canary",
            // Cleanup: the function, then what the trial created and did not delete already.
            // `shared` existed before the trial and stays.
            "remove function env",
            "delete ConfigMap x/a",
        ]
    );
}

#[tokio::test]
async fn a_wait_for_another_mesh_is_skipped() {
    let text = TRIAL.replace(
        "  - wait: { for: rollout, target: deployment/env, namespace: \"${namespace.functions}\", timeout: 1s }\n",
        "  - wait: { for: rollout, target: deployment/env, namespace: \"${namespace.functions}\", timeout: 1s }\n  - wait: { for: condition, target: httproute/split, condition: Accepted=True, mesh: linkerd, timeout: 1s }\n",
    );
    assert_ne!(text, TRIAL);
    let s = scenario(&text);
    let mut ops = RecordingOps {
        check_outcomes: [Outcome::Pass, Outcome::Pass].into(),
        ..RecordingOps::default()
    };
    let report = run_trial(&mut ops, &spec(&s, None)).await;
    assert!(report.passed(), "{:?}", report.failure_message());
    let waits: Vec<&String> = ops.calls.iter().filter(|c| c.starts_with("wait")).collect();
    assert_eq!(
        waits,
        ["wait deployment openfaas-fn/env rolled out"],
        "the linkerd-only wait is skipped on istio"
    );
    // On Linkerd it runs.
    let mut ops = RecordingOps {
        check_outcomes: [Outcome::Pass, Outcome::Pass].into(),
        ..RecordingOps::default()
    };
    let linkerd = TrialSpec {
        mesh: Mesh::Linkerd,
        data_plane: DataPlane::Linkerd,
        vars: scenario_vars(&s, Mesh::Linkerd),
        ..spec(&s, None)
    };
    run_trial(&mut ops, &linkerd).await;
    assert_eq!(
        ops.calls.iter().filter(|c| c.starts_with("wait")).count(),
        2,
        "{:?}",
        ops.calls
    );
}

#[tokio::test]
async fn a_failing_check_stops_the_trial_dumps_and_still_cleans_up() {
    let s = scenario(TRIAL);
    let mut ops = RecordingOps {
        check_outcomes: [Outcome::Fail].into(),
        ..RecordingOps::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let report = run_trial(&mut ops, &spec(&s, Some(dir.path()))).await;
    assert!(!report.passed());
    assert_eq!(report.outcome(), Outcome::Fail);
    let msg = report.failure_message().unwrap();
    assert!(msg.contains("check canary fail: scripted fail"), "{msg}");
    // Where the report has it, never the run's private temp dir (gone once the report is
    // uploaded; issue #21).
    assert!(
        msg.contains("diagnostics: in this trial's artifacts (dump--*)"),
        "{msg}"
    );
    assert!(!msg.contains(&dir.path().display().to_string()), "{msg}");
    let pos = |c: &str| {
        ops.calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("{c} in {:?}", ops.calls))
    };
    assert!(pos("check canary") < pos("dump dump"));
    assert!(
        pos("dump dump") < pos("remove function env"),
        "dump before cleanup: {:?}",
        ops.calls
    );
    assert!(
        !ops.calls.iter().any(|c| c == "apply ConfigMap x/b"),
        "later steps do not run: {:?}",
        ops.calls
    );
    assert!(
        ops.calls
            .iter()
            .any(|c| c == "delete ConfigMap x/shared, ConfigMap x/a"
                || c == "delete ConfigMap x/shared"),
        "{:?}",
        ops.calls
    );
}

#[tokio::test]
async fn a_step_that_exceeds_its_timeout_errors_naming_the_step() {
    let s = scenario(TRIAL);
    let mut ops = RecordingOps {
        hang_waits: true,
        ..RecordingOps::default()
    };
    let started = std::time::Instant::now();
    let report = run_trial(&mut ops, &spec(&s, None)).await;
    // The wait's own timeout is 1 s, plus half of it as slack.
    assert!(started.elapsed() < Duration::from_secs(10));
    match &report.step_error {
        Some(StepError::Timeout { index, title, .. }) => {
            assert_eq!(*index, 3);
            assert!(title.contains("deployment/env"), "{title}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.outcome(), Outcome::Error);
    let msg = report.failure_message().unwrap();
    assert!(
        msg.contains("step 3 (wait until deployment/env in openfaas-fn is rolled out")
            && msg.contains("timed out"),
        "{msg}"
    );
    assert!(msg.contains("no artifacts directory"), "{msg}");
    assert!(
        ops.calls.iter().any(|c| c == "remove function env"),
        "cleanup after a timeout: {:?}",
        ops.calls
    );
}

// ---------------------------------------------------------------- deny

/// A scripted probe double: per probe, what it answers before and after the policy.
struct ScriptedProbes {
    log: Vec<String>,
    policy: bool,
    before: HashMap<String, Classification>,
    /// Answers after the policy, in order; the last repeats.
    after: HashMap<String, Vec<Classification>>,
    workloads: Result<(), String>,
    policy_at: Option<std::time::Instant>,
    /// How long after the policy the pods were judged.
    ready_after_policy: Option<Duration>,
    /// Each probe's target (asked on Linkerd).
    targets: HashMap<String, ProbeTarget>,
    /// Whether a 403 after the policy is the (simulated) Linkerd proxy's: then the target's
    /// deny counter rises with it.
    proxy_denies: bool,
    /// The target proxies' counters per probe.
    counters: HashMap<String, AuthzCounters>,
}

impl DenyDriver for ScriptedProbes {
    async fn probe(&mut self, p: &RenderedProbe) -> Observed {
        let c = if self.policy {
            let seq = self.after.get_mut(&p.name).unwrap();
            if seq.len() > 1 {
                seq.remove(0)
            } else {
                seq[0].clone()
            }
        } else {
            self.before[&p.name].clone()
        };
        self.log.push(format!(
            "{} {}",
            if self.policy { "after" } else { "before" },
            p.name
        ));
        if self.proxy_denies && matches!(c, Classification::Denied(Denial::Forbidden { .. })) {
            self.counters.entry(p.name.clone()).or_default().denied += 1;
        }
        Observed::new(c, "scripted")
    }
    async fn apply_policy(&mut self) -> Result<(), String> {
        self.log.push("apply policy".into());
        self.policy = true;
        self.policy_at = Some(std::time::Instant::now());
        Ok(())
    }
    async fn workloads_ready(&mut self) -> Result<(), String> {
        self.log.push("workloads".into());
        self.ready_after_policy = self.policy_at.map(|t| t.elapsed());
        self.workloads.clone()
    }
    async fn target(&mut self, p: &RenderedProbe) -> Result<ProbeTarget, String> {
        self.log.push(format!("target {}", p.name));
        self.targets
            .get(&p.name)
            .cloned()
            .ok_or_else(|| format!("no target for {}", p.name))
    }
    async fn counters(&mut self, p: &RenderedProbe) -> Result<AuthzCounters, String> {
        Ok(self.counters.get(&p.name).copied().unwrap_or_default())
    }
}

fn allowed() -> Classification {
    Classification::Allowed { status: 200 }
}
fn denied() -> Classification {
    Classification::Denied(Denial::ConnectionReset)
}

fn deny_probes() -> Vec<RenderedProbe> {
    let s = project_scenario("deny");
    let Some(Step::Check(Check::Deny(d))) = s.steps.iter().find(|st| matches!(st, Step::Check(_)))
    else {
        panic!()
    };
    meshproof::scenario_run::checks::deny::render_probes(d, &scenario_vars(&s, Mesh::Istio))
        .unwrap()
}

fn script(after: &[(&str, Vec<Classification>)]) -> ScriptedProbes {
    let probes = deny_probes();
    ScriptedProbes {
        log: vec![],
        policy: false,
        before: probes.iter().map(|p| (p.name.clone(), allowed())).collect(),
        after: after
            .iter()
            .map(|(n, c)| (n.to_string(), c.clone()))
            .collect(),
        workloads: Ok(()),
        policy_at: None,
        ready_after_policy: None,
        targets: probes
            .iter()
            .map(|p| (p.name.clone(), target_of(p, &[])))
            .collect(),
        proxy_denies: true,
        counters: HashMap::new(),
    }
}

/// A one-pod target for `p` whose container port is the URL's, with these kubelet probes
/// (`(port, path)`).
fn target_of(p: &RenderedProbe, kubelet: &[(u16, &str)]) -> ProbeTarget {
    let url = reqwest::Url::parse(&p.url).unwrap();
    ProbeTarget {
        namespace: "openfaas".into(),
        service: url.host_str().unwrap().split('.').next().unwrap().into(),
        pods: vec![format!("{}-pod", p.name)],
        container_port: url.port().unwrap(),
        kubelet_probes: kubelet
            .iter()
            .map(|(port, path)| KubeletProbe {
                pod: format!("{}-pod", p.name),
                container: "app".into(),
                kind: "readiness".into(),
                port: *port,
                path: path.to_string(),
            })
            .collect(),
    }
}

fn fast() -> DenyTiming {
    DenyTiming {
        settle: Duration::from_millis(300),
        poll: Duration::from_millis(20),
        before_for: Duration::from_millis(60),
        ready_hold: Duration::ZERO,
        log_wait: Duration::ZERO,
    }
}

fn good_after() -> Vec<(&'static str, Vec<Classification>)> {
    vec![
        ("function-to-gateway", vec![allowed(), allowed(), denied()]),
        ("function-to-prometheus", vec![denied()]),
        ("function-to-function", vec![denied()]),
        ("gateway-to-function", vec![allowed()]),
    ]
}

#[tokio::test]
async fn pods_are_judged_only_after_the_readiness_hold() {
    let probes = deny_probes();
    let mut d = script(&good_after());
    let hold = Duration::from_millis(400);
    let v = run_deny(
        &mut d,
        &probes,
        DenyTiming {
            ready_hold: hold,
            ..fast()
        },
        DataPlane::IstioSidecar,
    )
    .await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert!(
        d.ready_after_policy.unwrap() >= hold,
        "{:?}",
        d.ready_after_policy
    );
}

#[tokio::test]
async fn deny_probes_before_the_policy_then_after_it_and_checks_the_pods() {
    let probes = deny_probes();
    assert_eq!(probes[0].url, "http://gateway.openfaas:8080/function/env");
    let mut d = script(&good_after());
    let v = run_deny(&mut d, &probes, fast(), DataPlane::IstioSidecar).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let apply = d.log.iter().position(|l| l == "apply policy").unwrap();
    assert!(
        d.log[..apply].iter().all(|l| l.starts_with("before ")),
        "{:?}",
        d.log
    );
    assert_eq!(d.log[..apply].len(), 4);
    assert!(
        d.log[apply + 1..d.log.len() - 1]
            .iter()
            .all(|l| l.starts_with("after ")),
        "{:?}",
        d.log
    );
    assert_eq!(d.log.last().map(String::as_str), Some("workloads"));
    assert_eq!(
        v.evidence.probes[0].after_attempts, 3,
        "polled until it flipped"
    );
    assert!(v
        .evidence
        .probes
        .iter()
        .all(|p| p.observed_before.is_some() && p.observed_after.is_some()));
}

#[tokio::test]
async fn a_probe_already_denied_before_the_policy_is_an_error_and_the_policy_is_never_applied() {
    let probes = deny_probes();
    let mut d = script(&good_after());
    d.before.insert("function-to-function".into(), denied());
    let v = run_deny(&mut d, &probes, fast(), DataPlane::IstioSidecar).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        v.reasons[0].contains("the deny check proves nothing")
            && v.reasons[0].contains("function-to-function"),
        "{:?}",
        v.reasons
    );
    assert!(!d.log.contains(&"apply policy".to_string()), "{:?}", d.log);
    assert!(!v.evidence.policy_applied);
}

#[tokio::test]
async fn a_probe_that_never_flips_fails_with_its_last_observation() {
    let probes = deny_probes();
    let mut after = good_after();
    after[2] = ("function-to-function", vec![allowed()]);
    let mut d = script(&after);
    let v = run_deny(&mut d, &probes, fast(), DataPlane::IstioSidecar).await;
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("function-to-function") && r.contains("still allowed (HTTP 200")),
        "{:?}",
        v.reasons
    );
    assert!(v.evidence.probes[2].after_attempts > 2);
}

#[tokio::test]
async fn an_undecided_last_observation_is_an_error_and_broken_pods_fail() {
    let probes = deny_probes();
    let mut after = good_after();
    after[1] = (
        "function-to-prometheus",
        vec![Classification::Undecided {
            why: "curl exit 28".into(),
        }],
    );
    let mut d = script(&after);
    let v = run_deny(&mut d, &probes, fast(), DataPlane::IstioSidecar).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);

    let mut d = script(&good_after());
    d.workloads = Err("not Ready: openfaas/gateway-1".into());
    let v = run_deny(&mut d, &probes, fast(), DataPlane::IstioSidecar).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        v.reasons[0].contains("not Ready: openfaas/gateway-1"),
        "{:?}",
        v.reasons
    );
}

fn forbidden(source: DenySource) -> Classification {
    Classification::Denied(Denial::Forbidden { source })
}

fn good_after_403(source: DenySource) -> Vec<(&'static str, Vec<Classification>)> {
    vec![
        ("function-to-gateway", vec![allowed(), forbidden(source)]),
        ("function-to-prometheus", vec![forbidden(source)]),
        ("function-to-function", vec![forbidden(source)]),
        ("gateway-to-function", vec![allowed()]),
    ]
}

/// Istio: a 403 is a denial only with the RBAC filter's body; any other 403 (the application's
/// own) is not shown to come from the mesh, so the check cannot pass on it (ledger IS-10).
#[tokio::test]
async fn on_istio_only_the_rbac_body_makes_a_403_a_mesh_denial() {
    let probes = deny_probes();
    let mut d = script(&good_after_403(DenySource::IstioRbac));
    let v = run_deny(&mut d, &probes, fast(), DataPlane::IstioSidecar).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    for source in [DenySource::Unknown, DenySource::Envoy] {
        let mut d = script(&good_after_403(source));
        let v = run_deny(&mut d, &probes, fast(), DataPlane::IstioSidecar).await;
        assert_eq!(v.outcome, Outcome::Error, "{source:?}: {:?}", v.reasons);
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("not shown to come from the mesh")
                    && r.contains("RBAC: access denied")),
            "{:?}",
            v.reasons
        );
    }
}

/// Linkerd sends a meshed client a bare 403 (its own proxy strips `l5d-proxy-error`, ledger
/// LD-11): it counts as the mesh's only when `inbound_http_authz_deny_total` rose on the target
/// pods' proxies across the probe.
#[tokio::test]
async fn on_linkerd_a_bare_403_counts_only_when_the_target_proxy_counted_a_denial() {
    let probes = deny_probes();
    let mut d = script(&good_after_403(DenySource::Unknown));
    let v = run_deny(&mut d, &probes, fast(), DataPlane::Linkerd).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let after = v.evidence.probes[1].observed_after.as_ref().unwrap();
    assert!(
        after
            .describe()
            .contains("inbound_http_authz_deny_total rose by 1"),
        "{}",
        after.describe()
    );
    // The same 403s, but the proxies counted nothing: the application answered.
    let mut d = script(&good_after_403(DenySource::Unknown));
    d.proxy_denies = false;
    let v = run_deny(&mut d, &probes, fast(), DataPlane::Linkerd).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("inbound_http_authz_deny_total did not rise")),
        "{:?}",
        v.reasons
    );
}

/// Linkerd authorizes kubelet probe paths for every client (ledger LD-12): a deny probe on one
/// is refused before anything is probed or applied, naming the probe it collides with.
#[tokio::test]
async fn on_linkerd_a_deny_probe_on_a_kubelet_probe_path_is_refused_up_front() {
    let probes = deny_probes();
    let mut d = script(&good_after());
    let gw = probes
        .iter()
        .find(|p| p.name == "function-to-gateway")
        .unwrap();
    // The path the scenario probed before this fix: the gateway's readiness probe.
    let mut healthz = gw.clone();
    healthz.url = "http://gateway.openfaas:8080/healthz".into();
    d.targets.insert(
        gw.name.clone(),
        target_of(gw, &[(8080, "/healthz"), (8081, "/healthz")]),
    );
    let v = run_deny(
        &mut d,
        std::slice::from_ref(&healthz),
        fast(),
        DataPlane::Linkerd,
    )
    .await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(
        v.reasons[0].contains("cannot be denied by Linkerd")
            && v.reasons[0].contains("GET /healthz on port 8080 is the readiness probe"),
        "{:?}",
        v.reasons
    );
    assert!(
        d.log.iter().all(|l| l.starts_with("target ")),
        "nothing probed or applied: {:?}",
        d.log
    );
    // The shipped scenario's paths collide with none of the chart's probes.
    let mut d = script(&good_after());
    d.targets.insert(
        gw.name.clone(),
        target_of(gw, &[(8080, "/healthz"), (8081, "/healthz")]),
    );
    let prom = probes
        .iter()
        .find(|p| p.name == "function-to-prometheus")
        .unwrap();
    d.targets
        .insert(prom.name.clone(), target_of(prom, &[(9090, "/-/healthy")]));
    let v = run_deny(&mut d, &probes, fast(), DataPlane::Linkerd).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    // Istio rewrites kubelet probes through its agent: no such guard there.
    let mut d = script(&good_after());
    let v = run_deny(
        &mut d,
        std::slice::from_ref(&healthz),
        fast(),
        DataPlane::IstioSidecar,
    )
    .await;
    assert_ne!(v.outcome, Outcome::Error, "{:?}", v.reasons);
}

/// A before-probe answering undecided (an endpoint still propagating) is retried for the
/// before window, not given up after a couple of attempts.
#[tokio::test]
async fn undecided_before_probes_are_retried_for_the_before_window() {
    let probes = deny_probes();
    struct Flaky {
        inner: ScriptedProbes,
        undecided_left: u32,
    }
    impl DenyDriver for Flaky {
        async fn probe(&mut self, p: &RenderedProbe) -> Observed {
            if !self.inner.policy && self.undecided_left > 0 {
                self.undecided_left -= 1;
                return Observed::undecided("HTTP 503: endpoint not ready");
            }
            self.inner.probe(p).await
        }
        async fn apply_policy(&mut self) -> Result<(), String> {
            self.inner.apply_policy().await
        }
        async fn workloads_ready(&mut self) -> Result<(), String> {
            self.inner.workloads_ready().await
        }
        async fn target(&mut self, p: &RenderedProbe) -> Result<ProbeTarget, String> {
            self.inner.target(p).await
        }
        async fn counters(&mut self, p: &RenderedProbe) -> Result<AuthzCounters, String> {
            self.inner.counters(p).await
        }
    }
    let timing = DenyTiming {
        before_for: Duration::from_secs(5),
        poll: Duration::from_millis(10),
        ..fast()
    };
    let mut d = Flaky {
        inner: script(&good_after()),
        undecided_left: 8,
    };
    let v = run_deny(&mut d, &probes, timing, DataPlane::IstioSidecar).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert_eq!(d.undecided_left, 0);
}

// ---------------------------------------------------------------- canary

fn unclassified() -> Sample {
    Sample::unclassified(UnclassifiedKind::HttpStatus, "status 503")
}

/// A two-variant rule; the variants not excluded are the routed ones.
fn rule(required: u32, excluded: &[usize]) -> ConvergeRule {
    ConvergeRule {
        required,
        excluded: excluded.to_vec(),
        routed: (0..2).filter(|i| !excluded.contains(i)).collect(),
        settle: Duration::ZERO,
    }
}

#[tokio::test]
async fn convergence_needs_consecutive_classified_responses() {
    // 2 classified, a 503 (restart), then 3 classified: converged after 6 requests.
    let script: Vec<Sample> = vec![
        Sample::Variant(0),
        Sample::Variant(1),
        unclassified(),
        Sample::Variant(0),
        Sample::Variant(0),
        Sample::Variant(1),
    ];
    let mut it = script.into_iter();
    let ev = converge(&rule(3, &[]), Duration::from_secs(10), || {
        let s = it.next().unwrap_or_else(unclassified);
        async move { s }
    })
    .await
    .expect("converges");
    assert_eq!((ev.sent, ev.unclassified), (6, 1));
    assert!(ev.last_unclassified.unwrap().contains("503"));
}

#[tokio::test]
async fn a_reply_from_a_weight_zero_variant_is_the_old_route_and_restarts_the_count() {
    // Moving to 0/100: the old 50/50 route still answers "stable" (variant 0) for a moment.
    let script = [1, 0, 1, 1, 0, 1, 1, 1].map(Sample::Variant).to_vec();
    let mut it = script.into_iter();
    let ev = converge(&rule(3, &[0]), Duration::from_secs(10), || {
        let s = it.next().unwrap_or_else(unclassified);
        async move { s }
    })
    .await
    .expect("converges once three canary replies follow each other");
    assert_eq!((ev.sent, ev.from_excluded), (8, 2));
}

/// Before a 90/10 route is live every reply is stable — the old route — and a count of
/// classified replies would end on it. The count starts once the canary has answered.
#[tokio::test]
async fn the_count_starts_once_every_routed_variant_has_answered() {
    let script = [0, 0, 0, 0, 0, 1, 0, 0].map(Sample::Variant).to_vec();
    let mut it = script.into_iter();
    let ev = converge(&rule(3, &[]), Duration::from_secs(10), || {
        let s = it.next().unwrap_or_else(unclassified);
        async move { s }
    })
    .await
    .expect("converges");
    assert_eq!((ev.sent, ev.before_all_seen), (8, 5), "{ev:?}");
}

#[tokio::test]
async fn convergence_cannot_end_before_the_settle_time() {
    let settle = Duration::from_millis(300);
    let r = ConvergeRule {
        settle,
        routed: vec![0],
        ..rule(2, &[])
    };
    let started = std::time::Instant::now();
    let ev = converge(&r, Duration::from_secs(10), || async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Sample::Variant(0)
    })
    .await
    .expect("converges");
    assert!(started.elapsed() >= settle && ev.sent > 2, "{ev:?}");
}

#[test]
fn the_rule_excludes_the_variants_the_route_gives_no_traffic() {
    let s = project_scenario("canary");
    let checks: Vec<ConvergeRule> = s
        .steps
        .iter()
        .filter_map(|st| match st {
            Step::Check(Check::Canary(c)) => Some(ConvergeRule::for_check(c)),
            _ => None,
        })
        .collect();
    let excluded: Vec<Vec<usize>> = checks.iter().map(|r| r.excluded.clone()).collect();
    assert_eq!(
        excluded,
        vec![vec![], vec![], vec![0]],
        "90/10, 50/50, then 0/100"
    );
    let routed: Vec<Vec<usize>> = checks.iter().map(|r| r.routed.clone()).collect();
    assert_eq!(routed, vec![vec![0, 1], vec![0, 1], vec![1]]);
    assert!(checks
        .iter()
        .all(|r| r.settle == SETTLE && r.required == 10));
}

/// The canary verdict from several traffic sources: the worst outcome, reasons named by source,
/// each source's evidence apart, and why a source did not run.
#[test]
fn canary_sources_combine_into_one_verdict() {
    use meshproof::scenario_run::checks::canary::{combine, TrafficSource};
    let v = |o: Outcome, r: &str| {
        Verdict::new(
            CheckName::Canary,
            o,
            vec![r.into()],
            serde_json::json!({"n": 1}),
        )
    };
    let both = combine(
        vec![
            (
                TrafficSource::MeshedClient,
                v(Outcome::Pass, "within tolerance"),
            ),
            (TrafficSource::Gateway, v(Outcome::Fail, "canary above")),
        ],
        None,
    );
    assert_eq!(both.outcome, Outcome::Fail);
    assert_eq!(
        both.reasons,
        [
            "meshed client → Service: within tolerance",
            "through the gateway: canary above"
        ]
    );
    assert!(both.evidence["meshed-client"].is_object() && both.evidence["gateway"].is_object());
    let ce = combine(
        vec![(TrafficSource::MeshedClient, v(Outcome::Pass, "ok"))],
        Some((TrafficSource::Gateway, "OpenFaaS CE")),
    );
    assert_eq!(ce.outcome, Outcome::Pass);
    assert_eq!(ce.evidence["gateway-skipped"], "OpenFaaS CE");
    assert_eq!(combine(vec![], None).outcome, Outcome::Error);
}

#[tokio::test]
async fn convergence_gives_up_at_its_deadline() {
    let err = converge(&rule(3, &[]), Duration::from_millis(300), || async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        unclassified()
    })
    .await
    .expect_err("never converges");
    assert!(err.sent >= 2 && err.unclassified == err.sent, "{err:?}");
}

// ---------------------------------------------------------------- tls

const HOST: &str = "faas.meshproof.test";

fn tls_input(ca_pem: String, port: u16) -> TlsTrialInput {
    TlsTrialInput {
        host: HOST.into(),
        port,
        path: "/healthz".into(),
        connect_ip: "127.0.0.1".into(),
        ca_pem,
        min_days: 15,
        min_protocol: TlsVersion::Tls12,
        expect_status: Some(200),
        timeout: Duration::from_secs(2),
        retry_pause: Duration::from_millis(200),
    }
}

#[tokio::test]
async fn tls_passes_with_both_negative_controls_failing() {
    let ca = Ca::new("meshproof test CA");
    let server = tls_server(server_config(
        ca.leaf(&[HOST], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let v = run_tls_check(&tls_input(ca.cert.pem(), server.port()), dir.path()).await;
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    let wrong = v.evidence.wrong_host.as_ref().unwrap();
    assert_eq!(wrong.outcome, Outcome::Fail);
    assert!(
        wrong
            .reasons
            .iter()
            .any(|r| r.contains("wrong.faas.meshproof.test")),
        "{:?}",
        wrong.reasons
    );
    let foreign = v.evidence.foreign_ca.as_ref().unwrap();
    assert_eq!(foreign.outcome, Outcome::Fail);
    assert!(
        foreign.reasons.iter().any(|r| r.contains("trusted CA")),
        "{:?}",
        foreign.reasons
    );
}

#[tokio::test]
async fn a_wildcard_certificate_makes_the_wrong_host_control_pass_so_the_check_errors() {
    // `*.meshproof.test` is not valid for wrong.faas.meshproof.test, but `*.faas.meshproof.test`
    // plus the host is: the wrong-host control cannot fail, so the judge is blind for names.
    let ca = Ca::new("meshproof test CA");
    let leaf = ca.leaf(&[HOST, "*.faas.meshproof.test"], window(-1, 90));
    let server = tls_server(server_config(leaf, rustls::ALL_VERSIONS)).await;
    let dir = tempfile::tempdir().unwrap();
    let v = run_tls_check(&tls_input(ca.cert.pem(), server.port()), dir.path()).await;
    assert_eq!(v.outcome, Outcome::Error, "{:?}", v.reasons);
    assert!(
        v.reasons[0].contains("the TLS judge is blind")
            && v.reasons[0].contains("wrong.faas.meshproof.test"),
        "{:?}",
        v.reasons
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_after_retrying_until_the_timeout() {
    let ca = Ca::new("meshproof test CA");
    let other = Ca::new("some other CA");
    let server = tls_server(server_config(
        other.leaf(&[HOST], window(-1, 90)),
        rustls::ALL_VERSIONS,
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let v = run_tls_check(&tls_input(ca.cert.pem(), server.port()), dir.path()).await;
    assert_eq!(v.outcome, Outcome::Fail, "{:?}", v.reasons);
    assert!(v.evidence.attempts >= 2, "retried: {}", v.evidence.attempts);
    assert!(
        v.evidence.wrong_host.is_none(),
        "controls only run after a pass"
    );
}

/// The TCP peer of an outside probe is the local port-forward: a close or reset is its stream
/// failing, not a mesh policy.
#[test]
fn outside_probes_decide_on_http_answers_only() {
    use meshproof::check::http::Observation;
    use meshproof::scenario_run::kube_ops::outside_classification;
    for o in [Observation::EofAfterConnect, Observation::ResetAfterConnect] {
        assert!(
            matches!(outside_classification(&o), Classification::Undecided { .. }),
            "{o:?}"
        );
    }
    let answer = |status| Observation::Response {
        status,
        headers: vec![],
        body_prefix: b"RBAC: access denied".to_vec(),
    };
    assert!(matches!(
        outside_classification(&answer(403)),
        Classification::Denied(_)
    ));
    assert!(matches!(
        outside_classification(&answer(200)),
        Classification::Allowed { status: 200 }
    ));
}
