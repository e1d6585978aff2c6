//! Running trials: environments shared by the trials of one suite environment, created on first
//! use and torn down when the session ends.
//!
//! A trial holds its environment's lock for its whole run, so trials that share a cluster never
//! overlap, while trials of different environments may run in parallel (`--test-threads`).
//!
//! kind clusters bind the suite's host ports on 127.0.0.1, so two of them with the same ports
//! cannot exist at once: before provisioning an environment, the session tears down the
//! environment that holds its ports (re-creating that one later if more of its trials run). This
//! keeps matrix cells and dedicated environments from failing on "port is already allocated",
//! serially and with `--test-threads` > 1.
//!
//! Cleanup is guaranteed three ways: [`Session::teardown`] at the end of a run; each
//! environment's teardown guard when the session is dropped (also on panic unwinding); and the
//! SIGINT/SIGTERM handler ([`crate::stack::signals`]), installed when the first environment is
//! provisioned, for an interrupted run.

use crate::images::{self, Images};
use crate::mirror::evidence::Route;
use crate::mirror::MirrorSetting;
use crate::plan::{EnvPlan, TrialPlan};
use crate::report::Fingerprint;
use crate::scenario::{ClusterSpec, EnvironmentSpec};
use crate::stack::environment::{self, Environment};
use crate::stack::{signals, RunDirs, StackOptions};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

mod trial;

/// Why a trial could not produce a verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("environment {env} could not be set up: {reason}")]
    Environment { env: String, reason: String },
    /// The trial ran and could not decide (a step broke, a check errored): the first reasons
    /// and where the evidence is, and the verdicts its checks did reach.
    #[error("{message}")]
    Trial {
        message: String,
        verdicts: Vec<crate::check::Verdict<serde_json::Value>>,
    },
    /// The trial ran and a check failed — the mesh does not conform.
    #[error("{message}")]
    Failed {
        message: String,
        verdicts: Vec<crate::check::Verdict<serde_json::Value>>,
    },
}

impl RunError {
    /// A trial that broke before any check decided.
    pub fn trial(message: impl Into<String>) -> RunError {
        RunError::Trial {
            message: message.into(),
            verdicts: Vec::new(),
        }
    }

    /// How the report records the trial: a failed check is a failure; an environment that
    /// could not be set up, or a trial that could not decide, is an error (an `<error>` in
    /// `junit.xml`), never a skip — the mesh was not shown to conform.
    pub fn outcome(&self) -> crate::report::TrialOutcome {
        match self {
            RunError::Failed { message, .. } => {
                crate::report::TrialOutcome::failed(vec![message.clone()])
            }
            RunError::Environment { .. } | RunError::Trial { .. } => {
                crate::report::TrialOutcome::errored(vec![self.to_string()])
            }
        }
    }

    /// The verdicts the trial's checks reached before it ended (for the report).
    pub fn verdicts(&self) -> &[crate::check::Verdict<serde_json::Value>] {
        match self {
            RunError::Environment { .. } => &[],
            RunError::Trial { verdicts, .. } | RunError::Failed { verdicts, .. } => verdicts,
        }
    }
}

/// The state of one environment.
enum Slot {
    NotStarted,
    /// Provisioned and installed; `failed` once any of its trials failed (logs are exported
    /// before teardown).
    Ready {
        env: Box<Environment>,
        failed: bool,
        /// The suite's images, every one pinned (tags resolved when the environment came up).
        images: Box<Images>,
    },
    /// Provisioning failed once; every later trial of the environment reports the same reason
    /// instead of trying again.
    Failed(String),
    TornDown,
}

/// What provisioning needs, created on first use (listing trials creates nothing).
struct Stack {
    rt: tokio::runtime::Runtime,
    run: Mutex<RunDirs>,
}

/// All environments of one run.
pub struct Session {
    slots: BTreeMap<String, (Arc<Mutex<Slot>>, EnvPlan)>,
    opts: StackOptions,
    stack: OnceLock<Result<Stack, String>>,
    /// Which environment's kind cluster binds each (http, https) host-port pair. Lock order:
    /// an environment's slot, then this, then the holder's slot (the holder is always `Ready`,
    /// so its thread never waits for this lock).
    port_holders: Mutex<BTreeMap<(u16, u16), String>>,
    /// What each environment turned out to be once provisioned (for the report).
    facts: Mutex<BTreeMap<String, Fingerprint>>,
    /// Teardowns that failed, by environment name (a cluster may be left behind).
    teardown_errors: Mutex<BTreeMap<String, Vec<String>>>,
    /// Every secret of every environment provisioned so far, for whoever writes the report.
    secrets: Mutex<crate::process::Redactor>,
}

fn kind_ports(env: &EnvironmentSpec) -> Option<(u16, u16)> {
    match &env.cluster {
        ClusterSpec::Kind { host_ports, .. } => Some((host_ports.http, host_ports.https)),
        ClusterSpec::Existing { .. } => None,
    }
}

impl Session {
    /// A session with the options from the environment (`MESHPROOF_KEEP_CLUSTER`, …).
    pub fn new(envs: &[EnvPlan]) -> Session {
        Session::with_options(envs, StackOptions::from_env())
    }

    pub fn with_options(envs: &[EnvPlan], opts: StackOptions) -> Session {
        Session {
            slots: envs
                .iter()
                .map(|e| {
                    (
                        e.key.clone(),
                        (Arc::new(Mutex::new(Slot::NotStarted)), e.clone()),
                    )
                })
                .collect(),
            opts,
            stack: OnceLock::new(),
            port_holders: Mutex::new(BTreeMap::new()),
            facts: Mutex::new(BTreeMap::new()),
            teardown_errors: Mutex::new(BTreeMap::new()),
            secrets: Mutex::new(crate::process::Redactor::default()),
        }
    }

    /// The secrets of every environment provisioned so far (passwords, licenses, keys): what a
    /// report must never contain.
    pub fn secrets(&self) -> crate::process::Redactor {
        self.secrets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `env_key`'s environment-level artifacts (kind logs exported before a failed
    /// environment's teardown), when there are any.
    pub fn env_artifacts(&self, env_key: &str) -> Option<std::path::PathBuf> {
        let stack = self.stack.get()?.as_ref().ok()?;
        let dir = stack.run.lock().ok()?.env_artifacts(env_key);
        dir.is_dir().then_some(dir)
    }

    fn stack(&self) -> Result<&Stack, String> {
        self.stack
            .get_or_init(|| {
                signals::install(self.opts.log.clone())?;
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a runtime: {e}"))?;
                let run = RunDirs::new(&self.opts).map_err(|e| e.to_string())?;
                (self.opts.log)(&format!(
                    "run {} (temp dir {})",
                    run.run_id,
                    run.temp().display()
                ));
                Ok(Stack {
                    rt,
                    run: Mutex::new(run),
                })
            })
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// Runs one trial in its environment, provisioning the environment on first use.
    /// On success, the verdicts of the trial's checks (every one a pass); a trial that failed,
    /// errored or could not run is an error carrying the reasons.
    pub fn run_trial(
        &self,
        trial: &TrialPlan,
    ) -> Result<Vec<crate::check::Verdict<serde_json::Value>>, RunError> {
        let env_err = |reason: String| RunError::Environment {
            env: trial.env_key.clone(),
            reason,
        };
        let (slot, plan) = self
            .slots
            .get(&trial.env_key)
            .ok_or_else(|| env_err("no such environment in this session".into()))?;
        // A poisoned lock means another trial panicked mid-run; the environment is unusable.
        let mut guard = slot
            .lock()
            .map_err(|_| env_err("an earlier trial of this environment panicked".into()))?;
        if let Slot::NotStarted = &*guard {
            let stack = match self.stack() {
                Ok(s) => s,
                Err(reason) => {
                    *guard = Slot::Failed(reason.clone());
                    return Err(env_err(reason));
                }
            };
            let ports = kind_ports(&plan.env);
            let mut holders =
                ports.map(|_| self.port_holders.lock().unwrap_or_else(|p| p.into_inner()));
            if let (Some(p), Some(h)) = (ports, holders.as_mut()) {
                if let Some(other) = h.remove(&p) {
                    if other != trial.env_key {
                        self.evict(&other, &trial.env_key, p);
                    }
                }
            }
            // Images first: a run that cannot pin what it deploys does not create a cluster.
            let pinned = stack.rt.block_on(images::resolve::pin_all(
                &plan.suite.images,
                &self.opts.registry,
            ));
            let (images, record) = match pinned {
                Ok(p) => p,
                Err(e) => {
                    let reason = format!(
                        "{e}; pin the image by digest in the suite (`meshproof pin --write {}`)",
                        plan.suite.source.display()
                    );
                    *guard = Slot::Failed(reason.clone());
                    return Err(env_err(reason));
                }
            };
            for r in record
                .iter()
                .filter(|r| r.source == images::resolve::PinSource::Registry)
            {
                (self.opts.log)(&format!(
                    "[{}] {} image {} is {}",
                    plan.key,
                    r.role.key(),
                    r.declared,
                    r.deployed
                ));
            }
            let mut facts = Fingerprint::default().with_images(&record);
            // How the images reach the nodes; with local mirrors, read from their logs at the
            // end of the run (`finish_mirrors`).
            let route = match (&plan.env.cluster, &self.opts.mirror) {
                (ClusterSpec::Existing { .. }, _) => Some(Route::Unknown),
                (_, Ok(MirrorSetting::Off)) => Some(Route::Direct),
                (_, Ok(MirrorSetting::Remote { .. })) => Some(Route::Unknown),
                _ => None,
            };
            if let Some(r) = &route {
                facts = facts.with_routes(|_| r.clone());
            }
            let run = stack
                .run
                .lock()
                .map_err(|_| env_err("the run's state is poisoned".into()))?;
            let up = stack.rt.block_on(environment::up(
                &plan.suite,
                &plan.env,
                &plan.key,
                &self.opts,
                &run,
            ));
            drop(run);
            *guard = match up {
                Ok(env) => {
                    self.secrets
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(&env.redactor);
                    if let (Some(p), Some(h)) = (ports, holders.as_mut()) {
                        h.insert(p, trial.env_key.clone());
                    }
                    let mesh = plan.env.mesh.mesh();
                    facts.mesh.installed_version = env
                        .installed
                        .iter()
                        // A reused mesh's version is the suite's pin, not something the run saw.
                        .find(|i| !i.reused && i.component.eq_ignore_ascii_case(mesh.as_str()))
                        .map(|i| i.version.clone());
                    facts.kubernetes.server_version = stack.rt.block_on(server_version(&env));
                    // What the nodes ran, read once the stack is up (kind only: an existing
                    // cluster's other workloads are not the run's to report).
                    if matches!(plan.env.cluster, ClusterSpec::Kind { .. }) {
                        match stack.rt.block_on(running_images(&env)) {
                            Ok(r) => {
                                facts.running = Some(r);
                                // The same route for what ran (local mirrors set theirs from
                                // the logs at the end of the run).
                                if let Some(route) = &route {
                                    facts = facts.with_routes(|_| route.clone());
                                }
                            }
                            Err(e) => (self.opts.log)(&format!(
                                "[{}] the images running in the cluster could not be read (the report says unknown): {e}",
                                plan.key
                            )),
                        }
                    }
                    Slot::Ready {
                        env: Box::new(env),
                        failed: false,
                        images: Box::new(images),
                    }
                }
                Err(e) => {
                    if let Some(t) = e.teardown_failure() {
                        self.note_teardown_error(&plan.key, t.to_string());
                    }
                    Slot::Failed(e.to_string())
                }
            };
            self.facts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(plan.key.clone(), facts);
            drop(holders);
        }
        match &mut *guard {
            Slot::Failed(reason) => Err(env_err(reason.clone())),
            Slot::TornDown => Err(env_err("the environment was already torn down".into())),
            Slot::NotStarted => Err(env_err("the environment was not provisioned".into())),
            Slot::Ready {
                env,
                failed,
                images,
            } => {
                let stack = self.stack().map_err(env_err)?;
                let run_id = stack
                    .run
                    .lock()
                    .map_err(|_| env_err("the run's state is poisoned".into()))?
                    .run_id
                    .clone();
                let temp = stack
                    .run
                    .lock()
                    .map_err(|_| env_err("the run's state is poisoned".into()))?
                    .temp()
                    .to_path_buf();
                let ctx = trial::SessionCtx {
                    plan,
                    env,
                    images,
                    opts: &self.opts,
                    run: &stack.run,
                };
                let result = stack.rt.block_on(trial::run(
                    trial,
                    ctx,
                    run_id.as_str(),
                    &temp,
                    &self.opts.log,
                ));
                if result.is_err() {
                    *failed = true;
                }
                result
            }
        }
    }

    /// Where `trial`'s own artifacts (verdicts, failure dump, captures) were written, if any.
    pub fn trial_artifacts(&self, trial: &TrialPlan) -> Option<std::path::PathBuf> {
        let stack = self.stack.get()?.as_ref().ok()?;
        let dir = stack
            .run
            .lock()
            .ok()?
            .trial_artifacts(&trial.env_key, &trial.name);
        dir.is_dir().then_some(dir)
    }

    /// What `env_key`'s environment turned out to be, once provisioning was tried: the digest
    /// each image ran at, and — when the cluster came up — the server and mesh versions.
    /// Only known facts are set; merge it into the declared fingerprint.
    pub fn facts(&self, env_key: &str) -> Option<Fingerprint> {
        self.facts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(env_key)
            .cloned()
    }

    /// Tears down `key`'s environment so that `for_key` can bind the same host ports; it goes
    /// back to `NotStarted` and is re-created if another of its trials runs.
    fn evict(&self, key: &str, for_key: &str, ports: (u16, u16)) {
        let Some((slot, _)) = self.slots.get(key) else {
            return;
        };
        let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(&*g, Slot::Ready { .. }) {
            return;
        }
        if let Slot::Ready { env, failed, .. } = std::mem::replace(&mut *g, Slot::NotStarted) {
            (self.opts.log)(&format!(
                "tearing down {key} to free host ports {}/{} for {for_key} (it is re-created if more of its trials run)",
                ports.0, ports.1
            ));
            if self.opts.keep_cluster {
                (self.opts.log)(&format!(
                    "--keep-cluster keeps {key}, so {for_key} cannot bind the same host ports: run one environment at a time (a trial filter) with --keep-cluster"
                ));
            }
            if let Err(e) = env.teardown(failed) {
                self.note_teardown_error(key, e);
            }
        }
    }

    fn note_teardown_error(&self, env_key: &str, error: String) {
        let name = self
            .slots
            .get(env_key)
            .map(|(_, p)| p.env.name.clone())
            .unwrap_or_else(|| env_key.to_string());
        (self.opts.log)(&format!("tearing down {env_key} failed: {error}"));
        self.teardown_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default()
            .push(error);
    }

    /// Tears down every environment this session created (exporting kind logs first for
    /// environments with a failed trial). Called explicitly at the end of a run, and again,
    /// harmlessly, on drop.
    /// Returns the teardowns that failed so far, by environment name (this one's and earlier
    /// evictions'), for the report: a failed teardown may have left a cluster behind.
    pub fn teardown(&self) -> BTreeMap<String, Vec<String>> {
        if self.opts.keep_cluster {
            // Kept clusters' kubeconfigs live in the run's temp dir.
            if let Some(Ok(stack)) = self.stack.get() {
                if let Ok(mut run) = stack.run.lock() {
                    run.persist();
                }
            }
        }
        for (slot, _) in self.slots.values() {
            let mut g = match slot.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Slot::Ready { env, failed, .. } = std::mem::replace(&mut *g, Slot::TornDown) {
                if self.opts.keep_cluster {
                    (self.opts.log)(&format!(
                        "kept environment {}: kubeconfig {}",
                        env.key,
                        env.target.kubeconfig.display()
                    ));
                    if let Some(Ok(stack)) = self.stack.get() {
                        if let Ok(mut run) = stack.run.lock() {
                            run.persist();
                        }
                    }
                }
                if let Err(e) = env.teardown(failed) {
                    let key = env.key.clone();
                    self.note_teardown_error(&key, e);
                }
            }
        }
        self.finish_mirrors();
        self.teardown_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The end of the run's local mirrors: each one's access log read (which image's manifest
    /// it served goes into every kind environment's facts), then the run's own containers
    /// removed. Once: later calls find the pool finished.
    fn finish_mirrors(&self) {
        let Some(Ok(stack)) = self.stack.get() else {
            return;
        };
        let pool = match stack.run.lock() {
            Ok(r) => r.mirrors.clone(),
            Err(p) => p.into_inner().mirrors.clone(),
        };
        let Some(pool) = pool else { return };
        let Some(done) = stack.rt.block_on(pool.finish(self.opts.keep_cluster)) else {
            return;
        };
        for e in &done.errors {
            self.note_teardown_error(MIRRORS, e.clone());
        }
        for c in &done.kept_with_clusters {
            (self.opts.log)(&format!(
                "kept registry mirror {c} with the kept clusters (their nodes pull through it): remove it with `docker rm -f -v {c}` when you delete them"
            ));
        }
        let mut facts = self.facts.lock().unwrap_or_else(|p| p.into_inner());
        for (key, (_, plan)) in &self.slots {
            if !matches!(plan.env.cluster, ClusterSpec::Kind { .. }) {
                continue;
            }
            if let Some(f) = facts.remove(key) {
                let f = f.with_routes(|image| {
                    crate::mirror::evidence::route_of(image, &done.containers, &done.served)
                });
                let (_, unmirrored) = f.running_routes();
                if !unmirrored.is_empty() {
                    let regs: Vec<&str> = unmirrored.iter().map(String::as_str).collect();
                    (self.opts.log)(&format!(
                        "[{key}] images ran from registries no local mirror served (pulled directly): {}",
                        regs.join(", ")
                    ));
                }
                facts.insert(key.clone(), f);
            }
        }
    }
}

/// The name failed removals of local mirror containers are reported under.
pub const MIRRORS: &str = "registry mirrors";

/// The API server's `gitVersion`, or `None` when it does not answer in time (the report then
/// says "unknown"; the trials will say why).
async fn server_version(env: &Environment) -> Option<String> {
    let opts = crate::kubeops::ClientOptions {
        context: env.target.context.clone(),
        ..Default::default()
    };
    let client = crate::kubeops::client_from_kubeconfig(&env.target.kubeconfig, &opts)
        .await
        .ok()?;
    let info = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        client.apiserver_version(),
    )
    .await
    .ok()?
    .ok()?;
    Some(info.git_version)
}

/// The images the environment's kubelets report running (`kubeops::running`).
async fn running_images(
    env: &Environment,
) -> Result<Vec<crate::kubeops::running::RunningImage>, crate::kubeops::KubeError> {
    let opts = crate::kubeops::ClientOptions {
        context: env.target.context.clone(),
        ..Default::default()
    };
    let client = crate::kubeops::client_from_kubeconfig(&env.target.kubeconfig, &opts).await?;
    crate::kubeops::running::list_running_images(&client).await
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
