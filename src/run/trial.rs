//! One trial in a provisioned environment: connect, run the scenario's steps
//! ([`crate::scenario_run`]), keep the verdicts as an artifact, and turn the report into the
//! trial's result.
//!
//! The `restore` check destroys and rebuilds the environment, so it is run here, where the
//! session's environment slot is: [`StackLifecycle`] is the restore flow's
//! [`Lifecycle`] — `destroy` is the environment's teardown, `create` provisions a new
//! environment for the same `EnvironmentSpec` (cluster *and* stack, one unit in
//! [`environment::up`]), `install` has nothing left to do. The new environment replaces the
//! old one in the slot, so the session tears down the cluster that exists at the end.

use super::RunError;
use crate::check::{CheckName, Outcome, Verdict};
use crate::kubeops::{client_from_kubeconfig, ClientOptions, RunId};
use crate::plan::{self, EnvPlan, TrialPlan};
use crate::restore::{self, Lifecycle, OpsError, RestoreSpec, SystemClock};
use crate::scenario::template::Vars;
use crate::scenario::{Check, ClusterSpec, Edition, RestoreCheck};
use crate::scenario_run::executor::{run_trial, AppliedObject, TrialOps, TrialSpec};
use crate::scenario_run::kube_ops::restore::KubeClusterOps;
use crate::scenario_run::kube_ops::{Deployer, KubeTrial, KubeTrialConfig};
use crate::scenario_run::render::{FunctionRequest, ObjectRef, WaitTarget};
use crate::scenario_run::tracker::Tracker;
use crate::stack::environment::{self, Environment};
use crate::stack::{names, Log, RunDirs, StackOptions};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// What the restore check needs from the session.
pub struct SessionCtx<'a> {
    pub plan: &'a EnvPlan,
    pub env: &'a mut Box<Environment>,
    /// The suite's images, pinned.
    pub images: &'a crate::images::Images,
    pub opts: &'a StackOptions,
    pub run: &'a Mutex<RunDirs>,
}

/// Runs `trial`'s steps in `ctx.env`. `Ok` only when every check passed and cleanup worked.
pub async fn run(
    trial: &TrialPlan,
    ctx: SessionCtx<'_>,
    run_id: &str,
    temp: &Path,
    log: &Log,
) -> Result<Vec<Verdict<Value>>, RunError> {
    let env_redactor = ctx.env.redactor.clone();
    let fail = |m: String| RunError::trial(env_redactor.apply(&m));
    let kube_run_id = RunId::new(run_id).map_err(|e| fail(e.to_string()))?;
    let dir_name = names::sanitize(&trial.name);
    let cfg = KubeTrialConfig {
        kubeconfig: ctx.env.target.kubeconfig.clone(),
        context: ctx.env.target.context.clone(),
        mesh: trial.mesh,
        data_plane: trial.env.mesh.data_plane(),
        deployer: match ctx.plan.suite.openfaas.edition {
            Edition::Ce => Deployer::Gateway,
            Edition::Pro { .. } => Deployer::FunctionCrd,
        },
        run_id: kube_run_id.clone(),
        redactor: ctx.env.redactor.clone(),
        work_dir: temp.join(&dir_name),
    };
    let kube = KubeTrial::connect(cfg.clone())
        .await
        .map_err(|e| fail(format!("connecting to {}: {e}", ctx.env.key)))?;
    let artifacts = ctx
        .run
        .lock()
        .map_err(|_| fail("the run's state is poisoned".into()))?
        .trial_artifacts(&ctx.plan.key, &trial.name);
    let spec = TrialSpec {
        name: &trial.name,
        scenario: &trial.scenario,
        mesh: trial.mesh,
        data_plane: trial.data_plane,
        vars: plan::vars_with_images(
            &ctx.plan.suite,
            &trial.env,
            &trial.scenario,
            Some(run_id),
            ctx.images,
        ),
        run_id: run_id.to_string(),
        artifacts: Some(artifacts.clone()),
    };
    log(&format!(
        "[{}] running {} steps",
        trial.name,
        trial.scenario.steps.len()
    ));
    let mut ops = WithRestore {
        kube,
        kube_cfg: cfg,
        ctx,
        run_id: kube_run_id,
    };
    let report = run_trial(&mut ops, &spec).await;
    let redactor = ops.kube.redactor().clone();
    // Redacted once: the same verdicts go to the evidence file and on into the run's report.
    let verdicts: Vec<Verdict<Value>> = report
        .verdicts
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v.reasons = v.reasons.iter().map(|r| redactor.apply(r)).collect();
            redactor.apply_json(&mut v.evidence);
            v
        })
        .collect();
    let verdicts_file = artifacts.join("verdicts.json");
    let saved = crate::private_fs::private_dir(&artifacts).and_then(|()| {
        let json = serde_json::to_string_pretty(&verdicts).unwrap_or_else(|e| format!("\"{e}\""));
        crate::private_fs::write_private(&verdicts_file, json.as_bytes())
    });
    match report.failure_message() {
        None => Ok(verdicts),
        Some(m) => {
            let pointer = match saved {
                Ok(()) => format!("evidence: {}", verdicts_file.display()),
                Err(e) => format!(
                    "evidence could not be saved to {}: {e}",
                    verdicts_file.display()
                ),
            };
            let m = redactor.apply(&format!("{m}\n{pointer}"));
            // A failed check (and nothing that errored) is a non-conformance; anything else is
            // a trial that could not decide.
            if report.outcome() == crate::check::Outcome::Fail {
                Err(RunError::Failed {
                    message: m,
                    verdicts,
                })
            } else {
                Err(RunError::Trial {
                    message: m,
                    verdicts,
                })
            }
        }
    }
}

/// The cluster operations of a trial, with the restore check run against the session.
struct WithRestore<'a> {
    kube: KubeTrial,
    /// How `kube` was made: after the restore check re-creates the cluster (a new API server
    /// port in the same kubeconfig path, a new basic-auth password) the trial reconnects with it.
    kube_cfg: KubeTrialConfig,
    ctx: SessionCtx<'a>,
    run_id: RunId,
}

impl WithRestore<'_> {
    async fn restore(&mut self, r: &RestoreCheck, vars: &Vars) -> Verdict<Value> {
        let error =
            |m: String| Verdict::new(CheckName::Restore, Outcome::Error, vec![m], Value::Null);
        if !matches!(self.ctx.plan.env.cluster, ClusterSpec::Kind { .. }) {
            return error("the restore check destroys and re-creates its cluster: it needs cluster.provider kind".into());
        }
        // kind names its single node `<cluster>-control-plane`, and the rebuild keeps the name.
        let node = self
            .ctx
            .env
            .cluster_name
            .as_ref()
            .map(|c| format!("{c}-control-plane"));
        // Where the nodes reach this machine (or a clear "not yet" where they cannot).
        let at = match crate::restore::reach::serve_at(node.as_deref()).await {
            Ok(a) => a,
            Err(e) => {
                return error(format!(
                    "finding where the kind nodes reach this machine: {e}"
                ))
            }
        };
        let image = match vars.get(crate::images::ImageRole::Function.var()) {
            Some(i) => i.to_string(),
            None => return error("the `images.function` variable is not set".into()),
        };
        let mut spec = match RestoreSpec::for_suite(
            &self.ctx.plan.suite,
            r,
            image,
            at.bind,
            at.host.clone(),
        ) {
            Ok(s) => s,
            Err(e) => return error(e),
        };
        spec.probe = node.map(|node| crate::restore::flow::NodeProbe { node, at });
        let kubeconfig = self.ctx.env.target.kubeconfig.clone();
        let client = match client_from_kubeconfig(&kubeconfig, &ClientOptions::default()).await {
            Ok(c) => c,
            Err(e) => return error(e.to_string()),
        };
        let cluster = KubeClusterOps {
            client,
            kubeconfig,
            run_id: Some(self.run_id.clone()),
        };
        let mut lifecycle = StackLifecycle {
            ctx: &mut self.ctx,
            run_id: self.run_id.clone(),
        };
        let verdict = restore::execute(&spec, cluster, &mut lifecycle, &SystemClock::default())
            .await
            .erase();
        self.reconnect().await;
        verdict
    }

    /// Points the trial at the environment now in the slot (re-created by the restore flow), so
    /// that a failure dump and cleanup reach the new API server. The old secrets stay redacted.
    async fn reconnect(&mut self) {
        let mut redactor = self.ctx.env.redactor.clone();
        redactor.extend(self.kube.redactor());
        let cfg = KubeTrialConfig {
            kubeconfig: self.ctx.env.target.kubeconfig.clone(),
            context: self.ctx.env.target.context.clone(),
            redactor,
            ..self.kube_cfg.clone()
        };
        // On failure the old client stays; what it cannot reach, the dump and cleanup will say.
        if let Ok(k) = KubeTrial::connect(cfg.clone()).await {
            self.kube = k;
            self.kube_cfg = cfg;
        }
    }
}

impl TrialOps for WithRestore<'_> {
    async fn apply(&mut self, yaml: &str) -> Result<Vec<AppliedObject>, String> {
        self.kube.apply(yaml).await
    }
    async fn delete(&mut self, objects: &[ObjectRef]) -> Result<(), String> {
        self.kube.delete(objects).await
    }
    async fn deploy(&mut self, f: &FunctionRequest) -> Result<(), String> {
        self.kube.deploy(f).await
    }
    async fn remove_function(&mut self, name: &str) -> Result<(), String> {
        self.kube.remove_function(name).await
    }
    async fn wait(&mut self, target: &WaitTarget, timeout: Duration) -> Result<(), String> {
        self.kube.wait(target, timeout).await
    }
    async fn check(&mut self, check: &Check, vars: &Vars, tracker: &mut Tracker) -> Verdict<Value> {
        match check {
            Check::Restore(r) => {
                let v = self.restore(r, vars).await;
                let redactor = self.kube.redactor().clone();
                Verdict {
                    reasons: v.reasons.iter().map(|r| redactor.apply(r)).collect(),
                    ..v
                }
            }
            _ => self.kube.check(check, vars, tracker).await,
        }
    }
    async fn dump(&mut self, dir: &Path) -> Result<(), String> {
        self.kube.dump(dir).await
    }
}

/// The restore flow's [`Lifecycle`] on the session's environment slot.
struct StackLifecycle<'s, 'a> {
    ctx: &'s mut SessionCtx<'a>,
    run_id: RunId,
}

impl Lifecycle for StackLifecycle<'_, '_> {
    type Cluster = KubeClusterOps;

    async fn destroy(&mut self) -> Result<(), OpsError> {
        if self.ctx.opts.keep_cluster {
            return Err(OpsError(
                "--keep-cluster / MESHPROOF_KEEP_CLUSTER is set: the restore check will not destroy a kept cluster".into(),
            ));
        }
        // Awaited off the runtime's threads, so the flow's destroy deadline can fire while
        // `kind delete cluster` runs.
        let env: &Environment = self.ctx.env;
        env.teardown_handle().teardown().await.map_err(OpsError)
    }

    async fn rebuild(&mut self) -> Result<KubeClusterOps, OpsError> {
        let (suite, spec, key) = (
            &self.ctx.plan.suite,
            &self.ctx.plan.env,
            self.ctx.plan.key.as_str(),
        );
        let (opts, run) = (self.ctx.opts, self.ctx.run);
        // The run's paths, copied out so no lock is held across the awaits below (and the
        // flow's create deadline can fire: provisioning is awaited, never blocked on).
        let dirs = run
            .lock()
            .map_err(|_| OpsError("the run's state is poisoned".into()))?
            .view();
        let up = environment::up(suite, spec, key, opts, &dirs)
            .await
            .map_err(|e| OpsError(e.to_string()))?;
        let kubeconfig = up.target.kubeconfig.clone();
        **self.ctx.env = up;
        let client = client_from_kubeconfig(&kubeconfig, &ClientOptions::default())
            .await
            .map_err(|e| OpsError(e.to_string()))?;
        Ok(KubeClusterOps {
            client,
            kubeconfig,
            run_id: Some(self.run_id.clone()),
        })
    }
}
