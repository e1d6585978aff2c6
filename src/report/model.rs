//! The content of `report.json`, and the success / partial / failure rule.
//!
//! The same types are written by the reporter and read back by `meshproof report`, so the file
//! format is defined in exactly one place.

use super::event::{Control, TrialOutcome};
use super::fingerprint::Fingerprint;
use crate::check::verdict::Verdict;
use serde::{Deserialize, Serialize};

/// The format identifier stored in every report; bump it when the shape changes incompatibly.
pub const SCHEMA: &str = "meshproof-report/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub schema: String,
    pub run_id: String,
    pub meshproof: Build,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC; `null` while the run is in progress.
    pub finished_at: Option<String>,
    /// The command line that produced the run, when known.
    pub invocation: Option<String>,
    /// Per environment, sorted by name.
    pub environments: Vec<EnvironmentRecord>,
    /// Per suite, sorted by name.
    pub suites: Vec<SuiteSummary>,
    /// The whole run.
    pub summary: Summary,
    /// Set when a signal stopped the run before it finished: this report is partial (trials
    /// that had not run are absent) and its status is never `success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// SHA-256 (hex) of the canonical report body without this field; see `super::integrity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    /// `CARGO_PKG_VERSION` of the harness.
    pub version: String,
    /// `git rev-parse HEAD` of the checkout, or `unknown`.
    pub git_revision: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentRecord {
    pub name: String,
    pub suite: String,
    pub fingerprint: Fingerprint,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub teardown_error: Option<String>,
    /// Sorted by scenario name.
    pub trials: Vec<TrialRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrialRecord {
    /// `<environment>::<scenario>`, the libtest name.
    pub id: String,
    pub scenario: String,
    pub outcome: TrialOutcome,
    pub duration_ms: u64,
    /// Every check's verdict with its evidence.
    pub verdicts: Vec<Verdict<serde_json::Value>>,
    /// The negative controls' outcomes.
    pub controls: Vec<Control>,
    /// Directory of this trial's artifacts relative to the report dir, when any were written.
    pub artifacts: Option<String>,
}

/// How a suite (or the whole run) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// At least one trial ran and every trial passed.
    Success,
    /// Nothing failed or errored, but some trials were ignored (or none ran): not a
    /// certification.
    Partial,
    /// At least one trial failed or errored.
    Failure,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Partial => "partial",
            Status::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub passed: u32,
    pub failed: u32,
    pub errored: u32,
    pub ignored: u32,
}

impl Counts {
    pub fn add(&mut self, o: &TrialOutcome) {
        match o {
            TrialOutcome::Passed => self.passed += 1,
            TrialOutcome::Failed { .. } => self.failed += 1,
            TrialOutcome::Errored { .. } => self.errored += 1,
            TrialOutcome::Ignored { .. } => self.ignored += 1,
        }
    }

    pub fn total(&self) -> u32 {
        self.passed + self.failed + self.errored + self.ignored
    }

    /// The rule: any failure or error → failure; otherwise all passed (and something ran) →
    /// success; otherwise partial.
    pub fn status(&self) -> Status {
        if self.failed + self.errored > 0 {
            Status::Failure
        } else if self.passed > 0 && self.ignored == 0 {
            Status::Success
        } else {
            Status::Partial
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuiteSummary {
    pub name: String,
    pub status: Status,
    pub counts: Counts,
    pub environments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub status: Status,
    pub counts: Counts,
    pub duration_ms: u64,
}

impl Report {
    /// Recomputes the per-suite and overall summaries from the trials.
    pub fn summarize(&mut self) {
        let mut suites: std::collections::BTreeMap<String, SuiteSummary> = Default::default();
        let mut all = Counts::default();
        let mut total_ms = 0u64;
        for env in &self.environments {
            let s = suites
                .entry(env.suite.clone())
                .or_insert_with(|| SuiteSummary {
                    name: env.suite.clone(),
                    status: Status::Partial,
                    counts: Counts::default(),
                    environments: Vec::new(),
                });
            s.environments.push(env.name.clone());
            for t in &env.trials {
                s.counts.add(&t.outcome);
                all.add(&t.outcome);
                total_ms = total_ms.saturating_add(t.duration_ms);
            }
        }
        // A cluster that could not be torn down may still be running (and costing): the suite
        // is a failure whatever its trials said, so CI cannot stay green over a leak.
        let torn = |suite: &str| {
            self.environments
                .iter()
                .any(|e| e.suite == suite && e.teardown_error.is_some())
        };
        for s in suites.values_mut() {
            s.status = if torn(&s.name) {
                Status::Failure
            } else {
                s.counts.status()
            };
        }
        self.suites = suites.into_values().collect();
        let any_torn = self.environments.iter().any(|e| e.teardown_error.is_some());
        self.summary = Summary {
            status: if any_torn {
                Status::Failure
            } else if self.interrupted.is_some() && all.status() == Status::Success {
                // What ran passed, but what did not run is unknown.
                Status::Partial
            } else {
                all.status()
            },
            counts: all,
            duration_ms: total_ms,
        };
    }

    /// Every trial with its environment, in report order.
    pub fn trials(&self) -> impl Iterator<Item = (&EnvironmentRecord, &TrialRecord)> {
        self.environments
            .iter()
            .flat_map(|e| e.trials.iter().map(move |t| (e, t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(p: u32, f: u32, e: u32, i: u32) -> Counts {
        Counts {
            passed: p,
            failed: f,
            errored: e,
            ignored: i,
        }
    }

    #[test]
    fn success_partial_failure() {
        assert_eq!(counts(3, 0, 0, 0).status(), Status::Success);
        assert_eq!(counts(3, 0, 0, 1).status(), Status::Partial);
        assert_eq!(counts(0, 0, 0, 4).status(), Status::Partial);
        assert_eq!(
            counts(0, 0, 0, 0).status(),
            Status::Partial,
            "nothing ran is not a success"
        );
        assert_eq!(counts(3, 1, 0, 0).status(), Status::Failure);
        assert_eq!(counts(3, 0, 1, 5).status(), Status::Failure);
    }
}
