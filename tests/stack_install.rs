//! Provisioning and installing environments against TEST-DOUBLE CLIs (kind, helm, istioctl,
//! linkerd on the tool path, recording their argv) and a recording double of the Kubernetes API.
//! Checks the exact argument lists, the chart values, the generated manifests, that cleanup
//! deletes the cluster that was created, and that no secret reaches a log, an argv or a file.

mod doubles;

use doubles::{files_under, flag, ApiCall, Doubles, RecordingApi};
use meshproof::scenario::{Catalog, EnvironmentSpec, LinkerdInstall, MeshSpec, Suite};
use meshproof::stack::environment::{self, Environment};
use meshproof::stack::{RunDirs, StackError, StackOptions};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Tests here set process-wide environment variables (the tool path, the doubles' knobs) that
/// the spawned doubles inherit: they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn catalog() -> Catalog {
    meshproof::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("project loads")
}

/// The suite without sealed-secrets and Flux (which these tests do not exercise), and one environment.
fn suite_env(name: &str, env: &str) -> (Suite, EnvironmentSpec) {
    let c = catalog();
    let mut s = (**c.suite(name).unwrap()).clone();
    s.components.sealed_secrets = None;
    s.components.flux = None;
    let e = s
        .environments
        .iter()
        .find(|e| e.name == env)
        .unwrap()
        .clone();
    (s, e)
}

struct Run {
    doubles: Doubles,
    api: Arc<RecordingApi>,
    logs: Arc<Mutex<Vec<String>>>,
    artifacts: tempfile::TempDir,
    run: RunDirs,
    result: Option<Result<Environment, StackError>>,
    /// The OpenFaaS Pro license file of a Pro suite that names none ($OPENFAAS_LICENSE_FILE).
    _license: Option<tempfile::TempDir>,
}

/// A test license for the Pro suites (the Istio suite runs OpenFaaS Pro).
pub const TEST_LICENSE: &str = "eyJhbGciOiJSUzI1NiJ9.meshproof-test-license-value.c2lnbmF0dXJl";

impl Run {
    fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
    fn env(&self) -> &Environment {
        match self.result.as_ref().unwrap() {
            Ok(e) => e,
            Err(e) => {
                panic!(
                    "up failed: {e}\nlog:\n{}\ncalls:\n{}",
                    self.log_text(),
                    self.doubles.call_lines().join("\n")
                )
            }
        }
    }
    /// Why `up` failed; a test that expects a failure and got an environment stops here.
    fn err(&self) -> &StackError {
        match self.result.as_ref().unwrap() {
            Err(e) => e,
            Ok(_) => panic!(
                "up succeeded where it must fail\ncalls:\n{}",
                self.doubles.call_lines().join("\n")
            ),
        }
    }
}

const KNOBS: [&str; 9] = [
    "MESHPROOF_DOUBLE_KIND_VERSION",
    "MESHPROOF_DOUBLE_FAIL_MSG",
    "MESHPROOF_DOUBLE_SLEEP_ON",
    "MESHPROOF_DOUBLE_FAIL_ON",
    "MESHPROOF_DOUBLE_ISTIO_VERSION",
    "MESHPROOF_DOUBLE_LINKERD_VERSION",
    "MESHPROOF_DOUBLE_FLUX_VERSION",
    "MESHPROOF_DOUBLE_COPY_DIR",
    "MESHPROOF_DOUBLE_SLEEP_SECS",
];

fn up(
    suite: &Suite,
    env: &EnvironmentSpec,
    knobs: &[(&str, &str)],
    keep: bool,
    api: RecordingApi,
    gateway_base: Option<String>,
) -> Run {
    let doubles = Doubles::new();
    std::env::set_var(meshproof::process::tools::TOOL_PATH_ENV, doubles.bin());
    std::env::set_var("MESHPROOF_DOUBLE_LOG", doubles.log());
    for k in KNOBS {
        std::env::remove_var(k);
    }
    for (k, v) in knobs {
        std::env::set_var(k, v);
    }
    let license = match &suite.openfaas.edition {
        meshproof::scenario::Edition::Pro { license_file: None } => {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("license"), TEST_LICENSE).unwrap();
            std::env::set_var(
                meshproof::scenario::LICENSE_FILE_ENV,
                dir.path().join("license"),
            );
            Some(dir)
        }
        _ => {
            std::env::remove_var(meshproof::scenario::LICENSE_FILE_ENV);
            None
        }
    };
    let api = Arc::new(api);
    let logs = Arc::new(Mutex::new(Vec::new()));
    let logs2 = logs.clone();
    let artifacts = tempfile::tempdir().unwrap();
    let opts = StackOptions {
        api: api.clone(),
        keep_cluster: keep,
        artifacts_root: artifacts.path().to_path_buf(),
        gateway_api_base: gateway_base.unwrap_or_else(|| "http://127.0.0.1:9/unused".into()),
        registry: meshproof::images::Registry::default(),
        mirror: Ok(Default::default()),
        log: Arc::new(move |l: &str| logs2.lock().unwrap().push(l.to_string())),
    };
    let run = RunDirs::new(&opts).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(environment::up(suite, env, &env.name, &opts, &run));
    Run {
        doubles,
        api,
        logs,
        artifacts,
        run,
        result: Some(result),
        _license: license,
    }
}

fn find_call<'a>(
    calls: &'a [(String, Vec<String>)],
    tool: &str,
    prefix: &[&str],
) -> Option<&'a Vec<String>> {
    calls
        .iter()
        .find(|(t, a)| {
            t == tool && a.len() >= prefix.len() && a.iter().zip(prefix).all(|(x, y)| x == y)
        })
        .map(|(_, a)| a)
}

fn password_of(api: &RecordingApi) -> String {
    let s = api
        .object("Secret", "basic-auth")
        .expect("basic-auth secret applied");
    s["stringData"]["basic-auth-password"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn istio_on_kind_runs_the_exact_commands_and_deletes_the_cluster_it_created() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.35]");
    let copy = tempfile::tempdir().unwrap();
    let copy_dir = copy.path().to_str().unwrap().to_string();
    let mut r = up(
        &suite,
        &env,
        &[("MESHPROOF_DOUBLE_COPY_DIR", &copy_dir)],
        false,
        RecordingApi::default(),
        None,
    );
    let name = r.env().cluster_name.clone().unwrap();
    assert!(
        name.starts_with("meshproof-istio-k8s-1-35-") && name.len() <= 50,
        "{name}"
    );
    let calls = r.doubles.calls();

    // The CLI versions are checked before any cluster exists: kind's own first (KIND-9).
    let first_kind = calls.iter().position(|(t, _)| t == "kind").unwrap();
    assert_eq!(
        calls[first_kind].1,
        ["version"],
        "{:?}",
        r.doubles.call_lines()
    );
    let kind_create = calls
        .iter()
        .position(|(t, a)| t == "kind" && a[0] == "create")
        .unwrap();
    let version = calls
        .iter()
        .position(|(t, a)| t == "istioctl" && a[0] == "version")
        .unwrap();
    assert!(version < kind_create, "{:?}", r.doubles.call_lines());

    let create = find_call(&calls, "kind", &["create", "cluster"]).unwrap();
    assert_eq!(flag(create, "--name"), Some(name.as_str()));
    assert_eq!(flag(create, "--wait"), Some("120s"));
    let kubeconfig = flag(create, "--kubeconfig").unwrap().to_string();
    assert!(
        kubeconfig.starts_with(r.run.temp().to_str().unwrap()),
        "kubeconfig {kubeconfig} outside the run dir"
    );
    assert!(!kubeconfig.contains(".kube/config"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The kind config the double received pins the digest and maps the host ports.
    let cfg: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(copy.path().join("kind-config.yaml")).unwrap(),
    )
    .unwrap();
    let node = &cfg["nodes"][0];
    assert_eq!(
        node["image"].as_str(),
        Some("kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0")
    );
    assert_eq!(
        node["extraPortMappings"][0]["hostPort"].as_u64(),
        Some(30080)
    );
    assert_eq!(
        node["extraPortMappings"][1]["containerPort"].as_u64(),
        Some(30043)
    );

    let install = find_call(&calls, "istioctl", &["install"]).unwrap();
    assert_eq!(
        install[..6],
        [
            "install",
            "-y",
            "--set",
            "profile=default",
            "--set",
            "values.gateways.istio-ingressgateway.type=NodePort"
        ]
    );
    // Apps wait for their sidecar (classic sidecars on Kubernetes < 1.33, ledger IS-15).
    assert_eq!(
        install[6..8],
        [
            "--set",
            "meshConfig.defaultConfig.holdApplicationUntilProxyStarts=true"
        ]
    );
    assert_eq!(flag(install, "--kubeconfig"), Some(kubeconfig.as_str()));

    let of = find_call(
        &calls,
        "helm",
        &["upgrade", "--install", "openfaas", "openfaas/openfaas"],
    )
    .unwrap();
    assert_eq!(flag(of, "--version"), Some("15.0.6"));
    assert_eq!(flag(of, "--namespace"), Some("openfaas"));
    assert_eq!(flag(of, "--kubeconfig"), Some(kubeconfig.as_str()));
    let sets: Vec<&str> = of
        .iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && of[i - 1] == "--set")
        .map(|(_, s)| s.as_str())
        .collect();
    for want in [
        "functionNamespace=openfaas-fn",
        "generateBasicAuth=false",
        "gateway.directFunctions=true",
        "gateway.probeFunctions=true",
        "async=false",
    ] {
        assert!(sets.contains(&want), "missing --set {want}: {sets:?}");
    }
    assert!(
        !sets.iter().any(|s| s.starts_with("istio.mtls")),
        "{sets:?}"
    );
    let cm = find_call(
        &calls,
        "helm",
        &[
            "upgrade",
            "--install",
            "cert-manager",
            "jetstack/cert-manager",
        ],
    )
    .unwrap();
    assert_eq!(flag(cm, "--version"), Some("v1.21.1"));
    assert_eq!(flag(cm, "--set"), Some("crds.enabled=true"));
    assert!(find_call(
        &calls,
        "helm",
        &[
            "repo",
            "add",
            "openfaas",
            "https://openfaas.github.io/faas-netes/"
        ]
    )
    .is_some());

    // Namespaces are created (with the run-id label) before the chart, and meshed.
    let ns = r.api.object("Namespace", "openfaas-fn").unwrap();
    assert_eq!(
        ns["metadata"]["labels"]["istio-injection"].as_str(),
        Some("enabled")
    );
    assert_eq!(
        ns["metadata"]["labels"]["meshproof.dev/run-id"].as_str(),
        Some(r.run.run_id.as_str())
    );
    // The NodePorts are a patch of the installer's Service, never an apply that could create it.
    assert!(r.api.calls().iter().any(|c| matches!(c, ApiCall::Patch { manifest, .. } if manifest.contains("istio-ingressgateway"))));
    assert!(!r.api.calls().iter().any(|c| matches!(c, ApiCall::Apply { manifest, .. } if manifest.contains("name: istio-ingressgateway"))));
    let svc = r.api.object("Service", "istio-ingressgateway").unwrap();
    assert_eq!(svc["spec"]["ports"][0]["nodePort"].as_u64(), Some(30080));
    assert_eq!(svc["spec"]["ports"][1]["nodePort"].as_u64(), Some(30043));
    let pw = password_of(&r.api);
    assert_eq!(pw.len(), 32);
    assert!(pw.chars().all(|c| c.is_ascii_alphanumeric()));

    // Teardown deletes exactly the cluster that was created, with its kubeconfig.
    let env_handle = r.result.take().unwrap().unwrap();
    env_handle.teardown(false).unwrap();
    let calls = r.doubles.calls();
    let del =
        find_call(&calls, "kind", &["delete", "cluster"]).expect("kind delete cluster called");
    assert_eq!(flag(del, "--name"), Some(name.as_str()));
    assert_eq!(flag(del, "--kubeconfig"), Some(kubeconfig.as_str()));
    drop(env_handle);
    let deletes = r
        .doubles
        .calls()
        .iter()
        .filter(|(t, a)| t == "kind" && a[0] == "delete")
        .count();
    assert_eq!(deletes, 1, "teardown must run once");

    // The password went only to the API seam: not in logs, argv, or any file the run wrote.
    assert!(!r.log_text().contains(&pw));
    assert!(!std::fs::read_to_string(r.doubles.log())
        .unwrap()
        .contains(&pw));
    for (p, bytes) in files_under(r.run.temp())
        .into_iter()
        .chain(files_under(r.artifacts.path()))
    {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&pw),
            "password written to {}",
            p.display()
        );
    }
}

#[test]
fn a_failed_install_exports_logs_then_deletes_the_cluster() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let r = up(
        &suite,
        &env,
        &[(
            "MESHPROOF_DOUBLE_FAIL_ON",
            "helm upgrade --install openfaas",
        )],
        false,
        RecordingApi::default(),
        None,
    );
    let err = r.err().to_string();
    assert!(
        err.contains("exited with 1") && err.contains("failing on purpose"),
        "{err}"
    );
    let lines = r.doubles.call_lines();
    let export = lines
        .iter()
        .position(|l| l.starts_with("kind export logs"))
        .expect("logs exported");
    let delete = lines
        .iter()
        .position(|l| l.starts_with("kind delete cluster --name meshproof-istio-k8s-1-36-"))
        .expect("deleted");
    assert!(export < delete, "{lines:?}");
    let exported = files_under(r.artifacts.path());
    assert!(
        exported
            .iter()
            .any(|(p, _)| p.ends_with("kind-logs/double-export.txt")),
        "{exported:?}"
    );
    // The secrets scan of issue #13 over everything this failed run leaves: its error, its
    // log, every tool's argv, the exported logs and every file of the run's temp dir. Neither
    // the generated admin password nor the OpenFaaS Pro license appears anywhere.
    let pw = password_of(&r.api);
    let mut places: Vec<(String, Vec<u8>)> = vec![
        ("the error".into(), err.clone().into_bytes()),
        ("the log".into(), r.log_text().into_bytes()),
        ("the argv".into(), lines.join("\n").into_bytes()),
    ];
    for (p, bytes) in files_under(r.artifacts.path())
        .into_iter()
        .chain(files_under(r.run.temp()))
    {
        places.push((p.display().to_string(), bytes));
    }
    assert!(places.len() > 4, "nothing to scan: {places:?}");
    for (place, bytes) in &places {
        let text = String::from_utf8_lossy(bytes);
        for (what, secret) in [("password", pw.as_str()), ("license", TEST_LICENSE)] {
            assert!(!text.contains(secret), "the {what} leaked into {place}");
        }
    }
}

#[test]
fn the_full_suite_installs_sealed_secrets_and_flux_after_openfaas() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = catalog();
    let suite = (**c.suite("istio").unwrap()).clone();
    let env = suite.environments[0].clone();
    let r = up(&suite, &env, &[], false, RecordingApi::default(), None);
    let lines = r.doubles.call_lines();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no call with {needle:?}: {lines:#?}"))
    };
    let openfaas = pos("openfaas/openfaas");
    let sealed =
        pos("upgrade --install sealed-secrets sealed-secrets/sealed-secrets --version 2.19.1");
    let flux = pos("install --version=v2.9.4 --components=source-controller,kustomize-controller");
    assert!(openfaas < sealed && sealed < flux, "{lines:#?}");
    assert!(
        lines[sealed].contains("fullnameOverride=sealed-secrets-controller"),
        "{}",
        lines[sealed]
    );
}

/// A suite may write Flux's version as `2.9.4`; `flux install --version` refuses it without
/// the `v` (FLUX-3), so it is normalised in one place, and the CLI is held to the pin first
/// (another version downloads manifests from GitHub, another minor is refused) — issue #14.
#[test]
fn flux_is_installed_as_v_version_and_its_cli_is_held_to_the_pin() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = catalog();
    let mut suite = (**c.suite("istio").unwrap()).clone();
    suite.components.flux = Some(meshproof::scenario::Version::semver("2.9.4", true).unwrap());
    let env = suite.environments[0].clone();
    let r = up(&suite, &env, &[], false, RecordingApi::default(), None);
    let lines = r.doubles.call_lines();
    let check = lines
        .iter()
        .position(|l| l == "flux version --client")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let install = lines
        .iter()
        .position(|l| l.starts_with("flux install --version=v2.9.4 "))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let create = lines
        .iter()
        .position(|l| l.starts_with("kind create"))
        .unwrap();
    assert!(check < create && create < install, "{lines:#?}");

    let r = up(
        &suite,
        &env,
        &[("MESHPROOF_DOUBLE_FLUX_VERSION", "v2.10.0")],
        false,
        RecordingApi::default(),
        None,
    );
    let err = r.err().to_string();
    assert!(err.contains("v2.9.4") && err.contains("v2.10.0"), "{err}");
    assert!(
        !r.doubles
            .calls()
            .iter()
            .any(|(t, a)| t == "kind" && a[0] == "create"),
        "{:?}",
        r.doubles.call_lines()
    );
}

/// kind itself is held to tools.yaml before anything is created: the node images the suites pin
/// by digest were built by that release (KIND-2, KIND-9).
#[test]
fn a_wrong_kind_version_fails_before_any_cluster_is_created() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let r = up(
        &suite,
        &env,
        &[("MESHPROOF_DOUBLE_KIND_VERSION", "v0.30.0")],
        false,
        RecordingApi::default(),
        None,
    );
    let err = r.err().to_string();
    assert!(err.contains("v0.33.0") && err.contains("v0.30.0"), "{err}");
    let calls = r.doubles.calls();
    assert!(
        calls.iter().all(|(t, a)| t != "kind" || a[0] == "version"),
        "{:?}",
        r.doubles.call_lines()
    );
}

#[test]
fn a_wrong_istioctl_version_fails_before_any_cluster_is_created() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let r = up(
        &suite,
        &env,
        &[("MESHPROOF_DOUBLE_ISTIO_VERSION", "1.30.30")],
        false,
        RecordingApi::default(),
        None,
    );
    let err = r.err().to_string();
    assert!(
        err.contains("pins 1.30.3") && err.contains("1.30.30"),
        "{err}"
    );
    assert!(
        !r.doubles
            .calls()
            .iter()
            .any(|(t, a)| t == "kind" && a[0] == "create"),
        "{:?}",
        r.doubles.call_lines()
    );
}

#[test]
fn keep_cluster_skips_the_delete() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let mut r = up(&suite, &env, &[], true, RecordingApi::default(), None);
    let name = r.env().cluster_name.clone().unwrap();
    drop(r.result.take());
    assert!(
        !r.doubles
            .call_lines()
            .iter()
            .any(|l| l.starts_with("kind delete")),
        "{:?}",
        r.doubles.call_lines()
    );
    assert!(
        r.log_text()
            .contains(&format!("kind delete cluster --name {name}")),
        "{}",
        r.log_text()
    );
}

/// A local HTTP server standing in for the Gateway API release download.
fn serve_gateway_api(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/v1.5.1/standard-install.yaml",
        axum::routing::get(|| async {
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: httproutes.gateway.networking.k8s.io\n"
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[test]
fn linkerd_cli_install_applies_gateway_api_first_and_never_logs_the_manifests() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let base = serve_gateway_api(&server);
    let (suite, env) = suite_env("linkerd", "linkerd[k8s=1.36]");
    let mut r = up(
        &suite,
        &env,
        &[],
        false,
        RecordingApi::default(),
        Some(base),
    );
    let _ = r.env();
    let applied: Vec<String> = r
        .api
        .objects()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    let pos = |s: &str| {
        applied
            .iter()
            .position(|a| a == s)
            .unwrap_or_else(|| panic!("{s} not applied: {applied:?}"))
    };
    assert!(
        pos("CustomResourceDefinition/httproutes.gateway.networking.k8s.io")
            < pos("CustomResourceDefinition/servers.policy.linkerd.io")
    );
    assert!(
        pos("CustomResourceDefinition/servers.policy.linkerd.io")
            < pos("Secret/linkerd-identity-issuer")
    );
    assert!(pos("Secret/linkerd-identity-issuer") < pos("Namespace/openfaas"));
    let lines = r.doubles.call_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("linkerd check --wait 5m --kubeconfig ")),
        "{lines:?}"
    );
    let ns = r.api.object("Namespace", "openfaas").unwrap();
    assert_eq!(
        ns["metadata"]["annotations"]["linkerd.io/inject"].as_str(),
        Some("enabled")
    );
    assert_eq!(
        ns["metadata"]["annotations"]["config.linkerd.io/skip-outbound-ports"].as_str(),
        Some("4222")
    );
    let of = find_call(
        &r.doubles.calls(),
        "helm",
        &["upgrade", "--install", "openfaas"],
    )
    .unwrap()
    .clone();
    assert!(of.contains(&"gateway.nodePort=30080".to_string()), "{of:?}");
    assert!(!of.iter().any(|a| a.contains("probeFunctions")));
    // linkerd install's output (it holds the issuer key) is applied, never logged.
    assert!(
        !r.log_text().contains("DOUBLE-ISSUER-KEY"),
        "{}",
        r.log_text()
    );
    drop(r.result.take());
    assert!(r
        .doubles
        .call_lines()
        .iter()
        .any(|l| l.starts_with("kind delete cluster --name meshproof-linkerd-k8s-1-36-")));
}

#[test]
fn linkerd_helm_install_uses_generated_identity_files_and_never_shows_the_key() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let base = serve_gateway_api(&server);
    let (suite, mut env) = suite_env("linkerd", "linkerd[k8s=1.35]");
    env.mesh = match env.mesh {
        MeshSpec::Linkerd { version, .. } => MeshSpec::Linkerd {
            version,
            install: LinkerdInstall::Helm,
        },
        m => m,
    };
    let mut r = up(
        &suite,
        &env,
        &[],
        false,
        RecordingApi::default(),
        Some(base),
    );
    let _ = r.env();
    let calls = r.doubles.calls();
    let cp = find_call(
        &calls,
        "helm",
        &[
            "upgrade",
            "--install",
            "linkerd-control-plane",
            "linkerd-edge/linkerd-control-plane",
        ],
    )
    .unwrap();
    assert_eq!(flag(cp, "--version"), Some("2026.8.3"));
    assert!(find_call(
        &calls,
        "helm",
        &[
            "upgrade",
            "--install",
            "linkerd-crds",
            "linkerd-edge/linkerd-crds"
        ]
    )
    .is_some());
    let files: Vec<&str> = cp
        .iter()
        .enumerate()
        .filter(|(i, _)| *i > 0 && cp[i - 1] == "--set-file")
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(files.len(), 3, "{cp:?}");
    let mut key_pem = String::new();
    for (f, key) in files.iter().zip([
        "identityTrustAnchorsPEM=",
        "identity.issuer.tls.crtPEM=",
        "identity.issuer.tls.keyPEM=",
    ]) {
        let path = f
            .strip_prefix(key)
            .unwrap_or_else(|| panic!("{f} should start with {key}"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{path}"
        );
        assert!(path.starts_with(r.run.temp().to_str().unwrap()));
        if key.contains("keyPEM") {
            key_pem = std::fs::read_to_string(path).unwrap();
        }
    }
    assert!(key_pem.contains("PRIVATE KEY"));
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!r.log_text().contains(&key_body[..40]));
    assert!(!std::fs::read_to_string(r.doubles.log())
        .unwrap()
        .contains(&key_body[..40]));
    drop(r.result.take());
}

/// An environment on an existing cluster (the kubeconfig only needs to exist: the API is the
/// recording double), reusing `reuse`.
fn existing_env(
    suite: &Suite,
    kubeconfig: &Path,
    reuse: &[meshproof::scenario::StackComponent],
) -> EnvironmentSpec {
    EnvironmentSpec {
        name: "existing".into(),
        cluster: meshproof::scenario::ClusterSpec::Existing {
            kubeconfig: Some(kubeconfig.to_path_buf()),
            context: Some("ctx".into()),
            reuse: reuse.iter().copied().collect(),
        },
        mesh: suite.mesh.clone(),
    }
}

/// Issue #13: on an existing cluster, a component already there stops the run before it
/// changes anything (the old code applied injection labels to the user's `openfaas` namespace,
/// force-applied `basic-auth` over their password and `helm upgrade --install`ed over their
/// release), and the error names what was found and how to opt in.
#[test]
fn an_existing_cluster_with_a_component_already_there_is_refused_before_anything_changes() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (mut suite, _) = suite_env("istio", "istio[k8s=1.36]");
    suite.components.cert_manager = None;
    let kcfg = tempfile::NamedTempFile::new().unwrap();
    let env = existing_env(&suite, kcfg.path(), &[]);
    let api = RecordingApi {
        present: vec!["openfaas".into(), "openfaas-fn".into()],
        ..Default::default()
    };
    let mut r = up(&suite, &env, &[], false, api, None);
    let err = match r.result.take().unwrap() {
        Ok(_) => panic!("a cluster with OpenFaaS must be refused"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("OpenFaaS (found Namespace openfaas, Namespace openfaas-fn)"),
        "{err}"
    );
    assert!(err.contains("cluster.reuse: [openfaas]"), "{err}");
    // Nothing changed: no apply, create, patch or cleanup; only the CLI version checks ran.
    let changes: Vec<ApiCall> = r
        .api
        .calls()
        .into_iter()
        .filter(|c| !matches!(c, ApiCall::Cleanup { .. }))
        .collect();
    assert!(changes.is_empty(), "{changes:?}");
    let lines = r.doubles.call_lines();
    assert!(
        lines.iter().all(|l| l.starts_with("istioctl version")),
        "{lines:?}"
    );
}

/// A component the suite lets the run reuse is used as found (not installed, not changed, not
/// uninstalled); everything the run installs is uninstalled on teardown, newest first, with the
/// suite's kubeconfig and context, before the labelled cleanup; the stack's applies label what
/// they create; the cluster itself is never deleted.
#[test]
fn a_reused_component_is_left_alone_and_what_the_run_installed_is_uninstalled() {
    use meshproof::scenario::StackComponent;
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let c = catalog();
    let mut suite = (**c.suite("istio").unwrap()).clone();
    suite.components.cert_manager = None;
    let kcfg = tempfile::NamedTempFile::new().unwrap();
    let env = existing_env(
        &suite,
        kcfg.path(),
        &[StackComponent::Istio, StackComponent::Flux],
    );
    let api = RecordingApi {
        // Istio is there (reused); Flux is listed for reuse but absent: installed.
        present: vec!["istio-system".into()],
        ..Default::default()
    };
    let mut r = up(
        &suite,
        &env,
        &[("MESHPROOF_DOUBLE_FLUX_VERSION", "v2.9.4")],
        false,
        api,
        None,
    );
    let e = r.env();
    assert!(e
        .installed
        .iter()
        .any(|i| i.component == "Istio" && i.reused));
    assert!(e
        .installed
        .iter()
        .any(|i| i.component == "OpenFaaS" && !i.reused));
    let calls = r.doubles.calls();
    assert!(
        find_call(&calls, "istioctl", &["install"]).is_none(),
        "reused Istio is not installed over: {:?}",
        r.doubles.call_lines()
    );
    let applied_with: Vec<Option<String>> = r
        .api
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            ApiCall::Apply { run_id, .. } => Some(run_id),
            _ => None,
        })
        .collect();
    assert!(
        applied_with
            .iter()
            .all(|id| id.as_deref() == Some(r.run.run_id.as_str())),
        "{applied_with:?}"
    );
    let before = r.doubles.calls().len();
    drop(r.result.take());
    let teardown: Vec<String> = r.doubles.call_lines()[before..].to_vec();
    assert!(
        !teardown.iter().any(|l| l.starts_with("kind ")),
        "{teardown:?}"
    );
    assert!(
        !teardown.iter().any(|l| l.starts_with("istioctl uninstall")),
        "a reused Istio is never uninstalled: {teardown:?}"
    );
    let pos = |prefix: &str| {
        teardown
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {teardown:?}"))
    };
    let flux = pos("flux uninstall --silent");
    let sealed = pos("helm uninstall sealed-secrets --namespace kube-system --ignore-not-found");
    let openfaas = pos("helm uninstall openfaas --namespace openfaas --ignore-not-found");
    assert!(
        flux < sealed && sealed < openfaas,
        "newest first: {teardown:?}"
    );
    let teardown_calls = r.doubles.calls();
    let of = find_call(&teardown_calls, "helm", &["uninstall", "openfaas"]).unwrap();
    assert_eq!(flag(of, "--kube-context"), Some("ctx"));
    assert_eq!(flag(of, "--kubeconfig"), kcfg.path().to_str());
    let fl = find_call(&teardown_calls, "flux", &["uninstall"]).unwrap();
    assert_eq!(flag(fl, "--context"), Some("ctx"));
    // sealed-secrets: its keys and its CRD (which the chart keeps) go too; then the labelled
    // cleanup, last.
    let api_calls = r.api.calls();
    let keys = api_calls
        .iter()
        .position(|c| matches!(c, ApiCall::DeleteSelected { selection, .. } if selection.selector == "sealedsecrets.bitnami.com/sealed-secrets-key" && selection.namespace == "kube-system"))
        .expect("sealing keys deleted");
    let crd = api_calls
        .iter()
        .position(|c| matches!(c, ApiCall::Delete { manifest, .. } if manifest.contains("sealedsecrets.bitnami.com")))
        .expect("the SealedSecret CRD deleted");
    let cleanup = api_calls
        .iter()
        .position(|c| matches!(c, ApiCall::Cleanup { .. }))
        .expect("labelled cleanup");
    assert!(keys < cleanup && crd < cleanup, "{api_calls:?}");
}

/// A failed uninstall on an existing cluster is a failed teardown (reported, with the step that
/// failed), and the labelled cleanup still runs.
#[test]
fn a_failed_uninstall_fails_the_teardown_and_cleanup_still_runs() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (mut suite, _) = suite_env("istio", "istio[k8s=1.36]");
    suite.components.cert_manager = None;
    let kcfg = tempfile::NamedTempFile::new().unwrap();
    let env = existing_env(&suite, kcfg.path(), &[]);
    let mut r = up(
        &suite,
        &env,
        &[("MESHPROOF_DOUBLE_FAIL_ON", "helm uninstall openfaas")],
        false,
        RecordingApi::default(),
        None,
    );
    let e = r.result.take().unwrap().expect("installs");
    let err = e.teardown(false).expect_err("the uninstall failed");
    assert!(err.contains("OpenFaaS ($ helm uninstall openfaas"), "{err}");
    assert!(
        r.api
            .calls()
            .iter()
            .any(|c| matches!(c, ApiCall::Cleanup { .. })),
        "cleanup runs after a failed uninstall"
    );
    assert!(
        r.doubles
            .call_lines()
            .iter()
            .any(|l| l.starts_with("istioctl uninstall --purge -y")),
        "every uninstall is attempted"
    );
    assert_eq!(
        e.teardown(false),
        Err(err),
        "a failed teardown stays failed"
    );
}

#[test]
fn the_commands_a_run_executes_are_exactly_the_planned_ones() {
    use meshproof::stack::actions::Action;
    use meshproof::stack::install::{self, InstallCtx, Secrets};
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.35]");
    let mut r = up(&suite, &env, &[], false, RecordingApi::default(), None);
    let target = r.env().target.clone();
    let work_dir = r
        .run
        .temp()
        .join(meshproof::stack::names::sanitize(&env.name));
    let secrets = Secrets::placeholder();
    let ctx = InstallCtx {
        suite: &suite,
        env: &env,
        target: &target,
        run_id: r.run.run_id.as_str(),
        work_dir: &work_dir,
        secrets: &secrets,
        gateway_api_base: "unused",
    };
    let planned: Vec<(String, Vec<String>)> = install::plans(&ctx)
        .iter()
        .flat_map(|p| p.actions.clone())
        .filter_map(|a| match a {
            Action::Run { cmd }
            | Action::CheckVersion { cmd, .. }
            | Action::ApplyOutput { cmd } => Some((cmd.program().to_string(), cmd.argv())),
            _ => None,
        })
        .collect();
    let ran: Vec<(String, Vec<String>)> = r
        .doubles
        .calls()
        .into_iter()
        .filter(|(t, _)| t != "kind")
        .collect();
    assert_eq!(ran, planned);
    drop(r.result.take());
}

#[test]
fn pro_edition_applies_the_license_secret_and_never_logs_it() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (mut suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let lic_dir = tempfile::tempdir().unwrap();
    let lic_path = lic_dir.path().join("license");
    let license = "eyJhbGciOiJSUzI1NiJ9.meshproof-test-license-value.c2lnbmF0dXJl";
    std::fs::write(&lic_path, format!("{license}\n")).unwrap();
    suite.openfaas.edition = meshproof::scenario::Edition::Pro {
        license_file: Some(lic_path),
    };
    let mut r = up(&suite, &env, &[], false, RecordingApi::default(), None);
    let _ = r.env();
    let s = r
        .api
        .object("Secret", "openfaas-license")
        .expect("license secret");
    assert_eq!(s["stringData"]["license"].as_str(), Some(license));
    assert_eq!(s["metadata"]["namespace"].as_str(), Some("openfaas"));
    let of = find_call(
        &r.doubles.calls(),
        "helm",
        &["upgrade", "--install", "openfaas"],
    )
    .unwrap()
    .clone();
    assert!(
        of.contains(&"openfaasPro=true".to_string())
            && of.contains(&"operator.create=true".to_string()),
        "{of:?}"
    );
    assert!(!r.log_text().contains(license));
    assert!(!std::fs::read_to_string(r.doubles.log())
        .unwrap()
        .contains(license));
    drop(r.result.take());
}

#[test]
fn a_taken_host_port_is_explained() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let msg =
        "Error response from daemon: Bind for 127.0.0.1:30080 failed: port is already allocated";
    let r = up(
        &suite,
        &env,
        &[
            ("MESHPROOF_DOUBLE_FAIL_ON", "kind create"),
            ("MESHPROOF_DOUBLE_FAIL_MSG", msg),
        ],
        false,
        RecordingApi::default(),
        None,
    );
    let err = r.err().to_string();
    assert!(
        err.contains("host port 30080 or 30043 on 127.0.0.1 is taken"),
        "{err}"
    );
    assert!(r
        .doubles
        .call_lines()
        .iter()
        .any(|l| l.starts_with("kind delete cluster")));
}

/// A profile without the ingress gateway (`minimal`) must fail at the NodePort change, naming
/// the missing Service — before, an apply created an empty, selector-less Service of that name
/// and the TLS trial later failed for no visible reason.
#[test]
fn a_missing_ingress_gateway_service_fails_the_install_instead_of_being_created() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let api = RecordingApi {
        missing: vec!["istio-ingressgateway".into()],
        ..RecordingApi::default()
    };
    let mut r = up(&suite, &env, &[], false, api, None);
    let err = match r.result.take().unwrap() {
        Ok(_) => panic!("the install went on without the ingress gateway"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("istio-ingressgateway") && err.contains("does not exist"),
        "{err}"
    );
    assert!(
        r.api.object("Service", "istio-ingressgateway").is_some(),
        "the patch was attempted"
    );
    assert!(!r.api.calls().iter().any(|c| matches!(c, ApiCall::Apply { manifest, .. } if manifest.contains("name: istio-ingressgateway"))));
}

/// `linkerd install` refuses a cluster that already has `linkerd-config` (a kept cluster, an
/// existing one: ledger LD-3): there the CLI's upgrade renders the manifests instead, and
/// `install` is never called.
#[test]
fn a_cluster_with_linkerd_already_gets_linkerd_upgrade_not_install() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let base = serve_gateway_api(&server);
    let (suite, env) = suite_env("linkerd", "linkerd[k8s=1.36]");
    let api = RecordingApi {
        present: vec!["linkerd-config".into()],
        ..RecordingApi::default()
    };
    let mut r = up(&suite, &env, &[], false, api, Some(base.clone()));
    let _ = r.env();
    let lines = r.doubles.call_lines();
    let linkerd: Vec<&String> = lines.iter().filter(|l| l.starts_with("linkerd ")).collect();
    assert!(
        linkerd
            .iter()
            .any(|l| l.starts_with("linkerd upgrade --crds --set installGatewayAPI=false "))
            && linkerd
                .iter()
                .any(|l| l.starts_with("linkerd upgrade --kubeconfig ")),
        "{linkerd:?}"
    );
    assert!(
        !linkerd.iter().any(|l| l.starts_with("linkerd install")),
        "{linkerd:?}"
    );
    assert!(
        r.api.object("Secret", "linkerd-identity-issuer").is_some(),
        "the upgrade's output is applied"
    );
    drop(r.result.take());
    // A fresh cluster: install, never upgrade.
    let (suite, env) = suite_env("linkerd", "linkerd[k8s=1.36]");
    let mut r = up(
        &suite,
        &env,
        &[],
        false,
        RecordingApi::default(),
        Some(base),
    );
    let _ = r.env();
    let lines = r.doubles.call_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("linkerd install --crds")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("linkerd upgrade")),
        "{lines:?}"
    );
    drop(r.result.take());
}

/// A failed install whose teardown fails too says both: the teardown's failure (a cluster may be
/// left) is no longer dropped; and a guard whose teardown failed keeps answering that it failed.
#[test]
fn a_failed_teardown_after_a_failed_install_is_reported_and_stays_failed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let r = up(
        &suite,
        &env,
        &[(
            "MESHPROOF_DOUBLE_FAIL_ON",
            "helm upgrade --install openfaas|kind delete",
        )],
        false,
        RecordingApi::default(),
        None,
    );
    let err = r.err();
    assert!(err.teardown_failure().is_some(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("failing on purpose (helm upgrade --install openfaas)")
            && text.contains("tearing down what was made failed too")
            && text.contains("failing on purpose (kind delete)"),
        "{text}"
    );

    // A guard that failed once answers with the failure, not Ok, to every later caller.
    let r = up(
        &suite,
        &env,
        &[("MESHPROOF_DOUBLE_FAIL_ON", "kind delete")],
        false,
        RecordingApi::default(),
        None,
    );
    let e = r.env();
    let first = e.teardown(false).expect_err("the delete fails");
    let again = e.teardown(false).expect_err("still failed");
    assert_eq!(first, again);
}

/// kind refuses a name that is taken before it provisions anything (CONTRACTS.md KIND-4): that
/// cluster is somebody else's, and meshproof must not delete it.
#[test]
fn a_cluster_name_that_is_taken_is_never_deleted() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let r = up(
        &suite,
        &env,
        &[
            ("MESHPROOF_DOUBLE_FAIL_ON", "kind create"),
            (
                "MESHPROOF_DOUBLE_FAIL_MSG",
                "ERROR: failed to create cluster: node(s) already exist for a cluster with the name \"x\"",
            ),
        ],
        false,
        RecordingApi::default(),
        None,
    );
    let err = r.err().to_string();
    assert!(err.contains("was not created by this run"), "{err}");
    let lines = r.doubles.call_lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("kind delete")),
        "{lines:?}"
    );
}

/// `kind create --wait` returns success when the control plane is not Ready (CONTRACTS.md
/// KIND-3): the run asks the API, fails with the node's state, and deletes the cluster.
#[test]
fn a_node_that_is_not_ready_after_create_fails_with_its_state() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let api = RecordingApi {
        nodes_not_ready: Some(
            "node meshproof-control-plane: Ready=False (container runtime network not ready)"
                .into(),
        ),
        ..RecordingApi::default()
    };
    let r = up(&suite, &env, &[], false, api, None);
    let err = r.err().to_string();
    assert!(
        err.contains("the node is not Ready")
            && err.contains("Ready=False (container runtime network not ready)"),
        "{err}"
    );
    let lines = r.doubles.call_lines();
    assert!(
        !lines.iter().any(|l| l.starts_with("istioctl install")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("kind delete cluster")),
        "{lines:?}"
    );
}

/// A stale `<kubeconfig>.lock` (a kind killed mid-create) would make the delete fail after it
/// removed the nodes (CONTRACTS.md KIND-5): the teardown clears it first.
#[test]
fn a_stale_kubeconfig_lock_does_not_fail_the_teardown() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (suite, env) = suite_env("istio", "istio[k8s=1.36]");
    let mut r = up(&suite, &env, &[], false, RecordingApi::default(), None);
    let e = r.result.take().unwrap().unwrap();
    let lock = meshproof::reaper::kubeconfig_lock(&e.target.kubeconfig);
    std::fs::write(&lock, "").unwrap();
    e.teardown(false).expect("the stale lock is cleared");
    assert!(!lock.exists());
}
