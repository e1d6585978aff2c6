//! Existing clusters: meshproof never creates or deletes them, and removes only the namespaces
//! and cluster-scoped objects it labelled with the run id.

use super::api::KubeTarget;
use std::path::PathBuf;

/// The kubeconfig to use: the suite's, else the first file of `KUBECONFIG`, else
/// `~/.kube/config`. `None` when none of them is given.
pub fn target(kubeconfig: Option<&PathBuf>, context: Option<&String>) -> Option<KubeTarget> {
    let path = kubeconfig.cloned().or_else(|| {
        std::env::var_os("KUBECONFIG")
            .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
    })?;
    Some(KubeTarget {
        kubeconfig: path,
        context: context.cloned(),
    })
}
