//! OpenFaaS from its Helm chart, meshed.
//!
//! meshproof creates both namespaces itself (with the mesh's injection switches and the run-id
//! label) and the `basic-auth` Secret with a password it generates (`generateBasicAuth=false`),
//! so the password never passes through a command line or a log. Values, and why:
//! - `async=false`: no NATS and no queue-worker (chart 15.0.6 renders neither, ledger OF-12).
//!   meshproof never invokes asynchronously, and NATS speaks first: a meshed gateway's sidecar
//!   waits for a client preface NATS never sends, the gateway cannot open its queue and exits
//!   before serving.
//! - with Linkerd, the gateway's NodePort is the suite's http host port (nothing else uses it;
//!   under Istio that port belongs to the Istio ingress gateway).
//! - never `istio.mtls`: the scenarios apply their own STRICT PeerAuthentication per trial.
//! - **Pro** (ledger OF-5): `openfaasPro=true`, `operator.create=true` and `clusterRole=true`
//!   (the chart's `values-pro.yaml`), the `openfaas-license` Secret (key `license`, in the
//!   release namespace), and `gateway.directFunctions=true` with `gateway.probeFunctions=true`:
//!   the Pro gateway then calls the function's Service, so Service-level mesh routes and mTLS
//!   apply. Neither is on by default, even for Pro. The operator moves the gateway to the
//!   service account `openfaas-operator`.
//! - **CE** sets neither: the CE gateway (0.27.13) ignores both and always hands invocations
//!   to faas-netes, which calls a random function pod by IP (ledger OF-3, OF-4). The chart
//!   still renders the env vars; they do nothing.

use super::helm::{Helm, Value};
use super::InstallCtx;
use crate::scenario::StackComponent;
use crate::scenario::{Edition, HostPorts, Mesh};
use crate::stack::actions::{Action, ComponentPlan};
use crate::stack::cluster::api::ObjectRef;
use crate::stack::cluster::uninstall::Uninstall;
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
        Value::set("serviceType", "NodePort"),
        Value::set("async", "false"),
    ];
    if mesh == Mesh::Linkerd {
        v.push(Value::set("gateway.nodePort", ports.http.to_string()));
    }
    if pro {
        v.push(Value::set("openfaasPro", "true"));
        v.push(Value::set("operator.create", "true"));
        v.push(Value::set("clusterRole", "true"));
        v.push(Value::set("gateway.directFunctions", "true"));
        v.push(Value::set("gateway.probeFunctions", "true"));
    }
    v
}

pub fn plan(ctx: &InstallCtx<'_>) -> ComponentPlan {
    let mesh = ctx.env.mesh.mesh();
    let data_plane = ctx.env.mesh.data_plane();
    let spec = &ctx.suite.openfaas;
    let pro = matches!(spec.edition, Edition::Pro { .. });
    let values = values(mesh, pro, ctx.host_ports());
    let helm = Helm {
        target: ctx.target,
        work_dir: ctx.work_dir,
    };
    let mut actions = vec![
        Action::namespace(GATEWAY_NAMESPACE, ctx.run_id, Some(data_plane)),
        Action::namespace(FUNCTIONS_NAMESPACE, ctx.run_id, Some(data_plane)),
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
                license_file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_else(|| format!("${}", crate::scenario::LICENSE_FILE_ENV))
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
    let mut notes = vec![if pro {
        "Pro edition: the gateway calls each function's Service (directFunctions), so the mesh's Service routes and mTLS apply to gateway traffic".to_string()
    } else {
        "CE edition: the gateway hands invocations to faas-netes, which calls a function pod by IP (no Service-level mesh route applies to gateway traffic)".to_string()
    }];
    notes.extend(values.iter().map(|v| match v {
        Value::Set(k, v) | Value::File(k, v) => format!("chart value {k}={v}"),
    }));
    ComponentPlan {
        id: StackComponent::OpenFaas,
        component: "OpenFaaS",
        version: spec.chart.to_string(),
        footprint: vec![
            ObjectRef::namespace(GATEWAY_NAMESPACE),
            ObjectRef::namespace(FUNCTIONS_NAMESPACE),
        ],
        uninstall: vec![Uninstall::Run(helm.uninstall(RELEASE, GATEWAY_NAMESPACE))],
        notes,
        actions,
    }
}
