//! The report directory from the outside: JUnit validity (a real XSD validator and a real JUnit
//! consumer, both Python), escaping of hostile text, every `report.json` field, the integrity
//! hash, the success/partial/failure rule, secret redaction across every written file, and the
//! renderings (`meshproof report`, `--markdown`).
//!
//! The Python side needs `python3` with the PyPI packages `xmlschema` and `junitparser`; without
//! them these tests say why they skipped, and fail instead under `CI=true`.

mod doubles;

use meshproof::check::verdict::{CheckName, Outcome, Verdict};
use meshproof::images::resolve::PinSource;
use meshproof::images::Resolved;
use meshproof::process::Redactor;
use meshproof::report::conformance::{self, Conformance, ImplementationArgs, Profile};
use meshproof::report::{
    self, integrity, Control, Event, Fingerprint, Integrity, Reporter, Status, TrialOutcome,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn at() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

fn catalog() -> meshproof::scenario::Catalog {
    meshproof::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR")))
        .expect("project validates")
}

/// The real fingerprint of a suite environment of this project.
fn fingerprint(env_name: &str) -> Fingerprint {
    let c = catalog();
    for s in &c.suites {
        for e in &s.environments {
            if e.name == env_name {
                return Fingerprint::declared(s, e);
            }
        }
    }
    panic!("no environment {env_name}")
}

fn verdict(
    check: CheckName,
    outcome: Outcome,
    reasons: &[&str],
    evidence: Value,
) -> Verdict<Value> {
    Verdict::new(
        check,
        outcome,
        reasons.iter().map(|r| r.to_string()).collect(),
        evidence,
    )
}

/// Emits one trial.
fn trial(
    r: &Reporter,
    env: &str,
    scenario: &str,
    outcome: TrialOutcome,
    verdicts: Vec<Verdict<Value>>,
    controls: Vec<Control>,
) {
    r.emit(Event::TrialStarted {
        environment: env.into(),
        scenario: scenario.into(),
    })
    .unwrap();
    r.emit(Event::TrialFinished {
        environment: env.into(),
        scenario: scenario.into(),
        outcome,
        duration: Duration::from_millis(1234),
        verdicts,
        controls,
    })
    .unwrap();
}

fn start(r: &Reporter, envs: &[(&str, Fingerprint)]) {
    r.emit(Event::RunStarted {
        at: at(),
        git_revision: "0123456789abcdef0123456789abcdef01234567".into(),
        invocation: None,
    })
    .unwrap();
    for (name, f) in envs {
        r.emit(Event::EnvironmentStarted {
            environment: name.to_string(),
            fingerprint: Box::new(f.clone()),
        })
        .unwrap();
    }
}

const NASTY: &str = "expected <b>&amp; \"quoted\" 'single'\nsecond line\twith tab, ESC \u{1b}[31m, NUL \u{0}, BEL \u{7}, U+FFFE \u{FFFE}, ]]> and emoji 🚀";

/// A run with one trial of each outcome, hostile text everywhere a string goes.
fn nasty_run(dir: &Path) -> Reporter {
    let r = Reporter::create(dir, "run-nasty", Redactor::default()).unwrap();
    let mut odd = fingerprint("istio[k8s=1.36]");
    odd.environment = "env <&\"'>\u{1b}".into();
    start(
        &r,
        &[
            ("istio[k8s=1.36]", fingerprint("istio[k8s=1.36]")),
            ("env <&\"'>\u{1b}", odd),
        ],
    );
    let pass = verdict(
        CheckName::Tls,
        Outcome::Pass,
        &[],
        json!({"daysLeft": 89.5}),
    );
    trial(
        &r,
        "istio[k8s=1.36]",
        "tls",
        TrialOutcome::Passed,
        vec![pass],
        vec![Control::compare("wrong host", "rejected", "rejected")],
    );
    let fail = verdict(
        CheckName::Canary,
        Outcome::Fail,
        &[NASTY],
        json!({"observed": {"stable": 0.5}}),
    );
    trial(
        &r,
        "istio[k8s=1.36]",
        "canary",
        TrialOutcome::Passed,
        vec![fail],
        vec![],
    );
    trial(
        &r,
        "env <&\"'>\u{1b}",
        "scenario \"<&>\"\nnext",
        TrialOutcome::errored(vec![NASTY.into()]),
        vec![],
        vec![],
    );
    trial(
        &r,
        "env <&\"'>\u{1b}",
        "ignored one",
        TrialOutcome::ignored(NASTY),
        vec![],
        vec![],
    );
    r.emit(Event::RunFinished { at: at() }).unwrap();
    r
}

// ------------------------------------------------------------------ Python consumers

/// Runs a Python snippet; `None` (after saying why) when Python or a package is missing
/// outside CI.
fn python(script: &str, args: &[&str]) -> Option<std::process::Output> {
    let probe = Command::new("python3")
        .args(["-c", "import xmlschema, junitparser"])
        .output();
    let ok = matches!(&probe, Ok(o) if o.status.success());
    if !ok {
        let why = match probe {
            Ok(o) => String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .to_string(),
            Err(e) => format!("python3: {e}"),
        };
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("CI=true: python3 with xmlschema and junitparser is required (pip install xmlschema junitparser): {why}");
        }
        eprintln!("skipped: python3 with xmlschema and junitparser not available ({why}); pip install xmlschema junitparser");
        return None;
    }
    Some(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("python3 runs"),
    )
}

fn xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/junit/junit-10.xsd")
}

const VALIDATE: &str = r#"
import sys, xmlschema
schema = xmlschema.XMLSchema(sys.argv[1])
errors = list(schema.iter_errors(sys.argv[2]))
for e in errors[:5]:
    print(e.reason, e.path)
sys.exit(1 if errors else 0)
"#;

/// The same file read by junitparser, the way CI JUnit readers see it.
const CONSUME: &str = r#"
import sys, json, junitparser
xml = junitparser.JUnitXml.fromfile(sys.argv[1])
suites = []
for s in xml:
    cases = []
    for c in s:
        cases.append({
            "classname": c.classname, "name": c.name, "time": c.time,
            "results": [{"kind": type(r).__name__, "message": r.message, "text": r.text} for r in c.result],
        })
    suites.append({"name": s.name, "tests": s.tests, "failures": s.failures, "errors": s.errors,
                   "skipped": s.skipped, "cases": cases})
print(json.dumps({"tests": xml.tests, "failures": xml.failures, "errors": xml.errors, "suites": suites}))
"#;

/// `junit.xml` validated against the Jenkins XSD, then read back by junitparser (as CI readers
/// see it), as JSON; `None` when the Python side is missing outside CI (see [`python`]).
fn junit_read_back(junit: &Path, text: &str) -> Option<Value> {
    let out = python(
        VALIDATE,
        &[xsd().to_str().unwrap(), junit.to_str().unwrap()],
    )?;
    assert!(
        out.status.success(),
        "junit.xml is not valid: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = python(CONSUME, &[junit.to_str().unwrap()])?;
    assert!(
        out.status.success(),
        "junitparser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn junit_is_valid_against_the_jenkins_schema_and_reads_back_exactly() {
    let d = tempfile::tempdir().unwrap();
    let r = nasty_run(d.path());
    let junit = r.junit_path();
    let text = std::fs::read_to_string(&junit).unwrap();
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{0}') && !text.contains('\u{FFFE}'),
        "forbidden characters leaked"
    );

    let Some(j) = junit_read_back(&junit, &text) else {
        return;
    };
    assert_eq!(
        (
            j["tests"].as_u64(),
            j["failures"].as_u64(),
            j["errors"].as_u64()
        ),
        (Some(4), Some(1), Some(1)),
        "{j:#}"
    );
    let suites = j["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 2);
    let odd = suites
        .iter()
        .find(|s| s["name"] == "env <&\"'>\\u{1b}")
        .unwrap_or_else(|| panic!("{j:#}"));
    assert_eq!(odd["skipped"], 1);
    let err_case = odd["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["results"][0]["kind"] == "Error")
        .unwrap();
    assert_eq!(err_case["classname"], "env <&\"'>\\u{1b}");
    // Attributes are single-line; control characters XML cannot carry are visible escapes.
    assert_eq!(err_case["name"], "scenario \"<&>\" next");
    let expected_message = NASTY
        .replace(['\n', '\t'], " ")
        .replace('\u{1b}', "\\u{1b}")
        .replace('\u{0}', "\\u{0}")
        .replace('\u{7}', "\\u{7}")
        .replace('\u{FFFE}', "\\u{fffe}");
    assert_eq!(err_case["results"][0]["message"], expected_message.as_str());
    // The element text keeps the newline and the tab.
    let body = err_case["results"][0]["text"].as_str().unwrap();
    assert!(
        body.contains("\"quoted\" 'single'\nsecond line\twith tab"),
        "{body:?}"
    );
    let skipped = odd["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["results"][0]["kind"] == "Skipped")
        .unwrap();
    assert_eq!(skipped["results"][0]["message"], expected_message.as_str());
    let main = suites
        .iter()
        .find(|s| s["name"] == "istio[k8s=1.36]")
        .unwrap();
    let canary = main["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "canary")
        .unwrap();
    assert_eq!(canary["results"][0]["kind"], "Failure");
    assert_eq!(canary["time"], 1.234);
    let tls = main["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "tls")
        .unwrap();
    assert_eq!(
        tls["results"].as_array().unwrap().len(),
        0,
        "a pass carries no result element"
    );
}

#[test]
fn the_schema_check_can_fail() {
    // A validator that accepts everything would make the test above worthless.
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<testsuites skipped=\"1\"><testsuite name=\"e\" tests=\"1\"><testcase name=\"t\"><failure/><skipped/></testcase></testsuite></testsuites>",
    )
    .unwrap();
    let Some(out) = python(VALIDATE, &[xsd().to_str().unwrap(), bad.to_str().unwrap()]) else {
        return;
    };
    assert!(
        !out.status.success(),
        "the schema accepted skipped-after-failure and testsuites@skipped"
    );
}

// ------------------------------------------------------------------ report.json

/// Every field a consumer may rely on, as JSON pointers: present even when null.
const FIELDS: &[&str] = &[
    "/schema",
    "/runId",
    "/meshproof/version",
    "/meshproof/gitRevision",
    "/startedAt",
    "/finishedAt",
    "/invocation",
    "/sha256",
    "/summary/status",
    "/summary/counts/passed",
    "/summary/counts/failed",
    "/summary/counts/errored",
    "/summary/counts/ignored",
    "/summary/durationMs",
    "/suites/0/name",
    "/suites/0/status",
    "/suites/0/counts/passed",
    "/suites/0/environments/0",
    "/environments/0/name",
    "/environments/0/suite",
    "/environments/0/startedAt",
    "/environments/0/finishedAt",
    "/environments/0/teardownError",
    "/environments/0/fingerprint/suite",
    "/environments/0/fingerprint/environment",
    "/environments/0/fingerprint/kubernetes/provider",
    "/environments/0/fingerprint/kubernetes/requestedVersion",
    "/environments/0/fingerprint/kubernetes/serverVersion",
    "/environments/0/fingerprint/kubernetes/nodeImage",
    "/environments/0/fingerprint/kubernetes/nodeImageDigest",
    "/environments/0/fingerprint/mesh/name",
    "/environments/0/fingerprint/mesh/version",
    "/environments/0/fingerprint/mesh/installedVersion",
    "/environments/0/fingerprint/openfaas/chartVersion",
    "/environments/0/fingerprint/openfaas/edition",
    "/environments/0/fingerprint/components/certManager",
    "/environments/0/fingerprint/components/flux",
    "/environments/0/fingerprint/components/gatewayApi",
    "/environments/0/fingerprint/components/sealedSecrets",
    "/environments/0/fingerprint/tools/docker",
    "/environments/0/fingerprint/tools/kind",
    "/environments/0/fingerprint/tools/helm",
    "/environments/0/fingerprint/tools/istioctl",
    "/environments/0/fingerprint/tools/linkerd",
    "/environments/0/fingerprint/tools/flux",
    "/environments/0/fingerprint/tools/kubeseal",
    "/environments/0/fingerprint/tools/git",
    "/environments/0/fingerprint/images/function/declared",
    "/environments/0/fingerprint/images/function/deployed",
    "/environments/0/fingerprint/images/function/pinnedBy",
    "/environments/0/fingerprint/images/probe/deployed",
    "/environments/0/fingerprint/images/capture/deployed",
    "/environments/0/trials/0/id",
    "/environments/0/trials/0/scenario",
    "/environments/0/trials/0/outcome/status",
    "/environments/0/trials/0/durationMs",
    "/environments/0/trials/0/artifacts",
    "/environments/0/trials/0/verdicts/0/check",
    "/environments/0/trials/0/verdicts/0/outcome",
    "/environments/0/trials/0/verdicts/0/reasons",
    "/environments/0/trials/0/verdicts/0/evidence",
    "/environments/0/trials/0/controls/0/name",
    "/environments/0/trials/0/controls/0/expected",
    "/environments/0/trials/0/controls/0/observed",
    "/environments/0/trials/0/controls/0/held",
];

const FUNCTION_DIGEST: &str =
    "sha256:3333333333333333333333333333333333333333333333333333333333333333";

#[test]
fn report_json_has_every_field() {
    let d = tempfile::tempdir().unwrap();
    let r = Reporter::create(d.path(), "run-fields", Redactor::default()).unwrap();
    let declared = fingerprint("linkerd[k8s=1.35]");
    assert_eq!(
        declared.images["function"].deployed, None,
        "a tag is unknown until resolved"
    );
    start(&r, &[("linkerd[k8s=1.35]", declared)]);
    // The session resolved the function image's tag when the environment came up.
    let suite = catalog()
        .suites
        .into_iter()
        .find(|s| s.name.as_str() == "linkerd")
        .unwrap();
    let resolved: Vec<Resolved> = suite
        .images
        .iter()
        .map(|(role, image)| Resolved {
            role,
            declared: image.clone(),
            deployed: if image.is_pinned() {
                image.clone()
            } else {
                image.pinned(FUNCTION_DIGEST).unwrap()
            },
            source: if image.is_pinned() {
                PinSource::Suite
            } else {
                PinSource::Registry
            },
        })
        .collect();
    r.emit(Event::EnvironmentUpdated {
        environment: "linkerd[k8s=1.35]".into(),
        fingerprint: Box::new(Fingerprint::default().with_images(&resolved)),
    })
    .unwrap();
    let v = verdict(
        CheckName::Mtls,
        Outcome::Pass,
        &[],
        json!({"flows": 12, "alpn": ["istio"], "ratio": 0.1 + 0.2}),
    );
    let control = Control::compare(
        "unmeshed twin shows the sentinel",
        "sentinel seen",
        "sentinel seen",
    );
    trial(
        &r,
        "linkerd[k8s=1.35]",
        "mtls",
        TrialOutcome::Passed,
        vec![v],
        vec![control],
    );
    r.emit(Event::RunFinished { at: at() }).unwrap();
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(r.json_path()).unwrap()).unwrap();
    let missing: Vec<&&str> = FIELDS.iter().filter(|p| doc.pointer(p).is_none()).collect();
    assert!(missing.is_empty(), "missing {missing:?} in {doc:#}");
    assert_eq!(doc["schema"], "meshproof-report/1");
    assert_eq!(doc["meshproof"]["version"], env!("CARGO_PKG_VERSION"));
    let f = &doc["environments"][0]["fingerprint"];
    assert_eq!(f["kubernetes"]["requestedVersion"], "v1.35.8");
    assert_eq!(
        f["kubernetes"]["nodeImageDigest"],
        "sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0"
    );
    assert_eq!(
        f["kubernetes"]["serverVersion"],
        Value::Null,
        "unknown until a cluster answers"
    );
    assert_eq!(f["mesh"]["version"], "edge-26.8.3");
    assert_eq!(f["openfaas"]["chartVersion"], "15.0.6");
    assert_eq!(f["openfaas"]["edition"], "ce");
    assert_eq!(f["components"]["gatewayApi"], "v1.5.1");
    let function = &f["images"]["function"];
    assert_eq!(function["declared"], "ghcr.io/openfaas/alpine:latest");
    assert_eq!(
        function["deployed"],
        format!("ghcr.io/openfaas/alpine:latest@{FUNCTION_DIGEST}")
    );
    assert_eq!(function["pinnedBy"], "registry");
    assert_eq!(f["images"]["probe"]["pinnedBy"], "suite");
    assert_eq!(
        f["images"]["probe"]["deployed"],
        f["images"]["probe"]["declared"]
    );
    assert_eq!(
        f["suite"], "linkerd",
        "an update adds facts, it does not blank the others"
    );
    let t = &doc["environments"][0]["trials"][0];
    assert_eq!(t["id"], "linkerd[k8s=1.35]::mtls");
    assert_eq!(t["outcome"]["status"], "passed");
    assert_eq!(t["durationMs"], 1234);
    assert_eq!(t["verdicts"][0]["evidence"]["flows"], 12);
    assert_eq!(t["controls"][0]["held"], true);
    for key in ["startedAt", "finishedAt"] {
        let s = doc[key].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok(),
            "{key}={s}"
        );
    }
    assert_eq!(doc["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn the_hash_detects_an_edit_but_not_reformatting() {
    let d = tempfile::tempdir().unwrap();
    let r = nasty_run(d.path());
    let path = r.json_path();
    let original = std::fs::read_to_string(&path).unwrap();
    integrity::verify(&path).expect("a fresh report verifies");

    // Reformatting (compact, keys in another order) is not an edit.
    let doc: Value = serde_json::from_str(&original).unwrap();
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    integrity::verify(&path).expect("re-serialized report still verifies");

    // Turning the failed canary into a pass is.
    let mut edited = doc.clone();
    let trials = edited["environments"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .flat_map(|e| e["trials"].as_array_mut().unwrap().iter_mut());
    let canary = trials
        .into_iter()
        .find(|t| t["scenario"] == "canary")
        .unwrap();
    canary["outcome"] = json!({"status": "passed"});
    std::fs::write(&path, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
    let err = integrity::verify(&path).unwrap_err();
    assert!(matches!(err, report::ReportError::Tampered { .. }), "{err}");
    let (_, i) = integrity::load(&path).unwrap();
    assert!(matches!(i, Integrity::Mismatch { .. }));

    // A one-millisecond change to a duration is, too.
    let tweaked = original.replacen("\"durationMs\": 1234", "\"durationMs\": 1235", 1);
    assert_ne!(tweaked, original);
    std::fs::write(&path, &tweaked).unwrap();
    assert!(integrity::verify(&path).is_err());

    // Removing the hash does not make a report trustworthy.
    let mut unsealed = doc.clone();
    unsealed.as_object_mut().unwrap().remove("sha256");
    std::fs::write(&path, serde_json::to_string(&unsealed).unwrap()).unwrap();
    assert!(matches!(
        integrity::verify(&path).unwrap_err(),
        report::ReportError::Unsealed { .. }
    ));
}

// ------------------------------------------------------------------ summary rule

#[test]
fn suites_are_success_partial_or_failure() {
    let d = tempfile::tempdir().unwrap();
    let r = Reporter::create(d.path(), "run-summary", Redactor::default()).unwrap();
    let mut a = fingerprint("istio[k8s=1.36]");
    a.suite = "all-pass".into();
    let mut b = fingerprint("istio[k8s=1.35]");
    b.suite = "some-ignored".into();
    let mut c = fingerprint("linkerd[k8s=1.36]");
    c.suite = "one-failed".into();
    start(&r, &[("a", a), ("b", b), ("c", c)]);
    let pass = || vec![verdict(CheckName::Http, Outcome::Pass, &[], json!({}))];
    trial(&r, "a", "x", TrialOutcome::Passed, pass(), vec![]);
    trial(&r, "a", "y", TrialOutcome::Passed, pass(), vec![]);
    trial(&r, "b", "x", TrialOutcome::Passed, pass(), vec![]);
    trial(
        &r,
        "b",
        "y",
        TrialOutcome::ignored("flaky upstream"),
        vec![],
        vec![],
    );
    trial(&r, "c", "x", TrialOutcome::Passed, pass(), vec![]);
    // Claimed a pass, but the verdict failed: the reporter does not believe the claim.
    trial(
        &r,
        "c",
        "y",
        TrialOutcome::Passed,
        vec![verdict(
            CheckName::Http,
            Outcome::Fail,
            &["403 expected, got 200"],
            json!({}),
        )],
        vec![],
    );
    r.emit(Event::RunFinished { at: at() }).unwrap();
    let rep = integrity::verify(&r.json_path()).unwrap();
    let status = |n: &str| rep.suites.iter().find(|s| s.name == n).map(|s| s.status);
    assert_eq!(status("all-pass"), Some(Status::Success));
    assert_eq!(status("some-ignored"), Some(Status::Partial));
    assert_eq!(status("one-failed"), Some(Status::Failure));
    assert_eq!(rep.summary.status, Status::Failure);
    assert_eq!(
        (
            rep.summary.counts.passed,
            rep.summary.counts.failed,
            rep.summary.counts.ignored
        ),
        (4, 1, 1)
    );
}

#[test]
fn events_out_of_order_are_rejected_and_unfinished_trials_are_errors() {
    let d = tempfile::tempdir().unwrap();
    let r = Reporter::create(d.path(), "run-protocol", Redactor::default()).unwrap();
    assert!(
        r.emit(Event::TrialStarted {
            environment: "e".into(),
            scenario: "s".into()
        })
        .is_err(),
        "before RunStarted"
    );
    start(&r, &[("e", fingerprint("istio[k8s=1.36]"))]);
    assert!(
        r.emit(Event::TrialStarted {
            environment: "nope".into(),
            scenario: "s".into()
        })
        .is_err(),
        "unknown environment"
    );
    let finished_unstarted = Event::TrialFinished {
        environment: "e".into(),
        scenario: "s".into(),
        outcome: TrialOutcome::Passed,
        duration: Duration::ZERO,
        verdicts: vec![],
        controls: vec![],
    };
    assert!(r.emit(finished_unstarted).is_err());
    r.emit(Event::TrialStarted {
        environment: "e".into(),
        scenario: "panics".into(),
    })
    .unwrap();
    r.emit(Event::RunFinished { at: at() }).unwrap();
    assert!(
        r.emit(Event::RunFinished { at: at() }).is_err(),
        "after RunFinished"
    );
    let rep = integrity::verify(&r.json_path()).unwrap();
    let t = &rep.environments[0].trials[0];
    assert_eq!(t.outcome.label(), "errored");
    assert!(t.outcome.reasons()[0].contains("did not finish"));
    assert_eq!(rep.summary.status, Status::Failure);
}

#[test]
fn a_report_directory_is_never_reused() {
    let d = tempfile::tempdir().unwrap();
    let r = nasty_run(d.path());
    drop(r);
    let err = Reporter::create(d.path(), "second", Redactor::default())
        .err()
        .expect("second run into the same dir");
    assert!(matches!(err, report::ReportError::Occupied { .. }), "{err}");
}

// ------------------------------------------------------------------ secrets

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn secrets_never_reach_any_file() {
    const EARLY: &str = "gw-admin-password-7f3a9c";
    const LATE: &str = "license-token-LATE-51d2";
    let d = tempfile::tempdir().unwrap();
    let mut red = Redactor::default();
    red.add(EARLY);
    // The implementation fields are user input too (certify --organization …).
    let conf = Conformance {
        profiles: conformance::profile_map(&catalog()),
        implementation: ImplementationArgs {
            organization: Some(format!("org {EARLY}")),
            contact: vec![format!("@{LATE}")],
            ..Default::default()
        },
    };
    let r = Reporter::create(d.path(), "run-secrets", red)
        .unwrap()
        .with_conformance(conf);
    let mut f = fingerprint("istio[k8s=1.36]");
    f.tools
        .insert("helm".into(), Some(format!("v3.19.0 --password {EARLY}")));
    r.emit(Event::RunStarted {
        at: at(),
        git_revision: "unknown".into(),
        invocation: Some(format!("cargo test --test e2e -- --password={EARLY}")),
    })
    .unwrap();
    r.emit(Event::EnvironmentStarted {
        environment: "istio[k8s=1.36]".into(),
        fingerprint: Box::new(f),
    })
    .unwrap();
    let trial_id = "istio[k8s=1.36]::deny";
    // Artifacts written before the late secret is known.
    r.write_artifact(
        trial_id,
        "gateway.log",
        format!("auth ok for admin:{EARLY}\ntoken={LATE}\n").as_bytes(),
    )
    .unwrap();
    let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0xff, 0xfe];
    pcap.extend_from_slice(format!("Authorization: Basic {EARLY} {LATE}").as_bytes());
    pcap.extend_from_slice(&[0x00, 0x80, 0xff]);
    r.write_artifact(trial_id, "eth0.pcap", &pcap).unwrap();
    let src = d.path().join("events.txt");
    std::fs::write(&src, format!("Warning secret {EARLY} mounted")).unwrap();
    r.copy_artifact(trial_id, &src).unwrap();
    std::fs::remove_file(&src).unwrap();
    r.add_secret(LATE);
    let evidence = json!({
        "headers": {"authorization": format!("Basic {EARLY}"), format!("x-{LATE}"): "key holds it"},
        "nested": [[format!("pw={LATE}")]],
    });
    r.emit(Event::TrialStarted {
        environment: "istio[k8s=1.36]".into(),
        scenario: "deny".into(),
    })
    .unwrap();
    r.emit(Event::TrialFinished {
        environment: "istio[k8s=1.36]".into(),
        scenario: "deny".into(),
        outcome: TrialOutcome::failed(vec![format!("probe with password {EARLY} got 200")]),
        duration: Duration::from_secs(3),
        verdicts: vec![verdict(
            CheckName::Http,
            Outcome::Fail,
            &[&format!("token {LATE} accepted")],
            evidence,
        )],
        controls: vec![Control::compare(
            format!("control {LATE}"),
            format!("denied {EARLY}"),
            "allowed",
        )],
    })
    .unwrap();
    r.emit(Event::RunFinished { at: at() }).unwrap();

    let mut files = Vec::new();
    all_files(d.path(), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(d.path()).unwrap().display().to_string())
        .collect();
    for want in [
        "junit.xml",
        "report.json",
        "conformance-report.yaml",
        "artifacts/istio.k8s=1.36--deny/gateway.log",
        "artifacts/istio.k8s=1.36--deny/eth0.pcap",
        "artifacts/istio.k8s=1.36--deny/events.txt",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not written; files: {names:?}"
        );
    }
    for p in &files {
        let bytes = std::fs::read(p).unwrap();
        for s in [EARLY, LATE] {
            assert!(
                !contains(&bytes, s.as_bytes()),
                "{} contains the secret {s}",
                p.display()
            );
        }
    }
    // Redacted, not dropped: the surrounding text is still there.
    let json = std::fs::read_to_string(d.path().join("report.json")).unwrap();
    assert!(json.contains("probe with password *** got 200"), "{json}");
    assert!(json.contains("x-***"), "keys are redacted too");
    let log = std::fs::read_to_string(d.path().join("artifacts/istio.k8s=1.36--deny/gateway.log"))
        .unwrap();
    assert_eq!(log, "auth ok for admin:***\ntoken=***\n");
    let masked = std::fs::read(d.path().join("artifacts/istio.k8s=1.36--deny/eth0.pcap")).unwrap();
    assert_eq!(
        masked.len(),
        pcap.len(),
        "binary artifacts keep their length"
    );
    // The report records where the failing trial's artifacts are, and stays verifiable.
    let rep = integrity::verify(&d.path().join("report.json")).unwrap();
    assert_eq!(
        rep.environments[0].trials[0].artifacts.as_deref(),
        Some("artifacts/istio.k8s=1.36--deny")
    );
}

// ------------------------------------------------------------------ rendering

fn meshproof(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn report_command_renders_a_table_and_refuses_an_edited_report() {
    let d = tempfile::tempdir().unwrap();
    let r = nasty_run(d.path());
    let path = r.json_path();
    let (code, out, err) = meshproof(&["report", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("integrity: ok"), "{out}");
    // A matching hash is not a signature, and the output says so.
    assert!(
        out.contains("the sha256 proves integrity, not origin")
            && out.contains("anyone can recompute it")
            && out.contains("gh attestation verify report.json --repo OWNER/REPO"),
        "{out}"
    );
    assert!(out.contains("result: FAILURE"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("istio[k8s=1.36]::canary"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("failed") && row.contains("1.2s") && row.contains("canary: expected <b>"),
        "{row}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("istio ") && l.contains("failure")),
        "suite line: {out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "control characters must not reach the terminal"
    );
    // A directory works as well as the file.
    assert_eq!(meshproof(&["report", d.path().to_str().unwrap()]).0, 0);

    let edited = std::fs::read_to_string(&path).unwrap().replacen(
        "\"status\": \"failed\"",
        "\"status\": \"passed\"",
        1,
    );
    std::fs::write(&path, edited).unwrap();
    let (code, out, err) = meshproof(&["report", path.to_str().unwrap()]);
    assert_eq!(code, 1, "an edited report must fail: {out}{err}");
    assert!(
        out.contains("MISMATCH") && err.contains("does not match"),
        "{out}{err}"
    );

    std::fs::write(&path, "{not json").unwrap();
    assert_eq!(meshproof(&["report", path.to_str().unwrap()]).0, 2);
}

#[test]
fn markdown_is_a_submission_readme() {
    let d = tempfile::tempdir().unwrap();
    let r = nasty_run(d.path());
    let (code, md, err) = meshproof(&["report", "--markdown", r.json_path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(md.starts_with("# meshproof conformance report"), "{md}");
    assert!(md.contains("Result: **failure**"), "{md}");
    assert!(
        md.lines().any(|l| l.starts_with("| Report integrity | ok")
            && l.contains("proves integrity, not origin")),
        "{md}"
    );
    assert!(md.contains("| Suite | Result | Passed | Failed | Errored | Ignored | Environments |"));
    assert!(md.contains("## Reproduce"));
    assert!(
        md.contains("git checkout 0123456789abcdef0123456789abcdef01234567\n"),
        "{md}"
    );
    assert!(
        md.contains("MESHPROOF_REQUIRE_CLUSTER=1 cargo test --test e2e -- 'istio[k8s=1.36]'\n"),
        "{md}"
    );
    // Every table row has as many cells as its header, whatever the reasons contained.
    let mut cols = 0;
    for line in md.lines() {
        if line.starts_with("| Environment | Scenario") {
            cols = line.matches(" | ").count();
        } else if cols > 0 && line.starts_with('|') && !line.starts_with("|---") {
            assert_eq!(
                line.replace("\\|", "").matches(" | ").count(),
                cols,
                "broken row: {line}"
            );
        } else if !line.starts_with('|') {
            cols = 0;
        }
    }
    assert!(
        !md.contains("<b>"),
        "raw HTML from a reason reached the Markdown"
    );
    assert!(md.contains("&lt;b&gt;"));
}

#[test]
fn a_failed_teardown_fails_its_suite_and_is_an_error_in_junit() {
    let d = tempfile::tempdir().unwrap();
    let r = Reporter::create(d.path(), "run-teardown", Redactor::default()).unwrap();
    let mut a = fingerprint("istio[k8s=1.36]");
    a.suite = "leaky".into();
    let mut b = fingerprint("istio[k8s=1.35]");
    b.suite = "clean".into();
    start(&r, &[("a", a), ("b", b)]);
    let pass = || vec![verdict(CheckName::Http, Outcome::Pass, &[], json!({}))];
    trial(&r, "a", "x", TrialOutcome::Passed, pass(), vec![]);
    trial(&r, "b", "x", TrialOutcome::Passed, pass(), vec![]);
    r.emit(Event::EnvironmentFinished {
        environment: "a".into(),
        teardown_error: Some("kind delete cluster: exit status 1".into()),
    })
    .unwrap();
    r.emit(Event::EnvironmentFinished {
        environment: "b".into(),
        teardown_error: None,
    })
    .unwrap();
    r.emit(Event::RunFinished { at: at() }).unwrap();

    let rep = integrity::verify(&r.json_path()).unwrap();
    let status = |n: &str| rep.suites.iter().find(|s| s.name == n).map(|s| s.status);
    // Every trial passed; the cluster that may still run makes the suite a failure.
    assert_eq!(status("leaky"), Some(Status::Failure));
    assert_eq!(status("clean"), Some(Status::Success));
    assert_eq!(rep.summary.status, Status::Failure);

    let junit = r.junit_path();
    let text = std::fs::read_to_string(&junit).unwrap();
    let Some(j) = junit_read_back(&junit, &text) else {
        return;
    };
    assert_eq!(
        (j["tests"].as_u64(), j["errors"].as_u64()),
        (Some(3), Some(1)),
        "{j:#}"
    );
    let leaky = j["suites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "a")
        .unwrap_or_else(|| panic!("{j:#}"));
    assert_eq!(leaky["errors"], 1);
    let case = leaky["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "teardown")
        .unwrap_or_else(|| panic!("{j:#}"));
    assert_eq!(case["results"][0]["kind"], "Error");
    assert!(
        case["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("kind delete cluster: exit status 1"),
        "{case:#}"
    );
}

/// Issue #13/#19: a run a signal stops writes a partial report that says so. What ran passed,
/// so without the marker it would read as a success: report.json carries `interrupted` and is
/// `partial`, the trial still running is an error, junit.xml has an errored `run/interrupted`
/// case (schema-valid, read back by junitparser), and the conformance report claims no profile.
#[test]
fn an_interrupted_run_writes_a_partial_report_that_says_so() {
    let d = tempfile::tempdir().unwrap();
    let r = Reporter::create(d.path(), "run-interrupted", Redactor::default())
        .unwrap()
        .with_conformance(conformance_for_project());
    start(&r, &[("a", fingerprint("istio[k8s=1.36]"))]);
    let pass = || vec![verdict(CheckName::Http, Outcome::Pass, &[], json!({}))];
    trial(&r, "a", "deny", TrialOutcome::Passed, pass(), vec![]);
    r.emit(Event::RunInterrupted {
        at: at(),
        why: "stopped by SIGINT".into(),
    })
    .unwrap();
    let rep = integrity::verify(&r.json_path()).unwrap();
    assert_eq!(rep.interrupted.as_deref(), Some("stopped by SIGINT"));
    assert_eq!(rep.summary.status, Status::Partial, "never a success");
    // Nothing more is accepted: the report is written.
    assert!(r.emit(Event::RunFinished { at: at() }).is_err());

    // A trial the signal caught mid-way is an error naming the interruption.
    let d2 = tempfile::tempdir().unwrap();
    let r2 = Reporter::create(d2.path(), "run-interrupted-2", Redactor::default()).unwrap();
    start(&r2, &[("a", fingerprint("istio[k8s=1.36]"))]);
    r2.emit(Event::TrialStarted {
        environment: "a".into(),
        scenario: "mtls".into(),
    })
    .unwrap();
    r2.emit(Event::RunInterrupted {
        at: at(),
        why: "stopped by SIGTERM".into(),
    })
    .unwrap();
    let rep2 = integrity::verify(&r2.json_path()).unwrap();
    let t = &rep2.environments[0].trials[0];
    assert_eq!(t.outcome.label(), "errored");
    assert!(
        t.outcome.reasons()[0]
            .contains("interrupted before the trial finished (stopped by SIGTERM)"),
        "{:?}",
        t.outcome
    );

    let conf = std::fs::read_dir(d.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.to_string_lossy().ends_with(".yaml") && p.to_string_lossy().contains("conformance")
        })
        .expect("a conformance report");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(!text.contains("result: success"), "{text}");

    let junit = r.junit_path();
    let text = std::fs::read_to_string(&junit).unwrap();
    assert!(text.contains("type=\"interrupted\""), "{text}");
    let Some(j) = junit_read_back(&junit, &text) else {
        return;
    };
    assert_eq!(
        (j["tests"].as_u64(), j["errors"].as_u64()),
        (Some(2), Some(1)),
        "{j:#}"
    );
    let run = j["suites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "run")
        .unwrap_or_else(|| panic!("{j:#}"));
    let case = &run["cases"][0];
    assert_eq!(case["name"], "interrupted");
    assert_eq!(case["results"][0]["kind"], "Error");
    assert!(
        case["results"][0]["message"]
            .as_str()
            .unwrap()
            .contains("stopped by SIGINT"),
        "{case:#}"
    );
}

// ------------------------------------------------------------------ conformance-report.yaml

/// A value's type in the upstream Go types.
#[derive(Debug)]
enum Shape {
    Str,
    U32,
    /// `[]string`.
    Strings,
    /// `Result`: a string, one of `success`, `partial`, `failure` (`result.go`).
    Result,
    Obj(&'static [Field]),
    List(&'static Shape),
}

/// One field: its YAML key (the `json` tag, or the Go field name where there is none), its type,
/// and whether upstream omits it when empty (`omitempty`, or a nil pointer).
#[derive(Debug)]
struct Field(&'static str, Shape, bool);

// The Gateway API `ConformanceReport`, written from kubernetes-sigs/gateway-api tag **v1.4.0**
// (commit 5e5891a5adad272363de782eb02a042166f1913c), conformance/apis/v1/ — CONTRACTS.md GW-7;
// `git diff v1.4.0 v1.5.1 -- conformance/apis/v1/` is empty, so it is v1.5.1's shape too.
// sigs.k8s.io/yaml marshals through the json tags, so these are the YAML keys.

/// `statistics.go`: `Passed`, `Skipped`, `Failed uint32`, no json tags.
const STATISTICS: &[Field] = &[
    Field("Passed", Shape::U32, false),
    Field("Skipped", Shape::U32, false),
    Field("Failed", Shape::U32, false),
];
/// `profilereport.go` `Status`: `Result json:"result"`, `Statistics json:"statistics"`,
/// `SkippedTests []string json:"skippedTests,omitempty"`, `FailedTests … "failedTests,omitempty"`.
const STATUS: &[Field] = &[
    Field("result", Shape::Result, false),
    Field("statistics", Shape::Obj(STATISTICS), false),
    Field("skippedTests", Shape::Strings, true),
    Field("failedTests", Shape::Strings, true),
];
/// `profilereport.go` `ExtendedStatus`: `Status json:",inline"` plus
/// `SupportedFeatures`/`UnsupportedFeatures []string …,omitempty`.
const EXTENDED: &[Field] = &[
    Field("result", Shape::Result, false),
    Field("statistics", Shape::Obj(STATISTICS), false),
    Field("skippedTests", Shape::Strings, true),
    Field("failedTests", Shape::Strings, true),
    Field("supportedFeatures", Shape::Strings, true),
    Field("unsupportedFeatures", Shape::Strings, true),
];
/// `profilereport.go` `ProfileReport`: `name`, `summary`, `core Status`,
/// `extended *ExtendedStatus json:"extended,omitempty"`.
const PROFILE: &[Field] = &[
    Field("name", Shape::Str, false),
    Field("summary", Shape::Str, false),
    Field("core", Shape::Obj(STATUS), false),
    Field("extended", Shape::Obj(EXTENDED), true),
];
/// `conformancereport.go` `Implementation`: five fields, `Contact []string`.
const IMPLEMENTATION: &[Field] = &[
    Field("organization", Shape::Str, false),
    Field("project", Shape::Str, false),
    Field("url", Shape::Str, false),
    Field("version", Shape::Str, false),
    Field("contact", Shape::Strings, false),
];
/// `conformancereport.go` `ConformanceReport`: `metav1.TypeMeta` inline (`apiVersion`, `kind`),
/// `Implementation json:"implementation"`, `date`, `gatewayAPIVersion`, `mode`,
/// `gatewayAPIChannel`, `ProfileReports []ProfileReport json:"profiles"`,
/// `succeededProvisionalTests …,omitempty`.
const CONFORMANCE_REPORT: &[Field] = &[
    Field("apiVersion", Shape::Str, false),
    Field("kind", Shape::Str, false),
    Field("implementation", Shape::Obj(IMPLEMENTATION), false),
    Field("date", Shape::Str, false),
    Field("gatewayAPIVersion", Shape::Str, false),
    Field("mode", Shape::Str, false),
    Field("gatewayAPIChannel", Shape::Str, false),
    Field("profiles", Shape::List(&Shape::Obj(PROFILE)), false),
    Field("succeededProvisionalTests", Shape::Strings, true),
];
/// Upstream fields meshproof leaves out on purpose: it does not test Gateway API
/// (src/report/conformance.rs).
const LEFT_OUT: &[&str] = &["gatewayAPIVersion", "gatewayAPIChannel"];

/// Where `v` departs from `shape`, one line per problem.
fn shape_problems(v: &serde_yaml::Value, shape: &Shape, at: &str, out: &mut Vec<String>) {
    use serde_yaml::Value as Y;
    match (shape, v) {
        (Shape::Str, Y::String(_)) => {}
        (Shape::U32, Y::Number(n)) if n.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)) => {}
        (Shape::Result, Y::String(s))
            if ["success", "partial", "failure"].contains(&s.as_str()) => {}
        (Shape::Strings, Y::Sequence(items)) => {
            for (i, it) in items.iter().enumerate() {
                shape_problems(it, &Shape::Str, &format!("{at}[{i}]"), out);
            }
        }
        (Shape::List(inner), Y::Sequence(items)) => {
            for (i, it) in items.iter().enumerate() {
                shape_problems(it, inner, &format!("{at}[{i}]"), out);
            }
        }
        (Shape::Obj(fields), Y::Mapping(m)) => {
            for (k, _) in m {
                let known = k.as_str().is_some_and(|k| fields.iter().any(|f| f.0 == k));
                if !known {
                    out.push(format!("{at}: key {k:?} is not in the upstream type"));
                }
            }
            for Field(key, shape, omitempty) in fields.iter() {
                match m.get(*key) {
                    None if *omitempty || LEFT_OUT.contains(key) => {}
                    None => out.push(format!("{at}.{key}: missing")),
                    Some(Y::Sequence(s)) if *omitempty && s.is_empty() => {
                        out.push(format!("{at}.{key}: empty, upstream omits it"))
                    }
                    Some(v) => shape_problems(v, shape, &format!("{at}.{key}"), out),
                }
            }
        }
        (shape, v) => out.push(format!("{at}: {v:?} is not a {shape:?}")),
    }
}

fn conformance_shape(v: &serde_yaml::Value) -> Vec<String> {
    let mut out = Vec::new();
    shape_problems(v, &Shape::Obj(CONFORMANCE_REPORT), "", &mut out);
    out
}

fn conformance_for_project() -> Conformance {
    Conformance {
        profiles: conformance::profile_map(&catalog()),
        implementation: ImplementationArgs {
            organization: Some("Example Mesh Co".into()),
            ..Default::default()
        },
    }
}

/// Two environments of the Istio suite, every outcome, one profile each.
fn conformance_run(dir: &Path) -> Reporter {
    let r = Reporter::create(dir, "run-conformance", Redactor::default())
        .unwrap()
        .with_conformance(conformance_for_project());
    let (a, b) = ("istio[k8s=1.36]", "istio[k8s=1.35]");
    start(&r, &[(a, fingerprint(a)), (b, fingerprint(b))]);
    let pass = |c| vec![verdict(c, Outcome::Pass, &[], json!({}))];
    trial(
        &r,
        a,
        "mtls",
        TrialOutcome::Passed,
        pass(CheckName::Mtls),
        vec![],
    );
    trial(
        &r,
        b,
        "mtls",
        TrialOutcome::Passed,
        pass(CheckName::Mtls),
        vec![],
    );
    let deny_fail = verdict(CheckName::Http, Outcome::Fail, &["200, not 403"], json!({}));
    trial(&r, a, "deny", TrialOutcome::Passed, vec![deny_fail], vec![]);
    trial(
        &r,
        b,
        "deny",
        TrialOutcome::Passed,
        pass(CheckName::Http),
        vec![],
    );
    // Errored: could not be set up. Counted as failed, listed in failedTests.
    let setup = "environment istio[k8s=1.36] could not be set up: kind create cluster: exit 1";
    trial(
        &r,
        a,
        "canary",
        TrialOutcome::errored(vec![setup.into()]),
        vec![],
        vec![],
    );
    trial(
        &r,
        b,
        "canary",
        TrialOutcome::Passed,
        pass(CheckName::Canary),
        vec![],
    );
    trial(
        &r,
        a,
        "tls",
        TrialOutcome::ignored("not today"),
        vec![],
        vec![],
    );
    trial(
        &r,
        b,
        "tls",
        TrialOutcome::Passed,
        pass(CheckName::Tls),
        vec![],
    );
    trial(
        &r,
        a,
        "restore",
        TrialOutcome::ignored("no git server"),
        vec![],
        vec![],
    );
    trial(
        &r,
        b,
        "restore",
        TrialOutcome::ignored("no git server"),
        vec![],
        vec![],
    );
    r.emit(Event::RunFinished { at: at() }).unwrap();
    r
}

#[test]
fn each_scenario_of_the_project_counts_towards_its_checks_profile() {
    let m = conformance::profile_map(&catalog());
    let want: std::collections::BTreeMap<String, std::collections::BTreeSet<Profile>> = [
        ("canary", Profile::MeshSplit),
        ("deny", Profile::MeshAuthz),
        ("deny-waypoint", Profile::MeshAuthz),
        ("mtls", Profile::MeshMtls),
        ("restore", Profile::DrRestore),
        ("tls", Profile::IngressTls),
    ]
    .into_iter()
    .map(|(s, p)| (s.to_string(), [p].into()))
    .collect();
    assert_eq!(m, want);
    let names: Vec<&str> = Profile::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        [
            "MESH-MTLS",
            "MESH-AUTHZ",
            "MESH-SPLIT",
            "INGRESS-TLS",
            "DR-RESTORE"
        ]
    );
}

#[test]
fn conformance_report_has_the_gateway_api_shape_and_agrees_with_report_json() {
    let d = tempfile::tempdir().unwrap();
    let r = conformance_run(d.path());
    let text = std::fs::read_to_string(d.path().join(conformance::CONFORMANCE_YAML)).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let problems = conformance_shape(&doc);
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    assert_eq!(doc["apiVersion"], "meshproof/v1", "not Gateway API's group");
    assert_eq!(doc["kind"], "ConformanceReport");
    assert_eq!(doc["mode"], "istio");
    // Given, derived from the suite's mesh, or said to be unknown — never made up.
    let i = &doc["implementation"];
    assert_eq!(i["organization"], "Example Mesh Co");
    assert_eq!(i["project"], "istio");
    assert_eq!(i["version"], "1.30.3");
    assert_eq!(i["url"], "unknown");
    assert_eq!(i["contact"][0], "unknown");
    assert!(doc["profiles"][0].get("extended").is_none());

    // Against report.json of the same run.
    let rep = integrity::verify(&r.json_path()).unwrap();
    assert_eq!(doc["date"], rep.finished_at.as_deref().unwrap());
    let parsed = conformance::from_yaml(&text).expect("reads back with unknown fields denied");
    let profiles = conformance::profile_map(&catalog());
    let mut seen = std::collections::BTreeSet::new();
    for p in &parsed.profiles {
        let trials: Vec<_> = rep
            .trials()
            .filter(|(_, t)| profiles[&t.scenario].contains(&p.name))
            .map(|(_, t)| t)
            .collect();
        let ids = |labels: &[&str]| -> Vec<String> {
            trials
                .iter()
                .filter(|t| labels.contains(&t.outcome.label()))
                .map(|t| t.id.clone())
                .collect()
        };
        let (passed, failed, skipped) = (
            ids(&["passed"]),
            ids(&["failed", "errored"]),
            ids(&["ignored"]),
        );
        let mut got_failed = p.core.failed_tests.clone();
        got_failed.sort();
        let mut want_failed = failed.clone();
        want_failed.sort();
        assert_eq!(got_failed, want_failed, "{}", p.name);
        let mut got_skipped = p.core.skipped_tests.clone();
        got_skipped.sort();
        let mut want_skipped = skipped.clone();
        want_skipped.sort();
        assert_eq!(got_skipped, want_skipped, "{}", p.name);
        let s = p.core.statistics;
        assert_eq!(
            (s.passed as usize, s.failed as usize, s.skipped as usize),
            (passed.len(), failed.len(), skipped.len()),
            "{}",
            p.name
        );
        // report.json's rule, recomputed here.
        let want = if !failed.is_empty() {
            Status::Failure
        } else if !passed.is_empty() && skipped.is_empty() {
            Status::Success
        } else {
            Status::Partial
        };
        assert_eq!(p.core.result, want, "{}", p.name);
        seen.insert(p.name);
    }
    let in_report: std::collections::BTreeSet<Profile> = rep
        .trials()
        .flat_map(|(_, t)| profiles[&t.scenario].iter().copied())
        .collect();
    assert_eq!(seen, in_report, "a profile per profile that ran, no more");

    // And the verdicts, spelled out.
    let result = |n: &str| {
        doc["profiles"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n}\n{text}"))
            .clone()
    };
    assert_eq!(result("MESH-MTLS")["core"]["result"], "success");
    assert_eq!(result("MESH-MTLS")["core"]["statistics"]["Passed"], 2);
    assert_eq!(result("MESH-AUTHZ")["core"]["result"], "failure");
    assert_eq!(
        result("MESH-AUTHZ")["core"]["failedTests"][0],
        "istio[k8s=1.36]::deny"
    );
    assert_eq!(
        result("MESH-SPLIT")["core"]["result"],
        "failure",
        "an error is not a pass"
    );
    assert_eq!(result("MESH-SPLIT")["core"]["statistics"]["Failed"], 1);
    assert_eq!(result("INGRESS-TLS")["core"]["result"], "partial");
    assert_eq!(result("DR-RESTORE")["core"]["result"], "partial");
    assert_eq!(result("DR-RESTORE")["core"]["statistics"]["Skipped"], 2);
    assert_eq!(
        result("DR-RESTORE")["summary"],
        "Core tests partially succeeded with 2 test skips."
    );
}

#[test]
fn the_conformance_shape_check_can_fail() {
    let d = tempfile::tempdir().unwrap();
    conformance_run(d.path());
    let text = std::fs::read_to_string(d.path().join(conformance::CONFORMANCE_YAML)).unwrap();
    let good: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert!(conformance_shape(&good).is_empty());
    type Edit = fn(&mut serde_yaml::Value);
    let edits: [(&str, Edit); 7] = [
        ("lowercase statistics key", |v| {
            let s = v["profiles"][0]["core"]["statistics"]
                .as_mapping_mut()
                .unwrap();
            let n = s.remove("Passed").unwrap();
            s.insert("passed".into(), n);
        }),
        ("contact as a string", |v| {
            v["implementation"]["contact"] = "@me".into()
        }),
        ("unknown key", |v| {
            v.as_mapping_mut()
                .unwrap()
                .insert("verdict".into(), "ok".into());
        }),
        ("result outside the enum", |v| {
            v["profiles"][0]["core"]["result"] = "passed".into()
        }),
        ("missing mode", |v| {
            v.as_mapping_mut().unwrap().remove("mode");
        }),
        ("negative count", |v| {
            v["profiles"][0]["core"]["statistics"]["Failed"] = (-1).into()
        }),
        ("empty omitempty list", |v| {
            v["profiles"][0]["core"]
                .as_mapping_mut()
                .unwrap()
                .insert("failedTests".into(), serde_yaml::Value::Sequence(vec![]));
        }),
    ];
    for (what, edit) in edits {
        let mut bad = good.clone();
        edit(&mut bad);
        assert!(!conformance_shape(&bad).is_empty(), "{what} was accepted");
    }
}

#[test]
fn each_suite_of_a_run_gets_a_conformance_report_of_its_own() {
    let d = tempfile::tempdir().unwrap();
    let r = Reporter::create(d.path(), "run-two-meshes", Redactor::default())
        .unwrap()
        .with_conformance(conformance_for_project());
    let (a, b) = ("istio[k8s=1.36]", "linkerd[k8s=1.36]");
    start(&r, &[(a, fingerprint(a)), (b, fingerprint(b))]);
    let pass = || vec![verdict(CheckName::Mtls, Outcome::Pass, &[], json!({}))];
    trial(&r, a, "mtls", TrialOutcome::Passed, pass(), vec![]);
    trial(&r, b, "mtls", TrialOutcome::Passed, pass(), vec![]);
    r.emit(Event::RunFinished { at: at() }).unwrap();
    assert!(
        !d.path().join(conformance::CONFORMANCE_YAML).exists(),
        "one file would mix two implementations"
    );
    for (suite, version) in [("istio", "1.30.3"), ("linkerd", "edge-26.8.3")] {
        let text =
            std::fs::read_to_string(d.path().join(format!("conformance-report-{suite}.yaml")))
                .unwrap();
        let c = conformance::from_yaml(&text).unwrap();
        assert_eq!(c.mode, suite);
        assert_eq!(c.implementation.project, suite);
        assert_eq!(c.implementation.version, version);
        assert_eq!(c.profiles.len(), 1);
        assert_eq!(c.profiles[0].core.statistics.passed, 1);
    }
}

#[test]
fn a_trial_without_a_profile_is_an_error_not_a_gap() {
    let d = tempfile::tempdir().unwrap();
    let r = Reporter::create(d.path(), "run-unprofiled", Redactor::default())
        .unwrap()
        .with_conformance(conformance_for_project());
    start(&r, &[("istio[k8s=1.36]", fingerprint("istio[k8s=1.36]"))]);
    let pass = vec![verdict(CheckName::Http, Outcome::Pass, &[], json!({}))];
    trial(
        &r,
        "istio[k8s=1.36]",
        "unheard-of",
        TrialOutcome::Passed,
        pass,
        vec![],
    );
    let err = r.emit(Event::RunFinished { at: at() }).unwrap_err();
    assert!(
        matches!(err, report::ReportError::Unprofiled { ref trial } if trial == "istio[k8s=1.36]::unheard-of"),
        "{err}"
    );
    // The other files are whole.
    assert!(integrity::verify(&r.json_path()).is_ok());
    assert!(r.junit_path().is_file());
    assert!(!d.path().join(conformance::CONFORMANCE_YAML).exists());
}

// ------------------------------------------------------------------ setup failures

/// An environment that could not be set up reaches JUnit as an `<error>` on each of its trials:
/// the real `Session` (with the CLI doubles, `kind create` failing), the same `RunError →
/// TrialOutcome` mapping tests/e2e.rs uses, the real reporter, and the JUnit consumers.
#[test]
fn an_environment_that_could_not_be_set_up_is_an_error_in_junit() {
    let d = doubles::Doubles::new();
    let raw = tempfile::tempdir().unwrap();
    std::env::set_var(meshproof::process::tools::TOOL_PATH_ENV, d.bin());
    std::env::set_var("MESHPROOF_DOUBLE_LOG", d.log());
    std::env::set_var("MESHPROOF_DOUBLE_FAIL_ON", "kind create");
    let mut c = catalog();
    c.suites.retain(|s| s.name.as_str() == "istio");
    for s in &mut c.suites {
        let s = std::sync::Arc::make_mut(s);
        s.openfaas.edition = meshproof::scenario::Edition::Ce;
        s.images.function = meshproof::images::ImageRef::parse(&format!(
            "ghcr.io/openfaas/alpine:latest@sha256:{}",
            "0".repeat(64)
        ))
        .unwrap();
    }
    let envs = meshproof::plan::expand(&c);
    let env = envs.iter().find(|e| e.key == "istio[k8s=1.35]").unwrap();
    let session = meshproof::run::Session::with_options(
        &envs,
        meshproof::stack::StackOptions {
            api: std::sync::Arc::new(doubles::RecordingApi::default()),
            keep_cluster: false,
            artifacts_root: raw.path().to_path_buf(),
            gateway_api_base: "http://127.0.0.1:9/unused".into(),
            registry: meshproof::images::Registry::default(),
            mirror: Ok(Default::default()),
            log: std::sync::Arc::new(|_: &str| {}),
        },
    );

    let dir = tempfile::tempdir().unwrap();
    let r = Reporter::create(dir.path(), "run-setup-failed", Redactor::default()).unwrap();
    start(&r, &[(env.key.as_str(), fingerprint(&env.key))]);
    let trials = &env.trials[..2];
    for t in trials {
        let e = session.run_trial(t).expect_err("kind create fails");
        assert!(
            matches!(e, meshproof::run::RunError::Environment { .. }),
            "{e}"
        );
        trial(
            &r,
            &env.key,
            t.scenario.name.as_str(),
            e.outcome(),
            e.verdicts().to_vec(),
            vec![],
        );
    }
    std::env::remove_var("MESHPROOF_DOUBLE_FAIL_ON");
    let teardown = session.teardown();
    r.emit(Event::EnvironmentFinished {
        environment: env.key.clone(),
        teardown_error: teardown.get(&env.key).map(|e| e.join("; ")),
    })
    .unwrap();
    r.emit(Event::RunFinished { at: at() }).unwrap();

    let rep = integrity::verify(&r.json_path()).unwrap();
    assert_eq!(
        rep.summary.status,
        Status::Failure,
        "never partial or skipped"
    );
    assert_eq!(rep.summary.counts.errored, 2);

    let junit = r.junit_path();
    let text = std::fs::read_to_string(&junit).unwrap();
    let Some(j) = junit_read_back(&junit, &text) else {
        return;
    };
    assert_eq!(
        (
            j["tests"].as_u64(),
            j["errors"].as_u64(),
            j["failures"].as_u64()
        ),
        (Some(2), Some(2), Some(0)),
        "{j:#}"
    );
    for case in j["suites"][0]["cases"].as_array().unwrap() {
        assert_eq!(case["results"][0]["kind"], "Error", "{case:#}");
        let msg = case["results"][0]["message"].as_str().unwrap();
        assert!(
            msg.contains("environment istio[k8s=1.35] could not be set up")
                && msg.contains("failing on purpose"),
            "{msg}"
        );
    }
}
