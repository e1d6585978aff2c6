//! `meshproof validate [PATH...] [--schemas DIR]`: load and check suites and scenarios; one line
//! per problem. With `--schemas`, also render every scenario manifest for every environment and
//! validate it against the CRDs and Kubernetes OpenAPI documents in DIR (see [`crate::schema`]).

use crate::scenario::{catalog, Catalog};
use crate::schema::manifests::{check_rendered, render_catalog};
use crate::schema::{SchemaSet, Unchecked};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories (default: suites/ and scenarios/).
    pub paths: Vec<PathBuf>,
    /// Also validate every rendered scenario manifest against the CRD / OpenAPI v3 schemas found
    /// in this directory (e.g. ../shared/crds).
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<PathBuf>,
}

pub fn run(args: Args) -> i32 {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("suites"), PathBuf::from("scenarios")]
    } else {
        args.paths
    };
    match catalog::load(&paths) {
        Ok(c) => {
            let envs: usize = c.suites.iter().map(|s| s.environments.len()).sum();
            outln!(
                "ok: {} suite(s) ({} environment(s)), {} scenario(s)",
                c.suites.len(),
                envs,
                c.scenarios.len()
            );
            // Warnings, not errors: an end-of-life pin still validates (issue #16 moves them).
            for w in crate::freshness::warnings(&c, time::OffsetDateTime::now_utc().date()) {
                eprintln!("warning: {w}");
            }
            match &args.schemas {
                Some(dir) => validate_manifests(&c, dir),
                None => 0,
            }
        }
        Err(d) => {
            for line in &d.0 {
                outln!("{line}");
            }
            eprintln!("{} problem(s) found", d.0.len());
            1
        }
    }
}

/// Exit codes: 0 all manifests valid, 1 violations (or a manifest that does not render),
/// 2 the schema directory cannot be loaded.
fn validate_manifests(c: &Catalog, dir: &Path) -> i32 {
    let set = match SchemaSet::load_dir(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot load schemas: {e}");
            return 2;
        }
    };
    let rendered = match render_catalog(c, "run-1") {
        Ok(r) => r,
        Err(errors) => {
            for e in &errors {
                outln!("error: {e}");
            }
            eprintln!("{} manifest(s) do not render", errors.len());
            return 1;
        }
    };
    let (findings, cov) = check_rendered(&set, &rendered);
    for f in &findings {
        outln!("{f}");
    }
    let cel = cov
        .not_evaluated
        .iter()
        .filter(|n| matches!(n.what, Unchecked::CelRule { .. }))
        .count();
    let other = cov.not_evaluated.len() - cel;
    outln!(
        "schemas: {} document(s) in {} rendering(s) of {} manifest file(s) checked against {}; {} CEL rule(s){} not evaluated",
        cov.documents,
        cov.renderings,
        cov.files.len(),
        dir.display(),
        cel,
        if other > 0 { format!(" and {other} other check(s)") } else { String::new() },
    );
    if findings.is_empty() {
        0
    } else {
        eprintln!("{} schema violation(s) found", findings.len());
        1
    }
}
