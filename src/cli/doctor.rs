//! `meshproof doctor`: the preflight, spelled out.

use super::project;
use crate::preflight::Report;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> i32 {
    let catalog = match project::load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match super::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("meshproof: error: cannot start the async runtime: {e}");
            return 2;
        }
    };
    let report = rt.block_on(Report::gather(&catalog));
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for (f, envs) in &report.findings {
            let mark = match (f.ok, f.want.is_empty()) {
                (true, _) => "ok     ",
                (false, false) if !f.detail.contains("not found") => "WRONG  ",
                _ => "MISSING",
            };
            outln!("{mark} {:<14} {}", f.label(), f.detail);
            if !f.want.is_empty() {
                outln!("        {:<14} pinned: {}", "", f.want.join(", "));
            }
            if let Some(h) = &f.hint {
                outln!("        {:<14} how to fix: {h}", "");
            }
            outln!(
                "        {:<14} needed by: {}",
                "",
                envs.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    if report.all_ok() {
        0
    } else {
        1
    }
}
