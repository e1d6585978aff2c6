//! The pure decision rule: per variant and side, a one-sided sequential test that *accepts*
//! `share = weight` by Wald's likelihood ratio against the band's edge and *rejects* it by a
//! mixture of likelihood ratios against the edge and shares beyond it; at the request limit, a
//! fixed-sample fallback of exact binomial tests. No I/O, no clock, no randomness: feed it the
//! index of the variant each response came from, one at a time, and it says
//! [`Step::Continue`] or [`Step::Decided`].
//!
//! See the parent module ([`crate::check::canary`]) for the statistics this implements, the
//! error-budget rule and its proof.

use super::calibrate::{calibrate, log_sum_exp, Calibration, Ratio, SideModel};
use super::interval::{binomial_at_least, binomial_at_most, wilson, ShareInterval};
use super::spec::{SpecError, TestParams, Weight};
use serde::{Serialize, Serializer};

/// The part of each error budget (false fail α and false pass β) kept for the fixed-sample
/// fallback at `--max-requests`; the sequential tests spend the rest.
///
/// Small, because with the default limit the sequential test has almost always decided before
/// the fallback is reached (at 90/10 ±5 pp, 99 %: in all but ~0.1 % of runs), so budget given
/// to the fallback is mostly never used; but not zero, so that a run cut short by a low
/// `--max-requests` can still pass or fail on clear data (at n = 2000 an exact bound at error
/// 2·10⁻⁴ is still only ~3.5 standard errors wide). Every 1/10 taken from the sequential test
/// costs a correct 90/10 split ~10 requests on average (bench), so 1/50.
pub const FALLBACK_SHARE: f64 = 0.02;

/// The prior weight of the edge alternative `weight ± tolerance` in a side's rejection
/// mixture; the rest is spread evenly over the shares farther out (see [`Side`]).
const EDGE_WEIGHT: f64 = 0.5;

/// At most this many alternatives in a rejection mixture: the edge, its doublings, the end of
/// [0, 1]. Bounds the work per observation for tiny tolerances (which need huge samples anyway).
const MAX_ALTERNATIVES: usize = 10;

/// Which side of the tolerance band an alternative hypothesis lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The true share is `weight − tolerance` or less.
    Low,
    /// The true share is `weight + tolerance` or more.
    High,
}

impl Direction {
    fn opposite(self) -> Direction {
        match self {
            Direction::Low => Direction::High,
            Direction::High => Direction::Low,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::Low => "low",
            Direction::High => "high",
        })
    }
}

/// The state of one one-sided test. Once it leaves `Running` it never changes again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SideStatus {
    Running,
    /// The log-likelihood ratio against the edge fell to the accept threshold: evidence for
    /// `share = weight`.
    AcceptedH0,
    /// The log of the mixture likelihood ratio rose to the reject threshold: evidence that the
    /// share lies at the edge or beyond.
    RejectedH0,
}

/// What the rule concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleResult {
    Pass,
    Fail,
    /// Only after the request budget ran out with a share neither inside nor outside its band.
    Undecided,
}

/// What the fixed-sample fallback saw at the request limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fallback {
    /// For every one-sided test, the exact one-sided bound (at error `φ·β`) lies strictly inside
    /// the band: every share is inside its band.
    AllInside,
    /// This variant's exact one-sided bound (at error `φ·α / K`) lies at or beyond its band's
    /// edge on this side.
    Outside {
        variant: usize,
        direction: Direction,
    },
    /// No share is confidently outside, but these variants' shares are not confidently inside.
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

/// How `1 − confidence` is spent, so that a reader can check the arithmetic (the rule and its
/// proof are in the parent module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorBudget {
    /// Overall false-fail bound: `1 − confidence`.
    pub alpha: f64,
    /// Overall false-pass bound: `1 − confidence`.
    pub beta: f64,
    /// Number of distinct one-sided tests (K): two per variant, minus sides that cannot be
    /// violated; in a two-variant split one variant's sides are the other's, counted once.
    pub one_sided_tests: usize,
    /// φ: the part of α and of β kept for the fallback at the request limit.
    pub fallback_share: f64,
    /// `(1 − φ)·α / K`: each sequential test's false-reject bound (a union over K tests).
    pub sprt_alpha_per_test: f64,
    /// `(1 − φ)·β`: each sequential test's false-accept bound, not divided (a pass needs every
    /// test to accept, so one test's false accept is not enough to pass).
    pub sprt_beta_per_test: f64,
    /// `ln(1 / sprt_alpha_per_test)`: reject `share = weight` when the log of the mixture
    /// likelihood ratio reaches this.
    pub reject_threshold: f64,
    /// `ln(sprt_beta_per_test)`: accept `share = weight` when the log-likelihood ratio against
    /// the edge falls to this.
    pub accept_threshold: f64,
    /// `φ·β`: error of each exact one-sided bound that must lie inside the band for a
    /// fallback pass.
    pub fallback_pass_error: f64,
    /// `φ·α / K`: error of each exact one-sided bound that must lie beyond the band's edge
    /// for a fallback fail.
    pub fallback_fail_error: f64,
}

impl ErrorBudget {
    /// The budget for `k` distinct one-sided tests at error rates `alpha` and `beta`.
    pub fn new(alpha: f64, beta: f64, k: usize) -> ErrorBudget {
        let phi = FALLBACK_SHARE;
        // K ≥ 1 for any valid split (every variant keeps a side); max(1) keeps a hand-built
        // budget finite.
        let k_f = k.max(1) as f64;
        let sprt_alpha = (1.0 - phi) * alpha / k_f;
        let sprt_beta = (1.0 - phi) * beta;
        ErrorBudget {
            alpha,
            beta,
            one_sided_tests: k,
            fallback_share: phi,
            sprt_alpha_per_test: sprt_alpha,
            sprt_beta_per_test: sprt_beta,
            reject_threshold: (1.0 / sprt_alpha).ln(),
            accept_threshold: sprt_beta.ln(),
            fallback_pass_error: phi * beta,
            fallback_fail_error: phi * alpha / k_f,
        }
    }
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
    /// Log-likelihood ratio against the edge (the accept statistic).
    pub llr: Llr,
    /// Log of the mixture likelihood ratio (the reject statistic).
    pub mixture_llr: Llr,
    /// `−ln λ_s`: the variant's pass statistic can reach 0 only once this side's `llr` is at or
    /// below this (necessary, not sufficient: both sides count at once).
    pub accept_threshold: f64,
    /// Upper bound on the probability that the split passes when the true share is at this
    /// side's edge or beyond: exact ([`super::calibrate`]) when `calibrated`, else Ville's
    /// `β_s`.
    pub false_pass_bound: f64,
    pub calibrated: bool,
    pub reject_threshold: f64,
    pub status: SideStatus,
    /// In a two-variant split, this side is the other variant's opposite side seen from here
    /// (one variant's share is too low exactly when the other's is too high): the same test,
    /// counted once in the budget.
    pub mirrored: bool,
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
    /// `ln Σ_s λ_s·LR_s` over the variant's sides: the variant is accepted once it is ≤ 0
    /// (frozen from then on). In a two-variant split both variants show the tested one's.
    pub pass_statistic: Llr,
    pub sides: Vec<SideState>,
}

/// One likelihood ratio `LR_j = Π P_j(x)/P_0(x)` inside a rejection mixture, and its current
/// log value.
#[derive(Debug, Clone)]
struct Component {
    ratio: Ratio,
    llr: f64,
}

/// One one-sided test on the stream "did this response come from `variant`?".
///
/// Accept statistic: `ln LR` of the edge `p1 = p0 ± δ` against `p0`, Wald's SPRT statistic.
/// Reject statistic: `ln Σ_j π_j LR_j` over the alternatives `p0 ± δ·2^j` and the end of [0, 1]
/// on this side, with `π = 1/2` on the edge and the rest spread evenly. The mixture is still a
/// mean-one martingale under `p0`, so Ville's inequality bounds its false rejections exactly as
/// for a single ratio; but a share far from its weight (50 % against 10 %) is rejected at the
/// speed of the alternative nearest to it instead of the edge's, for a constant `ln(1/π_j)`.
#[derive(Debug, Clone)]
struct Side {
    variant: usize,
    direction: Direction,
    alternative: f64,
    hit_step: f64,
    miss_step: f64,
    llr: f64,
    mixture: Vec<Component>,
    mixture_llr: f64,
    status: SideStatus,
}

/// How one variant's sides are accepted: together, once the *pass statistic*
/// `ln Σ_s λ_s·LR_s` (each side's likelihood ratio of its edge against the weight) is ≤ 0 — the
/// pass region, an interval of hit counts at each `n`. The weights are calibrated so that each
/// side's exact false-pass bound is `β_s` ([`super::calibrate`]) when the variant has two sides
/// with edges strictly inside (0, 1); otherwise `λ_s = 1/β_s`, where Ville's inequality proves
/// the bound (and a one-sided variant's rule is Wald's: `LR ≤ β_s`).
#[derive(Debug, Clone)]
struct Acceptance {
    /// Indices into `SequentialTest::sides`, low before high.
    sides: Vec<usize>,
    ln_lambda: Vec<f64>,
    bounds: Vec<f64>,
    calibrated: bool,
    statistic: f64,
}

impl Acceptance {
    fn new(sides: &[Side], idx: Vec<usize>, p0: f64, budget: &ErrorBudget) -> Acceptance {
        let beta_s = budget.sprt_beta_per_test;
        let interior = |s: &Side| s.alternative > 0.0 && s.alternative < 1.0;
        let (ln_lambda, bounds, calibrated) = match idx.as_slice() {
            [l, h] if interior(&sides[*l]) && interior(&sides[*h]) && p0 > 0.0 && p0 < 1.0 => {
                let c: Calibration = calibrate(
                    &sides[*l].model(),
                    &sides[*h].model(),
                    budget.reject_threshold,
                    beta_s,
                );
                (
                    vec![c.ln_lambda_low, c.ln_lambda_high],
                    vec![c.bound_low, c.bound_high],
                    true,
                )
            }
            _ => (
                vec![-beta_s.ln(); idx.len()],
                vec![beta_s; idx.len()],
                false,
            ),
        };
        let statistic = log_sum_exp(ln_lambda.iter().copied());
        Acceptance {
            sides: idx,
            ln_lambda,
            bounds,
            calibrated,
            statistic,
        }
    }
}

/// A side shown under the other variant of a two-variant split: the same test as `side`.
#[derive(Debug, Clone)]
struct View {
    variant: usize,
    direction: Direction,
    alternative: f64,
    side: usize,
    mirrored: bool,
}

/// Alternatives closer than this to 0 or 1 are snapped to it, so that float noise in
/// `weight − tolerance` (e.g. 0.07 − 0.07000000000000001) neither invents nor drops a side.
const EDGE_EPS: f64 = 1e-12;

fn snap(p: f64) -> f64 {
    if p.abs() < EDGE_EPS {
        0.0
    } else if (p - 1.0).abs() < EDGE_EPS {
        1.0
    } else {
        p
    }
}

/// `ln(p1/p0)` and `ln((1 − p1)/(1 − p0))`. Infinite steps are intended: with `p0 = 0` a hit
/// has likelihood 0 under H0, so `+∞` rejects at once; with `p1 = 0` a hit refutes H1 outright.
fn steps(p0: f64, p1: f64) -> (f64, f64) {
    ((p1 / p0).ln(), ((1.0 - p1) / (1.0 - p0)).ln())
}

/// Adds a step to a log-likelihood ratio. At `−∞` the alternative has been refuted by an
/// observation impossible under it, and the ratio stays 0 whatever follows (this also keeps
/// `−∞ + ∞` from becoming NaN).
fn advance(llr: f64, step: f64) -> f64 {
    if llr == f64::NEG_INFINITY {
        llr
    } else {
        llr + step
    }
}

impl Side {
    /// The side of `variant` (share `p0` under H0) in `direction`, or `None` when its edge lies
    /// outside [0, 1]: no share can be that far away, so there is nothing to guard against.
    fn new(variant: usize, p0: f64, delta: f64, direction: Direction) -> Option<Side> {
        let sign = match direction {
            Direction::Low => -1.0,
            Direction::High => 1.0,
        };
        let raw = p0 + sign * delta;
        if !(-EDGE_EPS..=1.0 + EDGE_EPS).contains(&raw) {
            return None;
        }
        let edge = snap(raw);
        let end = match direction {
            Direction::Low => 0.0,
            Direction::High => 1.0,
        };
        let mut alternatives = vec![edge];
        let mut d = 2.0 * delta;
        while alternatives.len() < MAX_ALTERNATIVES - 1 {
            let p = p0 + sign * d;
            if !(EDGE_EPS..=1.0 - EDGE_EPS).contains(&p) {
                break;
            }
            alternatives.push(p);
            d *= 2.0;
        }
        if edge != end {
            alternatives.push(end);
        }
        let m = alternatives.len();
        let mixture = alternatives
            .iter()
            .enumerate()
            .map(|(j, &p1)| {
                let weight = match (j, m) {
                    (_, 1) => 1.0,
                    (0, _) => EDGE_WEIGHT,
                    _ => (1.0 - EDGE_WEIGHT) / (m - 1) as f64,
                };
                let (hit_step, miss_step) = steps(p0, p1);
                Component {
                    ratio: Ratio {
                        ln_weight: weight.ln(),
                        hit_step,
                        miss_step,
                    },
                    llr: 0.0,
                }
            })
            .collect();
        let (hit_step, miss_step) = steps(p0, edge);
        Some(Side {
            variant,
            direction,
            alternative: edge,
            hit_step,
            miss_step,
            llr: 0.0,
            mixture,
            mixture_llr: 0.0,
            status: SideStatus::Running,
        })
    }

    fn observe(&mut self, hit: bool, budget: &ErrorBudget) {
        let pick = |h: f64, m: f64| if hit { h } else { m };
        self.llr = advance(self.llr, pick(self.hit_step, self.miss_step));
        for c in &mut self.mixture {
            c.llr = advance(c.llr, pick(c.ratio.hit_step, c.ratio.miss_step));
        }
        self.mixture_llr = log_sum_exp(self.mixture.iter().map(|c| c.ratio.ln_weight + c.llr));
        // Acceptance is decided per variant, from both sides at once (see `Acceptance`), and
        // after this: when a side rejects on the same observation the split fails, the safe
        // side for the false-pass bound.
        if self.mixture_llr >= budget.reject_threshold {
            self.status = SideStatus::RejectedH0;
        }
    }

    /// The side as the calibration sees it.
    fn model(&self) -> SideModel {
        SideModel {
            edge: self.alternative,
            accept: Ratio {
                ln_weight: 0.0,
                hit_step: self.hit_step,
                miss_step: self.miss_step,
            },
            reject: self.mixture.iter().map(|c| c.ratio).collect(),
        }
    }

    /// Exact one-sided test at the edge, at error `err`: is the share confidently inside the
    /// band on this side (the Clopper–Pearson bound strictly inside)?
    fn inside(&self, hits: u64, n: u64, err: f64) -> bool {
        n > 0
            && match self.direction {
                // Upper bound < edge ⇔ P_edge(X ≤ hits) < err.
                Direction::High => binomial_at_most(hits, n, self.alternative) < err,
                Direction::Low => binomial_at_least(hits, n, self.alternative) < err,
            }
    }

    /// Exact one-sided test at error `err`: does the share confidently lie at or beyond the
    /// edge (the Clopper–Pearson bound at or past it)?
    fn beyond(&self, hits: u64, n: u64, err: f64) -> bool {
        n > 0
            && match self.direction {
                // Lower bound ≥ edge ⇔ P_edge(X ≥ hits) ≤ err.
                Direction::High => binomial_at_least(hits, n, self.alternative) <= err,
                Direction::Low => binomial_at_most(hits, n, self.alternative) <= err,
            }
    }
}

/// The sequential test for a whole split. Pure: all state is in the struct.
#[derive(Debug, Clone)]
pub struct SequentialTest {
    weights: Vec<Weight>,
    params: TestParams,
    budget: ErrorBudget,
    hits: Vec<u64>,
    n: u64,
    /// The distinct one-sided tests.
    sides: Vec<Side>,
    /// One per tested variant: how its sides are accepted together.
    accepts: Vec<Acceptance>,
    /// Every variant's sides, in variant order, low before high; mirrors point at `sides`.
    views: Vec<View>,
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
        // In a two-variant split the second stream is the complement of the first: the lighter
        // variant's tests are built (the verdict then speaks of the canary), the other's sides
        // are shown as mirrors of them.
        let primary = match weights {
            [a, b] => Some(usize::from(b <= a)),
            _ => None,
        };
        let mut sides = Vec::new();
        let mut views = Vec::new();
        for (variant, w) in weights.iter().enumerate() {
            if primary.is_some_and(|p| p != variant) {
                continue;
            }
            for direction in [Direction::Low, Direction::High] {
                if let Some(side) = Side::new(variant, w.share(), delta, direction) {
                    views.push(View {
                        variant,
                        direction,
                        alternative: side.alternative,
                        side: sides.len(),
                        mirrored: false,
                    });
                    if primary.is_some() {
                        views.push(View {
                            variant: 1 - variant,
                            direction: direction.opposite(),
                            alternative: 1.0 - side.alternative,
                            side: sides.len(),
                            mirrored: true,
                        });
                    }
                    sides.push(side);
                }
            }
        }
        views.sort_by_key(|v| (v.variant, v.direction == Direction::High));
        let alpha = params.confidence.error_rate();
        let budget = ErrorBudget::new(alpha, alpha, sides.len());
        let accepts = (0..weights.len())
            .filter_map(|variant| {
                let idx: Vec<usize> = (0..sides.len())
                    .filter(|&i| sides[i].variant == variant)
                    .collect();
                (!idx.is_empty())
                    .then(|| Acceptance::new(&sides, idx, weights[variant].share(), &budget))
            })
            .collect();
        Ok(SequentialTest {
            weights: weights.to_vec(),
            params,
            budget,
            hits: vec![0; weights.len()],
            n: 0,
            sides,
            accepts,
            views,
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
        let budget = self.budget;
        for side in self
            .sides
            .iter_mut()
            .filter(|s| s.status == SideStatus::Running)
        {
            side.observe(side.variant == variant, &budget);
        }
        let sides = &mut self.sides;
        for a in &mut self.accepts {
            if a.sides
                .iter()
                .any(|&i| sides[i].status != SideStatus::Running)
            {
                continue;
            }
            a.statistic = log_sum_exp(
                a.sides
                    .iter()
                    .zip(&a.ln_lambda)
                    .map(|(&i, l)| l + sides[i].llr),
            );
            if a.statistic <= 0.0 {
                for &i in &a.sides {
                    sides[i].status = SideStatus::AcceptedH0;
                }
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

    /// The fixed-sample rule on the counts so far: fail if some share is confidently at or
    /// beyond an edge, pass if every share is confidently inside its band, else straddles.
    pub fn fallback(&self) -> Fallback {
        let b = &self.budget;
        for s in &self.sides {
            if s.beyond(self.hits[s.variant], self.n, b.fallback_fail_error) {
                return Fallback::Outside {
                    variant: s.variant,
                    direction: s.direction,
                };
            }
        }
        let mut straddling: Vec<usize> = self
            .views
            .iter()
            .filter(|v| {
                let s = &self.sides[v.side];
                !s.inside(self.hits[s.variant], self.n, b.fallback_pass_error)
            })
            .map(|v| v.variant)
            .collect();
        straddling.dedup();
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

    /// The acceptance a side belongs to, and the side's position in it.
    fn acceptance_of(&self, side: usize) -> Option<(&Acceptance, usize)> {
        self.accepts
            .iter()
            .find_map(|a| a.sides.iter().position(|&i| i == side).map(|k| (a, k)))
    }

    /// Per-variant evidence: counts, share, Wilson interval, and each side's statistics and
    /// status.
    pub fn snapshot(&self) -> Vec<VariantState> {
        self.weights
            .iter()
            .enumerate()
            .map(|(v, w)| VariantState {
                weight_percent: w.percent(),
                hits: self.hits[v],
                share: (self.n > 0).then(|| self.hits[v] as f64 / self.n as f64),
                interval: wilson(self.hits[v], self.n, self.params.confidence.level()),
                pass_statistic: Llr(self
                    .views
                    .iter()
                    .find(|view| view.variant == v)
                    .and_then(|view| self.acceptance_of(view.side))
                    .map_or(f64::NAN, |(a, _)| a.statistic)),
                sides: self
                    .views
                    .iter()
                    .filter(|view| view.variant == v)
                    .map(|view| {
                        let s = &self.sides[view.side];
                        let (ln_lambda, bound, calibrated) = self
                            .acceptance_of(view.side)
                            .map_or((f64::NAN, f64::NAN, false), |(a, k)| {
                                (a.ln_lambda[k], a.bounds[k], a.calibrated)
                            });
                        SideState {
                            direction: view.direction,
                            alternative_share: view.alternative,
                            llr: Llr(s.llr),
                            mixture_llr: Llr(s.mixture_llr),
                            accept_threshold: -ln_lambda,
                            false_pass_bound: bound,
                            calibrated,
                            reject_threshold: self.budget.reject_threshold,
                            status: s.status,
                            mirrored: view.mirrored,
                        }
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
    fn budget_divides_alpha_over_distinct_sides_and_not_beta() {
        // 90/10: the canary's two sides; stable's are the same tests seen from the other end.
        let t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let b = t.budget();
        assert_eq!(b.one_sided_tests, 2);
        assert!((b.sprt_alpha_per_test - 0.98 * 0.01 / 2.0).abs() < 1e-15);
        assert!((b.sprt_beta_per_test - 0.98 * 0.01).abs() < 1e-15);
        assert!((b.reject_threshold - (2.0f64 / 0.0098).ln()).abs() < 1e-9);
        assert!((b.accept_threshold - 0.0098f64.ln()).abs() < 1e-9);
        assert!((b.fallback_pass_error - 0.0002).abs() < 1e-15);
        assert!((b.fallback_fail_error - 0.0001).abs() < 1e-15);
        // The pieces add up to the promise: false fail ≤ α, false pass ≤ β.
        let k = b.one_sided_tests as f64;
        assert!((k * b.sprt_alpha_per_test + k * b.fallback_fail_error - b.alpha).abs() < 1e-15);
        assert!((b.sprt_beta_per_test + b.fallback_pass_error - b.beta).abs() < 1e-15);
        // Three variants have no mirrors: six tests.
        let t = SequentialTest::new(&w(&[80, 10, 10]), params(5.0, 0.99)).unwrap();
        assert_eq!(t.budget().one_sided_tests, 6);
        assert!((t.budget().sprt_beta_per_test - 0.0098).abs() < 1e-15);
    }

    #[test]
    fn a_two_sided_variant_passes_by_its_calibrated_joint_region() {
        // 90/10 ±5 pp at 99 %: the canary's weights are calibrated, each side's exact bound is
        // within β_s and near it (the budget is spent, not wasted), and the weights are below
        // Ville's 1/β_s, so a correct split passes sooner than by two separate Wald tests.
        let t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let beta_s = t.budget().sprt_beta_per_test;
        let snap = t.snapshot();
        for s in &snap[1].sides {
            assert!(s.calibrated, "{s:?}");
            assert!(s.false_pass_bound <= beta_s, "{s:?}");
            assert!(s.false_pass_bound > 0.99 * beta_s, "{s:?}");
            assert!(s.accept_threshold > beta_s.ln(), "{s:?}");
        }
        // A steady 10 % stream: the pass statistic falls to 0 and both sides accept at once.
        let trace = (0..2000).map(|i| usize::from(i % 10 == 0));
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let d = run_to_decision(&mut t, trace, 2000).unwrap();
        assert_eq!(d.result, RuleResult::Pass);
        let snap = t.snapshot();
        assert!(snap[1].pass_statistic.0 <= 0.0, "{:?}", snap[1]);
        assert!(snap[1]
            .sides
            .iter()
            .all(|s| s.status == SideStatus::AcceptedH0));
        // One step earlier the statistic was still above 0: the pass is the first entry.
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let before = (0..d.observations - 1).map(|i| usize::from(i % 10 == 0));
        assert!(matches!(
            run_to_decision(&mut t, before, d.observations - 1)
                .unwrap()
                .reason,
            StopReason::MaxRequests { .. }
        ));
        assert!(t.snapshot()[1].pass_statistic.0 > 0.0);
    }

    #[test]
    fn two_variant_sides_are_shown_under_both_variants() {
        let t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let snap = t.snapshot();
        let stable: Vec<_> = snap[0]
            .sides
            .iter()
            .map(|s| (s.direction, s.alternative_share, s.mirrored))
            .collect();
        let canary: Vec<_> = snap[1]
            .sides
            .iter()
            .map(|s| (s.direction, s.alternative_share, s.mirrored))
            .collect();
        assert_eq!(canary.len(), 2);
        assert!(!canary[0].2 && !canary[1].2, "the canary's tests are built");
        assert_eq!(stable.len(), 2);
        assert!(stable[0].2 && stable[1].2, "stable's are mirrors");
        assert_eq!(stable[0].0, Direction::Low);
        assert!((stable[0].1 - 0.85).abs() < 1e-12 && (canary[1].1 - 0.15).abs() < 1e-12);
    }

    #[test]
    fn a_far_share_is_rejected_by_the_mixture_not_the_edge_alone() {
        // 90/10 against an all-canary stream: the edge ratio alone (ln 1.5 a hit) would need
        // ln(2/0.009)/ln 1.5 = 13.3 hits; the mixture's p = 1 component (ln 10 a hit, weight
        // 1/10) needs (ln(2/0.009) + ln 10)/ln 10 = 3.35, so 4.
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let d = run_to_decision(&mut t, std::iter::repeat(1), 2000).unwrap();
        assert_eq!(d.result, RuleResult::Fail);
        assert_eq!(d.observations, 4);
        assert_eq!(
            d.reason,
            StopReason::RejectedH0 {
                variant: 1,
                direction: Direction::High
            }
        );
    }

    #[test]
    fn edge_weights_drop_impossible_sides() {
        // 100/0: variant 0 has only a low side, variant 1 only a high side — the same test.
        let t = SequentialTest::new(&w(&[100, 0]), params(5.0, 0.99)).unwrap();
        assert_eq!(t.budget().one_sided_tests, 1);
        // 97/3 with ±5: the 3 % variant has no low side (3 − 5 < 0), 97 % no high side.
        let t = SequentialTest::new(&w(&[97, 3]), params(5.0, 0.99)).unwrap();
        assert_eq!(t.budget().one_sided_tests, 1);
        // 95/5 with ±5: the low alternative of 5 % is exactly 0 and is kept.
        let t = SequentialTest::new(&w(&[95, 5]), params(5.0, 0.99)).unwrap();
        assert_eq!(t.budget().one_sided_tests, 2);
        // With three variants nothing mirrors: 90/5/5 has 2 + 2 + 2 sides.
        let t = SequentialTest::new(&w(&[90, 5, 5]), params(5.0, 0.99)).unwrap();
        assert_eq!(t.budget().one_sided_tests, 6);
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
        // One side, not calibrated: Wald's rule, accept when n·ln(0.95) ≤ ln(0.0098): n ≥ 90.2.
        let d = run_to_decision(&mut t, std::iter::repeat(0), 2000).unwrap();
        assert_eq!(d.result, RuleResult::Pass);
        assert_eq!(d.observations, 91);
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
    fn fallback_passes_and_fails_on_clear_counts() {
        // Force the fallback with an exact 90/10 trace: 9 of every 10 to variant 0.
        let trace: Vec<usize> = (0..3000).map(|i| usize::from(i % 10 == 0)).collect();
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let d = run_to_decision(&mut t, trace.iter().copied(), 3000).unwrap();
        // The sequential test itself accepts long before the limit.
        assert_eq!(d.result, RuleResult::Pass);
        assert_eq!(d.reason, StopReason::AcceptedH0);

        // At a limit of 60 it has not decided on that trace (it needs ~430 observations to
        // accept the high side), and 6 of 60 cannot exclude 15 %: undecided.
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let d = run_to_decision(&mut t, trace.iter().copied(), 60).unwrap();
        assert_eq!(d.result, RuleResult::Undecided, "{d:?}");

        // At a limit of 250, 25 of 250: P_15%(X ≤ 25) = 0.013 and P_5%(X ≥ 25) = 0.0009 are
        // not below φβ = 0.0002, so both sides are still open. Undecided, naming both variants
        // (the canary's high side is stable's low side).
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        let d = run_to_decision(&mut t, trace.iter().copied(), 250).unwrap();
        assert_eq!(
            d.reason,
            StopReason::MaxRequests {
                fallback: Fallback::Straddles {
                    variants: vec![0, 1]
                }
            },
            "{d:?}"
        );
        // 200 of 2000 (asked directly: the sequential test accepts such a trace long before):
        // both tails at the edges are far below φβ, every share is inside.
        let mut t = SequentialTest::new(&w(&[90, 10]), params(5.0, 0.99)).unwrap();
        t.n = 2000;
        t.hits = vec![1800, 200];
        assert_eq!(t.fallback(), Fallback::AllInside);
    }

    #[test]
    fn fallback_fails_when_an_exact_bound_lies_beyond_the_edge() {
        // 50/50 ±10 pp at 90 %. The mixture would reject such counts on the way, so the
        // fallback is asked directly. 70 of 100 to variant 0 (30 to variant 1, whose tests are
        // built): P_40%(X ≤ 30) = 0.025 > φα/K = 0.001, not outside; 76 of 100:
        // P_40%(X ≤ 24) = 0.00056 ≤ 0.001, outside: variant 1 is too low.
        let mut t = SequentialTest::new(&w(&[50, 50]), params(10.0, 0.9)).unwrap();
        t.n = 100;
        t.hits = vec![70, 30];
        assert!(
            matches!(t.fallback(), Fallback::Straddles { .. }),
            "{:?}",
            t.fallback()
        );
        t.hits = vec![76, 24];
        assert_eq!(
            t.fallback(),
            Fallback::Outside {
                variant: 1,
                direction: Direction::Low
            }
        );
    }
}
