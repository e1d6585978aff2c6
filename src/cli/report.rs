//! `meshproof report PATH`: shows a run's `report.json` — a summary table, or with `--markdown`
//! the README of a certification submission — after checking its SHA-256.
//!
//! Exit codes: 0 shown and intact, 1 the hash does not match (the report was edited) or is
//! missing, 2 the file cannot be read as a report.
//!
//! The hash proves integrity, not origin (and the output says so, [`render::NOT_ORIGIN`]):
//! whoever edits the file can recompute it. Origin is the CI's artifact attestation
//! (`ci/nightly.yml`), checked with `gh attestation verify`.

use crate::report::{integrity, render, reporter::REPORT_JSON};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A `report.json`, or the report directory holding one.
    pub path: PathBuf,
    /// Print the certification README (Markdown) instead of the table.
    #[arg(long)]
    pub markdown: bool,
}

pub fn run(args: Args) -> i32 {
    let path = if args.path.is_dir() {
        args.path.join(REPORT_JSON)
    } else {
        args.path.clone()
    };
    let (report, integrity) = match integrity::load(&path) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshproof: error: {e}");
            return 2;
        }
    };
    if args.markdown {
        out!("{}", render::markdown(&report, &integrity));
    } else {
        out!("{}", render::summary_table(&report, &integrity));
    }
    if integrity.is_intact() {
        0
    } else {
        eprintln!(
            "meshproof: error: {}: the sha256 does not match the content; do not trust this report",
            path.display()
        );
        1
    }
}
