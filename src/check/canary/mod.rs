//! `canary` verdict engine: is a weighted traffic split (e.g. 90 % stable / 10 % canary) what
//! it claims to be, within a tolerance, at a stated confidence — decided with as few requests
//! as the data allows.
//!
//! # What is asserted
//!
//! Each variant `i` has a configured weight `w_i` (integer percent, summing to 100) and an
//! unknown true share `p_i` of the responses. With tolerance `δ` (percentage points), the split
//! is **within tolerance** when `|p_i − w_i| < δ` for every variant. The check passes when the
//! data support that, and fails when some variant's share is `δ` or more away from its weight.
//!
//! # The sequential test
//!
//! For every variant with `p0 = w_i/100`, two one-sided Wald sequential probability ratio tests
//! (SPRT) run on the Bernoulli stream "did this response come from variant `i`?":
//!
//! - low side: `H0: p = p0` against `H1: p = p0 − δ`;
//! - high side: `H0: p = p0` against `H1: p = p0 + δ`.
//!
//! Each keeps the log-likelihood ratio `LLR = Σ ln(P1(x)/P0(x))`, adding `ln(p1/p0)` for a hit
//! and `ln((1−p1)/(1−p0))` for a miss. It **rejects** `H0` when `LLR ≥ ln(1/α')` and
//! **accepts** `H0` when `LLR ≤ ln(β')`; once a side has crossed a threshold it is frozen.
//! The split **fails** as soon as any side rejects, and **passes** once every side has accepted.
//!
//! Thresholds are `ln(1/α')` and `ln β'` rather than Wald's approximations
//! `ln((1−β)/α)`, `ln(β/(1−α))`: by Ville's inequality (the likelihood ratio is a non-negative
//! martingale under `H0`), `P_H0(LLR ever ≥ ln(1/α')) ≤ α'` exactly, with no overshoot
//! correction and whether or not the test is cut short; symmetrically for `β'` under `H1`.
//!
//! ## Edges: weights 0 and 100, bands leaving [0, 1]
//!
//! A side whose alternative `p0 ∓ δ` lies outside `[0, 1]` is dropped: no share can be that far
//! away on that side, so there is nothing to guard against (e.g. weight 3 % with δ = 5 pp has no
//! low side). When `p0 ∓ δ` is exactly 0 or 1 the side is kept with a degenerate alternative.
//! The likelihoods then contain zeros and the steps are infinite, which is exactly right:
//!
//! - **weight 0** (only a high side, `H1: p = δ`): a single hit is impossible under `H0`, so its
//!   LLR step is `+∞` and the test fails on the first response from that variant. Each miss adds
//!   `ln(1 − δ)`; the side accepts after `⌈ln β' / ln(1 − δ)⌉` misses (104 for δ = 5 pp,
//!   99 % confidence). Weight 100 is the mirror image.
//! - **alternative exactly 0** (weight = δ, low side): a hit is impossible under `H1`, so the
//!   first hit accepts `H0` on that side.
//!
//! Every variant keeps at least one side, because `δ < 50 pp`.
//!
//! # Error rates, and how `1 − confidence` is spent
//!
//! With confidence `c`, let `α = β = 1 − c`. The user is promised:
//!
//! - **false fail ≤ 1 − c** when every true share equals its weight;
//! - **false pass ≤ 1 − c** when some variant's true share is `δ` or more from its weight.
//!
//! Between those points lies the **indifference zone**: when a share is strictly between `w`
//! and `w ± δ`, either verdict is acceptable and no error rate is promised (the SPRT, like any
//! test, only controls its error rates at the boundary points; by the monotone likelihood ratio
//! of the Bernoulli family, shares farther out are caught *more* reliably, shares closer to `w`
//! pass more reliably). Expect the most requests, and the most `undecided` endings, there.
//!
//! Half of each error rate goes to the sequential test, half to the fixed-sample fallback used
//! at `--max-requests`, so that the promise holds whether or not the test is truncated:
//!
//! | piece | false fail (α) | false pass (β) |
//! |---|---|---|
//! | each of the K one-sided SPRTs | `α' = α / (2K)` | `β' = β / 2` |
//! | fallback at the limit | intervals at level `1 − α/K` must lie *outside* the band: `≤ α/2` over K sides | intervals at level `c` must lie *inside*: one tail `= β/2` |
//!
//! `K` is the number of one-sided tests (2 per variant, fewer at the edges). The false-fail
//! budget is split over the K sides Bonferroni-style because *any* side rejecting fails the
//! split (union bound: `K · α/(2K) = α/2`). The false-pass budget needs no split: a pass needs
//! *every* side to accept, including the one side whose alternative is true, and that side
//! accepts with probability `≤ β/2`. Total: false fail `≤ α/2 + α/2`, false pass `≤ β/2 + β/2`.
//! The fallback's share relies on the Wilson interval's coverage, which is close to nominal but
//! not exact; the sequential share is exact.
//!
//! # The fallback at `--max-requests` (default 2000)
//!
//! `--max-requests` bounds the requests *sent*, classified or not. When the test decides, up to
//! `--concurrency` requests already sent may be outstanding; their responses are discarded
//! (evidence: `requests_sent − requests_used`).
//! If the request budget runs out before the SPRTs decide, the Wilson score interval of every
//! share decides ([`interval::wilson`]): any interval at level `1 − α/K` entirely outside its
//! band (`≥ w + δ` or `≤ w − δ`) → **fail**; every interval at level `c` strictly inside its
//! band → **pass**; otherwise the intervals straddle the band and the verdict is **error**
//! ("undecided: interval straddles the band"). Error rather than fail, because neither error
//! rate above covers that ending: calling it a failure would add an unbounded false-fail rate
//! for shares in the indifference zone, calling it a pass an unbounded false-pass rate. An
//! `error` (exit 2) says "this run could not decide — raise `--max-requests` or widen
//! `--tolerance`", which is the truth.
//!
//! # Unclassified responses
//!
//! Responses that match no variant or several, non-2xx statuses, transport errors and timeouts
//! are counted per kind and never fed to the test (see [`classify`]). More than
//! [`engine::UnclassifiedBudget::max_count`] (5) of them stops the run with **error**; at the
//! end, more than `max_fraction` (2 %) of all requests used is also **error**, whatever the test
//! said, because lost responses are not a random sample of variants and bias the shares.
//!
//! # Pieces
//!
//! - [`spec`]: validated inputs (`NAME=PATTERN:WEIGHT`, tolerance, confidence).
//! - [`sprt`]: the pure decision rule ([`sprt::SequentialTest::observe`]).
//! - [`interval`]: Wilson score intervals.
//! - [`classify`]: body / header → variant index.
//! - [`engine`]: drives the rule from any async sample source ([`engine::run_canary`]) — the
//!   entry point for in-cluster use — and builds the verdict.
//! - [`sampler`]: the HTTP sample source used by `meshproof check canary`.

pub mod batch;
pub mod classify;
pub mod engine;
pub mod interval;
pub mod sampler;
pub mod spec;
pub mod sprt;

pub use classify::{Classifier, Sample, Unclassified, UnclassifiedKind};
pub use engine::{run_canary, CanaryConfig, CanaryEvidence, UnclassifiedBudget};
pub use sampler::HttpSampler;
pub use spec::{Confidence, Split, TestParams, Tolerance, VariantSpec, Weight};
pub use sprt::{Decision, RuleResult, SequentialTest, Step, StopReason};
