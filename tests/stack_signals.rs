//! Guaranteed cleanup of a real `meshproof run` process: interrupted with SIGINT/SIGTERM while a
//! TEST-DOUBLE CLI is mid-call, it still deletes the kind cluster it created (and only that one),
//! then exits 130/143; a second SIGINT skips cleanup and prints the delete command.

mod doubles;

use doubles::{flag, Doubles};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ENV: &str = "istio[k8s=1.34]";

struct Proc {
    child: Child,
    doubles: Doubles,
    artifacts: tempfile::TempDir,
}

fn spawn(knobs: &[(&str, &str)], extra_args: &[&str]) -> Proc {
    let doubles = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    // The Istio suite runs OpenFaaS Pro: a test license, beside the artifacts.
    let license = artifacts.path().join("openfaas-license");
    std::fs::write(&license, "meshproof-test-license").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_meshproof"));
    cmd.args(["run", "istio", "--env", ENV])
        .args(extra_args)
        .current_dir(root)
        .env("MESHPROOF_PROJECT_DIR", root)
        .env("MESHPROOF_TOOL_PATH", doubles.bin())
        .env("MESHPROOF_DOUBLE_LOG", doubles.log())
        .env("MESHPROOF_ARTIFACTS_DIR", artifacts.path())
        .env("OPENFAAS_LICENSE_FILE", &license)
        .env_remove("MESHPROOF_KEEP_CLUSTER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in knobs {
        cmd.env(k, v);
    }
    Proc {
        child: cmd.spawn().unwrap(),
        doubles,
        artifacts,
    }
}

impl Proc {
    fn wait_for_call(&self, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines = self.doubles.call_lines();
            if lines.iter().any(|l| l.starts_with(prefix)) {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no `{prefix}` call within 30 s: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, s: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), s).unwrap();
    }

    /// Exit code and stderr, failing the test if the process does not end within 30 s.
    fn finish(mut self) -> (i32, String, String, Doubles, tempfile::TempDir) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let out = self.child.wait_with_output().unwrap();
                return (
                    status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                    self.doubles,
                    self.artifacts,
                );
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("meshproof run did not exit within 30 s of the signal");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn created_name(d: &Doubles) -> String {
    let calls = d.calls();
    let (_, create) = calls
        .iter()
        .find(|(t, a)| t == "kind" && a.starts_with(&["create".into(), "cluster".into()]))
        .expect("kind create");
    flag(create, "--name").unwrap().to_string()
}

fn deleted_names(d: &Doubles) -> Vec<String> {
    d.calls()
        .iter()
        .filter(|(t, a)| t == "kind" && a.starts_with(&["delete".into(), "cluster".into()]))
        .map(|(_, a)| flag(a, "--name").unwrap().to_string())
        .collect()
}

#[test]
fn sigint_during_kind_create_deletes_the_half_created_cluster_and_exits_130() {
    let p = spawn(&[("MESHPROOF_DOUBLE_SLEEP_ON", "kind create")], &[]);
    p.wait_for_call("kind create cluster");
    let started = Instant::now();
    p.signal(Signal::SIGINT);
    let (code, _, stderr, d, _) = p.finish();
    assert_eq!(code, 130, "{stderr}");
    let name = created_name(&d);
    assert!(name.starts_with("meshproof-istio-k8s-1-34-"), "{name}");
    assert_eq!(deleted_names(&d), vec![name], "{stderr}");
    // The sleeping create was killed, not waited for (it sleeps 30 s).
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        !d.call_lines()
            .iter()
            .any(|l| l.starts_with("istioctl install")),
        "nothing new starts after the signal"
    );
    assert!(stderr.contains("received SIGINT"), "{stderr}");
    assert!(
        survivors(&d).is_empty(),
        "a double outlived meshproof: {:?}",
        survivors(&d)
    );
}

/// Processes still running one of this test's doubles (their command line names its bin dir).
fn survivors(d: &Doubles) -> Vec<String> {
    let needle = d.bin().to_string_lossy().into_owned();
    std::thread::sleep(Duration::from_millis(300));
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                out.push(cmd);
            }
        }
    }
    out
}

#[test]
fn sigterm_mid_install_deletes_the_cluster_and_exits_143() {
    let p = spawn(&[("MESHPROOF_DOUBLE_SLEEP_ON", "istioctl install")], &[]);
    p.wait_for_call("istioctl install -y");
    p.signal(Signal::SIGTERM);
    let (code, _, stderr, d, _) = p.finish();
    assert_eq!(code, 143, "{stderr}");
    assert_eq!(deleted_names(&d), vec![created_name(&d)], "{stderr}");
    assert!(
        survivors(&d).is_empty(),
        "the interrupted istioctl outlived meshproof: {:?}",
        survivors(&d)
    );
}

#[test]
fn a_second_sigint_skips_cleanup_and_prints_the_delete_command() {
    let p = spawn(
        &[("MESHPROOF_DOUBLE_SLEEP_ON", "istioctl install|kind delete")],
        &[],
    );
    p.wait_for_call("istioctl install -y");
    p.signal(Signal::SIGINT);
    p.wait_for_call("kind delete cluster");
    p.signal(Signal::SIGINT);
    let (code, _, stderr, d, _) = p.finish();
    assert_eq!(code, 130, "{stderr}");
    let name = created_name(&d);
    assert!(stderr.contains("skipping cleanup"), "{stderr}");
    assert!(
        stderr.contains(&format!("kind delete cluster --name {name}")),
        "{stderr}"
    );
}

#[test]
fn an_install_error_exports_logs_then_deletes_and_keep_cluster_keeps() {
    // The first Kubernetes API call (the ingress NodePort patch) fails: the kind double's
    // kubeconfig points at an API server that does not exist.
    let p = spawn(&[], &[]);
    let (code, _, stderr, d, artifacts) = p.finish();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "installing Istio failed: applying Service istio-system/istio-ingressgateway"
        ),
        "{stderr}"
    );
    let lines = d.call_lines();
    let export = lines
        .iter()
        .position(|l| l.starts_with("kind export logs "))
        .expect("logs exported");
    let delete = lines
        .iter()
        .position(|l| l.starts_with("kind delete cluster "))
        .expect("deleted");
    assert!(export < delete);
    assert!(doubles::files_under(artifacts.path())
        .iter()
        .any(|(p, _)| p.ends_with("kind-logs/double-export.txt")));

    let p = spawn(&[], &["--keep-cluster"]);
    let (code, _, stderr, d, _) = p.finish();
    assert_eq!(code, 1, "{stderr}");
    assert!(deleted_names(&d).is_empty(), "{:?}", d.call_lines());
    assert!(
        stderr.contains(&format!("kind delete cluster --name {}", created_name(&d))),
        "{stderr}"
    );
}

/// A Ctrl-C while the run's own teardown is deleting the cluster must not kill that delete: the
/// handler waits for it instead of reporting a cleanup that never finished.
#[test]
fn sigint_during_the_final_kind_delete_lets_it_finish() {
    let p = spawn(
        &[
            ("MESHPROOF_DOUBLE_SLEEP_ON", "kind delete"),
            ("MESHPROOF_DOUBLE_SLEEP_SECS", "3"),
        ],
        &[],
    );
    p.wait_for_call("kind delete cluster");
    p.signal(Signal::SIGINT);
    let (code, _, stderr, d, _) = p.finish();
    assert!(code == 130 || code == 0, "{code}: {stderr}");
    let done = std::fs::read_to_string(format!("{}.done", d.log().display())).unwrap_or_default();
    assert!(
        done.lines().any(|l| l.starts_with("kind delete cluster")),
        "the delete was killed: {done:?}\n{stderr}"
    );
    assert_eq!(
        deleted_names(&d),
        vec![created_name(&d)],
        "deleted once: {stderr}"
    );
}
