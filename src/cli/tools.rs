//! `meshproof tools install|path|list`: the pinned CLIs of `tools.yaml`, installed into the
//! per-user cache and verified against `tools.lock` (see [`crate::toolchain`]).

use super::project;
use crate::preflight;
use crate::scenario::{Catalog, ClusterSpec};
use crate::toolchain::download::Limits;
use crate::toolchain::install::{Installer, Outcome, Request, VerifiedBy};
use crate::toolchain::table::{Table, TOOLS};
use crate::toolchain::{install_dir, Platform};
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Debug, clap::Subcommand)]
pub enum ToolsCmd {
    /// Download, verify and install the pinned CLIs into $XDG_CACHE_HOME/meshproof/tools.
    Install(Select),
    /// Print the directories of the installed pinned CLIs, one per line (for PATH, $GITHUB_PATH).
    Path(Select),
    /// Print the table: each tool's pinned version and download for this platform.
    List(Select),
}

#[derive(Debug, clap::Args)]
pub struct Select {
    /// Only these tools (kind, kubectl, helm, istioctl, linkerd, flux, kubeseal).
    #[arg(long, num_args = 1.., value_name = "TOOL")]
    pub only: Vec<String>,
    /// Only what this suite environment needs (e.g. 'istio[k8s=1.34]'), with kubectl of its
    /// node image. Without it: every tool, and kubectl of every node image the suites pin.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Target OS (linux, darwin); default this machine's.
    #[arg(long)]
    pub os: Option<String>,
    /// Target architecture (amd64, arm64); default this machine's.
    #[arg(long)]
    pub arch: Option<String>,
    /// Seconds to establish each connection.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub connect_timeout: u64,
    /// Seconds for each whole download.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub timeout: u64,
}

pub fn run(cmd: ToolsCmd) -> i32 {
    match cmd {
        ToolsCmd::Install(s) => install(s),
        ToolsCmd::Path(s) => path(s),
        ToolsCmd::List(s) => list(s),
    }
}

fn platform(s: &Select) -> Result<Platform, String> {
    let host = Platform::host();
    let os = match (&s.os, &host) {
        (Some(o), _) => o.as_str(),
        (None, Ok(h)) => h.os,
        (None, Err(e)) => return Err(e.to_string()),
    };
    let arch = match (&s.arch, &host) {
        (Some(a), _) => a.as_str(),
        (None, Ok(h)) => h.arch,
        (None, Err(e)) => return Err(e.to_string()),
    };
    Platform::parse(os, arch).map_err(|e| e.to_string())
}

/// The (tool, version) pairs selected: an environment's, or all; narrowed by `--only`.
pub fn selection(
    table: &Table,
    catalog: Option<&Catalog>,
    env: Option<&str>,
    only: &[String],
) -> Result<Vec<(String, String)>, String> {
    for o in only {
        if !TOOLS.contains(&o.as_str()) {
            return Err(format!(
                "--only {o}: no such tool (the table has {})",
                TOOLS.join(", ")
            ));
        }
    }
    let wants = |t: &str| only.is_empty() || only.iter().any(|o| o == t);
    let mut out: Vec<(String, String)> = Vec::new();
    match env {
        Some(name) => {
            let c = catalog.ok_or("--env needs the project's suites")?;
            let (suite, e) = c
                .suites
                .iter()
                .find_map(|s| {
                    s.environments
                        .iter()
                        .find(|e| e.name == name)
                        .map(|e| (s, e))
                })
                .ok_or_else(|| {
                    let known: Vec<String> = c
                        .suites
                        .iter()
                        .flat_map(|s| s.environments.iter().map(|e| e.name.clone()))
                        .collect();
                    format!("no environment {name} (known: {})", known.join(", "))
                })?;
            out.extend(preflight::pinned_tools(suite, e, c));
        }
        None => {
            for t in TOOLS.iter().filter(|t| **t != "kubectl") {
                if let Some(v) = table.version(t) {
                    out.push((t.to_string(), v.to_string()));
                }
            }
            if wants("kubectl") {
                let c = catalog.ok_or(
                    "kubectl's version is the suites' node image: run this in the project (or pass --only without kubectl)",
                )?;
                let tags: BTreeSet<String> = c
                    .suites
                    .iter()
                    .flat_map(|s| s.environments.iter())
                    .filter_map(|e| match &e.cluster {
                        ClusterSpec::Kind { node_image, .. } => {
                            node_image.kube_version_tag().map(str::to_string)
                        }
                        _ => None,
                    })
                    .collect();
                out.extend(tags.into_iter().map(|v| ("kubectl".to_string(), v)));
            }
        }
    }
    out.retain(|(t, _)| wants(t));
    let mut seen = BTreeSet::new();
    out.retain(|x| seen.insert(x.clone()));
    Ok(out)
}

/// The selection and the installer for `s`, or the exit code after printing why not.
fn prepare(s: &Select) -> Result<(Vec<Request>, Installer), i32> {
    let fail = |m: String| {
        eprintln!("meshproof: error: {m}");
        2
    };
    let plat = platform(s).map_err(fail)?;
    let limits = Limits {
        connect: Duration::from_secs(s.connect_timeout.max(1)),
        total: Duration::from_secs(s.timeout.max(1)),
        ..Limits::default()
    };
    let inst = Installer::from_env(limits).map_err(|e| fail(e.to_string()))?;
    // The suites are needed for kubectl and --env only.
    let need_catalog =
        s.env.is_some() || s.only.is_empty() || s.only.iter().any(|o| o == "kubectl");
    let catalog = if need_catalog {
        Some(project::load()?)
    } else {
        None
    };
    let sel = selection(&inst.table, catalog.as_ref(), s.env.as_deref(), &s.only).map_err(fail)?;
    let reqs = sel
        .into_iter()
        .map(|(tool, version)| Request {
            tool,
            version,
            platform: plat,
        })
        .collect();
    Ok((reqs, inst))
}

fn install(s: Select) -> i32 {
    let (reqs, inst) = match prepare(&s) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let Some(rt) = crate::cli::runtime_or_say("meshproof") else {
        return 2;
    };
    let mut failed = 0;
    let mut new_lines = Vec::new();
    for r in &reqs {
        let what = format!("{} {} {}", r.tool, r.version, r.platform);
        match rt.block_on(inst.install(r)) {
            Ok(Outcome::AlreadyInstalled(p)) => {
                outln!(
                    "ok        {what}: already installed and verified ({})",
                    p.display()
                )
            }
            Ok(Outcome::Installed { path, verified_by }) => {
                let how = match &verified_by {
                    VerifiedBy::CommittedLock => {
                        "verified against the committed tools.lock".to_string()
                    }
                    VerifiedBy::UserLock(p) => format!("verified against {}", p.display()),
                    VerifiedBy::Published {
                        checksum_url,
                        lock_line,
                    } => {
                        new_lines.push(lock_line.clone());
                        format!(
                            "verified against {checksum_url} (first download; recorded in {})",
                            inst.user_lock.display()
                        )
                    }
                };
                outln!("installed {what}: {} ({how})", path.display());
            }
            Err(e) => {
                failed += 1;
                eprintln!("meshproof: error: {what}: {e}");
            }
        }
    }
    if !new_lines.is_empty() {
        outln!(
            "add these lines to tools.lock (committed) so every later download must match them:"
        );
        for l in &new_lines {
            outln!("{l}");
        }
    }
    if failed > 0 {
        eprintln!(
            "meshproof: {failed} of {} tool(s) not installed",
            reqs.len()
        );
        1
    } else {
        0
    }
}

fn path(s: Select) -> i32 {
    let (reqs, inst) = match prepare(&s) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut missing = 0;
    for r in &reqs {
        let dir = install_dir(&inst.cache, &r.tool, &r.version, r.platform);
        match crate::toolchain::install::installed(&dir, &r.tool, None) {
            Ok(Some(_)) => outln!("{}", dir.display()),
            _ => {
                missing += 1;
                eprintln!(
                    "meshproof: error: {} {} is not installed: run `meshproof tools install`",
                    r.tool, r.version
                );
            }
        }
    }
    i32::from(missing > 0)
}

fn list(s: Select) -> i32 {
    let (reqs, inst) = match prepare(&s) {
        Ok(x) => x,
        Err(code) => return code,
    };
    for r in &reqs {
        match inst.table.artifact(&r.tool, &r.version, r.platform) {
            Ok(a) => {
                let lock = inst
                    .committed
                    .get(&r.tool, &r.version, r.platform)
                    .map(|h| format!("locked {h}"))
                    .unwrap_or_else(|| format!("not locked; checksum from {}", a.checksum.url));
                outln!("{:<9} {:<12} {}  ({lock})", r.tool, r.version, a.url);
            }
            Err(e) => {
                eprintln!("meshproof: error: {e}");
                return 2;
            }
        }
    }
    0
}
