//! The trial executor with its real cluster side ([`KubeTrial`]) against a real Kubernetes API
//! server (`../shared/kube-rig`, v1.20, no kubelet: pods never run). Set
//! `MESHPROOF_TEST_KUBECONFIG` (`.ci/run` does); without it each test prints why it skips,
//! except under `CI=true`, where it fails.
//!
//! What this proves: a scenario's rendered manifests (the project's own Istio policies) are
//! server-side applied with field manager `meshproof` and the run-id label, a `delete` step
//! removes its objects, everything the trial created is removed at the end while an object
//! that existed before is left alone, and a `wait for: rollout` on a function Deployment that
//! cannot roll out (no kubelet) times out naming the step and the Deployment's current state.
//! What it cannot prove here: deploys through the OpenFaaS gateway and every check (they need
//! running pods) — those run in the cluster tier (`cargo test --test e2e`).

mod support_harness;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject};
use kube::core::GroupVersionKind;
use kube::Client;
use meshproof::check::Verdict;
use meshproof::kubeops::apply::{apply_yaml, ApplyOptions};
use meshproof::kubeops::{
    client_from_kubeconfig, ClientOptions, RunId, FIELD_MANAGER, RUN_ID_LABEL,
};
use meshproof::process::Redactor;
use meshproof::scenario::loader::{load_text, Document};
use meshproof::scenario::template::Vars;
use meshproof::scenario::{Check, DataPlane, Mesh, Scenario, Step};
use meshproof::scenario_run::executor::{run_trial, AppliedObject, StepError, TrialOps, TrialSpec};
use meshproof::scenario_run::kube_ops::{Deployer, KubeTrial, KubeTrialConfig};
use meshproof::scenario_run::render::{FunctionRequest, ObjectRef, WaitTarget};
use meshproof::scenario_run::tracker::Tracker;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::OnceCell;

fn rig_kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("MESHPROOF_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but MESHPROOF_TEST_KUBECONFIG is not set: these tests need the kube-rig API server");
            }
            eprintln!("SKIP: MESHPROOF_TEST_KUBECONFIG is not set (start ../shared/kube-rig and point it at its kubeconfig)");
            None
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        rand::random::<u32>() % 100_000
    )
}

/// Istio's CRDs (the project's policies are Istio objects), installed once per process.
async fn istio_crds(client: &Client) {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let path = repo().join("../shared/crds/istio/crd-all.gen.yaml");
        let yaml =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        apply_yaml(
            client,
            &yaml,
            &ApplyOptions {
                force: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .expect("Istio CRDs apply");
    })
    .await;
}

struct Rig {
    kubeconfig: PathBuf,
    client: Client,
    ns: String,
    run_id: String,
}

async fn rig() -> Option<Rig> {
    let kubeconfig = rig_kubeconfig()?;
    let client = client_from_kubeconfig(&kubeconfig, &ClientOptions::default())
        .await
        .expect("rig client");
    istio_crds(&client).await;
    let ns = unique("sr");
    // The namespace exists before the trial: the trial must leave it alone.
    let doc = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
    apply_yaml(&client, &doc, &ApplyOptions::default())
        .await
        .expect("namespace");
    Some(Rig {
        kubeconfig,
        client,
        ns,
        run_id: unique("run"),
    })
}

async fn trial(r: &Rig) -> KubeTrial {
    trial_on(r, DataPlane::IstioSidecar).await
}

/// A trial on the rig as a mesh of `data_plane` runs it.
async fn trial_on(r: &Rig, data_plane: DataPlane) -> KubeTrial {
    KubeTrial::connect(KubeTrialConfig {
        kubeconfig: r.kubeconfig.clone(),
        context: None,
        mesh: data_plane.mesh(),
        data_plane,
        deployer: Deployer::Gateway,
        run_id: RunId::new(r.run_id.clone()).unwrap(),
        redactor: Redactor::default(),
        work_dir: tempfile::tempdir().unwrap().keep(),
    })
    .await
    .expect("connect")
}

fn project_scenario(name: &str) -> Scenario {
    let c = meshproof::scenario::catalog::load_project(&repo()).expect("project loads");
    (**c.scenarios
        .iter()
        .find(|s| s.name.as_str() == name)
        .expect("scenario"))
    .clone()
}

fn parse(text: &str) -> Scenario {
    let read = |_: &Path| -> std::io::Result<String> { Err(std::io::Error::other("none")) };
    match load_text(Path::new("t.yaml"), text, &read) {
        Ok(Document::Scenario(s)) => *s,
        other => panic!("{other:?}"),
    }
}

fn vars(ns: &str) -> Vars {
    let mut v = Vars::default();
    v.set("mesh", "istio");
    v.set("runId", "r");
    // The functions namespace is this test's own, so parallel tests never share objects.
    v.set("namespace.functions", ns);
    v.set("namespace.gateway", ns);
    v.set("gateway.serviceAccount", "openfaas-controller");
    v
}

/// Delegates to the real trial and, after every apply, reads each object back from the server.
struct Inspecting {
    inner: KubeTrial,
    client: Client,
    /// `Kind ns/name manager=<…> label=<run id>` as stored by the server.
    stored: Vec<String>,
}

async fn read_back(client: &Client, o: &ObjectRef) -> Option<DynamicObject> {
    let (g, v) = o
        .api_version
        .split_once('/')
        .unwrap_or(("", &o.api_version));
    let lower = o.kind.to_ascii_lowercase();
    let plural = match lower.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{lower}s"),
    };
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, &o.kind), &plural);
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), o.namespace.as_deref().unwrap(), &ar);
    api.get_opt(&o.name).await.expect("get")
}

impl TrialOps for Inspecting {
    async fn apply(&mut self, yaml: &str) -> Result<Vec<AppliedObject>, String> {
        let r = self.inner.apply(yaml).await?;
        for a in &r {
            let obj = read_back(&self.client, &a.object)
                .await
                .expect("applied object exists");
            let managers: Vec<String> = obj
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .filter_map(|m| m.manager.clone())
                .collect();
            let label = obj
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(RUN_ID_LABEL))
                .cloned()
                .unwrap_or_default();
            self.stored.push(format!(
                "{} managers={} label={label} created={}",
                a.object,
                managers.join(","),
                a.created
            ));
        }
        Ok(r)
    }
    async fn delete(&mut self, objects: &[ObjectRef]) -> Result<(), String> {
        self.inner.delete(objects).await
    }
    async fn deploy(&mut self, f: &FunctionRequest) -> Result<(), String> {
        self.inner.deploy(f).await
    }
    async fn remove_function(&mut self, name: &str) -> Result<(), String> {
        self.inner.remove_function(name).await
    }
    async fn wait(&mut self, target: &WaitTarget, timeout: Duration) -> Result<(), String> {
        self.inner.wait(target, timeout).await
    }
    async fn check(
        &mut self,
        check: &Check,
        vars: &Vars,
        tracker: &mut Tracker,
    ) -> Verdict<serde_json::Value> {
        self.inner.check(check, vars, tracker).await
    }
    async fn dump(&mut self, dir: &Path) -> Result<(), String> {
        self.inner.dump(dir).await
    }
}

async fn rendered_manifests_are_applied_with_the_meshproof_manager_and_all_removed_at_the_end() {
    let Some(r) = rig().await else { return };
    // Steps: the mtls scenario's Istio policy, the deny scenario's Istio policies (both the
    // project's own manifests), a ConfigMap, and a delete step for the ConfigMap.
    let mtls = project_scenario("mtls");
    let deny = project_scenario("deny");
    let Some(Step::Apply(peer_auth)) = mtls.steps.first().cloned() else {
        panic!("mtls starts with an apply")
    };
    let Some(Step::Check(Check::Deny(d))) = deny
        .steps
        .iter()
        .find(|s| matches!(s, Step::Check(_)))
        .cloned()
    else {
        panic!()
    };
    let mut s = parse(&format!(
        "kind: Scenario\nname: rig\nsteps:\n  - apply: {{ inline: \"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {{name: cm, namespace: {ns}}}\\n\" }}\n  - delete: {{ inline: \"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {{name: cm, namespace: {ns}}}\\n\" }}\n  - check: {{ mtls: {{ function: env, control: env-nomesh }} }}\n",
        ns = r.ns
    ));
    s.steps.pop(); // the check needs running pods; the rig has none
    s.steps.insert(0, Step::Apply(d.policy.clone()));
    s.steps.insert(0, Step::Apply(peer_auth));
    let mut ops = Inspecting {
        inner: trial(&r).await,
        client: r.client.clone(),
        stored: vec![],
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = TrialSpec {
        name: "rig::apply",
        scenario: &s,
        mesh: Mesh::Istio,
        data_plane: DataPlane::IstioSidecar,
        vars: vars(&r.ns),
        run_id: r.run_id.clone(),
        artifacts: Some(dir.path().to_path_buf()),
    };
    let report = run_trial(&mut ops, &spec).await;
    assert!(report.passed(), "{:?}", report.failure_message());
    let ns = &r.ns;
    let expect = [
        format!("PeerAuthentication {ns}/default"),
        format!("AuthorizationPolicy {ns}/functions-from-gateway-only"),
        format!("AuthorizationPolicy {ns}/deny-from-functions"),
        format!("ConfigMap {ns}/cm"),
    ];
    for (line, want) in ops.stored.iter().zip(&expect) {
        assert!(line.starts_with(want.as_str()), "{line} vs {want}");
        assert!(
            line.contains(&format!("managers={FIELD_MANAGER} ")),
            "only the meshproof manager: {line}"
        );
        assert!(!line.contains("meshproof-stack"), "{line}");
        assert!(
            line.contains(&format!("label={}", r.run_id)) && line.contains("created=true"),
            "{line}"
        );
    }
    assert_eq!(ops.stored.len(), 4, "{:?}", ops.stored);
    // Everything the trial created is gone; the namespace that existed before is not.
    let pa = ObjectRef {
        api_version: "security.istio.io/v1".into(),
        kind: "PeerAuthentication".into(),
        namespace: Some(ns.clone()),
        name: "default".into(),
    };
    assert!(
        read_back(&r.client, &pa).await.is_none(),
        "PeerAuthentication removed"
    );
    for name in ["functions-from-gateway-only", "deny-from-functions"] {
        let ap = ObjectRef {
            kind: "AuthorizationPolicy".into(),
            name: name.into(),
            ..pa.clone()
        };
        assert!(read_back(&r.client, &ap).await.is_none(), "{name} removed");
    }
    let cms: Api<ConfigMap> = Api::namespaced(r.client.clone(), ns);
    assert!(cms.get_opt("cm").await.unwrap().is_none());
    let nss: Api<Namespace> = Api::all(r.client.clone());
    assert!(
        nss.get_opt(ns).await.unwrap().is_some(),
        "a namespace the trial did not create stays"
    );
    let _ = nss.delete(ns, &DeleteParams::background()).await;
}

async fn a_rollout_wait_without_a_kubelet_times_out_with_the_deployments_state_and_is_cleaned_up() {
    let Some(r) = rig().await else { return };
    let ns = &r.ns;
    let deployment = format!(
        "apiVersion: apps/v1\\nkind: Deployment\\nmetadata: {{name: env, namespace: {ns}, labels: {{faas_function: env}}}}\\nspec:\\n  selector: {{matchLabels: {{faas_function: env}}}}\\n  template:\\n    metadata: {{labels: {{faas_function: env}}}}\\n    spec: {{containers: [{{name: env, image: ghcr.io/openfaas/alpine:latest}}]}}\\n"
    );
    let s = parse(&format!(
        "kind: Scenario\nname: rig\nsteps:\n  - apply: {{ inline: \"{deployment}\" }}\n  - wait: {{ for: rollout, target: deployment/env, namespace: \"${{namespace.functions}}\", timeout: 3s }}\n  - check: {{ mtls: {{ function: env, control: env-nomesh }} }}\n"
    ));
    let mut ops = trial(&r).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = TrialSpec {
        name: "rig::wait",
        scenario: &s,
        mesh: Mesh::Istio,
        data_plane: DataPlane::IstioSidecar,
        vars: vars(ns),
        run_id: r.run_id.clone(),
        artifacts: Some(dir.path().to_path_buf()),
    };
    let report = run_trial(&mut ops, &spec).await;
    match &report.step_error {
        Some(StepError::Failed {
            index: 2,
            title,
            reason,
        }) => {
            assert!(title.contains("deployment/env"), "{title}");
            assert!(
                reason.contains(&format!("Deployment {ns}/env")) && reason.contains("timed out"),
                "{reason}"
            );
            // The state says why: no replica became available.
            assert!(
                reason.to_ascii_lowercase().contains("available") || reason.contains("replicas"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        report.verdicts.is_empty(),
        "the check after a failed step does not run"
    );
    // The failure dump went to the artifacts dir (the OpenFaaS namespaces do not exist here,
    // so it reports what it could not read, but it ran before cleanup).
    assert!(report.dump.is_some());
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(r.client.clone(), ns);
    assert!(
        deployments.get_opt("env").await.unwrap().is_none(),
        "the Deployment was removed"
    );
    assert!(
        report.cleanup_errors.is_empty(),
        "{:?}",
        report.cleanup_errors
    );
    let nss: Api<Namespace> = Api::all(r.client.clone());
    let _ = nss.delete(ns, &DeleteParams::background()).await;
}

async fn the_restore_flow_reads_and_applies_through_kube_cluster_ops() {
    use meshproof::restore::{ClusterOps, ResourceKind};
    use meshproof::scenario_run::kube_ops::restore::KubeClusterOps;
    let Some(r) = rig().await else { return };
    let ops = KubeClusterOps {
        client: r.client.clone(),
        kubeconfig: r.kubeconfig.clone(),
        run_id: None,
    };
    assert_eq!(ops.kubeconfig(), r.kubeconfig.as_path());
    let ns = &r.ns;
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: fn1, namespace: {ns}, labels: {{faas_function: fn1}}}}\nspec:\n  selector: {{matchLabels: {{faas_function: fn1}}}}\n  template:\n    metadata: {{labels: {{faas_function: fn1}}}}\n    spec: {{containers: [{{name: fn1, image: ghcr.io/openfaas/alpine:latest}}]}}\n"
    );
    ops.apply(&yaml).await.expect("apply");
    let listed = ops
        .list(ResourceKind::Deployment, ns, Some("faas_function=fn1"))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["metadata"]["name"], "fn1");
    assert!(ops
        .list(ResourceKind::Deployment, ns, Some("faas_function=other"))
        .await
        .unwrap()
        .is_empty());
    let got = ops
        .get(ResourceKind::Deployment, ns, "fn1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got["kind"], "Deployment");
    assert!(ops
        .get(ResourceKind::Deployment, ns, "missing")
        .await
        .unwrap()
        .is_none());
    // Kinds whose CRDs are not installed read as empty, not as errors of the flow.
    assert!(ops
        .list(ResourceKind::SealedSecret, ns, None)
        .await
        .unwrap()
        .is_empty());
    let nss: Api<Namespace> = Api::all(r.client.clone());
    let _ = nss.delete(ns, &DeleteParams::background()).await;
}

/// On Linkerd, a deny probe on a kubelet probe path of its target cannot show a denial (ledger
/// LD-12). The guard reads the real objects: the Service's named targetPort and the probes of
/// the pods the controller manager created from the Deployment (Pending here: no kubelet). It
/// refuses the probe before any probe pod is started or any policy applied.
async fn on_linkerd_a_deny_probe_on_a_kubelet_probe_path_is_refused_from_the_real_pod_specs() {
    use k8s_openapi::api::core::v1::Pod;
    let Some(r) = rig().await else { return };
    let ns = &r.ns;
    // The shape of the OpenFaaS chart's gateway (15.0.6 templates/gateway-dep.yaml).
    let objects = format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: gateway, namespace: {ns}}}
spec:
  selector: {{app: gateway}}
  ports: [{{name: http, port: 8080, targetPort: http, protocol: TCP}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: gateway, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: gateway}}}}
  template:
    metadata: {{labels: {{app: gateway}}}}
    spec:
      containers:
        - name: gateway
          image: ghcr.io/openfaas/gateway:0.27.13
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
          readinessProbe: {{httpGet: {{path: /healthz, port: 8080}}}}
          livenessProbe: {{httpGet: {{path: /healthz, port: 8080}}}}
        - name: faas-netes
          image: ghcr.io/openfaas/faas-netes:0.18.17
          livenessProbe: {{httpGet: {{path: /healthz, port: 8081}}}}
"#
    );
    apply_yaml(&r.client, &objects, &ApplyOptions::default())
        .await
        .expect("gateway objects");
    let pods: Api<Pod> = Api::namespaced(r.client.clone(), ns);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no gateway pod was created"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = parse(
        "kind: Scenario\nname: rig-deny\nsteps:\n  - check:\n      deny:\n        policy: { inline: \"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: never-applied}\\n\" }\n        probe: { namespace: \"${namespace.functions}\" }\n        expect:\n          - { name: function-to-gateway, url: \"http://gateway.${namespace.gateway}:8080/healthz\", after: denied }\n",
    );
    let Some(Step::Check(check)) = s.steps.first() else {
        panic!()
    };
    let mut ops = trial_on(&r, DataPlane::Linkerd).await;
    let mut tracker = Tracker::default();
    let mut v = vars(ns);
    v.set("images.probe", "curlimages/curl:8.11.1");
    let v: Verdict<serde_json::Value> = ops.check(check, &v, &mut tracker).await;
    assert_eq!(
        v.outcome,
        meshproof::check::Outcome::Error,
        "{:?}",
        v.reasons
    );
    assert!(
        v.reasons[0].contains("cannot be denied by Linkerd")
            && v.reasons[0].contains("GET /healthz on port 8080 is the readiness probe")
            && v.reasons[0].contains("container gateway"),
        "{:?}",
        v.reasons
    );
    let left: Vec<String> = pods
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .filter(|n| n.starts_with("meshproof-probe"))
        .collect();
    assert!(left.is_empty(), "no probe pod was started: {left:?}");
    let cms: Api<ConfigMap> = Api::namespaced(r.client.clone(), ns);
    assert!(cms.get_opt("never-applied").await.unwrap().is_none());
    let nss: Api<Namespace> = Api::all(r.client.clone());
    let _ = nss.delete(ns, &DeleteParams::background()).await;
}

/// A function redeployed while the previous trial's one is still being deleted (faas-netes'
/// foreground delete, ledger OF-8) waits for the old objects to go instead of updating over
/// them: here the Pro deploy (a Function object) is held until a finalizer on the old
/// Deployment is released.
async fn a_redeploy_waits_out_the_previous_functions_deletion() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Patch, PatchParams};
    let Some(r) = rig().await else { return };
    let crd =
        std::fs::read_to_string(repo().join("../shared/crds/openfaas/openfaas.com_functions.yaml"))
            .expect("the Function CRD");
    apply_yaml(
        &r.client,
        &crd,
        &ApplyOptions {
            force: true,
            ..ApplyOptions::default()
        },
    )
    .await
    .expect("Function CRD");
    let fns = meshproof::vocab::FUNCTIONS_NAMESPACE;
    let doc = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {fns}\n");
    apply_yaml(&r.client, &doc, &ApplyOptions::default())
        .await
        .unwrap();
    let name = unique("held");
    let old = format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {fns}\n  finalizers: [meshproof.test/hold]\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {{faas_function: {name}}}\n  template:\n    metadata:\n      labels: {{faas_function: {name}}}\n    spec:\n      containers:\n        - name: {name}\n          image: registry.invalid/never:1\n");
    apply_yaml(&r.client, &old, &ApplyOptions::default())
        .await
        .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(r.client.clone(), fns);
    deployments
        .delete(&name, &DeleteParams::foreground())
        .await
        .unwrap();
    let mut ops = KubeTrial::connect(KubeTrialConfig {
        kubeconfig: r.kubeconfig.clone(),
        context: None,
        mesh: Mesh::Istio,
        data_plane: DataPlane::IstioSidecar,
        deployer: Deployer::FunctionCrd,
        run_id: RunId::new(r.run_id.clone()).unwrap(),
        redactor: Redactor::default(),
        work_dir: tempfile::tempdir().unwrap().keep(),
    })
    .await
    .expect("connect");
    let release = {
        let (deployments, name) = (deployments.clone(), name.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let patch = serde_json::json!({"metadata": {"finalizers": null}});
            deployments
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            std::time::Instant::now()
        })
    };
    let f = FunctionRequest {
        service: name.clone(),
        image: "ghcr.io/openfaas/alpine:latest".into(),
        env_process: Some("env".into()),
        env_vars: Default::default(),
        labels: Default::default(),
        annotations: Default::default(),
    };
    ops.deploy(&f)
        .await
        .expect("deploys once the old one is gone");
    let deployed_at = std::time::Instant::now();
    assert!(
        deployed_at >= release.await.unwrap(),
        "not before the release"
    );
    let functions: Api<DynamicObject> = Api::namespaced_with(
        r.client.clone(),
        fns,
        &ApiResource::from_gvk(&GroupVersionKind::gvk("openfaas.com", "v1", "Function")),
    );
    assert!(functions.get_opt(&name).await.unwrap().is_some());
    let _ = functions.delete(&name, &DeleteParams::default()).await;
    let nss: Api<Namespace> = Api::all(r.client.clone());
    let _ = nss.delete(&r.ns, &DeleteParams::background()).await;
}

/// cert-manager does not delete a Certificate's Secret with it (ledger CM-4): a trial that
/// applied the Certificate removes the Secret cert-manager wrote, and leaves alone a Secret
/// that existed before the trial.
async fn a_trials_certificates_take_their_new_secrets_with_them() {
    use k8s_openapi::api::core::v1::Secret;
    let Some(r) = rig().await else { return };
    let ns = &r.ns;
    let crd = std::fs::read_to_string(
        repo().join("../shared/crds/cert-manager/cert-manager.io_certificates.yaml"),
    )
    .expect("cert-manager CRDs");
    apply_yaml(
        &r.client,
        &crd,
        &ApplyOptions {
            force: true,
            ..ApplyOptions::default()
        },
    )
    .await
    .expect("cert-manager CRDs");
    let secrets: Api<Secret> = Api::namespaced(r.client.clone(), ns);
    let secret = |name: &str| {
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\nstringData: {{tls.crt: x}}\n")
    };
    apply_yaml(&r.client, &secret("was-here"), &ApplyOptions::default())
        .await
        .unwrap();
    let cert = |name: &str, secret: &str| {
        format!("apiVersion: cert-manager.io/v1\\nkind: Certificate\\nmetadata: {{name: {name}, namespace: {ns}}}\\nspec: {{secretName: {secret}, dnsNames: [a.test], issuerRef: {{name: ca, kind: ClusterIssuer}}}}\\n---\\n")
    };
    let s = parse(&format!(
        "kind: Scenario\nname: rig-certs\nsteps:\n  - apply: {{ inline: \"{}{}\" }}\n  - wait: {{ for: condition, target: certificate/fresh, namespace: \"{ns}\", condition: Ready=True, timeout: 4s }}\n  - check: {{ mtls: {{ function: env, control: env-nomesh }} }}\n",
        cert("fresh", "fresh-tls"),
        cert("reuse", "was-here"),
    ));
    // cert-manager's part: the Secret appears once the Certificate exists.
    let writer = {
        let (client, ns, doc) = (r.client.clone(), ns.clone(), secret("fresh-tls"));
        tokio::spawn(async move {
            let certs: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                &ns,
                &ApiResource::from_gvk(&GroupVersionKind::gvk(
                    "cert-manager.io",
                    "v1",
                    "Certificate",
                )),
            );
            while certs.get_opt("fresh").await.unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            apply_yaml(&client, &doc, &ApplyOptions::default())
                .await
                .unwrap();
        })
    };
    let mut ops = trial(&r).await;
    let spec = TrialSpec {
        name: "rig::certs",
        scenario: &s,
        mesh: Mesh::Istio,
        data_plane: DataPlane::IstioSidecar,
        vars: vars(ns),
        run_id: r.run_id.clone(),
        artifacts: None,
    };
    let report = run_trial(&mut ops, &spec).await;
    writer.await.unwrap();
    assert!(
        report.cleanup_errors.is_empty(),
        "{:?}",
        report.cleanup_errors
    );
    assert!(
        secrets.get_opt("fresh-tls").await.unwrap().is_none(),
        "the trial's Secret went with its Certificate"
    );
    assert!(
        secrets.get_opt("was-here").await.unwrap().is_some(),
        "a Secret from before the trial stays"
    );
    let nss: Api<Namespace> = Api::all(r.client.clone());
    let _ = nss.delete(ns, &DeleteParams::background()).await;
}

/// `HTTPRoute` is served by two API groups once Linkerd's CRDs are in (ledger LD-16): a wait
/// target naming only the kind is an error listing both, and `kind.group` picks one.
async fn a_kind_served_by_two_groups_must_be_qualified_by_its_group() {
    let Some(r) = rig().await else { return };
    for f in [
        "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
        "linkerd/policy_httproute.yaml",
    ] {
        let crd = std::fs::read_to_string(repo().join("../shared/crds").join(f)).expect(f);
        apply_yaml(
            &r.client,
            &crd,
            &ApplyOptions {
                force: true,
                ..ApplyOptions::default()
            },
        )
        .await
        .expect(f);
    }
    let ops = trial(&r).await;
    let err = ops.resolve_kind("httproute").await.expect_err("ambiguous");
    assert!(
        err.contains("gateway.networking.k8s.io")
            && err.contains("policy.linkerd.io")
            && err.contains("httproute.<group>/<name>"),
        "{err}"
    );
    let (ar, namespaced) = ops
        .resolve_kind("httproute.gateway.networking.k8s.io")
        .await
        .unwrap();
    assert_eq!(
        (ar.group.as_str(), ar.plural.as_str(), namespaced),
        ("gateway.networking.k8s.io", "httproutes", true)
    );
    let (ar, _) = ops
        .resolve_kind("HTTPRoute.policy.linkerd.io")
        .await
        .unwrap();
    assert_eq!(ar.group, "policy.linkerd.io");
    let (ar, _) = ops.resolve_kind("deployment").await.unwrap();
    assert_eq!(ar.group, "apps", "an unambiguous kind needs no group");
    let nss: Api<Namespace> = Api::all(r.client.clone());
    let _ = nss.delete(&r.ns, &DeleteParams::background()).await;
}

/// An ambient trial's deny check takes the policy's `istioAmbient` variant, never the sidecar
/// one: a policy that has only the sidecar variant is refused before any probe pod starts.
async fn an_ambient_deny_check_never_takes_the_sidecar_policy() {
    let Some(r) = rig().await else { return };
    let s = parse(
        "kind: Scenario\nname: rig-ambient-deny\nmeshes: [istio]\nsteps:\n  - check:\n      deny:\n        policy:\n          istio: { inline: \"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: sidecar-policy}\\n\" }\n        probe: { namespace: \"${namespace.functions}\" }\n        expect:\n          - { name: p, url: \"http://gateway.${namespace.gateway}:8080/x\", after: denied }\n",
    );
    let Some(Step::Check(check)) = s.steps.first() else {
        panic!()
    };
    let mut ops = trial_on(&r, DataPlane::IstioAmbient).await;
    let mut tracker = Tracker::default();
    let mut v = vars(&r.ns);
    v.set("images.probe", "curlimages/curl:8.11.1");
    let v: Verdict<serde_json::Value> = ops.check(check, &v, &mut tracker).await;
    assert_eq!(
        v.outcome,
        meshproof::check::Outcome::Error,
        "{:?}",
        v.reasons
    );
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("no manifest for istio-ambient")),
        "{:?}",
        v.reasons
    );
    let cms: Api<ConfigMap> = Api::namespaced(r.client.clone(), &r.ns);
    assert!(cms.get_opt("sidecar-policy").await.unwrap().is_none());
    let nss: Api<Namespace> = Api::all(r.client.clone());
    let _ = nss.delete(&r.ns, &DeleteParams::background()).await;
}

/// What the OpenFaaS gateway double was asked: method, `Authorization` header, JSON body.
type GatewayCalls = std::sync::Arc<std::sync::Mutex<Vec<(String, String, serde_json::Value)>>>;

/// A real HTTP server on loopback standing in for the gateway's `/system/functions`
/// (a test double: the port-forward to the real one needs a kubelet). It answers each method
/// from `answers` (status, body) and records every call.
async fn gateway_double(
    answers: std::collections::HashMap<&'static str, (u16, String)>,
) -> (std::net::SocketAddr, GatewayCalls) {
    use axum::http::{HeaderMap, Method, StatusCode};
    let calls: GatewayCalls = Default::default();
    let seen = calls.clone();
    let answers = std::sync::Arc::new(answers);
    let app = axum::Router::new().route(
        "/system/functions",
        axum::routing::any(move |method: Method, headers: HeaderMap, body: String| {
            let (seen, answers) = (seen.clone(), answers.clone());
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
                seen.lock().unwrap().push((method.to_string(), auth, json));
                let (status, text) = answers
                    .get(method.as_str())
                    .cloned()
                    .unwrap_or((405, String::new()));
                (StatusCode::from_u16(status).unwrap(), text)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, calls)
}

/// The gateway's function API as OpenFaaS CE serves it (ledger OF-9): a deploy is a POST of
/// the faas-provider `FunctionDeployment` with basic auth from the `basic-auth` Secret, a
/// function that already exists (a re-run) is updated with a PUT of the same body, a delete
/// is `{"functionName"}` and a 404 means already gone; any other answer is an error whose
/// text never carries the password.
async fn functions_are_deployed_updated_and_removed_through_the_gateways_api() {
    use base64::Engine;
    let Some(r) = rig().await else { return };
    let gw_ns = meshproof::vocab::GATEWAY_NAMESPACE;
    let fns = meshproof::vocab::FUNCTIONS_NAMESPACE;
    let password = unique("pw-secret");
    let docs = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {gw_ns}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {fns}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: basic-auth\n  namespace: {gw_ns}\nstringData:\n  basic-auth-user: admin\n  basic-auth-password: {password}\n"
    );
    apply_yaml(
        &r.client,
        &docs,
        &ApplyOptions {
            force: true,
            ..ApplyOptions::default()
        },
    )
    .await
    .expect("gateway namespace and basic-auth");
    let name = unique("fn");
    let f = FunctionRequest {
        service: name.clone(),
        image: "ghcr.io/openfaas/alpine:latest".into(),
        env_process: Some("env".into()),
        env_vars: [("k".to_string(), "v".to_string())].into_iter().collect(),
        labels: Default::default(),
        annotations: Default::default(),
    };
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{password}"))
    );

    // A re-run: the function exists, so the POST's 409 turns into a PUT of the same body.
    let (addr, calls) = gateway_double(
        [
            ("POST", (409, format!("function {name} already exists"))),
            ("PUT", (202, String::new())),
            ("DELETE", (404, format!("function {name} not found"))),
        ]
        .into_iter()
        .collect(),
    )
    .await;
    let mut ops = trial(&r).await.with_gateway_at(addr);
    ops.deploy(&f).await.expect("deployed through the gateway");
    ops.remove_function(&name)
        .await
        .expect("a 404 is already gone");
    let seen = calls.lock().unwrap().clone();
    let methods: Vec<&str> = seen.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(methods, ["POST", "PUT", "DELETE"], "{seen:?}");
    assert!(seen.iter().all(|(_, auth, _)| *auth == basic), "{seen:?}");
    let body = &seen[0].2;
    assert_eq!(body["service"], name.as_str());
    assert_eq!(body["image"], "ghcr.io/openfaas/alpine:latest");
    assert_eq!(body["envProcess"], "env");
    assert_eq!(body["envVars"]["k"], "v");
    assert_eq!(seen[1].2, *body, "the update sends the same deployment");
    assert_eq!(seen[2].2, serde_json::json!({ "functionName": name }));

    // Any other answer is an error, and the gateway's text is redacted.
    let (addr, _) = gateway_double(
        [
            ("POST", (500, format!("cannot deploy, auth {password}"))),
            ("DELETE", (500, format!("cannot delete, auth {password}"))),
        ]
        .into_iter()
        .collect(),
    )
    .await;
    let mut ops = trial(&r).await.with_gateway_at(addr);
    let e = ops.deploy(&f).await.expect_err("a 500 is not a deploy");
    assert!(
        e.contains("POST /system/functions") && e.contains("HTTP 500"),
        "{e}"
    );
    assert!(!e.contains(&password), "the password leaked: {e}");
    let e = ops
        .remove_function(&name)
        .await
        .expect_err("a 500 is not a delete");
    assert!(e.contains("HTTP 500") && !e.contains(&password), "{e}");
    let nss: Api<Namespace> = Api::all(r.client.clone());
    let _ = nss.delete(&r.ns, &DeleteParams::background()).await;
}

fn main() -> std::process::ExitCode {
    use support_harness::{Case, Need};
    support_harness::run(vec![
        Case::tokio("rendered_manifests_are_applied_with_the_meshproof_manager_and_all_removed_at_the_end", &[Need::KubeRig], rendered_manifests_are_applied_with_the_meshproof_manager_and_all_removed_at_the_end),
        Case::tokio("a_rollout_wait_without_a_kubelet_times_out_with_the_deployments_state_and_is_cleaned_up", &[Need::KubeRig], a_rollout_wait_without_a_kubelet_times_out_with_the_deployments_state_and_is_cleaned_up),
        Case::tokio("the_restore_flow_reads_and_applies_through_kube_cluster_ops", &[Need::KubeRig], the_restore_flow_reads_and_applies_through_kube_cluster_ops),
        Case::tokio("on_linkerd_a_deny_probe_on_a_kubelet_probe_path_is_refused_from_the_real_pod_specs", &[Need::KubeRig], on_linkerd_a_deny_probe_on_a_kubelet_probe_path_is_refused_from_the_real_pod_specs),
        Case::tokio("a_redeploy_waits_out_the_previous_functions_deletion", &[Need::KubeRig], a_redeploy_waits_out_the_previous_functions_deletion),
        Case::tokio("a_trials_certificates_take_their_new_secrets_with_them", &[Need::KubeRig], a_trials_certificates_take_their_new_secrets_with_them),
        Case::tokio("a_kind_served_by_two_groups_must_be_qualified_by_its_group", &[Need::KubeRig], a_kind_served_by_two_groups_must_be_qualified_by_its_group),
        Case::tokio("an_ambient_deny_check_never_takes_the_sidecar_policy", &[Need::KubeRig], an_ambient_deny_check_never_takes_the_sidecar_policy),
        Case::tokio("functions_are_deployed_updated_and_removed_through_the_gateways_api", &[Need::KubeRig], functions_are_deployed_updated_and_removed_through_the_gateways_api),
    ])
}
