//! Reports: what a run leaves behind for CI, for people, and for certification.
//!
//! The harness emits [`Event`]s; the [`Reporter`] is the only code that writes result files.
//! A report directory (`--report-dir`, `MESHPROOF_REPORT_DIR`, or
//! `target/meshproof/<run id>/`, see [`dir`]) holds:
//!
//! - `junit.xml` ([`junit`]) — one testsuite per environment, one testcase per trial;
//! - `report.json` ([`model`]) — versions, environment fingerprints ([`fingerprint`]), every
//!   verdict with its evidence, the negative controls, summaries, and a SHA-256 over the
//!   canonical body ([`integrity`]) so an edited report is detected;
//! - `conformance-report.yaml` ([`conformance`]) — the same results per conformance profile
//!   (`MESH-MTLS`, …), shaped like a Gateway API `ConformanceReport`, when the run was given the
//!   scenarios' profiles (the e2e harness always is);
//! - `artifacts/<trial>/` — what the kube layer and providers collect when a trial fails.
//!
//! Secrets never reach these files: every string passes through the reporter's
//! [`crate::process::Redactor`]. [`render`] turns a report into the terminal table and the
//! certification README; [`progress`] prints phase / elapsed / waiting-for lines on stderr.

pub mod conformance;
pub mod dir;
pub mod event;
pub mod fingerprint;
pub mod integrity;
pub mod junit;
pub mod model;
pub mod progress;
pub mod render;
pub mod reporter;
pub mod rerun;
pub mod revision;

pub use event::{Control, Event, TrialOutcome};
pub use fingerprint::Fingerprint;
pub use integrity::{verify, Integrity};
pub use model::{Report, Status};
pub use reporter::Reporter;

use std::path::PathBuf;

/// Why a report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a meshproof report: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("cannot serialize the report: {0}")]
    Serialize(serde_json::Error),
    #[error("cannot write junit.xml: {0}")]
    Xml(String),
    /// Events out of order: a harness bug.
    #[error("report event out of order: {0}")]
    Protocol(String),
    #[error("{}: the report was edited after it was written (stored sha256 {stored}, content hashes to {computed})", path.display())]
    Tampered {
        path: PathBuf,
        stored: String,
        computed: String,
    },
    #[error("{} exists: the directory holds an earlier run's report; choose another report directory or remove it", path.display())]
    Occupied { path: PathBuf },
    #[error("{}: the report carries no sha256", path.display())]
    Unsealed { path: PathBuf },
    /// A trial whose scenario decides no conformance profile: a harness bug (every scenario has
    /// a check), not something to leave out of the conformance report silently.
    #[error("conformance report: trial {trial} counts towards no profile")]
    Unprofiled { trial: String },
    #[error("cannot write the conformance report: {0}")]
    Yaml(String),
}
