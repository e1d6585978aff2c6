//! Finding and loading the project's suites and scenarios for the commands that need them.

use crate::scenario::{catalog, Catalog};
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
