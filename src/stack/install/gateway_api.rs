//! Gateway API CRDs (standard channel) at the suite's version, before the mesh: recent Linkerd
//! releases no longer install them but need them for HTTPRoute splits (and refuse to install
//! without them), and Istio ambient's waypoints and routes are Gateway API objects.

use crate::scenario::StackComponent;
use crate::stack::actions::{Action, ComponentPlan};
use crate::stack::cluster::api::ObjectRef;

/// Where release manifests are published; overridable (`MESHPROOF_GATEWAY_API_BASE_URL`) for
/// mirrors and for tests that serve the file locally.
pub const DEFAULT_BASE_URL: &str =
    "https://github.com/kubernetes-sigs/gateway-api/releases/download";

pub fn url(base: &str, version: &str) -> String {
    format!(
        "{}/{version}/standard-install.yaml",
        base.trim_end_matches('/')
    )
}

pub fn plan(base: &str, version: &str) -> ComponentPlan {
    ComponentPlan {
        id: StackComponent::GatewayApi,
        component: "Gateway API CRDs",
        version: version.to_string(),
        footprint: vec![
            ObjectRef::crd("gateways.gateway.networking.k8s.io"),
            ObjectRef::crd("httproutes.gateway.networking.k8s.io"),
        ],
        // Applied by meshproof: the CRDs it creates carry the run-id label, and the labelled
        // cleanup deletes them.
        uninstall: vec![],
        notes: vec![
            "standard channel, before the mesh: Established before `linkerd install` (which refuses without them), and the kinds of Istio ambient's waypoints and routes"
                .into(),
        ],
        actions: vec![Action::ApplyUrl {
            url: url(base, version),
        }],
    }
}
