//! The `canary` check in a trial: converge, then the sequential test.
//!
//! Right after a route changes, proxies pick the new weights up one by one; sampling during
//! that window would measure the transition, not the split. So the check first waits until the
//! route looks settled ([`ConvergeRule`]): `converge` consecutive classified responses, none of
//! them from a variant the new route gives no traffic (such a reply can only come from the old
//! route), counted only once every variant the route *does* give traffic has answered (before
//! a 90/10 route is live, everything is stable: the count would end on the old route), and not
//! before a settle time since the route was applied (xDS / policy-controller propagation). An
//! unclassified reply — a 503 while a route is reprogrammed, a reset — starts the count again. Only then is the same sample source handed to
//! [`crate::check::canary::run_canary`]. The verdict and evidence are the engine's, with the
//! convergence phase added to the evidence.

use crate::check::canary::{self, CanaryConfig, Classifier, Sample, TestParams};
use crate::check::{CheckName, Outcome, Verdict};
use crate::scenario::CanaryCheck;
use serde::Serialize;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long the proxies get to pick up a changed route before the convergence count may end.
pub const SETTLE: Duration = Duration::from_secs(5);

/// When a route counts as converged.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvergeRule {
    /// Consecutive classified responses.
    pub required: u32,
    /// Variants (indexes into the split) the route gives weight 0: a reply from one of them
    /// means the old route still answers, so the count starts again.
    pub excluded: Vec<usize>,
    /// Variants the route gives traffic: the count starts once each has answered.
    pub routed: Vec<usize>,
    /// The count cannot end before this much time has passed.
    pub settle: Duration,
}

impl ConvergeRule {
    /// The rule for `c`'s split: weight-0 variants excluded, [`SETTLE`].
    pub fn for_check(c: &CanaryCheck) -> ConvergeRule {
        let weights = c.split.weights();
        let (excluded, routed): (Vec<usize>, Vec<usize>) =
            (0..weights.len()).partition(|&i| weights[i].percent() == 0);
        ConvergeRule {
            required: c.converge,
            excluded,
            routed,
            settle: SETTLE,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConvergeEvidence {
    pub required: u32,
    pub sent: u64,
    pub unclassified: u64,
    pub last_unclassified: Option<String>,
    /// Replies from a variant the route gives no traffic (the old route still answering).
    pub from_excluded: u64,
    /// Classified replies before every routed variant had answered (not counted).
    pub before_all_seen: u64,
    pub seconds: f64,
}

/// Sends requests one at a time until `rule` holds, or `deadline` passes (`Err` with what was
/// seen).
pub async fn converge<F, Fut>(
    rule: &ConvergeRule,
    deadline: Duration,
    mut sample: F,
) -> Result<ConvergeEvidence, ConvergeEvidence>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Sample>,
{
    let start = Instant::now();
    let mut ev = ConvergeEvidence {
        required: rule.required,
        ..ConvergeEvidence::default()
    };
    let mut streak = 0u32;
    let mut seen = std::collections::BTreeSet::new();
    while streak < rule.required || start.elapsed() < rule.settle {
        let remaining = deadline.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            ev.seconds = start.elapsed().as_secs_f64();
            return Err(ev);
        }
        ev.sent += 1;
        match tokio::time::timeout(remaining, sample()).await {
            Ok(Sample::Variant(i)) if rule.excluded.contains(&i) => {
                streak = 0;
                seen.clear();
                ev.from_excluded += 1;
            }
            Ok(Sample::Variant(i)) => {
                seen.insert(i);
                if rule.routed.iter().all(|r| seen.contains(r)) {
                    streak = streak.saturating_add(1);
                } else {
                    ev.before_all_seen += 1;
                }
            }
            Ok(Sample::Unclassified(u)) => {
                streak = 0;
                ev.unclassified += 1;
                ev.last_unclassified = Some(format!("{:?}: {}", u.kind, u.detail));
                // Do not hammer a route that is being reprogrammed.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(_) => {
                ev.seconds = start.elapsed().as_secs_f64();
                return Err(ev);
            }
        }
    }
    ev.seconds = start.elapsed().as_secs_f64();
    Ok(ev)
}

/// The engine's split, tolerance and confidence from the scenario's check.
pub fn engine_config(c: &CanaryCheck, target: &str) -> Result<CanaryConfig, String> {
    CanaryConfig::new(
        target,
        c.split.clone(),
        TestParams {
            tolerance: c.tolerance,
            confidence: c.confidence,
        },
    )
    .with_max_requests(u64::from(c.max_requests))
    .map_err(|e| e.to_string())
}

/// The classifier for the check's variants (the sampler's job).
pub fn classifier(config: &CanaryConfig) -> Classifier {
    Classifier::new(&config.split)
}

/// Converge, then the sequential test; the whole check bounded by `c.timeout`.
pub async fn run_canary_check<F, Fut>(
    c: &CanaryCheck,
    config: &CanaryConfig,
    mut sample: F,
) -> Verdict<serde_json::Value>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Sample>,
{
    let start = Instant::now();
    let conv = converge(&ConvergeRule::for_check(c), c.timeout, &mut sample).await;
    let conv_ev = match conv {
        Ok(ev) => ev,
        Err(ev) => {
            let reason = format!(
                "the route did not converge: no {} consecutive classified responses from variants it routes to within {} ({} sent, {} unclassified, {} from weight-0 variants, last unclassified: {})",
                c.converge,
                humantime::format_duration(c.timeout),
                ev.sent,
                ev.unclassified,
                ev.from_excluded,
                ev.last_unclassified.as_deref().unwrap_or("none")
            );
            return Verdict::new(
                CheckName::Canary,
                Outcome::Error,
                vec![reason],
                serde_json::json!({ "converge": ev }),
            );
        }
    };
    let remaining = c.timeout.saturating_sub(start.elapsed());
    match tokio::time::timeout(remaining, canary::run_canary(config, sample)).await {
        Ok(v) => {
            let mut erased = v.erase();
            if let serde_json::Value::Object(m) = &mut erased.evidence {
                m.insert(
                    "converge".into(),
                    serde_json::to_value(&conv_ev).unwrap_or_default(),
                );
            }
            erased
        }
        Err(_) => Verdict::new(
            CheckName::Canary,
            Outcome::Error,
            vec![format!(
                "the sequential test did not decide within the check's timeout {}",
                humantime::format_duration(c.timeout)
            )],
            serde_json::json!({ "converge": conv_ev }),
        ),
    }
}

/// Where a canary check's traffic came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrafficSource {
    /// A meshed client pod calling the function's Service: where a Service-level split applies
    /// on every mesh and edition.
    MeshedClient,
    /// Requests through the OpenFaaS gateway (Pro only: its gateway calls Services).
    Gateway,
}

impl TrafficSource {
    fn label(self) -> &'static str {
        match self {
            TrafficSource::MeshedClient => "meshed client → Service",
            TrafficSource::Gateway => "through the gateway",
        }
    }
}

/// One verdict from the verdicts of each traffic source: the worst outcome, every reason
/// prefixed by its source, each source's evidence under its name. `skipped` says why a source
/// did not run (OpenFaaS CE's gateway calls pod IPs, where no split can apply).
pub fn combine(
    parts: Vec<(TrafficSource, Verdict<serde_json::Value>)>,
    skipped: Option<(TrafficSource, &str)>,
) -> Verdict<serde_json::Value> {
    let mut outcome = Outcome::Pass;
    let mut reasons = Vec::new();
    let mut evidence = serde_json::Map::new();
    for (source, v) in parts {
        outcome = outcome.worst(v.outcome);
        reasons.extend(v.reasons.iter().map(|r| format!("{}: {r}", source.label())));
        evidence.insert(
            serde_json::to_value(source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            v.evidence,
        );
    }
    if let Some((source, why)) = skipped {
        evidence.insert(
            format!(
                "{}-skipped",
                serde_json::to_value(source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
            serde_json::Value::String(why.to_string()),
        );
    }
    if evidence.is_empty() {
        outcome = Outcome::Error;
        reasons.push("no traffic source ran".into());
    }
    Verdict::new(
        CheckName::Canary,
        outcome,
        reasons,
        serde_json::Value::Object(evidence),
    )
}
