//! cert-manager from its Helm chart, CRDs included. The self-signed root → CA ClusterIssuer
//! chain the TLS scenario uses is in the scenario's own manifests.

use super::helm::{Helm, Value};
use super::InstallCtx;
use crate::scenario::StackComponent;
use crate::stack::actions::{Action, ComponentPlan};
use crate::stack::cluster::api::ObjectRef;
use crate::stack::cluster::uninstall::Uninstall;

pub const REPO: (&str, &str) = ("jetstack", "https://charts.jetstack.io");
pub const NAMESPACE: &str = "cert-manager";

/// `crds.keep=false`: the chart keeps its CRDs on uninstall by default (ledger CM-1), and on
/// an existing cluster the run must take away what it brought.
pub fn values() -> Vec<Value> {
    vec![
        Value::set("crds.enabled", "true"),
        Value::set("crds.keep", "false"),
    ]
}

pub fn plan(ctx: &InstallCtx<'_>, version: &str) -> ComponentPlan {
    let helm = Helm {
        target: ctx.target,
        work_dir: ctx.work_dir,
    };
    ComponentPlan {
        id: StackComponent::CertManager,
        component: "cert-manager",
        version: version.to_string(),
        footprint: vec![
            ObjectRef::namespace(NAMESPACE),
            ObjectRef::crd("certificates.cert-manager.io"),
        ],
        uninstall: vec![Uninstall::Run(helm.uninstall("cert-manager", NAMESPACE))],
        notes: vec![
            "waits (helm --wait) for the cert-manager, cainjector and webhook Deployments".into(),
        ],
        actions: vec![
            Action::namespace(NAMESPACE, ctx.run_id, None),
            Action::Run {
                cmd: helm.repo_add(REPO.0, REPO.1),
            },
            Action::Run {
                cmd: helm.upgrade_install(
                    "cert-manager",
                    "jetstack/cert-manager",
                    version,
                    NAMESPACE,
                    &values(),
                ),
            },
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart keeps its CRDs on uninstall unless told otherwise (ledger CM-1): on an existing
    /// cluster the run's `helm uninstall` must take the CRDs it brought.
    #[test]
    fn crds_go_with_the_release() {
        let v = values();
        assert!(v.contains(&Value::set("crds.enabled", "true")));
        assert!(v.contains(&Value::set("crds.keep", "false")));
    }
}
