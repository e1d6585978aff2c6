//! The CI and certification plumbing from the outside: `ci/nightly.yml` runs what the suites
//! declare, with pinned tools, and always keeps its reports; `meshproof certify` leaves a complete
//! submission directory whose verdict, here without a cluster, is failure.

use meshproof::report::{integrity, render, Status};
use meshproof::scenario::{Catalog, ClusterSpec};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn catalog() -> Catalog {
    meshproof::scenario::catalog::load_project(root()).expect("project validates")
}

fn workflow() -> Value {
    let text =
        std::fs::read_to_string(root().join("ci/nightly.yml")).expect("ci/nightly.yml exists");
    serde_yaml::from_str(&text).expect("ci/nightly.yml is YAML")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn steps(job: &Value) -> &Vec<Value> {
    job["steps"].as_array().expect("steps")
}

fn step_using<'a>(job: &'a Value, action: &str) -> &'a Value {
    steps(job)
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with(&format!("{action}@")))
        })
        .unwrap_or_else(|| panic!("no step uses {action}"))
}

/// A `${{ … }}` expression and `${VAR}` references substituted for one matrix cell.
fn expand(s: &str, vars: &[(&str, String)]) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out
            .replace(&format!("${{{{ {k} }}}}"), v)
            .replace(&format!("${{{k}}}"), v);
    }
    out
}

#[test]
fn nightly_runs_every_suite_environment_with_a_required_cluster() {
    let wf = workflow();
    assert!(
        wf["on"]["schedule"][0]["cron"].is_string(),
        "nightly schedule"
    );
    assert!(
        wf["on"].get("workflow_dispatch").is_some(),
        "manual dispatch"
    );
    let job = &wf["jobs"]["e2e"];
    let strategy = &job["strategy"];
    assert_eq!(
        strategy["fail-fast"],
        Value::Bool(false),
        "one broken cell must not cancel the others"
    );
    let meshes = strings(&strategy["matrix"]["mesh"]);
    let kubes = strings(&strategy["matrix"]["kubernetes"]);
    assert_eq!(meshes, ["istio", "istio-ambient", "linkerd"]);
    assert_eq!(kubes, ["1.35", "1.36"]);

    // The matrix is exactly the suites' environments: a suite with no nightly cell is never
    // run on a real cluster.
    let c = catalog();
    let envs: BTreeSet<String> = c
        .suites
        .iter()
        .flat_map(|s| s.environments.iter().map(|e| e.name.clone()))
        .collect();
    let cells: BTreeSet<String> = meshes
        .iter()
        .flat_map(|m| kubes.iter().map(move |k| format!("{m}[k8s={k}]")))
        .collect();
    assert_eq!(cells, envs);

    let env = &job["env"];
    assert_eq!(env["MESHPROOF_REQUIRE_CLUSTER"], "1");
    let report_dir = env["MESHPROOF_REPORT_DIR"]
        .as_str()
        .expect("MESHPROOF_REPORT_DIR");
    let rel = report_dir
        .strip_prefix("${{ github.workspace }}/")
        .expect("report dir inside the workspace");

    // The e2e command selects exactly one environment per cell.
    let run = steps(job)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains("--test e2e"))
        .expect("a step runs the e2e harness");
    // Built by cargo, run by `exec`: a cancelled job's SIGINT reaches the harness itself
    // (cargo does not forward signals to test binaries), so it tears down (issue #13).
    assert!(run.trim_start().starts_with("bin=$(cargo test"), "{run}");
    assert!(run.contains("--no-run --message-format=json"), "{run}");
    let last = run.trim_end().lines().last().unwrap().trim();
    assert!(last.starts_with("exec \"$bin\" "), "{run}");
    for m in &meshes {
        for k in &kubes {
            let cmd = expand(
                last,
                &[("matrix.mesh", m.clone()), ("matrix.kubernetes", k.clone())],
            );
            let env_name = format!("{m}[k8s={k}]");
            assert!(
                cmd.ends_with(&format!(
                    " {}",
                    render::shell_quote(&render::libtest_filter(&env_name))
                )),
                "{cmd}"
            );
        }
    }

    // After the run, even a cancelled one: `meshproof gc` deletes what a run killed together
    // with its reaper left (issue #13).
    let all = steps(job);
    let run_at = all
        .iter()
        .position(|s| s["run"].as_str().is_some_and(|r| r.contains("--test e2e")))
        .unwrap();
    let gc_at = all
        .iter()
        .position(|s| {
            s["run"]
                .as_str()
                .is_some_and(|r| r.trim().ends_with("-- gc"))
        })
        .expect("a step runs `meshproof gc`");
    assert!(gc_at > run_at, "gc runs after the harness");
    assert_eq!(all[gc_at]["if"], "always()");

    // Provenance: every report file is attested by this workflow run, also when the run failed,
    // after the harness wrote it; the job may mint the OIDC token and store the attestation.
    let attest = step_using(job, "actions/attest-build-provenance");
    assert_eq!(attest["uses"], "actions/attest-build-provenance@v2");
    assert_eq!(attest["if"], "always()");
    assert_eq!(
        attest["with"]["subject-path"],
        format!("{rel}/**").as_str(),
        "every file of the report directory"
    );
    let attest_at = all.iter().position(|s| std::ptr::eq(s, attest)).unwrap();
    assert!(attest_at > run_at, "attested after the report is written");
    let perms = &job["permissions"];
    for (k, v) in [
        ("id-token", "write"),
        ("attestations", "write"),
        ("contents", "read"),
        ("checks", "write"),
    ] {
        assert_eq!(perms[k], v, "job permission {k}: {perms:?}");
    }

    let upload = step_using(job, "actions/upload-artifact");
    assert_eq!(upload["uses"], "actions/upload-artifact@v4");
    assert_eq!(
        upload["if"], "always()",
        "reports of failed runs are the ones that matter"
    );
    assert_eq!(upload["with"]["path"], rel);
    let junit = step_using(job, "mikepenz/action-junit-report");
    assert_eq!(junit["uses"], "mikepenz/action-junit-report@v5");
    assert_eq!(junit["if"], "always()");
    assert_eq!(
        junit["with"]["report_paths"],
        format!("{rel}/junit.xml").as_str()
    );
}

/// Issue #16: tools.yaml is the one place a tool version is stated. The nightly installs with
/// `meshproof tools install` for its cell and names no version, no download URL of its own.
#[test]
fn nightly_names_no_tool_version_and_installs_the_pinned_tools() {
    let text = std::fs::read_to_string(root().join("ci/nightly.yml")).unwrap();
    let wf = workflow();
    let job = &wf["jobs"]["e2e"];
    let table = meshproof::toolchain::table::Table::committed().expect("tools.yaml");
    let c = catalog();
    // No tool version: neither the table's nor a node image's (kubectl follows the node image).
    let mut versions: Vec<String> = meshproof::toolchain::table::TOOLS
        .iter()
        .filter_map(|t| table.version(t).map(str::to_string))
        .collect();
    for s in &c.suites {
        for e in &s.environments {
            if let ClusterSpec::Kind { node_image, .. } = &e.cluster {
                versions.extend(node_image.kube_version_tag().map(str::to_string));
            }
        }
    }
    assert!(versions.len() >= 7, "{versions:?}");
    for v in &versions {
        assert!(
            !text.contains(v.as_str()),
            "ci/nightly.yml names version {v}"
        );
    }
    assert!(
        wf["env"]
            .as_object()
            .is_none_or(|m| m.keys().all(|k| !k.ends_with("_VERSION"))),
        "no *_VERSION variables: {:?}",
        wf["env"]
    );
    assert!(
        job["strategy"]["matrix"]["include"].is_null(),
        "no per-minor kubectl rows"
    );

    // Every action is pinned to a version tag; no step downloads anything itself.
    let mut install_at = None;
    let mut path_at = None;
    let mut run_at = None;
    for (i, step) in steps(job).iter().enumerate() {
        if let Some(u) = step["uses"].as_str() {
            let tag = u.split('@').nth(1).unwrap_or("");
            assert!(
                tag.starts_with('v') || tag.chars().next().is_some_and(|c| c.is_ascii_digit()),
                "{u} is not pinned to a version"
            );
        }
        let Some(run) = step["run"].as_str() else {
            continue;
        };
        assert!(
            !run.contains("https://") && !run.contains("curl ") && !run.contains("wget "),
            "a step downloads by itself: {run}"
        );
        let cell = "--env \"$env\"";
        if run.contains("-- tools install") && run.contains(cell) {
            install_at = Some(i);
            assert!(
                run.contains("env='${{ matrix.mesh }}[k8s=${{ matrix.kubernetes }}]'"),
                "installs for the cell's environment: {run}"
            );
        }
        if run.contains("-- tools path")
            && run.contains(cell)
            && run.contains(">> \"$GITHUB_PATH\"")
        {
            path_at = Some(i);
        }
        if step["name"].as_str() == Some("Conformance run") {
            run_at = Some(i);
        }
    }
    let (install_at, path_at, run_at) = (
        install_at.expect("a `tools install --env` step"),
        path_at.expect("`tools path` added to $GITHUB_PATH"),
        run_at.expect("the conformance run"),
    );
    assert!(install_at <= path_at && path_at < run_at);

    // Every cell's environment exists, so `--env` selects something in every cell.
    let names: BTreeSet<String> = c
        .suites
        .iter()
        .flat_map(|s| s.environments.iter().map(|e| e.name.clone()))
        .collect();
    for mesh in strings(&job["strategy"]["matrix"]["mesh"]) {
        for k in strings(&job["strategy"]["matrix"]["kubernetes"]) {
            let env = format!("{mesh}[k8s={k}]");
            assert!(names.contains(&env), "{env} is no suite environment");
        }
    }
}

#[test]
fn certify_leaves_a_complete_directory_and_fails_without_a_cluster() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("submission");
    let res = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args([
            "certify",
            "--suite",
            "istio",
            "--env",
            "istio[k8s=1.36]",
            "--organization",
            "Example Mesh Co",
            "--contact",
            "@example/mesh",
            "--out",
        ])
        .arg(&dir)
        .current_dir(root())
        .env_remove("MESHPROOF_REPORT_DIR")
        .env_remove("MESHPROOF_PROJECT_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&res.stdout),
        String::from_utf8_lossy(&res.stderr),
    );
    assert_eq!(
        res.status.code(),
        Some(1),
        "certify must fail without a cluster\n{stdout}\n{stderr}"
    );
    for f in [
        "README.md",
        "e2e.log",
        "report/report.json",
        "report/junit.xml",
        "report/conformance-report.yaml",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing\n{stderr}");
    }
    let report = integrity::verify(&dir.join("report/report.json")).expect("the report verifies");
    assert_eq!(
        report.summary.status,
        Status::Failure,
        "no cluster is a failure, never a success or partial"
    );
    assert_eq!(report.suites.len(), 1);
    assert_eq!(report.environments.len(), 1);
    assert_eq!(report.environments[0].name, "istio[k8s=1.36]");
    let ids: Vec<&str> = report.trials().map(|(_, t)| t.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "istio[k8s=1.36]::canary",
            "istio[k8s=1.36]::deny",
            "istio[k8s=1.36]::mtls",
            "istio[k8s=1.36]::restore",
            "istio[k8s=1.36]::tls"
        ]
    );
    assert!(
        report.trials().all(|(_, t)| t.outcome.label() == "errored"),
        "{report:#?}"
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("Result: **failure**"), "{readme}");
    assert!(
        readme.contains("MESHPROOF_REQUIRE_CLUSTER=1 cargo test --test e2e -- 'istio[k8s=1.36]'"),
        "{readme}"
    );
    assert!(readme.contains("report/report.json"), "{readme}");
    assert!(stdout.contains("result: FAILURE"), "{stdout}");

    // The conformance report of the same run: every profile failed (no cluster), and the
    // README says what each one would have claimed.
    let text = std::fs::read_to_string(dir.join("report/conformance-report.yaml")).unwrap();
    let c = meshproof::report::conformance::from_yaml(&text).expect("conformance report reads");
    assert_eq!(c.implementation.organization, "Example Mesh Co");
    assert_eq!(c.implementation.contact, ["@example/mesh"]);
    assert_eq!(c.implementation.url, "unknown", "not given, so not made up");
    assert_eq!(c.implementation.project, "istio");
    assert_eq!(c.profiles.len(), 5, "{text}");
    for p in &c.profiles {
        assert_eq!(p.core.result, Status::Failure, "{text}");
        assert_eq!(
            p.core.failed_tests.len(),
            1,
            "one trial per profile in one environment: {text}"
        );
        assert!(
            ids.contains(&p.core.failed_tests[0].as_str()),
            "{:?} is a trial of report.json",
            p.core.failed_tests
        );
        let row = readme
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` |", p.name)))
            .unwrap_or_else(|| panic!("no README row for {}\n{readme}", p.name));
        assert!(
            row.contains("**failure**") && row.contains(&p.name.claim().replace('|', "\\|")),
            "{row}"
        );
    }
    assert!(readme.contains("## Conformance profiles"), "{readme}");
    assert!(
        readme.contains("`report/conformance-report.yaml` —"),
        "{readme}"
    );

    // A second run into the same directory refuses to mix reports.
    let again = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(["certify", "--suite", "istio", "--out"])
        .arg(&dir)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn certify_rejects_unknown_suites_and_environments() {
    for args in [
        vec!["certify", "--suite", "nope"],
        vec!["certify", "--suite", "istio", "--env", "linkerd[k8s=1.36]"],
    ] {
        let out = tempfile::tempdir().unwrap();
        let res = Command::new(env!("CARGO_BIN_EXE_meshproof"))
            .args(&args)
            .arg("--out")
            .arg(out.path())
            .current_dir(root())
            .output()
            .unwrap();
        assert_eq!(
            res.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        assert!(!out.path().join("report/report.json").exists());
    }
}

#[test]
fn e2e_without_a_cluster_reports_ignored_trials_with_their_reason() {
    let env_name = "linkerd[k8s=1.35]";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let missing = rt
        .block_on(meshproof::preflight::Report::gather(&catalog()))
        .missing_for(env_name);
    if missing.is_empty() {
        eprintln!("skipped: this machine can provision {env_name}; the ignored path is for machines without a cluster");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("r");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args([
        "test",
        "-q",
        "--test",
        "e2e",
        "--",
        env_name,
        "--report-dir",
    ])
    .arg(&dir)
    .current_dir(root());
    // As in `meshproof certify`: crate variables of this test must not reach the nested cargo.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    let res = cmd
        .env_remove("MESHPROOF_REQUIRE_CLUSTER")
        .env_remove("MESHPROOF_REPORT_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("e2e: report: {}", dir.display())),
        "the report dir is printed at the end: {stderr}"
    );
    let report = integrity::verify(&dir.join("report.json")).expect("report written and sealed");
    assert_eq!(
        report.summary.status,
        Status::Partial,
        "ignored trials are not a success"
    );
    assert_eq!(report.environments.len(), 1);
    let trials: Vec<_> = report.trials().map(|(_, t)| t.clone()).collect();
    assert_eq!(trials.len(), 5, "{trials:#?}");
    for t in &trials {
        assert_eq!(t.outcome.label(), "ignored");
        assert!(
            t.outcome.reasons()[0].starts_with("no cluster: missing "),
            "{:?}",
            t.outcome
        );
    }
    // Nothing ran, so no profile is claimed: every one is partial, never success.
    let text = std::fs::read_to_string(dir.join("conformance-report.yaml"))
        .expect("conformance-report.yaml beside report.json");
    let c = meshproof::report::conformance::from_yaml(&text).unwrap();
    assert_eq!(c.mode, "linkerd");
    assert_eq!(c.profiles.len(), 5, "{text}");
    for p in &c.profiles {
        assert_eq!(p.core.result, Status::Partial, "{text}");
        assert_eq!(p.core.statistics.skipped, 1, "{text}");
    }
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert_eq!(
        junit
            .matches("<skipped message=\"no cluster: missing ")
            .count(),
        trials.len(),
        "{junit}"
    );
    assert!(
        report
            .invocation
            .as_deref()
            .is_some_and(|i| i.starts_with("cargo test --test e2e -- ")
                && i.contains("'linkerd[k8s=1.35]'")
                && !i.contains("--report-dir")),
        "{:?}",
        report.invocation
    );
}

/// Pro suites (the Istio sidecar suite) get their license from a repository secret, written to
/// a 0600 file before the conformance run and named by OPENFAAS_LICENSE_FILE; it is never
/// echoed, and only the cells of Pro suites receive it.
#[test]
fn nightly_gives_pro_suites_their_license_from_a_secret() {
    let wf = workflow();
    let job = &wf["jobs"]["e2e"];
    let all = steps(job);
    let (i, step) = all
        .iter()
        .enumerate()
        .find(|(_, s)| s["env"]["OPENFAAS_LICENSE"].is_string())
        .expect("a step takes the license secret");
    assert_eq!(
        step["env"]["OPENFAAS_LICENSE"],
        "${{ secrets.OPENFAAS_LICENSE }}"
    );
    let run = step["run"].as_str().unwrap();
    assert!(run.contains("umask 077"), "{run}");
    assert!(run.contains("OPENFAAS_LICENSE_FILE="), "{run}");
    assert!(
        !run.contains("echo \"$OPENFAAS_LICENSE\""),
        "never echoed: {run}"
    );
    let conformance = all
        .iter()
        .position(|s| s["run"].as_str().is_some_and(|r| r.contains("--test e2e")))
        .unwrap();
    assert!(i < conformance, "the license is in place before the run");
    let pro: Vec<String> = catalog()
        .suites
        .iter()
        .filter(|s| s.openfaas.edition.is_pro())
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(pro, ["istio"], "the Istio sidecar suite runs OpenFaaS Pro");
    assert_eq!(step["if"], "matrix.mesh == 'istio'");
}
