//! The validated model: what a suite or scenario *means*, with every invariant already checked.
//!
//! Constructors here are the only way to build the constrained types (weights that sum to 100,
//! a tolerance inside (0, 50), an image pinned by digest), so code downstream never re-checks.

use super::raw::{DataPlaneKey, Expectation, MeshName, ProtocolName};
use super::template::Template;
use indexmap::IndexMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use super::raw::{Enforcer, ProbeFrom, WaitFor};
/// The canary engine's own validated types: a scenario's split *is* the engine's input, so the
/// invariants (weights sum to 100, tolerance in (0, 50), confidence in (0.5, 1)) live in one place.
pub use crate::check::canary::{Confidence, Split, Tolerance, VariantSpec as Variant, Weight};

/// The two meshes meshproof certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mesh {
    Istio,
    Linkerd,
}

impl Mesh {
    pub const ALL: [Mesh; 2] = [Mesh::Istio, Mesh::Linkerd];

    pub fn as_str(self) -> &'static str {
        match self {
            Mesh::Istio => "istio",
            Mesh::Linkerd => "linkerd",
        }
    }
}

impl From<MeshName> for Mesh {
    fn from(m: MeshName) -> Self {
        match m {
            MeshName::Istio => Mesh::Istio,
            MeshName::Linkerd => Mesh::Linkerd,
        }
    }
}

impl fmt::Display for Mesh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name usable in trial names, cluster names and Kubernetes labels:
/// lowercase letters, digits and `-`, starting with a letter, at most 40 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Name, String> {
        let ok = !s.is_empty()
            && s.len() <= 40
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Name(s.to_string()))
        } else {
            Err(format!(
                "invalid name {s:?}: use 1-40 lowercase letters, digits and '-', starting with a letter and not ending with '-'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A container image pinned by digest: `repo[:tag]@sha256:<64 hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PinnedImage(String);

impl PinnedImage {
    pub fn parse(s: &str) -> Result<PinnedImage, String> {
        let Some((repo, digest)) = s.split_once("@sha256:") else {
            return Err(format!("image {s:?} is not pinned by digest: write it as `repo:tag@sha256:<64 hex digits>`"));
        };
        if repo.is_empty() || repo.contains(char::is_whitespace) {
            return Err(format!("image {s:?} has an empty or invalid repository"));
        }
        if digest.len() != 64
            || !digest
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        {
            return Err(format!(
                "image {s:?}: the sha256 digest must be 64 lowercase hex digits"
            ));
        }
        Ok(PinnedImage(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Kubernetes version a `kindest/node:vX.Y.Z@…` image carries, if its tag says so.
    pub fn kube_version_tag(&self) -> Option<&str> {
        let repo = self.0.split('@').next()?;
        let tag = repo.rsplit_once(':')?.1;
        tag.starts_with('v').then_some(tag)
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A version string checked against the format its project uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Version(String);

impl Version {
    /// `1.2.3`, optionally with a leading `v` when `allow_v` (cert-manager, flux use one).
    pub fn semver(s: &str, allow_v: bool) -> Result<Version, String> {
        let body = if allow_v {
            s.strip_prefix('v').unwrap_or(s)
        } else {
            s
        };
        let parts: Vec<&str> = body.split('.').collect();
        if parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            Ok(Version(s.to_string()))
        } else if allow_v {
            Err(format!("version {s:?} is not of the form v1.2.3"))
        } else {
            Err(format!("version {s:?} is not of the form 1.2.3"))
        }
    }

    /// Linkerd's release channels: `edge-YY.M.N`, `stable-X.Y.Z`, `enterprise-X.Y.Z`.
    pub fn linkerd(s: &str) -> Result<Version, String> {
        for prefix in ["edge-", "stable-", "enterprise-"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                return Version::semver(rest, false)
                    .map(|_| Version(s.to_string()))
                    .map_err(|_| format!("linkerd version {s:?}: expected {prefix}X.Y.Z"));
            }
        }
        Err(format!(
            "linkerd version {s:?}: expected edge-YY.M.N, stable-X.Y.Z or enterprise-X.Y.Z"
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------- suite

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Suite {
    pub name: Name,
    pub description: Option<String>,
    pub cluster: ClusterSpec,
    pub mesh: MeshSpec,
    pub openfaas: OpenFaasSpec,
    pub components: Components,
    pub scenarios: Vec<Name>,
    /// Environments this suite expands into (one when it has no matrix).
    pub environments: Vec<EnvironmentSpec>,
    /// The images its scenarios deploy (`${images.function}`, …), pinned or to be pinned at
    /// run start.
    pub images: crate::images::Images,
    /// Values for scenario variables (hosts, …).
    pub vars: IndexMap<String, String>,
    pub source: PathBuf,
}

/// One concrete environment: a suite with its matrix coordinates applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EnvironmentSpec {
    /// `istio`, or `istio[k8s=1.33,mesh=1.30.3]` for a matrix cell.
    pub name: String,
    pub cluster: ClusterSpec,
    pub mesh: MeshSpec,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "provider", rename_all = "lowercase")]
pub enum ClusterSpec {
    Kind {
        node_image: PinnedImage,
        host_ports: HostPorts,
    },
    Existing {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
        /// Components the suite lets the run use as it finds them on the cluster. Any other
        /// component found there stops the run before it changes anything (issue #13).
        reuse: std::collections::BTreeSet<StackComponent>,
    },
}

pub use super::raw::StackComponent;

/// Host ports that kind maps onto the ingress NodePorts of the same numbers (kind has no
/// LoadBalancer). The defaults sit in 30000-30085, the band Kubernetes (1.27+) hands out only to
/// Services that ask for a port, so a NodePort allocated at random cannot take them first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HostPorts {
    pub http: u16,
    pub https: u16,
}

impl Default for HostPorts {
    fn default() -> Self {
        HostPorts {
            http: 30080,
            https: 30043,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "name", rename_all = "lowercase")]
pub enum MeshSpec {
    Istio {
        version: Version,
        install: IstioInstall,
        data_plane: IstioDataPlane,
    },
    Linkerd {
        version: Version,
        install: LinkerdInstall,
    },
}

impl MeshSpec {
    pub fn mesh(&self) -> Mesh {
        match self {
            MeshSpec::Istio { .. } => Mesh::Istio,
            MeshSpec::Linkerd { .. } => Mesh::Linkerd,
        }
    }

    pub fn version(&self) -> &Version {
        match self {
            MeshSpec::Istio { version, .. } | MeshSpec::Linkerd { version, .. } => version,
        }
    }

    /// Istio with sidecars: a data plane that sends pod-IP traffic around the mesh's Service
    /// routing and mTLS (ledger IS-8). Ambient's ztunnel captures it (IS-19).
    pub fn istio_sidecars(&self) -> bool {
        self.data_plane() == DataPlane::IstioSidecar
    }

    pub fn data_plane(&self) -> DataPlane {
        match self {
            MeshSpec::Istio {
                data_plane: IstioDataPlane::Sidecar,
                ..
            } => DataPlane::IstioSidecar,
            MeshSpec::Istio {
                data_plane: IstioDataPlane::Ambient,
                ..
            } => DataPlane::IstioAmbient,
            MeshSpec::Linkerd { .. } => DataPlane::Linkerd,
        }
    }
}

/// Istio's data plane: a sidecar proxy in every pod, or ambient's per-node ztunnel (with
/// waypoints for L7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IstioDataPlane {
    Sidecar,
    Ambient,
}

/// How a workload joins the mesh: what marks a namespace as meshed and a pod as not, and what
/// the wire between peers shows. One per mesh, and two for Istio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataPlane {
    IstioSidecar,
    IstioAmbient,
    Linkerd,
}

impl DataPlane {
    pub fn mesh(self) -> Mesh {
        match self {
            DataPlane::IstioSidecar | DataPlane::IstioAmbient => Mesh::Istio,
            DataPlane::Linkerd => Mesh::Linkerd,
        }
    }

    /// The plain data plane of `mesh` (Istio: sidecars).
    pub fn default_for(mesh: Mesh) -> DataPlane {
        match mesh {
            Mesh::Istio => DataPlane::IstioSidecar,
            Mesh::Linkerd => DataPlane::Linkerd,
        }
    }

    pub const ALL: [DataPlane; 3] = [
        DataPlane::IstioSidecar,
        DataPlane::IstioAmbient,
        DataPlane::Linkerd,
    ];

    /// The name a scenario gives it (`meshes`, a wait's `mesh`): `istio` is Istio with sidecars,
    /// like the `istio` manifest key.
    pub fn scenario_key(self) -> &'static str {
        match self {
            DataPlane::IstioSidecar => "istio",
            DataPlane::IstioAmbient => "istio-ambient",
            DataPlane::Linkerd => "linkerd",
        }
    }

    /// Its key in a per-mesh manifest block (`istio`, `istioAmbient`, `linkerd`).
    pub fn manifest_key(self) -> &'static str {
        match self {
            DataPlane::IstioSidecar => "istio",
            DataPlane::IstioAmbient => "istioAmbient",
            DataPlane::Linkerd => "linkerd",
        }
    }
}

impl From<DataPlaneKey> for DataPlane {
    fn from(k: DataPlaneKey) -> Self {
        match k {
            DataPlaneKey::Istio => DataPlane::IstioSidecar,
            DataPlaneKey::IstioAmbient => DataPlane::IstioAmbient,
            DataPlaneKey::Linkerd => DataPlane::Linkerd,
        }
    }
}

impl fmt::Display for DataPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scenario_key())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum IstioInstall {
    Istioctl { profile: String },
    Helm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkerdInstall {
    Cli,
    Helm,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpenFaasSpec {
    pub chart: Version,
    pub edition: Edition,
    /// The suite asked to run CE under Istio sidecars although it cannot pass there.
    pub ce_with_istio_sidecars: bool,
}

/// The environment variable naming the OpenFaaS Pro license file when the suite names none.
pub const LICENSE_FILE_ENV: &str = "OPENFAAS_LICENSE_FILE";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "edition", rename_all = "lowercase")]
pub enum Edition {
    Ce,
    /// Pro needs a license: the suite's `licenseFile`, else the file [`LICENSE_FILE_ENV`]
    /// names. It is read at install time, applied as a Secret through the API, never logged.
    Pro {
        license_file: Option<PathBuf>,
    },
}

impl Edition {
    pub fn is_pro(&self) -> bool {
        matches!(self, Edition::Pro { .. })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Edition::Ce => "ce",
            Edition::Pro { .. } => "pro",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Components {
    pub cert_manager: Option<Version>,
    pub flux: Option<Version>,
    pub sealed_secrets: Option<Version>,
    pub gateway_api: Option<Version>,
    /// Traefik Helm chart version (the ingress Linkerd suites serve TLS through).
    pub traefik: Option<Version>,
}

// ---------------------------------------------------------------- scenario

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scenario {
    pub name: Name,
    pub description: Option<String>,
    /// The data planes it runs on: its `meshes`, or by default Istio sidecars and Linkerd, and
    /// Istio ambient when every per-mesh manifest block has an `istioAmbient` variant.
    pub meshes: Vec<DataPlane>,
    pub lifecycle: Lifecycle,
    /// Like `#[ignore = "…"]`: the trial is listed, skipped by default, run with `--ignored`.
    pub ignore: Option<String>,
    pub vars: IndexMap<String, String>,
    pub steps: Vec<Step>,
    pub source: PathBuf,
}

impl Scenario {
    pub fn applies_to(&self, data_plane: DataPlane) -> bool {
        self.meshes.contains(&data_plane)
    }

    /// The deny expectations that name an ambient enforcement point, as (step index, name).
    pub fn ambient_enforcers(&self) -> Vec<(usize, &str)> {
        let mut out = Vec::new();
        for (i, s) in self.steps.iter().enumerate() {
            if let Step::Check(Check::Deny(d)) = s {
                for e in d.expectations.iter().filter(|e| e.enforcer.is_some()) {
                    out.push((i, e.name.as_str()));
                }
            }
        }
        out
    }

    /// Components the scenario's checks need installed on `mesh`.
    pub fn needs(&self, mesh: Mesh) -> Vec<Component> {
        let mut out = Vec::new();
        for s in &self.steps {
            if let Step::Check(c) = s {
                for n in c.needs(mesh) {
                    if !out.contains(n) {
                        out.push(*n);
                    }
                }
            }
        }
        out
    }
}

/// Optional components a scenario can require from its suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Component {
    CertManager,
    Flux,
    SealedSecrets,
    /// An ingress controller for meshes without one (Linkerd): the TLS scenario serves through it.
    Traefik,
}

impl Component {
    pub fn yaml_key(self) -> &'static str {
        match self {
            Component::CertManager => "certManager",
            Component::Flux => "flux",
            Component::SealedSecrets => "sealedSecrets",
            Component::Traefik => "traefik",
        }
    }
}

/// Whether a scenario can share its environment with others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Runs in the suite's shared environment.
    Shared,
    /// Gets an environment of its own (it destroys or rebuilds the cluster).
    Dedicated,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    Apply(Manifests),
    Delete(Manifests),
    Deploy(DeploySpec),
    Wait(WaitSpec),
    Check(Check),
}

/// Where a manifest's text comes from; file text is read and checked at load time.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    Inline(#[serde(serialize_with = "ser_template")] Template),
    File {
        path: PathBuf,
        #[serde(skip)]
        text: Template,
    },
}

impl Source {
    pub fn template(&self) -> &Template {
        match self {
            Source::Inline(t) | Source::File { text: t, .. } => t,
        }
    }
}

fn ser_template<S: serde::Serializer>(t: &Template, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.source())
}

fn ser_opt_template<S: serde::Serializer>(t: &Option<Template>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(t.source()),
        None => s.serialize_none(),
    }
}

/// A manifest for every mesh, or one per mesh. Validation guarantees every mesh the scenario
/// applies to has a source.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Manifests {
    pub sources: ManifestSources,
    pub vars: IndexMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ManifestSources {
    Common(Source),
    /// One variant per data plane: `istio` is for sidecars only, never used on ambient. Boxed:
    /// three sources would make every `Check` as large as a deny check's policy.
    PerMesh(Box<PerMeshSources>),
}

/// The variants of a per-mesh manifest, by data plane.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PerMeshSources {
    pub istio: Option<Source>,
    pub linkerd: Option<Source>,
    pub istio_ambient: Option<Source>,
}

impl Manifests {
    /// The variant for `data_plane`. An ambient environment never falls back to the sidecar
    /// `istio` variant: its policies, routes and ingress are other objects.
    pub fn for_data_plane(&self, data_plane: DataPlane) -> Option<&Source> {
        match &self.sources {
            ManifestSources::Common(s) => Some(s),
            ManifestSources::PerMesh(p) => match data_plane {
                DataPlane::IstioSidecar => p.istio.as_ref(),
                DataPlane::IstioAmbient => p.istio_ambient.as_ref(),
                DataPlane::Linkerd => p.linkerd.as_ref(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeploySpec {
    pub function: Name,
    #[serde(serialize_with = "ser_template")]
    pub image: Template,
    pub env: IndexMap<String, String>,
    pub labels: IndexMap<String, String>,
    pub annotations: IndexMap<String, String>,
    pub meshed: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WaitSpec {
    pub wait_for: WaitFor,
    /// `kind/name` (or a label selector for `podsReady`).
    #[serde(serialize_with = "ser_template")]
    pub target: Template,
    #[serde(serialize_with = "ser_opt_template")]
    pub namespace: Option<Template>,
    /// `Type=Status` for `condition` waits.
    pub condition: Option<(String, String)>,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Only on this data plane; `None` on every one.
    pub mesh: Option<DataPlane>,
}

impl WaitSpec {
    pub fn applies_to(&self, data_plane: DataPlane) -> bool {
        self.mesh.is_none_or(|m| m == data_plane)
    }
}

mod humantime_serde_compat {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl serde::Serialize for WaitFor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            WaitFor::Rollout => "rollout",
            WaitFor::PodsReady => "podsReady",
            WaitFor::Established => "established",
            WaitFor::Condition => "condition",
        })
    }
}

// ---------------------------------------------------------------- checks

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    Mtls(MtlsCheck),
    Deny(DenyCheck),
    Canary(CanaryCheck),
    Tls(TlsCheck),
    Restore(RestoreCheck),
}

impl Check {
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Mtls(_) => "mtls",
            Check::Deny(_) => "deny",
            Check::Canary(_) => "canary",
            Check::Tls(_) => "tls",
            Check::Restore(_) => "restore",
        }
    }

    /// What the check needs installed on `mesh`: Istio brings its own ingress gateway, Linkerd
    /// has none, so TLS is served through Traefik there.
    pub fn needs(&self, mesh: Mesh) -> &'static [Component] {
        match self {
            Check::Tls(_) if mesh == Mesh::Linkerd => &[Component::CertManager, Component::Traefik],
            Check::Tls(_) => &[Component::CertManager],
            Check::Restore(_) => &[Component::Flux, Component::SealedSecrets],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MtlsCheck {
    pub function: Name,
    /// The same function deployed without the mesh: its capture must show the sentinel.
    pub control: Name,
    pub requests: u32,
    pub port: u16,
    /// Also assert a plaintext client from an unmeshed namespace is refused.
    pub strict: bool,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DenyCheck {
    pub policy: Manifests,
    pub probe: Probe,
    pub expectations: Vec<ProbeExpectation>,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Probe {
    #[serde(serialize_with = "ser_template")]
    pub namespace: Template,
    pub service_account: String,
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProbeExpectation {
    pub name: String,
    pub from: ProbeFrom,
    #[serde(serialize_with = "ser_template")]
    pub url: Template,
    /// Outcome required before the policy exists (the negative control).
    pub before: Allowance,
    /// Outcome required once the policy is applied.
    pub after: Allowance,
    /// Istio ambient: the enforcement point that must answer the denial (`after: denied` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcer: Option<Enforcer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Allowance {
    Allowed,
    Denied,
}

impl From<Expectation> for Allowance {
    fn from(e: Expectation) -> Self {
        match e {
            Expectation::Allowed => Allowance::Allowed,
            Expectation::Denied => Allowance::Denied,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CanaryCheck {
    pub function: Name,
    pub split: Split,
    pub tolerance: Tolerance,
    pub confidence: Confidence,
    pub max_requests: u32,
    /// Consecutive classified responses required before sampling starts (route convergence).
    pub converge: u32,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MinProtocol {
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

impl From<ProtocolName> for MinProtocol {
    fn from(p: ProtocolName) -> Self {
        match p {
            ProtocolName::Tls12 => MinProtocol::Tls12,
            ProtocolName::Tls13 => MinProtocol::Tls13,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TlsCheck {
    #[serde(serialize_with = "ser_template")]
    pub host: Template,
    pub path: String,
    pub ca_secret: SecretKeyRef,
    pub min_days: u32,
    pub min_protocol: MinProtocol,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretKeyRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RestoreCheck {
    pub functions: Vec<Name>,
    pub sealed_secrets: Vec<(String, String)>,
    #[serde(with = "humantime_serde_compat_opt")]
    pub max_recovery: Option<Duration>,
}

mod humantime_serde_compat_opt {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }
}

/// A loaded, cross-checked set of suites and scenarios.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub suites: Vec<Arc<Suite>>,
    pub scenarios: Vec<Arc<Scenario>>,
}

impl Catalog {
    pub fn scenario(&self, name: &Name) -> Option<&Arc<Scenario>> {
        self.scenarios.iter().find(|s| &s.name == name)
    }

    pub fn suite(&self, name: &str) -> Option<&Arc<Suite>> {
        self.suites.iter().find(|s| s.name.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_must_be_pinned() {
        let d = "a".repeat(64);
        assert!(PinnedImage::parse(&format!("kindest/node:v1.33.1@sha256:{d}")).is_ok());
        assert!(PinnedImage::parse("kindest/node:v1.33.1").is_err());
        assert!(PinnedImage::parse(&format!("kindest/node@sha256:{}", "A".repeat(64))).is_err());
        assert!(PinnedImage::parse("kindest/node@sha256:abc").is_err());
        let img = PinnedImage::parse(&format!("kindest/node:v1.33.1@sha256:{d}")).unwrap();
        assert_eq!(img.kube_version_tag(), Some("v1.33.1"));
    }

    #[test]
    fn versions_follow_each_projects_format() {
        assert!(Version::semver("1.30.3", false).is_ok());
        assert!(Version::semver("v1.30.3", false).is_err());
        assert!(Version::semver("v1.21.1", true).is_ok());
        assert!(Version::linkerd("edge-26.8.3").is_ok());
        assert!(Version::linkerd("2.18").is_err());
        assert!(Version::linkerd("edge-26.8").is_err());
    }

    #[test]
    fn names_are_dns_friendly() {
        assert!(Name::parse("canary-90-10").is_ok());
        assert!(Name::parse("Canary").is_err());
        assert!(Name::parse("-x").is_err());
        assert!(Name::parse("x-").is_err());
        assert!(Name::parse("").is_err());
    }
}
