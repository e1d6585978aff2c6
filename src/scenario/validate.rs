//! Raw → validated model. Pure: file reads (for manifests referenced by path) go through a
//! caller-supplied function, and every problem is collected — not just the first — with the
//! field path it concerns, so one `validate` run shows a user everything to fix.

use super::diag::Pos;
use super::model::*;
use super::path::FieldPath;
use super::raw::*;
use super::template::{offset_to_line_col, Template};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Variables every scenario can use without declaring them.
pub const BUILTIN_VARS: &[&str] = &[
    "mesh",
    "suite",
    "environment",
    "runId",
    "namespace.functions",
    "namespace.gateway",
    "ingress.httpPort",
    "ingress.httpsPort",
    "gateway.serviceAccount",
    "ingress.namespace",
    "openfaas.edition",
    "images.function",
    "images.probe",
    "images.capture",
];

/// Where a problem is.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    /// The value at a path in the file being validated.
    Value(FieldPath),
    /// The key of the last segment (unknown or duplicate names).
    Key(FieldPath),
    /// A position in another file (a manifest referenced by path).
    File(PathBuf, Pos),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub at: Where,
    pub message: String,
}

pub type ReadFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

struct Ctx<'a> {
    problems: Vec<Problem>,
    base_dir: PathBuf,
    read: ReadFile<'a>,
}

impl Ctx<'_> {
    fn err(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.problems.push(Problem {
            at: Where::Value(path.clone()),
            message: format!("{path}: {}", message.into()),
        });
    }

    fn err_key(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.problems.push(Problem {
            at: Where::Key(path.clone()),
            message: format!("{path}: {}", message.into()),
        });
    }

    fn name(&mut self, path: &FieldPath, s: &str) -> Option<Name> {
        Name::parse(s).map_err(|e| self.err(path, e)).ok()
    }

    fn duration(&mut self, path: &FieldPath, s: Option<&str>, default: Duration) -> Duration {
        match s {
            None => default,
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if d > Duration::ZERO => d,
                Ok(_) => {
                    self.err(path, "a timeout must be longer than zero");
                    default
                }
                Err(e) => {
                    self.err(
                        path,
                        format!("invalid duration {s:?} ({e}); write e.g. 90s, 2m or 1h30m"),
                    );
                    default
                }
            },
        }
    }

    /// Parses a template and checks its variables against `scope`.
    fn template(&mut self, path: &FieldPath, s: &str, scope: &Scope) -> Option<Template> {
        match Template::parse(s) {
            Err(e) => {
                self.err(path, e.message);
                None
            }
            Ok(t) => {
                if let Err(u) = t.check(&|n| scope.has(n)) {
                    self.err(path, format!("{u}; {}", scope.hint()));
                    return None;
                }
                Some(t)
            }
        }
    }
}

/// The variables visible to a template.
struct Scope<'a> {
    declared: Vec<&'a IndexMap<String, String>>,
}

impl Scope<'_> {
    fn has(&self, name: &str) -> bool {
        BUILTIN_VARS.contains(&name) || self.declared.iter().any(|m| m.contains_key(name))
    }

    fn hint(&self) -> String {
        let mut names: Vec<&str> = BUILTIN_VARS.to_vec();
        for m in &self.declared {
            names.extend(m.keys().map(String::as_str));
        }
        format!(
            "declare it under `vars` or use one of: {}",
            names.join(", ")
        )
    }
}

// ---------------------------------------------------------------- suite

pub fn suite(raw: RawSuite, source: &Path, read: ReadFile<'_>) -> Result<Suite, Vec<Problem>> {
    let base_dir = source.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Ctx {
        problems: Vec::new(),
        base_dir,
        read,
    };
    let root = FieldPath::root();
    if raw.kind != DocKind::Suite {
        cx.err(&root.key("kind"), "expected `kind: Suite`");
    }
    let name = cx.name(&root.key("name"), &raw.name);

    let cluster = cluster(
        &mut cx,
        &root.key("cluster"),
        &raw.cluster,
        raw.cluster.node_image.as_deref(),
    );
    let mesh = mesh(&mut cx, &root.key("mesh"), &raw.mesh, &raw.mesh.version);

    let openfaas = {
        let p = root.key("openfaas");
        let chart = Version::semver(&raw.openfaas.chart, false)
            .map_err(|e| cx.err(&p.key("chart"), e))
            .ok();
        let edition = match (
            raw.openfaas.edition.unwrap_or(EditionName::Ce),
            &raw.openfaas.license_file,
        ) {
            (EditionName::Ce, None) => Some(Edition::Ce),
            (EditionName::Ce, Some(_)) => {
                cx.err_key(
                    &p.key("licenseFile"),
                    "a license file is only used with `edition: pro`",
                );
                None
            }
            (EditionName::Pro, f) => Some(Edition::Pro {
                license_file: f.as_ref().map(PathBuf::from),
            }),
        };
        let ce_with_istio_sidecars = raw.openfaas.allow_ce_with_istio_sidecars.unwrap_or(false);
        if let (Some(Edition::Ce), Some(m)) = (&edition, &mesh) {
            if m.istio_sidecars() && !ce_with_istio_sidecars {
                let at = if raw.openfaas.edition.is_some() {
                    p.key("edition")
                } else {
                    p.clone()
                };
                cx.err(&at, CE_WITH_ISTIO_SIDECARS);
            }
        }
        chart.zip(edition).map(|(chart, edition)| OpenFaasSpec {
            chart,
            edition,
            ce_with_istio_sidecars,
        })
    };

    let components = {
        let p = root.key("components");
        let c = &raw.components;
        let mut ver = |key: &str, v: &Option<RawVersion>, allow_v: bool| -> Option<Version> {
            v.as_ref().and_then(|v| {
                Version::semver(&v.version, allow_v)
                    .map_err(|e| cx.err(&p.key(key).key("version"), e))
                    .ok()
            })
        };
        let components = Components {
            cert_manager: ver("certManager", &c.cert_manager, true),
            flux: ver("flux", &c.flux, true),
            sealed_secrets: ver("sealedSecrets", &c.sealed_secrets, false),
            gateway_api: ver("gatewayApi", &c.gateway_api, true),
            traefik: ver("traefik", &c.traefik, false),
        };
        if let Some(v) = &components.flux {
            agrees_with_table(
                &mut cx,
                &p.key("flux").key("version"),
                "Flux",
                v.as_str(),
                "flux",
            );
        }
        if let Some(v) = &components.sealed_secrets {
            sealed_secrets_agrees_with_table(
                &mut cx,
                &p.key("sealedSecrets").key("version"),
                v.as_str(),
            );
        }
        components
    };
    if matches!(mesh, Some(MeshSpec::Linkerd { .. })) && raw.components.gateway_api.is_none() {
        cx.err(&root.key("mesh").key("name"), LINKERD_NEEDS_GATEWAY_API);
    }
    if raw.mesh.name == MeshName::Istio
        && raw.mesh.data_plane == Some(DataPlaneName::Ambient)
        && raw.components.gateway_api.is_none()
    {
        cx.err(
            &root.key("mesh").key("dataPlane"),
            AMBIENT_NEEDS_GATEWAY_API,
        );
    }

    let mut scenarios = Vec::new();
    if raw.scenarios.is_empty() {
        cx.err(&root.key("scenarios"), "list at least one scenario");
    }
    for (i, s) in raw.scenarios.iter().enumerate() {
        let p = root.key("scenarios").index(i);
        if let Some(n) = cx.name(&p, s) {
            if scenarios.contains(&n) {
                cx.err(&p, format!("scenario {n} is listed twice"));
            } else {
                scenarios.push(n);
            }
        }
    }

    // Matrix: the product of the kubernetes and mesh axes, each cell overriding the base.
    let mut environments = Vec::new();
    if let (Some(name), Some(cluster), Some(mesh_spec)) = (&name, &cluster, &mesh) {
        match &raw.matrix {
            None => environments.push(EnvironmentSpec {
                name: name.to_string(),
                cluster: cluster.clone(),
                mesh: mesh_spec.clone(),
            }),
            Some(m) => {
                let mp = root.key("matrix");
                if m.kubernetes.is_empty() && m.mesh.is_empty() {
                    cx.err(
                        &mp,
                        "a matrix needs at least one entry under `kubernetes` or `mesh`",
                    );
                }
                if !m.kubernetes.is_empty() && !matches!(cluster, ClusterSpec::Kind { .. }) {
                    cx.err(
                        &mp.key("kubernetes"),
                        "a Kubernetes matrix needs `cluster.provider: kind`",
                    );
                }
                let mut kube_cells: Vec<(Option<String>, ClusterSpec)> = Vec::new();
                if m.kubernetes.is_empty() {
                    kube_cells.push((None, cluster.clone()));
                }
                for (i, k) in m.kubernetes.iter().enumerate() {
                    let kp = mp.key("kubernetes").index(i);
                    if kube_cells
                        .iter()
                        .any(|(n, _)| n.as_deref() == Some(k.name.as_str()))
                    {
                        cx.err(
                            &kp.key("name"),
                            format!("matrix entry {:?} is listed twice", k.name),
                        );
                    }
                    if let Some(c) = self::cluster(&mut cx, &kp, &raw.cluster, Some(&k.node_image))
                    {
                        kube_cells.push((Some(k.name.clone()), c));
                    }
                }
                let mut mesh_cells: Vec<(Option<String>, MeshSpec)> = Vec::new();
                if m.mesh.is_empty() {
                    mesh_cells.push((None, mesh_spec.clone()));
                }
                for (i, v) in m.mesh.iter().enumerate() {
                    let vp = mp.key("mesh").index(i);
                    if mesh_cells
                        .iter()
                        .any(|(n, _)| n.as_deref() == Some(v.as_str()))
                    {
                        cx.err(&vp, format!("mesh version {v:?} is listed twice"));
                    }
                    if let Some(ms) = self::mesh(&mut cx, &vp, &raw.mesh, v) {
                        mesh_cells.push((Some(v.clone()), ms));
                    }
                }
                for (kn, kc) in &kube_cells {
                    for (mn, ms) in &mesh_cells {
                        let mut label = Vec::new();
                        if let Some(k) = kn {
                            label.push(format!("k8s={k}"));
                        }
                        if let Some(v) = mn {
                            label.push(format!("mesh={v}"));
                        }
                        environments.push(EnvironmentSpec {
                            name: format!("{name}[{}]", label.join(",")),
                            cluster: kc.clone(),
                            mesh: ms.clone(),
                        });
                    }
                }
            }
        }
    }

    for k in raw.vars.keys() {
        if BUILTIN_VARS.contains(&k.as_str()) {
            let hint = if k.starts_with("images.") {
                " (set it under `images:`)"
            } else {
                ""
            };
            cx.err_key(
                &root.key("vars").key(k),
                format!("`{k}` is a built-in variable and cannot be set{hint}"),
            );
        }
    }
    let images = images(&mut cx, &root.key("images"), &raw.images);

    match (cx.problems.is_empty(), name, cluster, mesh, openfaas) {
        (true, Some(name), Some(cluster), Some(mesh), Some(openfaas)) => Ok(Suite {
            name,
            description: raw.description,
            cluster,
            mesh,
            openfaas,
            components,
            scenarios,
            environments,
            images,
            vars: raw.vars,
            source: source.to_path_buf(),
        }),
        _ => Err(cx.problems),
    }
}

/// The suite's images: each given one parsed, the others the built-in defaults.
fn images(cx: &mut Ctx, p: &FieldPath, raw: &RawImages) -> crate::images::Images {
    use crate::images::{ImageRef, ImageRole, Images};
    let mut out = Images::default();
    for (role, given) in [
        (ImageRole::Function, &raw.function),
        (ImageRole::Probe, &raw.probe),
        (ImageRole::Capture, &raw.capture),
    ] {
        if let Some(s) = given {
            match ImageRef::parse(s) {
                Ok(i) => out.set(role, i),
                Err(e) => cx.err(&p.key(role.key()), e.to_string()),
            }
        }
    }
    out
}

fn cluster(
    cx: &mut Ctx,
    p: &FieldPath,
    raw: &RawCluster,
    node_image: Option<&str>,
) -> Option<ClusterSpec> {
    match raw.provider {
        ProviderName::Kind => {
            for (k, v) in [
                ("kubeconfig", raw.kubeconfig.is_some()),
                ("context", raw.context.is_some()),
            ] {
                if v {
                    cx.err_key(
                        &p.key(k),
                        format!("`{k}` is for `provider: existing`; kind writes its own"),
                    );
                }
            }
            if raw.reuse.is_some() {
                cx.err_key(
                    &p.key("reuse"),
                    "`reuse` is for `provider: existing`; a kind cluster is new and holds nothing to reuse",
                );
            }
            let Some(img) = node_image else {
                cx.err(
                    &p.key("provider"),
                    "`provider: kind` needs `nodeImage` pinned by digest",
                );
                return None;
            };
            let image = PinnedImage::parse(img)
                .map_err(|e| cx.err(&p.key("nodeImage"), e))
                .ok()?;
            let host_ports = match &raw.host_ports {
                None => HostPorts::default(),
                Some(hp) => {
                    if hp.http == 0 || hp.https == 0 || hp.http == hp.https {
                        cx.err(
                            &p.key("hostPorts"),
                            "host ports must be two different non-zero ports",
                        );
                        return None;
                    }
                    // kind maps each host port onto the same NodePort.
                    for (k, port) in [("http", hp.http), ("https", hp.https)] {
                        if !(30000..=32767).contains(&port) {
                            cx.err(
                                &p.key("hostPorts").key(k),
                                format!("{port} is also the NodePort the ingress gets: it must be in 30000-32767 (best 30000-30085, the band Kubernetes keeps free of random NodePorts)"),
                            );
                            return None;
                        }
                    }
                    HostPorts {
                        http: hp.http,
                        https: hp.https,
                    }
                }
            };
            Some(ClusterSpec::Kind {
                node_image: image,
                host_ports,
            })
        }
        ProviderName::Existing => {
            for (k, v) in [
                ("nodeImage", raw.node_image.is_some()),
                ("hostPorts", raw.host_ports.is_some()),
            ] {
                if v {
                    cx.err_key(
                        &p.key(k),
                        format!(
                            "`{k}` is for `provider: kind`; an existing cluster is used as it is"
                        ),
                    );
                }
            }
            let mut reuse = std::collections::BTreeSet::new();
            for (i, c) in raw.reuse.iter().flatten().enumerate() {
                if !reuse.insert(*c) {
                    cx.err(
                        &p.key("reuse").index(i),
                        format!("`{}` is listed twice", c.key()),
                    );
                }
            }
            Some(ClusterSpec::Existing {
                kubeconfig: raw.kubeconfig.as_ref().map(PathBuf::from),
                context: raw.context.clone(),
                reuse,
            })
        }
    }
}

/// Why a suite may not run OpenFaaS CE under Istio sidecars (ledger OF-3, OF-4, IS-8).
pub const CE_WITH_ISTIO_SIDECARS: &str = "OpenFaaS CE cannot pass under Istio sidecars: its gateway calls functions by pod IP (openfaas/faas 0.27.13 gateway/main.go:97, faas-netes 0.18.17 pkg/k8s/proxy.go), which a sidecar sends through PassthroughCluster in plaintext with no route or identity (istio 1.30.3 pilot/pkg/networking/core/httproute.go, cluster_builder.go); use `edition: pro` (license in OPENFAAS_LICENSE_FILE), or set `allowCeWithIstioSidecars: true` to run it anyway and watch it fail";

/// `profile: ambient` without `dataPlane: ambient` would install ztunnel and label namespaces
/// for sidecar injection.
pub const AMBIENT_PROFILE_NEEDS_DATA_PLANE: &str = "profile `ambient` installs Istio's ambient data plane (istio-cni and ztunnel, no sidecars): set `dataPlane: ambient` (and drop `profile`), so that namespaces are enrolled with `istio.io/dataplane-mode=ambient` and the checks look for HBONE";

/// Why an ambient suite needs the Gateway API CRDs (IS-17): waypoints and the ingress are
/// Gateway API Gateways.
pub const AMBIENT_NEEDS_GATEWAY_API: &str = "Istio's ambient data plane needs the Gateway API CRDs: its waypoints (L7 policy, canary routes) and its ingress are Gateway API `Gateway`s (the ambient profile installs no ingress gateway); add `components.gatewayApi`";

/// Why a Linkerd suite needs the Gateway API CRDs (ledger LD-2).
pub const LINKERD_NEEDS_GATEWAY_API: &str = "Linkerd needs the Gateway API CRDs installed first: `linkerd install` refuses without them and `linkerd check` fails (linkerd2 edge-26.8.3 cli/cmd/install.go, pkg/healthcheck/healthcheck.go); add `components.gatewayApi: { version: v1.5.1 }`";

/// A suite version that the tool table (`tools.yaml`) must pin too: the CLI installs its own
/// release (istioctl, linkerd) or its own manifests (flux), so the two cannot differ.
fn agrees_with_table(cx: &mut Ctx, at: &FieldPath, what: &str, version: &str, tool: &str) {
    let Some(pinned) = crate::toolchain::table::Table::pinned().and_then(|t| t.version(tool))
    else {
        return;
    };
    if version.trim_start_matches('v') != pinned.trim_start_matches('v') {
        cx.err(
            at,
            format!(
                "{what} {version} disagrees with tools.yaml, which pins {tool} {pinned} (the CLI installs its own release): change the suite or the table so they agree"
            ),
        );
    }
}

/// The sealed-secrets chart a suite installs must be the one whose appVersion the table's
/// kubeseal is (`chart` beside kubeseal's version in tools.yaml): kubeseal seals for it.
fn sealed_secrets_agrees_with_table(cx: &mut Ctx, at: &FieldPath, chart: &str) {
    let Some(t) = crate::toolchain::table::Table::pinned() else {
        return;
    };
    let Some(e) = t.tools.get("kubeseal") else {
        return;
    };
    if let (Some(want), Some(kubeseal)) = (&e.chart, &e.version) {
        if chart != want {
            cx.err(
                at,
                format!(
                    "sealed-secrets chart {chart} disagrees with tools.yaml, which pins kubeseal {kubeseal} for chart {want}: change the suite or the table so they agree"
                ),
            );
        }
    }
}

fn mesh(cx: &mut Ctx, p: &FieldPath, raw: &RawMesh, version: &str) -> Option<MeshSpec> {
    let vpath = if p
        .0
        .last()
        .is_some_and(|s| matches!(s, super::path::Seg::Index(_)))
    {
        p.clone()
    } else {
        p.key("version")
    };
    match raw.name {
        MeshName::Istio => {
            let version = Version::semver(version, false)
                .map_err(|e| cx.err(&vpath, e))
                .ok();
            if let Some(v) = &version {
                agrees_with_table(cx, &vpath, "Istio", v.as_str(), "istioctl");
            }
            let data_plane = match raw.data_plane.unwrap_or(DataPlaneName::Sidecar) {
                DataPlaneName::Sidecar => IstioDataPlane::Sidecar,
                DataPlaneName::Ambient => IstioDataPlane::Ambient,
            };
            let install = match (raw.install.as_deref().unwrap_or("istioctl"), data_plane) {
                // istioctl's own default, and the profile with the ingress gateway the TLS
                // scenario serves through (`minimal` has none: ledger IS-3).
                ("istioctl", IstioDataPlane::Sidecar) => match raw.profile.as_deref() {
                    Some("ambient") => {
                        cx.err_key(&p.key("profile"), AMBIENT_PROFILE_NEEDS_DATA_PLANE);
                        None
                    }
                    profile => Some(IstioInstall::Istioctl {
                        profile: profile.unwrap_or("default").to_string(),
                    }),
                },
                // The ambient profile: istio-cni and ztunnel, no ingress gateway (IS-17).
                ("istioctl", IstioDataPlane::Ambient) => match raw.profile.as_deref() {
                    None | Some("ambient") => Some(IstioInstall::Istioctl {
                        profile: "ambient".into(),
                    }),
                    Some(other) => {
                        cx.err_key(
                            &p.key("profile"),
                            format!("`dataPlane: ambient` installs istioctl's `ambient` profile (istio-cni and ztunnel); profile {other:?} installs sidecars: remove `profile` or set it to `ambient`"),
                        );
                        None
                    }
                },
                ("helm", IstioDataPlane::Sidecar) => {
                    if raw.profile.is_some() {
                        cx.err_key(
                            &p.key("profile"),
                            "`profile` is an istioctl setting; remove it with `install: helm`",
                        );
                    }
                    Some(IstioInstall::Helm)
                }
                ("helm", IstioDataPlane::Ambient) => {
                    cx.err(
                        &p.key("install"),
                        "not yet: the ambient data plane is installed with `install: istioctl` only (with Helm it needs the istio-cni and ztunnel charts, which meshproof does not install yet: issue #15)",
                    );
                    None
                }
                (other, _) => {
                    cx.err(
                        &p.key("install"),
                        format!("unknown Istio install method {other:?}: use `istioctl` or `helm`"),
                    );
                    None
                }
            };
            Some(MeshSpec::Istio {
                version: version?,
                install: install?,
                data_plane,
            })
        }
        MeshName::Linkerd => {
            if raw.profile.is_some() {
                cx.err_key(&p.key("profile"), "`profile` is an Istio setting");
            }
            if raw.data_plane.is_some() {
                cx.err_key(&p.key("dataPlane"), "`dataPlane` is an Istio setting");
            }
            let version = Version::linkerd(version)
                .map_err(|e| cx.err(&vpath, e))
                .ok();
            if let Some(v) = &version {
                agrees_with_table(cx, &vpath, "Linkerd", v.as_str(), "linkerd");
            }
            let install = match raw.install.as_deref().unwrap_or("cli") {
                "cli" => Some(LinkerdInstall::Cli),
                "helm" => Some(LinkerdInstall::Helm),
                other => {
                    cx.err(
                        &p.key("install"),
                        format!("unknown Linkerd install method {other:?}: use `cli` or `helm`"),
                    );
                    None
                }
            };
            Some(MeshSpec::Linkerd {
                version: version?,
                install: install?,
            })
        }
    }
}

// ---------------------------------------------------------------- scenario

pub fn scenario(
    raw: RawScenario,
    source: &Path,
    read: ReadFile<'_>,
) -> Result<Scenario, Vec<Problem>> {
    let base_dir = source.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut cx = Ctx {
        problems: Vec::new(),
        base_dir,
        read,
    };
    let root = FieldPath::root();
    if raw.kind != DocKind::Scenario {
        cx.err(&root.key("kind"), "expected `kind: Scenario`");
    }
    let name = cx.name(&root.key("name"), &raw.name);
    let meshes: Vec<DataPlane> = match &raw.meshes {
        None => default_data_planes(&raw.steps),
        Some(list) => {
            if list.is_empty() {
                cx.err(
                    &root.key("meshes"),
                    "list at least one mesh, or leave `meshes` out for all",
                );
            }
            let mut out: Vec<DataPlane> = Vec::new();
            for (i, m) in list.iter().enumerate() {
                let m = DataPlane::from(*m);
                if out.contains(&m) {
                    cx.err(&root.key("meshes").index(i), format!("{m} is listed twice"));
                }
                out.push(m);
            }
            out
        }
    };
    for k in raw.vars.keys() {
        if BUILTIN_VARS.contains(&k.as_str()) {
            cx.err_key(
                &root.key("vars").key(k),
                format!("`{k}` is a built-in variable and cannot be redeclared"),
            );
        }
    }
    if raw.steps.is_empty() {
        cx.err(&root.key("steps"), "a scenario needs at least one step");
    }
    let mut steps = Vec::new();
    let mut has_check = false;
    let mut restore_at: Option<FieldPath> = None;
    for (i, s) in raw.steps.iter().enumerate() {
        let p = root.key("steps").index(i);
        let step = match s {
            RawStep::Apply(m) => {
                manifests(&mut cx, &p.key("apply"), m, &raw.vars, &meshes).map(Step::Apply)
            }
            RawStep::Delete(m) => {
                manifests(&mut cx, &p.key("delete"), m, &raw.vars, &meshes).map(Step::Delete)
            }
            RawStep::Deploy(d) => deploy(&mut cx, &p.key("deploy"), d, &raw.vars).map(Step::Deploy),
            RawStep::Wait(w) => {
                wait(&mut cx, &p.key("wait"), w, &raw.vars, &meshes).map(Step::Wait)
            }
            RawStep::Check(c) => {
                has_check = true;
                if matches!(c, RawCheck::Restore(_)) {
                    restore_at = Some(p.key("check").key("restore"));
                }
                check(&mut cx, &p.key("check"), c, &raw.vars, &meshes).map(Step::Check)
            }
        };
        if let Some(step) = step {
            steps.push(step);
        }
    }
    if !raw.steps.is_empty() && !has_check {
        cx.err(
            &root.key("steps"),
            "a scenario needs at least one `check` step: without one it asserts nothing",
        );
    }
    let lifecycle = match (raw.lifecycle, &restore_at) {
        (Some(LifecycleName::Shared), Some(p)) => {
            cx.err(
                p,
                "a restore check destroys the cluster: the scenario needs `lifecycle: dedicated`",
            );
            Lifecycle::Shared
        }
        (Some(LifecycleName::Dedicated), _) | (None, Some(_)) => Lifecycle::Dedicated,
        _ => Lifecycle::Shared,
    };
    if let Some(reason) = &raw.ignore {
        if reason.trim().is_empty() {
            cx.err(
                &root.key("ignore"),
                "give the reason the scenario is ignored",
            );
        }
    }
    match (cx.problems.is_empty(), name) {
        (true, Some(name)) => Ok(Scenario {
            name,
            description: raw.description,
            meshes,
            lifecycle,
            ignore: raw.ignore,
            vars: raw.vars,
            steps,
            source: source.to_path_buf(),
        }),
        _ => Err(cx.problems),
    }
}

/// Why a data plane's variant or wait is never used.
fn not_run_on(dp: DataPlane) -> String {
    if dp == DataPlane::IstioAmbient {
        format!("the scenario does not run on {dp} (its `meshes`; without `meshes`, only when every per-mesh manifest gives `istioAmbient`)")
    } else {
        format!("the scenario does not run on {dp} (its `meshes`)")
    }
}

/// The data planes a scenario without `meshes` runs on: Istio sidecars and Linkerd always (a
/// per-mesh block must then give both), and Istio ambient only when every per-mesh block gives
/// an `istioAmbient` variant. A scenario written for sidecars is not silently run on ambient, and
/// the sidecar `istio` variant is never used there; a suite that lists it anyway gets the
/// catalog's "does not run on istio-ambient".
fn default_data_planes(steps: &[RawStep]) -> Vec<DataPlane> {
    let per_mesh =
        |m: &RawManifests| m.istio.is_some() || m.linkerd.is_some() || m.istio_ambient.is_some();
    let ambient = steps
        .iter()
        .filter_map(|s| match s {
            RawStep::Apply(m) | RawStep::Delete(m) => Some(m),
            RawStep::Check(RawCheck::Deny(d)) => Some(&*d.policy),
            _ => None,
        })
        .filter(|m| per_mesh(m))
        .all(|m| m.istio_ambient.is_some());
    DataPlane::ALL
        .into_iter()
        .filter(|d| ambient || *d != DataPlane::IstioAmbient)
        .collect()
}

fn source(
    cx: &mut Ctx,
    p: &FieldPath,
    path: &Option<String>,
    inline: &Option<String>,
    scope: &Scope,
) -> Option<Source> {
    match (path, inline) {
        (Some(_), Some(_)) => {
            cx.err(p, "give either `path` or `inline`, not both");
            None
        }
        (None, None) => {
            cx.err(p, "give the manifest as `path: FILE` or `inline: |`");
            None
        }
        (None, Some(text)) => {
            let t = cx.template(&p.key("inline"), text, scope)?;
            if let Err((_, msg)) = super::manifest_yaml::check_manifest_docs(&t) {
                cx.err(&p.key("inline"), msg);
                return None;
            }
            Some(Source::Inline(t))
        }
        (Some(rel), None) => {
            let full = cx.base_dir.join(rel);
            let text = match (cx.read)(&full) {
                Ok(t) => t,
                Err(e) => {
                    cx.err(
                        &p.key("path"),
                        format!("cannot read manifest {}: {e}", full.display()),
                    );
                    return None;
                }
            };
            match Template::parse(&text) {
                Err(e) => {
                    let (line, col) = offset_to_line_col(&text, e.offset);
                    cx.problems.push(Problem {
                        at: Where::File(full, Pos { line, col }),
                        message: e.message,
                    });
                    None
                }
                Ok(t) => {
                    if let Err(u) = t.check(&|n| scope.has(n)) {
                        let (line, col) = offset_to_line_col(&text, u.offset);
                        cx.problems.push(Problem {
                            at: Where::File(full, Pos { line, col }),
                            message: format!(
                                "{u} (manifest referenced from {p}); {}",
                                scope.hint()
                            ),
                        });
                        return None;
                    }
                    if let Err(e) = super::manifest_yaml::check_manifest_docs(&t) {
                        cx.problems.push(Problem {
                            at: Where::File(full.clone(), e.0),
                            message: e.1,
                        });
                        return None;
                    }
                    Some(Source::File {
                        path: PathBuf::from(rel),
                        text: t,
                    })
                }
            }
        }
    }
}

fn manifests(
    cx: &mut Ctx,
    p: &FieldPath,
    m: &RawManifests,
    vars: &IndexMap<String, String>,
    meshes: &[DataPlane],
) -> Option<Manifests> {
    let scope = Scope {
        declared: vec![vars, &m.vars],
    };
    let common = m.path.is_some() || m.inline.is_some();
    let per_mesh = m.istio.is_some() || m.linkerd.is_some() || m.istio_ambient.is_some();
    let sources = match (common, per_mesh) {
        (true, true) => {
            cx.err(p, "give one manifest for all meshes (`path`/`inline`) or one per mesh (`istio`/`istioAmbient`/`linkerd`), not both");
            return None;
        }
        (false, false) => {
            cx.err(
                p,
                "give the manifest as `path`, `inline`, or per mesh under `istio`, `istioAmbient` and `linkerd`",
            );
            return None;
        }
        (true, false) => ManifestSources::Common(source(cx, p, &m.path, &m.inline, &scope)?),
        (false, true) => {
            let mut one = |dp: DataPlane, s: &Option<RawSource>| -> Option<Option<Source>> {
                match s {
                    None if meshes.contains(&dp) => {
                        cx.err(
                            p,
                            format!(
                                "no `{}` manifest, but the scenario runs on {dp}",
                                dp.manifest_key()
                            ),
                        );
                        None
                    }
                    None => Some(None),
                    Some(_) if !meshes.contains(&dp) => {
                        cx.err_key(
                            &p.key(dp.manifest_key()),
                            format!("{}, so this manifest is never used", not_run_on(dp)),
                        );
                        None
                    }
                    Some(s) => {
                        source(cx, &p.key(dp.manifest_key()), &s.path, &s.inline, &scope).map(Some)
                    }
                }
            };
            let istio = one(DataPlane::IstioSidecar, &m.istio);
            let linkerd = one(DataPlane::Linkerd, &m.linkerd);
            let istio_ambient = one(DataPlane::IstioAmbient, &m.istio_ambient);
            ManifestSources::PerMesh(Box::new(PerMeshSources {
                istio: istio?,
                linkerd: linkerd?,
                istio_ambient: istio_ambient?,
            }))
        }
    };
    Some(Manifests {
        sources,
        vars: m.vars.clone(),
    })
}

fn deploy(
    cx: &mut Ctx,
    p: &FieldPath,
    d: &RawDeploy,
    vars: &IndexMap<String, String>,
) -> Option<DeploySpec> {
    let scope = Scope {
        declared: vec![vars],
    };
    let function = cx.name(&p.key("function"), &d.function);
    let image = cx.template(&p.key("image"), &d.image, &scope);
    for (k, v) in &d.env {
        cx.template(&p.key("env").key(k), v, &scope);
    }
    Some(DeploySpec {
        function: function?,
        image: image?,
        env: d.env.clone(),
        labels: d.labels.clone(),
        annotations: d.annotations.clone(),
        meshed: d.meshed.unwrap_or(true),
    })
}

fn wait(
    cx: &mut Ctx,
    p: &FieldPath,
    w: &RawWait,
    vars: &IndexMap<String, String>,
    meshes: &[DataPlane],
) -> Option<WaitSpec> {
    let scope = Scope {
        declared: vec![vars],
    };
    let target = cx.template(&p.key("target"), &w.target, &scope);
    let namespace = match &w.namespace {
        Some(ns) => Some(cx.template(&p.key("namespace"), ns, &scope)?),
        None => None,
    };
    let condition = match (w.wait_for, &w.condition) {
        (WaitFor::Condition, None) => {
            cx.err(
                &p.key("for"),
                "`for: condition` needs `condition: Type=Status` (e.g. Ready=True)",
            );
            None
        }
        (WaitFor::Condition, Some(c)) => match c.split_once('=') {
            Some((t, s)) if !t.is_empty() && matches!(s, "True" | "False" | "Unknown") => {
                Some((t.to_string(), s.to_string()))
            }
            _ => {
                cx.err(
                    &p.key("condition"),
                    format!("condition {c:?} must be Type=True, Type=False or Type=Unknown"),
                );
                None
            }
        },
        (_, Some(_)) => {
            cx.err_key(
                &p.key("condition"),
                "`condition` is only used with `for: condition`",
            );
            None
        }
        (_, None) => None,
    };
    if matches!(
        w.wait_for,
        WaitFor::Rollout | WaitFor::Condition | WaitFor::Established
    ) && !w.target.contains('/')
    {
        cx.err(
            &p.key("target"),
            format!(
                "target {:?} must be `kind/name`, e.g. deployment/gateway",
                w.target
            ),
        );
    }
    let timeout = cx.duration(&p.key("timeout"), Some(&w.timeout), Duration::from_secs(60));
    let mesh = w.mesh.map(DataPlane::from);
    if let Some(m) = mesh.filter(|m| !meshes.contains(m)) {
        cx.err(&p.key("mesh"), not_run_on(m));
    }
    Some(WaitSpec {
        wait_for: w.wait_for,
        target: target?,
        namespace,
        condition,
        timeout,
        mesh,
    })
}

fn check(
    cx: &mut Ctx,
    p: &FieldPath,
    c: &RawCheck,
    vars: &IndexMap<String, String>,
    meshes: &[DataPlane],
) -> Option<Check> {
    let scope = Scope {
        declared: vec![vars],
    };
    match c {
        RawCheck::Mtls(m) => {
            let p = p.key("mtls");
            let function = cx.name(&p.key("function"), &m.function);
            let control = cx.name(&p.key("control"), &m.control);
            if function.is_some() && function == control {
                cx.err(
                    &p.key("control"),
                    "the control must be a different (unmeshed) function",
                );
            }
            let requests = m.requests.unwrap_or(20);
            if requests == 0 || requests > 10_000 {
                cx.err(
                    &p.key("requests"),
                    format!("requests must be from 1 to 10000, got {requests}"),
                );
            }
            let timeout = cx.duration(
                &p.key("timeout"),
                m.timeout.as_deref(),
                Duration::from_secs(120),
            );
            Some(Check::Mtls(MtlsCheck {
                function: function?,
                control: control?,
                requests,
                port: m.port.unwrap_or(8080),
                strict: m.strict.unwrap_or(true),
                timeout,
            }))
        }
        RawCheck::Deny(d) => {
            let p = p.key("deny");
            let policy = manifests(cx, &p.key("policy"), &d.policy, vars, meshes);
            if d.expect.is_empty() {
                cx.err(&p.key("expect"), "list at least one probe expectation");
            }
            let mut expectations = Vec::new();
            let mut any_denied = false;
            for (i, e) in d.expect.iter().enumerate() {
                let ep = p.key("expect").index(i);
                if d.expect[..i].iter().any(|o| o.name == e.name) {
                    cx.err(
                        &ep.key("name"),
                        format!("probe name {:?} is used twice", e.name),
                    );
                }
                let before: Allowance = e.before.unwrap_or(Expectation::Allowed).into();
                let after: Allowance = e.after.into();
                any_denied |= after == Allowance::Denied;
                if e.enforcer.is_some() && after != Allowance::Denied {
                    cx.err(
                        &ep.key("enforcer"),
                        "`enforcer` names who answers a denial: it goes with `after: denied`",
                    );
                }
                if let Some(url) = cx.template(&ep.key("url"), &e.url, &scope) {
                    let scheme_ok =
                        url.source().starts_with("http://") || url.source().starts_with("https://");
                    if !scheme_ok {
                        cx.err(&ep.key("url"), "probe URLs start with http:// or https://");
                    }
                    expectations.push(ProbeExpectation {
                        name: e.name.clone(),
                        from: e.from.unwrap_or(ProbeFrom::Probe),
                        url,
                        before,
                        after,
                        enforcer: e.enforcer,
                    });
                }
            }
            if !d.expect.is_empty() && !any_denied {
                cx.err(
                    &p.key("expect"),
                    "a deny check needs at least one probe that must be `denied` after the policy",
                );
            }
            let ns_text = d
                .probe
                .as_ref()
                .and_then(|p| p.namespace.clone())
                .unwrap_or_else(|| "${namespace.functions}".into());
            let namespace = cx.template(&p.key("probe").key("namespace"), &ns_text, &scope);
            let probe = namespace.map(|namespace| Probe {
                namespace,
                service_account: d
                    .probe
                    .as_ref()
                    .and_then(|p| p.service_account.clone())
                    .unwrap_or_else(|| "default".into()),
                image: d.probe.as_ref().and_then(|p| p.image.clone()),
            });
            let timeout = cx.duration(
                &p.key("timeout"),
                d.timeout.as_deref(),
                Duration::from_secs(10),
            );
            Some(Check::Deny(DenyCheck {
                policy: policy?,
                probe: probe?,
                expectations,
                timeout,
            }))
        }
        RawCheck::Canary(c) => {
            let p = p.key("canary");
            let function = cx.name(&p.key("function"), &c.function);
            let mut variants = Vec::new();
            let mut ok = true;
            for (i, v) in c.variants.iter().enumerate() {
                let vp = p.key("variants").index(i);
                let Some(weight) = u8::try_from(v.weight).ok().and_then(Weight::new) else {
                    cx.err(
                        &vp.key("weight"),
                        format!("weight must be from 0 to 100, got {}", v.weight),
                    );
                    ok = false;
                    continue;
                };
                match regex::Regex::new(&v.pattern) {
                    Ok(pattern) => variants.push(Variant {
                        name: v.name.clone(),
                        pattern,
                        weight,
                    }),
                    Err(e) => {
                        cx.err(
                            &vp.key("pattern"),
                            format!("invalid regular expression: {e}"),
                        );
                        ok = false;
                    }
                }
            }
            let split = if ok {
                let weights: Vec<String> = variants
                    .iter()
                    .map(|v| v.weight.percent().to_string())
                    .collect();
                Split::new(variants)
                    .map_err(|e| match e {
                        // Show the addition, so the fix is obvious.
                        crate::check::canary::spec::SpecError::WeightSum(sum) => cx.err(
                            &p.key("variants"),
                            format!(
                                "weights must sum to 100, got {} = {sum}",
                                weights.join(" + ")
                            ),
                        ),
                        other => cx.err(&p.key("variants"), other.to_string()),
                    })
                    .ok()
            } else {
                None
            };
            let tolerance = Tolerance::from_points(c.tolerance)
                .ok_or_else(|| {
                    cx.err(
                        &p.key("tolerance"),
                        format!(
                            "tolerance must be in (0, 50) percentage points, got {}",
                            c.tolerance
                        ),
                    )
                })
                .ok();
            let confidence = Confidence::new(c.confidence)
                .ok_or_else(|| {
                    cx.err(
                        &p.key("confidence"),
                        format!("confidence must be in (0.5, 1), got {}", c.confidence),
                    )
                })
                .ok();
            let max_requests = c.max_requests.unwrap_or(2000);
            if !(10..=100_000).contains(&max_requests) {
                cx.err(
                    &p.key("maxRequests"),
                    format!("maxRequests must be from 10 to 100000, got {max_requests}"),
                );
            }
            let timeout = cx.duration(
                &p.key("timeout"),
                c.timeout.as_deref(),
                Duration::from_secs(300),
            );
            Some(Check::Canary(CanaryCheck {
                function: function?,
                split: split?,
                tolerance: tolerance?,
                confidence: confidence?,
                max_requests,
                converge: c.converge.unwrap_or(10),
                timeout,
            }))
        }
        RawCheck::Tls(t) => {
            let p = p.key("tls");
            let host = cx.template(&p.key("host"), &t.host, &scope);
            let path = t.path.clone().unwrap_or_else(|| "/".into());
            if !path.starts_with('/') {
                cx.err(&p.key("path"), "path must start with /");
            }
            if t.min_days == 0 {
                cx.err(
                    &p.key("minDays"),
                    "minDays must be at least 1 (set it to the certificate's renewBefore)",
                );
            }
            let timeout = cx.duration(
                &p.key("timeout"),
                t.timeout.as_deref(),
                Duration::from_secs(10),
            );
            Some(Check::Tls(TlsCheck {
                host: host?,
                path,
                ca_secret: SecretKeyRef {
                    namespace: t.ca_secret.namespace.clone(),
                    name: t.ca_secret.name.clone(),
                    key: t.ca_secret.key.clone().unwrap_or_else(|| "ca.crt".into()),
                },
                min_days: t.min_days,
                min_protocol: t.min_protocol.map(Into::into).unwrap_or(MinProtocol::Tls12),
                timeout,
            }))
        }
        RawCheck::Restore(r) => {
            let p = p.key("restore");
            let mut functions = Vec::new();
            for (i, f) in r.functions.iter().enumerate() {
                if let Some(n) = cx.name(&p.key("functions").index(i), f) {
                    functions.push(n);
                }
            }
            if r.functions.is_empty() {
                cx.err(
                    &p.key("functions"),
                    "list the functions that must come back",
                );
            }
            if r.sealed_secrets.is_empty() {
                cx.err(
                    &p.key("sealedSecrets"),
                    "list at least one SealedSecret: restoring the key is the point",
                );
            }
            let max_recovery = r
                .max_recovery
                .as_deref()
                .map(|s| cx.duration(&p.key("maxRecovery"), Some(s), Duration::from_secs(1800)));
            Some(Check::Restore(RestoreCheck {
                functions,
                sealed_secrets: r
                    .sealed_secrets
                    .iter()
                    .map(|s| (s.namespace.clone(), s.name.clone()))
                    .collect(),
                max_recovery,
            }))
        }
    }
}
