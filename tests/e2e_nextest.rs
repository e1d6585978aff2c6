//! The conformance harness under nextest, which lists the trials and then runs each one in a
//! process of its own (`NEXTEST_EXECUTION_MODE=process-per-test`): no environment can be shared
//! there, so a trial that could run refuses with the command that works — never a cluster per
//! trial — and a trial that cannot run is listed as ignored, so nextest shows it skipped rather
//! than passed.
//!
//! The e2e binary is run directly, the way nextest runs it (the same arguments and
//! environment), with TEST-DOUBLE CLIs standing in for every tool.

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
    // The doubles cover the tools: nextest's listing marks nothing ignored.
    let (_, ignored, _) = e2e(true, &["--list", "--format", "terse", "--ignored"], &envs);
    assert!(!ignored.lines().any(|l| l.ends_with(": test")), "{ignored}");
    let name = "[istio] istio[k8s=1.34]::tls";
    let (code, out, err) = e2e(true, &["--exact", name, "--nocapture"], &envs);
    assert_ne!(code, 0, "{out}{err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("nextest runs each test in a process of its own")
            && all.contains("cargo test --test e2e -- 'istio[k8s=1.34]'"),
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
