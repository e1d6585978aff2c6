//! OpenFaaS from its Helm chart, meshed.
//!
//! meshproof creates both namespaces itself (with the mesh's injection switches and the run-id
//! label) and the `basic-auth` Secret with a password it generates (`generateBasicAuth=false`),
//! so the password never passes through a command line or a log. Values, and why:
//! - `gateway.directFunctions=true`: the gateway calls the function Service, so the mesh sees
//!   the traffic (splits and L7 policy apply); otherwise it resolves endpoint IPs itself.
//! - `gateway.probeFunctions=true` on Istio: avoids routing to a pod whose Envoy is not ready.
//! - `async=false`: no NATS and no queue-worker. meshproof never invokes asynchronously, and
//!   NATS speaks first: a meshed gateway's sidecar waits for a client preface NATS never sends,
//!   the gateway cannot open its queue and exits before serving (Istio would need port 4222
//!   excluded on every meshed pod; Linkerd skips it by namespace annotation).
//! - with Linkerd, the gateway's NodePort is the suite's http host port (nothing else uses it;
//!   under Istio that port belongs to the Istio ingress gateway).
//! - never `istio.mtls`: it renders the removed `authentication.istio.io/v1alpha1` Policy.
//! - Pro (a license file in the suite): `openfaasPro=true`, `operator.create=true` and the
//!   `openfaas-license` Secret.

use super::helm::{Helm, Value};
use super::InstallCtx;
use crate::scenario::{Edition, HostPorts, Mesh};
use crate::stack::actions::{Action, ComponentPlan};
use crate::stack::manifests;
use crate::vocab::{FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};

pub const REPO: (&str, &str) = ("openfaas", "https://openfaas.github.io/faas-netes/");
pub const RELEASE: &str = "openfaas";
pub const CHART: &str = "openfaas/openfaas";

/// The chart values meshproof sets, in order.
pub fn values(mesh: Mesh, pro: bool, ports: HostPorts) -> Vec<Value> {
    let mut v = vec![
        Value::set("functionNamespace", FUNCTIONS_NAMESPACE),
        Value::set("generateBasicAuth", "false"),
        Value::set("gateway.directFunctions", "true"),
        Value::set("serviceType", "NodePort"),
        Value::set("async", "false"),
    ];
    match mesh {
        Mesh::Istio => v.push(Value::set("gateway.probeFunctions", "true")),
        Mesh::Linkerd => v.push(Value::set("gateway.nodePort", ports.http.to_string())),
    }
    if pro {
        v.push(Value::set("openfaasPro", "true"));
        v.push(Value::set("operator.create", "true"));
    }
    v
}

pub fn plan(ctx: &InstallCtx<'_>) -> ComponentPlan {
    let mesh = ctx.env.mesh.mesh();
    let spec = &ctx.suite.openfaas;
    let pro = matches!(spec.edition, Edition::Pro { .. });
    let values = values(mesh, pro, ctx.host_ports());
    let helm = Helm {
        target: ctx.target,
        work_dir: ctx.work_dir,
    };
    let mut actions = vec![
        Action::namespace(GATEWAY_NAMESPACE, ctx.run_id, Some(mesh)),
        Action::namespace(FUNCTIONS_NAMESPACE, ctx.run_id, Some(mesh)),
        Action::Apply {
            what: format!(
                "Secret {GATEWAY_NAMESPACE}/{} (basic-auth-user={}, basic-auth-password=<32 random characters>)",
                manifests::BASIC_AUTH_SECRET,
                manifests::BASIC_AUTH_USER
            ),
            manifest: manifests::basic_auth_secret(GATEWAY_NAMESPACE, ctx.run_id, &ctx.secrets.basic_auth_password),
            secret: true,
        },
    ];
    if let Edition::Pro { license_file } = &spec.edition {
        actions.push(Action::Apply {
            what: format!(
                "Secret {GATEWAY_NAMESPACE}/{} (key license, from {})",
                manifests::LICENSE_SECRET,
                license_file.display()
            ),
            manifest: manifests::license_secret(
                GATEWAY_NAMESPACE,
                ctx.run_id,
                ctx.secrets.license.as_deref().unwrap_or(""),
            ),
            secret: true,
        });
    }
    actions.push(Action::Run {
        cmd: helm.repo_add(REPO.0, REPO.1),
    });
    actions.push(Action::Run {
        cmd: helm.upgrade_install(
            RELEASE,
            CHART,
            spec.chart.as_str(),
            GATEWAY_NAMESPACE,
            &values,
        ),
    });
    let mut notes = vec![format!("{} edition", if pro { "Pro" } else { "CE" })];
    notes.extend(values.iter().map(|v| match v {
        Value::Set(k, v) | Value::File(k, v) => format!("chart value {k}={v}"),
    }));
    ComponentPlan {
        component: "OpenFaaS",
        version: spec.chart.to_string(),
        notes,
        actions,
    }
}
