//! The `meshproof` command line: argument parsing and dispatch. Each subcommand lives in its own
//! module and returns an exit code; nothing here decides a verdict.

/// `println!` for command output: when stdout is a pipe that closed (`meshproof plan | head`),
/// the process ends quietly with 141 (128 + SIGPIPE, what a shell tool killed by it reports)
/// instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($t)*) {
            $crate::cli::output_failed(e)
        }
    }};
}

/// `print!` with [`outln!`]'s handling of a closed pipe.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout().lock(), $($t)*) {
            $crate::cli::output_failed(e)
        }
    }};
}

pub mod certify;
pub mod check;
pub mod doctor;
pub mod gc;
pub mod images;
pub mod list;
pub mod mirror_config;
pub mod pin;
pub mod plan;
mod project;
pub mod report;
pub mod run;
pub mod tools;
pub mod validate;

use clap::{Parser, Subcommand};

/// Ends the process after stdout failed: quietly with 141 on a closed pipe, else with 2.
pub fn output_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("meshproof: error: writing the output: {e}");
    std::process::exit(2)
}

#[derive(Debug, Parser)]
#[command(
    name = "meshproof",
    version,
    about = "End-to-end conformance harness for service meshes running OpenFaaS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check suites and scenarios; print `FILE:LINE:COL: error: MESSAGE` per problem.
    Validate(validate::Args),
    /// List the e2e trials (the names `cargo test --test e2e -- --list` prints).
    List(list::Args),
    /// Print the ordered, resolved steps a suite's run will take, without touching a cluster.
    Plan(plan::Args),
    /// Pin the images suites deploy by digest (resolve tags; --write into the files; --check offline).
    Pin(pin::Args),
    /// List every image a suite's environments pull, by role and source (rendered by the CLIs).
    Images(images::Args),
    /// Write a pull-through proxy's config per registry (credentials only there, 0600) and print the MESHPROOF_MIRROR value.
    MirrorConfig(mirror_config::Args),
    /// Check the tools and daemons a real run needs.
    Doctor(doctor::Args),
    /// Provision one suite environment and install its stack, then tear it down (debug aid).
    Run(run::Args),
    /// Run one verdict engine on its own.
    #[command(subcommand)]
    Check(check::CheckCmd),
    /// Show a run's report.json (table, or --markdown for the certification README).
    Report(report::Args),
    /// Delete what abandoned runs left behind (kind clusters, secret files, temp dirs).
    Gc(gc::Args),
    /// Run a suite as a vendor certification: report, README and artifacts in one directory.
    Certify(certify::Args),
    /// The pinned CLIs (tools.yaml): install them verified into the per-user cache, list them.
    #[command(subcommand)]
    Tools(tools::ToolsCmd),
}

/// Entry point used by `src/main.rs`; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return e.exit_code();
        }
    };
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::List(a) => list::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Pin(a) => pin::run(a),
        Command::Images(a) => images::run(a),
        Command::MirrorConfig(a) => mirror_config::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Run(a) => run::run(a),
        Command::Check(c) => check::run(c),
        Command::Report(a) => report::run(a),
        Command::Certify(a) => certify::run(a),
        Command::Gc(a) => gc::run(a),
        Command::Tools(c) => tools::run(c),
    }
}

/// A multi-threaded tokio runtime for commands that do network I/O.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// [`runtime`] for a command that exits 2 without one: `None` after the reason is on stderr,
/// prefixed with `who` (the command's name as its other errors print it).
pub fn runtime_or_say(who: &str) -> Option<tokio::runtime::Runtime> {
    runtime()
        .map_err(|e| eprintln!("{who}: error: cannot start the async runtime: {e}"))
        .ok()
}
