//! `meshproof check http` — argument parsing and wiring to [`crate::check::http`].

use std::time::Duration;

use crate::check::http::{check_http, Expect, HttpOptions, DEFAULT_TIMEOUT};
use crate::check::{CheckName, Outcome, Verdict};

/// Arguments of `meshproof check http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The request URL (`http://` only).
    #[arg(long)]
    pub url: String,
    /// What the policy should do with this request.
    #[arg(long, value_enum)]
    pub expect: Expect,
    /// Extra request header `NAME:VALUE`; repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Limit for the whole request (DNS, connect, response), e.g. `10s`, `500ms`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Print the verdict and its evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> i32 {
    let opts = HttpOptions {
        url: args.url,
        expect: args.expect,
        headers: args.headers,
        method: args.method,
        timeout: args.timeout.unwrap_or(DEFAULT_TIMEOUT),
    };
    let rt = match crate::cli::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let v = Verdict::new(
                CheckName::Http,
                Outcome::Error,
                vec![format!("cannot start the async runtime: {e}")],
                (),
            );
            return crate::cli::check::emit(&v, args.json);
        }
    };
    let verdict = rt.block_on(check_http(&opts));
    // A DNS lookup abandoned at the timeout still occupies a blocking thread; do not let the
    // runtime's drop wait for it, or the command would outlive its --timeout.
    rt.shutdown_background();
    crate::cli::check::emit(&verdict, args.json)
}
