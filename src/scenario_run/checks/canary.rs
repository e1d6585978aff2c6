//! The `canary` check in a trial: converge, then the sequential test.
//!
//! Right after a route changes, proxies pick the new weights up one by one; sampling during
//! that window would measure the transition, not the split. So the check first waits for
//! `converge` consecutive classified responses (any variant; an unclassified one — 503 while a
//! route is reprogrammed, a reset — starts the count again), and only then hands the same
//! sample source to [`crate::check::canary::run_canary`]. The verdict and evidence are the
//! engine's, with the convergence phase added to the evidence.

use crate::check::canary::{self, CanaryConfig, Classifier, Sample, TestParams};
use crate::check::{CheckName, Outcome, Verdict};
use crate::scenario::CanaryCheck;
use serde::Serialize;
use std::future::Future;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConvergeEvidence {
    pub required: u32,
    pub sent: u64,
    pub unclassified: u64,
    pub last_unclassified: Option<String>,
    pub seconds: f64,
}

/// Sends requests one at a time until `required` consecutive ones are classified, or
/// `deadline` passes (`Err` with what was seen).
pub async fn converge<F, Fut>(
    required: u32,
    deadline: Duration,
    mut sample: F,
) -> Result<ConvergeEvidence, ConvergeEvidence>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Sample>,
{
    let start = Instant::now();
    let mut ev = ConvergeEvidence {
        required,
        ..ConvergeEvidence::default()
    };
    let mut streak = 0u32;
    while streak < required {
        let remaining = deadline.saturating_sub(start.elapsed());
        if remaining.is_zero() {
            ev.seconds = start.elapsed().as_secs_f64();
            return Err(ev);
        }
        ev.sent += 1;
        match tokio::time::timeout(remaining, sample()).await {
            Ok(Sample::Variant(_)) => streak += 1,
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
    CanaryConfig::new(target, c.split.clone(), TestParams { tolerance: c.tolerance, confidence: c.confidence })
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
    let conv = converge(c.converge, c.timeout, &mut sample).await;
    let conv_ev = match conv {
        Ok(ev) => ev,
        Err(ev) => {
            let reason = format!(
                "the route did not converge: no {} consecutive classified responses within {} ({} sent, {} unclassified, last: {})",
                c.converge,
                humantime::format_duration(c.timeout),
                ev.sent,
                ev.unclassified,
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
