//! The teardown guard: whatever way a run ends — success, failed assertion, error, panic,
//! SIGINT/SIGTERM — what the session created is removed exactly once.
//!
//! Each environment owns a [`TeardownGuard`]; dropping it tears down synchronously (with the
//! commands' own timeouts). The same state is also listed in a process-wide registry that the
//! signal handler ([`crate::stack::signals`]) reads, because a signal ends the process with
//! `exit`, which runs no destructors.

use super::api::{ClusterApi, KubeTarget, RUN_ID_LABEL};
use super::kind::KindCluster;
use super::uninstall::OwnedList;
use crate::stack::Log;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long removing labelled objects from an existing cluster may take.
pub const EXISTING_CLEANUP_TIMEOUT: Duration = Duration::from_secs(300);

/// What tearing down one environment means.
#[derive(Clone)]
pub enum Teardown {
    /// Delete the kind cluster the session created.
    Kind(KindCluster),
    /// Uninstall what this run installed, then remove what it labelled; never the cluster.
    Existing {
        target: KubeTarget,
        run_id: String,
        api: Arc<dyn ClusterApi>,
        /// Filled by the installer as it goes (see [`super::uninstall`]).
        owned: OwnedList,
    },
}

impl Teardown {
    /// The command or instruction to do it by hand.
    pub fn manual(&self) -> String {
        match self {
            Teardown::Kind(k) => k.manual_delete(),
            Teardown::Existing {
                target,
                run_id,
                owned,
                ..
            } => {
                let steps = owned.manual();
                let uninstall = if steps.is_empty() {
                    String::new()
                } else {
                    format!(
                        "uninstall what the run installed: {}; then ",
                        steps.join("; ")
                    )
                };
                format!(
                    "{uninstall}delete the namespaces and cluster-scoped objects labelled {RUN_ID_LABEL}={run_id} (kubeconfig {}), e.g. `kubectl delete namespace -l {RUN_ID_LABEL}={run_id}`",
                    target.kubeconfig.display()
                )
            }
        }
    }
}

const ARMED: u8 = 0;
const RUNNING: u8 = 1;
/// Torn down (or deliberately kept, or never ours).
const FINISHED: u8 = 2;
/// Attempted and failed: the environment may still exist.
const FAILED: u8 = 3;

impl Teardown {
    /// What the reaper deletes if the run cannot (kind clusters only: an existing cluster's
    /// objects need the API and the run's own judgement).
    fn reaper_entry(&self) -> Option<crate::reaper::Entry> {
        match self {
            Teardown::Kind(k) => Some(crate::reaper::Entry::KindCluster {
                name: k.name.clone(),
                kubeconfig: k.kubeconfig.clone(),
            }),
            Teardown::Existing { .. } => None,
        }
    }
}

/// Shared state of one guard.
pub struct Inner {
    id: u64,
    teardown: Teardown,
    keep: bool,
    log: Log,
    /// Held for the whole teardown, so a second caller waits for the first to finish instead of
    /// returning while the cluster still exists.
    lock: Mutex<()>,
    /// Readable without the lock (the signal watcher must never block on it).
    phase: AtomicU8,
    /// Why the teardown failed, for every later caller (a failed teardown stays failed).
    failure: Mutex<Option<String>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static LIVE: Mutex<Vec<Arc<Inner>>> = Mutex::new(Vec::new());

/// Guards not yet torn down, oldest first.
pub fn live() -> Vec<Arc<Inner>> {
    match LIVE.lock() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn unlist(id: u64) {
    if let Ok(mut g) = LIVE.lock() {
        g.retain(|i| i.id != id);
    }
}

/// Unlists a guard when its teardown ends, however it ends.
struct Unlist(u64);

impl Drop for Unlist {
    fn drop(&mut self) {
        unlist(self.0);
    }
}

impl Inner {
    pub fn manual(&self) -> String {
        self.teardown.manual()
    }

    /// Whether the environment is gone (or deliberately kept): nothing left to do by hand.
    pub fn is_finished(&self) -> bool {
        self.phase.load(Ordering::SeqCst) == FINISHED
    }

    /// Tears down once; later and concurrent calls wait for the first and return. Safe from any
    /// thread, inside or outside an async runtime: the work runs on a thread of its own.
    pub fn run_once(self: &Arc<Self>) -> Result<(), String> {
        let _held = match self.lock.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        match self.phase.load(Ordering::SeqCst) {
            ARMED => {}
            FAILED => {
                let why = self.failure.lock().ok().and_then(|f| f.clone());
                return Err(why.unwrap_or_else(|| "the teardown failed".into()));
            }
            _ => return Ok(()),
        }
        self.phase.store(RUNNING, Ordering::SeqCst);
        // Listed until done: a signal arriving mid-teardown waits for it (`run_once` blocks on
        // the lock) instead of reporting a cleanup that is still under way as finished.
        let _unlist = Unlist(self.id);
        if self.keep {
            self.phase.store(FINISHED, Ordering::SeqCst);
            (self.log)(&format!(
                "keeping the environment (--keep-cluster / MESHPROOF_KEEP_CLUSTER=1); remove it with: {}",
                self.manual()
            ));
            return Ok(());
        }
        let me = self.clone();
        let res = std::thread::spawn(move || me.teardown_now())
            .join()
            .unwrap_or_else(|_| Err("teardown thread panicked".into()));
        match &res {
            Ok(()) => {
                self.phase.store(FINISHED, Ordering::SeqCst);
                if let Some(e) = self.teardown.reaper_entry() {
                    crate::reaper::remove(e);
                }
            }
            Err(e) => {
                if let Ok(mut f) = self.failure.lock() {
                    *f = Some(e.clone());
                }
                self.phase.store(FAILED, Ordering::SeqCst);
                (self.log)(&format!(
                    "teardown failed: {e}; remove it by hand: {}",
                    self.manual()
                ));
            }
        }
        res
    }

    fn teardown_now(&self) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        match &self.teardown {
            Teardown::Kind(k) => {
                // A kind killed mid-create leaves the kubeconfig's lock behind, and the delete
                // would then report failure after deleting the nodes (ledger KIND-5). Only this
                // run's kind processes use this kubeconfig, and none runs during its teardown.
                let lock = crate::reaper::kubeconfig_lock(&k.kubeconfig);
                if lock.exists() {
                    (self.log)(&format!("removing the stale kind lock {}", lock.display()));
                    let _ = std::fs::remove_file(&lock);
                }
                let cmd = k.delete_cmd();
                (self.log)(&format!("$ {}", cmd.display()));
                rt.block_on(cmd.run())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Teardown::Existing {
                target,
                run_id,
                api,
                owned,
            } => rt.block_on(async {
                // Every uninstall is attempted, and the labelled cleanup runs even when one
                // failed: each removes something different.
                let log = |l: &str| (self.log)(l);
                let uninstalled = owned.remove_all(api.as_ref(), target, &log).await;
                (self.log)(&format!(
                    "removing objects labelled {RUN_ID_LABEL}={run_id}"
                ));
                let cleaned = tokio::time::timeout(
                    EXISTING_CLEANUP_TIMEOUT,
                    api.cleanup_labelled(target, RUN_ID_LABEL, run_id),
                )
                .await
                .map_err(|_| {
                    format!(
                        "cleanup timed out after {}s",
                        EXISTING_CLEANUP_TIMEOUT.as_secs()
                    )
                })
                .and_then(|r| r.map_err(|e| e.to_string()));
                match (uninstalled, cleaned) {
                    (Ok(()), Ok(())) => Ok(()),
                    (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
                    (Err(a), Err(b)) => Err(format!("{a}; {b}")),
                }
            }),
        }
    }
}

/// Owns one environment's teardown; listed in the registry from *before* the cluster is created
/// (a half-created kind cluster must be deleted too) until torn down.
pub struct TeardownGuard(Arc<Inner>);

impl TeardownGuard {
    pub fn new(teardown: Teardown, keep: bool, log: Log) -> TeardownGuard {
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            teardown,
            keep,
            log,
            lock: Mutex::new(()),
            phase: AtomicU8::new(ARMED),
            failure: Mutex::new(None),
        });
        if !keep {
            if let Some(e) = inner.teardown.reaper_entry() {
                crate::reaper::add(e);
            }
        }
        if let Ok(mut g) = LIVE.lock() {
            g.push(inner.clone());
        }
        TeardownGuard(inner)
    }

    /// The environment turned out not to be this run's (kind refused to create a cluster whose
    /// name is taken): nothing to tear down, and nobody may delete it on the run's behalf.
    pub fn disown(&self) {
        let _held = self.0.lock.lock();
        self.0.phase.store(FINISHED, Ordering::SeqCst);
        if let Some(e) = self.0.teardown.reaper_entry() {
            crate::reaper::remove(e);
        }
        unlist(self.0.id);
    }

    pub fn teardown(&self) -> Result<(), String> {
        self.0.run_once()
    }

    pub fn manual(&self) -> String {
        self.0.manual()
    }

    /// A handle that can tear the environment down from another thread; dropping the handle
    /// does nothing (the guard stays the owner).
    pub fn handle(&self) -> TeardownHandle {
        TeardownHandle(self.0.clone())
    }
}

/// Tears down the guard's environment from anywhere, without owning it.
#[derive(Clone)]
pub struct TeardownHandle(Arc<Inner>);

impl TeardownHandle {
    /// The teardown as a future the caller can time out: the blocking work runs on tokio's
    /// blocking pool, so a deadline around this future fires on time. (Blocking the polling
    /// thread instead — `block_in_place` — means the deadline is only looked at once the
    /// teardown has returned, however long that takes.) A teardown cut off by a deadline
    /// carries on in the background; a later `teardown` waits for it and reports its outcome.
    pub async fn teardown(self) -> Result<(), String> {
        tokio::task::spawn_blocking(move || self.0.run_once())
            .await
            .unwrap_or_else(|e| Err(format!("the teardown thread failed: {e}")))
    }
}

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        let _ = self.0.run_once();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::cluster::api::{ApiFuture, ObjectRef, Selection};

    /// TEST DOUBLE: an API whose cleanup takes `delay` (a slow `kind delete` stands in the
    /// same place); everything else is unused here.
    struct SlowCleanup {
        delay: Duration,
    }

    impl ClusterApi for SlowCleanup {
        fn apply<'a>(
            &'a self,
            _: &'a KubeTarget,
            _: &'a str,
            _: Option<&'a str>,
        ) -> ApiFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn delete<'a>(&'a self, _: &'a KubeTarget, _: &'a str) -> ApiFuture<'a, usize> {
            Box::pin(async { Ok(0) })
        }
        fn delete_selected<'a>(
            &'a self,
            _: &'a KubeTarget,
            _: &'a Selection,
        ) -> ApiFuture<'a, usize> {
            Box::pin(async { Ok(0) })
        }
        fn create<'a>(&'a self, _: &'a KubeTarget, _: &'a str) -> ApiFuture<'a, bool> {
            Box::pin(async { Ok(true) })
        }
        fn patch_existing<'a>(&'a self, _: &'a KubeTarget, _: &'a str) -> ApiFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn exists<'a>(&'a self, _: &'a KubeTarget, _: &'a ObjectRef) -> ApiFuture<'a, bool> {
            Box::pin(async { Ok(false) })
        }
        fn nodes_ready<'a>(&'a self, _: &'a KubeTarget, _: Duration) -> ApiFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn cleanup_labelled<'a>(
            &'a self,
            _: &'a KubeTarget,
            _: &'a str,
            _: &'a str,
        ) -> ApiFuture<'a, ()> {
            let d = self.delay;
            Box::pin(async move {
                tokio::time::sleep(d).await;
                Ok(())
            })
        }
    }

    fn slow_guard() -> TeardownGuard {
        TeardownGuard::new(
            Teardown::Existing {
                target: KubeTarget {
                    kubeconfig: "/nonexistent/kubeconfig".into(),
                    context: None,
                },
                run_id: "guardtest".into(),
                api: Arc::new(SlowCleanup {
                    delay: Duration::from_millis(1500),
                }),
                owned: OwnedList::default(),
            },
            false,
            Arc::new(|_: &str| {}),
        )
    }

    /// The restore's destroy phase has a deadline; it must be able to fire while the teardown
    /// is still running. The old shape (`block_in_place` around the teardown, inside the timed
    /// future) completes instead: the deadline is only polled after the teardown returned.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deadline_around_the_teardown_fires_while_it_runs() {
        let deadline = Duration::from_millis(100);

        let blocking = slow_guard();
        let old = tokio::time::timeout(deadline, async {
            tokio::task::block_in_place(|| blocking.teardown())
        })
        .await;
        assert!(
            matches!(old, Ok(Ok(()))),
            "block_in_place hides the deadline: {old:?}"
        );

        let guard = slow_guard();
        let new = tokio::time::timeout(deadline, guard.handle().teardown()).await;
        assert!(new.is_err(), "the deadline must fire: {new:?}");
        // The teardown carried on; the owner's own teardown waits for it and sees it succeed.
        let owner = tokio::task::spawn_blocking(move || guard.teardown())
            .await
            .unwrap();
        assert_eq!(owner, Ok(()));
    }
}
