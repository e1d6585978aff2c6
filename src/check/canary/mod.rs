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
//! For every variant with `p0 = w_i/100` and each side of its band, a one-sided test runs on the
//! Bernoulli stream "did this response come from variant `i`?", with the edge
//! `p1 = p0 − δ` (low side) or `p0 + δ` (high side). Writing `LR_s = Π P_p1(x)/P_p0(x)` for a
//! side's likelihood ratio of its edge against the weight:
//!
//! - **accept** (per variant, both sides at once): the variant is accepted when its *pass
//!   statistic* `ln(λ_low·LR_low + λ_high·LR_high) ≤ 0` — at each `n` an interval of hit counts,
//!   the pass region. The weights `λ_s` are calibrated ([`calibrate`]): lowered from Ville's
//!   `1/β_s` until each side's *exact* false-pass bound (below) equals `β_s`. A variant with one
//!   side (or an edge at exactly 0 or 1) keeps `λ = 1/β_s`, i.e. Wald's `LR ≤ β_s`.
//! - **reject** (per side): the log of a *mixture* likelihood ratio `M = Σ_j π_j LR_j` over the
//!   alternatives `p0 ± δ·2^j` (`j = 0, 1, …` while inside (0, 1)) and the end of [0, 1] on that
//!   side, with `π = 1/2` on the edge and the other half spread evenly. The side **rejects** when
//!   `ln M ≥ ln(1/α_s)`. A single ratio against the edge rejects a 50 % canary at the edge's
//!   slow pace; the mixture rejects it at the pace of the alternative nearest the truth, for a
//!   constant `ln(1/π_j)`.
//!
//! Why both sides at once: two separate Wald tests (each `LR_s ≤ β_s` at some time) spend ~67
//! requests of a correct 90/10 split's ~500 waiting for the *second* side — the two statistics
//! move in opposite directions with the hit count, so a run whose hits came low early accepts
//! the high side soon and the low side late. A joint region needs both ratios small at the same
//! time, which makes each side's real false-pass probability far below Ville's bound at
//! `λ = 1/β_s`; calibrating spends that slack on a wider region.
//!
//! A side that rejects, or a variant that is accepted, is frozen (reject wins a tie on the same
//! observation). The split **fails** as soon as any side rejects, and **passes** once every
//! tested variant has been accepted.
//!
//! In a two-variant split one variant's share is too low exactly when the other's is too high,
//! and the streams are complements: the lighter variant's two tests are run, and the other
//! variant's sides are shown as *mirrors* of them (same statistics), counted once.
//!
//! ## Edges: weights 0 and 100, bands leaving [0, 1]
//!
//! A side whose edge `p0 ∓ δ` lies outside `[0, 1]` is dropped: no share can be that far
//! away on that side, so there is nothing to guard against (e.g. weight 3 % with δ = 5 pp has no
//! low side). When `p0 ∓ δ` is exactly 0 or 1 the side is kept with a degenerate alternative.
//! The likelihoods then contain zeros and the steps are infinite, which is exactly right:
//!
//! - **weight 0** (only a high side, `H1: p = δ`): a single hit is impossible under `H0`, so its
//!   LLR step is `+∞` and the test fails on the first response from that variant. Each miss adds
//!   `ln(1 − δ)`; the side accepts after `⌈ln β_s / ln(1 − δ)⌉` misses (91 for δ = 5 pp,
//!   99 % confidence). Weight 100 is the mirror image.
//! - **alternative exactly 0** (weight = δ, low side): a hit is impossible under `H1`, so the
//!   first hit sends that side's ratio to 0 and it drops out of the pass statistic. A ratio at
//!   `−∞` stays there (its alternative is refuted for good). Such a variant is not calibrated.
//!
//! Every variant keeps at least one side, because `δ < 50 pp`.
//!
//! # Error rates: the rule and its proof
//!
//! With confidence `c`, let `α = β = 1 − c`. The user is promised, for any number of variants:
//!
//! - **false fail ≤ α** when every true share equals its weight;
//! - **false pass ≤ β** when some variant's true share is `δ` or more from its weight.
//!
//! Between those points lies the **indifference zone**: when a share is strictly between `w`
//! and `w ± δ`, either verdict is acceptable and no error rate is promised. Expect the most
//! requests, and the most `undecided` endings, there.
//!
//! **The rule.** Let `K` be the number of distinct one-sided tests (two per variant, minus
//! dropped sides; in a two-variant split, the lighter variant's) and `φ` =
//! [`sprt::FALLBACK_SHARE`] (1/50). Then
//!
//! | piece | false fail | false pass |
//! |---|---|---|
//! | each sequential side | `α_s = (1 − φ)·α / K` | `β_s = (1 − φ)·β` — **not** divided by `K` |
//! | fallback at the limit, each side | `φ·α / K` | `φ·β` |
//!
//! and each two-sided variant's `λ_low`, `λ_high` are the smallest found (by a fixed-point
//! search) whose computed bounds `B_low`, `B_high` (below) are both `≤ β_s`; the values, and the
//! bounds, are in the evidence of every side (`accept_threshold = −ln λ_s`, `false_pass_bound`).
//!
//! **Assumption.** Classified responses are i.i.d. draws of a variant (the engine feeds them in
//! issue order, see [`engine`]), and whether a request is classified at all does not depend on
//! its variant, so the number `n` of classified responses at the limit is independent of the
//! stream. Write `x_k = [response k came from variant i]`, i.i.d. Bernoulli(`p_i`), and `h_n` for
//! the hits in the first `n`.
//!
//! **Lemma 1 (Ville).** For a non-negative martingale `R_n` with `R_0 = 1`,
//! `P(∃n: R_n ≥ 1/a) ≤ a`, with no correction for overshoot and for any truncation. Under
//! `p = p0` each `LR_j` is such a martingale, so is `M = Σ π_j LR_j` (`Σ π_j = 1`); under
//! `p = p1` so is `1/LR`; and from any time `m` on, `P(∃n ≥ m: R_n ≥ 1/a | F_m) ≤ min(1, a·R_m)`.
//!
//! **Lemma 2 (monotonicity).** Couple the streams for all `p` by `x_k = [U_k < p]` with one
//! uniform sequence: `h_n` grows with `p` for every `n`. An event that can only stop happening
//! when hits are added has a probability that falls as `p` grows.
//!
//! **The event that bounds a false pass.** Take variant `i`'s high side (the low side is the
//! mirror image, on the complementary stream). Let `u(n)` be the top of the pass region at `n`
//! (the statistic is convex in `h`, so the region is an interval) and `r(n)` the smallest hit
//! count at which the high side's mixture rejects (the mixture grows with `h`). Let
//! `E = {∃n: h_n ≤ u(n), h_n < r(n), and h_m < r(m) for all m < n}`. A pass needs `E`: variant `i`
//! is accepted at some `n` with `h_n` in the region, so `≤ u(n)`, and had its high side rejected
//! before, the split would have failed then. Adding hits can only break `E`, so by Lemma 2
//! `P_p(E) ≤ P_p1(E)` for every `p ≥ p1 = w_i + δ`, **whatever the other sides and variants do**.
//! `B_high` is `P_p1(E)` summed exactly over the `(n, h)` lattice to [`calibrate::HORIZON`]
//! observations, plus, for the paths still undecided there, Lemma 1's `min(1, 1/(λ_high·LR_high))`
//! (the region lies inside `λ_high·LR_high ≤ 1`), plus every state dropped as negligible (charged
//! in full). So `P_p(E) ≤ B_high ≤ β_s`, for any stopping point. With `λ = 1/β_s` (variants not
//! calibrated), `P_p1(E) ≤ P_p1(∃n: 1/LR_n ≥ 1/β_s) ≤ β_s` by Lemma 1 directly.
//!
//! **False pass ≤ β** (intersection–union). Let `p_i ≥ w_i + δ`. A pass needs `i`'s high side
//! to accept, either sequentially (event `E` above) or by the fallback (event `F`: the exact
//! one-sided upper bound for `p_i` lies strictly below `w_i + δ`; the Clopper–Pearson test at
//! error `φβ`, so for the realised `n`, `P_p(F) ≤ φβ`). So
//! `P(pass) ≤ P(E) + P(F) ≤ (1 − φ)β + φβ = β`. Only the side at fault is needed for this
//! bound, so `β_s` is not divided between sides or variants.
//!
//! **False fail ≤ α** (union bound). With every `p_i = w_i`, a fail needs *some* side to reject,
//! sequentially (`P(∃n: M_n ≥ 1/α_s) ≤ α_s` by Lemma 1) or by the fallback (the exact one-sided
//! bound at error `φα/K` at or beyond the edge, so beyond `p_i`: probability `≤ φα/K`). Any of
//! the `K` sides can spend this budget, so it is divided: `P(fail) ≤ K·(α_s + φα/K) = α`.
//! (In a two-variant split the mirrors are the same events, so `K` counts them once.)
//!
//! A share beyond the edge (20 % against 10 ± 5) is caught more reliably still: by Lemma 2 its
//! false-pass probability is below the edge's, and in practice far below.
//!
//! **What it costs, and the floor.** Seeded simulation (`cargo bench --bench canary`, 90/10
//! ±5 pp at 99 %, 10 000 runs): a correct split passes in a mean of 469 requests (p95 893),
//! against 498 (p95 965) for two separate Wald tests with `φ = 1/10`; false pass 0.92 % at 15 %,
//! 0.96 % at 5 %, false fail 0.82 %. No test does much better: for tests that stop by 2000
//! observations, `E_10%[N] ≥ V(λ) − 0.01·(λ_15 + λ_5 + c)` for every `λ_15, λ_5, c ≥ 0`, where
//! `V` is the Bayes value (backward induction over `(n, h)`) of "pay 1 per observation at 10 %,
//! `λ_15·P_15%(pass) + λ_5·P_5%(pass) + c·P_10%(not pass)`"; at `(7500, 1940, 850)` this gives
//! **463** requests for any test with false pass ≤ 1 % at both edges and false fail ≤ 1 %. The
//! issue's 450 lies below that floor; only dropping the low edge's guarantee reaches it (the
//! high edge alone has the floor ~414 that Wald's bound states).
//!
//! # The fallback at `--max-requests` (default 2000)
//!
//! `--max-requests` bounds the requests *sent*, classified or not. When the test decides, up to
//! `--concurrency` requests already sent may be outstanding; their responses are discarded
//! (evidence: `requests_sent − requests_used`).
//! If the request budget runs out before the sequential tests decide, exact binomial tests on
//! the counts decide ([`interval::binomial_at_most`], [`interval::binomial_at_least`]): some
//! side's exact one-sided bound at error `φα/K` at or beyond its edge → **fail**; every side's
//! exact one-sided bound at error `φβ` strictly inside the band → **pass**; otherwise the shares
//! straddle the band and the verdict is **error** ("undecided: interval straddles the band").
//! Error rather than fail, because neither error rate above covers that ending: calling it a
//! failure would add an unbounded false-fail rate for shares in the indifference zone, calling
//! it a pass an unbounded false-pass rate. An `error` (exit 2) says "this run could not decide —
//! raise `--max-requests` or widen `--tolerance`", which is the truth.
//!
//! # What a verdict reports
//!
//! The classified responses the decision rests on, the requests used and sent, and for every
//! variant its count, share and Wilson interval at the confidence level. The Wilson interval is
//! descriptive (a fixed-sample interval read at a data-dependent stop); the decision never
//! rests on it.
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
//! - [`calibrate`]: the exact false-pass bounds and the pass-region weights they set.
//! - [`interval`]: Wilson score intervals (reported), exact binomial tails (the fallback).
//! - [`classify`]: body / header → variant index.
//! - [`engine`]: drives the rule from any async sample source ([`engine::run_canary`]) — the
//!   entry point for in-cluster use — and builds the verdict.
//! - [`sampler`]: the HTTP sample source used by `meshproof check canary`.

pub mod batch;
pub mod calibrate;
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
