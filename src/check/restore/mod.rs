//! The restore check's decision rules: readiness of Flux objects and SealedSecrets, the
//! negative control, and the verdict. All pure — they take the JSON the API server returned and
//! the observations the flow in [`crate::restore::flow`] collected.
//!
//! What a pass means: after the cluster was destroyed and rebuilt from git, the SealedSecrets
//! could *not* be unsealed until the old sealing key was restored (otherwise the restore proves
//! nothing), and afterwards Flux applied exactly the committed revision and every function and
//! secret is identical to what ran before — within the recovery budget when one is given.

use crate::check::{CheckName, Outcome, Verdict};
pub mod inventory;

use inventory::{InventoryDiff, SecretRef};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The reason of the Warning event sealed-secrets records when an unseal fails — for *any*
/// unseal error: a missing key, but also a value that is not base64 or a template that does
/// not parse (v0.38.4 `pkg/controller/controller.go:374-378`; ledger SS-7). The `Synced`
/// condition has no reason at all (SS-6).
pub const UNSEAL_FAILED_REASON: &str = "ErrUnsealFailed";

/// The error text of a decrypt that no loaded key could do (v0.38.4 `pkg/crypto/crypto.go:84`;
/// ledger SS-8): the only failure that says the *key* is what is missing. `Unseal` tags it
/// with the failing key and joins several, so it is matched as a substring.
pub const NO_KEY_MESSAGE: &str = "no key could decrypt secret";

/// Whether an object has reached the state waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        matches!(self, Readiness::Ready)
    }
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(|t| t.as_str()) == Some(kind))
}

fn cond_status(c: &Value) -> &str {
    c.get("status")
        .and_then(|s| s.as_str())
        .unwrap_or("Unknown")
}

fn cond_text(c: &Value) -> String {
    let reason = c.get("reason").and_then(|s| s.as_str()).unwrap_or("");
    let msg = c.get("message").and_then(|s| s.as_str()).unwrap_or("");
    let mut m: String = msg.chars().take(300).collect();
    if msg.chars().count() > 300 {
        m.push('…');
    }
    // sealed-secrets' `Synced` has a message and never a reason (SS-6); Flux's have both.
    if reason.is_empty() {
        m
    } else {
        format!("{reason}: {m}")
    }
}

/// The status must describe the current spec, not an older one.
fn stale(obj: &Value) -> Option<String> {
    let gen = obj
        .pointer("/metadata/generation")
        .and_then(|g| g.as_i64())?;
    let seen = obj
        .pointer("/status/observedGeneration")
        .and_then(|g| g.as_i64())
        .unwrap_or(-1);
    (seen < gen).then(|| format!("status is for generation {seen}, spec is generation {gen}"))
}

/// A Flux object is ready at `expected` when its `Ready` condition is `True`, its status is
/// current, and `revision_field` (a JSON pointer) equals `expected`.
fn flux_ready_at(obj: &Value, expected: &str, revision_field: &str) -> Readiness {
    if let Some(s) = stale(obj) {
        return Readiness::NotReady(s);
    }
    let Some(c) = condition(obj, "Ready") else {
        return Readiness::NotReady("no Ready condition yet".into());
    };
    if cond_status(c) != "True" {
        return Readiness::NotReady(format!("Ready={} ({})", cond_status(c), cond_text(c)));
    }
    match obj.pointer(revision_field).and_then(|r| r.as_str()) {
        Some(r) if r == expected => Readiness::Ready,
        Some(r) => Readiness::NotReady(format!("Ready at revision {r}, expected {expected}")),
        None => Readiness::NotReady(format!("Ready but no {revision_field}")),
    }
}

/// `Kustomization` Ready=True with `status.lastAppliedRevision == expected`.
pub fn kustomization_ready(obj: &Value, expected: &str) -> Readiness {
    flux_ready_at(obj, expected, "/status/lastAppliedRevision")
}

/// `GitRepository` Ready=True with `status.artifact.revision == expected`.
pub fn git_repository_ready(obj: &Value, expected: &str) -> Readiness {
    flux_ready_at(obj, expected, "/status/artifact/revision")
}

/// A Deployment whose available replicas reach its desired replicas (and whose status is
/// current).
pub fn deployment_available(obj: &Value) -> Readiness {
    if let Some(s) = stale(obj) {
        return Readiness::NotReady(s);
    }
    let want = obj
        .pointer("/spec/replicas")
        .and_then(|r| r.as_i64())
        .unwrap_or(1);
    let have = obj
        .pointer("/status/availableReplicas")
        .and_then(|r| r.as_i64())
        .unwrap_or(0);
    if have >= want {
        Readiness::Ready
    } else {
        Readiness::NotReady(format!("{have}/{want} replicas available"))
    }
}

/// What the controller has done with one SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsealState {
    /// `Synced=True`: the Secret was created from it.
    Synced,
    /// `Synced=False`: the controller tried and failed.
    Failed(String),
    /// No `Synced` condition yet (or a stale one).
    Pending,
}

pub fn sealed_secret_state(obj: &Value) -> UnsealState {
    if stale(obj).is_some() {
        return UnsealState::Pending;
    }
    match condition(obj, "Synced") {
        Some(c) if cond_status(c) == "True" => UnsealState::Synced,
        Some(c) if cond_status(c) == "False" => UnsealState::Failed(cond_text(c)),
        _ => UnsealState::Pending,
    }
}

fn object_ref(obj: &Value) -> Option<SecretRef> {
    Some(SecretRef::new(
        obj.pointer("/metadata/namespace")
            .and_then(|n| n.as_str())
            .unwrap_or(""),
        obj.pointer("/metadata/name")?.as_str()?,
    ))
}

/// SealedSecrets that have a Warning event `ErrUnsealFailed`, with the event's message.
pub fn unseal_failed_events(events: &[Value]) -> BTreeMap<SecretRef, String> {
    events
        .iter()
        .filter(|e| e.get("reason").and_then(|r| r.as_str()) == Some(UNSEAL_FAILED_REASON))
        .filter(|e| e.get("type").and_then(|r| r.as_str()) == Some("Warning"))
        .filter(|e| {
            e.pointer("/involvedObject/kind").and_then(|k| k.as_str()) == Some("SealedSecret")
        })
        .filter_map(|e| {
            let who = SecretRef::new(
                e.pointer("/involvedObject/namespace")
                    .and_then(|n| n.as_str())
                    .unwrap_or(""),
                e.pointer("/involvedObject/name")?.as_str()?,
            );
            let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            Some((who, msg.to_string()))
        })
        // Several events for one SealedSecret: one that names the missing key wins.
        .fold(BTreeMap::new(), |mut m, (who, msg)| {
            let e: &mut String = m.entry(who).or_default();
            if e.is_empty() || (!e.contains(NO_KEY_MESSAGE) && msg.contains(NO_KEY_MESSAGE)) {
                *e = msg;
            }
            m
        })
}

/// The negative control's outcome at one observation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ControlJudgement {
    /// Every SealedSecret failed to unseal and none of their Secrets exists: the key is
    /// needed, so restoring it is what brings the secrets back.
    Held { evidence: Vec<String> },
    /// Some secret was unsealed without the old key.
    Violated { unsealed: Vec<String> },
    /// Not decided: the controller has not processed every SealedSecret, or one failed for a
    /// reason other than a missing key (then the failure proves nothing about the key).
    Undecided { waiting: Vec<String> },
}

/// Judges the negative control from what the new cluster shows before the key is restored:
/// the SealedSecrets' status, the namespace events, and which of the target Secrets exist.
///
/// A SealedSecret counts as evidence only when its failure says no key could decrypt it
/// ([`NO_KEY_MESSAGE`], in `Synced=False`'s message or an `ErrUnsealFailed` event's): the
/// controller fails the same way for a value that is not base64, a Secret it may not manage
/// or an API error, and none of those shows that the old key is needed.
pub fn judge_control(
    expected: &[SecretRef],
    sealed: &[Value],
    events: &[Value],
    secrets_present: &BTreeSet<SecretRef>,
) -> ControlJudgement {
    let failed_events = unseal_failed_events(events);
    let mut unsealed = Vec::new();
    let mut waiting = Vec::new();
    let mut evidence = Vec::new();
    for want in expected {
        let state = sealed
            .iter()
            .find(|s| object_ref(s).as_ref() == Some(want))
            .map(sealed_secret_state);
        if secrets_present.contains(want) {
            unsealed.push(format!("{want}: the Secret exists"));
            continue;
        }
        let event = failed_events.get(want);
        match (state, event) {
            (Some(UnsealState::Synced), _) => {
                unsealed.push(format!("{want}: SealedSecret Synced=True"))
            }
            (Some(UnsealState::Failed(why)), _) if why.contains(NO_KEY_MESSAGE) => {
                evidence.push(format!("{want}: Synced=False ({why})"))
            }
            (_, Some(msg)) if msg.contains(NO_KEY_MESSAGE) => evidence.push(format!(
                "{want}: Warning event {UNSEAL_FAILED_REASON} ({msg})"
            )),
            (Some(UnsealState::Failed(why)), _) => waiting.push(format!(
                "{want}: the unseal failed, but not for want of a key ({why})"
            )),
            (_, Some(msg)) => waiting.push(format!(
                "{want}: {UNSEAL_FAILED_REASON}, but not for want of a key ({msg})"
            )),
            (Some(UnsealState::Pending), None) => {
                waiting.push(format!("{want}: SealedSecret not processed yet"))
            }
            (None, None) => waiting.push(format!("{want}: SealedSecret not applied yet")),
        }
    }
    if !unsealed.is_empty() {
        ControlJudgement::Violated { unsealed }
    } else if !waiting.is_empty() {
        ControlJudgement::Undecided { waiting }
    } else {
        ControlJudgement::Held { evidence }
    }
}

/// The steps of the flow, in order, each named for everything it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Sealing, committing, serving and converging the first cluster (not part of the RTO).
    Prepare,
    RecordInventory,
    BackupKeys,
    Destroy,
    /// A new cluster *and* the suite's whole stack on it (mesh, OpenFaaS, sealed-secrets,
    /// Flux's controllers): for kind, most of the RTO.
    Rebuild,
    /// `flux install` (a no-op where the stack installed the same Flux) and the sources.
    BootstrapFlux,
    /// Flux's apply of the desired state and the controller's failed unseals, then a short
    /// deliberate hold ([`ControlTimeline`]).
    NegativeControl,
    KeyRestore,
    Reconcile,
    /// Restarting the functions whose pods started before their Secret existed.
    RestartFunctions,
    Verify,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Prepare => "prepare",
            Phase::RecordInventory => "record inventory",
            Phase::BackupKeys => "back up sealing keys",
            Phase::Destroy => "destroy",
            Phase::Rebuild => "rebuild (cluster and stack)",
            Phase::BootstrapFlux => "bootstrap Flux",
            Phase::NegativeControl => "negative control",
            Phase::KeyRestore => "key restore",
            Phase::Reconcile => "reconcile",
            Phase::RestartFunctions => "restart functions",
            Phase::Verify => "verify",
        })
    }
}

/// How long one phase took and whether it completed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseRecord {
    pub phase: Phase,
    pub seconds: f64,
    pub ok: bool,
}

/// When things happened inside the negative control, in seconds from its start. The control
/// holds real recovery work — Flux cloning and applying the desired state, the controller
/// trying to unseal — which a real recovery does too, and then a deliberate hold meshproof
/// adds to see that nothing unseals late. Only the hold is left out of the RTO.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ControlTimeline {
    /// When the Kustomization was first seen Ready at the committed revision (it may never be
    /// during the control, e.g. when it waits for functions that wait for the Secret).
    pub kustomization_ready_after: Option<f64>,
    /// When the first SealedSecret was seen failing for want of the key.
    pub first_failure_after: Option<f64>,
    /// When every SealedSecret had failed that way (the control held).
    pub held_after: Option<f64>,
    /// When the deliberate hold ended.
    pub ended_after: f64,
}

impl ControlTimeline {
    /// The deliberate part: from the first failure to the end of the control. Nothing when the
    /// control never saw a failure (then it did not hold, and there is no RTO).
    pub fn deliberate_seconds(&self) -> f64 {
        self.first_failure_after
            .map(|f| (self.ended_after - f).max(0.0))
            .unwrap_or(0.0)
    }
}

/// Everything the restore verdict is based on. No secret values: secrets appear as names and
/// digest prefixes only.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RestoreEvidence {
    /// The committed HEAD (`main@sha1:<hex>`) Flux must be Ready at, before and after.
    pub expected_revision: Option<String>,
    pub revision_before: Option<String>,
    pub revision_after: Option<String>,
    pub phases: Vec<PhaseRecord>,
    /// Recovery time: from the start of destruction to the last check, without the negative
    /// control's deliberate part (from the first failed unseal to the end of the hold: a real
    /// recovery would restore the key at once). Flux's clone and apply inside the control are
    /// real recovery work and stay in. This is what `maxRecovery` judges.
    pub rto_seconds: Option<f64>,
    /// The same span with the whole negative control: the wall-clock time the check took.
    pub elapsed_seconds: Option<f64>,
    /// What happened when inside the negative control.
    pub control_timeline: Option<ControlTimeline>,
    /// Functions restarted after the key restore because their pods started before their
    /// Secret existed (kubelet would retry the mount only after its backoff).
    pub restarted_functions: Vec<String>,
    pub max_recovery_seconds: Option<f64>,
    pub functions: Vec<String>,
    pub secrets: Vec<String>,
    pub keys_backed_up: Vec<String>,
    pub control: Option<ControlJudgement>,
    pub diff: Option<InventoryDiff>,
    /// The phase that could not complete, and why.
    pub failed_phase: Option<(Phase, String)>,
}

fn fmt_secs(s: f64) -> String {
    humantime::format_duration(Duration::from_millis((s * 1000.0).round().max(0.0) as u64))
        .to_string()
}

/// The verdict, from the evidence alone.
pub fn decide(e: RestoreEvidence) -> Verdict<RestoreEvidence> {
    let mut reasons = Vec::new();
    if let Some((phase, why)) = &e.failed_phase {
        reasons.push(format!("phase {phase} failed: {why}"));
        return Verdict::new(CheckName::Restore, Outcome::Error, reasons, e);
    }
    match &e.control {
        Some(ControlJudgement::Held { .. }) => {}
        Some(ControlJudgement::Violated { unsealed }) => {
            reasons.push(format!(
                "the restore proves nothing: secrets unsealed without the old key ({})",
                unsealed.join("; ")
            ));
            return Verdict::new(CheckName::Restore, Outcome::Error, reasons, e);
        }
        Some(ControlJudgement::Undecided { waiting }) => {
            reasons.push(format!(
                "negative control undecided: {}",
                waiting.join("; ")
            ));
            return Verdict::new(CheckName::Restore, Outcome::Error, reasons, e);
        }
        None => {
            reasons.push("the negative control was not run".into());
            return Verdict::new(CheckName::Restore, Outcome::Error, reasons, e);
        }
    }
    let (Some(expected), Some(diff), Some(rto)) = (&e.expected_revision, &e.diff, e.rto_seconds)
    else {
        reasons.push("the flow ended without an inventory diff, a revision or an RTO".into());
        return Verdict::new(CheckName::Restore, Outcome::Error, reasons, e);
    };
    if e.revision_before.as_deref() != Some(expected.as_str()) {
        reasons.push(format!(
            "before destruction the Kustomization was at {}, not at the committed {expected}: the recorded inventory is not the desired state",
            e.revision_before.as_deref().unwrap_or("(none)")
        ));
        return Verdict::new(CheckName::Restore, Outcome::Error, reasons, e);
    }
    let mut outcome = Outcome::Pass;
    if e.revision_after.as_deref() != Some(expected.as_str()) {
        outcome = Outcome::Fail;
        reasons.push(format!(
            "after recovery Flux is at {}, expected {expected}",
            e.revision_after.as_deref().unwrap_or("(none)")
        ));
    }
    if !diff.is_identical() {
        outcome = Outcome::Fail;
        reasons.extend(diff.changes.iter().map(|c| c.to_string()));
    }
    if let Some(max) = e.max_recovery_seconds {
        if rto > max {
            outcome = Outcome::Fail;
            reasons.push(format!(
                "recovery took {}, over the budget of {}",
                fmt_secs(rto),
                fmt_secs(max)
            ));
        }
    }
    if outcome == Outcome::Pass {
        let deliberate = e
            .control_timeline
            .as_ref()
            .map(ControlTimeline::deliberate_seconds)
            .unwrap_or(0.0);
        let breakdown: Vec<String> = e
            .phases
            .iter()
            .filter(|p| {
                !matches!(
                    p.phase,
                    Phase::Prepare | Phase::RecordInventory | Phase::BackupKeys
                )
            })
            .map(|p| match p.phase {
                // Only its recovery work counts (Flux's apply, the failed unseals).
                Phase::NegativeControl => format!(
                    "Flux apply and failed unseals {}",
                    fmt_secs((p.seconds - deliberate).max(0.0))
                ),
                _ => format!("{} {}", p.phase, fmt_secs(p.seconds)),
            })
            .collect();
        let elapsed = e
            .elapsed_seconds
            .map(|s| {
                let held = e
                    .control_timeline
                    .as_ref()
                    .map(|t| format!(", of which {} deliberate", fmt_secs(t.deliberate_seconds())))
                    .unwrap_or_default();
                format!("; {} elapsed with the negative control{held}", fmt_secs(s))
            })
            .unwrap_or_default();
        reasons.push(format!(
            "{} function(s) and {} secret(s) came back identical at {expected}; RTO {} ({}){elapsed}",
            e.functions.len(),
            e.secrets.len(),
            fmt_secs(rto),
            breakdown.join(", ")
        ));
    }
    Verdict::new(CheckName::Restore, outcome, reasons, e)
}
