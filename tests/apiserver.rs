//! The kube layer against a real Kubernetes API server (`../shared/kube-rig`, v1.20.2, no
//! kubelet). Run with `.ci/apiserver-tests`, which starts the rig and sets
//! `MESHPROOF_TEST_KUBECONFIG` (an explicit variable, so a developer's `KUBECONFIG` is never
//! used by accident). Without it each test prints why it skips — except under `CI=true`, where
//! a missing rig fails the test.
//!
//! Every test works in its own uniquely named namespaces so they run in parallel against one
//! server. CRDs are cluster-wide; the shared bundle is installed once per process.

mod support_harness;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use meshproof::kubeops::apply::{apply_yaml, dry_run_all, Applied, ApplyAction, ApplyOptions};
use meshproof::kubeops::cleanup::cleanup_run;
use meshproof::kubeops::client::{client_from_kubeconfig, ClientOptions};
use meshproof::kubeops::dump::dump_namespaces;
use meshproof::kubeops::wait;
use meshproof::kubeops::{KubeError, RunId, RUN_ID_LABEL};
use tokio::sync::OnceCell;

// ---------- rig plumbing ----------

fn rig_kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("MESHPROOF_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but MESHPROOF_TEST_KUBECONFIG is not set: the API server tests must \
                     run in CI (use .ci/apiserver-tests, which starts ../shared/kube-rig)"
                );
            }
            eprintln!(
                "SKIP: MESHPROOF_TEST_KUBECONFIG is not set; run .ci/apiserver-tests to start a \
                 kube-rig API server and run these tests against it"
            );
            None
        }
    }
}

async fn rig_client() -> Option<Client> {
    let path = rig_kubeconfig()?;
    Some(
        client_from_kubeconfig(&path, &ClientOptions::default())
            .await
            .expect("client from the rig's kubeconfig"),
    )
}

/// The rig's client, or return from the test (after printing the skip reason).
macro_rules! rig {
    () => {
        match rig_client().await {
            Some(c) => c,
            None => return,
        }
    };
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let r: u32 = rand::random::<u32>() % 100_000;
    format!("{prefix}-{}-{n}-{r}", std::process::id() % 100_000)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(rel: &str) -> String {
    let p = repo().join("tests/fixtures/kube").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn opts_in(ns: &str) -> ApplyOptions {
    ApplyOptions {
        default_namespace: ns.to_string(),
        ..ApplyOptions::default()
    }
}

fn ns_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

async fn make_ns(client: &Client, name: &str) {
    apply_yaml(client, &ns_yaml(name), &ApplyOptions::default())
        .await
        .expect("create namespace");
}

/// Best-effort removal of a test namespace (not waited on).
async fn drop_ns(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::background()).await;
}

// ---------- the shared CRD bundle ----------

/// Every CRD file under `../shared/crds`, except: `kubernetes/` (OpenAPI JSON), OpenFaaS's
/// `Chart.yaml`/`values.yaml` (not CRDs), and Linkerd's own older copies of the Gateway API
/// CRDs (`linkerd/gateway.networking.k8s.io_*`): they define the same CRD names as
/// `gateway-api/`, and one cluster can hold only one definition per name, so the Gateway API
/// project's set is the one installed (Linkerd's policy/workload CRDs are still applied).
fn shared_crd_files() -> Vec<PathBuf> {
    let root = repo().join("../shared/crds");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !p.ends_with("kubernetes"))
        .collect();
    dirs.sort();
    let mut files = Vec::new();
    for d in dirs {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(&d)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                let dir = d.file_name().unwrap().to_string_lossy().to_string();
                !(dir == "openfaas" && (name == "Chart.yaml" || name == "values.yaml"))
                    && !(dir == "linkerd" && name.starts_with("gateway.networking.k8s.io_"))
            })
            .collect();
        fs.sort();
        files.extend(fs);
    }
    files
}

fn shared_crd_bundle() -> String {
    shared_crd_files()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

static CRDS: OnceCell<Vec<Applied>> = OnceCell::const_new();

/// Installs the shared CRD bundle once per test process; returns the first application's report.
async fn ensure_crds(client: &Client) -> &'static [Applied] {
    CRDS.get_or_init(|| async {
        let opts = ApplyOptions {
            crd_timeout: Duration::from_secs(90),
            ..ApplyOptions::default()
        };
        apply_yaml(client, &shared_crd_bundle(), &opts)
            .await
            .expect("installing the shared CRD bundle")
    })
    .await
}

// ---------- tests ----------

async fn shared_crds_install_become_established_and_resolve_in_discovery() {
    let client = rig!();
    let first = ensure_crds(&client).await;
    let files = shared_crd_files();
    assert!(
        files.len() >= 40,
        "expected the whole bundle, got {} files",
        files.len()
    );
    let expected = meshproof::kubeops::manifest::parse_manifests(&shared_crd_bundle())
        .unwrap()
        .len();
    assert!(expected >= 50, "only {expected} CRDs in the bundle");
    assert_eq!(first.len(), expected, "every CRD of the bundle is applied");
    assert!(first.iter().all(|a| a.kind == "CustomResourceDefinition"));
    // The rig is v1.20: CEL rules and selectableFields are stripped before applying.
    assert!(
        first.iter().any(|a| a.stripped_fields),
        "no CRD needed stripping on a v1.20 server?"
    );

    // Idempotence over the whole bundle, including the stripped CRDs.
    let again = apply_yaml(&client, &shared_crd_bundle(), &ApplyOptions::default())
        .await
        .expect("re-applying the bundle");
    let changed: Vec<_> = again
        .iter()
        .filter(|a| a.action != ApplyAction::Unchanged)
        .map(|a| format!("{} {:?}", a.object, a.action))
        .collect();
    assert!(changed.is_empty(), "second apply changed: {changed:?}");

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for a in first {
        let crd = crds.get(&a.name).await.expect("CRD exists");
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{} is not Established", a.name);
    }

    for (group, version, kind) in [
        ("networking.istio.io", "v1", "VirtualService"),
        ("security.istio.io", "v1", "AuthorizationPolicy"),
        ("policy.linkerd.io", "v1beta3", "Server"),
        ("policy.linkerd.io", "v1alpha1", "AuthorizationPolicy"),
        ("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        ("openfaas.com", "v1", "Function"),
        ("bitnami.com", "v1alpha1", "SealedSecret"),
        ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        ("cert-manager.io", "v1", "Certificate"),
    ] {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (ar, _) = kube::discovery::pinned_kind(&client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("discovery does not resolve {gvk:?}: {e}"));
        assert_eq!(ar.kind, kind);
    }
}

async fn fixtures_pass_server_dry_run_and_a_string_weight_is_rejected() {
    let client = rig!();
    ensure_crds(&client).await;
    let dir = repo().join("tests/fixtures/kube/valid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    let mut accepted = 0;
    for f in &files {
        let yaml = std::fs::read_to_string(f).unwrap();
        let report = dry_run_all(&client, &yaml).await.expect("parsable");
        assert!(
            report.all_accepted(),
            "{}: server rejected {:?}",
            f.display(),
            report.rejected()
        );
        accepted += report.results.len();
    }
    assert!(accepted >= 10, "only {accepted} objects dry-run");

    let broken = fixture("broken/virtualservice-string-weight.yaml");
    let report = dry_run_all(&client, &broken).await.expect("parsable");
    let rejected = report.rejected();
    assert_eq!(
        rejected.len(),
        1,
        "the string weight must be rejected: {:?}",
        report.results
    );
    let (object, err) = rejected[0];
    assert!(object.contains("broken-weight"), "{object}");
    match err {
        KubeError::Api { code, message, .. } => {
            assert_eq!(*code, 422, "{message}");
            assert!(message.contains("weight"), "{message}");
        }
        other => panic!("expected an API validation error, got {other}"),
    }

    // Dry run stored nothing.
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    );
    let vs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    assert!(vs.get_opt("env-split").await.unwrap().is_none());
}

async fn apply_is_idempotent_owned_by_meshproof_and_conflicts_are_typed() {
    let client = rig!();
    let ns = unique("mp-ssa");
    make_ns(&client, &ns).await;
    let cm = |value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: {value}\n"
        )
    };
    let opts = opts_in(&ns);
    let first = apply_yaml(&client, &cm("strict"), &opts).await.unwrap();
    assert_eq!(first[0].action, ApplyAction::Created);
    assert_eq!(first[0].object, format!("ConfigMap {ns}/settings"));
    let second = apply_yaml(&client, &cm("strict"), &opts).await.unwrap();
    assert_eq!(second[0].action, ApplyAction::Unchanged);
    assert_eq!(second[0].resource_version, first[0].resource_version);

    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    let live = cms.get("settings").await.unwrap();
    let managers: Vec<(String, String)> = live
        .managed_fields()
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        managers.contains(&("meshproof".into(), "Apply".into())),
        "managedFields: {managers:?}"
    );

    let third = apply_yaml(&client, &cm("permissive"), &opts).await.unwrap();
    assert_eq!(third[0].action, ApplyAction::Configured);

    // Another manager takes the field over with a different value...
    let other = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": ns},
        "data": {"mode": "off"}
    });
    cms.patch(
        "settings",
        &PatchParams::apply("other-tool").force(),
        &Patch::Apply(&other),
    )
    .await
    .unwrap();
    // ...so our non-forced apply of another value is a typed conflict naming it.
    match apply_yaml(&client, &cm("strict"), &opts).await {
        Err(KubeError::Conflict {
            object, manager, ..
        }) => {
            assert_eq!(manager, "other-tool");
            assert_eq!(object, format!("ConfigMap {ns}/settings"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // With force, we take it back.
    let forced = ApplyOptions {
        force: true,
        ..opts.clone()
    };
    let fourth = apply_yaml(&client, &cm("strict"), &forced).await.unwrap();
    assert_eq!(fourth[0].action, ApplyAction::Configured);
    assert_eq!(
        cms.get("settings").await.unwrap().data.unwrap()["mode"],
        "strict"
    );
    drop_ns(&client, &ns).await;
}

async fn cleanup_removes_only_what_the_run_labelled() {
    let client = rig!();
    let run = RunId::new(unique("run")).unwrap();
    let (ns_run, ns_keep) = (unique("mp-run"), unique("mp-keep"));
    let (cr_run, cr_keep) = (unique("mp-run-role"), unique("mp-keep-role"));
    let role = |name: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\nrules:\n  - apiGroups: [\"\"]\n    resources: [\"pods\"]\n    verbs: [\"get\"]\n"
        )
    };
    // Pre-existing, unlabelled objects (the "existing cluster").
    let plain = ApplyOptions::default();
    apply_yaml(
        &client,
        &format!("{}---\n{}", ns_yaml(&ns_keep), role(&cr_keep)),
        &plain,
    )
    .await
    .unwrap();
    // The run creates its own, and re-applies the pre-existing namespace.
    let with_run = ApplyOptions {
        run_id: Some(run.clone()),
        ..ApplyOptions::default()
    };
    let batch = format!(
        "{}---\n{}---\n{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: {ns_run}\n",
        ns_yaml(&ns_run),
        role(&cr_run),
        ns_yaml(&ns_keep)
    );
    apply_yaml(&client, &batch, &with_run).await.unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let label_of =
        |labels: &std::collections::BTreeMap<String, String>| labels.get(RUN_ID_LABEL).cloned();
    assert_eq!(
        label_of(namespaces.get(&ns_run).await.unwrap().labels()),
        Some(run.to_string())
    );
    assert_eq!(
        label_of(namespaces.get(&ns_keep).await.unwrap().labels()),
        None,
        "a pre-existing namespace must not be claimed by the run"
    );

    let report = cleanup_run(&client, &run, Duration::from_secs(90))
        .await
        .expect("cleanup");
    assert_eq!(report.deleted_namespaces, vec![ns_run.clone()]);
    assert_eq!(
        report.deleted_cluster_objects,
        vec![format!("ClusterRole {cr_run}")]
    );
    // The namespace deletion completed (cleanup waited), the role is gone...
    assert!(namespaces.get_opt(&ns_run).await.unwrap().is_none());
    assert!(roles.get_opt(&cr_run).await.unwrap().is_none());
    // ...and the unlabelled ones are untouched.
    let kept = namespaces.get(&ns_keep).await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert!(roles.get_opt(&cr_keep).await.unwrap().is_some());

    let _ = roles.delete(&cr_keep, &DeleteParams::default()).await;
    drop_ns(&client, &ns_keep).await;
}

async fn a_deployment_that_cannot_roll_out_times_out_with_its_current_state() {
    let client = rig!();
    let ns = unique("mp-roll");
    make_ns(&client, &ns).await;
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: env\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: env}\n  template:\n    metadata:\n      labels: {app: env}\n    spec:\n      containers:\n        - name: env\n          image: registry.invalid/never:1\n";
    apply_yaml(&client, deployment, &opts_in(&ns))
        .await
        .unwrap();
    let err = wait::deployment_rolled_out(&client, &ns, "env", Duration::from_secs(6))
        .await
        .expect_err("no kubelet: it can never roll out");
    let text = err.to_string();
    match &err {
        KubeError::Timeout { what, state, .. } => {
            assert_eq!(what, &format!("Deployment {ns}/env"));
            assert!(
                state.starts_with(&format!("deployment {ns}/env: ")),
                "{state}"
            );
            assert!(state.contains("0 available"), "{state}");
            assert!(state.contains("Progressing=True"), "{state}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(text.contains("current state"), "{text}");

    let err = wait::pods_ready(&client, &ns, "app=env", 1, Duration::from_secs(3))
        .await
        .expect_err("pods never become ready");
    assert!(err.to_string().contains("phase Pending"), "{err}");

    // Exec and logs need a kubelet; without one they must fail promptly with an error, not hang.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let pod = pods.list(&ListParams::default()).await.unwrap().items[0].name_any();
    let started = std::time::Instant::now();
    let exec = meshproof::kubeops::exec::exec(
        &client,
        &ns,
        &pod,
        Some("env"),
        &["true"],
        Duration::from_secs(20),
    )
    .await;
    match exec {
        Err(KubeError::Timeout { .. }) | Ok(_) => panic!("exec without a kubelet: {exec:?}"),
        Err(e) => assert!(e.to_string().contains(&pod), "{e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    drop_ns(&client, &ns).await;
}

async fn a_custom_status_condition_ends_the_wait() {
    let client = rig!();
    let ns = unique("mp-cond");
    make_ns(&client, &ns).await;
    // CRD and its custom resource in one batch: the CRD is applied and Established first.
    let batch = format!(
        "apiVersion: test.meshproof.dev/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: 3\n---\n{}",
        fixture("widget-crd.yaml")
    );
    let applied = apply_yaml(&client, &batch, &opts_in(&ns)).await.unwrap();
    assert_eq!(applied[0].kind, "CustomResourceDefinition");
    assert_eq!(applied[1].object, format!("Widget {ns}/w"));

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.meshproof.dev", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let set = |status: &'static str| {
        serde_json::json!({"status": {"conditions": [
            {"type": "Ready", "status": status, "reason": "Test", "message": "set by the test"}]}})
    };
    widgets
        .patch_status("w", &PatchParams::default(), &Patch::Merge(set("False")))
        .await
        .unwrap();
    let err = wait::custom_condition(
        &client,
        &ar,
        Some(&ns),
        "w",
        "Ready",
        "True",
        Duration::from_secs(2),
    )
    .await
    .expect_err("Ready is False");
    assert!(err.to_string().contains("Ready=False (Test)"), "{err}");

    let waiter = {
        let (client, ar, ns) = (client.clone(), ar.clone(), ns.clone());
        tokio::spawn(async move {
            wait::custom_condition(
                &client,
                &ar,
                Some(&ns),
                "w",
                "Ready",
                "True",
                Duration::from_secs(30),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    widgets
        .patch_status("w", &PatchParams::default(), &Patch::Merge(set("True")))
        .await
        .unwrap();
    let obj = waiter.await.unwrap().expect("wait returns once Ready=True");
    assert_eq!(obj.data["status"]["conditions"][0]["status"], "True");
    drop_ns(&client, &ns).await;
}

/// Gateway API routes keep their conditions per parent: the canary scenario waits for Linkerd to
/// accept its HTTPRoute, and a route that one parent ignores is not in effect.
async fn an_httproute_is_accepted_only_when_every_parent_says_so() {
    let client = rig!();
    ensure_crds(&client).await;
    let ns = unique("mp-route");
    make_ns(&client, &ns).await;
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: split\nspec:\n  parentRefs:\n    - { group: core, kind: Service, name: env, port: 8080 }\n    - { group: core, kind: Service, name: env2, port: 8080 }\n  rules:\n    - backendRefs:\n        - { name: env, port: 8080, weight: 90 }\n        - { name: env-canary, port: 8080, weight: 10 }\n";
    apply_yaml(&client, route, &opts_in(&ns)).await.unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let routes: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let parent = |name: &str, accepted: &str| {
        serde_json::json!({
            "parentRef": {"group": "core", "kind": "Service", "name": name, "port": 8080},
            "controllerName": "linkerd.io/policy-controller",
            "conditions": [{"type": "Accepted", "status": accepted, "reason": "Test",
                            "message": "set by the test", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        })
    };
    let set = |parents: Vec<serde_json::Value>| serde_json::json!({"status": {"parents": parents}});
    routes
        .patch_status(
            "split",
            &PatchParams::default(),
            &Patch::Merge(set(vec![parent("env", "True"), parent("env2", "False")])),
        )
        .await
        .unwrap();
    let wait = |timeout| {
        wait::custom_condition(
            &client,
            &ar,
            Some(&ns),
            "split",
            "Accepted",
            "True",
            timeout,
        )
    };
    let err = wait(Duration::from_secs(2))
        .await
        .expect_err("one parent has not accepted it");
    assert!(
        err.to_string()
            .contains("parent Service/env2: Accepted=False (Test)"),
        "{err}"
    );
    routes
        .patch_status(
            "split",
            &PatchParams::default(),
            &Patch::Merge(set(vec![parent("env", "True"), parent("env2", "True")])),
        )
        .await
        .unwrap();
    wait(Duration::from_secs(10))
        .await
        .expect("every parent accepted the route");
    drop_ns(&client, &ns).await;
}

async fn failure_dump_has_events_and_statuses_and_no_secret_data() {
    let client = rig!();
    let ns = unique("mp-dump");
    make_ns(&client, &ns).await;
    let secret_value = "s3cr3t-meshproof-value";
    let manifests = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: {secret_value}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n        - name: web\n          image: registry.invalid/web:1\n          env:\n            - name: PASSWORD\n              valueFrom:\n                secretKeyRef: {{name: creds, key: password}}\n"
    );
    apply_yaml(&client, &manifests, &opts_in(&ns))
        .await
        .unwrap();
    // The controllers create a ReplicaSet and a Pod and record events; wait for both.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let e = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        let p = pods.list(&ListParams::default()).await.unwrap().items.len();
        if e > 0 && p > 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no events/pods after 30s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let report = dump_namespaces(&client, &[ns.as_str()], dir.path())
        .await
        .unwrap();
    let nsdir = dir.path().join(&ns);
    let events_txt = std::fs::read_to_string(nsdir.join("events.txt")).unwrap();
    assert!(
        events_txt.contains("SuccessfulCreate") || events_txt.contains("ScalingReplicaSet"),
        "{events_txt}"
    );
    let pods_yaml = std::fs::read_to_string(nsdir.join("pods.yaml")).unwrap();
    assert!(pods_yaml.contains("Pending"), "{pods_yaml}");
    assert!(!pods_yaml.contains("managedFields"));
    let deployments_yaml = std::fs::read_to_string(nsdir.join("deployments.yaml")).unwrap();
    assert!(deployments_yaml.contains("name: web"));
    // Every container got a log file (empty here: no kubelet ever ran it).
    let pod_name = pods.list(&ListParams::default()).await.unwrap().items[0].name_any();
    let log = nsdir.join("logs").join(format!("{pod_name}.web.log"));
    assert!(
        log.is_file(),
        "missing {}; dump errors: {:?}",
        log.display(),
        report.errors
    );

    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret_value);
    for f in walk(dir.path()) {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains(secret_value),
            "{} leaks the secret",
            f.display()
        );
        assert!(
            !text.contains(&encoded),
            "{} leaks the secret (base64)",
            f.display()
        );
    }
    drop_ns(&client, &ns).await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every manifest the scenarios apply, rendered for every environment of both suites exactly as
/// a run renders it, is accepted by the real server's own validation (server-side dry run,
/// nothing stored). The rejecting half is `fixtures_pass_server_dry_run_and_a_string_weight_is_rejected`.
async fn every_rendered_scenario_manifest_passes_server_dry_run() {
    let client = rig!();
    ensure_crds(&client).await;
    let catalog =
        meshproof::scenario::catalog::load_project(&repo()).unwrap_or_else(|d| panic!("{d}"));
    let rendered = meshproof::schema::manifests::render_catalog(&catalog, "run-1")
        .unwrap_or_else(|e| panic!("rendering failed: {e:#?}"));
    // The namespaces the scenarios address exist in a real run (the stack creates them).
    for ns in ["openfaas", "openfaas-fn", "cert-manager", "istio-system"] {
        make_ns(&client, ns).await;
    }
    // So do the functions' Services (faas-netes makes one per function, ledger OF-8): the
    // ambient manifests only label the Services of env and env2 with `istio.io/use-waypoint`.
    // Made under another field manager, as faas-netes makes them: meshproof's apply then owns
    // only the label and leaves the ports alone.
    for f in ["env", "env2"] {
        let svc = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {f}\nspec:\n  selector: {{faas_function: {f}}}\n  ports: [{{name: http, port: 8080, protocol: TCP}}]\n");
        let opts = ApplyOptions {
            field_manager: "faas-netes".into(),
            ..opts_in("openfaas-fn")
        };
        apply_yaml(&client, &svc, &opts).await.unwrap();
    }
    let mut objects = 0;
    let mut files = std::collections::BTreeSet::new();
    for m in &rendered {
        let report = dry_run_all(&client, &m.rendered).await.expect("parsable");
        assert!(
            report.all_accepted(),
            "{} (used by {:?}): the server rejected {:?}",
            m.file.display(),
            m.used_by,
            report.rejected()
        );
        objects += report.results.len();
        files.insert(m.file.clone());
    }
    // Every manifest file under scenarios/manifests/ was exercised.
    let shipped = walk(&repo().join("scenarios/manifests")).len();
    assert_eq!(
        files
            .iter()
            .filter(|f| f.starts_with(repo().join("scenarios/manifests")))
            .count(),
        shipped,
        "{files:?}"
    );
    assert!(objects >= 20, "only {objects} objects dry-run");
}

/// A function being deleted (faas-netes: foreground propagation, a draining watchdog; ledger
/// OF-8) is seen as deleting, and waited out until its Deployment and Service are gone — or
/// reported with what still lingers. Here a finalizer holds the Deployment the way a foreground
/// deletion does until its pods are gone.
async fn a_function_being_deleted_is_waited_out_until_its_objects_are_gone() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Patch, PatchParams};
    let client = rig!();
    let ns = unique("mp-fngone");
    make_ns(&client, &ns).await;
    let objects = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: env\n  finalizers: [meshproof.test/hold]\nspec:\n  replicas: 0\n  selector:\n    matchLabels: {faas_function: env}\n  template:\n    metadata:\n      labels: {faas_function: env}\n    spec:\n      containers:\n        - name: env\n          image: registry.invalid/never:1\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: env\nspec:\n  selector: {faas_function: env}\n  ports: [{name: http, port: 8080, protocol: TCP}]\n";
    apply_yaml(&client, objects, &opts_in(&ns)).await.unwrap();
    assert!(!wait::function_deleting(&client, &ns, "env").await.unwrap());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .delete("env", &DeleteParams::foreground())
        .await
        .unwrap();
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &ns);
    services
        .delete("env", &DeleteParams::default())
        .await
        .unwrap();
    assert!(wait::function_deleting(&client, &ns, "env").await.unwrap());
    // Held: the wait reports what lingers.
    let err = wait::function_gone(&client, &ns, "env", Duration::from_secs(2))
        .await
        .expect_err("the finalizer holds the Deployment");
    assert!(
        err.to_string().contains(&format!("Deployment {ns}/env")),
        "{err}"
    );
    // Released a moment later: the wait ends once it is gone, not before.
    let release = {
        let deployments = deployments.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let patch = serde_json::json!({"metadata": {"finalizers": null}});
            deployments
                .patch("env", &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            std::time::Instant::now()
        })
    };
    wait::function_gone(&client, &ns, "env", Duration::from_secs(60))
        .await
        .expect("gone once released");
    let released_at = release.await.unwrap();
    assert!(std::time::Instant::now() >= released_at);
    assert!(deployments.get_opt("env").await.unwrap().is_none());
    assert!(!wait::function_deleting(&client, &ns, "env").await.unwrap());
    drop_ns(&client, &ns).await;
}

/// The stack's patch of an installer's object (the Istio ingress gateway's NodePorts) against
/// the real server: a missing object is an error naming it and is not created; an existing one
/// is changed.
async fn patch_existing_refuses_to_create_and_changes_what_exists_and_exists_says_so() {
    use meshproof::stack::cluster::api::{ClusterApi, KubeTarget};
    use meshproof::stack::cluster::kube_api::KubeClusterApi;
    let client = rig!();
    let ns = unique("mp-patch");
    make_ns(&client, &ns).await;
    let target = KubeTarget {
        kubeconfig: rig_kubeconfig().unwrap(),
        context: None,
    };
    let patch = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: istio-ingressgateway\n  namespace: {ns}\nspec:\n  type: NodePort\n  ports:\n    - {{name: http2, port: 80, protocol: TCP, nodePort: 30080}}\n");
    let err = KubeClusterApi
        .patch_existing(&target, &patch)
        .await
        .expect_err("nothing to patch");
    assert!(
        err.to_string()
            .contains(&format!("Service {ns}/istio-ingressgateway does not exist")),
        "{err}"
    );
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), &ns);
    assert!(services
        .get_opt("istio-ingressgateway")
        .await
        .unwrap()
        .is_none());
    // What istioctl would have made: a NodePort Service with a selector.
    let made = format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: istio-ingressgateway\n  namespace: {ns}\nspec:\n  type: NodePort\n  selector: {{istio: ingressgateway}}\n  ports:\n    - {{name: http2, port: 80, protocol: TCP, targetPort: 8080}}\n");
    apply_yaml(&client, &made, &ApplyOptions::default())
        .await
        .unwrap();
    KubeClusterApi
        .patch_existing(&target, &patch)
        .await
        .unwrap();
    let svc = services.get("istio-ingressgateway").await.unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.ports.unwrap()[0].node_port, Some(30080));
    assert_eq!(
        spec.selector.unwrap()["istio"],
        "ingressgateway",
        "the installer's selector stays"
    );
    // `exists`: how the Linkerd installer tells a cluster that has Linkerd from one that has not.
    use meshproof::stack::cluster::api::ObjectRef;
    let config = ObjectRef::core("ConfigMap", &ns, "linkerd-config");
    assert!(!KubeClusterApi.exists(&target, &config).await.unwrap());
    let cm = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: linkerd-config\n  namespace: {ns}\n"
    );
    apply_yaml(&client, &cm, &ApplyOptions::default())
        .await
        .unwrap();
    assert!(KubeClusterApi.exists(&target, &config).await.unwrap());
    drop_ns(&client, &ns).await;
}

/// An existing cluster's own objects, against the real server (issue #13):
/// - a pre-existing `openfaas/basic-auth` keeps its value and its owner: the stack *creates*
///   its Secrets and refuses to overwrite one it did not make (it used to force-apply it);
/// - a namespace that exists is refused, never relabelled;
/// - the footprint survey finds a component's namespace and CRD, and a kind the server does
///   not serve counts as absent;
/// - what the stack's apply creates carries the run-id label, what existed keeps its labels;
/// - `delete` and `delete_selected` remove exactly what they name.
async fn an_existing_clusters_objects_keep_their_values_and_owners() {
    use meshproof::process::Redactor;
    use meshproof::stack::actions::{Action, Exec};
    use meshproof::stack::cluster::api::{ClusterApi, KubeTarget, ObjectRef, Selection};
    use meshproof::stack::cluster::kube_api::KubeClusterApi;
    use meshproof::stack::manifests;
    let client = rig!();
    let ns = unique("mp-owner");
    make_ns(&client, &ns).await;
    let target = KubeTarget {
        kubeconfig: rig_kubeconfig().unwrap(),
        context: None,
    };
    // The user's own basic-auth, applied by the user's field manager.
    let users = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: basic-auth\n  namespace: {ns}\nstringData:\n  basic-auth-user: admin\n  basic-auth-password: the-users-own-password\n"
    );
    let user_opts = ApplyOptions {
        field_manager: "the-user".into(),
        ..ApplyOptions::default()
    };
    apply_yaml(&client, &users, &user_opts).await.unwrap();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let before = secrets.get("basic-auth").await.unwrap();

    let log: meshproof::stack::Log = std::sync::Arc::new(|_: &str| {});
    let redactor = Redactor::default();
    let run_id = "ownertest1";
    let exec = Exec {
        api: &KubeClusterApi,
        target: &target,
        run_id,
        log: &log,
        redactor: &redactor,
    };
    let ours = Action::Apply {
        what: format!("Secret {ns}/basic-auth"),
        manifest: manifests::basic_auth_secret(&ns, run_id, "a-generated-password"),
        secret: true,
    };
    let err = exec
        .action("OpenFaaS", &ours)
        .await
        .expect_err("an existing Secret is never overwritten");
    assert!(err.to_string().contains("never overwrites it"), "{err}");
    let after = secrets.get("basic-auth").await.unwrap();
    assert_eq!(after.data, before.data, "the user's password is kept");
    let managers = |s: &k8s_openapi::api::core::v1::Secret| -> Vec<String> {
        s.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect()
    };
    assert_eq!(managers(&after), managers(&before), "and its owner");
    assert_eq!(managers(&after), vec!["the-user".to_string()]);

    // A namespace that exists is refused, and keeps its labels.
    let ns_action = Action::namespace(
        &ns,
        run_id,
        Some(meshproof::scenario::DataPlane::IstioSidecar),
    );
    let err = exec
        .action("OpenFaaS", &ns_action)
        .await
        .expect_err("a namespace the run did not create is refused");
    assert!(
        err.to_string().contains("was not created by this run"),
        "{err}"
    );
    let nss: Api<Namespace> = Api::all(client.clone());
    let labels = nss
        .get(&ns)
        .await
        .unwrap()
        .metadata
        .labels
        .unwrap_or_default();
    assert!(!labels.contains_key("istio-injection"), "{labels:?}");
    assert!(!labels.contains_key(RUN_ID_LABEL), "{labels:?}");

    // The footprint probe: a namespace and a served CRD are found; an unserved kind is absent.
    assert!(KubeClusterApi
        .exists(&target, &ObjectRef::namespace(&ns))
        .await
        .unwrap());
    assert!(!KubeClusterApi
        .exists(&target, &ObjectRef::namespace(&format!("{ns}-nope")))
        .await
        .unwrap());
    let unserved = ObjectRef {
        api_version: "policy.meshproof.invalid/v1".into(),
        kind: "Server".into(),
        namespace: Some(ns.clone()),
        name: "x".into(),
    };
    assert!(!KubeClusterApi.exists(&target, &unserved).await.unwrap());
    assert!(!KubeClusterApi
        .exists(&target, &ObjectRef::crd("servers.policy.meshproof.invalid"))
        .await
        .unwrap());

    // The stack's apply labels what it creates with the run id, not what it finds.
    let cms = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: found\n  namespace: {ns}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\n  namespace: {ns}\n"
    );
    apply_yaml(
        &client,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: found\n  namespace: NS\n"
            .replace("NS", &ns)
            .as_str(),
        &user_opts,
    )
    .await
    .unwrap();
    KubeClusterApi
        .apply(&target, &cms, Some(run_id))
        .await
        .unwrap();
    let cm_api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    let label = |name: &'static str| {
        let cm_api = cm_api.clone();
        async move {
            cm_api
                .get(name)
                .await
                .unwrap()
                .metadata
                .labels
                .unwrap_or_default()
                .get(RUN_ID_LABEL)
                .cloned()
        }
    };
    assert_eq!(label("made").await.as_deref(), Some(run_id));
    assert_eq!(label("found").await, None);

    // delete_selected: only the labelled Secrets; delete: what the manifest names, a missing
    // one is no error.
    for (name, labelled) in [("key-a", true), ("key-b", true), ("other", false)] {
        let l = if labelled {
            "\n  labels: {sealedsecrets.bitnami.com/sealed-secrets-key: active}"
        } else {
            ""
        };
        let m = format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}{l}\nstringData: {{k: v}}\n");
        apply_yaml(&client, &m, &ApplyOptions::default())
            .await
            .unwrap();
    }
    let n = KubeClusterApi
        .delete_selected(
            &target,
            &Selection {
                api_version: "v1".into(),
                kind: "Secret".into(),
                namespace: ns.clone(),
                selector: "sealedsecrets.bitnami.com/sealed-secrets-key".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert!(secrets.get_opt("key-a").await.unwrap().is_none());
    assert!(secrets.get_opt("other").await.unwrap().is_some());
    let two = format!(
        "{}\n---\n{}",
        ObjectRef::core("Secret", &ns, "other").manifest(),
        ObjectRef::core("Secret", &ns, "never-was").manifest()
    );
    assert_eq!(KubeClusterApi.delete(&target, &two).await.unwrap(), 1);
    assert!(secrets.get_opt("other").await.unwrap().is_none());
    assert!(secrets.get_opt("basic-auth").await.unwrap().is_some());
    drop_ns(&client, &ns).await;
}

/// The fingerprint's running images come from the pods' container statuses as the kubelet
/// writes them (here written through the status subresource, as a kubelet would: the rig has
/// none), across namespaces, with the runtime's digest; a container not started has none.
async fn running_images_are_read_from_the_kubelets_container_statuses() {
    use k8s_openapi::api::core::v1::Pod;
    use meshproof::kubeops::running::{list_running_images, RunningImage};
    let client = rig!();
    let ns = unique("running");
    make_ns(&client, &ns).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "p", "namespace": ns },
        "spec": { "automountServiceAccountToken": false, "containers": [
            { "name": "gateway", "image": "ghcr.io/openfaas/gateway:0.27.13" },
            { "name": "sidecar", "image": "docker.io/istio/proxyv2:1.30.3" }
        ] }
    }))
    .unwrap();
    pods.create(&Default::default(), &pod).await.expect("pod");
    let status = serde_json::json!({ "status": { "phase": "Running", "containerStatuses": [
        { "name": "gateway", "image": "ghcr.io/openfaas/gateway:0.27.13",
          "imageID": "ghcr.io/openfaas/gateway@sha256:1111111111111111111111111111111111111111111111111111111111111111",
          "ready": true, "restartCount": 0 },
        { "name": "sidecar", "image": "docker.io/istio/proxyv2:1.30.3", "imageID": "",
          "ready": false, "restartCount": 0 }
    ] } });
    pods.patch_status("p", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    let got = list_running_images(&client).await.expect("list");
    let mine: Vec<&RunningImage> = got
        .iter()
        .filter(|i| i.used_by.iter().any(|u| u.starts_with(&format!("{ns}/"))))
        .collect();
    assert_eq!(mine.len(), 2, "{got:?}");
    assert_eq!(mine[0].image, "docker.io/istio/proxyv2:1.30.3");
    assert_eq!(mine[0].image_id, None);
    assert_eq!(mine[1].used_by, vec![format!("{ns}/gateway")]);
    assert_eq!(
        mine[1].image_id.as_deref(),
        Some("ghcr.io/openfaas/gateway@sha256:1111111111111111111111111111111111111111111111111111111111111111")
    );
    drop_ns(&client, &ns).await;
}

fn main() -> std::process::ExitCode {
    use support_harness::{Case, Need};
    support_harness::run(vec![
        Case::tokio(
            "running_images_are_read_from_the_kubelets_container_statuses",
            &[Need::KubeRig],
            running_images_are_read_from_the_kubelets_container_statuses,
        ),
        Case::tokio(
            "shared_crds_install_become_established_and_resolve_in_discovery",
            &[Need::KubeRig],
            shared_crds_install_become_established_and_resolve_in_discovery,
        ),
        Case::tokio(
            "fixtures_pass_server_dry_run_and_a_string_weight_is_rejected",
            &[Need::KubeRig],
            fixtures_pass_server_dry_run_and_a_string_weight_is_rejected,
        ),
        Case::tokio(
            "apply_is_idempotent_owned_by_meshproof_and_conflicts_are_typed",
            &[Need::KubeRig],
            apply_is_idempotent_owned_by_meshproof_and_conflicts_are_typed,
        ),
        Case::tokio(
            "cleanup_removes_only_what_the_run_labelled",
            &[Need::KubeRig],
            cleanup_removes_only_what_the_run_labelled,
        ),
        Case::tokio(
            "a_deployment_that_cannot_roll_out_times_out_with_its_current_state",
            &[Need::KubeRig],
            a_deployment_that_cannot_roll_out_times_out_with_its_current_state,
        ),
        Case::tokio(
            "a_custom_status_condition_ends_the_wait",
            &[Need::KubeRig],
            a_custom_status_condition_ends_the_wait,
        ),
        Case::tokio(
            "an_httproute_is_accepted_only_when_every_parent_says_so",
            &[Need::KubeRig],
            an_httproute_is_accepted_only_when_every_parent_says_so,
        ),
        Case::tokio(
            "failure_dump_has_events_and_statuses_and_no_secret_data",
            &[Need::KubeRig],
            failure_dump_has_events_and_statuses_and_no_secret_data,
        ),
        Case::tokio(
            "every_rendered_scenario_manifest_passes_server_dry_run",
            &[Need::KubeRig],
            every_rendered_scenario_manifest_passes_server_dry_run,
        ),
        Case::tokio(
            "a_function_being_deleted_is_waited_out_until_its_objects_are_gone",
            &[Need::KubeRig],
            a_function_being_deleted_is_waited_out_until_its_objects_are_gone,
        ),
        Case::tokio(
            "an_existing_clusters_objects_keep_their_values_and_owners",
            &[Need::KubeRig],
            an_existing_clusters_objects_keep_their_values_and_owners,
        ),
        Case::tokio(
            "patch_existing_refuses_to_create_and_changes_what_exists_and_exists_says_so",
            &[Need::KubeRig],
            patch_existing_refuses_to_create_and_changes_what_exists_and_exists_says_so,
        ),
    ])
}
