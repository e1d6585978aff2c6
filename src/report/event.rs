//! The closed set of things a run tells its reporter.
//!
//! The harness (and later the providers) never write result files themselves: they emit these
//! events, and [`super::Reporter`] turns them into `junit.xml`, `report.json` and the artifact
//! tree. A closed enum keeps every writer in step with every producer — a new kind of event is a
//! compile error in each consumer, not a silently dropped line.

use super::fingerprint::Fingerprint;
use crate::check::verdict::{Outcome, Verdict};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

/// One event of a run, in the order a run produces them.
#[derive(Debug, Clone)]
pub enum Event {
    /// The run begins. `git_revision` is the commit the harness was built from (or "unknown").
    RunStarted {
        at: OffsetDateTime,
        git_revision: String,
        /// The command that reproduces the run as invoked (libtest filter included), if known.
        invocation: Option<String>,
    },
    /// An environment is about to be used; its fingerprint may still have unknown (null) fields.
    EnvironmentStarted {
        environment: String,
        fingerprint: Box<Fingerprint>,
    },
    /// Facts learned about an environment after it started (e.g. the server version once the
    /// cluster answers). `None` fields leave what is known untouched.
    EnvironmentUpdated {
        environment: String,
        fingerprint: Box<Fingerprint>,
    },
    /// A trial (`scenario` in `environment`) begins.
    TrialStarted {
        environment: String,
        scenario: String,
    },
    /// A trial ends. The outcome is reconciled with the verdicts and controls (see
    /// [`TrialOutcome::reconcile`]) before it is recorded.
    TrialFinished {
        environment: String,
        scenario: String,
        outcome: TrialOutcome,
        duration: Duration,
        verdicts: Vec<Verdict<serde_json::Value>>,
        controls: Vec<Control>,
    },
    /// The environment is torn down (or kept); `teardown_error` says why teardown failed.
    EnvironmentFinished {
        environment: String,
        teardown_error: Option<String>,
    },
    /// The run ends: the reporter writes `junit.xml` and `report.json`.
    RunFinished { at: OffsetDateTime },
    /// The run was stopped by a signal before it finished: the reporter writes a *partial*
    /// report, which says so (`interrupted`), errors the trials still running, and is never a
    /// success. `why` names the signal and what the teardown after it left.
    RunInterrupted { at: OffsetDateTime, why: String },
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TrialOutcome {
    /// Every verdict passed and every negative control held.
    Passed,
    /// A property was violated.
    Failed { reasons: Vec<String> },
    /// No verdict could be reached (environment could not be set up, a check errored, a
    /// negative control did not hold, not yet implemented…).
    Errored { reasons: Vec<String> },
    /// Not run, and why.
    Ignored { reason: String },
}

impl TrialOutcome {
    /// `Failed` with at least one reason (a failure is never silent).
    pub fn failed(reasons: Vec<String>) -> TrialOutcome {
        TrialOutcome::Failed {
            reasons: non_empty(reasons, "the trial failed without a stated reason"),
        }
    }

    /// `Errored` with at least one reason.
    pub fn errored(reasons: Vec<String>) -> TrialOutcome {
        TrialOutcome::Errored {
            reasons: non_empty(reasons, "the trial errored without a stated reason"),
        }
    }

    pub fn ignored(reason: impl Into<String>) -> TrialOutcome {
        TrialOutcome::Ignored {
            reason: reason.into(),
        }
    }

    /// Short lowercase label: passed, failed, errored, ignored.
    pub fn label(&self) -> &'static str {
        match self {
            TrialOutcome::Passed => "passed",
            TrialOutcome::Failed { .. } => "failed",
            TrialOutcome::Errored { .. } => "errored",
            TrialOutcome::Ignored { .. } => "ignored",
        }
    }

    /// The reasons, one per line (empty for a pass).
    pub fn reasons(&self) -> Vec<String> {
        match self {
            TrialOutcome::Passed => Vec::new(),
            TrialOutcome::Failed { reasons } | TrialOutcome::Errored { reasons } => reasons.clone(),
            TrialOutcome::Ignored { reason } => vec![reason.clone()],
        }
    }

    /// Makes the claimed outcome agree with the evidence, so that no report can say "passed"
    /// without a verdict behind it:
    /// - a pass without any verdict is an error;
    /// - a pass with an errored verdict, or with a negative control that did not hold (the check
    ///   was blind), is an error; a pass with a failed verdict is a failure;
    /// - failures and errors gain the reasons of the verdicts that caused them;
    /// - an ignored trial stays ignored.
    pub fn reconcile(
        self,
        verdicts: &[Verdict<serde_json::Value>],
        controls: &[Control],
    ) -> TrialOutcome {
        let verdict_reasons = |want: Outcome| -> Vec<String> {
            verdicts
                .iter()
                .filter(|v| v.outcome == want)
                .flat_map(|v| v.reasons.iter().map(move |r| format!("{}: {r}", v.check)))
                .collect()
        };
        let control_reasons: Vec<String> = controls
            .iter()
            .filter(|c| !c.held)
            .map(|c| {
                format!(
                    "negative control {:?} did not hold: expected {}, observed {}",
                    c.name, c.expected, c.observed
                )
            })
            .collect();
        let worst = verdicts
            .iter()
            .fold(Outcome::Pass, |acc, v| acc.worst(v.outcome));
        match self {
            TrialOutcome::Ignored { .. } => self,
            TrialOutcome::Passed => {
                if verdicts.is_empty() {
                    TrialOutcome::errored(vec![
                        "the trial reported a pass without any verdict".into()
                    ])
                } else if worst == Outcome::Error || !control_reasons.is_empty() {
                    let mut r = verdict_reasons(Outcome::Error);
                    r.extend(control_reasons);
                    TrialOutcome::errored(r)
                } else if worst == Outcome::Fail {
                    TrialOutcome::failed(verdict_reasons(Outcome::Fail))
                } else {
                    TrialOutcome::Passed
                }
            }
            TrialOutcome::Failed { mut reasons } => {
                for r in verdict_reasons(Outcome::Fail) {
                    if !reasons.contains(&r) {
                        reasons.push(r);
                    }
                }
                TrialOutcome::failed(reasons)
            }
            TrialOutcome::Errored { mut reasons } => {
                for r in verdict_reasons(Outcome::Error)
                    .into_iter()
                    .chain(control_reasons)
                {
                    if !reasons.contains(&r) {
                        reasons.push(r);
                    }
                }
                TrialOutcome::errored(reasons)
            }
        }
    }
}

fn non_empty(mut reasons: Vec<String>, fallback: &str) -> Vec<String> {
    reasons.retain(|r| !r.trim().is_empty());
    if reasons.is_empty() {
        reasons.push(fallback.to_string());
    }
    reasons
}

/// A negative control: an observation that *must* differ from the checked one for the check to
/// mean anything (the unmeshed twin shows the sentinel; the wrong host is rejected).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    pub name: String,
    pub expected: String,
    pub observed: String,
    /// Whether the observation matched the expectation.
    pub held: bool,
}

impl Control {
    /// A control whose `held` is decided by comparing what was expected with what was seen.
    pub fn compare(
        name: impl Into<String>,
        expected: impl Into<String>,
        observed: impl Into<String>,
    ) -> Control {
        let (expected, observed) = (expected.into(), observed.into());
        Control {
            name: name.into(),
            held: expected == observed,
            expected,
            observed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::verdict::CheckName;

    fn v(o: Outcome, reason: &str) -> Verdict<serde_json::Value> {
        Verdict::new(
            CheckName::Tls,
            o,
            if reason.is_empty() {
                vec![]
            } else {
                vec![reason.into()]
            },
            serde_json::json!({}),
        )
    }

    #[test]
    fn a_pass_needs_a_verdict() {
        let o = TrialOutcome::Passed.reconcile(&[], &[]);
        assert_eq!(o.label(), "errored");
        assert!(o.reasons()[0].contains("without any verdict"));
        assert_eq!(
            TrialOutcome::Passed.reconcile(&[v(Outcome::Pass, "")], &[]),
            TrialOutcome::Passed
        );
    }

    #[test]
    fn a_claimed_pass_follows_its_verdicts_and_controls() {
        let o = TrialOutcome::Passed
            .reconcile(&[v(Outcome::Pass, ""), v(Outcome::Fail, "expired")], &[]);
        assert_eq!(
            o,
            TrialOutcome::Failed {
                reasons: vec!["tls: expired".into()]
            }
        );
        let o = TrialOutcome::Passed
            .reconcile(&[v(Outcome::Fail, "x"), v(Outcome::Error, "timeout")], &[]);
        assert_eq!(o.label(), "errored");
        let blind = Control::compare(
            "unmeshed twin shows the sentinel",
            "sentinel seen",
            "nothing captured",
        );
        assert!(!blind.held);
        let o = TrialOutcome::Passed.reconcile(&[v(Outcome::Pass, "")], &[blind]);
        assert_eq!(o.label(), "errored");
        assert!(o.reasons()[0].contains("did not hold"), "{o:?}");
    }

    #[test]
    fn ignored_stays_ignored_and_failures_always_have_reasons() {
        assert_eq!(
            TrialOutcome::ignored("why").reconcile(&[], &[]).label(),
            "ignored"
        );
        assert_eq!(TrialOutcome::failed(vec![" ".into()]).reasons().len(), 1);
        assert_eq!(TrialOutcome::errored(vec![]).reasons().len(), 1);
    }
}
