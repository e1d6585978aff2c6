//! `meshproof check …`: each verdict engine, runnable on its own against any endpoint or capture.
//!
//! Every subcommand prints a verdict (human text, or one JSON object with `--json`) and exits
//! 0 for pass, 1 for fail, 2 for error.

pub mod canary;
pub mod http;
pub mod mtls;
pub mod tls;

use crate::check::Verdict;
use serde::Serialize;

#[derive(Debug, clap::Subcommand)]
pub enum CheckCmd {
    /// Judge a TLS endpoint: chain to a CA, host match, validity window, protocol, key strength.
    Tls(tls::Args),
    /// Judge a weighted traffic split with a sequential statistical test.
    Canary(canary::Args),
    /// Judge a packet capture: no plaintext sentinel, every flow is mesh TLS.
    Mtls(mtls::Args),
    /// Judge whether a request is allowed or denied (the deny-rule judge).
    Http(http::Args),
}

/// Runs one check subcommand and returns the process exit code.
pub fn run(cmd: CheckCmd) -> i32 {
    match cmd {
        CheckCmd::Tls(a) => tls::run(a),
        CheckCmd::Canary(a) => canary::run(a),
        CheckCmd::Mtls(a) => mtls::run(a),
        CheckCmd::Http(a) => http::run(a),
    }
}

/// Prints a verdict the way every `check` subcommand does, and returns its exit code.
pub fn emit<E: Serialize>(verdict: &Verdict<E>, json: bool) -> i32 {
    if json {
        outln!("{}", verdict.to_json_string());
    } else {
        out!("{}", verdict.render_human());
    }
    verdict.outcome.exit_code()
}
