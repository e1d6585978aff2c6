//! The checks as a trial runs them: each one's order of events, negative controls and verdict
//! rules, over small driver traits so that the order is testable without a cluster. The
//! drivers' cluster implementations live in [`super::kube_ops`], one file per check. (The
//! restore check's order of events is [`crate::restore::flow`]; its cluster side is
//! [`super::kube_ops::restore`].)

pub mod addressing;
pub mod canary;
pub mod deny;
pub mod mtls;
pub mod mtls_engine;
pub mod tls;

use crate::scenario::Check;
use std::time::Duration;

pub use crate::vocab::{CAPTURE_START, POD_START};

/// The whole budget of a check step, derived from the check's own timeouts: the executor cuts
/// a check that exceeds it and reports the step as timed out.
pub fn check_budget(c: &Check) -> Duration {
    match c {
        // Two captures (each: ephemeral container start, then traffic sharing the timeout) and
        // the strict probe's client pod.
        Check::Mtls(m) => m.timeout + 2 * CAPTURE_START + POD_START,
        // Probe pod start, before-probes, after-probes each up to the settle time, the hold
        // before pods are judged, pod checks.
        Check::Deny(d) => {
            let n = d.expectations.len() as u32;
            POD_START + d.timeout * (n + 1) + Duration::from_secs(60) * (n + 1) + deny::READY_HOLD
        }
        // The client pod's start, the meshed client's test and (on Pro) the gateway's, each
        // bounded by the timeout.
        Check::Canary(c) => 2 * c.timeout + POD_START + Duration::from_secs(30),
        // Retries up to the timeout, then two controls of at most 10 s each.
        Check::Tls(t) => t.timeout + Duration::from_secs(60),
        Check::Restore(r) => {
            r.max_recovery.unwrap_or(Duration::from_secs(3600)) + Duration::from_secs(3600)
        }
    }
}
