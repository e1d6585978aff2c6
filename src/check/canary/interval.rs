//! Wilson score intervals for a binomial share (reported), and exact binomial tails (the
//! fixed-sample fallback's tests).
//!
//! Wilson rather than the textbook normal ("Wald") interval because canary shares are often
//! small (10 %, 5 %, even 0 %), where the Wald interval collapses to a point at 0 hits and
//! under-covers badly; the Wilson interval stays inside [0, 1] and keeps close to nominal
//! coverage for the sample sizes used here (tens to thousands).

use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, Normal};

/// A two-sided interval for a share, with the level it was computed at.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ShareInterval {
    pub low: f64,
    pub high: f64,
    /// Two-sided confidence level, e.g. 0.99.
    pub level: f64,
}

impl ShareInterval {
    /// True when the whole interval lies strictly inside `(lo, hi)`.
    pub fn inside(&self, lo: f64, hi: f64) -> bool {
        self.low > lo && self.high < hi
    }
}

/// The standard normal quantile `z` with `P(|Z| ≤ z) = level` (two-sided).
///
/// `level` must be in (0, 1); callers pass validated confidences.
pub fn two_sided_z(level: f64) -> f64 {
    // Normal::standard() cannot fail; the quantile of a level in (0,1) is finite.
    let n = Normal::standard();
    n.inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

/// The Wilson score interval for `hits` successes out of `n` trials at a two-sided `level`.
///
/// With `n == 0` nothing is known, and the interval is the whole of [0, 1].
pub fn wilson(hits: u64, n: u64, level: f64) -> ShareInterval {
    if n == 0 {
        return ShareInterval {
            low: 0.0,
            high: 1.0,
            level,
        };
    }
    let z = two_sided_z(level);
    let n_f = n as f64;
    let p = hits.min(n) as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z / denom * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    // At 0 or n hits the exact bound is 0 or 1; pin it so float noise cannot move it.
    let low = if hits == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let high = if hits >= n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    ShareInterval { low, high, level }
}

/// `P(X ≤ k)` for `X ~ Binomial(n, p)`, exact (statrs' regularised incomplete beta).
///
/// The fallback decides with these tails rather than with a normal-approximation interval: a
/// one-sided Clopper–Pearson bound lies beyond `p` exactly when a tail at `p` is below the
/// error, and that test's error is at most its level for every `n`, not only near it.
/// A `p` outside [0, 1] (impossible from a validated split) gives 1, which never decides.
pub fn binomial_at_most(k: u64, n: u64, p: f64) -> f64 {
    if k >= n || p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return 0.0;
    }
    Binomial::new(p, n).map(|b| b.cdf(k)).unwrap_or(1.0)
}

/// `P(X ≥ k)` for `X ~ Binomial(n, p)`, exact. See [`binomial_at_most`].
pub fn binomial_at_least(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 || p >= 1.0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    Binomial::new(p, n).map(|b| b.sf(k - 1)).unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_matches_tables() {
        assert!((two_sided_z(0.95) - 1.959964).abs() < 1e-5);
        assert!((two_sided_z(0.99) - 2.575829).abs() < 1e-5);
    }

    #[test]
    fn wilson_matches_a_worked_example() {
        // 10 of 100 at 95 %: Wilson interval [0.0552, 0.1744] (worked by hand from the formula).
        let i = wilson(10, 100, 0.95);
        assert!((i.low - 0.0552).abs() < 5e-4, "{i:?}");
        assert!((i.high - 0.1744).abs() < 5e-4, "{i:?}");
    }

    #[test]
    fn wilson_handles_the_edges() {
        let zero = wilson(0, 50, 0.99);
        assert_eq!(zero.low, 0.0);
        assert!(zero.high > 0.0 && zero.high < 0.15);
        let all = wilson(50, 50, 0.99);
        assert_eq!(all.high, 1.0);
        assert!(all.low > 0.85);
        let none = wilson(0, 0, 0.99);
        assert_eq!((none.low, none.high), (0.0, 1.0));
    }

    #[test]
    fn binomial_tails_match_hand_computed_values() {
        // Binomial(3, 0.5): P(X ≤ 1) = 4/8, P(X ≥ 2) = 4/8, P(X ≥ 3) = 1/8.
        assert!((binomial_at_most(1, 3, 0.5) - 0.5).abs() < 1e-12);
        assert!((binomial_at_least(2, 3, 0.5) - 0.5).abs() < 1e-12);
        assert!((binomial_at_least(3, 3, 0.5) - 0.125).abs() < 1e-12);
        // Binomial(10, 0.1): P(X ≤ 0) = 0.9^10.
        assert!((binomial_at_most(0, 10, 0.1) - 0.9f64.powi(10)).abs() < 1e-12);
        // Edges: certain and impossible tails, no panic at p = 0 or 1.
        assert_eq!(binomial_at_most(10, 10, 0.3), 1.0);
        assert_eq!(binomial_at_least(0, 10, 0.3), 1.0);
        assert_eq!(binomial_at_least(1, 10, 0.0), 0.0);
        assert_eq!(binomial_at_most(3, 10, 1.0), 0.0);
        assert_eq!(binomial_at_most(3, 10, 0.0), 1.0);
    }
}
