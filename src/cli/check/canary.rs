//! `meshproof check canary` — argument parsing and wiring to [`crate::check::canary`].
//!
//! Every flag is validated before the first request; a bad flag prints a clear error and exits
//! 2 (the same code as an undecidable check: nothing was judged).

use crate::check::canary::sampler::{parse_header, HttpSampler};
use crate::check::canary::{
    run_canary, CanaryConfig, Classifier, Confidence, Split, TestParams, Tolerance, VariantSpec,
};
use reqwest::header::HeaderMap;
use std::time::Duration;

/// Arguments of `meshproof check canary`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// URL to send GET requests to.
    #[arg(long)]
    pub url: String,
    /// A variant as NAME=PATTERN:WEIGHT (regex PATTERN matched against the body, or the
    /// --classify-header value; integer WEIGHT in percent). Repeat for each variant; weights
    /// must sum to 100. Split on the first `=` and the last `:`.
    #[arg(long = "variant", required = true, value_name = "NAME=PATTERN:WEIGHT")]
    pub variants: Vec<String>,
    /// Half-width of the acceptable band in percentage points, in (0, 50).
    #[arg(long, default_value = "5")]
    pub tolerance: String,
    /// Confidence level in (0.5, 1); false-pass and false-fail rates are each at most 1 − C.
    #[arg(long, default_value = "0.99")]
    pub confidence: String,
    /// Most requests to send; at the limit a fixed-sample rule decides (or reports undecided).
    #[arg(long, default_value_t = 2000)]
    pub max_requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Extra request header as NAME:VALUE (repeatable), e.g. `Host: app.example`.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// Classify by this response header's value instead of the body.
    #[arg(long, value_name = "NAME")]
    pub classify_header: Option<String>,
    /// Timeout for each request (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    pub timeout: humantime::Duration,
    /// Print the verdict and its evidence as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Validated configuration and sampler, or a message for the user.
fn prepare(args: &Args) -> Result<(CanaryConfig, HttpSampler), String> {
    let variants = args
        .variants
        .iter()
        .map(|s| s.parse::<VariantSpec>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let split = Split::new(variants).map_err(|e| e.to_string())?;
    let tolerance: Tolerance = args
        .tolerance
        .parse()
        .map_err(|e: crate::check::canary::spec::SpecError| e.to_string())?;
    let confidence: Confidence = args
        .confidence
        .parse()
        .map_err(|e: crate::check::canary::spec::SpecError| e.to_string())?;
    let timeout: Duration = args.timeout.into();
    if timeout.is_zero() {
        return Err("--timeout must be greater than zero".into());
    }
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (n, v) = parse_header(h).map_err(|e| e.to_string())?;
        headers.append(n, v);
    }
    let classifier = Classifier::new(&split);
    let sampler = HttpSampler::new(
        &args.url,
        headers,
        args.classify_header.as_deref(),
        classifier,
        timeout,
    )
    .map_err(|e| e.to_string())?;
    let mut config = CanaryConfig::new(
        args.url.clone(),
        split,
        TestParams {
            tolerance,
            confidence,
        },
    )
    .with_max_requests(args.max_requests)
    .and_then(|c| c.with_concurrency(args.concurrency))
    .map_err(|e| format!("--max-requests/--concurrency: {e}"))?;
    config.request_timeout = timeout;
    Ok((config, sampler))
}

pub fn run(args: Args) -> i32 {
    let (config, sampler) = match prepare(&args) {
        Ok(x) => x,
        Err(msg) => {
            eprintln!("meshproof: error: check canary: {msg}");
            return 2;
        }
    };
    let Some(rt) = crate::cli::runtime_or_say("meshproof") else {
        return 2;
    };
    let verdict = rt.block_on(run_canary(&config, || sampler.sample()));
    if !args.json {
        print_evidence_summary(&verdict.evidence);
    }
    crate::cli::check::emit(&verdict, args.json)
}

/// A few lines of evidence before the verdict in human mode: per-variant counts and intervals.
fn print_evidence_summary(e: &crate::check::canary::CanaryEvidence) {
    outln!(
        "canary {}: {} requests used ({} classified, {} unclassified), ±{} pp at {} confidence",
        e.target,
        e.requests_used,
        e.classified,
        e.unclassified.total,
        e.tolerance_pp,
        e.confidence
    );
    for v in &e.variants {
        let sides: Vec<String> = v
            .sides
            .iter()
            .map(|s| {
                let show = |x: f64| {
                    if x.is_finite() {
                        format!("{x:.2}")
                    } else {
                        format!("{x:+}")
                    }
                };
                format!(
                    "{} LLR {} (≤ {:.2} needed to accept), mixture {} ≥ {:.2} rejects: {:?}",
                    s.direction,
                    show(s.llr.0),
                    s.accept_threshold,
                    show(s.mixture_llr.0),
                    s.reject_threshold,
                    s.status
                )
            })
            .collect();
        outln!(
            "  {:<12} weight {:>3} %  hits {:>5}  share {:>6}  interval [{:.1} %, {:.1} %]  pass statistic {:.2} (≤ 0 accepts)  {}",
            v.name,
            v.weight_percent,
            v.hits,
            v.share
                .map(|s| format!("{:.1} %", s * 100.0))
                .unwrap_or_else(|| "-".into()),
            v.interval.low * 100.0,
            v.interval.high * 100.0,
            v.pass_statistic.0,
            sides.join("; ")
        );
    }
}
