//! `meshproof check tls` — argument parsing and wiring to [`crate::check::tls`].

use std::path::PathBuf;
use std::time::Duration;

use crate::check::tls::{check_tls, TlsOptions, TlsVersion, DEFAULT_TIMEOUT};
use crate::check::{CheckName, Outcome, Verdict};

/// Arguments of `meshproof check tls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The endpoint, `https://HOST[:PORT]` (port 443 by default).
    #[arg(long)]
    pub url: String,
    /// Connect to IP instead of resolving HOST, still sending and checking HOST (curl semantics).
    /// `HOST:IP` or curl's `HOST:PORT:IP`.
    #[arg(long, value_name = "HOST:IP")]
    pub resolve: Option<String>,
    /// PEM file whose certificates are the ONLY trust roots. Without it the system bundle
    /// /etc/ssl/certs/ca-certificates.crt is used.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Name to send as SNI and to check the certificate against (default: the URL's host).
    #[arg(long, value_name = "NAME")]
    pub servername: Option<String>,
    /// Fail when the leaf certificate has fewer whole days left than this.
    #[arg(long, value_name = "N")]
    pub min_days: Option<u32>,
    /// Lowest acceptable negotiated protocol version: 1.2 or 1.3.
    #[arg(long, value_name = "1.2|1.3", default_value = "1.2", value_parser = parse_version)]
    pub min_protocol: TlsVersion,
    /// Limit for the whole check (DNS, connect, handshake), e.g. `10s`, `500ms`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// After the handshake, send `GET <url path>` (Host: the checked name) and require this
    /// HTTP status, e.g. 200: proves the endpoint behind the certificate serves the application.
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(100..=599))]
    pub expect_status: Option<u16>,
    /// Print the verdict and its evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_version(s: &str) -> Result<TlsVersion, String> {
    s.parse()
}

pub fn run(args: Args) -> i32 {
    let opts = TlsOptions {
        url: args.url,
        resolve: args.resolve,
        ca_file: args.ca,
        servername: args.servername,
        min_days: args.min_days,
        min_protocol: args.min_protocol,
        timeout: args.timeout.unwrap_or(DEFAULT_TIMEOUT),
        expect_status: args.expect_status,
    };
    let rt = match crate::cli::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let v = Verdict::new(
                CheckName::Tls,
                Outcome::Error,
                vec![format!("cannot start the async runtime: {e}")],
                (),
            );
            return crate::cli::check::emit(&v, args.json);
        }
    };
    let verdict = rt.block_on(check_tls(&opts));
    // A DNS lookup abandoned at the timeout still occupies a blocking thread; do not let the
    // runtime's drop wait for it, or the command would outlive its --timeout.
    rt.shutdown_background();
    crate::cli::check::emit(&verdict, args.json)
}
