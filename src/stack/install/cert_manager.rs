//! cert-manager from its Helm chart, CRDs included. The self-signed root → CA ClusterIssuer
//! chain the TLS scenario uses is in the scenario's own manifests.

use super::helm::{Helm, Value};
use super::InstallCtx;
use crate::stack::actions::{Action, ComponentPlan};

pub const REPO: (&str, &str) = ("jetstack", "https://charts.jetstack.io");
pub const NAMESPACE: &str = "cert-manager";

pub fn values() -> Vec<Value> {
    vec![Value::set("crds.enabled", "true")]
}

pub fn plan(ctx: &InstallCtx<'_>, version: &str) -> ComponentPlan {
    let helm = Helm {
        target: ctx.target,
        work_dir: ctx.work_dir,
    };
    ComponentPlan {
        component: "cert-manager",
        version: version.to_string(),
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
