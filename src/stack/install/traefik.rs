//! Traefik, the ingress a Linkerd environment serves TLS through (Linkerd has no ingress of its
//! own). Its namespace is meshed like any workload's, so traffic from the ingress to the OpenFaaS
//! gateway is mTLS; only `websecure` gets the fixed NodePort that kind maps to the host (the
//! OpenFaaS gateway already owns the http one on Linkerd).
//!
//! Installed with `--skip-crds` and its CRD provider off: meshproof serves a plain `Ingress`, and
//! nothing in the release uses the chart's `traefik.io` CRDs. (Up to chart 40.1.0 `crds/` also
//! bundled Gateway API CRDs older than the suite's, which `--skip-crds` kept from downgrading
//! them; since 40.2.0 it bundles none: CONTRACTS.md TR-5, GW-6.)
//!
//! The Service type is `service.spec.type`: since chart 40.0.0 `service.spec` is copied into the
//! Service as written, and the old `service.type` is silently ignored (TR-2).

use super::helm::{Helm, Value};
use super::InstallCtx;
use crate::scenario::Mesh;
use crate::scenario::StackComponent;
use crate::stack::actions::{Action, ComponentPlan};
use crate::stack::cluster::api::ObjectRef;
use crate::stack::cluster::uninstall::Uninstall;

pub const REPO: (&str, &str) = ("traefik", "https://traefik.github.io/charts");
pub const NAMESPACE: &str = "traefik";

pub fn values(https_node_port: u16) -> Vec<Value> {
    vec![
        Value::set("service.spec.type", "NodePort"),
        Value::set("ports.websecure.nodePort", https_node_port.to_string()),
        // Serve standard `networking.k8s.io/v1` Ingress objects of class `traefik`.
        Value::set("providers.kubernetesIngress.enabled", "true"),
        // IngressRoute & co. need the CRDs `--skip-crds` leaves out.
        Value::set("providers.kubernetesCRD.enabled", "false"),
    ]
}

pub fn plan(ctx: &InstallCtx<'_>, version: &str) -> ComponentPlan {
    let helm = Helm {
        target: ctx.target,
        work_dir: ctx.work_dir,
    };
    let mesh = ctx.env.mesh.mesh();
    ComponentPlan {
        id: StackComponent::Traefik,
        component: "Traefik",
        version: version.to_string(),
        footprint: vec![ObjectRef::namespace(NAMESPACE)],
        uninstall: vec![Uninstall::Run(helm.uninstall("traefik", NAMESPACE))],
        notes: vec![format!(
            "ingress for TLS: websecure NodePort {}, namespace {NAMESPACE} meshed ({mesh})",
            ctx.host_ports().https
        )],
        actions: vec![
            Action::namespace(
                NAMESPACE,
                ctx.run_id,
                Some(ctx.env.mesh.data_plane()).filter(|d| d.mesh() == Mesh::Linkerd),
            ),
            Action::Run {
                cmd: helm.repo_add(REPO.0, REPO.1),
            },
            Action::Run {
                cmd: helm
                    .upgrade_install(
                        "traefik",
                        "traefik/traefik",
                        version,
                        NAMESPACE,
                        &values(ctx.host_ports().https),
                    )
                    .arg("--skip-crds"),
            },
        ],
    }
}
