//! Preflight: can this machine run a real environment, and if not, what exactly is missing?
//!
//! The answer drives three things: `meshproof doctor`, the banner `cargo test --test e2e` prints,
//! and whether each e2e trial runs, is ignored (here, without Docker) or fails
//! (`MESHPROOF_REQUIRE_CLUSTER=1`, the nightly CI).

use crate::process::tools::Tool;
use crate::process::Cmd;
use crate::scenario::{
    Catalog, ClusterSpec, Component, Edition, EnvironmentSpec, Mesh, Suite, LICENSE_FILE_ENV,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Something an environment needs from the machine.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Requirement {
    /// A CLI on PATH.
    Tool(Tool),
    /// A running Docker daemon (kind runs its nodes as containers).
    DockerDaemon,
    /// A kubeconfig for `provider: existing`.
    Kubeconfig(Option<PathBuf>),
    /// An OpenFaaS Pro license file: the suite's `licenseFile`, else `$OPENFAAS_LICENSE_FILE`.
    ProLicense(Option<PathBuf>),
}

/// Where the OpenFaaS Pro license is: the suite's file, else the one `$OPENFAAS_LICENSE_FILE`
/// names. `Err` says what to set.
pub fn license_path(suite_file: Option<&Path>) -> Result<PathBuf, String> {
    match suite_file {
        Some(p) => Ok(p.to_path_buf()),
        None => std::env::var_os(LICENSE_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                format!("no OpenFaaS Pro license: set {LICENSE_FILE_ENV} to the license file (or `openfaas.licenseFile` in the suite)")
            }),
    }
}

/// What every environment of the catalog's suites needs.
pub fn requirements(catalog: &Catalog) -> BTreeMap<Requirement, BTreeSet<String>> {
    let mut out: BTreeMap<Requirement, BTreeSet<String>> = BTreeMap::new();
    for suite in &catalog.suites {
        for env in &suite.environments {
            for r in env_requirements(suite, env, catalog) {
                out.entry(r).or_default().insert(env.name.clone());
            }
        }
    }
    out
}

/// What one environment needs.
pub fn env_requirements(
    suite: &Suite,
    env: &EnvironmentSpec,
    catalog: &Catalog,
) -> BTreeSet<Requirement> {
    let mut r = BTreeSet::new();
    match &env.cluster {
        ClusterSpec::Kind { .. } => {
            r.insert(Requirement::Tool(Tool::Docker));
            r.insert(Requirement::DockerDaemon);
            r.insert(Requirement::Tool(Tool::Kind));
        }
        ClusterSpec::Existing { kubeconfig, .. } => {
            r.insert(Requirement::Kubeconfig(kubeconfig.clone()));
        }
    }
    r.insert(Requirement::Tool(Tool::Helm));
    if let Edition::Pro { license_file } = &suite.openfaas.edition {
        r.insert(Requirement::ProLicense(license_file.clone()));
    }
    match env.mesh.mesh() {
        Mesh::Istio => r.insert(Requirement::Tool(Tool::Istioctl)),
        Mesh::Linkerd => r.insert(Requirement::Tool(Tool::Linkerd)),
    };
    let needs: Vec<Component> = suite
        .scenarios
        .iter()
        .filter_map(|n| catalog.scenario(n))
        .flat_map(|s| s.needs(env.mesh.mesh()))
        .collect();
    if needs.contains(&Component::Flux) {
        r.insert(Requirement::Tool(Tool::Flux));
        r.insert(Requirement::Tool(Tool::Git));
    }
    if needs.contains(&Component::SealedSecrets) {
        r.insert(Requirement::Tool(Tool::Kubeseal));
    }
    r
}

/// The machine's answer to one requirement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub requirement: Requirement,
    pub ok: bool,
    /// Version or location when found.
    pub detail: String,
    /// How to fix it when missing.
    pub hint: Option<String>,
    /// The releases the suites pin for this tool (empty when none is pinned).
    pub want: Vec<String>,
}

impl Finding {
    pub fn label(&self) -> String {
        match &self.requirement {
            Requirement::Tool(t) => t.program().to_string(),
            Requirement::DockerDaemon => "docker daemon".into(),
            Requirement::Kubeconfig(_) => "kubeconfig".into(),
            Requirement::ProLicense(_) => "OpenFaaS Pro license".into(),
        }
    }
}

/// Checks one requirement, with short timeouts: preflight must never hang.
pub async fn check(req: &Requirement) -> Finding {
    match req {
        Requirement::Tool(t) => match crate::process::tools::find(t.program()) {
            Err(_) => Finding {
                requirement: req.clone(),
                want: Vec::new(),
                ok: false,
                detail: "not found on PATH".into(),
                hint: Some(t.hint()),
            },
            Ok(path) => {
                let version = Cmd::new(t.program())
                    .args(t.version_args().iter().copied())
                    .timeout(Duration::from_secs(10))
                    .run_unchecked()
                    .await
                    .map(|o| {
                        let s = if o.stdout.is_empty() {
                            String::from_utf8_lossy(&o.stderr).into_owned()
                        } else {
                            o.stdout_str()
                        };
                        s.lines().next().unwrap_or("").trim().to_string()
                    })
                    .unwrap_or_else(|e| format!("version unknown ({e})"));
                Finding {
                    requirement: req.clone(),
                    want: Vec::new(),
                    ok: true,
                    detail: format!("{version} ({})", path.display()),
                    hint: None,
                }
            }
        },
        Requirement::DockerDaemon => {
            let res = Cmd::new("docker")
                .args(["info", "--format", "{{.ServerVersion}}"])
                .timeout(Duration::from_secs(10))
                .run()
                .await;
            match res {
                Ok(o) if !o.stdout_str().trim().is_empty() => {
                    Finding { requirement: req.clone(), want: Vec::new(), ok: true, detail: format!("server {}", o.stdout_str().trim()), hint: None }
                }
                Ok(_) => Finding {
                    requirement: req.clone(), want: Vec::new(),
                    ok: false,
                    detail: "`docker info` printed no server version".into(),
                    hint: Some("start the Docker daemon (e.g. `sudo systemctl start docker`)".into()),
                },
                Err(e) => Finding {
                    requirement: req.clone(), want: Vec::new(),
                    ok: false,
                    detail: first_line(&e.to_string()),
                    hint: Some("kind needs a running Docker daemon: start it (e.g. `sudo systemctl start docker`) or use `provider: existing`".into()),
                },
            }
        }
        Requirement::ProLicense(file) => check_license(req, file.as_deref()),
        Requirement::Kubeconfig(path) => {
            let resolved = path
                .clone()
                .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config"))
                });
            match resolved {
                Some(p) if p.is_file() => Finding {
                    requirement: req.clone(),
                    want: Vec::new(),
                    ok: true,
                    detail: p.display().to_string(),
                    hint: None,
                },
                Some(p) => Finding {
                    requirement: req.clone(),
                    want: Vec::new(),
                    ok: false,
                    detail: format!("{} does not exist", p.display()),
                    hint: Some("set `cluster.kubeconfig` in the suite or export KUBECONFIG".into()),
                },
                None => Finding {
                    requirement: req.clone(),
                    want: Vec::new(),
                    ok: false,
                    detail: "no kubeconfig given".into(),
                    hint: Some("set `cluster.kubeconfig` in the suite or export KUBECONFIG".into()),
                },
            }
        }
    }
}

/// A Pro license file is there and not empty. Its content is never read into the finding.
fn check_license(req: &Requirement, file: Option<&Path>) -> Finding {
    let hint = format!(
        "OpenFaaS Pro suites need a license (the Istio sidecar suite runs Pro: the CE gateway calls functions by pod IP, around the sidecars' mTLS and routes); put it in a file and export {LICENSE_FILE_ENV}=PATH"
    );
    let finding = |ok: bool, detail: String| Finding {
        want: Vec::new(),
        requirement: req.clone(),
        ok,
        detail,
        hint: (!ok).then(|| hint.clone()),
    };
    match license_path(file) {
        Err(e) => finding(false, e),
        Ok(p) => match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.len() > 0 => finding(true, p.display().to_string()),
            Ok(_) => finding(false, format!("{} is empty or not a file", p.display())),
            Err(e) => finding(false, format!("{}: {e}", p.display())),
        },
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(160).collect()
}

/// All findings for a catalog, and which environments each missing piece blocks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub findings: Vec<(Finding, BTreeSet<String>)>,
}

/// The release the tool table (`tools.yaml`) pins for `tool`, if it pins one. `validate`
/// refuses suites whose Istio, Linkerd, Flux or sealed-secrets versions disagree with it, so the
/// mesh CLIs held to it are held to the suites' meshes too.
pub fn pins(tool: Tool) -> BTreeSet<String> {
    crate::toolchain::table::Table::pinned()
        .and_then(|t| t.version(tool.program()))
        .map(|v| BTreeSet::from([v.to_string()]))
        .unwrap_or_default()
}

/// The pinned tools (tools.yaml names and versions) environment `env` needs: the CLIs of its
/// requirements, and kubectl of its kind node image's Kubernetes release (for people and the
/// nightly; meshproof itself talks to the API).
pub fn pinned_tools(
    suite: &Suite,
    env: &EnvironmentSpec,
    catalog: &Catalog,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in env_requirements(suite, env, catalog) {
        if let Requirement::Tool(t) = r {
            if let Some(v) = pins(t).into_iter().next() {
                out.push((t.program().to_string(), v));
            }
        }
    }
    if let ClusterSpec::Kind { node_image, .. } = &env.cluster {
        if let Some(tag) = node_image.kube_version_tag() {
            out.push(("kubectl".to_string(), tag.to_string()));
        }
    }
    out
}

/// Holds a found tool to the pins: a version that reports none of them is not ok.
fn hold_to_pins(mut f: Finding, pins: &BTreeSet<String>) -> Finding {
    if pins.is_empty() {
        return f;
    }
    let want: Vec<String> = pins.iter().cloned().collect();
    f.want = want.clone();
    if f.ok
        && !pins
            .iter()
            .all(|p| crate::stack::actions::reports_version(&f.detail, p))
    {
        f.ok = false;
        f.hint = Some(format!(
            "run `meshproof tools install` or install {} {} yourself (the pinned release: another version would install or certify something else)",
            f.label(),
            want.join(" and ")
        ));
    }
    f
}

impl Report {
    pub async fn gather(catalog: &Catalog) -> Report {
        let reqs = requirements(catalog);
        let mut findings = Vec::new();
        for (req, envs) in reqs {
            let mut f = check(&req).await;
            if let Requirement::Tool(t) = req {
                f = hold_to_pins(f, &pins(t));
            }
            findings.push((f, envs));
        }
        Report { findings }
    }

    /// Missing pieces that block `env`, as short labels.
    pub fn missing_for(&self, env: &str) -> Vec<String> {
        self.findings
            .iter()
            .filter(|(f, envs)| !f.ok && envs.contains(env))
            .map(|(f, _)| {
                if f.want.is_empty() || f.detail == "not found on PATH" {
                    f.label()
                } else {
                    format!("{} of the pinned release {}", f.label(), f.want.join(", "))
                }
            })
            .collect()
    }

    pub fn all_ok(&self) -> bool {
        self.findings.iter().all(|(f, _)| f.ok)
    }

    /// The banner: one line per missing piece with how to get it.
    pub fn banner(&self) -> Option<String> {
        let missing: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|(f, _)| !f.ok)
            .map(|(f, _)| f)
            .collect();
        if missing.is_empty() {
            return None;
        }
        let mut s = String::from(
            "meshproof preflight: this machine cannot provision the environments; missing:\n",
        );
        for f in missing {
            s.push_str(&format!(
                "  - {}: {} — {}\n",
                f.label(),
                f.detail,
                f.hint.as_deref().unwrap_or("")
            ));
        }
        s.push_str("  (run `meshproof doctor` for details; MESHPROOF_REQUIRE_CLUSTER=1 turns this into a failure)\n");
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pro_license_must_be_a_non_empty_file_and_is_never_read_into_the_finding() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("license");
        let req = |p: &Path| Requirement::ProLicense(Some(p.to_path_buf()));
        let missing = check_license(&req(&file), Some(&file));
        assert!(!missing.ok && missing.hint.as_deref().unwrap().contains(LICENSE_FILE_ENV));
        std::fs::write(&file, "").unwrap();
        assert!(!check_license(&req(&file), Some(&file)).ok);
        std::fs::write(&file, "secret-license-text").unwrap();
        let found = check_license(&req(&file), Some(&file));
        assert!(found.ok, "{found:?}");
        assert!(!format!("{found:?}").contains("secret-license-text"));
        assert!(
            !check_license(&req(dir.path()), Some(dir.path())).ok,
            "a directory"
        );
    }

    /// The table and the shipped suites agree (validate enforces it; this says which pairs):
    /// each mesh's CLI, flux, and kubeseal's chart; kubectl follows each cell's node image.
    #[test]
    fn the_shipped_suites_agree_with_the_tool_table() {
        let c =
            crate::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let t = crate::toolchain::table::Table::committed().unwrap();
        for suite in &c.suites {
            for env in &suite.environments {
                let (tool, v) = match &env.mesh {
                    crate::scenario::MeshSpec::Istio { version, .. } => ("istioctl", version),
                    crate::scenario::MeshSpec::Linkerd { version, .. } => ("linkerd", version),
                };
                assert_eq!(t.version(tool), Some(v.as_str()), "{}", env.name);
                let tools: BTreeMap<String, String> =
                    pinned_tools(suite, env, &c).into_iter().collect();
                assert_eq!(tools.get(tool), Some(&v.to_string()));
                let ClusterSpec::Kind { node_image, .. } = &env.cluster else {
                    panic!("kind")
                };
                assert_eq!(
                    tools.get("kubectl").map(String::as_str),
                    node_image.kube_version_tag()
                );
                for other in ["kind", "helm", "flux", "kubeseal"] {
                    assert_eq!(
                        tools.get(other).map(String::as_str),
                        t.version(other),
                        "{other}"
                    );
                }
                assert!(!tools.contains_key(if tool == "istioctl" {
                    "linkerd"
                } else {
                    "istioctl"
                }));
            }
            let flux = suite.components.flux.as_ref().unwrap().to_string();
            assert_eq!(flux.trim_start_matches('v'), t.version("flux").unwrap());
            assert_eq!(
                suite
                    .components
                    .sealed_secrets
                    .as_ref()
                    .map(|v| v.to_string()),
                t.tools["kubeseal"].chart.clone()
            );
        }
    }

    #[test]
    fn pro_suites_require_their_license() {
        let c =
            crate::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let istio = c.suite("istio").unwrap();
        let reqs = env_requirements(istio, &istio.environments[0], &c);
        assert!(reqs.contains(&Requirement::ProLicense(None)), "{reqs:?}");
        let linkerd = c.suite("linkerd").unwrap();
        let reqs = env_requirements(linkerd, &linkerd.environments[0], &c);
        assert!(!reqs.iter().any(|r| matches!(r, Requirement::ProLicense(_))));
    }
}
