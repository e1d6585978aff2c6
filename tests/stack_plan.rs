//! `meshproof plan` prints every provisioning and install step with the exact commands and
//! chart values.

use std::path::Path;
use std::process::Command;

fn plan(suite: &str) -> String {
    plan_with(&[suite])
}

fn plan_with(args: &[&str]) -> String {
    plan_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// `meshproof plan ARGS…` on the project at `root`; the plan must succeed.
fn plan_in(root: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .arg("plan")
        .args(args)
        .current_dir(root)
        .env("MESHPROOF_PROJECT_DIR", root)
        .env_remove("MESHPROOF_MIRROR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "plan lacks {needle:?}:\n{text}");
}

#[test]
fn istio_plan_shows_exact_commands_and_values() {
    let p = plan("suites/istio.yaml");
    assert_has(&p, "$ kind create cluster --name meshproof-istio-k8s-1-35-xxxxxx --config '<run-dir>/istio-k8s-1-35/kind-config.yaml' --kubeconfig '<run-dir>/istio-k8s-1-35/kubeconfig' --wait 120s");
    assert_has(
        &p,
        "image: kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
    );
    assert_has(&p, "listenAddress: 127.0.0.1");
    // kind is held to tools.yaml before any cluster exists (KIND-9).
    assert_has(
        &p,
        "$ kind version   # must report v0.33.0 (tools.yaml), before any cluster exists",
    );
    assert_has(
        &p,
        "$ istioctl version --remote=false   # must report 1.30.3",
    );
    assert_has(&p, "$ istioctl install -y --set profile=default --set values.gateways.istio-ingressgateway.type=NodePort --set meshConfig.defaultConfig.holdApplicationUntilProxyStarts=true --kubeconfig");
    // The NodePorts change the installer's Service; its absence is an error, not a new Service.
    assert_has(&p, "server-side apply to the existing Service istio-system/istio-ingressgateway NodePorts http2→30080 https→30043 (an error if it is missing):");
    assert_has(
        &p,
        "$ helm upgrade --install openfaas openfaas/openfaas --version 15.0.6 --namespace openfaas",
    );
    // The Istio suite runs OpenFaaS Pro (CE's pod-IP calls bypass the sidecars' routes and
    // mTLS, ledger OF-3/IS-8); its license is named, never shown.
    assert_has(&p, "--set openfaasPro=true");
    assert_has(&p, "--set operator.create=true");
    assert_has(&p, "--set gateway.directFunctions=true");
    assert_has(&p, "--set gateway.probeFunctions=true");
    assert_has(&p, "Pro edition: the gateway calls each function's Service");
    // Where canary traffic comes from: a meshed client calling the Service, then the gateway.
    assert_has(
        &p,
        "check canary — traffic from a meshed client pod in openfaas-fn",
    );
    assert_has(
        &p,
        "then the same through the gateway (OpenFaaS Pro calls the Service)",
    );
    assert_has(&p, "OpenFaaS Pro license from $OPENFAAS_LICENSE_FILE");
    assert_has(
        &p,
        "Secret openfaas/openfaas-license (key license, from $OPENFAAS_LICENSE_FILE)",
    );
    assert_has(&p, "chart value generateBasicAuth=false");
    assert_has(&p, "istio-injection: enabled");
    assert_has(
        &p,
        "$ helm upgrade --install cert-manager jetstack/cert-manager --version v1.21.1 --namespace cert-manager",
    );
    assert_has(&p, "$ helm upgrade --install sealed-secrets sealed-secrets/sealed-secrets --version 2.19.1 --namespace kube-system");
    // The project moved to the bitnami organisation; so did its chart repository (SS-1).
    assert_has(
        &p,
        "$ helm repo add sealed-secrets https://bitnami.github.io/sealed-secrets --force-update",
    );
    assert_has(&p, "--set fullnameOverride=sealed-secrets-controller");
    assert_has(
        &p,
        "$ flux install --version=v2.9.4 --components=source-controller,kustomize-controller",
    );
    assert!(!p.contains("not yet implemented"), "{p}");
    assert_has(
        &p,
        "$ kind delete cluster --name meshproof-istio-k8s-1-35-xxxxxx --kubeconfig",
    );
    assert!(!p.contains("istio.mtls"));
    // The basic-auth secret is announced, never shown.
    assert_has(&p, "Secret openfaas/basic-auth");
    assert!(!p.contains("basic-auth-password:"), "{p}");
}

#[test]
fn linkerd_plan_shows_gateway_api_then_linkerd_with_namespace_settings() {
    let p = plan("suites/linkerd.yaml");
    assert_has(
        &p,
        "$ kind create cluster --name meshproof-linkerd-k8s-1-36-xxxxxx",
    );
    let gw = p.find("server-side apply https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.5.1/standard-install.yaml").expect(&p);
    let crds = p
        .find("$ linkerd install --crds --set installGatewayAPI=false --kubeconfig")
        .expect(&p);
    let cp = p.find("$ linkerd install --kubeconfig").expect(&p);
    let check = p.find("$ linkerd check --wait 5m").expect(&p);
    assert!(gw < crds && crds < cp && cp < check);
    assert_has(
        &p,
        "$ linkerd version --client --short   # must report edge-26.8.3",
    );
    // A cluster that has Linkerd already is upgraded (install would refuse it).
    assert_has(&p, "if ConfigMap linkerd/linkerd-config exists (Linkerd is installed already; upgrading it to the pinned release):");
    assert_has(
        &p,
        "$ linkerd upgrade --crds --set installGatewayAPI=false --kubeconfig",
    );
    assert_has(&p, "linkerd.io/inject: enabled");
    assert_has(&p, "config.linkerd.io/skip-inbound-ports: '4222'");
    assert_has(&p, "config.linkerd.io/skip-outbound-ports: '4222'");
    assert_has(&p, "--set gateway.nodePort=30080");
    // CE: the gateway ignores directFunctions (ledger OF-3), so meshproof does not pretend.
    assert!(!p.contains("directFunctions"), "{p}");
    assert_has(
        &p,
        "CE edition: the gateway hands invocations to faas-netes, which calls a function pod by IP",
    );
    assert_has(
        &p,
        "check canary — traffic from a meshed client pod in openfaas-fn",
    );
    assert_has(
        &p,
        "not through the gateway: OpenFaaS CE's gateway calls pod IPs",
    );
    // Linkerd has no ingress: Traefik serves the TLS scenario, on the https host port only.
    let openfaas = p.find("openfaas/openfaas --version 15.0.6").expect(&p);
    let traefik = p
        .find(
            "$ helm upgrade --install traefik traefik/traefik --version 41.3.0 --namespace traefik",
        )
        .expect(&p);
    assert!(openfaas < traefik);
    assert_has(&p, "--set ports.websecure.nodePort=30043");
    // Since chart 40.0.0 the Service type is `service.spec.type`; `service.type` would be
    // silently ignored and leave a LoadBalancer that kind never serves (TR-2).
    assert_has(&p, "--set service.spec.type=NodePort");
    assert!(!p.contains("--set service.type="), "{p}");
    // The chart's CRDs are not installed: nothing uses them (TR-5).
    assert_has(
        &p,
        "--set providers.kubernetesCRD.enabled=false --skip-crds",
    );
    assert!(
        !p.contains("ports.web.nodePort"),
        "the http NodePort belongs to the OpenFaaS gateway"
    );
}

#[test]
fn run_needs_an_environment_when_the_suite_has_a_matrix() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(["run", "istio"])
        .current_dir(root)
        .env("MESHPROOF_PROJECT_DIR", root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pick one with --env") && err.contains("istio[k8s=1.35]"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(["run", "istio", "--env", "istio[k8s=9.99]"])
        .current_dir(root)
        .env("MESHPROOF_PROJECT_DIR", root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no environment \"istio[k8s=9.99]\""));
}

/// `meshproof plan istio | head`: the reader goes away after a line; the plan ends quietly
/// (141, like a shell tool killed by SIGPIPE) instead of panicking with 101.
#[test]
fn a_closed_pipe_ends_the_plan_quietly() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(["plan", "istio"])
        .current_dir(root)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The reader is gone before the plan writes anything: every write meets a closed pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `--env` narrows the plan to one cell (with its dedicated environments) and `--summary`
/// keeps one line per step and each trial's negative controls; an unknown cell names the
/// known ones.
#[test]
fn one_cell_in_summary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_meshproof"))
            .args(args)
            .current_dir(root)
            .env("MESHPROOF_PROJECT_DIR", root)
            .output()
            .unwrap()
    };
    let out = run(&["plan", "istio", "--env", "istio[k8s=1.36]", "--summary"]);
    assert!(out.status.success());
    let p = String::from_utf8(out.stdout).unwrap();
    let envs: Vec<&str> = p.lines().filter(|l| l.starts_with("== ")).collect();
    assert_eq!(
        envs,
        [
            "== environment istio[k8s=1.36] (4 trial(s))",
            "== environment istio[k8s=1.36]::restore (1 trial(s))"
        ]
    );
    assert_has(&p, "[install] install Istio 1.30.3");
    assert_has(&p, "check mtls — negative control first");
    assert!(
        !p.contains("$ kind create"),
        "commands stay out of the summary"
    );
    assert!(p.lines().count() < 60, "{p}");
    let out = run(&["plan", "istio", "--env", "istio[k8s=9.99]"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no environment \"istio[k8s=9.99]\"") && err.contains("istio[k8s=1.36]"),
        "{err}"
    );
}

/// An Istio suite with `dataPlane: ambient`: Gateway API CRDs before Istio, istioctl's ambient
/// profile without the sidecar and ingress settings, namespaces enrolled by label (never
/// injected); its trials are no longer stopped at preflight (the ambient checks are built).
#[test]
fn ambient_plan_enrols_namespaces_and_runs_the_trials() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("suites")).unwrap();
    std::fs::create_dir_all(dir.path().join("scenarios")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("tests/fixtures/invalid/suite-ce-under-istio-sidecars/c.yaml"),
        dir.path().join("scenarios/c.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("suites/amb.yaml"),
        "kind: Suite\nname: amb\ncluster:\n  provider: kind\n  nodeImage: kindest/node:v1.34.0@sha256:7416a61b42b1662ca6ca89f02028ac133a309a2a30ba309614e8ec94d976dc5a\nmesh:\n  name: istio\n  version: 1.30.3\n  dataPlane: ambient\nopenfaas:\n  chart: 15.0.6\n  edition: ce\ncomponents:\n  gatewayApi: { version: v1.4.0 }\nscenarios: [c]\n",
    )
    .unwrap();
    let p = plan_in(dir.path(), &["amb"]);
    assert!(!p.contains("not built"), "{p}");
    assert_has(
        &p,
        "$ istioctl install -y --set profile=ambient --kubeconfig",
    );
    assert!(!p.contains("holdApplicationUntilProxyStarts"), "{p}");
    assert!(!p.contains("istio-ingressgateway"), "{p}");
    assert!(!p.contains("istio-injection"), "{p}");
    assert_has(&p, "istio.io/dataplane-mode: ambient");
    let gw = p
        .find("install Gateway API CRDs v1.4.0")
        .expect("Gateway API CRDs");
    let istio = p.find("install Istio 1.30.3").expect("Istio");
    assert!(gw < istio, "Gateway API CRDs go in first:\n{p}");
}

/// With `--mirror`, the plan shows each mirror, the probe, every node's hosts.toml and the kind
/// config's patch and mount (ledger CTD-1…CTD-6); without it, that nodes pull directly.
#[test]
fn plan_shows_the_mirror_and_each_nodes_registry_config() {
    let p = plan_with(&[
        "linkerd",
        "--env",
        "linkerd[k8s=1.36]",
        "--mirror",
        "https://mirror.corp.example",
        "--mirror",
        "docker.io=http://hub-cache:5000",
    ]);
    assert_has(&p, "registry mirror: docker.io → mirror http://hub-cache:5000 (then https://registry-1.docker.io)");
    assert_has(
        &p,
        "registry mirror: every other registry → mirror https://mirror.corp.example",
    );
    assert_has(&p, "GET http://hub-cache:5000/v2/ must answer within 10s");
    assert_has(&p, "write <run-dir>/linkerd-k8s-1-36/containerd-certs.d/docker.io/hosts.toml (mounted read-only at /etc/containerd/certs.d/docker.io in every node):");
    assert_has(&p, "    server = \"https://registry-1.docker.io\"");
    assert_has(&p, "    [host.\"http://hub-cache:5000\"]");
    assert_has(&p, "containerd-certs.d/_default/hosts.toml");
    assert_has(&p, "containerdConfigPatches:");
    assert_has(&p, "config_path = \"/etc/containerd/certs.d\"");
    assert_has(&p, "containerPath: /etc/containerd/certs.d");
    assert_has(
        &p,
        "hostPath: <run-dir>/linkerd-k8s-1-36/containerd-certs.d",
    );

    // Local mirrors: one container per upstream, named with the run id, on kind's network;
    // the nodes' hosts.toml names each container; no probe from this machine.
    let local = plan_with(&["linkerd", "--env", "linkerd[k8s=1.36]", "--mirror", "local"]);
    assert_has(&local, "registry mirror: cr.l5d.io → local mirror container meshproof-mirror-xxxxxx-cr-l5d-io (image docker.io/library/registry:3.0.0, on Docker network kind, nodes use http://meshproof-mirror-xxxxxx-cr-l5d-io:5000; then https://cr.l5d.io; removed at the end of the run)");
    assert_has(&local, "$ docker create --name meshproof-mirror-xxxxxx-docker-io --label io.meshproof.mirror.config-sha256=");
    assert_has(
        &local,
        "docker.io/library/registry:3.0.0 serve /etc/distribution/config.yml",
    );
    assert_has(&local, "$ docker cp '<run-dir>/mirror-configs/docker-io.yml' meshproof-mirror-xxxxxx-docker-io:/etc/distribution/config.yml");
    assert_has(
        &local,
        "    [host.\"http://meshproof-mirror-xxxxxx-ghcr-io:5000\"]",
    );
    assert_has(&local, "    server = \"https://ghcr.io\"");
    assert!(!local.contains("must answer within"), "{local}");
    let keep = plan_with(&["linkerd", "--env", "linkerd[k8s=1.36]", "--mirror", "keep"]);
    assert_has(
        &keep,
        "kept across runs, cache in volume meshproof-mirror-quay-io-cache",
    );
    assert_has(
        &keep,
        "another configuration stops the run (`docker rm -f meshproof-mirror-quay-io`)",
    );

    let off = plan_with(&["linkerd", "--env", "linkerd[k8s=1.36]", "--mirror", "off"]);
    assert_has(&off, "registry mirror: no registry mirror");
    assert!(!off.contains("containerdConfigPatches"), "{off}");

    // Nothing asked for: local mirrors by default, which fall back to direct pulls when they
    // cannot start (issue #17).
    let default = plan_with(&["linkerd", "--env", "linkerd[k8s=1.36]"]);
    assert_has(
        &default,
        "removed at the end of the run (--mirror local); the default: if they cannot start, nodes pull from each registry directly",
    );
    assert_has(
        &default,
        "    [host.\"http://meshproof-mirror-xxxxxx-ghcr-io:5000\"]",
    );
    assert_has(&default, "containerdConfigPatches:");

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bad = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(["plan", "linkerd", "--mirror", "ftp://x"])
        .current_dir(root)
        .env("MESHPROOF_PROJECT_DIR", root)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--mirror \"ftp://x\""));
}

/// The shipped ambient suite's plan (issue #15): each trial takes the `istioAmbient` variant of
/// its manifests, never the sidecar one — enrolment by label, the L4 policies ztunnel enforces,
/// the waypoints with the Services sent through them, the waypoint's L7 policy, the Gateway API
/// ingress — and every negative control is spelled out before its check.
#[test]
fn the_ambient_suite_plans_its_own_manifests_waypoints_policies_and_controls() {
    let p = plan_with(&["istio-ambient", "--env", "istio-ambient[k8s=1.36]"]);
    // Enrolment, and the trials stopped at preflight until the ambient checks exist.
    assert_has(&p, "istio.io/dataplane-mode: ambient");
    assert!(!p.contains("not built"), "{p}");
    // The sidecar variants are never used on ambient.
    for sidecar in [
        "manifests/mtls/istio.yaml",
        "manifests/deny/istio.yaml",
        "manifests/canary/istio.yaml",
        "manifests/tls/istio.yaml",
        "VirtualService",
    ] {
        assert!(!p.contains(sidecar), "{sidecar} in the ambient plan:\n{p}");
    }
    assert_has(
        &p,
        "apply manifests/mtls/istio-ambient.yaml (PeerAuthentication/default)",
    );
    assert_has(&p, "apply policy manifests/deny/istio-ambient.yaml (AuthorizationPolicy/functions-from-gateway-only, AuthorizationPolicy/deny-from-functions)");
    assert_has(&p, "apply manifests/canary/istio-ambient.yaml (Gateway/waypoint, Service/env, HTTPRoute/env-canary-split)");
    assert_has(
        &p,
        "apply manifests/deny-waypoint/waypoint.yaml (Gateway/waypoint, Service/env2)",
    );
    assert_has(&p, "apply policy manifests/deny-waypoint/policy.yaml (AuthorizationPolicy/env2-no-admin-paths)");
    assert_has(&p, "apply manifests/tls/istio-ambient.yaml (Certificate/faas-ingress, ConfigMap/faas-ingress-params, Gateway/faas-ingress, HTTPRoute/faas-ingress)");
    // The waits: Linkerd's is skipped, the waypoint's and the route's are taken.
    assert_has(&p, "(no wait on istio-ambient: this wait is for linkerd)");
    assert_has(
        &p,
        "wait until deployment/waypoint in openfaas-fn is rolled out",
    );
    assert_has(&p, "wait until httproute.gateway.networking.k8s.io/env-canary-split in openfaas-fn is condition Accepted=True");
    // Who answers each denial, and the negative controls before it.
    assert_has(&p, "function-to-function http://env2.openfaas-fn:8080/ from the probe pod must be Denied within 10s (enforced by the destination's ztunnel");
    assert_has(&p, "function-to-function-denied-path http://env2.openfaas-fn:8080/meshproof-admin from the probe pod must be Denied within 10s (enforced by the waypoint");
    let control = p
        .find("negative control, before the policy: function-to-function-denied-path")
        .expect("the waypoint's negative control");
    let policy = p
        .find("apply policy manifests/deny-waypoint/policy.yaml")
        .expect("the waypoint's policy");
    assert!(control < policy, "{p}");
    assert_has(&p, "unmeshed (label istio.io/dataplane-mode=none)");
    assert_has(&p, "port 15008, ztunnel's HBONE inbound");
    // The trials: the ambient-only scenario too.
    for t in ["canary", "deny", "deny-waypoint", "mtls", "tls", "restore"] {
        assert_has(&p, &format!("istio-ambient[k8s=1.36]::{t}"));
    }
}

/// The sidecar suite never takes an ambient variant, runs no ambient-only scenario and skips
/// the ambient-only waits.
#[test]
fn the_sidecar_suite_never_takes_ambient_manifests() {
    let p = plan_with(&["istio", "--env", "istio[k8s=1.36]"]);
    assert!(!p.contains("istio-ambient.yaml"), "{p}");
    assert!(!p.contains("deny-waypoint"), "{p}");
    assert_has(&p, "(no wait on istio: this wait is for istio-ambient)");
    assert_has(
        &p,
        "apply manifests/canary/istio.yaml (VirtualService/env-canary-split)",
    );
}
