//! The step executor: runs a trial's steps in order, each under a timeout, records what the
//! trial created, and always cleans up — after dumping the namespaces' state when anything
//! failed.
//!
//! The cluster side is the [`TrialOps`] trait, so the order of things (render → act → record →
//! clean up; stop at the first failed step or non-passing check) is tested with a recording
//! double, and the real implementation ([`super::kube_ops::KubeTrial`]) against a real API
//! server.

use super::render::{self, FunctionRequest, ObjectRef, WaitTarget};
use super::tracker::{Created, Tracker};
use crate::check::{Outcome, Verdict};
use crate::scenario::template::Vars;
use crate::scenario::{Check, DataPlane, Mesh, Scenario, Step};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Deadline of an `apply`, `delete` or `deploy` step, and of each cleanup action.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// How the dump's files are named in a trial's artifacts in the report (the report flattens
/// `dump/<file>` into `dump--<file>`).
pub const DUMP_PREFIX: &str = "dump--";

/// Deadline of the failure dump.
pub const DUMP_TIMEOUT: Duration = Duration::from_secs(120);
/// Extra time a `wait` step gets over its own timeout (half of it, at most this), so the wait
/// reports the object's state (its own timeout) rather than being cut by the step deadline.
const WAIT_SLACK: Duration = Duration::from_secs(15);

/// One applied object, and whether this apply created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedObject {
    pub object: ObjectRef,
    pub created: bool,
}

/// What the executor needs from a cluster. Errors are human-readable and already redacted.
#[allow(async_fn_in_trait)]
pub trait TrialOps {
    /// Server-side applies every object of `yaml` (field manager `meshproof`, run-id label).
    async fn apply(&mut self, yaml: &str) -> Result<Vec<AppliedObject>, String>;
    /// Deletes the objects (absent ones are fine).
    async fn delete(&mut self, objects: &[ObjectRef]) -> Result<(), String>;
    async fn deploy(&mut self, f: &FunctionRequest) -> Result<(), String>;
    async fn remove_function(&mut self, name: &str) -> Result<(), String>;
    async fn wait(&mut self, target: &WaitTarget, timeout: Duration) -> Result<(), String>;
    /// Runs one check. Anything the check creates is recorded in `tracker`.
    async fn check(&mut self, check: &Check, vars: &Vars, tracker: &mut Tracker) -> Verdict<Value>;
    /// Writes events, pod statuses and logs of the OpenFaaS namespaces under `dir`.
    async fn dump(&mut self, dir: &Path) -> Result<(), String>;
}

/// Everything a trial renders with.
#[derive(Debug, Clone)]
pub struct TrialSpec<'a> {
    pub name: &'a str,
    pub scenario: &'a Scenario,
    pub mesh: Mesh,
    /// The trial's data plane: which manifest variants and waits it takes
    /// (`plan::TrialPlan::data_plane`) and how an unmeshed function opts out (an annotation for
    /// sidecars and Linkerd, a pod label under Istio ambient).
    pub data_plane: DataPlane,
    /// `plan::vars_with_images(suite, env, scenario, Some(run_id), pinned images)`.
    pub vars: Vars,
    pub run_id: String,
    /// Where the failure dump goes (`None`: no dump).
    pub artifacts: Option<PathBuf>,
}

/// Why a step did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("step {index} ({title}) timed out after {after}")]
    Timeout {
        index: usize,
        title: String,
        after: String,
    },
    #[error("step {index} ({title}) failed: {reason}")]
    Failed {
        index: usize,
        title: String,
        reason: String,
    },
}

/// The result of a trial.
#[derive(Debug, Clone)]
pub struct TrialReport {
    /// Every check's verdict, in step order (checks after a failed step did not run).
    pub verdicts: Vec<Verdict<Value>>,
    pub step_error: Option<StepError>,
    pub cleanup_errors: Vec<String>,
    /// Where the failure dump went, or why there is none.
    pub dump: Option<String>,
}

impl TrialReport {
    /// A trial passes only when every step completed, every check passed, and cleanup worked.
    pub fn passed(&self) -> bool {
        self.step_error.is_none()
            && self.cleanup_errors.is_empty()
            && self.verdicts.iter().all(|v| v.outcome == Outcome::Pass)
    }

    /// The worst outcome (an incomplete step is an error).
    pub fn outcome(&self) -> Outcome {
        let mut o = self
            .verdicts
            .iter()
            .fold(Outcome::Pass, |o, v| o.worst(v.outcome));
        if self.step_error.is_some() || !self.cleanup_errors.is_empty() {
            o = o.worst(Outcome::Error);
        }
        o
    }

    /// The first reasons of what went wrong, for a one-paragraph failure message.
    pub fn failure_message(&self) -> Option<String> {
        if self.passed() {
            return None;
        }
        let mut lines = Vec::new();
        for v in self.verdicts.iter().filter(|v| v.outcome != Outcome::Pass) {
            let reasons: Vec<&str> = v.reasons.iter().take(3).map(String::as_str).collect();
            lines.push(format!(
                "check {} {}: {}",
                v.check,
                v.outcome,
                reasons.join("; ")
            ));
        }
        if let Some(e) = &self.step_error {
            lines.push(e.to_string());
        }
        for e in self.cleanup_errors.iter().take(3) {
            lines.push(format!("cleanup: {e}"));
        }
        if let Some(d) = &self.dump {
            lines.push(format!("diagnostics: {d}"));
        }
        Some(lines.join("\n"))
    }
}

/// How long a step may take in total.
pub fn step_timeout(step: &Step) -> Duration {
    match step {
        Step::Apply(_) | Step::Delete(_) | Step::Deploy(_) => DEFAULT_STEP_TIMEOUT,
        Step::Wait(w) => w.timeout + WAIT_SLACK.min(w.timeout / 2),
        Step::Check(c) => super::checks::check_budget(c),
    }
}

/// The plan's title of a step (the same words `meshproof plan` prints).
pub fn step_title(step: &Step, data_plane: DataPlane, vars: &Vars) -> String {
    crate::plan::describe_step(step, data_plane, vars)
        .into_iter()
        .next()
        .unwrap_or_else(|| "step".into())
}

async fn run_step<O: TrialOps>(
    ops: &mut O,
    step: &Step,
    spec: &TrialSpec<'_>,
    tracker: &mut Tracker,
) -> Result<Option<Verdict<Value>>, String> {
    match step {
        Step::Apply(m) => {
            let r = render::render_manifests(m, spec.data_plane, &spec.vars)
                .map_err(|e| e.to_string())?;
            let applied = ops
                .apply(&r.yaml)
                .await
                .map_err(|e| format!("applying {}: {e}", r.origin))?;
            for a in &applied {
                tracker.object(&a.object, a.created);
            }
            Ok(None)
        }
        Step::Delete(m) => {
            let r = render::render_manifests(m, spec.data_plane, &spec.vars)
                .map_err(|e| e.to_string())?;
            let objects = render::objects_of(&r.yaml, "default").map_err(|e| e.to_string())?;
            ops.delete(&objects)
                .await
                .map_err(|e| format!("deleting {}: {e}", r.origin))?;
            for o in &objects {
                tracker.forget_object(o);
            }
            Ok(None)
        }
        Step::Deploy(d) => {
            let f = render::render_deploy(d, spec.data_plane, &spec.vars, &spec.run_id)
                .map_err(|e| e.to_string())?;
            // Recorded first: a deploy that times out half-way must still be removed.
            tracker.function(&f.service);
            ops.deploy(&f).await?;
            Ok(None)
        }
        Step::Wait(w) if !w.applies_to(spec.data_plane) => Ok(None),
        Step::Wait(w) => {
            let (target, timeout) =
                render::render_wait(w, &spec.vars).map_err(|e| e.to_string())?;
            ops.wait(&target, timeout).await?;
            Ok(None)
        }
        Step::Check(c) => Ok(Some(ops.check(c, &spec.vars, tracker).await)),
    }
}

/// Runs every step of the trial, then cleans up. Stops at the first step that fails and at the
/// first check that does not pass (later steps build on earlier ones).
pub async fn run_trial<O: TrialOps>(ops: &mut O, spec: &TrialSpec<'_>) -> TrialReport {
    let mut tracker = Tracker::default();
    let mut report = TrialReport {
        verdicts: Vec::new(),
        step_error: None,
        cleanup_errors: Vec::new(),
        dump: None,
    };
    for (i, step) in spec.scenario.steps.iter().enumerate() {
        let index = i + 1;
        let title = step_title(step, spec.data_plane, &spec.vars);
        let limit = step_timeout(step);
        match tokio::time::timeout(limit, run_step(ops, step, spec, &mut tracker)).await {
            Err(_) => {
                report.step_error = Some(StepError::Timeout {
                    index,
                    title,
                    after: humantime::format_duration(limit).to_string(),
                });
                break;
            }
            Ok(Err(reason)) => {
                report.step_error = Some(StepError::Failed {
                    index,
                    title,
                    reason,
                });
                break;
            }
            Ok(Ok(Some(v))) => {
                let pass = v.outcome == Outcome::Pass;
                report.verdicts.push(v);
                if !pass {
                    break;
                }
            }
            Ok(Ok(None)) => {}
        }
    }
    if !report.passed() {
        report.dump = Some(match &spec.artifacts {
            Some(dir) => {
                let dir = dir.join("dump");
                // Named as the report shows it: the dump is written to the run's private
                // artifacts dir, which is gone once its redacted copy is in the report (an
                // absolute /tmp path here pointed nowhere once the report was uploaded).
                match tokio::time::timeout(DUMP_TIMEOUT, ops.dump(&dir)).await {
                    Ok(Ok(())) => format!("in this trial's artifacts ({DUMP_PREFIX}*)"),
                    Ok(Err(e)) => format!("the dump failed: {e}"),
                    Err(_) => format!("the dump timed out after {}s", DUMP_TIMEOUT.as_secs()),
                }
            }
            None => "no artifacts directory: nothing dumped".into(),
        });
    }
    report.cleanup_errors = cleanup(ops, &tracker).await;
    report
}

/// Removes everything `tracker` holds; returns what could not be removed.
pub async fn cleanup<O: TrialOps>(ops: &mut O, tracker: &Tracker) -> Vec<String> {
    let mut errors = Vec::new();
    for c in tracker.cleanup_order() {
        let (what, r) = match &c {
            Created::Function(name) => (
                format!("function {name}"),
                tokio::time::timeout(DEFAULT_STEP_TIMEOUT, ops.remove_function(name)).await,
            ),
            Created::Object(o) => (
                o.to_string(),
                tokio::time::timeout(DEFAULT_STEP_TIMEOUT, ops.delete(std::slice::from_ref(o)))
                    .await,
            ),
        };
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("removing {what}: {e}")),
            Err(_) => errors.push(format!("removing {what}: timed out")),
        }
    }
    errors
}
