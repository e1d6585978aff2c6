//! One trial in a provisioned environment: connect, run the scenario's steps
//! ([`crate::scenario_run`]), keep the verdicts as an artifact, and turn the report into the
//! trial's result.

use super::RunError;
use crate::kubeops::RunId;
use crate::plan::{self, EnvPlan, TrialPlan};
use crate::scenario::Edition;
use crate::scenario_run::executor::{run_trial, TrialSpec};
use crate::scenario_run::kube_ops::{Deployer, KubeTrial, KubeTrialConfig};
use crate::stack::environment::Environment;
use crate::stack::{names, Log};
use std::path::Path;

/// Runs `trial`'s steps in `env`. `Ok` only when every check passed and cleanup worked.
pub async fn run(
    trial: &TrialPlan,
    plan: &EnvPlan,
    env: &Environment,
    run_id: &str,
    temp: &Path,
    log: &Log,
) -> Result<(), RunError> {
    let fail = |m: String| RunError::Trial(env.redactor.apply(&m));
    let kube_run_id = RunId::new(run_id).map_err(|e| fail(e.to_string()))?;
    let dir_name = names::sanitize(&trial.name);
    let cfg = KubeTrialConfig {
        kubeconfig: env.target.kubeconfig.clone(),
        context: env.target.context.clone(),
        mesh: trial.mesh,
        deployer: match plan.suite.openfaas.edition {
            Edition::Ce => Deployer::Gateway,
            Edition::Pro { .. } => Deployer::FunctionCrd,
        },
        run_id: kube_run_id,
        redactor: env.redactor.clone(),
        work_dir: temp.join(&dir_name),
    };
    let mut ops = KubeTrial::connect(cfg)
        .await
        .map_err(|e| fail(format!("connecting to {}: {e}", env.key)))?;
    let artifacts = env.artifacts().join(&dir_name);
    let spec = TrialSpec {
        name: &trial.name,
        scenario: &trial.scenario,
        mesh: trial.mesh,
        vars: plan::vars_for(&plan.suite, &trial.env, &trial.scenario, Some(run_id)),
        run_id: run_id.to_string(),
        artifacts: Some(artifacts.clone()),
    };
    log(&format!(
        "[{}] running {} steps",
        trial.name,
        trial.scenario.steps.len()
    ));
    let report = run_trial(&mut ops, &spec).await;
    let redactor = ops.redactor().clone();
    let fail = |m: String| RunError::Trial(redactor.apply(&m));
    let verdicts_file = artifacts.join("verdicts.json");
    let saved = crate::stack::private_dir(&artifacts).and_then(|()| {
        let json =
            serde_json::to_string_pretty(&report.verdicts).unwrap_or_else(|e| format!("\"{e}\""));
        crate::stack::write_private(&verdicts_file, redactor.apply(&json).as_bytes())
    });
    match report.failure_message() {
        None => Ok(()),
        Some(m) => {
            let pointer = match saved {
                Ok(()) => format!("evidence: {}", verdicts_file.display()),
                Err(e) => format!(
                    "evidence could not be saved to {}: {e}",
                    verdicts_file.display()
                ),
            };
            Err(fail(format!("{m}\n{pointer}")))
        }
    }
}
