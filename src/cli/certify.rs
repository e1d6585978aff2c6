//! `meshproof certify --suite NAME [--env ENV] [--out DIR]`: what a mesh vendor runs against
//! their build.
//!
//! It runs `cargo test --test e2e` for the suite (or one of its environments) with
//! `MESHPROOF_REQUIRE_CLUSTER=1` — a missing cluster is a failure, never a skip — and the report
//! directory `OUT/report` (with `conformance-report.yaml`), keeps the run's output in
//! `OUT/e2e.log`, and renders the submission README into `OUT/README.md` — including what each
//! conformance profile claims: one directory to hand in.
//!
//! `--organization`, `--project`, `--url`, `--implementation-version` and `--contact` describe
//! the implementation in `conformance-report.yaml` (through `MESHPROOF_IMPLEMENTATION_*`);
//! what is not given says `unknown` there, except project and version, which default to the
//! suite's mesh.
//!
//! Exit codes: 0 success, 1 the run was not a success (failure or partial), 2 certify itself
//! could not run (unknown suite, no report produced).

use super::project;
use crate::process::Cmd;
use crate::report::conformance::{self, ImplementationArgs, CONFORMANCE_YAML};
use crate::report::{dir, integrity, render, reporter::REPORT_JSON, Status};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The suite to certify (a name from suites/).
    #[arg(long)]
    pub suite: String,
    /// One environment of the suite, e.g. `istio[k8s=1.34]` (default: all of them).
    #[arg(long = "env")]
    pub environment: Option<String>,
    /// Output directory (default: target/meshproof/certify-<run id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Upper bound for the whole run.
    #[arg(long, default_value = "6h", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Who maintains the implementation under test (conformance-report.yaml; default: unknown).
    #[arg(long)]
    pub organization: Option<String>,
    /// The implementation's project name (default: the suite's mesh).
    #[arg(long)]
    pub project: Option<String>,
    /// Where to learn about the implementation (default: unknown).
    #[arg(long)]
    pub url: Option<String>,
    /// The implementation's version (default: the mesh version the suite installs).
    #[arg(long = "implementation-version")]
    pub implementation_version: Option<String>,
    /// A maintainer contact (`@user`, `@org/team`, an address or a support URL); repeatable
    /// (default: unknown).
    #[arg(long)]
    pub contact: Vec<String>,
}

impl Args {
    fn implementation(&self) -> ImplementationArgs {
        ImplementationArgs {
            organization: self.organization.clone(),
            project: self.project.clone(),
            url: self.url.clone(),
            version: self.implementation_version.clone(),
            contact: self.contact.clone(),
        }
    }
}

/// The libtest filter that selects the suite's (or the environment's) trials and nothing else.
fn filter_for(catalog: &crate::scenario::Catalog, args: &Args) -> Result<String, String> {
    let suite = catalog
        .suites
        .iter()
        .find(|s| s.name.as_str() == args.suite)
        .ok_or_else(|| format!("no suite named {:?} (see `meshproof list`)", args.suite))?;
    let envs: Vec<&str> = suite.environments.iter().map(|e| e.name.as_str()).collect();
    let filter = match &args.environment {
        Some(env) if envs.contains(&env.as_str()) => render::libtest_filter(env),
        Some(env) => {
            return Err(format!(
                "suite {} has no environment {env:?}; it has: {}",
                args.suite,
                envs.join(", ")
            ))
        }
        // Matrix environments are all `<suite>[…]`; a plain suite is `<suite>::…`.
        None if envs
            .iter()
            .all(|e| e.starts_with(&format!("{}[", args.suite))) =>
        {
            format!("{}[", args.suite)
        }
        None => format!("{}::", args.suite),
    };
    // The filter is a substring of `[kind] name`: make sure it selects exactly these trials.
    let all = crate::plan::trials(&crate::plan::expand(catalog));
    let wanted = |env: &str| {
        args.environment
            .as_deref()
            .map(|e| e == env)
            .unwrap_or_else(|| envs.contains(&env))
    };
    for t in &all {
        let selected = format!("[{}] {}", t.mesh, t.name).contains(&filter);
        if selected != wanted(&t.env.name) {
            return Err(format!(
                "cannot select suite {} by a libtest filter: {filter:?} would {} {}",
                args.suite,
                if selected { "also run" } else { "miss" },
                t.name
            ));
        }
    }
    Ok(filter)
}

pub fn run(args: Args) -> i32 {
    let root = project::root();
    let catalog = match project::load() {
        Ok(c) => c,
        Err(code) => return code.max(2),
    };
    let filter = match filter_for(&catalog, &args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("meshproof certify: error: {e}");
            return 2;
        }
    };
    let out = args.out.clone().unwrap_or_else(|| {
        root.join("target/meshproof")
            .join(format!("certify-{}", dir::new_run_id()))
    });
    let report_dir = out.join("report");
    if let Err(e) = std::fs::create_dir_all(&report_dir) {
        eprintln!(
            "meshproof certify: error: cannot create {}: {e}",
            report_dir.display()
        );
        return 2;
    }
    let stale = report_dir.join(REPORT_JSON);
    if stale.exists() {
        eprintln!(
            "meshproof certify: error: {} already holds a report; use a fresh --out",
            out.display()
        );
        return 2;
    }
    let report_dir = absolute(&report_dir);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Run through `env -u …` so that the variables cargo sets for a running crate (present when
    // certify itself runs under `cargo run` or a test) do not reach the nested cargo: build
    // scripts watch some of them (ring: CARGO_MANIFEST_DIR, CARGO_PKG_NAME), and a changed value
    // rebuilds them every time.
    let mut argv: Vec<std::ffi::OsString> = Vec::new();
    for name in inherited_crate_vars(std::env::vars_os().map(|(k, _)| k)) {
        argv.push("-u".into());
        argv.push(name);
    }
    argv.push(cargo.into());
    argv.extend(["test", "--test", "e2e", "--", filter.as_str()].map(Into::into));
    let mut cmd = Cmd::new("env")
        .args(argv)
        .cwd(&root)
        .env("MESHPROOF_REQUIRE_CLUSTER", "1")
        .env(dir::ENV, report_dir.as_os_str())
        .env("MESHPROOF_PROJECT_DIR", absolute(&root).as_os_str())
        .timeout(args.timeout);
    for (k, v) in args.implementation().to_env() {
        cmd = cmd.env(k, v);
    }
    eprintln!("meshproof certify: {}", cmd.display());
    eprintln!(
        "meshproof certify: this provisions clusters and takes a while; output goes to {}",
        out.join("e2e.log").display()
    );
    let output = match crate::cli::runtime().map(|rt| rt.block_on(cmd.run_unchecked())) {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            eprintln!("meshproof certify: error: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("meshproof certify: error: cannot start a runtime: {e}");
            return 2;
        }
    };
    let mut log = output.stdout.clone();
    log.extend_from_slice(b"\n--- stderr ---\n");
    log.extend_from_slice(&output.stderr);
    if let Err(e) = std::fs::write(out.join("e2e.log"), &log) {
        eprintln!("meshproof certify: warning: cannot write e2e.log: {e}");
    }
    let (report, integrity) = match integrity::load(&report_dir.join(REPORT_JSON)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshproof certify: error: the run left no readable report ({e}); `cargo test` exited with {}; see {}", output.status, out.join("e2e.log").display());
            return 2;
        }
    };
    // One suite, one implementation: the harness wrote conformance-report.yaml.
    let profiles = match std::fs::read_to_string(report_dir.join(CONFORMANCE_YAML))
        .map_err(|e| e.to_string())
        .and_then(|t| conformance::from_yaml(&t).map_err(|e| e.to_string()))
    {
        Ok(c) => render::profiles_markdown(&c),
        Err(e) => {
            eprintln!(
                "meshproof certify: error: the run left no readable {CONFORMANCE_YAML} ({e}); see {}",
                out.join("e2e.log").display()
            );
            return 2;
        }
    };
    let readme = render::markdown(&report, &integrity)
        .replacen("\n## Suites\n", &format!("{profiles}\n## Suites\n"), 1)
        .replace("- `report.json` —", "- `report/report.json` —")
        .replace("- `junit.xml` —", "- `report/junit.xml` —")
        .replace(
            &format!("- `{CONFORMANCE_YAML}` —"),
            &format!("- `report/{CONFORMANCE_YAML}` —"),
        )
        .replace("- `artifacts/` —", "- `report/artifacts/` —")
        .replace(
            "`meshproof report report.json`",
            "`meshproof report report/report.json`",
        )
        + "- `e2e.log` — the output of the run\n";
    if let Err(e) = std::fs::write(out.join("README.md"), readme) {
        eprintln!("meshproof certify: error: cannot write README.md: {e}");
        return 2;
    }
    out!("{}", render::summary_table(&report, &integrity));
    eprintln!("meshproof certify: submission in {}", out.display());
    if !integrity.is_intact() {
        return 2;
    }
    match report.summary.status {
        Status::Success => 0,
        Status::Partial | Status::Failure => 1,
    }
}

/// Variables cargo sets for the crate it runs (not user configuration such as CARGO_HOME or
/// CARGO_TARGET_DIR, which must pass through).
fn inherited_crate_vars(
    names: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    const EXACT: [&str; 10] = [
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
        "CARGO_CFG_FEATURE",
    ];
    let mut out: Vec<std::ffi::OsString> = names
        .filter(|n| {
            let n = n.to_string_lossy();
            EXACT.contains(&n.as_ref())
                || n.starts_with("CARGO_PKG_")
                || n.starts_with("CARGO_BIN_EXE_")
        })
        .collect();
    out.sort();
    out
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(suite: &str, env: Option<&str>) -> Args {
        Args {
            suite: suite.into(),
            environment: env.map(Into::into),
            out: None,
            timeout: Duration::from_secs(1),
            organization: None,
            project: None,
            url: None,
            implementation_version: None,
            contact: Vec::new(),
        }
    }

    fn catalog() -> crate::scenario::Catalog {
        crate::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn only_crate_variables_are_dropped() {
        let names = [
            "CARGO_HOME",
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_TARGET_DIR",
            "CARGO_BIN_EXE_meshproof",
            "PATH",
        ];
        let dropped = inherited_crate_vars(names.iter().map(Into::into));
        assert_eq!(
            dropped,
            [
                "CARGO_BIN_EXE_meshproof",
                "CARGO_MANIFEST_DIR",
                "CARGO_PKG_NAME"
            ]
        );
    }

    #[test]
    fn filters_select_exactly_the_suite_or_environment() {
        let c = catalog();
        assert_eq!(filter_for(&c, &args("istio", None)).unwrap(), "istio[");
        assert_eq!(
            filter_for(&c, &args("linkerd", Some("linkerd[k8s=1.35]"))).unwrap(),
            "linkerd[k8s=1.35]"
        );
        assert!(filter_for(&c, &args("nope", None))
            .unwrap_err()
            .contains("no suite"));
        assert!(filter_for(&c, &args("istio", Some("linkerd[k8s=1.35]")))
            .unwrap_err()
            .contains("no environment"));
    }
}
