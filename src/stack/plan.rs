//! What provisioning and installing an environment will do, as plan steps.

use crate::plan::{Phase, PlannedStep};
use crate::scenario::*;

pub fn provision_and_install(suite: &Suite, env: &EnvironmentSpec, key: &str) -> Vec<PlannedStep> {
    let mut out = Vec::new();
    out.push(match &env.cluster {
        ClusterSpec::Kind { node_image, host_ports } => PlannedStep {
            phase: Phase::Provision,
            title: format!("create kind cluster for {key}"),
            detail: vec![
                format!("node image {node_image}"),
                format!("host ports {} (http) and {} (https) mapped to the same NodePorts", host_ports.http, host_ports.https),
                "kubeconfig written to a 0600 file in the run's temp dir, never ~/.kube/config".into(),
            ],
        },
        ClusterSpec::Existing { kubeconfig, context } => PlannedStep {
            phase: Phase::Provision,
            title: format!("use existing cluster for {key}"),
            detail: vec![format!(
                "kubeconfig {} context {}",
                kubeconfig.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "$KUBECONFIG".into()),
                context.as_deref().unwrap_or("(current)")
            )],
        },
    });
    let c = &suite.components;
    if let (MeshSpec::Linkerd { .. }, Some(v)) = (&env.mesh, &c.gateway_api) {
        out.push(install("Gateway API CRDs", v.as_str(), "standard channel, before Linkerd"));
    }
    match &env.mesh {
        MeshSpec::Istio { version, install: m } => out.push(install(
            "Istio",
            version.as_str(),
            &match m {
                IstioInstall::Istioctl { profile } => format!("istioctl install -y, profile {profile}"),
                IstioInstall::Helm => "Helm charts base, istiod, gateway".into(),
            },
        )),
        MeshSpec::Linkerd { version, install: m } => out.push(install(
            "Linkerd",
            version.as_str(),
            match m {
                LinkerdInstall::Cli => "linkerd install --crds, linkerd install, linkerd check",
                LinkerdInstall::Helm => "Helm charts linkerd-crds, linkerd-control-plane with meshproof-generated trust anchor",
            },
        )),
    }
    if let Some(v) = &c.cert_manager {
        out.push(install("cert-manager", v.as_str(), "Helm chart"));
    }
    out.push(install(
        "OpenFaaS",
        suite.openfaas.chart.as_str(),
        &format!(
            "Helm chart, {} edition, functionNamespace=openfaas-fn, gateway.directFunctions=true",
            match suite.openfaas.edition {
                Edition::Ce => "CE",
                Edition::Pro { .. } => "Pro",
            }
        ),
    ));
    if let Some(v) = &c.sealed_secrets {
        out.push(install("sealed-secrets", v.as_str(), "Helm chart"));
    }
    if let Some(v) = &c.flux {
        out.push(install("Flux", v.as_str(), "flux install"));
    }
    out
}

fn install(what: &str, version: &str, how: &str) -> PlannedStep {
    PlannedStep { phase: Phase::Install, title: format!("install {what} {version}"), detail: vec![how.to_string()] }
}
