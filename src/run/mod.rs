//! Running trials: environments shared by the trials of one suite environment, created on first
//! use and torn down when the session ends.
//!
//! A trial holds its environment's lock for its whole run, so trials that share a cluster never
//! overlap, while trials of different environments may run in parallel (`--test-threads`).

use crate::plan::{EnvPlan, TrialPlan};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Why a trial could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("environment {env} could not be set up: {reason}")]
    Environment { env: String, reason: String },
    #[error("not yet implemented: {0}")]
    NotYet(&'static str),
}

/// The state of one environment.
enum Slot {
    NotStarted,
    /// Provisioning failed once; every later trial of the environment reports the same reason
    /// instead of trying again.
    Failed(String),
}

/// All environments of one run.
pub struct Session {
    slots: BTreeMap<String, Arc<Mutex<Slot>>>,
}

impl Session {
    pub fn new(envs: &[EnvPlan]) -> Session {
        Session { slots: envs.iter().map(|e| (e.key.clone(), Arc::new(Mutex::new(Slot::NotStarted)))).collect() }
    }

    /// Runs one trial in its environment, provisioning the environment on first use.
    pub fn run_trial(&self, trial: &TrialPlan) -> Result<(), RunError> {
        let slot = self.slots.get(&trial.env_key).ok_or_else(|| RunError::Environment {
            env: trial.env_key.clone(),
            reason: "no such environment in this session".into(),
        })?;
        // A poisoned lock means another trial panicked mid-run; the environment is unusable.
        let mut guard = slot.lock().map_err(|_| RunError::Environment {
            env: trial.env_key.clone(),
            reason: "an earlier trial of this environment panicked".into(),
        })?;
        match &*guard {
            Slot::Failed(reason) => {
                Err(RunError::Environment { env: trial.env_key.clone(), reason: reason.clone() })
            }
            Slot::NotStarted => {
                let reason = "provisioning kind/existing clusters and installing the mesh and OpenFaaS (issue #4), \
                              then running scenario steps in the cluster (issue #5)"
                    .to_string();
                *guard = Slot::Failed(format!("not yet implemented: {reason}"));
                Err(RunError::NotYet(
                    "provisioning kind/existing clusters and installing the mesh and OpenFaaS (issue #4), \
                     then running scenario steps in the cluster (issue #5)",
                ))
            }
        }
    }

    /// Tears down every environment this session created. Called explicitly at the end of a
    /// run (and again, harmlessly, on drop).
    pub fn teardown(&self) {
        for slot in self.slots.values() {
            if let Ok(mut g) = slot.lock() {
                *g = Slot::NotStarted;
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.teardown();
    }
}
