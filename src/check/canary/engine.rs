//! Drives the pure [`SequentialTest`] from any source of samples, enforces the request budget
//! and the unclassified-response budget, and turns the outcome into a [`Verdict`].
//!
//! The source is an async closure "send one request, return a classified [`Sample`]", so the
//! same engine runs from this machine over HTTP ([`super::sampler::HttpSampler`]) or, later,
//! from a pod inside the cluster.
//!
//! Requests are sent with bounded concurrency, but outcomes are fed to the test **in the order
//! the requests were issued**, not the order they completed. Were they fed by completion, a
//! slower variant would be systematically under-represented at the moment the test stops; in
//! issue order the fed sequence is exactly the i.i.d. sequence the statistics assume, and the
//! stop is a proper stopping time on it. Responses to requests issued after the deciding one
//! are discarded (and counted in `requests_sent`).

use super::classify::{Sample, Unclassified, UnclassifiedKind};
use super::interval::ShareInterval;
use super::spec::{SpecError, Split, TestParams};
use super::sprt::{
    Decision, Direction, ErrorBudget, Fallback, Llr, RuleResult, SequentialTest, SideState, Step,
    StopReason,
};
use crate::check::{CheckName, Outcome, Verdict};
use futures::stream::{FuturesUnordered, StreamExt};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

/// Largest `--concurrency` accepted: enough to saturate any test service, small enough not to
/// become a load test.
pub const MAX_CONCURRENCY: usize = 64;

/// How many unclassified outcomes are tolerated before the verdict is ERROR.
///
/// Both limits apply: more than `max_count` unclassified outcomes at any point stops the run
/// at once; at the end, more than `max_fraction` of all requests unclassified is also ERROR
/// (this binds only for short runs: 5 of fewer than 250). A handful is allowed because a mesh
/// under test may drop a connection during a rollout; more is a finding that must be looked at
/// and would bias the shares (the lost responses are not a random sample of variants).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct UnclassifiedBudget {
    pub max_count: u64,
    pub max_fraction: f64,
}

impl Default for UnclassifiedBudget {
    fn default() -> Self {
        UnclassifiedBudget {
            max_count: 5,
            max_fraction: 0.02,
        }
    }
}

/// Everything the engine needs besides the sample source. Built validated.
#[derive(Debug, Clone)]
pub struct CanaryConfig {
    /// What is being sampled, for the evidence (a URL, a service name…).
    pub target: String,
    pub split: Split,
    pub params: TestParams,
    max_requests: u64,
    concurrency: usize,
    /// Applied to every sample by the engine itself, whatever the source does.
    pub request_timeout: Duration,
    pub unclassified_budget: UnclassifiedBudget,
}

impl CanaryConfig {
    /// Defaults: 2000 requests at most, concurrency 4, 5 s per request, the default budget.
    pub fn new(target: impl Into<String>, split: Split, params: TestParams) -> CanaryConfig {
        CanaryConfig {
            target: target.into(),
            split,
            params,
            max_requests: 2000,
            concurrency: 4,
            request_timeout: Duration::from_secs(5),
            unclassified_budget: UnclassifiedBudget::default(),
        }
    }

    pub fn with_max_requests(mut self, n: u64) -> Result<CanaryConfig, SpecError> {
        if n == 0 {
            return Err(SpecError::ZeroMaxRequests);
        }
        self.max_requests = n;
        Ok(self)
    }

    pub fn with_concurrency(mut self, k: usize) -> Result<CanaryConfig, SpecError> {
        if k == 0 || k > MAX_CONCURRENCY {
            return Err(SpecError::BadConcurrency {
                got: k,
                max: MAX_CONCURRENCY,
            });
        }
        self.concurrency = k;
        Ok(self)
    }

    pub fn max_requests(&self) -> u64 {
        self.max_requests
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// One variant in the evidence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VariantEvidence {
    pub name: String,
    pub weight_percent: u8,
    pub hits: u64,
    pub share: Option<f64>,
    /// Wilson score interval at the confidence level.
    pub interval: ShareInterval,
    /// `ln Σ λ_s·LR_s` over the variant's sides; the variant is accepted at ≤ 0.
    pub pass_statistic: Llr,
    /// The one-sided SPRTs: LLR, thresholds and status at the stop.
    pub sides: Vec<SideState>,
}

/// Unclassified outcomes in the evidence.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnclassifiedEvidence {
    pub total: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub budget: UnclassifiedBudget,
    /// The first few, with details, to start debugging from.
    pub examples: Vec<Unclassified>,
}

/// Why sampling stopped.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stop {
    /// The decision rule decided (sequentially, or by the fallback at the request limit).
    Rule { decision: Decision },
    /// Too many unclassified outcomes; the rule's state at that point is still in the evidence.
    UnclassifiedBudgetExceeded { unclassified: u64 },
}

/// Everything a reader needs to check a canary verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CanaryEvidence {
    pub target: String,
    pub tolerance_pp: f64,
    pub confidence: f64,
    pub max_requests: u64,
    pub concurrency: usize,
    /// Requests whose outcome was fed to the test, in issue order (classified + unclassified).
    pub requests_used: u64,
    /// Requests sent, including in-flight ones discarded after the decision.
    pub requests_sent: u64,
    /// Responses attributed to exactly one variant: the test's sample size.
    pub classified: u64,
    pub variants: Vec<VariantEvidence>,
    pub unclassified: UnclassifiedEvidence,
    pub error_budget: ErrorBudget,
    pub stop: Stop,
}

const EXAMPLES_KEPT: usize = 5;

/// Runs the canary check: calls `send` (at most `concurrency` at a time, at most
/// `max_requests` times, each bounded by `request_timeout`) until the test decides, and returns
/// the verdict with its evidence.
///
/// `send` must return [`Sample::Variant`] with an index into `config.split`; an out-of-range
/// index is recorded as unclassified rather than trusted.
pub async fn run_canary<F, Fut>(config: &CanaryConfig, mut send: F) -> Verdict<CanaryEvidence>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Sample>,
{
    let mut test = match SequentialTest::new(&config.split.weights(), config.params) {
        Ok(t) => t,
        // A `Split` is already validated; this cannot happen, but never panic on it.
        Err(e) => {
            return Verdict::new(
                CheckName::Canary,
                Outcome::Error,
                vec![e.to_string()],
                empty_evidence(config),
            );
        }
    };
    let mut tally = Tally::default();
    let mut in_flight = FuturesUnordered::new();
    let mut completed: BTreeMap<u64, Sample> = BTreeMap::new();
    let (mut issued, mut fed) = (0u64, 0u64);
    let timeout = config.request_timeout;

    let stop = 'run: loop {
        // Outstanding = in flight + completed but not yet fed (waiting for an earlier one).
        // Bounding both keeps at most `concurrency` responses discarded after the decision.
        while issued - fed < config.concurrency as u64 && issued < config.max_requests {
            let seq = issued;
            let fut = send();
            in_flight.push(async move {
                let s = match tokio::time::timeout(timeout, fut).await {
                    Ok(s) => s,
                    Err(_) => Sample::unclassified(
                        UnclassifiedKind::Timeout,
                        format!("no response within {timeout:?}"),
                    ),
                };
                (seq, s)
            });
            issued += 1;
        }
        match in_flight.next().await {
            Some((seq, s)) => {
                completed.insert(seq, s);
            }
            None => {
                break 'run Stop::Rule {
                    decision: test.conclude(),
                }
            }
        }
        while let Some(sample) = completed.remove(&fed) {
            fed += 1;
            match sample {
                Sample::Variant(v) => match test.observe(v) {
                    Ok(Step::Continue) => {}
                    Ok(Step::Decided(d)) => break 'run Stop::Rule { decision: d },
                    Err(e) => tally.record(Unclassified {
                        kind: UnclassifiedKind::NoMatch,
                        detail: e.to_string(),
                    }),
                },
                Sample::Unclassified(u) => tally.record(u),
            }
            if tally.total > config.unclassified_budget.max_count {
                break 'run Stop::UnclassifiedBudgetExceeded {
                    unclassified: tally.total,
                };
            }
        }
    };
    drop(in_flight);
    finish(config, &test, tally, fed, issued, stop)
}

#[derive(Debug, Default)]
struct Tally {
    total: u64,
    by_kind: BTreeMap<String, u64>,
    examples: Vec<Unclassified>,
}

impl Tally {
    fn record(&mut self, u: Unclassified) {
        self.total += 1;
        let key = serde_json::to_value(u.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        *self.by_kind.entry(key).or_insert(0) += 1;
        if self.examples.len() < EXAMPLES_KEPT {
            self.examples.push(u);
        }
    }
}

fn empty_evidence(config: &CanaryConfig) -> CanaryEvidence {
    CanaryEvidence {
        target: config.target.clone(),
        tolerance_pp: config.params.tolerance.points(),
        confidence: config.params.confidence.level(),
        max_requests: config.max_requests,
        concurrency: config.concurrency,
        requests_used: 0,
        requests_sent: 0,
        classified: 0,
        variants: vec![],
        unclassified: UnclassifiedEvidence {
            total: 0,
            by_kind: BTreeMap::new(),
            budget: config.unclassified_budget,
            examples: vec![],
        },
        error_budget: ErrorBudget {
            alpha: f64::NAN,
            beta: f64::NAN,
            one_sided_tests: 0,
            fallback_share: f64::NAN,
            sprt_alpha_per_test: f64::NAN,
            sprt_beta_per_test: f64::NAN,
            reject_threshold: f64::NAN,
            accept_threshold: f64::NAN,
            fallback_pass_error: f64::NAN,
            fallback_fail_error: f64::NAN,
        },
        stop: Stop::UnclassifiedBudgetExceeded { unclassified: 0 },
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

fn finish(
    config: &CanaryConfig,
    test: &SequentialTest,
    tally: Tally,
    fed: u64,
    issued: u64,
    stop: Stop,
) -> Verdict<CanaryEvidence> {
    let names = config.split.names();
    let variants: Vec<VariantEvidence> = test
        .snapshot()
        .into_iter()
        .zip(names.iter())
        .map(|(s, name)| VariantEvidence {
            name: name.clone(),
            weight_percent: s.weight_percent,
            hits: s.hits,
            share: s.share,
            interval: s.interval,
            pass_statistic: s.pass_statistic,
            sides: s.sides,
        })
        .collect();
    let tol = config.params.tolerance.points();
    let describe = |v: usize| -> String {
        let e = &variants[v];
        format!(
            "{}: {} of {} responses ({}, {:.0} % interval [{}, {}]) against weight {} % ± {} pp",
            e.name,
            e.hits,
            test.observations(),
            e.share.map(pct).unwrap_or_else(|| "no data".into()),
            config.params.confidence.level() * 100.0,
            pct(e.interval.low),
            pct(e.interval.high),
            e.weight_percent,
            tol
        )
    };

    let mut reasons = Vec::new();
    let budget = config.unclassified_budget;
    let over_fraction = fed > 0 && tally.total as f64 > budget.max_fraction * fed as f64;
    let outcome = match &stop {
        Stop::UnclassifiedBudgetExceeded { unclassified } => {
            reasons.push(format!(
                "{unclassified} of {fed} responses could not be attributed to a variant (budget: at most {} and at most {:.0} %): {}",
                budget.max_count,
                budget.max_fraction * 100.0,
                kinds(&tally)
            ));
            let first = tally
                .examples
                .first()
                .map(|u| format!("; the first: {:?} {}", u.kind, u.detail))
                .unwrap_or_default();
            reasons.push(format!(
                "the traffic split cannot be judged while responses are lost or unrecognisable (all kept under unclassified.examples){first}"
            ));
            Outcome::Error
        }
        Stop::Rule { decision } => {
            let mut outcome = match decision.result {
                RuleResult::Pass => {
                    reasons.push(match &decision.reason {
                        StopReason::MaxRequests { .. } => format!(
                            "every share lies inside its band by exact binomial tests after {} classified responses of {fed} requests (request limit reached; fixed-sample rule)",
                            decision.observations
                        ),
                        _ => format!(
                            "every sequential test accepted share = weight after {} classified responses of {fed} requests",
                            decision.observations
                        ),
                    });
                    // The shares and intervals the pass rests on, so that a reader sees how
                    // close to an edge each one came.
                    reasons.extend((0..variants.len()).map(describe));
                    Outcome::Pass
                }
                RuleResult::Fail => {
                    let which = match &decision.reason {
                        StopReason::RejectedH0 { variant, direction } => Some((
                            *variant,
                            *direction,
                            "the sequential test rejected share = weight",
                        )),
                        StopReason::MaxRequests {
                            fallback: Fallback::Outside { variant, direction },
                        } => Some((
                            *variant,
                            *direction,
                            "at the request limit its interval lies entirely outside the band",
                        )),
                        _ => None,
                    };
                    match which {
                        Some((v, dir, how)) => {
                            let side = match dir {
                                Direction::Low => "below",
                                Direction::High => "above",
                            };
                            reasons.push(format!(
                                "{}'s share is {tol} pp or more {side} its weight of {} %: {how} after {} classified responses",
                                variants[v].name, variants[v].weight_percent, decision.observations
                            ));
                            reasons.push(describe(v));
                        }
                        // A Fail always carries one of the reasons above; say so if not.
                        None => reasons.push(format!(
                            "the decision rule failed the split: {:?}",
                            decision.reason
                        )),
                    }
                    Outcome::Fail
                }
                RuleResult::Undecided => {
                    let straddling = match &decision.reason {
                        StopReason::MaxRequests {
                            fallback: Fallback::Straddles { variants },
                        } => variants.clone(),
                        _ => vec![],
                    };
                    reasons.push(format!(
                        "undecided: --max-requests {} reached and the interval straddles the band; raise --max-requests or widen --tolerance",
                        config.max_requests
                    ));
                    for v in straddling {
                        reasons.push(describe(v));
                    }
                    Outcome::Error
                }
            };
            if tally.total > 0 && over_fraction {
                reasons.insert(
                    0,
                    format!(
                        "{} of {fed} responses could not be attributed to a variant (more than {:.0} %): {}; the shares may be biased",
                        tally.total,
                        budget.max_fraction * 100.0,
                        kinds(&tally)
                    ),
                );
                outcome = Outcome::Error;
            }
            outcome
        }
    };

    let evidence = CanaryEvidence {
        target: config.target.clone(),
        tolerance_pp: tol,
        confidence: config.params.confidence.level(),
        max_requests: config.max_requests,
        concurrency: config.concurrency,
        requests_used: fed,
        requests_sent: issued,
        classified: test.observations(),
        variants,
        unclassified: UnclassifiedEvidence {
            total: tally.total,
            by_kind: tally.by_kind,
            budget,
            examples: tally.examples,
        },
        error_budget: *test.budget(),
        stop,
    };
    Verdict::new(CheckName::Canary, outcome, reasons, evidence)
}

fn kinds(t: &Tally) -> String {
    t.by_kind
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}
