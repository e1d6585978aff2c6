//! Component installers. Each module builds its component's [`ComponentPlan`] — pinned
//! versions from the suite, the exact commands, the manifests to apply — without side effects;
//! [`crate::stack::actions::Exec`] runs them. All installs are idempotent (`helm upgrade
//! --install`, server-side apply, `istioctl install`), so re-running on a half-installed
//! cluster converges.

pub mod cert_manager;
pub mod gateway_api;
pub mod helm;
pub mod istio;
pub mod linkerd;
pub mod openfaas;
pub mod traefik;

use super::actions::{Action, ComponentPlan};
use super::cluster::api::{KubeTarget, ObjectRef, Selection};
use super::cluster::uninstall::Uninstall;
use crate::scenario::{ClusterSpec, EnvironmentSpec, HostPorts, MeshSpec, StackComponent, Suite};
use std::path::Path;
use std::time::Duration;

/// The SealedSecret CRD (ledger SS-9).
const SEALED_SECRETS_CRD: &str = "sealedsecrets.bitnami.com";

/// Values generated or read at run time. In a plan they are placeholders (and never printed).
pub struct Secrets {
    /// The OpenFaaS admin password.
    pub basic_auth_password: String,
    /// The OpenFaaS Pro license text, for Pro suites.
    pub license: Option<String>,
}

impl Secrets {
    pub fn placeholder() -> Secrets {
        Secrets {
            basic_auth_password: "<generated at run time>".into(),
            license: None,
        }
    }

    /// 32 random alphanumeric characters from the OS-seeded CSPRNG.
    pub fn generate_password() -> String {
        use rand::distr::{Alphanumeric, SampleString};
        Alphanumeric.sample_string(&mut rand::rng(), 32)
    }
}

/// Everything an installer needs to build its plan.
pub struct InstallCtx<'a> {
    pub suite: &'a Suite,
    pub env: &'a EnvironmentSpec,
    pub target: &'a KubeTarget,
    pub run_id: &'a str,
    /// The environment's private directory in the run's temp dir.
    pub work_dir: &'a Path,
    pub secrets: &'a Secrets,
    /// Base URL of Gateway API release downloads.
    pub gateway_api_base: &'a str,
}

impl InstallCtx<'_> {
    /// Host ports the ingress NodePorts use (kind maps them; on an existing cluster they are the
    /// defaults, as in the scenario variables).
    pub fn host_ports(&self) -> HostPorts {
        match &self.env.cluster {
            ClusterSpec::Kind { host_ports, .. } => *host_ports,
            ClusterSpec::Existing { .. } => HostPorts::default(),
        }
    }
}

/// Every component of the environment, in install order: Gateway API CRDs (Linkerd), the mesh,
/// cert-manager, OpenFaaS, then sealed-secrets and Flux.
pub fn plans(ctx: &InstallCtx<'_>) -> Vec<ComponentPlan> {
    let c = &ctx.suite.components;
    let mut out = Vec::new();
    // Gateway API CRDs first: Linkerd refuses to install without them (LD-2), and Istio's
    // ambient waypoints are Gateway API Gateways (IS-17).
    if let Some(v) = &c.gateway_api {
        out.push(gateway_api::plan(ctx.gateway_api_base, v.as_str()));
    }
    match &ctx.env.mesh {
        MeshSpec::Istio {
            version,
            install,
            data_plane,
        } => out.push(istio::plan(ctx, version.as_str(), install, *data_plane)),
        MeshSpec::Linkerd { version, install } => {
            out.push(linkerd::plan(ctx, version.as_str(), *install));
        }
    }
    if let Some(v) = &c.cert_manager {
        out.push(cert_manager::plan(ctx, v.as_str()));
    }
    out.push(openfaas::plan(ctx));
    if let Some(v) = &c.traefik {
        out.push(traefik::plan(ctx, v.as_str()));
    }
    if let Some(v) = &c.sealed_secrets {
        let helm = helm::Helm {
            target: ctx.target,
            work_dir: ctx.work_dir,
        };
        out.push(ComponentPlan {
            id: StackComponent::SealedSecrets,
            component: "sealed-secrets",
            version: v.to_string(),
            footprint: vec![
                ObjectRef::deployment("kube-system", "sealed-secrets-controller"),
                ObjectRef::crd(SEALED_SECRETS_CRD),
            ],
            // The chart ships its CRD in `crds/`, which Helm never deletes, and the controller
            // generates the sealing keys itself (chart helm-v2.19.1, ledger SS-4, SS-11).
            uninstall: vec![
                Uninstall::Run(helm.uninstall("sealed-secrets", "kube-system")),
                Uninstall::DeleteSelected(Selection {
                    api_version: "v1".into(),
                    kind: "Secret".into(),
                    namespace: "kube-system".into(),
                    selector: crate::restore::keys::KEY_LABEL.into(),
                }),
                Uninstall::Delete(ObjectRef::crd(SEALED_SECRETS_CRD)),
            ],
            notes: vec![
                "controller named sealed-secrets-controller in kube-system: kubeseal's defaults, and what the restore flow passes explicitly".into(),
            ],
            actions: vec![
                Action::Run { cmd: helm.repo_add("sealed-secrets", "https://bitnami.github.io/sealed-secrets") },
                Action::Run {
                    cmd: helm.upgrade_install(
                        "sealed-secrets",
                        "sealed-secrets/sealed-secrets",
                        v.as_str(),
                        "kube-system",
                        &[helm::Value::set("fullnameOverride", "sealed-secrets-controller")],
                    ),
                },
            ],
        });
    }
    if let Some(v) = &c.flux {
        // One spelling of the command line: the restore flow's.
        let spec = crate::restore::flux::FluxSpec::new(v.as_str());
        let mut cmd = crate::restore::flux::install_cmd(
            "flux",
            &spec,
            &ctx.target.kubeconfig,
            Duration::from_secs(600),
        );
        let mut uninstall = crate::restore::flux::uninstall_cmd(
            "flux",
            &spec,
            &ctx.target.kubeconfig,
            Duration::from_secs(300),
        );
        if let Some(context) = &ctx.target.context {
            cmd = cmd.args(["--context", context.as_str()]);
            uninstall = uninstall.args(["--context", context.as_str()]);
        }
        out.push(ComponentPlan {
            id: StackComponent::Flux,
            component: "Flux",
            version: spec.version.clone(),
            footprint: vec![
                ObjectRef::namespace(&spec.namespace),
                ObjectRef::crd("gitrepositories.source.toolkit.fluxcd.io"),
            ],
            uninstall: vec![Uninstall::Run(uninstall)],
            notes: vec!["source-controller and kustomize-controller only: the restore scenario needs nothing else".into()],
            actions: vec![
                Action::CheckVersion {
                    cmd: crate::restore::flux::version_cmd("flux"),
                    pinned: spec.version.clone(),
                },
                Action::Run { cmd },
            ],
        });
    }
    out
}
