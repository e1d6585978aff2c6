//! The environment a suite describes: cluster providers, component installers, and guaranteed
//! cleanup.
//!
//! - [`cluster`]: `kind` and `existing` providers, the [`ClusterApi`](cluster::api::ClusterApi)
//!   seam to the Kubernetes API, and the [`TeardownGuard`](cluster::guard::TeardownGuard).
//! - [`install`]: one module per component, each building its exact commands and manifests.
//! - [`actions`]: those steps as data, printed by `meshproof plan` and executed by a run.
//! - [`environment`]: provisioning + installing one environment, and tearing it down.
//! - [`signals`]: SIGINT/SIGTERM → teardown, then exit 130/143.
//! - [`manifests`]: every manifest meshproof generates, one function each.

pub mod actions;
pub mod cluster;
pub mod environment;
pub mod footprint;
pub mod install;
pub mod manifests;
pub mod names;
pub mod plan;
pub mod render;
pub mod signals;

use crate::process::ProcessError;
use cluster::api::{ApiError, ClusterApi};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where progress lines go (stderr for the CLI; a buffer in tests). Lines are already redacted.
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// A log that prints `meshproof: LINE` to stderr.
pub fn stderr_log() -> Log {
    Arc::new(|line: &str| eprintln!("meshproof: {line}"))
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("applying {what}: {source}")]
    Api { what: String, source: ApiError },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("downloading {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{component}: `{tool}` reports {found:?} but the suite pins {pinned}; install that version of {tool}")]
    VersionMismatch {
        component: String,
        tool: String,
        found: String,
        pinned: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("not yet implemented: {0}")]
    NotYet(String),
    /// Provisioning failed, and so did tearing down what it had made: a cluster may be left.
    #[error("{error}; tearing down what was made failed too: {teardown}")]
    TeardownFailed {
        error: Box<StackError>,
        teardown: String,
    },
}

impl StackError {
    /// A failed provisioning's error, with the teardown's failure when there was one.
    pub fn after_teardown(self, teardown: Result<(), String>) -> StackError {
        match teardown {
            Ok(()) => self,
            Err(t) => StackError::TeardownFailed {
                error: Box::new(self),
                teardown: t,
            },
        }
    }

    /// The teardown's failure, if this error carries one.
    pub fn teardown_failure(&self) -> Option<&str> {
        match self {
            StackError::TeardownFailed { teardown, .. } => Some(teardown),
            _ => None,
        }
    }
}

/// How a session provisions environments.
#[derive(Clone)]
pub struct StackOptions {
    /// The Kubernetes API seam (the kube layer at merge; a recording double in tests).
    pub api: Arc<dyn ClusterApi>,
    /// Keep clusters after the run (`--keep-cluster`, `MESHPROOF_KEEP_CLUSTER=1`).
    pub keep_cluster: bool,
    /// Artifacts of all runs go under `<artifacts_root>/<run id>/`.
    pub artifacts_root: PathBuf,
    /// Base URL for Gateway API release downloads.
    pub gateway_api_base: String,
    /// Where the digests of images the suite leaves on a tag come from.
    pub registry: crate::images::Registry,
    /// The registry mirror kind nodes pull through (`--mirror`, `MESHPROOF_MIRROR`); a value
    /// that does not parse is kept as its error and fails provisioning of a kind cluster.
    pub mirror: Result<crate::mirror::MirrorSetting, String>,
    pub log: Log,
}

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false)
}

impl StackOptions {
    /// Defaults, overridable by `MESHPROOF_KEEP_CLUSTER`, `MESHPROOF_MIRROR`, `MESHPROOF_ARTIFACTS_DIR` (default
    /// `meshproof-artifacts`) and `MESHPROOF_GATEWAY_API_BASE_URL`.
    pub fn from_env() -> StackOptions {
        StackOptions {
            api: Arc::new(cluster::kube_api::KubeClusterApi),
            keep_cluster: env_flag("MESHPROOF_KEEP_CLUSTER"),
            artifacts_root: std::env::var_os("MESHPROOF_ARTIFACTS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("meshproof-artifacts")),
            gateway_api_base: std::env::var("MESHPROOF_GATEWAY_API_BASE_URL")
                .unwrap_or_else(|_| install::gateway_api::DEFAULT_BASE_URL.to_string()),
            registry: crate::images::Registry::default(),
            mirror: crate::mirror::MirrorSetting::from_env().map_err(|e| e.to_string()),
            log: stderr_log(),
        }
    }
}

/// One run's identity and private directories.
pub struct RunDirs {
    pub run_id: names::RunId,
    /// 0700 temp dir: kubeconfigs, kind configs, generated keys, Helm repository config.
    temp: Option<tempfile::TempDir>,
    temp_path: PathBuf,
    /// `<artifacts_root>/<run id>`: logs exported on failure.
    pub artifacts: PathBuf,
    /// The run's local registry mirrors (`--mirror local|keep`), shared by every kind cluster
    /// of the run; `None` otherwise.
    pub mirrors: Option<Arc<crate::mirror::pool::Pool>>,
}

impl RunDirs {
    pub fn new(opts: &StackOptions) -> Result<RunDirs, StackError> {
        let run_id = names::RunId::random();
        let temp = tempfile::Builder::new()
            .prefix(&format!("meshproof-{run_id}-"))
            .tempdir()
            .map_err(|source| StackError::Io {
                what: "creating the run's temp dir".into(),
                source,
            })?;
        let temp_path = temp.path().to_path_buf();
        let artifacts = opts.artifacts_root.join(run_id.as_str());
        // The net under every exit path (SIGKILL included): see `crate::reaper`.
        if let Err(e) = crate::reaper::start(&artifacts.join("reaper.log")) {
            (opts.log)(&format!("warning: no reaper: {e}"));
        }
        crate::reaper::add(crate::reaper::Entry::Dir {
            path: temp_path.clone(),
        });
        let mirrors = match &opts.mirror {
            Ok(crate::mirror::MirrorSetting::Local { keep, .. }) => {
                Some(Arc::new(crate::mirror::pool::Pool::new(
                    *keep,
                    run_id.as_str(),
                    &crate::vocab::kind_network(),
                    temp_path.join("mirror-configs"),
                )))
            }
            _ => None,
        };
        Ok(RunDirs {
            run_id,
            temp: Some(temp),
            temp_path,
            artifacts,
            mirrors,
        })
    }

    pub fn temp(&self) -> &Path {
        &self.temp_path
    }

    /// The same paths without owning the temp dir (dropping the view deletes nothing): for
    /// work that runs while the owner is alive but must not hold the run's lock across awaits.
    pub fn view(&self) -> RunDirs {
        RunDirs {
            run_id: self.run_id.clone(),
            temp: None,
            temp_path: self.temp_path.clone(),
            artifacts: self.artifacts.clone(),
            mirrors: self.mirrors.clone(),
        }
    }

    /// Where an environment's artifacts go: `<artifacts root>/<run id>/<environment key>`.
    pub fn env_artifacts(&self, env_key: &str) -> PathBuf {
        self.artifacts.join(names::sanitize(env_key))
    }

    /// Where one trial's own artifacts go, inside its environment's.
    pub fn trial_artifacts(&self, env_key: &str, trial: &str) -> PathBuf {
        self.env_artifacts(env_key).join(names::sanitize(trial))
    }

    /// Deletes the temp dir now (unregistering it from the reaper and the run record).
    fn release(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = crate::reaper::remove_dir(t);
        }
    }

    /// Keeps the temp dir after the run (a kept cluster's kubeconfig lives there).
    pub fn persist(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = t.keep();
            crate::reaper::remove(crate::reaper::Entry::Dir {
                path: self.temp_path.clone(),
            });
        }
    }
}

impl Drop for RunDirs {
    fn drop(&mut self) {
        self.release();
    }
}
