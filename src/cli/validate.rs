//! `meshproof validate [PATH...]`: load and check suites and scenarios; one line per problem.

use crate::scenario::catalog;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories (default: suites/ and scenarios/).
    pub paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> i32 {
    let paths = if args.paths.is_empty() { vec![PathBuf::from("suites"), PathBuf::from("scenarios")] } else { args.paths };
    match catalog::load(&paths) {
        Ok(c) => {
            let envs: usize = c.suites.iter().map(|s| s.environments.len()).sum();
            println!(
                "ok: {} suite(s) ({} environment(s)), {} scenario(s)",
                c.suites.len(),
                envs,
                c.scenarios.len()
            );
            0
        }
        Err(d) => {
            for line in &d.0 {
                println!("{line}");
            }
            eprintln!("{} problem(s) found", d.0.len());
            1
        }
    }
}
