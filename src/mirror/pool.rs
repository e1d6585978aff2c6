//! A run's local mirror containers: started on first need (each upstream once, whichever
//! environment asks first), connected to kind's network before and after each cluster is
//! created, and at the end of the run read (their access logs: [`super::evidence`]) and, for
//! `--mirror local`, removed.

use super::local::{self, Running, Spec};
use super::{MirrorError, Upstream};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The containers of one run.
pub struct Pool {
    keep: bool,
    run_id: String,
    network: String,
    /// A private directory for configs on their way into a container.
    scratch: PathBuf,
    /// When the run began (RFC 3339): a kept container's log is read from here on, so requests
    /// of earlier runs are no evidence for this one.
    since: String,
    running: tokio::sync::Mutex<BTreeMap<Upstream, Running>>,
    /// Set once [`Pool::finish`] ran: nothing left to remove on drop.
    finished: std::sync::atomic::AtomicBool,
}

/// What the end of a run found: which container served which upstream, each container's
/// served manifests, and what could not be read or removed.
#[derive(Debug, Default, Clone)]
pub struct Finished {
    pub containers: BTreeMap<Upstream, String>,
    pub served: BTreeMap<String, BTreeMap<String, String>>,
    pub errors: Vec<String>,
    /// The run's own (`local`) containers left running because its clusters were kept
    /// (`--keep-cluster`): their nodes still pull through them. No longer the reaper's or
    /// `gc`'s to remove; the caller prints how to.
    pub kept_with_clusters: Vec<String>,
}

impl Pool {
    /// A pool for run `run_id` on `network` (kind's: `KIND_EXPERIMENTAL_DOCKER_NETWORK` or
    /// `kind`). Nothing starts until [`Pool::ensure`].
    pub fn new(keep: bool, run_id: &str, network: &str, scratch: PathBuf) -> Pool {
        Pool {
            keep,
            run_id: run_id.to_string(),
            network: network.to_string(),
            scratch,
            since: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            running: tokio::sync::Mutex::new(BTreeMap::new()),
            finished: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    /// The specs of `upstreams`' mirrors in this pool (pure; credentials from the environment).
    pub fn specs(&self, upstreams: &[Upstream]) -> Result<Vec<Spec>, MirrorError> {
        let run = (!self.keep).then_some(self.run_id.as_str());
        upstreams.iter().map(|u| Spec::new(u, run)).collect()
    }

    /// Starts (or reuses) a mirror for every upstream not running yet; returns upstream →
    /// container for all of `upstreams`. `log` gets one line per container.
    pub async fn ensure(
        &self,
        upstreams: &[Upstream],
        log: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<BTreeMap<Upstream, String>, MirrorError> {
        if std::env::var(crate::vocab::KIND_PROVIDER_ENV)
            .is_ok_and(|p| !p.is_empty() && p != "docker")
        {
            return Err(MirrorError::Local(format!(
                "--mirror local/keep runs its registries on Docker, and {} selects another kind provider; use --mirror off or a mirror URL",
                crate::vocab::KIND_PROVIDER_ENV
            )));
        }
        crate::private_fs::private_dir(&self.scratch).map_err(|source| MirrorError::Io {
            what: format!("creating {}", self.scratch.display()),
            source,
        })?;
        let mut running = self.running.lock().await;
        let mut out = BTreeMap::new();
        for spec in self.specs(upstreams)? {
            if let Some(r) = running.get(&spec.upstream) {
                out.insert(spec.upstream.clone(), r.container.clone());
                continue;
            }
            log(&format!(
                "registry mirror: {}",
                spec.describe(&self.network)
            ));
            let r = local::start(&spec, &self.network, &self.scratch).await?;
            if r.reused {
                log(&format!(
                    "registry mirror: {} is running with the same configuration: reused",
                    r.container
                ));
            }
            out.insert(spec.upstream.clone(), r.container.clone());
            running.insert(spec.upstream.clone(), r);
        }
        Ok(out)
    }

    /// Connects every running mirror to the network (after `kind create` made it).
    pub async fn connect_all(&self) -> Result<(), MirrorError> {
        let running = self.running.lock().await;
        for r in running.values() {
            local::connect(&r.container, &self.network).await?;
        }
        Ok(())
    }

    /// Reads every container's access log (since the run began), then removes the run's own
    /// (`local`) unless `keep_clusters` (`--keep-cluster`: the kept nodes' hosts.toml still name
    /// them, so they stay with the clusters); `keep` ones always stay. Called once at the end of
    /// the run; later calls return `None`.
    pub async fn finish(&self, keep_clusters: bool) -> Option<Finished> {
        let mut running = self.running.lock().await;
        if self
            .finished
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return None;
        }
        let mut out = Finished::default();
        for (u, r) in std::mem::take(&mut *running) {
            out.containers.insert(u, r.container.clone());
            match local::logs_since(&r.container, &self.since).await {
                Ok(log) => {
                    out.served
                        .insert(r.container.clone(), super::evidence::served_manifests(&log));
                }
                Err(e) => out.errors.push(e.to_string()),
            }
            if r.kept {
                continue;
            }
            if keep_clusters {
                crate::reaper::remove(crate::reaper::Entry::Container {
                    name: r.container.clone(),
                });
                out.kept_with_clusters.push(r.container.clone());
            } else if let Err(e) = local::remove(&r.container).await {
                out.errors.push(e.to_string());
            }
        }
        Some(out)
    }

    /// The run's own containers, for removal when [`Pool::finish`] never ran.
    fn leftovers(&self) -> Vec<String> {
        if self.finished.load(std::sync::atomic::Ordering::SeqCst) {
            return Vec::new();
        }
        match self.running.try_lock() {
            Ok(g) => g
                .values()
                .filter(|r| !r.kept)
                .map(|r| r.container.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Pool {
    /// A run that ends without [`Pool::finish`] (a panic unwinding) still removes its
    /// containers; what even this misses, the reaper and `meshproof gc` remove.
    fn drop(&mut self) {
        let names = self.leftovers();
        if names.is_empty() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            for n in names {
                let _ = rt.block_on(local::remove(&n));
            }
            Some(())
        })
        .join();
    }
}
