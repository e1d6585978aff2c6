//! The pure decision rule: one-sided Wald SPRTs per variant and side, with a fixed-sample
//! fallback when the request budget runs out. No I/O, no clock, no randomness: feed it the
//! index of the variant each response came from, one at a time, and it says
//! [`Step::Continue`] or [`Step::Decided`].
//!
//! See the parent module ([`crate::check::canary`]) for the statistics this implements and the
//! error rates it guarantees.

use super::interval::{wilson, ShareInterval};
use super::spec::{SpecError, TestParams, Weight};
use serde::{Serialize, Serializer};

/// Which side of the tolerance band an alternative hypothesis lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The true share is `weight − tolerance` or less.
    Low,
    /// The true share is `weight + tolerance` or more.
    High,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Low => "low",
            Direction::High => "high",
        })
    }
}

/// The state of one one-sided SPRT. Once it leaves `Running` it never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SideStatus {
    Running,
    /// The log-likelihood ratio fell to the accept threshold: evidence for `share = weight`.
    AcceptedH0,
    /// The log-likelihood ratio rose to the reject threshold: evidence for the alternative.
    RejectedH0,
}

/// What the rule concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleResult {
    Pass,
    Fail,
    /// Only after the request budget ran out with an interval straddling the band.
    Undecided,
}

/// What the fixed-sample fallback saw at the request limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fallback {
    /// Every variant's Wilson interval (at the confidence level) lies strictly inside its band.
    AllInside,
    /// This variant's Wilson interval (at the Bonferroni-corrected fail level) lies entirely
    /// outside its band, on this side.
    Outside {
        variant: usize,
        direction: Direction,
    },
    /// No interval is entirely outside, but these variants' intervals are not entirely inside.
    Straddles { variants: Vec<usize> },
}

/// Why the rule stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopReason {
    /// Every one-sided test accepted `share = weight`.
    AcceptedH0,
    /// This variant's test on this side rejected `share = weight`.
    RejectedH0 {
        variant: usize,
        direction: Direction,
    },
    /// The request budget ran out first; the fixed-sample fallback decided.
    MaxRequests { fallback: Fallback },
}

/// A decision and the number of classified observations it rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub result: RuleResult,
    pub reason: StopReason,
    pub observations: u64,
}

/// What [`SequentialTest::observe`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Continue,
    Decided(Decision),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SprtError {
    #[error("variant index {index} is out of range (the split has {len} variants)")]
    UnknownVariant { index: usize, len: usize },
}

/// How `1 − confidence` is spent, so that a reader can check the arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorBudget {
    /// Overall false-fail bound: `1 − confidence`.
    pub alpha: f64,
    /// Overall false-pass bound: `1 − confidence`.
    pub beta: f64,
    /// Number of one-sided tests (K): two per variant, minus sides that cannot be violated.
    pub one_sided_tests: usize,
    /// `α / (2K)`: each one-sided SPRT's false-reject bound.
    pub sprt_alpha_per_test: f64,
    /// `β / 2`: each one-sided SPRT's false-accept bound.
    pub sprt_beta_per_test: f64,
    /// `ln(1 / sprt_alpha_per_test)`: reject `share = weight` when the LLR reaches this.
    pub reject_threshold: f64,
    /// `ln(sprt_beta_per_test)`: accept `share = weight` when the LLR falls to this.
    pub accept_threshold: f64,
    /// Two-sided level of the intervals that must lie inside the band for a fallback pass: `c`.
    pub fallback_pass_level: f64,
    /// Two-sided level of the intervals that must lie outside the band for a fallback fail:
    /// `1 − α/K`.
    pub fallback_fail_level: f64,
}

/// A log-likelihood ratio; infinite when an observation is impossible under one hypothesis
/// (e.g. a hit on a weight-0 variant). Serialised as a number, or `"+inf"` / `"-inf"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llr(pub f64);

impl Serialize for Llr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == f64::INFINITY {
            s.serialize_str("+inf")
        } else if self.0 == f64::NEG_INFINITY {
            s.serialize_str("-inf")
        } else {
            s.serialize_f64(self.0)
        }
    }
}

/// Evidence about one one-sided test.
#[derive(Debug, Clone, Serialize)]
pub struct SideState {
    pub direction: Direction,
    /// The alternative share `weight ∓ tolerance` (clipped to exactly 0 or 1 at the edge).
    pub alternative_share: f64,
    pub llr: Llr,
    pub accept_threshold: f64,
    pub reject_threshold: f64,
    pub status: SideStatus,
}

/// Evidence about one variant at the current point of the test.
#[derive(Debug, Clone, Serialize)]
pub struct VariantState {
    pub weight_percent: u8,
    pub hits: u64,
    /// Observed share among classified responses; `None` before the first one.
    pub share: Option<f64>,
    /// Wilson interval at the confidence level.
    pub interval: ShareInterval,
    pub sides: Vec<SideState>,
}

#[derive(Debug, Clone)]
struct Side {
    variant: usize,
    direction: Direction,
    alternative: f64,
    /// LLR increment when a response comes from this variant: `ln(p1 / p0)`.
    hit_step: f64,
    /// LLR increment when it comes from another: `ln((1 − p1) / (1 − p0))`.
    miss_step: f64,
    llr: f64,
    status: SideStatus,
}

/// Alternatives closer than this to 0 or 1 are snapped to it, so that float noise in
/// `weight − tolerance` (e.g. 0.07 − 0.07000000000000001) neither invents nor drops a side.
const EDGE_EPS: f64 = 1e-12;

/// The sequential test for a whole split. Pure: all state is in the struct.
#[derive(Debug, Clone)]
pub struct SequentialTest {
    weights: Vec<Weight>,
    params: TestParams,
    budget: ErrorBudget,
    hits: Vec<u64>,
    n: u64,
    sides: Vec<Side>,
    decided: Option<Decision>,
}

impl SequentialTest {
    /// Builds the test for `weights` (≥ 2 entries summing to 100).
    pub fn new(weights: &[Weight], params: TestParams) -> Result<SequentialTest, SpecError> {
        if weights.len() < 2 {
            return Err(SpecError::TooFewVariants(weights.len()));
        }
        let sum: u32 = weights.iter().map(|w| u32::from(w.percent())).sum();
        if sum != 100 {
            return Err(SpecError::WeightSum(sum));
        }
        let delta = params.tolerance.share();
        let mut sides = Vec::new();
        for (variant, w) in weights.iter().enumerate() {
            let p0 = w.share();
            for direction in [Direction::Low, Direction::High] {
                let raw = match direction {
                    Direction::Low => p0 - delta,
                    Direction::High => p0 + delta,
                };
                // A side whose alternative lies outside [0, 1] cannot be violated: no share is
                // `weight − tolerance` or less when that is negative. Skip it.
                if !(-EDGE_EPS..=1.0 + EDGE_EPS).contains(&raw) {
                    continue;
                }
                let p1 = if raw.abs() < EDGE_EPS {
                    0.0
                } else if (raw - 1.0).abs() < EDGE_EPS {
                    1.0
                } else {
                    raw
                };
                // Infinite steps are intended: with p0 = 0 a hit has likelihood 0 under H0, so
                // ln(p1/p0) = +inf rejects at once; with p1 = 0 a hit refutes H1 outright.
                sides.push(Side {
                    variant,
                    direction,
                    alternative: p1,
                    hit_step: (p1 / p0).ln(),
                    miss_step: ((1.0 - p1) / (1.0 - p0)).ln(),
                    llr: 0.0,
                    status: SideStatus::Running,
                });
            }
        }
        let k = sides.len();
        let alpha = params.confidence.error_rate();
        let beta = alpha;
        let sprt_alpha = alpha / (2.0 * k as f64);
        let sprt_beta = beta / 2.0;
        let budget = ErrorBudget {
            alpha,
            beta,
            one_sided_tests: k,
            sprt_alpha_per_test: sprt_alpha,
            sprt_beta_per_test: sprt_beta,
            reject_threshold: (1.0 / sprt_alpha).ln(),
            accept_threshold: sprt_beta.ln(),
            fallback_pass_level: params.confidence.level(),
            fallback_fail_level: 1.0 - alpha / k as f64,
        };
        Ok(SequentialTest {
            weights: weights.to_vec(),
            params,
            budget,
            hits: vec![0; weights.len()],
            n: 0,
            sides,
            decided: None,
        })
    }

    /// Feeds one classified response. After a decision, further observations are ignored and
    /// the same decision is returned again.
    pub fn observe(&mut self, variant: usize) -> Result<Step, SprtError> {
        if variant >= self.weights.len() {
            return Err(SprtError::UnknownVariant {
                index: variant,
                len: self.weights.len(),
            });
        }
        if let Some(d) = &self.decided {
            return Ok(Step::Decided(d.clone()));
        }
        self.n += 1;
        self.hits[variant] += 1;
        let (reject, accept) = (self.budget.reject_threshold, self.budget.accept_threshold);
        for side in self
            .sides
            .iter_mut()
            .filter(|s| s.status == SideStatus::Running)
        {
            side.llr += if side.variant == variant {
                side.hit_step
            } else {
                side.miss_step
            };
            if side.llr >= reject {
                side.status = SideStatus::RejectedH0;
            } else if side.llr <= accept {
                side.status = SideStatus::AcceptedH0;
            }
        }
        let decision = if let Some(s) = self
            .sides
            .iter()
            .find(|s| s.status == SideStatus::RejectedH0)
        {
            Some(Decision {
                result: RuleResult::Fail,
                reason: StopReason::RejectedH0 {
                    variant: s.variant,
                    direction: s.direction,
                },
                observations: self.n,
            })
        } else if self
            .sides
            .iter()
            .all(|s| s.status == SideStatus::AcceptedH0)
        {
            Some(Decision {
                result: RuleResult::Pass,
                reason: StopReason::AcceptedH0,
                observations: self.n,
            })
        } else {
            None
        };
        Ok(match decision {
            Some(d) => {
                self.decided = Some(d.clone());
                Step::Decided(d)
            }
            None => Step::Continue,
        })
    }

    /// Ends the test now (the request budget ran out): the sequential decision if there is
    /// one, else the fixed-sample fallback on the observations so far.
    pub fn conclude(&mut self) -> Decision {
        if let Some(d) = &self.decided {
            return d.clone();
        }
        let fallback = self.fallback();
        let result = match &fallback {
            Fallback::AllInside => RuleResult::Pass,
            Fallback::Outside { .. } => RuleResult::Fail,
            Fallback::Straddles { .. } => RuleResult::Undecided,
        };
        let d = Decision {
            result,
            reason: StopReason::MaxRequests { fallback },
            observations: self.n,
        };
        self.decided = Some(d.clone());
        d
    }

    fn fallback(&self) -> Fallback {
        let delta = self.params.tolerance.share();
        for (v, w) in self.weights.iter().enumerate() {
            let i = wilson(self.hits[v], self.n, self.budget.fallback_fail_level);
            let p0 = w.share();
            if i.low >= p0 + delta {
                return Fallback::Outside {
                    variant: v,
                    direction: Direction::High,
                };
            }
            if i.high <= p0 - delta {
                return Fallback::Outside {
                    variant: v,
                    direction: Direction::Low,
                };
            }
        }
        let straddling: Vec<usize> = self
            .weights
            .iter()
            .enumerate()
            .filter(|(v, w)| {
                let i = wilson(self.hits[*v], self.n, self.budget.fallback_pass_level);
                !i.inside(w.share() - delta, w.share() + delta)
            })
            .map(|(v, _)| v)
            .collect();
        if straddling.is_empty() {
            Fallback::AllInside
        } else {
            Fallback::Straddles {
                variants: straddling,
            }
        }
    }

    /// Classified observations so far.
    pub fn observations(&self) -> u64 {
        self.n
    }

    pub fn budget(&self) -> &ErrorBudget {
        &self.budget
    }

    pub fn params(&self) -> TestParams {
        self.params
    }

    pub fn decision(&self) -> Option<&Decision> {
        self.decided.as_ref()
    }

    /// Per-variant evidence: counts, share, Wilson interval, and each side's LLR and status.
    pub fn snapshot(&self) -> Vec<VariantState> {
        self.weights
            .iter()
            .enumerate()
            .map(|(v, w)| VariantState {
                weight_percent: w.percent(),
                hits: self.hits[v],
                share: (self.n > 0).then(|| self.hits[v] as f64 / self.n as f64),
                interval: wilson(self.hits[v], self.n, self.params.confidence.level()),
                sides: self
                    .sides
                    .iter()
                    .filter(|s| s.variant == v)
                    .map(|s| SideState {
                        direction: s.direction,
                        alternative_share: s.alternative,
                        llr: Llr(s.llr),
                        accept_threshold: self.budget.accept_threshold,
                        reject_threshold: self.budget.reject_threshold,
                        status: s.status,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Runs the test over a stream of variant indices, at most `max` of them, concluding with the
/// fallback if the stream or the budget runs out first. For simulations and tests.
pub fn run_to_decision(
    test: &mut SequentialTest,
    stream: impl IntoIterator<Item = usize>,
    max: u64,
) -> Result<Decision, SprtError> {
    for v in stream
        .into_iter()
        .take(usize::try_from(max).unwrap_or(usize::MAX))
    {
        if let Step::Decided(d) = test.observe(v)? {
            return Ok(d);
        }
    }
    Ok(test.conclude())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::canary::spec::{Confidence, Tolerance};

    fn params(tol: f64, conf: f64) -> TestParams {
        TestParams {
            tolerance: Tolerance::from_points(tol).unwrap(),
            confidence: Confidence::new(conf).unwrap(),
        }
    }
    fn w(ws: &[u8]) -> Vec<Weight> {
        ws.iter().map(|&x| Weight::new(x).unwrap()).collect()
    }

    #[test]
    fn budget_splits_alpha_over_sides_and_halves_for_the_fallback() {
        let t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let b = t.budget();
        assert_eq!(b.one_sided_tests, 4);
        assert!((b.sprt_alpha_per_test - 0.01 / 8.0).abs() < 1e-15);
        assert!((b.sprt_beta_per_test - 0.005).abs() < 1e-15);
        assert!((b.reject_threshold - 800f64.ln()).abs() < 1e-9);
        assert!((b.fallback_fail_level - (1.0 - 0.01 / 4.0)).abs() < 1e-12);
    }

    #[test]
    fn edge_weights_drop_impossible_sides() {
        // 100/0: variant 0 has only a low side, variant 1 only a high side.
        let t = SequentialTest::new(&w(&[100, 0]), params(5.0, 0.99)).unwrap();
        assert_eq!(t.budget().one_sided_tests, 2);
        // 97/3 with ±5: the 3 % variant has no low side (3 − 5 < 0), 97 % no high side.
        let t = SequentialTest::new(&w(&[97, 3]), params(5.0, 0.99)).unwrap();
        assert_eq!(t.budget().one_sided_tests, 2);
        // 95/5 with ±5: the low alternative of 5 % is exactly 0 and is kept.
        let t = SequentialTest::new(&w(&[95, 5]), params(5.0, 0.99)).unwrap();
        assert_eq!(t.budget().one_sided_tests, 4);
    }

    #[test]
    fn one_hit_on_a_weight_zero_variant_fails_at_once() {
        let mut t = SequentialTest::new(&w(&[100, 0]), params(5.0, 0.99)).unwrap();
        for _ in 0..10 {
            assert_eq!(t.observe(0).unwrap(), Step::Continue);
        }
        match t.observe(1).unwrap() {
            Step::Decided(d) => {
                assert_eq!(d.result, RuleResult::Fail);
                assert_eq!(d.observations, 11);
            }
            Step::Continue => panic!("a hit on a weight-0 variant must decide"),
        }
    }

    #[test]
    fn all_traffic_to_the_weight_100_variant_passes_after_enough_requests() {
        let mut t = SequentialTest::new(&w(&[100, 0]), params(5.0, 0.99)).unwrap();
        // Accept when n·ln(0.95) ≤ ln(0.005): n ≥ 103.3.
        let d = run_to_decision(&mut t, std::iter::repeat(0), 2000).unwrap();
        assert_eq!(d.result, RuleResult::Pass);
        assert_eq!(d.observations, 104);
    }

    #[test]
    fn unknown_variant_is_an_error_not_a_panic() {
        let mut t = SequentialTest::new(&w(&[50, 50]), params(5.0, 0.99)).unwrap();
        assert_eq!(
            t.observe(2),
            Err(SprtError::UnknownVariant { index: 2, len: 2 })
        );
    }

    #[test]
    fn fallback_straddles_when_data_is_thin() {
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let d = run_to_decision(&mut t, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 10).unwrap();
        assert_eq!(d.result, RuleResult::Undecided);
        assert!(matches!(
            d.reason,
            StopReason::MaxRequests {
                fallback: Fallback::Straddles { .. }
            }
        ));
    }

    #[test]
    fn fallback_passes_and_fails_on_clear_intervals() {
        // Force the fallback with a large tolerance-free trace: 9 of every 10 to variant 0.
        let trace: Vec<usize> = (0..3000).map(|i| usize::from(i % 10 == 0)).collect();
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let d = run_to_decision(&mut t, trace.iter().copied(), 3000).unwrap();
        // The SPRT itself accepts long before the limit.
        assert_eq!(d.result, RuleResult::Pass);
        assert_eq!(d.reason, StopReason::AcceptedH0);

        // At a limit of 60 the SPRT has not decided on an exact 90/10 trace (it needs ~250
        // observations to accept the low sides); the intervals straddle: undecided.
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let d = run_to_decision(&mut t, trace.iter().copied(), 60).unwrap();
        assert_eq!(d.result, RuleResult::Undecided, "{d:?}");

        // 50/50 ±10 pp at 90 %, twelve responses all from variant 0: the SPRT is still running
        // (12·ln 1.2 = 2.19 < ln 80 = 4.38), but the 97.5 % Wilson interval for variant 0 is
        // [0.71, 1], entirely above 60 %: the fallback fails high.
        let mut t = SequentialTest::new(&w(&[50, 50]), params(10.0, 0.9)).unwrap();
        let d = run_to_decision(&mut t, std::iter::repeat(0), 12).unwrap();
        assert_eq!(d.result, RuleResult::Fail, "{d:?}");
        assert_eq!(
            d.reason,
            StopReason::MaxRequests {
                fallback: Fallback::Outside {
                    variant: 0,
                    direction: Direction::High
                }
            }
        );
    }
}
