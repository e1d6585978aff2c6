//! The restore check's pure rules on recorded JSON (tests/fixtures/restore/): Flux readiness at
//! a revision, SealedSecret states, the negative-control judge, and the verdict.

use meshproof::check::restore::inventory::{Change, InventoryDiff, SecretRef};
use meshproof::check::restore::*;
use meshproof::check::Outcome;
use std::collections::BTreeSet;
use std::path::Path;

const REV: &str = "main@sha1:4f3c1e0b7d2a9e8f6c5b4a39281706f5e4d3c2b1";

fn fixture(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/restore")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

fn target() -> SecretRef {
    SecretRef::new("openfaas-fn", "meshproof-restore")
}

#[test]
fn kustomization_ready_only_at_the_expected_revision() {
    assert_eq!(
        kustomization_ready(&fixture("kustomization-ready.json"), REV),
        Readiness::Ready
    );
    let Readiness::NotReady(why) =
        kustomization_ready(&fixture("kustomization-other-revision.json"), REV)
    else {
        panic!()
    };
    assert!(
        why.contains("main@sha1:0000000000000000000000000000000000000abc"),
        "{why}"
    );
    let Readiness::NotReady(why) =
        kustomization_ready(&fixture("kustomization-not-ready.json"), REV)
    else {
        panic!()
    };
    assert!(
        why.contains("Ready=False") && why.contains("ArtifactFailed"),
        "{why}"
    );
    let Readiness::NotReady(why) = kustomization_ready(&fixture("kustomization-stale.json"), REV)
    else {
        panic!()
    };
    assert!(why.contains("generation"), "{why}");
    // A Ready fixture judged against another commit is not ready.
    assert!(
        !kustomization_ready(&fixture("kustomization-ready.json"), "main@sha1:ffff").is_ready()
    );
    assert!(!kustomization_ready(&serde_json::json!({}), REV).is_ready());
}

#[test]
fn git_repository_ready_reads_the_artifact_revision() {
    assert!(git_repository_ready(&fixture("gitrepository-ready.json"), REV).is_ready());
    assert!(!git_repository_ready(&fixture("gitrepository-ready.json"), "main@sha1:0").is_ready());
    // A Kustomization has no artifact: never "ready" as a source.
    assert!(!git_repository_ready(&fixture("kustomization-ready.json"), REV).is_ready());
}

#[test]
fn sealed_secret_states() {
    assert_eq!(
        sealed_secret_state(&fixture("sealedsecret-synced.json")),
        UnsealState::Synced
    );
    // The condition's text is its message: sealed-secrets never sets a reason (SS-6).
    assert_eq!(
        sealed_secret_state(&fixture("sealedsecret-failed.json")),
        UnsealState::Failed("no key could decrypt secret (token)".into())
    );
    assert_eq!(
        sealed_secret_state(&fixture("sealedsecret-pending.json")),
        UnsealState::Pending
    );
}

#[test]
fn unseal_failed_events_only_count_sealed_secret_warnings() {
    let events: Vec<serde_json::Value> =
        serde_json::from_value(fixture("events-unseal-failed.json")).unwrap();
    let found = unseal_failed_events(&events);
    assert_eq!(
        found.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([target()])
    );
    assert_eq!(
        found[&target()],
        "Failed to unseal: no key could decrypt secret (token)"
    );
}

/// A SealedSecret as v0.38.4 leaves it after an unseal error of another kind: the message is
/// the error, there is no reason (SS-6).
fn failed_with(message: &str) -> serde_json::Value {
    let mut s = fixture("sealedsecret-failed.json");
    s["status"]["conditions"][0]["message"] = message.into();
    s
}

/// Any unseal error sets `Synced=False` and records `ErrUnsealFailed` (SS-6, SS-7): only a
/// failure that says no key could decrypt the value shows the old key is needed. A value that
/// is not base64, a Secret the controller may not manage, an API error: undecided, with the
/// message (issue #14).
#[test]
fn a_failure_that_is_not_a_missing_key_leaves_the_control_undecided() {
    let none = BTreeSet::new();
    for msg in [
        "illegal base64 data at input byte 4 (token)",
        "failed update: Resource \"meshproof-restore\" already exists and is not managed by SealedSecret",
    ] {
        let j = judge_control(&[target()], &[failed_with(msg)], &[], &none);
        assert!(
            matches!(&j, ControlJudgement::Undecided { waiting } if waiting[0].contains("not for want of a key") && waiting[0].contains(msg)),
            "{msg}: {j:?}"
        );
    }
    // The same through the event alone.
    let event = serde_json::json!({
        "type": "Warning", "reason": "ErrUnsealFailed",
        "involvedObject": { "kind": "SealedSecret", "name": "meshproof-restore", "namespace": "openfaas-fn" },
        "message": "Failed to unseal: illegal base64 data at input byte 4 (token)",
    });
    let j = judge_control(
        &[target()],
        &[fixture("sealedsecret-pending.json")],
        &[event],
        &none,
    );
    assert!(
        matches!(&j, ControlJudgement::Undecided { waiting } if waiting[0].contains("illegal base64")),
        "{j:?}"
    );
    // Several keys failing for want of a key, as `Unseal` joins them (multierror v0.4.0).
    let j = judge_control(
        &[target()],
        &[failed_with("no key could decrypt secret (password, token)")],
        &[],
        &none,
    );
    assert!(matches!(j, ControlJudgement::Held { .. }), "{j:?}");
}

#[test]
fn control_holds_on_synced_false_or_on_the_event() {
    let none = BTreeSet::new();
    let j = judge_control(
        &[target()],
        &[fixture("sealedsecret-failed.json")],
        &[],
        &none,
    );
    assert!(matches!(j, ControlJudgement::Held { .. }), "{j:?}");
    let events: Vec<serde_json::Value> =
        serde_json::from_value(fixture("events-unseal-failed.json")).unwrap();
    let j = judge_control(
        &[target()],
        &[fixture("sealedsecret-pending.json")],
        &events,
        &none,
    );
    assert!(
        matches!(&j, ControlJudgement::Held { evidence } if evidence[0].contains("ErrUnsealFailed") && evidence[0].contains("no key could decrypt")),
        "{j:?}"
    );
}

#[test]
fn control_is_violated_when_anything_unsealed() {
    let none = BTreeSet::new();
    let j = judge_control(
        &[target()],
        &[fixture("sealedsecret-synced.json")],
        &[],
        &none,
    );
    assert!(matches!(j, ControlJudgement::Violated { .. }), "{j:?}");
    // The Secret exists even though the SealedSecret says it failed (e.g. a stale Secret): violated.
    let present = BTreeSet::from([target()]);
    let j = judge_control(
        &[target()],
        &[fixture("sealedsecret-failed.json")],
        &[],
        &present,
    );
    assert!(matches!(j, ControlJudgement::Violated { .. }), "{j:?}");
}

#[test]
fn control_is_undecided_until_every_sealed_secret_was_processed() {
    let none = BTreeSet::new();
    let j = judge_control(
        &[target()],
        &[fixture("sealedsecret-pending.json")],
        &[],
        &none,
    );
    assert!(matches!(j, ControlJudgement::Undecided { .. }), "{j:?}");
    let j = judge_control(&[target()], &[], &[], &none);
    assert!(
        matches!(&j, ControlJudgement::Undecided { waiting } if waiting[0].contains("not applied")),
        "{j:?}"
    );
    // One failed, one still pending: undecided.
    let other = SecretRef::new("openfaas-fn", "second");
    let j = judge_control(
        &[target(), other],
        &[fixture("sealedsecret-failed.json")],
        &[],
        &none,
    );
    assert!(matches!(j, ControlJudgement::Undecided { .. }), "{j:?}");
}

fn passing_evidence() -> RestoreEvidence {
    let p = |phase, seconds| PhaseRecord {
        phase,
        seconds,
        ok: true,
    };
    RestoreEvidence {
        expected_revision: Some(REV.into()),
        revision_before: Some(REV.into()),
        revision_after: Some(REV.into()),
        phases: vec![
            p(Phase::RecordInventory, 1.0),
            p(Phase::BackupKeys, 0.1),
            p(Phase::Destroy, 20.0),
            p(Phase::Rebuild, 240.0),
            p(Phase::BootstrapFlux, 20.0),
            p(Phase::NegativeControl, 10.0),
            p(Phase::KeyRestore, 15.0),
            p(Phase::Reconcile, 30.0),
            p(Phase::RestartFunctions, 0.0),
            p(Phase::Verify, 25.0),
        ],
        // The phases after the backup add up to 360 s; of the negative control's 10 s, 6 s were
        // Flux's apply and the failed unseals (recovery work) and 4 s the deliberate hold.
        rto_seconds: Some(356.0),
        elapsed_seconds: Some(360.0),
        control_timeline: Some(ControlTimeline {
            kustomization_ready_after: Some(5.0),
            first_failure_after: Some(6.0),
            held_after: Some(6.0),
            ended_after: 10.0,
        }),
        restarted_functions: vec![],
        max_recovery_seconds: Some(1800.0),
        functions: vec!["env".into()],
        secrets: vec!["openfaas-fn/meshproof-restore".into()],
        keys_backed_up: vec!["sealed-secrets-keyabcde".into()],
        control: Some(ControlJudgement::Held {
            evidence: vec!["x".into()],
        }),
        diff: Some(InventoryDiff::default()),
        failed_phase: None,
    }
}

#[test]
fn verdict_passes_with_rto_breakdown() {
    let v = decide(passing_evidence());
    assert_eq!(v.outcome, Outcome::Pass, "{:?}", v.reasons);
    assert!(
        v.reasons[0].contains(
            "RTO 5m 56s (destroy 20s, rebuild (cluster and stack) 4m, bootstrap Flux 20s, Flux apply and failed unseals 6s,"
        ),
        "{:?}",
        v.reasons
    );
    assert!(v.reasons[0].contains("key restore 15s"), "{:?}", v.reasons);
    assert!(
        !v.reasons[0].contains("negative control 10s"),
        "the hold is not recovery time: {:?}",
        v.reasons
    );
    assert!(
        v.reasons[0].contains("6m elapsed with the negative control, of which 4s deliberate"),
        "{:?}",
        v.reasons
    );
    let j: serde_json::Value = serde_json::from_str(&v.to_json_string()).unwrap();
    assert_eq!(j["check"], "restore");
    assert_eq!(j["evidence"]["rto_seconds"], 356.0);
    assert_eq!(j["evidence"]["elapsed_seconds"], 360.0);
    assert_eq!(
        j["evidence"]["control_timeline"]["first_failure_after"],
        6.0
    );
    assert_eq!(j["evidence"]["phases"][3]["phase"], "rebuild");
    assert_eq!(j["evidence"]["phases"][4]["phase"], "bootstrap_flux");
    assert_eq!(j["evidence"]["phases"][6]["phase"], "key_restore");
}

#[test]
fn verdict_fails_on_diff_revision_or_budget() {
    let mut e = passing_evidence();
    e.diff = Some(InventoryDiff {
        changes: vec![Change::FunctionRemoved { name: "env".into() }],
    });
    let v = decide(e);
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(v
        .reasons
        .iter()
        .any(|r| r.contains("function env is missing")));

    let mut e = passing_evidence();
    e.revision_after = Some("main@sha1:0000000000000000000000000000000000000abc".into());
    assert_eq!(decide(e).outcome, Outcome::Fail);

    let mut e = passing_evidence();
    e.max_recovery_seconds = Some(300.0);
    let v = decide(e);
    assert_eq!(v.outcome, Outcome::Fail);
    assert!(
        v.reasons[0].contains("over the budget of 5m"),
        "{:?}",
        v.reasons
    );

    let mut e = passing_evidence();
    e.max_recovery_seconds = None;
    assert_eq!(decide(e).outcome, Outcome::Pass);
}

#[test]
fn verdict_errors_when_it_cannot_decide() {
    let mut e = passing_evidence();
    e.control = Some(ControlJudgement::Violated {
        unsealed: vec!["openfaas-fn/meshproof-restore: Synced=True".into()],
    });
    let v = decide(e);
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        v.reasons[0].contains("the restore proves nothing: secrets unsealed without the old key"),
        "{:?}",
        v.reasons
    );

    let mut e = passing_evidence();
    e.control = None;
    assert_eq!(decide(e).outcome, Outcome::Error);

    let mut e = passing_evidence();
    e.failed_phase = Some((Phase::Rebuild, "kind create cluster timed out".into()));
    let v = decide(e);
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        v.reasons[0].contains("phase rebuild (cluster and stack) failed"),
        "{:?}",
        v.reasons
    );

    let mut e = passing_evidence();
    e.revision_before = Some("main@sha1:0000000000000000000000000000000000000abc".into());
    assert_eq!(decide(e).outcome, Outcome::Error);

    let mut e = passing_evidence();
    e.diff = None;
    assert_eq!(decide(e).outcome, Outcome::Error);
}
