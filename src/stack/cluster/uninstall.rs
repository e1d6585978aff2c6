//! Removing what a run installed on a cluster it did not create.
//!
//! On a kind cluster the run made, teardown deletes the cluster. On an existing cluster it must
//! remove exactly what it installed and nothing else. Two mechanisms cover that together:
//! - what the stack applies itself (namespaces, `linkerd install`'s output, the Gateway API
//!   CRDs) carries the run-id label when the apply created it, and
//!   [`ClusterApi::cleanup_labelled`] deletes those namespaces and cluster-scoped objects;
//! - what a CLI or a chart created is not labelled, so each component the run installed records
//!   its [`Uninstall`] steps *before* its install runs (a half-done install is removed too), and
//!   teardown runs them, newest component first, before the labelled cleanup.

use super::api::{ClusterApi, KubeTarget, ObjectRef, Selection};
use crate::process::Cmd;
use std::sync::{Arc, Mutex};

/// One step of removing a component.
#[derive(Clone)]
pub enum Uninstall {
    /// A CLI that removes the component (`helm uninstall`, `istioctl uninstall --purge`,
    /// `flux uninstall`), with its own timeout.
    Run(Cmd),
    /// An object the component's uninstall keeps (a CRD in a chart's `crds/` directory: Helm
    /// never deletes those), deleted by name.
    Delete(ObjectRef),
    /// Objects the component's controller generated, which no chart owns (sealing keys).
    DeleteSelected(Selection),
}

impl Uninstall {
    /// One line for plans, logs and the manual instructions.
    pub fn describe(&self) -> String {
        match self {
            Uninstall::Run(cmd) => format!("$ {}", cmd.display()),
            Uninstall::Delete(o) => format!("delete {o}"),
            Uninstall::DeleteSelected(s) => format!("delete {s}"),
        }
    }

    async fn run(&self, api: &dyn ClusterApi, target: &KubeTarget) -> Result<(), String> {
        match self {
            // Teardown runs during a shutdown too (the first Ctrl-C tears down).
            Uninstall::Run(cmd) => cmd
                .clone()
                .during_shutdown()
                .run()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Uninstall::Delete(o) => api
                .delete(target, &o.manifest())
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Uninstall::DeleteSelected(s) => api
                .delete_selected(target, s)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}

/// A component the run installed on an existing cluster, and how to remove it.
#[derive(Clone)]
pub struct Owned {
    pub component: String,
    pub steps: Vec<Uninstall>,
}

/// The components a run installed, in install order; shared between the installer (which
/// records) and the teardown guard (which removes).
#[derive(Clone, Default)]
pub struct OwnedList(Arc<Mutex<Vec<Owned>>>);

impl OwnedList {
    pub fn record(&self, owned: Owned) {
        match self.0.lock() {
            Ok(mut v) => v.push(owned),
            Err(p) => p.into_inner().push(owned),
        }
    }

    pub fn snapshot(&self) -> Vec<Owned> {
        match self.0.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Every step, newest component first, for a person to run.
    pub fn manual(&self) -> Vec<String> {
        self.snapshot()
            .iter()
            .rev()
            .flat_map(|o| o.steps.iter().map(Uninstall::describe))
            .collect()
    }

    /// Runs every step, newest component first. A failed step does not stop the others (each
    /// removes something different); the error names every step that failed.
    pub async fn remove_all(
        &self,
        api: &dyn ClusterApi,
        target: &KubeTarget,
        log: &dyn Fn(&str),
    ) -> Result<(), String> {
        let mut failed = Vec::new();
        for owned in self.snapshot().iter().rev() {
            log(&format!("uninstalling {}", owned.component));
            for step in &owned.steps {
                log(&step.describe());
                if let Err(e) = step.run(api, target).await {
                    log(&format!("failed: {e}"));
                    failed.push(format!("{} ({}): {e}", owned.component, step.describe()));
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("uninstalling failed: {}", failed.join("; ")))
        }
    }
}
