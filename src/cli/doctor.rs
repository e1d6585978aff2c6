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
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for (f, envs) in &report.findings {
            let mark = if f.ok { "ok     " } else { "MISSING" };
            println!("{mark} {:<14} {}", f.label(), f.detail);
            if let Some(h) = &f.hint {
                println!("        {:<14} how to fix: {h}", "");
            }
            println!(
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
