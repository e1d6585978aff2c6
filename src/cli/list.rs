//! `meshproof list`: the trial names `cargo test --test e2e -- --list` prints.

use super::project;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> i32 {
    let catalog = match project::load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let envs = crate::plan::expand(&catalog);
    for t in crate::plan::trials(&envs) {
        // Same text as libtest-mimic's `--list`: `[kind] name: test`.
        outln!("[{}] {}: test", t.data_plane.scenario_key(), t.name);
    }
    0
}
