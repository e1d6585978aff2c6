//! Guaranteed cleanup of a real `meshproof run` process: interrupted with SIGINT/SIGTERM while a
//! TEST-DOUBLE CLI is mid-call, it still deletes the kind cluster it created (and only that one),
//! then exits 130/143; a second SIGINT skips cleanup and prints the delete command; killed with
//! SIGKILL, its reaper deletes the cluster and the run's temp dir.
//!
//! After `kind create` a run asks the API whether the node is Ready (CONTRACTS.md KIND-3), so
//! the tests that get past it need an API server: the kind double hands out the kube-rig's
//! kubeconfig (`MESHPROOF_TEST_KUBECONFIG`), where a Ready node is registered first. Without the
//! rig those tests say why they skip (and fail under `CI=true`).

mod doubles;
mod support_harness;

use doubles::{flag, Doubles};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ENV: &str = "istio[k8s=1.36]";

struct Proc {
    child: Child,
    doubles: Doubles,
    artifacts: tempfile::TempDir,
    /// The run's MESHPROOF_STATE_DIR (its run record), never the user's.
    state: tempfile::TempDir,
}

/// The rig's kubeconfig, with a Node registered as Ready (the rig has no kubelet).
///
/// The rig's node-lifecycle controller marks a node `Unknown` once its Ready condition has not
/// changed for the grace period (40 s), as it would for a kubelet that stopped posting: so a
/// thread stands in for the kubelet's heartbeat, posting a fresh `lastHeartbeatTime` every 5 s
/// for the life of this test process.
fn rig_with_ready_node() -> Option<std::path::PathBuf> {
    let Some(kc) = std::env::var_os("MESHPROOF_TEST_KUBECONFIG").filter(|v| !v.is_empty()) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but MESHPROOF_TEST_KUBECONFIG is not set");
        }
        eprintln!("SKIP: needs the kube-rig API server (MESHPROOF_TEST_KUBECONFIG)");
        return None;
    };
    let kc = std::path::PathBuf::from(kc);
    static HEARTBEAT: std::sync::Once = std::sync::Once::new();
    let (first_tx, first_rx) = std::sync::mpsc::channel::<()>();
    let mut started_here = false;
    HEARTBEAT.call_once(|| {
        started_here = true;
        let kc = kc.clone();
        std::thread::spawn(move || heartbeat(&kc, first_tx));
    });
    if started_here {
        first_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the node's first heartbeat");
    }
    Some(kc)
}

/// Registers the test node and posts its Ready condition with a fresh heartbeat every 5 s;
/// signals `first` after the first post.
fn heartbeat(kc: &Path, first: std::sync::mpsc::Sender<()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use k8s_openapi::api::core::v1::Node;
        use kube::api::{Api, Patch, PatchParams, PostParams};
        let client = meshproof::kubeops::client_from_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let nodes: Api<Node> = Api::all(client);
        let name = "meshproof-signals-node";
        let node: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        let _ = nodes.create(&PostParams::default(), &node).await;
        loop {
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            let status = serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node", "lastHeartbeatTime": now}]}});
            let posted = nodes
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
            if posted.is_ok() {
                let _ = first.send(());
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
}

fn spawn(knobs: &[(&str, &str)], extra_args: &[&str]) -> Proc {
    let doubles = Doubles::new();
    let artifacts = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
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
        .env(meshproof::reaper::records::STATE_DIR_ENV, state.path())
        .env("OPENFAAS_LICENSE_FILE", &license)
        .env_remove("MESHPROOF_KEEP_CLUSTER")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(kc) = std::env::var_os("MESHPROOF_TEST_KUBECONFIG").filter(|v| !v.is_empty()) {
        cmd.env("MESHPROOF_DOUBLE_KUBECONFIG", kc);
    }
    for (k, v) in knobs {
        cmd.env(k, v);
    }
    Proc {
        child: cmd.spawn().unwrap(),
        doubles,
        artifacts,
        state,
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

fn sigint_during_kind_create_deletes_the_half_created_cluster_and_exits_130() {
    let p = spawn(&[("MESHPROOF_DOUBLE_SLEEP_ON", "kind create")], &[]);
    p.wait_for_call("kind create cluster");
    let started = Instant::now();
    p.signal(Signal::SIGINT);
    let (code, _, stderr, d, _) = p.finish();
    assert_eq!(code, 130, "{stderr}");
    let name = created_name(&d);
    assert!(name.starts_with("meshproof-istio-k8s-1-36-"), "{name}");
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

fn sigterm_mid_install_deletes_the_cluster_and_exits_143() {
    if rig_with_ready_node().is_none() {
        return;
    }
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

fn a_second_sigint_skips_cleanup_and_prints_the_delete_command() {
    if rig_with_ready_node().is_none() {
        return;
    }
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

fn an_install_error_exports_logs_then_deletes_and_keep_cluster_keeps() {
    if rig_with_ready_node().is_none() {
        return;
    }
    // The ingress NodePort patch fails: istioctl is a double, so the rig has no ingress Service.
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
    // A kept cluster keeps its temp dir (its kubeconfig): this test's cluster is a double, so
    // the test removes it.
    let kept = temp_dir_of(&stderr).expect("the run announces its temp dir");
    assert!(kept.join("istio-k8s-1-36/kubeconfig").exists());
    let _ = std::fs::remove_dir_all(&kept);
    assert_eq!(code, 1, "{stderr}");
    assert!(deleted_names(&d).is_empty(), "{:?}", d.call_lines());
    assert!(
        stderr.contains(&format!("kind delete cluster --name {}", created_name(&d))),
        "{stderr}"
    );
}

/// A Ctrl-C while the run's own teardown is deleting the cluster must not kill that delete: the
/// handler waits for it instead of reporting a cleanup that never finished.
fn sigint_during_the_final_kind_delete_lets_it_finish() {
    if rig_with_ready_node().is_none() {
        return;
    }
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

/// The run's temp dir, from its announcement on stderr (`… (temp dir /tmp/meshproof-…)`).
fn temp_dir_of(stderr: &str) -> Option<std::path::PathBuf> {
    let at = stderr.find("(temp dir ")? + "(temp dir ".len();
    let end = stderr[at..].find(')')?;
    Some(std::path::PathBuf::from(&stderr[at..at + end]))
}

/// SIGKILL reaches no handler: the reaper (a detached process holding a pipe from the run)
/// kills the run's process groups, deletes the cluster — even one still being created — and
/// removes the run's temp dir, within 30 s (issue #13).
fn sigkill_during_kind_create_leaves_the_reaper_to_delete_the_cluster_and_the_temp_dir() {
    let mut p = spawn(&[("MESHPROOF_DOUBLE_SLEEP_ON", "kind create")], &[]);
    p.wait_for_call("kind create cluster");
    p.signal(Signal::SIGKILL);
    let status = p.child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by the signal");
    let mut stderr = String::new();
    if let Some(mut e) = p.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let name = created_name(&p.doubles);
    let deadline = Instant::now() + Duration::from_secs(30);
    while deleted_names(&p.doubles) != vec![name.clone()] {
        assert!(
            Instant::now() < deadline,
            "the reaper did not delete {name} within 30 s: {:?}",
            p.doubles.call_lines()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The sleeping `kind create` was killed, not left to finish creating after the delete.
    std::thread::sleep(Duration::from_millis(500));
    let done =
        std::fs::read_to_string(format!("{}.done", p.doubles.log().display())).unwrap_or_default();
    assert!(!done.contains("kind create"), "{done}");
    assert!(
        survivors(&p.doubles).is_empty(),
        "{:?}",
        survivors(&p.doubles)
    );
    let temp = temp_dir_of(&stderr).expect("the run announces its temp dir");
    let deadline = Instant::now() + Duration::from_secs(10);
    while temp.exists() {
        assert!(Instant::now() < deadline, "{} left behind", temp.display());
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = doubles::files_under(p.artifacts.path())
        .into_iter()
        .find(|(f, _)| f.ends_with("reaper.log"))
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .expect("the reaper says what it did");
    assert!(
        log.contains(&format!("deleted kind cluster {name}")),
        "{log}"
    );
    let records = meshproof::reaper::records::read_all(p.state.path()).unwrap();
    assert!(
        records.is_empty(),
        "the reaper removed everything, so it removed the run record: {records:?}"
    );
}

/// The reaper of the run whose artifacts are in `artifacts` (its environment names its log
/// there).
fn reaper_of(artifacts: &Path) -> Option<i32> {
    let want = format!("{}=", meshproof::reaper::MODE_ENV);
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        for var in env.split(|b| *b == 0) {
            let var = String::from_utf8_lossy(var);
            if let Some(log) = var.strip_prefix(&want) {
                if Path::new(log).starts_with(artifacts) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// `meshproof gc` against `state`, with the doubles as tools.
fn gc(p: &Proc, clusters: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .arg("gc")
        .args(args)
        .env(meshproof::reaper::records::STATE_DIR_ENV, p.state.path())
        .env("MESHPROOF_TOOL_PATH", p.doubles.bin())
        .env("MESHPROOF_DOUBLE_LOG", p.doubles.log())
        .env("MESHPROOF_DOUBLE_KIND_CLUSTERS", clusters)
        .env_remove("MESHPROOF_DOUBLE_SLEEP_ON")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The run *and* its reaper are killed (a CI runner killing every process of a cancelled
/// job): the run record is left, and `meshproof gc` deletes the recorded cluster and temp dir
/// — not while the run lives, not with --dry-run, and never a cluster no record names.
fn gc_deletes_what_a_run_killed_with_its_reaper_left_and_nothing_else() {
    let clusters = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(clusters.path(), "meshproof-kept-by-someone\ndev\n").unwrap();
    let clusters_path = clusters.path().display().to_string();
    let mut p = spawn(
        &[
            ("MESHPROOF_DOUBLE_SLEEP_ON", "kind create"),
            ("MESHPROOF_DOUBLE_KIND_CLUSTERS", &clusters_path),
        ],
        &[],
    );
    p.wait_for_call("kind create cluster");
    let name = created_name(&p.doubles);

    let (code, out) = gc(&p, clusters.path(), &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("still running, left alone"), "{out}");
    assert!(
        deleted_names(&p.doubles).is_empty(),
        "a live run is not touched: {out}"
    );

    let reaper = reaper_of(p.artifacts.path()).expect("the run's reaper");
    kill(Pid::from_raw(reaper), Signal::SIGKILL).unwrap();
    p.signal(Signal::SIGKILL);
    let _ = p.child.wait().unwrap();
    let mut stderr = String::new();
    if let Some(mut e) = p.child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    let temp = temp_dir_of(&stderr).expect("the run announces its temp dir");
    std::thread::sleep(Duration::from_millis(500));
    assert!(temp.exists(), "nobody cleaned up yet");
    assert!(deleted_names(&p.doubles).is_empty());

    let (code, out) = gc(&p, clusters.path(), &["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("would delete kind cluster {name}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("would remove {}", temp.display())),
        "{out}"
    );
    assert!(
        deleted_names(&p.doubles).is_empty(),
        "--dry-run deletes nothing"
    );
    assert!(temp.exists());

    let (code, out) = gc(&p, clusters.path(), &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(deleted_names(&p.doubles), vec![name.clone()], "{out}");
    assert!(
        out.contains(&format!("deleted kind cluster {name}")),
        "{out}"
    );
    assert!(!temp.exists(), "{out}");
    assert!(
        out.contains("kind cluster meshproof-kept-by-someone: no record names it"),
        "{out}"
    );
    assert!(
        !out.contains("cluster dev"),
        "not ours, not mentioned: {out}"
    );
    let left = std::fs::read_to_string(clusters.path()).unwrap();
    assert!(
        left.contains("meshproof-kept-by-someone") && left.contains("dev"),
        "{left}"
    );
    assert!(meshproof::reaper::records::read_all(p.state.path())
        .unwrap()
        .is_empty());

    let (code, out) = gc(&p, clusters.path(), &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        deleted_names(&p.doubles),
        vec![name],
        "nothing twice: {out}"
    );
    kill_survivors(&p.doubles);
}

/// Kills what is left running of this test's doubles (a sleeping `kind create` whose reaper
/// was killed on purpose).
fn kill_survivors(d: &Doubles) {
    let needle = d.bin().to_string_lossy().into_owned();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(&needle) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// A record that is not JSON is reported, left in place, and fails the command.
fn gc_reports_an_unreadable_record_and_fails() {
    let state = tempfile::tempdir().unwrap();
    let runs = meshproof::reaper::records::records_dir(state.path());
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::write(runs.join("1-1.json"), "{not json").unwrap();
    let d = Doubles::new();
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .arg("gc")
        .env(meshproof::reaper::records::STATE_DIR_ENV, state.path())
        .env("MESHPROOF_TOOL_PATH", d.bin())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("unreadable run record"), "{text}");
    assert!(runs.join("1-1.json").exists());
}

/// SIGKILL during the install (a cluster exists, istioctl is mid-call): the same net.
fn sigkill_mid_install_leaves_the_reaper_to_delete_the_cluster() {
    if rig_with_ready_node().is_none() {
        return;
    }
    let mut p = spawn(&[("MESHPROOF_DOUBLE_SLEEP_ON", "istioctl install")], &[]);
    p.wait_for_call("istioctl install -y");
    p.signal(Signal::SIGKILL);
    let _ = p.child.wait().unwrap();
    let name = created_name(&p.doubles);
    let deadline = Instant::now() + Duration::from_secs(30);
    while deleted_names(&p.doubles) != vec![name.clone()] {
        assert!(Instant::now() < deadline, "{:?}", p.doubles.call_lines());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        survivors(&p.doubles).is_empty(),
        "{:?}",
        survivors(&p.doubles)
    );
}

/// A kind killed mid-create leaves `<kubeconfig>.lock`; the next delete would fail after
/// deleting the nodes (CONTRACTS.md KIND-5). The reaper clears the stale lock first.
fn the_reaper_clears_a_stale_kubeconfig_lock_before_deleting() {
    let d = Doubles::new();
    std::env::set_var(meshproof::process::tools::TOOL_PATH_ENV, d.bin());
    std::env::set_var("MESHPROOF_DOUBLE_LOG", d.log());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(meshproof::reaper::kubeconfig_lock(&kubeconfig), "").unwrap();
    let log = meshproof::reaper::reap(
        &[meshproof::reaper::Entry::KindCluster {
            name: "meshproof-stale".into(),
            kubeconfig: kubeconfig.clone(),
        }],
        &meshproof::reaper::Reap::default(),
    )
    .log();
    assert_eq!(log, ["deleted kind cluster meshproof-stale"]);
    assert!(!meshproof::reaper::kubeconfig_lock(&kubeconfig).exists());
}

fn main() -> std::process::ExitCode {
    use support_harness::{Case, Need};
    support_harness::run(vec![
        Case::sync(
            "sigint_during_kind_create_deletes_the_half_created_cluster_and_exits_130",
            &[],
            sigint_during_kind_create_deletes_the_half_created_cluster_and_exits_130,
        ),
        Case::sync(
            "sigterm_mid_install_deletes_the_cluster_and_exits_143",
            &[Need::KubeRig],
            sigterm_mid_install_deletes_the_cluster_and_exits_143,
        ),
        Case::sync(
            "a_second_sigint_skips_cleanup_and_prints_the_delete_command",
            &[Need::KubeRig],
            a_second_sigint_skips_cleanup_and_prints_the_delete_command,
        ),
        Case::sync(
            "an_install_error_exports_logs_then_deletes_and_keep_cluster_keeps",
            &[Need::KubeRig],
            an_install_error_exports_logs_then_deletes_and_keep_cluster_keeps,
        ),
        Case::sync(
            "sigint_during_the_final_kind_delete_lets_it_finish",
            &[Need::KubeRig],
            sigint_during_the_final_kind_delete_lets_it_finish,
        ),
        Case::sync(
            "sigkill_during_kind_create_leaves_the_reaper_to_delete_the_cluster_and_the_temp_dir",
            &[],
            sigkill_during_kind_create_leaves_the_reaper_to_delete_the_cluster_and_the_temp_dir,
        ),
        Case::sync(
            "sigkill_mid_install_leaves_the_reaper_to_delete_the_cluster",
            &[Need::KubeRig],
            sigkill_mid_install_leaves_the_reaper_to_delete_the_cluster,
        ),
        Case::sync(
            "gc_deletes_what_a_run_killed_with_its_reaper_left_and_nothing_else",
            &[],
            gc_deletes_what_a_run_killed_with_its_reaper_left_and_nothing_else,
        ),
        Case::sync(
            "gc_reports_an_unreadable_record_and_fails",
            &[],
            gc_reports_an_unreadable_record_and_fails,
        ),
        Case::sync(
            "the_reaper_clears_a_stale_kubeconfig_lock_before_deleting",
            &[],
            the_reaper_clears_a_stale_kubeconfig_lock_before_deleting,
        ),
    ])
}
