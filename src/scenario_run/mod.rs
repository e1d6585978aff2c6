//! Running a scenario's steps in a provisioned environment (issue #5).
//!
//! - [`render`]: pure rendering of each step for the trial's mesh and variables;
//! - [`executor`]: the step loop — timeouts, stop at the first failure, failure dump, cleanup
//!   of everything the trial created ([`tracker`]) — over the [`executor::TrialOps`] trait;
//! - [`checks`]: each check's order of events and negative controls, over driver traits;
//! - [`kube_ops`]: the cluster implementations (kube layer + OpenFaaS gateway);
//! - [`controls`]: the negative controls, read back from the checks' evidence for the report;
//! - [`linkerd`], [`ztunnel`]: what a trial reads off a mesh's own components (a Linkerd proxy's
//!   pod and counters; Istio ambient's ztunnel access log), pure.

pub mod checks;
pub mod controls;
pub mod executor;
pub mod kube_ops;
pub mod linkerd;
pub mod render;
pub mod tracker;
pub mod ztunnel;

pub use executor::{run_trial, StepError, TrialOps, TrialReport, TrialSpec};
