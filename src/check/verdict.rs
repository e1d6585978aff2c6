//! The shape every assertion returns.
//!
//! A conformance harness is only as good as its verdicts, so a verdict is never a bare boolean:
//! it says *pass*, *fail* or *error* (could not decide), why, and carries the evidence that a
//! reader needs to believe it. The evidence type is chosen by each engine; reporting code erases
//! it to JSON with [`Verdict::erase`].

use serde::{Deserialize, Serialize};

/// The three ways an assertion can end.
///
/// `Error` is deliberately distinct from `Fail`: "the deny rule held because the service was
/// down" must never be reported as either pass or fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The property holds, and the evidence shows it.
    Pass,
    /// The property is violated.
    Fail,
    /// The engine could not decide: unreachable, timed out, malformed input.
    Error,
}

impl Outcome {
    /// Process exit code for `meshproof check …`: 0 pass, 1 fail, 2 error.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            Outcome::Error => 2,
        }
    }

    /// The worse of two outcomes (`Error` > `Fail` > `Pass`), for combining sub-checks.
    pub fn worst(self, other: Outcome) -> Outcome {
        fn rank(o: Outcome) -> u8 {
            match o {
                Outcome::Pass => 0,
                Outcome::Fail => 1,
                Outcome::Error => 2,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
        })
    }
}

/// Which engine produced a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckName {
    Tls,
    Canary,
    Mtls,
    Http,
    Restore,
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckName::Tls => "tls",
            CheckName::Canary => "canary",
            CheckName::Mtls => "mtls",
            CheckName::Http => "http",
            CheckName::Restore => "restore",
        })
    }
}

/// A decided assertion with its reasons and evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict<E> {
    pub check: CheckName,
    pub outcome: Outcome,
    /// Human-readable reasons, most important first. A non-pass verdict always has at least one.
    pub reasons: Vec<String>,
    /// Machine-readable evidence (what was observed), engine-specific.
    pub evidence: E,
}

impl<E: Serialize> Verdict<E> {
    /// Builds a verdict; a non-pass verdict without a reason gets a generic one so that no
    /// failure is ever reported silently.
    pub fn new(check: CheckName, outcome: Outcome, mut reasons: Vec<String>, evidence: E) -> Self {
        if reasons.is_empty() && outcome != Outcome::Pass {
            reasons.push(format!(
                "{check} check ended in {outcome} without a stated reason"
            ));
        }
        Verdict {
            check,
            outcome,
            reasons,
            evidence,
        }
    }

    /// Erases the evidence type to JSON, for reports that hold verdicts of every kind.
    pub fn erase(&self) -> Verdict<serde_json::Value> {
        Verdict {
            check: self.check,
            outcome: self.outcome,
            reasons: self.reasons.clone(),
            evidence: serde_json::to_value(&self.evidence).unwrap_or_else(
                |e| serde_json::json!({ "unserializable_evidence": e.to_string() }),
            ),
        }
    }

    /// One JSON object: what `--json` prints.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.erase())
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A short human rendering: the outcome line, then one indented line per reason.
    pub fn render_human(&self) -> String {
        let mut out = format!(
            "{} check: {}\n",
            self.check,
            self.outcome.to_string().to_uppercase()
        );
        for r in &self.reasons {
            out.push_str("  - ");
            out.push_str(r);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_contract() {
        assert_eq!(Outcome::Pass.exit_code(), 0);
        assert_eq!(Outcome::Fail.exit_code(), 1);
        assert_eq!(Outcome::Error.exit_code(), 2);
    }

    #[test]
    fn worst_orders_error_over_fail_over_pass() {
        assert_eq!(Outcome::Pass.worst(Outcome::Fail), Outcome::Fail);
        assert_eq!(Outcome::Error.worst(Outcome::Fail), Outcome::Error);
        assert_eq!(Outcome::Fail.worst(Outcome::Pass), Outcome::Fail);
        assert_eq!(Outcome::Pass.worst(Outcome::Pass), Outcome::Pass);
    }

    #[test]
    fn a_failure_without_reason_still_says_something() {
        let v = Verdict::new(CheckName::Http, Outcome::Fail, vec![], ());
        assert_eq!(v.reasons.len(), 1);
        let ok = Verdict::new(CheckName::Http, Outcome::Pass, vec![], ());
        assert!(ok.reasons.is_empty());
    }

    #[test]
    fn json_has_outcome_reasons_and_evidence() {
        let v = Verdict::new(
            CheckName::Tls,
            Outcome::Error,
            vec!["timed out".into()],
            serde_json::json!({"a": 1}),
        );
        let j: serde_json::Value = serde_json::from_str(&v.to_json_string()).unwrap();
        assert_eq!(j["outcome"], "error");
        assert_eq!(j["check"], "tls");
        assert_eq!(j["reasons"][0], "timed out");
        assert_eq!(j["evidence"]["a"], 1);
    }
}
