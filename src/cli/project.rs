//! Finding and loading the project's suites and scenarios for the commands that need them.

use crate::scenario::{catalog, Catalog, Suite};
use std::path::PathBuf;

/// The directory holding `suites/` and `scenarios/`: `MESHPROOF_PROJECT_DIR`, else the
/// current directory.
pub fn root() -> PathBuf {
    std::env::var_os("MESHPROOF_PROJECT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Loads the project; on problems prints them (like `validate`) and returns exit code 1.
pub fn load() -> Result<Catalog, i32> {
    catalog::load_project(&root()).map_err(|d| {
        for line in &d.0 {
            eprintln!("{line}");
        }
        eprintln!(
            "meshproof: error: the suites and scenarios have problems; run `meshproof validate`"
        );
        1
    })
}

/// The suite a command names, by name or by its file; otherwise prints the suites there are
/// and returns exit code 2.
pub fn find_suite<'c>(catalog: &'c Catalog, wanted: &str) -> Result<&'c Suite, i32> {
    let path = std::path::Path::new(wanted);
    catalog
        .suites
        .iter()
        .find(|s| {
            s.name.as_str() == wanted
                || (path.exists() && s.source.canonicalize().ok() == path.canonicalize().ok())
        })
        .map(|s| &**s)
        .ok_or_else(|| {
            let names: Vec<&str> = catalog.suites.iter().map(|s| s.name.as_str()).collect();
            eprintln!(
                "meshproof: error: no suite {wanted:?} (suites: {})",
                names.join(", ")
            );
            2
        })
}

/// Prints that `suite` has no environment `env` (naming those it has); exit code 2.
pub fn no_environment(suite: &Suite, env: Option<&str>) -> i32 {
    eprintln!(
        "meshproof: error: suite {} has no environment {:?} (environments: {})",
        suite.name,
        env.unwrap_or(""),
        suite
            .environments
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    2
}
