//! The raw layer: exactly what the YAML says, nothing validated beyond types.
//!
//! Every struct denies unknown fields, so a typo is an error with a location instead of a
//! silently ignored setting. Conversion to the validated model lives in `validate`.

use indexmap::IndexMap;
use serde::Deserialize;

/// Which kind of document a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DocKind {
    Suite,
    Scenario,
}

/// Only the `kind` field, read first to pick the schema.
#[derive(Debug, Deserialize)]
pub struct KindProbe {
    pub kind: Option<DocKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MeshName {
    Istio,
    Linkerd,
}

/// A data plane as a scenario names it (`meshes`, a wait's `mesh`): `istio` is Istio with
/// sidecars, the same variant the `istio` manifest key selects; `istio-ambient` is Istio's
/// ambient data plane (the `istioAmbient` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum DataPlaneKey {
    #[serde(rename = "istio")]
    Istio,
    #[serde(rename = "istio-ambient")]
    IstioAmbient,
    #[serde(rename = "linkerd")]
    Linkerd,
}

// ---------------------------------------------------------------- suite

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSuite {
    pub kind: DocKind,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub cluster: RawCluster,
    pub mesh: RawMesh,
    pub openfaas: RawOpenFaas,
    #[serde(default)]
    pub components: RawComponents,
    pub scenarios: Vec<String>,
    #[serde(default)]
    pub matrix: Option<RawMatrix>,
    #[serde(default)]
    pub images: RawImages,
    #[serde(default)]
    pub vars: IndexMap<String, String>,
}

/// Image per role; a missing one is the built-in default (`crate::images::ImageRole`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImages {
    #[serde(default)]
    pub function: Option<String>,
    #[serde(default)]
    pub probe: Option<String>,
    #[serde(default)]
    pub capture: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    Kind,
    Existing,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCluster {
    pub provider: ProviderName,
    #[serde(default)]
    pub node_image: Option<String>,
    #[serde(default)]
    pub host_ports: Option<RawHostPorts>,
    #[serde(default)]
    pub kubeconfig: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    /// `provider: existing` only: components used as found (see `model::ClusterSpec`).
    #[serde(default)]
    pub reuse: Option<Vec<StackComponent>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawHostPorts {
    pub http: u16,
    pub https: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMesh {
    pub name: MeshName,
    pub version: String,
    #[serde(default)]
    pub install: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    /// Istio only: `sidecar` (default) or `ambient`.
    #[serde(default)]
    pub data_plane: Option<DataPlaneName>,
}

/// Istio's data planes, as a suite names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataPlaneName {
    Sidecar,
    Ambient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EditionName {
    Ce,
    Pro,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawOpenFaas {
    pub chart: String,
    #[serde(default)]
    pub edition: Option<EditionName>,
    #[serde(default)]
    pub license_file: Option<String>,
    /// Run OpenFaaS CE under Istio sidecars anyway (to watch it fail): validation refuses it
    /// otherwise.
    #[serde(default)]
    pub allow_ce_with_istio_sidecars: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawComponents {
    #[serde(default)]
    pub cert_manager: Option<RawVersion>,
    #[serde(default)]
    pub flux: Option<RawVersion>,
    #[serde(default)]
    pub sealed_secrets: Option<RawVersion>,
    #[serde(default)]
    pub gateway_api: Option<RawVersion>,
    #[serde(default)]
    pub traefik: Option<RawVersion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVersion {
    pub version: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMatrix {
    #[serde(default)]
    pub kubernetes: Vec<RawKubeAxis>,
    #[serde(default)]
    pub mesh: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawKubeAxis {
    pub name: String,
    pub node_image: String,
}

// ---------------------------------------------------------------- scenario

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawScenario {
    pub kind: DocKind,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The data planes it runs on (`istio` = Istio sidecars, `istio-ambient`, `linkerd`).
    #[serde(default)]
    pub meshes: Option<Vec<DataPlaneKey>>,
    #[serde(default)]
    pub lifecycle: Option<LifecycleName>,
    #[serde(default)]
    pub ignore: Option<String>,
    #[serde(default)]
    pub vars: IndexMap<String, String>,
    pub steps: Vec<RawStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleName {
    Shared,
    Dedicated,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RawStep {
    Apply(RawManifests),
    Delete(RawManifests),
    Deploy(RawDeploy),
    Wait(RawWait),
    Check(RawCheck),
}

/// A manifest given inline or by path, either for every mesh or per mesh.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawManifests {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub inline: Option<String>,
    #[serde(default)]
    pub istio: Option<RawSource>,
    #[serde(default)]
    pub linkerd: Option<RawSource>,
    /// Istio's ambient data plane. The `istio` variant is for sidecars and is never used on
    /// ambient: ambient's policy, routing and ingress are other objects.
    #[serde(default)]
    pub istio_ambient: Option<RawSource>,
    /// Variables that apply to this step only (e.g. the weights of one canary phase).
    #[serde(default)]
    pub vars: IndexMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSource {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub inline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDeploy {
    pub function: String,
    pub image: String,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    #[serde(default)]
    pub labels: IndexMap<String, String>,
    #[serde(default)]
    pub annotations: IndexMap<String, String>,
    /// Deploy outside the mesh (no sidecar / proxy injection): used by negative controls.
    #[serde(default)]
    pub meshed: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WaitFor {
    Rollout,
    PodsReady,
    Established,
    Condition,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawWait {
    #[serde(rename = "for")]
    pub wait_for: WaitFor,
    pub target: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub condition: Option<String>,
    pub timeout: String,
    /// Only on this data plane (a wait for an object only one variant's manifests create).
    #[serde(default)]
    pub mesh: Option<DataPlaneKey>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RawCheck {
    Mtls(RawMtls),
    Deny(RawDeny),
    Canary(RawCanary),
    Tls(RawTls),
    Restore(RawRestore),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawMtls {
    pub function: String,
    #[serde(default)]
    pub requests: Option<u32>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub strict: Option<bool>,
    /// The unmeshed twin of `function` whose capture must show the sentinel in plaintext.
    pub control: String,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawDeny {
    /// Boxed: it is most of a deny check's size, and every `RawCheck` would be that large.
    pub policy: Box<RawManifests>,
    #[serde(default)]
    pub probe: Option<RawProbe>,
    pub expect: Vec<RawExpectation>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawProbe {
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub service_account: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expectation {
    Allowed,
    Denied,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawExpectation {
    pub name: String,
    /// Where the request starts: the probe pod (default) or outside the function namespace,
    /// through the OpenFaaS gateway.
    #[serde(default)]
    pub from: Option<ProbeFrom>,
    pub url: String,
    pub after: Expectation,
    /// What the same probe must give before the policy is applied (the negative control);
    /// defaults to `allowed`.
    #[serde(default)]
    pub before: Option<Expectation>,
    /// Istio ambient only: which enforcement point must answer the denial — ztunnel (L4: the
    /// connection is reset or closed) or a waypoint (L7: a 403 from its RBAC filter).
    #[serde(default)]
    pub enforcer: Option<Enforcer>,
}

/// Where an ambient mesh enforces a policy: the destination's ztunnel (L4 rules) or a waypoint
/// proxy (L7 rules, `targetRefs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Enforcer {
    Ztunnel,
    Waypoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeFrom {
    Probe,
    Outside,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawCanary {
    pub function: String,
    pub variants: Vec<RawVariant>,
    pub tolerance: f64,
    pub confidence: f64,
    #[serde(default)]
    pub max_requests: Option<u32>,
    #[serde(default)]
    pub converge: Option<u32>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawVariant {
    pub name: String,
    pub pattern: String,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ProtocolName {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawTls {
    pub host: String,
    #[serde(default)]
    pub path: Option<String>,
    pub ca_secret: RawSecretRef,
    pub min_days: u32,
    #[serde(default)]
    pub min_protocol: Option<ProtocolName>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSecretRef {
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawRestore {
    pub functions: Vec<String>,
    pub sealed_secrets: Vec<RawSecretName>,
    #[serde(default)]
    pub max_recovery: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RawSecretName {
    pub namespace: String,
    pub name: String,
}

/// A component the stack installs, by the key a suite names it with (`cluster.reuse`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum StackComponent {
    GatewayApi,
    Istio,
    Linkerd,
    CertManager,
    #[serde(rename = "openfaas")]
    OpenFaas,
    Traefik,
    SealedSecrets,
    Flux,
}

impl StackComponent {
    /// The key in a suite (`reuse: [certManager]`).
    pub fn key(self) -> &'static str {
        match self {
            StackComponent::GatewayApi => "gatewayApi",
            StackComponent::Istio => "istio",
            StackComponent::Linkerd => "linkerd",
            StackComponent::CertManager => "certManager",
            StackComponent::OpenFaas => "openfaas",
            StackComponent::Traefik => "traefik",
            StackComponent::SealedSecrets => "sealedSecrets",
            StackComponent::Flux => "flux",
        }
    }
}
