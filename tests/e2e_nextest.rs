//! The conformance harness under nextest, which lists the trials and then runs each one in a
//! process of its own (`NEXTEST_EXECUTION_MODE=process-per-test`): no environment can be shared
//! there, so a trial that could run refuses with the command that works — never a cluster per
//! trial — and a trial that cannot run is listed as ignored, so nextest shows it skipped rather
//! than passed.
//!
//! The e2e binary is run directly, the way nextest runs it (the same arguments and
//! environment), with TEST-DOUBLE CLIs standing in for every tool. The same setup checks what
//! a signal leaves: a torn-down cluster and a partial report that says it is one.

mod doubles;

use doubles::Doubles;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The e2e test binary `cargo test` built beside this one (the newest, if older builds linger).
fn e2e_binary() -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("e2e-") && p.extension().is_none() && p.is_file()
        })
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .expect("cargo test builds the e2e binary")
}

fn e2e(nextest: bool, args: &[&str], envs: &[(&str, &Path)]) -> (i32, String, String) {
    let mut cmd = Command::new(e2e_binary());
    cmd.args(args)
        .env("MESHPROOF_PROJECT_DIR", env!("CARGO_MANIFEST_DIR"))
        .env_remove("MESHPROOF_REQUIRE_CLUSTER")
        .env_remove("NEXTEST_EXECUTION_MODE");
    if nextest {
        cmd.env("NEXTEST_EXECUTION_MODE", "process-per-test");
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every tool a run needs, as doubles (kubeseal included), and a license for the Pro suite.
fn all_tools() -> (Doubles, tempfile::TempDir) {
    let d = Doubles::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles/record-argv");
    std::os::unix::fs::symlink(&script, d.bin().join("kubeseal")).unwrap();
    let lic = tempfile::tempdir().unwrap();
    std::fs::write(lic.path().join("license"), "test-license").unwrap();
    (d, lic)
}

#[test]
fn without_the_tools_nextest_lists_every_trial_as_ignored() {
    let empty = tempfile::tempdir().unwrap();
    // Nothing on the tool path: every trial's environment lacks its tools.
    let (code, out, _) = e2e(
        true,
        &["--list", "--format", "terse", "--ignored"],
        &[
            ("MESHPROOF_TOOL_PATH", empty.path()),
            ("PATH", empty.path()),
        ],
    );
    assert_eq!(code, 0);
    let ignored: Vec<&str> = out.lines().filter(|l| l.ends_with(": test")).collect();
    let (_, all, _) = e2e(false, &["--list", "--format", "terse"], &[]);
    let listed: Vec<&str> = all.lines().filter(|l| l.ends_with(": test")).collect();
    assert!(listed.len() >= 10, "{all}");
    assert_eq!(ignored, listed, "nextest would skip them all");
    // Outside nextest the listing marks nothing ignored: `cargo test` reports the reason itself.
    let (_, plain_ignored, _) = e2e(
        false,
        &["--list", "--format", "terse", "--ignored"],
        &[
            ("MESHPROOF_TOOL_PATH", empty.path()),
            ("PATH", empty.path()),
        ],
    );
    assert!(
        !plain_ignored.lines().any(|l| l.ends_with(": test")),
        "{plain_ignored}"
    );
}

/// With every tool present, a trial nextest runs refuses: it names the command that works, and
/// provisions nothing (no `kind create`), writes no report directory of its own.
#[test]
fn with_the_tools_a_trial_under_nextest_refuses_instead_of_provisioning() {
    let (d, lic) = all_tools();
    let reports = tempfile::tempdir().unwrap();
    let license = lic.path().join("license");
    let envs: [(&str, &Path); 5] = [
        ("MESHPROOF_TOOL_PATH", &d.bin()),
        ("MESHPROOF_DOUBLE_LOG", &d.log()),
        ("OPENFAAS_LICENSE_FILE", &license),
        ("MESHPROOF_REPORT_DIR", reports.path()),
        ("MESHPROOF_ARTIFACTS_DIR", reports.path()),
    ];
    // The doubles cover the tools: nextest's listing marks nothing ignored for a missing tool.
    let (_, ignored, _) = e2e(true, &["--list", "--format", "terse", "--ignored"], &envs);
    assert!(!ignored.lines().any(|l| l.ends_with(": test")), "{ignored}");
    let name = "[istio] istio[k8s=1.36]::tls";
    let (code, out, err) = e2e(true, &["--exact", name, "--nocapture"], &envs);
    assert_ne!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("nextest runs each test in a process of its own")
            && all.contains("cargo test --test e2e -- 'istio[k8s=1.36]'"),
        "{all}"
    );
    let calls = d.call_lines();
    assert!(
        !calls.iter().any(|l| l.starts_with("kind create")),
        "{calls:?}"
    );
    assert_eq!(
        std::fs::read_dir(reports.path()).unwrap().count(),
        0,
        "no report per trial process"
    );
}

/// A project copy whose suites need no registry: the function image is pinned to a (made-up)
/// digest, so the run goes straight to provisioning with the doubles.
fn pinned_project() -> tempfile::TempDir {
    let p = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["suites", "scenarios"] {
        copy_tree(&root.join(dir), &p.path().join(dir));
    }
    let suite = p.path().join("suites/istio.yaml");
    let text = std::fs::read_to_string(&suite).unwrap();
    let pinned = text.replace(
        "function: ghcr.io/openfaas/alpine:latest\n",
        "function: ghcr.io/openfaas/alpine:latest@sha256:0000000000000000000000000000000000000000000000000000000000000001\n",
    );
    assert_ne!(text, pinned, "the Istio suite's function image moved");
    std::fs::write(&suite, pinned).unwrap();
    std::fs::remove_file(p.path().join("suites/linkerd.yaml")).unwrap();
    p
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// One trial of the pinned project run by the e2e binary with test-double CLIs, its
/// `kind create` asleep (so a signal lands mid-provisioning). Its temp dirs go under `tmp()`
/// (to check none is left), its report to `reports()`, its run records to `state()`.
struct SleepingCreate {
    d: Doubles,
    lic: tempfile::TempDir,
    _project: tempfile::TempDir,
    out: tempfile::TempDir,
}

impl SleepingCreate {
    fn new() -> SleepingCreate {
        let (d, lic) = all_tools();
        let out = tempfile::tempdir().unwrap();
        std::fs::create_dir(out.path().join("tmp")).unwrap();
        SleepingCreate {
            d,
            lic,
            _project: pinned_project(),
            out,
        }
    }

    fn tmp(&self) -> PathBuf {
        self.out.path().join("tmp")
    }

    fn reports(&self) -> PathBuf {
        self.out.path().join("report")
    }

    fn state(&self) -> PathBuf {
        self.out.path().join("state")
    }

    fn license(&self) -> PathBuf {
        self.lic.path().join("license")
    }

    /// The run's command line; `via_shell` puts it under a `bash -c` that stays its parent.
    fn command(&self, via_shell: bool) -> Command {
        let mut c = if via_shell {
            let mut c = Command::new("bash");
            c.args(["-c", "\"$0\" \"$@\"; echo the shell goes on"])
                .arg(e2e_binary());
            c
        } else {
            Command::new(e2e_binary())
        };
        c.args(["--exact", "[istio] istio[k8s=1.36]::deny"])
            .env("TMPDIR", self.tmp())
            .env("MESHPROOF_PROJECT_DIR", self._project.path())
            .env("MESHPROOF_TOOL_PATH", self.d.bin())
            .env("MESHPROOF_DOUBLE_LOG", self.d.log())
            .env("MESHPROOF_DOUBLE_SLEEP_ON", "kind create")
            .env("OPENFAAS_LICENSE_FILE", self.license())
            .env("MESHPROOF_REPORT_DIR", self.reports())
            .env(meshproof::reaper::records::STATE_DIR_ENV, self.state())
            .env_remove("MESHPROOF_REQUIRE_CLUSTER")
            .env_remove("NEXTEST_EXECUTION_MODE")
            .env_remove("MESHPROOF_KEEP_CLUSTER")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    }

    /// Waits (60 s at most) for the sleeping `kind create`; returns its command line.
    fn wait_for_create(&self) -> String {
        let mut line = None;
        wait_until("kind create", std::time::Duration::from_secs(60), || {
            line = self
                .d
                .call_lines()
                .into_iter()
                .find(|l| l.starts_with("kind create cluster"));
            line.is_some()
        });
        line.unwrap_or_default()
    }

    /// Whether a tool was called with a command line starting with `prefix`.
    fn called(&self, prefix: &str) -> bool {
        self.d.call_lines().iter().any(|l| l.starts_with(prefix))
    }

    /// Waits (20 s at most) until nothing of the run is left in its temp dir.
    fn wait_for_an_empty_tmp(&self) {
        let tmp = self.tmp();
        let mut left = Vec::new();
        wait_until(
            "an empty temp dir",
            std::time::Duration::from_secs(20),
            || {
                left = std::fs::read_dir(&tmp)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                left.is_empty()
            },
        );
    }
}

/// Polls `done` every 50 ms; fails the test naming `what` when `within` runs out.
fn wait_until(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within {within:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Issues #13/#19: SIGINT to the harness mid-`kind create` deletes the cluster, exits 130 and
/// leaves a partial report: report.json says `interrupted`, the trial the signal caught is an
/// error, junit.xml carries an errored `run/interrupted` case. Before, the process
/// exited from the signal thread and no report was written at all. Then the secrets scan of
/// issue #13 over what the run left (report files, stderr, every tool's argv): the license
/// the run read appears nowhere; and the temp dir is empty.
#[test]
fn sigint_tears_down_and_writes_a_partial_report() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::time::{Duration, Instant};
    let run = SleepingCreate::new();
    // A license value the scan below can find wherever it leaked.
    const LICENSE: &str = "meshproof-license-7f3a9c2e51d04b86";
    std::fs::write(run.license(), LICENSE).unwrap();
    let mut child = run
        .command(false)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    run.wait_for_create();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("e2e did not exit within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(run.called("kind delete cluster"), "{stderr}");
    assert!(!stderr.contains("out of order"), "{stderr}");
    let reports = run.reports();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["interrupted"], "stopped by SIGINT", "{report:#}");
    assert_ne!(report["summary"]["status"], "success");
    // Errored either way: by the report (still running when the hook wrote it: "interrupted
    // before the trial finished") or by the trial itself (its `kind create` was stopped).
    let trial = &report["environments"][0]["trials"][0];
    assert_eq!(trial["outcome"]["status"], "errored", "{report:#}");
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(
        junit.contains("name=\"interrupted\"") && junit.contains("type=\"interrupted\""),
        "{junit}"
    );
    // The secrets scan over what the interrupted run left: the report directory, its stderr,
    // every tool's argv (the doubles' log): the license appears nowhere.
    let mut files = doubles::files_under(&reports);
    assert!(
        files.len() >= 3,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    files.push((run.d.log(), std::fs::read(run.d.log()).unwrap_or_default()));
    for (f, bytes) in &files {
        assert!(
            !String::from_utf8_lossy(bytes).contains(LICENSE),
            "the license leaked into {}",
            f.display()
        );
    }
    assert!(!stderr.contains(LICENSE), "the license leaked into stderr");
    // Nothing of the run is left in the temp dir once its reaper is done: the raw artifacts
    // dir, made before the reaper started, is handed to it too (it used to linger).
    run.wait_for_an_empty_tmp();
}

/// A sealed report with `trials` (`environment`, `scenario`, failed?) in `dir`; its path.
fn earlier_report(dir: &Path, trials: &[(&str, &str, bool)]) -> PathBuf {
    use meshproof::check::verdict::{CheckName, Outcome, Verdict};
    use meshproof::report::{Event, Fingerprint, Reporter, TrialOutcome};
    let r = Reporter::create(dir, "earlier", meshproof::process::Redactor::default()).unwrap();
    let at = time::OffsetDateTime::now_utc();
    r.emit(Event::RunStarted {
        at,
        git_revision: "unknown".into(),
        invocation: None,
    })
    .unwrap();
    let mut started = std::collections::BTreeSet::new();
    for (env, scenario, failed) in trials {
        if started.insert(env.to_string()) {
            r.emit(Event::EnvironmentStarted {
                environment: env.to_string(),
                fingerprint: Box::new(Fingerprint::default()),
            })
            .unwrap();
        }
        r.emit(Event::TrialStarted {
            environment: env.to_string(),
            scenario: scenario.to_string(),
        })
        .unwrap();
        let (outcome, o) = if *failed {
            (
                TrialOutcome::failed(vec!["it failed".into()]),
                Outcome::Fail,
            )
        } else {
            (TrialOutcome::Passed, Outcome::Pass)
        };
        r.emit(Event::TrialFinished {
            environment: env.to_string(),
            scenario: scenario.to_string(),
            outcome,
            duration: std::time::Duration::from_millis(5),
            verdicts: vec![Verdict::new(
                CheckName::Http,
                o,
                vec!["recorded".into()],
                serde_json::json!({}),
            )],
            controls: vec![],
        })
        .unwrap();
    }
    r.emit(Event::RunFinished { at }).unwrap();
    r.json_path()
}

/// Issue #19: `--rerun-failed REPORT` runs only what that report says failed or errored, in
/// the same environments; nothing failed is nothing to do; an edited report or one naming a
/// trial the project no longer plans is an error, never a silent partial rerun.
#[test]
fn rerun_failed_selects_only_the_failed_trials_of_a_sealed_report() {
    let out = tempfile::tempdir().unwrap();
    let report = earlier_report(
        &out.path().join("r1"),
        &[
            ("istio[k8s=1.36]", "deny", true),
            ("istio[k8s=1.36]", "tls", false),
            ("istio-ambient[k8s=1.36]", "deny-waypoint", true),
            ("linkerd[k8s=1.36]", "mtls", true),
        ],
    );
    let arg = format!("--rerun-failed={}", report.display());
    let (code, listed, err) = e2e(false, &[arg.as_str(), "--list", "--format", "terse"], &[]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = listed.lines().filter(|l| l.ends_with(": test")).collect();
    assert_eq!(
        names,
        [
            // An ambient trial is grouped by its data plane, so `[istio-ambient]` selects it.
            "[istio-ambient] istio-ambient[k8s=1.36]::deny-waypoint: test",
            "[istio] istio[k8s=1.36]::deny: test",
            "[linkerd] linkerd[k8s=1.36]::mtls: test"
        ],
        "{listed}"
    );

    // Nothing failed: nothing to rerun, and that is a success.
    let clean = earlier_report(&out.path().join("r2"), &[("istio[k8s=1.36]", "tls", false)]);
    let (code, _, err) = e2e(
        false,
        &["--rerun-failed", clean.to_str().unwrap(), "--list"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing to rerun"), "{err}");

    // A trial the project does not plan (any more).
    let gone = earlier_report(&out.path().join("r3"), &[("istio[k8s=1.99]", "deny", true)]);
    let (code, _, err) = e2e(
        false,
        &["--rerun-failed", gone.to_str().unwrap(), "--list"],
        &[],
    );
    assert_eq!(code, 101, "{err}");
    assert!(
        err.contains("istio[k8s=1.99]::deny not in this project's plan"),
        "{err}"
    );

    // An edited report cannot choose what runs.
    let text = std::fs::read_to_string(&report).unwrap();
    std::fs::write(&report, text.replacen("\"tls\"", "\"mtls\"", 1)).unwrap();
    let (code, _, err) = e2e(
        false,
        &["--rerun-failed", report.to_str().unwrap(), "--list"],
        &[],
    );
    assert_eq!(code, 101, "{err}");
    assert!(err.contains("edited"), "{err}");
}

/// Issue #13: SIGKILL of the harness while a trial provisions its environment (no handler
/// runs, no destructor): its reaper deletes the half-created kind cluster within 30 s, and
/// nothing of the run is left in the temp dir — the run's work dir and its raw artifacts dir,
/// which was registered before the reaper started.
#[test]
fn sigkill_mid_trial_leaves_the_reaper_to_delete_the_cluster_and_the_temp_dirs() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::time::Duration;
    let run = SleepingCreate::new();
    let mut child = run.command(false).spawn().unwrap();
    let created = run.wait_for_create();
    let name = created
        .split_whitespace()
        .skip_while(|w| *w != "--name")
        .nth(1)
        .unwrap()
        .to_string();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    assert_eq!(child.wait().unwrap().code(), None, "killed by the signal");
    let delete = format!("kind delete cluster --name {name}");
    wait_until(
        &format!("`{delete}` by the reaper"),
        Duration::from_secs(30),
        || run.called(&delete),
    );
    run.wait_for_an_empty_tmp();
    // Everything went, so the run record goes too: `meshproof gc` has nothing to do. The
    // reaper rewrites the record after its last removal (the temp dirs), so it is waited for:
    // reading it the moment the temp dir emptied raced that rewrite (seen under load).
    let mut records = Vec::new();
    wait_until(
        "an empty run record after the reaper",
        Duration::from_secs(10),
        || {
            records = meshproof::reaper::records::read_all(&run.state()).unwrap();
            records.is_empty()
        },
    );
}

/// Every descendant of `pid` (children first found, then theirs), from `/proc`.
fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            parent_of.push((p, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (c, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            out.push(*c);
            frontier.push(*c);
        }
    }
    out
}

/// Issue #13: CI cancellation the way GitHub Actions does it — SIGINT to the step's shell only
/// (the harness under it never sees it), SIGTERM to the shell 7.5 s later, then SIGKILL to the
/// whole process tree. The harness gets no signal it can handle, yet its reaper (detached,
/// outside the tree) deletes the cluster and the temp dirs. The e2e binary stands in for
/// `cargo test --test e2e`: cargo forwards no signal to it either (rust-lang/cargo#14929), and a
/// nested cargo would wait on the build-directory lock this test run holds.
#[test]
fn a_ci_cancel_that_signals_only_the_shell_still_leaves_nothing() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::time::Duration;
    let run = SleepingCreate::new();
    let mut shell = run
        .command(true)
        .env("MESHPROOF_DOUBLE_SLEEP_SECS", "60")
        .spawn()
        .unwrap();
    run.wait_for_create();
    let bash = Pid::from_raw(shell.id() as i32);
    let tree = descendants(bash.as_raw());
    assert!(!tree.is_empty(), "the harness runs under the shell");
    kill(bash, Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(7500));
    assert!(
        !run.called("kind delete"),
        "the harness never saw the shell's SIGINT: nothing was torn down yet"
    );
    let _ = kill(bash, Signal::SIGTERM);
    let tree: Vec<i32> = tree.into_iter().chain(descendants(bash.as_raw())).collect();
    for p in tree {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    let _ = kill(bash, Signal::SIGKILL);
    let _ = shell.wait();
    wait_until("cluster delete", Duration::from_secs(30), || {
        run.called("kind delete cluster")
    });
    run.wait_for_an_empty_tmp();
}
