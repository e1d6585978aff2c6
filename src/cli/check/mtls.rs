//! `meshproof check mtls` — argument parsing and wiring to [`crate::check::mtls`].

use crate::check::mtls::{self, CheckSpec, HelloRules, Mesh};
use std::path::PathBuf;

/// Arguments of `meshproof check mtls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Capture to judge (pcap or pcapng); `-` reads it from stdin (e.g. `tcpdump -w -`).
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,
    /// Token the test traffic carries; it must never appear in cleartext (at least 8 bytes).
    #[arg(long, value_name = "TOKEN")]
    pub sentinel: String,
    /// Judge only flows to this TCP port (repeatable; otherwise every flow carrying payload).
    #[arg(long, value_name = "P")]
    pub port: Vec<u16>,
    /// Preset rules for a mesh. `istio-ambient` judges HBONE on port 15008 (TLS 1.3 only, ALPN
    /// `h2`, no SNI) and, with --app-port, fails any payload a peer sends to the workload's port.
    #[arg(long, value_enum)]
    pub mesh: Option<Mesh>,
    /// The workload's own port (repeatable; needs --mesh istio-ambient): under ambient a peer
    /// reaches it only through HBONE, so any flow to it carrying payload fails (the kubelet's
    /// probes, from istio-cni's 169.254.7.127, are not judged).
    #[arg(long = "app-port", value_name = "P")]
    pub app_port: Vec<u16>,
    /// ALPN protocol a ClientHello may offer to be accepted (repeatable; adds to the preset).
    #[arg(long = "expect-alpn", value_name = "A")]
    pub expect_alpn: Vec<String>,
    /// Required SNI suffix (replaces the preset's).
    #[arg(long = "expect-sni-suffix", value_name = "S")]
    pub expect_sni_suffix: Option<String>,
    /// Print the verdict and its evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> i32 {
    let (ports, port_rules) = match args
        .mesh
        .and_then(|m| mtls::preset::scope(m, &args.app_port, &args.port))
    {
        Some(scope) => scope,
        None if !args.app_port.is_empty() => {
            eprintln!("error: --app-port needs --mesh istio-ambient (only there does a peer never reach the workload's port directly)");
            return 2;
        }
        None => (args.port.clone(), Vec::new()),
    };
    let spec = CheckSpec {
        sentinel: args.sentinel.clone(),
        ports,
        port_rules,
        rules: HelloRules::build(
            args.mesh,
            &args.expect_alpn,
            args.expect_sni_suffix.as_deref(),
        ),
    };
    let name = args.pcap.display().to_string();
    let verdict = if name == "-" {
        mtls::check(std::io::stdin().lock(), "-", &spec)
    } else {
        match std::fs::File::open(&args.pcap) {
            Ok(f) => mtls::check(std::io::BufReader::with_capacity(1 << 20, f), &name, &spec),
            Err(e) => mtls::unopenable(&name, &spec, &e),
        }
    };
    crate::cli::check::emit(&verdict, args.json)
}
