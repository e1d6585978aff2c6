//! `--rerun-failed REPORT`: the trials an earlier run failed or errored, to run again.
//!
//! The earlier `report.json` is read through [`super::integrity::verify`], so an edited report
//! cannot choose what is rerun, and every trial it names must still be in the project's plan:
//! a suite or scenario that changed since is an error naming the trial, never a silent skip.

use super::integrity;
use std::collections::BTreeSet;
use std::path::Path;

/// Why a rerun cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum RerunError {
    #[error(transparent)]
    Report(#[from] super::ReportError),
    #[error("{report}: {missing} not in this project's plan (its suites or scenarios changed since that run); `cargo test --test e2e -- --list` shows the trials there are")]
    NotPlanned { report: String, missing: String },
}

/// The ids (`<environment>::<scenario>`) of the trials `report` says failed or errored.
pub fn failed_trials(report: &Path) -> Result<BTreeSet<String>, RerunError> {
    let r = integrity::verify(report)?;
    Ok(r.trials()
        .filter(|(_, t)| matches!(t.outcome.label(), "failed" | "errored"))
        .map(|(_, t)| t.id.clone())
        .collect())
}

/// Checks that every trial to rerun is planned; returns them.
pub fn select<'a>(
    report: &Path,
    failed: &BTreeSet<String>,
    planned: impl IntoIterator<Item = &'a str>,
) -> Result<BTreeSet<String>, RerunError> {
    let planned: BTreeSet<&str> = planned.into_iter().collect();
    let missing: Vec<&str> = failed
        .iter()
        .map(String::as_str)
        .filter(|id| !planned.contains(id))
        .collect();
    if missing.is_empty() {
        Ok(failed.clone())
    } else {
        Err(RerunError::NotPlanned {
            report: report.display().to_string(),
            missing: missing.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trial_no_longer_planned_is_an_error_naming_it() {
        let failed: BTreeSet<String> = ["a::mtls".to_string(), "b::tls".to_string()].into();
        let ok = select(
            Path::new("r.json"),
            &failed,
            ["a::mtls", "b::tls", "a::deny"],
        )
        .unwrap();
        assert_eq!(ok, failed);
        let e = select(Path::new("r.json"), &failed, ["a::mtls"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("b::tls not in this project's plan"), "{e}");
    }
}
