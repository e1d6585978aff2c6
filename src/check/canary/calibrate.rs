//! Exact calibration of a variant's pass region: the weights `λ_low`, `λ_high` of the pass
//! statistic `ln(λ_low·LR_low + λ_high·LR_high) ≤ 0` (see [`super::sprt`]) chosen as small as the
//! false-pass budget allows, with that budget *computed*, not approximated.
//!
//! Why: with `λ = 1/β_s` on each side, Ville's inequality alone proves the false-pass bound, but
//! it is loose for a region that needs both ratios small at once: measured on 90/10 ±5 pp, the
//! low edge's false-pass rate is a quarter of its bound. The hit count `h_n` of one variant is a
//! random walk with known steps, so the probability of the event that bounds a false pass (see
//! [`high_side_bound`]) can be summed exactly over the `(n, h)` lattice, overshoot and all; the
//! weights are then lowered until that exact probability reaches the budget. Pure arithmetic, no
//! randomness; the result is cached per parameter set, since every run of a check builds the
//! same test.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The exact sum runs this many observations; beyond it the remaining paths are bounded by
/// Ville's inequality from where they stand (see [`high_side_bound`]), so no horizon is assumed
/// for the test itself.
pub const HORIZON: u64 = 4000;

/// Lattice states with less probability than this are dropped from the sum *as if they were
/// false passes* (added to the bound), which keeps the window narrow and the bound an upper one.
const NEGLIGIBLE: f64 = 1e-18;

/// Fixed-point iterations of the calibration. It converges in under ten on every split tried.
const MAX_ITERATIONS: usize = 24;

/// One likelihood ratio against `p0` of the Bernoulli stream "was this response from the
/// variant?": its log-weight in a mixture and its log steps on a hit and on a miss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    pub ln_weight: f64,
    pub hit_step: f64,
    pub miss_step: f64,
}

impl Ratio {
    /// `ln LR` after `hits` hits in `n` observations. `0·∞` is 0: a step that never happened
    /// contributes nothing (a ratio against a share of exactly 1 has a miss step of `−∞`).
    pub fn llr(&self, n: u64, hits: u64) -> f64 {
        mul(hits, self.hit_step) + mul(n - hits, self.miss_step)
    }

    /// The same ratio on the complementary stream (hits and misses swapped).
    fn mirrored(self) -> Ratio {
        Ratio {
            ln_weight: self.ln_weight,
            hit_step: self.miss_step,
            miss_step: self.hit_step,
        }
    }
}

fn mul(k: u64, step: f64) -> f64 {
    if k == 0 {
        0.0
    } else {
        k as f64 * step
    }
}

/// `ln Σ exp(x_i)`, exact at ±∞.
pub fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let m = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + xs.map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// One side of a variant's band, as the calibration sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SideModel {
    /// The edge share `p0 ∓ δ`: the truth under which this side's false pass is bounded.
    pub edge: f64,
    /// The likelihood ratio of the edge against `p0` (its `ln_weight` is unused).
    pub accept: Ratio,
    /// The rejection mixture; the side rejects when `ln Σ π_j LR_j ≥` the reject threshold.
    pub reject: Vec<Ratio>,
}

impl SideModel {
    fn mirrored(&self) -> SideModel {
        SideModel {
            edge: 1.0 - self.edge,
            accept: self.accept.mirrored(),
            reject: self.reject.iter().map(|r| r.mirrored()).collect(),
        }
    }

    fn mixture(&self, n: u64, hits: u64) -> f64 {
        log_sum_exp(self.reject.iter().map(|r| r.ln_weight + r.llr(n, hits)))
    }
}

/// The pass weights of one two-sided variant and the exact false-pass bound each side has.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// `ln λ_low`, `ln λ_high`.
    pub ln_lambda_low: f64,
    pub ln_lambda_high: f64,
    /// Upper bounds on `P(pass)` for any true share at or beyond each edge (computed exactly).
    pub bound_low: f64,
    pub bound_high: f64,
}

/// `P_edge(E_high) + tail` for the high side (or for the low side, given mirrored models):
/// `E_high` = "the hit count reaches the top `u(n)` of the pass region, or below, before it
/// reaches the high side's rejection region `h ≥ r(n)`". A pass needs `E_high` (a pass at `n`
/// puts `h_n ≤ u(n)`, and a rejection before it would have failed the test), and `E_high` only
/// gets less likely as the true share grows (more hits on every path), so its probability at the
/// edge bounds the false-pass rate at every share at or beyond the edge.
///
/// The sum is exact to [`HORIZON`]; every path still undecided there is charged Ville's bound
/// `min(1, 1/(λ_high·LR_high))` for ever reaching `λ_high·LR_high ≤ 1`, which the pass region
/// requires. Negligible states are charged in full. So the result is an upper bound.
fn high_side_bound(
    high: &SideModel,
    low: &SideModel,
    ln_lambda_high: f64,
    ln_lambda_low: f64,
    reject_start: &[u64],
) -> f64 {
    let p = high.edge;
    let pass_stat = |n: u64, h: u64| {
        log_sum_exp(
            [
                ln_lambda_low + low.accept.llr(n, h),
                ln_lambda_high + high.accept.llr(n, h),
            ]
            .into_iter(),
        )
    };
    // The top of the pass region at `n`, if any: the largest h with pass_stat ≤ 0. The
    // statistic is convex in h, so scan down from the largest h the high term alone allows, and
    // stop once the low term alone exceeds 0 (it only grows further down).
    let pass_top = |n: u64| -> Option<u64> {
        let (a, b) = (high.accept.hit_step, high.accept.miss_step);
        let top = (-ln_lambda_high - n as f64 * b) / (a - b);
        if top.is_nan() || top < 0.0 {
            return None;
        }
        let mut h = (top.floor() as u64).min(n);
        loop {
            if ln_lambda_low + low.accept.llr(n, h) > 0.0 {
                return None;
            }
            if pass_stat(n, h) <= 0.0 {
                return Some(h);
            }
            if h == 0 {
                return None;
            }
            h -= 1;
        }
    };
    let mut bound = 0.0;
    let mut lo = 0u64;
    let mut mass = vec![1.0f64];
    let mut next = Vec::new();
    let mut n = 0u64;
    while n < HORIZON && !mass.is_empty() {
        n += 1;
        next.clear();
        next.resize(mass.len() + 1, 0.0);
        for (i, m) in mass.iter().enumerate() {
            next[i] += m * (1.0 - p);
            next[i + 1] += m * p;
        }
        let reject_at = reject_start[n as usize];
        let top = pass_top(n);
        for (i, m) in next.iter_mut().enumerate() {
            let h = lo + i as u64;
            if h >= reject_at {
                *m = 0.0;
            } else if top.is_some_and(|u| h <= u) {
                bound += *m;
                *m = 0.0;
            }
        }
        // Trim the window to the states still alive, charging negligible ones as passes.
        let first = next.iter().position(|&m| m >= NEGLIGIBLE);
        let last = next.iter().rposition(|&m| m >= NEGLIGIBLE);
        match (first, last) {
            (Some(f), Some(l)) => {
                bound += next[..f].iter().sum::<f64>() + next[l + 1..].iter().sum::<f64>();
                mass.clear();
                mass.extend_from_slice(&next[f..=l]);
                lo += f as u64;
            }
            _ => {
                bound += next.iter().sum::<f64>();
                mass.clear();
            }
        }
    }
    for (i, m) in mass.iter().enumerate() {
        let llr = high.accept.llr(n, lo + i as u64);
        bound += m * (-(ln_lambda_high + llr)).exp().min(1.0);
    }
    bound
}

/// `r(n)`: the smallest hit count at which the high side's mixture reaches the threshold
/// (`n + 1` if none), for `n` in `0..=HORIZON`. The mixture grows with the hit count.
fn reject_starts(high: &SideModel, reject_threshold: f64) -> Vec<u64> {
    (0..=HORIZON)
        .map(|n| {
            let (mut lo, mut hi) = (0u64, n + 1);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if high.mixture(n, mid) >= reject_threshold {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            lo
        })
        .collect()
}

/// The exact false-pass bounds of both sides for the weights `(ln λ_low, ln λ_high)`.
pub struct Bounds {
    low: SideModel,
    high: SideModel,
    mirrored_low: SideModel,
    mirrored_high: SideModel,
    starts_high: Vec<u64>,
    starts_low: Vec<u64>,
}

impl Bounds {
    pub fn new(low: &SideModel, high: &SideModel, reject_threshold: f64) -> Bounds {
        let mirrored_low = low.mirrored();
        Bounds {
            starts_high: reject_starts(high, reject_threshold),
            starts_low: reject_starts(&mirrored_low, reject_threshold),
            low: low.clone(),
            high: high.clone(),
            mirrored_high: high.mirrored(),
            mirrored_low,
        }
    }

    /// `(bound_low, bound_high)`.
    pub fn at(&self, ln_lambda_low: f64, ln_lambda_high: f64) -> (f64, f64) {
        let high = high_side_bound(
            &self.high,
            &self.low,
            ln_lambda_high,
            ln_lambda_low,
            &self.starts_high,
        );
        // The low side is the high side of the complementary stream.
        let low = high_side_bound(
            &self.mirrored_low,
            &self.mirrored_high,
            ln_lambda_low,
            ln_lambda_high,
            &self.starts_low,
        );
        (low, high)
    }
}

/// The smallest pass weights found whose exact false-pass bounds are both at most `target`.
///
/// Starts from `λ = 1/target` on both sides, where Ville's inequality already proves the bound,
/// and moves each weight by the ratio of its side's bound to the target until both bounds sit
/// just under it. Only a pair whose computed bounds are within the target is ever returned;
/// if none were (impossible: the start is proven), the start is returned with its bounds.
pub fn calibrate(
    low: &SideModel,
    high: &SideModel,
    reject_threshold: f64,
    target: f64,
) -> Calibration {
    type Key = (u64, u64, u64, u64);
    static CACHE: OnceLock<Mutex<HashMap<Key, Calibration>>> = OnceLock::new();
    let key = (
        low.edge.to_bits(),
        high.edge.to_bits(),
        reject_threshold.to_bits(),
        target.to_bits(),
    );
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return *c;
    }
    let c = search(low, high, reject_threshold, target);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, c);
    c
}

fn search(low: &SideModel, high: &SideModel, reject_threshold: f64, target: f64) -> Calibration {
    let bounds = Bounds::new(low, high, reject_threshold);
    // Aim a little under the target, so that the last iterate is usually admissible.
    let aim = target * (1.0 - 1e-3);
    let start = -target.ln();
    let (mut ll, mut lh) = (start, start);
    let (bl, bh) = bounds.at(ll, lh);
    let mut best = Calibration {
        ln_lambda_low: ll,
        ln_lambda_high: lh,
        bound_low: bl.min(target),
        bound_high: bh.min(target),
    };
    let (mut bl, mut bh) = (bl, bh);
    for _ in 0..MAX_ITERATIONS {
        if bl <= target && bh <= target && ll + lh <= best.ln_lambda_low + best.ln_lambda_high {
            best = Calibration {
                ln_lambda_low: ll,
                ln_lambda_high: lh,
                bound_low: bl,
                bound_high: bh,
            };
        }
        let step = |b: f64| {
            if b > 0.0 {
                (b / aim).ln().clamp(-2.0, 2.0)
            } else {
                -2.0
            }
        };
        let (dl, dh) = (step(bl), step(bh));
        if dl.abs() < 1e-4 && dh.abs() < 1e-4 {
            break;
        }
        ll += dl;
        lh += dh;
        (bl, bh) = bounds.at(ll, lh);
    }
    if bl <= target && bh <= target && ll + lh <= best.ln_lambda_low + best.ln_lambda_high {
        best = Calibration {
            ln_lambda_low: ll,
            ln_lambda_high: lh,
            bound_low: bl,
            bound_high: bh,
        };
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(p0: f64, p1: f64, ln_weight: f64) -> Ratio {
        Ratio {
            ln_weight,
            hit_step: (p1 / p0).ln(),
            miss_step: ((1.0 - p1) / (1.0 - p0)).ln(),
        }
    }

    /// 90/10 ±5 pp: the canary's sides with their edges as the only mixture component.
    fn sides(threshold_weight: f64) -> (SideModel, SideModel) {
        let low = SideModel {
            edge: 0.05,
            accept: ratio(0.1, 0.05, 0.0),
            reject: vec![ratio(0.1, 0.05, threshold_weight)],
        };
        let high = SideModel {
            edge: 0.15,
            accept: ratio(0.1, 0.15, 0.0),
            reject: vec![ratio(0.1, 0.15, threshold_weight)],
        };
        (low, high)
    }

    #[test]
    fn ville_weights_bound_within_ville() {
        // λ = 1/β on each side: the exact bound is below β (Ville), and not far below on the
        // high side, whose pass region is limited by its own ratio.
        let (low, high) = sides(0.0);
        let b = Bounds::new(&low, &high, (1.0f64 / 0.005).ln());
        let (bl, bh) = b.at(100f64.ln(), 100f64.ln());
        assert!(bl <= 0.01 && bh <= 0.01, "{bl} {bh}");
        assert!(bh > 0.005, "{bh}");
    }

    #[test]
    fn calibration_lowers_the_weights_and_keeps_both_bounds() {
        let (low, high) = sides(0.0);
        let c = calibrate(&low, &high, (1.0f64 / 0.005).ln(), 0.01);
        assert!(c.bound_low <= 0.01 && c.bound_high <= 0.01, "{c:?}");
        // Both sides are used to the budget, and the weights are below Ville's 1/β = 100.
        assert!(c.bound_low > 0.0098 && c.bound_high > 0.0098, "{c:?}");
        assert!(c.ln_lambda_low < 100f64.ln() && c.ln_lambda_high < 100f64.ln());
        // Recomputing at the returned weights gives the returned bounds.
        let b = Bounds::new(&low, &high, (1.0f64 / 0.005).ln());
        let (bl, bh) = b.at(c.ln_lambda_low, c.ln_lambda_high);
        assert_eq!((bl, bh), (c.bound_low, c.bound_high));
    }

    #[test]
    fn a_wider_pass_region_has_a_larger_bound() {
        // Lower weights admit more paths: both bounds grow, so the search has a direction.
        let (low, high) = sides(0.0);
        let b = Bounds::new(&low, &high, (1.0f64 / 0.005).ln());
        let (l1, h1) = b.at(4.0, 4.0);
        let (l2, h2) = b.at(3.0, 3.0);
        assert!(l2 > l1 && h2 > h1, "{l1} {h1} {l2} {h2}");
    }
}
