//! Istio, with `istioctl install` (the CLI must be the suite's version: it installs its own) or
//! the Helm charts `base`, `istiod` and `gateway`.
//!
//! kind has no LoadBalancer, so the ingress gateway becomes a NodePort Service
//! (`values.gateways.istio-ingressgateway.type=NodePort`, or the gateway chart's `service.type`)
//! and its http/https NodePorts are then pinned to the host ports kind maps, with a
//! server-side-apply patch of the Service (IstioOperator has no flat `--set` for per-port
//! NodePorts).

use super::helm::{Helm, Value};
use super::InstallCtx;
use crate::process::Cmd;
use crate::scenario::StackComponent;
use crate::scenario::{IstioDataPlane, IstioInstall};
use crate::stack::actions::{Action, ComponentPlan};
use crate::stack::cluster::api::ObjectRef;
use crate::stack::cluster::uninstall::Uninstall;
use crate::stack::manifests;
use std::time::Duration;

pub const REPO: (&str, &str) = (
    "istio",
    "https://istio-release.storage.googleapis.com/charts",
);
pub const NAMESPACE: &str = "istio-system";

/// Apps start only once their sidecar is ready: without it, a function's first requests (or
/// the gateway's) race the proxy on Kubernetes < 1.33, where Istio 1.30 injects classic
/// sidecars; native sidecars (≥ 1.33) are ordered by the kubelet and ignore it (ledger IS-15).
pub const HOLD_APPLICATION: &str = "meshConfig.defaultConfig.holdApplicationUntilProxyStarts=true";

fn with_target(mut c: Cmd, ctx: &InstallCtx<'_>) -> Cmd {
    c = c.arg("--kubeconfig").arg(ctx.target.kubeconfig.as_os_str());
    if let Some(context) = &ctx.target.context {
        c = c.args(["--context", context.as_str()]);
    }
    c
}

pub fn istioctl_install(ctx: &InstallCtx<'_>, profile: &str, data_plane: IstioDataPlane) -> Cmd {
    let mut args = vec![
        "install".to_string(),
        "-y".into(),
        "--set".into(),
        format!("profile={profile}"),
    ];
    // The ambient profile has no ingress gateway and no sidecars (IS-17): neither setting has
    // anything to act on there.
    if data_plane == IstioDataPlane::Sidecar {
        args.extend([
            "--set".into(),
            "values.gateways.istio-ingressgateway.type=NodePort".into(),
            "--set".into(),
            HOLD_APPLICATION.into(),
        ]);
    }
    let c = Cmd::new("istioctl").args(args);
    // istioctl waits for the control plane and gateways to be ready (its own readiness timeout
    // is 300 s); ours is longer so istioctl's message wins.
    with_target(c, ctx).timeout(Duration::from_secs(420))
}

/// `istioctl uninstall --purge -y`: removes every Istio resource of every revision, CRDs
/// included (istio 1.30.3 `operator/cmd/mesh/uninstall.go:69,95`, ledger IS-18). Only run when
/// the run installed Istio on a cluster that had none (the footprint check refuses otherwise).
pub fn istioctl_uninstall(ctx: &InstallCtx<'_>) -> Cmd {
    let c = Cmd::new("istioctl").args(["uninstall", "--purge", "-y"]);
    with_target(c, ctx).timeout(Duration::from_secs(300))
}

/// `istioctl version --remote=false` must report the pin: istioctl installs its own release.
fn check_version(version: &str) -> Action {
    Action::CheckVersion {
        cmd: Cmd::new("istioctl")
            .args(["version", "--remote=false"])
            .timeout(Duration::from_secs(30)),
        pinned: version.to_string(),
    }
}

/// What marks an Istio install: its namespace and its security CRD.
fn footprint() -> Vec<ObjectRef> {
    vec![
        ObjectRef::namespace(NAMESPACE),
        ObjectRef::crd("peerauthentications.security.istio.io"),
    ]
}

pub fn plan(
    ctx: &InstallCtx<'_>,
    version: &str,
    how: &IstioInstall,
    data_plane: IstioDataPlane,
) -> ComponentPlan {
    let ports = ctx.host_ports();
    let patch = Action::Patch {
        what: format!(
            "Service {}/{} NodePorts http2→{} https→{}",
            manifests::ISTIO_INGRESS.0,
            manifests::ISTIO_INGRESS.1,
            ports.http,
            ports.https
        ),
        manifest: manifests::istio_ingress_nodeports(ports),
    };
    match how {
        IstioInstall::Istioctl { profile } if data_plane == IstioDataPlane::Ambient => {
            ComponentPlan {
                id: StackComponent::Istio,
                component: "Istio",
                version: version.to_string(),
                footprint: footprint(),
                uninstall: vec![Uninstall::Run(istioctl_uninstall(ctx))],
                notes: vec![format!(
                    "istioctl, profile {profile}: istio-cni and ztunnel, no sidecars and no ingress gateway; namespaces enrolled with {}={}",
                    manifests::AMBIENT_LABEL,
                    manifests::AMBIENT_ENROLLED
                )],
                actions: vec![
                    check_version(version),
                    Action::Run {
                        cmd: istioctl_install(ctx, profile, data_plane),
                    },
                ],
            }
        }
        IstioInstall::Istioctl { profile } => ComponentPlan {
            id: StackComponent::Istio,
            component: "Istio",
            version: version.to_string(),
            footprint: footprint(),
            uninstall: vec![Uninstall::Run(istioctl_uninstall(ctx))],
            notes: vec![format!(
                "istioctl, profile {profile}; ingress gateway as NodePort {} / {}",
                ports.http, ports.https
            )],
            actions: vec![
                check_version(version),
                Action::Run {
                    cmd: istioctl_install(ctx, profile, data_plane),
                },
                patch,
            ],
        },
        IstioInstall::Helm => {
            let helm = Helm {
                target: ctx.target,
                work_dir: ctx.work_dir,
            };
            ComponentPlan {
                id: StackComponent::Istio,
                component: "Istio",
                version: version.to_string(),
                footprint: footprint(),
                // The base chart's CRDs are templates (1.30.3 `manifests/charts/base/templates/
                // crds.yaml`), so `helm uninstall istio-base` removes them.
                uninstall: ["istio-ingressgateway", "istiod", "istio-base"]
                    .into_iter()
                    .map(|r| Uninstall::Run(helm.uninstall(r, NAMESPACE)))
                    .collect(),
                notes: vec![format!(
                    "Helm charts base, istiod, gateway (release istio-ingressgateway); ingress NodePort {} / {}",
                    ports.http, ports.https
                )],
                actions: vec![
                    Action::namespace(NAMESPACE, ctx.run_id, None),
                    Action::Run { cmd: helm.repo_add(REPO.0, REPO.1) },
                    Action::Run { cmd: helm.upgrade_install("istio-base", "istio/base", version, NAMESPACE, &[]) },
                    Action::Run {
                        cmd: helm.upgrade_install(
                            "istiod",
                            "istio/istiod",
                            version,
                            NAMESPACE,
                            &[Value::set(
                                "meshConfig.defaultConfig.holdApplicationUntilProxyStarts",
                                "true",
                            )],
                        ),
                    },
                    Action::Run {
                        cmd: helm.upgrade_install(
                            "istio-ingressgateway",
                            "istio/gateway",
                            version,
                            NAMESPACE,
                            &[Value::set("service.type", "NodePort")],
                        ),
                    },
                    patch,
                ],
            }
        }
    }
}
