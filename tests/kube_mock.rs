//! Request-shape tests of the kube layer against an API-server test double (`tower-test`
//! mock service). The double records every request and answers from a per-test routing
//! function; the tests then check what was sent (method, path, query, content type, body) and
//! how answers are mapped (ordering, typed errors, timeout state). Real-server behaviour is
//! covered by tests/apiserver.rs; these cover what the rig cannot show (ephemeral containers)
//! and pin the exact wire contract.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use meshproof::kubeops::apply::{apply_yaml, dry_run_all, ApplyAction, ApplyOptions};
use meshproof::kubeops::capture::{start_capture, CaptureSpec};
use meshproof::kubeops::portforward::resolve_service;
use meshproof::kubeops::{wait, KubeError, RunId};
use serde_json::{json, Value};

/// One request as the double saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    fn is_watch(&self) -> bool {
        self.query.contains("watch=true")
    }
}

/// How the double answers a request.
enum Reply {
    Json(u16, Value),
    /// Never answer (a watch with no events); the request stays open until the client gives up.
    Hang,
}

/// API server test double: serves `route`'s replies, records requests in order.
struct ApiServerDouble {
    client: Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ApiServerDouble {
    fn start(route: impl Fn(&Seen) -> Reply + Send + 'static) -> Self {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut hung = Vec::new();
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect_bytes()
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                let s = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or("").to_string(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string(),
                    body,
                };
                let reply = route(&s);
                log.lock().unwrap().push(s);
                match reply {
                    Reply::Json(code, v) => send.send_response(
                        Response::builder()
                            .status(code)
                            .header("content-type", "application/json")
                            .body(Body::from(serde_json::to_vec(&v).unwrap()))
                            .unwrap(),
                    ),
                    Reply::Hang => hung.push(send),
                }
            }
        });
        ApiServerDouble {
            client: Client::new(service, "default"),
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn not_found() -> Reply {
    Reply::Json(404, status(404, "NotFound", "not found"))
}

fn resource_list(group_version: &str, resources: Value) -> Reply {
    Reply::Json(
        200,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
               "resources": resources}),
    )
}

fn core_v1() -> Reply {
    resource_list(
        "v1",
        json!([
            {"name": "configmaps", "singularName": "", "namespaced": true, "kind": "ConfigMap",
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]},
            {"name": "namespaces", "singularName": "", "namespaced": false, "kind": "Namespace",
             "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
        ]),
    )
}

/// Echoes an applied object back as stored, with a resourceVersion.
fn stored(seen: &Seen, rv: &str) -> Reply {
    let mut obj = seen.json();
    obj["metadata"]["resourceVersion"] = json!(rv);
    Reply::Json(200, obj)
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: strict\nstatus:\n  bogus: true\n";

#[tokio::test]
async fn ssa_request_shape_field_manager_label_and_dry_run() {
    let double = ApiServerDouble::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1") => core_v1(),
        ("GET", "/api/v1/namespaces/team-a/configmaps/settings") => not_found(),
        ("PATCH", "/api/v1/namespaces/team-a/configmaps/settings") => stored(s, "7"),
        _ => not_found(),
    });
    let opts = ApplyOptions {
        run_id: Some(RunId::new("run-1").unwrap()),
        default_namespace: "team-a".into(),
        ..ApplyOptions::default()
    };
    let applied = apply_yaml(&double.client, CM, &opts).await.unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].action, ApplyAction::Created);
    assert_eq!(applied[0].object, "ConfigMap team-a/settings");

    let seen = double.seen();
    let patch = seen.iter().find(|s| s.method == "PATCH").expect("a PATCH");
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    assert!(
        patch.query.contains("fieldManager=meshproof"),
        "{}",
        patch.query
    );
    assert!(
        !patch.query.contains("force=true"),
        "force must be off by default"
    );
    assert!(!patch.query.contains("dryRun"), "{}", patch.query);
    let body = patch.json();
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["kind"], "ConfigMap");
    assert_eq!(body["metadata"]["namespace"], "team-a");
    assert_eq!(body["metadata"]["labels"]["meshproof.dev/run-id"], "run-1");
    assert_eq!(body["data"]["mode"], "strict");
    assert!(
        body.get("status").is_none(),
        "status is never applied: {body}"
    );

    // The same object as a server-side dry run.
    let dry = ApiServerDouble::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1") => core_v1(),
        ("GET", "/api/v1/namespaces/default/configmaps/settings") => not_found(),
        ("PATCH", "/api/v1/namespaces/default/configmaps/settings") => stored(s, "1"),
        _ => not_found(),
    });
    let report = dry_run_all(&dry.client, CM).await.unwrap();
    assert!(report.all_accepted(), "{:?}", report.results);
    let patch = dry
        .seen()
        .into_iter()
        .find(|s| s.method == "PATCH")
        .unwrap();
    assert!(patch.query.contains("dryRun=All"), "{}", patch.query);
    assert!(
        patch.query.contains("fieldManager=meshproof"),
        "{}",
        patch.query
    );
}

#[tokio::test]
async fn unchanged_when_the_resource_version_stays() {
    let double = ApiServerDouble::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1") => core_v1(),
        ("GET", "/api/v1/namespaces/default/configmaps/settings") => Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings", "namespace": "default", "resourceVersion": "42"},
                   "data": {"mode": "strict"}}),
        ),
        ("PATCH", _) => stored(s, "42"),
        _ => not_found(),
    });
    let opts = ApplyOptions {
        run_id: Some(RunId::new("run-2").unwrap()),
        ..ApplyOptions::default()
    };
    let applied = apply_yaml(&double.client, CM, &opts).await.unwrap();
    assert_eq!(applied[0].action, ApplyAction::Unchanged);
    // It existed before without the run label: the run does not claim it.
    let patch = double
        .seen()
        .into_iter()
        .find(|s| s.method == "PATCH")
        .unwrap();
    assert!(
        patch.json()["metadata"]["labels"]["meshproof.dev/run-id"].is_null(),
        "{}",
        patch.json()
    );
}

const CRD_AND_CR: &str = "\
apiVersion: test.meshproof.dev/v1
kind: Widget
metadata:
  name: w
spec:
  size: 1
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.meshproof.dev
spec:
  group: test.meshproof.dev
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      selectableFields: [{jsonPath: .spec.size}]
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-validations: [{rule: 'true'}]
";

#[tokio::test]
async fn crd_is_applied_and_established_before_its_custom_resource() {
    let crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let double = ApiServerDouble::start(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/version") => Reply::Json(
            200,
            json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2", "gitCommit": "",
                       "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""}),
        ),
        ("GET", "/apis/apiextensions.k8s.io/v1") => resource_list(
            "apiextensions.k8s.io/v1",
            json!([{"name": "customresourcedefinitions", "singularName": "", "namespaced": false,
                        "kind": "CustomResourceDefinition", "verbs": ["create", "delete", "get", "list", "patch", "watch"]}]),
        ),
        ("GET", "/apis/test.meshproof.dev/v1") => resource_list(
            "test.meshproof.dev/v1",
            json!([{"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget",
                        "verbs": ["create", "delete", "get", "list", "patch", "watch"]}]),
        ),
        ("GET", p) if p == format!("{crd_path}/widgets.test.meshproof.dev") => not_found(),
        ("GET", p) if p == crd_path && !s.is_watch() => Reply::Json(
            200,
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinitionList",
                       "metadata": {"resourceVersion": "10"},
                       "items": [{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                                  "metadata": {"name": "widgets.test.meshproof.dev", "resourceVersion": "10"},
                                  "spec": {"group": "test.meshproof.dev", "scope": "Namespaced",
                                           "names": {"plural": "widgets", "kind": "Widget"}, "versions": []},
                                  "status": {"conditions": [{"type": "Established", "status": "True"}]}}]}),
        ),
        ("GET", p) if p == crd_path => Reply::Hang,
        ("PATCH", _) => stored(s, "11"),
        _ => not_found(),
    });
    let opts = ApplyOptions {
        default_namespace: "ns1".into(),
        crd_timeout: Duration::from_secs(5),
        ..ApplyOptions::default()
    };
    let applied = apply_yaml(&double.client, CRD_AND_CR, &opts).await.unwrap();
    assert_eq!(applied[0].kind, "CustomResourceDefinition");
    assert!(
        applied[0].stripped_fields,
        "v1.20 keeps neither CEL rules nor selectableFields"
    );
    assert_eq!(applied[1].object, "Widget ns1/w");

    let seen = double.seen();
    let pos = |pred: &dyn Fn(&Seen) -> bool| seen.iter().position(pred);
    let crd_patch = pos(&|s| s.method == "PATCH" && s.path.starts_with(crd_path)).unwrap();
    let crd_list = pos(&|s| {
        s.method == "GET" && s.path == crd_path && s.query.contains("fieldSelector=metadata.name")
    })
    .expect("the CRD is waited on");
    let cr_discovery = pos(&|s| s.path == "/apis/test.meshproof.dev/v1").unwrap();
    let cr_patch = pos(&|s| {
        s.method == "PATCH" && s.path == "/apis/test.meshproof.dev/v1/namespaces/ns1/widgets/w"
    })
    .unwrap();
    assert!(crd_patch < crd_list && crd_list < cr_discovery && cr_discovery < cr_patch,
        "order: crd patch {crd_patch}, wait {crd_list}, discovery {cr_discovery}, cr patch {cr_patch}");
    let crd_body = seen[crd_patch].json().to_string();
    assert!(
        !crd_body.contains("x-kubernetes-validations") && !crd_body.contains("selectableFields"),
        "{crd_body}"
    );
}

#[tokio::test]
async fn wait_timeout_reports_the_current_state() {
    let double = ApiServerDouble::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/apis/apps/v1/namespaces/openfaas-fn/deployments") if !s.is_watch() => {
            Reply::Json(
                200,
                json!({"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {"resourceVersion": "5"},
                       "items": [{"metadata": {"name": "env", "namespace": "openfaas-fn", "generation": 1, "resourceVersion": "5"},
                                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "env"}},
                                           "template": {"metadata": {"labels": {"app": "env"}}, "spec": {"containers": [{"name": "env", "image": "x"}]}}},
                                  "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0, "unavailableReplicas": 1,
                                             "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}}]}),
            )
        }
        ("GET", _) if s.is_watch() => Reply::Hang,
        _ => not_found(),
    });
    let err = wait::deployment_rolled_out(
        &double.client,
        "openfaas-fn",
        "env",
        Duration::from_millis(800),
    )
    .await
    .unwrap_err();
    match &err {
        KubeError::Timeout { what, state, after } => {
            assert_eq!(what, "Deployment openfaas-fn/env");
            assert_eq!(*after, Duration::from_millis(800));
            assert!(
                state.starts_with("deployment openfaas-fn/env: 0/1 updated"),
                "{state}"
            );
            assert!(state.contains("0 available"), "{state}");
            assert!(
                state.contains("Progressing=True (ReplicaSetUpdated)"),
                "{state}"
            );
        }
        other => panic!("expected Timeout, got {other}"),
    }
    let list = double.seen().into_iter().find(|s| !s.is_watch()).unwrap();
    assert!(
        list.query.contains("fieldSelector=metadata.name%3Denv"),
        "{}",
        list.query
    );
}

#[tokio::test]
async fn api_errors_map_to_typed_errors() {
    let conflict_msg =
        "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.mode";
    let conflict = ApiServerDouble::start(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1") => core_v1(),
        ("GET", _) => not_found(),
        ("PATCH", _) => Reply::Json(409, status(409, "Conflict", conflict_msg)),
        _ => not_found(),
    });
    match apply_yaml(&conflict.client, CM, &ApplyOptions::default()).await {
        Err(KubeError::Conflict {
            object,
            manager,
            details,
        }) => {
            assert_eq!(object, "ConfigMap default/settings");
            assert_eq!(manager, "kubectl-edit");
            assert!(details.contains(".data.mode"));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }

    let broken = ApiServerDouble::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1") => core_v1(),
        ("GET", _) => not_found(),
        ("PATCH", _) => Reply::Json(500, status(500, "InternalError", "etcd is sad")),
        _ => not_found(),
    });
    match apply_yaml(&broken.client, CM, &ApplyOptions::default()).await {
        Err(KubeError::Api {
            object,
            code: 500,
            message,
            ..
        }) => {
            assert_eq!(object, "ConfigMap default/settings");
            assert_eq!(message, "etcd is sad");
        }
        other => panic!("expected Api 500, got {other:?}"),
    }

    let unknown = ApiServerDouble::start(|_| not_found());
    let y = "apiVersion: nope.example/v9\nkind: Ghost\nmetadata:\n  name: g\n";
    match apply_yaml(&unknown.client, y, &ApplyOptions::default()).await {
        Err(KubeError::Discovery(msg)) => assert!(msg.contains("Ghost"), "{msg}"),
        other => panic!("expected Discovery, got {other:?}"),
    }

    match apply_yaml(&unknown.client, "a: [", &ApplyOptions::default()).await {
        Err(KubeError::Yaml { doc_index: 0, .. }) => {}
        other => panic!("expected Yaml, got {other:?}"),
    }
}

#[tokio::test]
async fn ephemeral_capture_container_request_shapes() {
    let double = ApiServerDouble::start(|s| match (s.method.as_str(), s.path.as_str()) {
        ("PATCH", "/api/v1/namespaces/openfaas-fn/pods/env-1/ephemeralcontainers") => Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "env-1"}}),
        ),
        ("GET", "/api/v1/namespaces/openfaas-fn/pods") if !s.is_watch() => Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "3"},
                   "items": [{"metadata": {"name": "env-1", "namespace": "openfaas-fn", "resourceVersion": "3"},
                              "spec": {"containers": [{"name": "env", "image": "x"}]},
                              "status": {"phase": "Running", "ephemeralContainerStatuses": [
                                  {"name": "mp-capture-1", "image": "nicolaka/netshoot", "imageID": "", "ready": false,
                                   "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}}]}),
        ),
        ("GET", _) if s.is_watch() => Reply::Hang,
        // No WebSocket upgrade from a double: attach is refused, which ends the test flow.
        (_, "/api/v1/namespaces/openfaas-fn/pods/env-1/attach") => Reply::Json(
            403,
            status(403, "Forbidden", "attach refused by the test double"),
        ),
        _ => not_found(),
    });
    let spec = CaptureSpec::tcpdump("mp-capture-1", "env");
    let err = match start_capture(&double.client, "openfaas-fn", "env-1", &spec).await {
        Ok(_) => panic!("the double refuses attach"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("env-1"), "{err}");

    let seen = double.seen();
    let patch = &seen[0];
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    let c = &patch.json()["spec"]["ephemeralContainers"][0];
    assert_eq!(c["name"], "mp-capture-1");
    assert_eq!(
        c["image"],
        meshproof::kubeops::capture::default_image(),
        "pinned by digest"
    );
    assert!(c["image"].as_str().unwrap().contains("@sha256:"));
    assert_eq!(c["targetContainerName"], "env");
    assert_eq!(c["stdin"], true);
    assert_eq!(c["tty"], false);
    let cmd: Vec<&str> = c["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&cmd[..2], ["sh", "-c"]);
    assert_eq!(
        &cmd[4..],
        ["tcpdump", "-i", "eth0", "-U", "-B", "16384", "-w", "-"]
    );

    let attach = seen
        .iter()
        .find(|s| s.path.ends_with("/attach"))
        .expect("attach after running");
    for q in [
        "container=mp-capture-1",
        "stdin=true",
        "stdout=true",
        "stderr=true",
    ] {
        assert!(attach.query.contains(q), "{q} missing in {}", attach.query);
    }
    assert!(!attach.query.contains("tty=true"), "{}", attach.query);
}

#[tokio::test]
async fn service_port_forward_resolves_selector_to_a_ready_pod_and_named_port() {
    let pod = |name: &str, ready: &str| {
        json!({"metadata": {"name": name, "namespace": "openfaas"},
               "spec": {"containers": [{"name": "gw", "image": "x", "ports": [{"name": "http", "containerPort": 8081}]}]},
               "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}})
    };
    let (a, b) = (pod("gateway-a", "False"), pod("gateway-b", "True"));
    let double = ApiServerDouble::start(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1/namespaces/openfaas/services/gateway") => Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gateway", "namespace": "openfaas"},
                   "spec": {"selector": {"app": "gateway"}, "ports": [{"port": 8080, "targetPort": "http"}]}}),
        ),
        ("GET", "/api/v1/namespaces/openfaas/pods") => Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [a.clone(), b.clone()]}),
        ),
        _ => not_found(),
    });
    let (pod, port) = resolve_service(&double.client, "openfaas", "gateway", 8080)
        .await
        .unwrap();
    assert_eq!(
        (pod.as_str(), port),
        ("gateway-b", 8081),
        "the Ready pod, the named port"
    );
    let list = double
        .seen()
        .into_iter()
        .find(|s| s.path.ends_with("/pods"))
        .unwrap();
    assert!(
        list.query.contains("labelSelector=app%3Dgateway"),
        "{}",
        list.query
    );
    match resolve_service(&double.client, "openfaas", "gateway", 9999).await {
        Err(KubeError::Invalid(msg)) => assert!(msg.contains("no port 9999"), "{msg}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// ztunnel's access log is read with the API server's timestamps, over a bounded window, from
/// its `istio-proxy` container (ledger IS-23): the exact query, and the text handed back as is.
#[tokio::test]
async fn ztunnel_logs_are_read_with_timestamps_since_a_window() {
    let line = "2026-12-06T03:00:01.5Z 2026-12-06T03:00:01.499812Z\terror\taccess\tconnection complete\tsrc.addr=10.244.1.7:51234 direction=\"inbound\"\n";
    let body = line.to_string();
    let double = ApiServerDouble::start(move |s| match (s.method.as_str(), s.path.as_str()) {
        ("GET", "/api/v1/namespaces/istio-system/pods/ztunnel-abc/log") => {
            Reply::Json(200, Value::String(body.clone()))
        }
        _ => not_found(),
    });
    let text = meshproof::kubeops::logs::pod_logs_since(
        &double.client,
        "istio-system",
        "ztunnel-abc",
        "istio-proxy",
        7,
    )
    .await
    .unwrap();
    assert!(text.contains("connection complete"), "{text}");
    let seen = double.seen();
    assert_eq!(seen.len(), 1);
    for q in ["container=istio-proxy", "sinceSeconds=7", "timestamps=true"] {
        assert!(
            seen[0].query.contains(q),
            "{q} missing in {}",
            seen[0].query
        );
    }
    // A window of zero seconds still asks for one: the API server refuses sinceSeconds=0.
    meshproof::kubeops::logs::pod_logs_since(
        &double.client,
        "istio-system",
        "ztunnel-abc",
        "istio-proxy",
        0,
    )
    .await
    .unwrap();
    assert!(
        double.seen()[1].query.contains("sinceSeconds=1"),
        "{}",
        double.seen()[1].query
    );
}
