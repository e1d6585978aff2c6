//! The e2e `Session` provisions an environment on its first trial, shares it with the next, and
//! tears down what it created — at `teardown()`, and when dropped during a panic.

mod doubles;

use doubles::{Doubles, RecordingApi};
use meshproof::plan;
use meshproof::run::{RunError, Session};
use meshproof::stack::StackOptions;
use std::path::Path;
use std::sync::{Arc, Mutex};

static SERIAL: Mutex<()> = Mutex::new(());

/// The istio suite's environments, without sealed-secrets and Flux (not exercised here).
fn envs() -> Vec<plan::EnvPlan> {
    let mut c =
        meshproof::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    c.suites.retain(|s| s.name.as_str() == "istio");
    for s in &mut c.suites {
        let s = Arc::make_mut(s);
        s.components.flux = None;
        s.components.sealed_secrets = None;
        // The session's lifecycle is what is tested here, not the edition: CE needs no license.
        s.openfaas.edition = meshproof::scenario::Edition::Ce;
        // Pinned, so that provisioning asks no registry (the cluster here is a double anyway).
        s.images.function = meshproof::images::ImageRef::parse(&format!(
            "ghcr.io/openfaas/alpine:latest@sha256:{}",
            "0".repeat(64)
        ))
        .unwrap();
    }
    plan::expand(&c)
}

fn session(d: &Doubles, artifacts: &Path) -> Session {
    session_for(d, artifacts, &envs())
}

fn session_for(d: &Doubles, artifacts: &Path, envs: &[plan::EnvPlan]) -> Session {
    session_with(d, artifacts, envs, meshproof::mirror::MirrorSetting::Off)
}

fn session_with(
    d: &Doubles,
    artifacts: &Path,
    envs: &[plan::EnvPlan],
    mirror: meshproof::mirror::MirrorSetting,
) -> Session {
    std::env::set_var(meshproof::process::tools::TOOL_PATH_ENV, d.bin());
    std::env::set_var("MESHPROOF_DOUBLE_LOG", d.log());
    std::env::remove_var("MESHPROOF_DOUBLE_SLEEP_ON");
    std::env::remove_var("MESHPROOF_DOUBLE_FAIL_ON");
    let opts = StackOptions {
        api: Arc::new(RecordingApi::default()),
        keep_cluster: false,
        artifacts_root: artifacts.to_path_buf(),
        gateway_api_base: "http://127.0.0.1:9/unused".into(),
        registry: meshproof::images::Registry::default(),
        mirror: Ok(mirror),
        log: Arc::new(|_: &str| {}),
    };
    Session::with_options(envs, opts)
}

fn count(d: &Doubles, prefix: &str) -> usize {
    d.call_lines()
        .iter()
        .filter(|l| l.starts_with(prefix))
        .count()
}

#[test]
fn first_trial_provisions_the_next_shares_and_teardown_deletes_once() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let s = session(&d, artifacts.path());
    let envs = envs();
    let shared = envs.iter().find(|e| e.key == "istio[k8s=1.35]").unwrap();
    assert!(shared.trials.len() >= 2);
    for t in &shared.trials[..2] {
        let e = s.run_trial(t).unwrap_err();
        // Provisioning worked; the trial then runs its steps, whose first one fails here: the
        // kind double's kubeconfig points at no API server.
        assert!(
            matches!(&e, RunError::Trial { message: m, .. } if m.contains("step 1 (") && m.contains("failed")),
            "{}: {e}",
            t.name
        );
    }
    assert_eq!(count(&d, "kind create cluster"), 1, "{:?}", d.call_lines());
    assert_eq!(count(&d, "kind delete cluster"), 0);
    // Each trial's own artifacts (its verdicts at least) are where the report collects them.
    let dir = s
        .trial_artifacts(&shared.trials[0])
        .expect("the trial's artifacts");
    assert!(dir.join("verdicts.json").is_file(), "{}", dir.display());
    s.teardown();
    assert_eq!(
        count(&d, "kind delete cluster --name meshproof-istio-k8s-1-35-"),
        1,
        "{:?}",
        d.call_lines()
    );
    // Its trials failed: logs were exported first.
    let lines = d.call_lines();
    assert!(
        lines.iter().position(|l| l.starts_with("kind export logs"))
            < lines.iter().position(|l| l.starts_with("kind delete"))
    );
    drop(s);
    assert_eq!(count(&d, "kind delete cluster"), 1, "teardown runs once");
}

#[test]
fn a_panic_while_the_session_is_alive_still_deletes_the_cluster() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let s = session(&d, artifacts.path());
        let envs = envs();
        let t = &envs
            .iter()
            .find(|e| e.key == "istio[k8s=1.36]")
            .unwrap()
            .trials[0];
        let _ = s.run_trial(t);
        panic!("an assertion failed mid-run");
    }));
    assert!(res.is_err());
    assert_eq!(
        count(&d, "kind delete cluster --name meshproof-istio-k8s-1-36-"),
        1,
        "{:?}",
        d.call_lines()
    );
}

#[test]
fn a_failed_provisioning_is_reported_to_every_trial_without_retrying() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let s = session(&d, artifacts.path());
    std::env::set_var("MESHPROOF_DOUBLE_FAIL_ON", "kind create");
    let envs = envs();
    let shared = envs.iter().find(|e| e.key == "istio[k8s=1.35]").unwrap();
    for t in &shared.trials[..2] {
        let e = s.run_trial(t).unwrap_err().to_string();
        assert!(
            e.contains("environment istio[k8s=1.35] could not be set up")
                && e.contains("failing on purpose"),
            "{e}"
        );
    }
    std::env::remove_var("MESHPROOF_DOUBLE_FAIL_ON");
    assert_eq!(count(&d, "kind create cluster"), 1);
    // A failed create is still deleted (it may have left containers behind).
    assert_eq!(
        count(&d, "kind delete cluster --name meshproof-istio-k8s-1-35-"),
        1,
        "{:?}",
        d.call_lines()
    );
}

#[test]
fn environments_sharing_host_ports_take_turns_instead_of_colliding() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let s = session(&d, artifacts.path());
    let envs = envs();
    let trial = |key: &str, i: usize| envs.iter().find(|e| e.key == key).unwrap().trials[i].clone();
    let _ = s.run_trial(&trial("istio[k8s=1.36]", 0));
    // Another cell of the matrix binds the same 30080/30043: the first cluster goes first.
    let _ = s.run_trial(&trial("istio[k8s=1.35]", 0));
    let lines = d.call_lines();
    let del34 = lines
        .iter()
        .position(|l| l.starts_with("kind delete cluster --name meshproof-istio-k8s-1-36-"))
        .expect("evicted");
    let create33 = lines
        .iter()
        .position(|l| l.starts_with("kind create cluster --name meshproof-istio-k8s-1-35-"))
        .unwrap();
    assert!(del34 < create33, "{lines:?}");
    // Coming back to the first environment re-creates it (after evicting the second).
    let _ = s.run_trial(&trial("istio[k8s=1.36]", 1));
    assert_eq!(
        count(&d, "kind create cluster --name meshproof-istio-k8s-1-36-"),
        2
    );
    assert_eq!(
        count(&d, "kind delete cluster --name meshproof-istio-k8s-1-35-"),
        1
    );
    s.teardown();
    assert_eq!(
        count(&d, "kind create cluster"),
        count(&d, "kind delete cluster"),
        "{:?}",
        d.call_lines()
    );
}

#[test]
fn an_image_that_cannot_be_pinned_fails_the_environment_before_any_cluster_exists() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    let mut envs = envs();
    for e in &mut envs {
        let suite = Arc::make_mut(&mut e.suite);
        suite.images.function =
            meshproof::images::ImageRef::parse("127.0.0.1:9/meshproof/alpine:latest").unwrap();
    }
    let s = session_for(&d, artifacts.path(), &envs);
    let shared = envs.iter().find(|e| e.key == "istio[k8s=1.36]").unwrap();
    let e = s.run_trial(&shared.trials[0]).unwrap_err();
    let RunError::Environment { reason, .. } = &e else {
        panic!("{e}")
    };
    assert!(
        reason.starts_with("resolving 127.0.0.1:9/meshproof/alpine:latest at 127.0.0.1:9: "),
        "{reason}"
    );
    assert!(reason.contains("meshproof pin --write"), "{reason}");
    assert!(s.facts("istio[k8s=1.36]").is_none());
    assert_eq!(count(&d, "kind create cluster"), 0, "{:?}", d.call_lines());
}

#[test]
fn the_session_reports_the_images_it_deployed_and_the_mesh_it_installed() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let s = session(&d, artifacts.path());
    let envs = envs();
    let _ = s.run_trial(
        &envs
            .iter()
            .find(|e| e.key == "istio[k8s=1.36]")
            .unwrap()
            .trials[0],
    );
    let facts = s
        .facts("istio[k8s=1.36]")
        .expect("recorded once provisioned");
    assert_eq!(facts.images.len(), 3);
    for (role, i) in &facts.images {
        assert!(
            i.deployed
                .as_deref()
                .is_some_and(|d| d.contains("@sha256:")),
            "{role}: {i:?}"
        );
        assert_eq!(
            i.pinned_by,
            Some(meshproof::images::resolve::PinSource::Suite)
        );
        assert_eq!(
            i.via,
            Some(meshproof::mirror::evidence::Route::Direct),
            "{role}: mirrors are off, so the nodes pulled it directly"
        );
    }
    assert_eq!(facts.mesh.installed_version.as_deref(), Some("1.30.3"));
    assert_eq!(
        facts.kubernetes.server_version, None,
        "the kind double's API server does not answer"
    );
    s.teardown();
}

#[test]
fn a_failed_teardown_is_reported_with_its_environment() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let s = session(&d, artifacts.path());
    let envs = envs();
    let _ = s.run_trial(
        &envs
            .iter()
            .find(|e| e.key == "istio[k8s=1.36]")
            .unwrap()
            .trials[0],
    );
    std::env::set_var("MESHPROOF_DOUBLE_FAIL_ON", "kind delete");
    let errors = s.teardown();
    std::env::remove_var("MESHPROOF_DOUBLE_FAIL_ON");
    let e = errors
        .get("istio[k8s=1.36]")
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert!(e[0].contains("failing on purpose"), "{e:?}");
}

/// The session hands the report every environment's secrets (the report's redactor was empty
/// before, issue #13): the basic-auth password it generated is one of them.
#[test]
fn the_session_knows_every_provisioned_environments_secrets() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    std::env::set_var(meshproof::process::tools::TOOL_PATH_ENV, d.bin());
    std::env::set_var("MESHPROOF_DOUBLE_LOG", d.log());
    std::env::remove_var("MESHPROOF_DOUBLE_SLEEP_ON");
    std::env::remove_var("MESHPROOF_DOUBLE_FAIL_ON");
    let api = Arc::new(RecordingApi::default());
    let opts = StackOptions {
        api: api.clone(),
        keep_cluster: false,
        artifacts_root: artifacts.path().to_path_buf(),
        gateway_api_base: "http://127.0.0.1:9/unused".into(),
        registry: meshproof::images::Registry::default(),
        mirror: Ok(Default::default()),
        log: Arc::new(|_: &str| {}),
    };
    let envs = envs();
    let s = Session::with_options(&envs, opts);
    assert!(s.secrets().is_empty());
    let _ = s.run_trial(
        &envs
            .iter()
            .find(|e| e.key == "istio[k8s=1.36]")
            .unwrap()
            .trials[0],
    );
    let secret = api
        .object("Secret", "basic-auth")
        .expect("the password was applied");
    let pw = secret["stringData"]["basic-auth-password"]
        .as_str()
        .unwrap();
    assert_eq!(s.secrets().apply(&format!("pw={pw}")), "pw=***");
    s.teardown();
}

/// Nobody asked for a mirror: the default local mirrors are tried, and when they cannot start
/// (here `docker create` fails) the cluster is still made with its nodes pulling directly (no
/// registry patch in the kind config). Asked for by name (`--mirror local`), the same failure
/// stops the environment before any cluster exists (issue #17).
#[test]
fn default_local_mirrors_that_cannot_start_leave_the_nodes_pulling_directly() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let copy = tempfile::tempdir().unwrap();
    std::env::remove_var(meshproof::vocab::KIND_NETWORK_ENV);
    let envs = envs();
    let env = envs.iter().find(|e| e.key == "istio[k8s=1.36]").unwrap();
    for by_default in [true, false] {
        let s = session_with(
            &d,
            artifacts.path(),
            &envs,
            meshproof::mirror::MirrorSetting::Local {
                keep: false,
                by_default,
            },
        );
        std::env::set_var("MESHPROOF_DOUBLE_FAIL_ON", "docker create");
        std::env::set_var("MESHPROOF_DOUBLE_COPY_DIR", copy.path());
        let config = copy.path().join("kind-config.yaml");
        let _ = std::fs::remove_file(&config);
        let before = count(&d, "kind create cluster");
        let r = s.run_trial(&env.trials[0]);
        let made = count(&d, "kind create cluster") - before;
        std::env::remove_var("MESHPROOF_DOUBLE_FAIL_ON");
        std::env::remove_var("MESHPROOF_DOUBLE_COPY_DIR");
        assert!(count(&d, "docker create") > 0, "the mirrors were tried");
        if by_default {
            assert_eq!(made, 1, "the cluster is made anyway: {r:?}");
            let cfg = std::fs::read_to_string(&config).expect("kind config");
            assert!(!cfg.contains("containerdConfigPatches"), "{cfg}");
        } else {
            assert_eq!(made, 0, "no cluster without the mirrors asked for");
            let e = r.expect_err("the environment fails").to_string();
            assert!(e.contains("docker create"), "{e}");
        }
        s.teardown();
    }
}

/// `--mirror local` through a whole session, against the docker and kind doubles: the mirror
/// containers are made (create, cp of the config, start) before `kind create`, joined to kind's
/// network after it, and at the end their logs are read before they are removed; the report's
/// route of each image comes from the log of its registry's mirror.
#[test]
fn local_mirrors_start_before_the_cluster_and_their_logs_route_the_images() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let access = d.dir.path().join("access.log");
    std::fs::write(
        &access,
        "172.18.0.2 - - [06/Dec/2026:00:00:01 +0000] \"GET /v2/curlimages/curl/manifests/sha256:c1fe1679c34d9784c1b0d1e5f62ac0a79fca01fb6377cdd33e90473c6f9f9a69?ns=docker.io HTTP/1.1\" 200 1024 \"\" \"containerd/v2.1.4\"\n",
    )
    .unwrap();
    std::env::set_var("MESHPROOF_DOUBLE_DOCKER_LOG", &access);
    std::env::remove_var(meshproof::vocab::KIND_NETWORK_ENV);
    let envs = envs();
    let s = session_with(
        &d,
        artifacts.path(),
        &envs,
        meshproof::mirror::MirrorSetting::Local {
            keep: false,
            by_default: false,
        },
    );
    let env = envs.iter().find(|e| e.key == "istio[k8s=1.36]").unwrap();
    let _ = s.run_trial(&env.trials[0]);
    let lines = d.call_lines();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no call {prefix:?} in {lines:#?}"))
    };
    let docker_io = lines
        .iter()
        .find(|l| {
            l.starts_with("docker create --name meshproof-mirror-") && l.contains("-docker-io ")
        })
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no docker.io mirror: {lines:#?}"))
        .to_string();
    let create = at(&format!("docker create --name {docker_io} "));
    assert!(
        lines[create].ends_with("serve /etc/distribution/config.yml"),
        "{}",
        lines[create]
    );
    let cp = lines
        .iter()
        .position(|l| l.starts_with("docker cp ") && l.contains(&format!(" {docker_io}:")))
        .expect("the config is copied in");
    let start = at(&format!("docker start {docker_io}"));
    let kind_create = at("kind create cluster");
    assert!(
        create < cp && cp < start && start < kind_create,
        "{lines:#?}"
    );
    assert!(
        lines[kind_create..]
            .iter()
            .any(|l| l == &format!("docker network connect kind {docker_io}")),
        "joined to kind's network after the cluster made it: {lines:#?}"
    );

    s.teardown();
    let lines = d.call_lines();
    let logs = lines
        .iter()
        .position(|l| l.starts_with("docker logs --since") && l.ends_with(&docker_io))
        .expect("the log is read");
    let rm = lines
        .iter()
        .position(|l| l == &format!("docker rm -f -v {docker_io}"))
        .expect("the container is removed");
    assert!(logs < rm, "read before removed: {lines:#?}");
    let facts = s.facts("istio[k8s=1.36]").unwrap();
    use meshproof::mirror::evidence::Route;
    assert!(
        matches!(&facts.images["probe"].via, Some(Route::LocalMirror { container, .. }) if *container == docker_io),
        "{:?}",
        facts.images["probe"]
    );
    assert!(
        matches!(&facts.images["capture"].via, Some(Route::NotSeen { container }) if *container == docker_io),
        "netshoot's manifest is not in the log: {:?}",
        facts.images["capture"]
    );
    std::env::remove_var("MESHPROOF_DOUBLE_DOCKER_LOG");
}
