//! Requests-to-verdict of meshproof's sequential canary test against the fixed-sample rule of
//! the Gateway API conformance suite, by simulation (no network).
//!
//! Scenario: a 90/10 split checked at ±5 pp and 99 % confidence, while the true canary share is
//! 10 % (correct), 12.5 % (indifference zone: either verdict is acceptable), 15 % (on the
//! band's edge: a pass here is a false pass), 20 %, 50 % and 0 %.
//! For each truth, 2000 seeded runs of each rule:
//! - meshproof: `SequentialTest` with `--max-requests 2000` (fixed-sample fallback at the limit);
//! - fixed rule: 500 requests, pass iff every observed share is within ±5 pp (inclusive), one
//!   attempt; and the same rule retried up to 10 times as the upstream suite does (pass at the
//!   first passing attempt).
//!
//! Run with `cargo bench --bench canary`.

use meshproof::check::canary::spec::{Confidence, TestParams, Tolerance, Weight};
use meshproof::check::canary::sprt::{run_to_decision, RuleResult, SequentialTest};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const RUNS: u64 = 2000;
const MAX_REQUESTS: u64 = 2000;
const FIXED_N: u64 = 500;
const FIXED_TOL: f64 = 0.05;
const RETRIES: u32 = 10;

fn draw(rng: &mut ChaCha8Rng, canary: f64) -> usize {
    usize::from(rng.random_bool(canary))
}

/// One attempt of the fixed rule: pass iff both shares are within ±5 pp of 90/10.
fn fixed_attempt(rng: &mut ChaCha8Rng, canary: f64) -> bool {
    let hits = (0..FIXED_N).filter(|_| draw(rng, canary) == 1).count() as f64;
    let share = hits / FIXED_N as f64;
    // With two variants the stable share is 1 − canary share, so one check covers both.
    (share - 0.10).abs() <= FIXED_TOL + 1e-12
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() {
    let params = TestParams {
        tolerance: Tolerance::from_points(5.0).expect("valid tolerance"),
        confidence: Confidence::new(0.99).expect("valid confidence"),
    };
    let weights = [
        Weight::new(90).expect("weight"),
        Weight::new(10).expect("weight"),
    ];
    let start = std::time::Instant::now();

    println!("canary: 90/10 split, ±5 pp, 99 % confidence, {RUNS} seeded runs per row");
    println!("meshproof = sequential test (max {MAX_REQUESTS} requests); fixed = Gateway API rule ({FIXED_N} requests, ±5 pp)");
    println!();
    println!(
        "| true canary | truth       | mp pass | mp fail | mp undecided | mp mean req | mp p95 req | fixed pass (1 try) | fixed req | mean ratio mp/fixed | p95 ratio mp/fixed | fixed pass (≤{RETRIES} tries) | fixed mean req (≤{RETRIES}) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &canary in &[0.10, 0.125, 0.15, 0.20, 0.50, 0.0] {
        let truth = if canary == 0.10 {
            "at weight"
        } else if (canary - 0.10f64).abs() < 0.05 - 1e-12 {
            "indifference zone"
        } else {
            "out of band"
        };
        let (mut pass, mut fail, mut undecided) = (0u64, 0u64, 0u64);
        let mut used = Vec::with_capacity(RUNS as usize);
        let (mut fixed_pass1, mut fixed_pass10, mut fixed_req10) = (0u64, 0u64, 0u64);
        for seed in 0..RUNS {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut test = SequentialTest::new(&weights, params).expect("valid split");
            let stream = std::iter::repeat_with(|| draw(&mut rng, canary));
            let d = run_to_decision(&mut test, stream, MAX_REQUESTS).expect("indices are 0 or 1");
            match d.result {
                RuleResult::Pass => pass += 1,
                RuleResult::Fail => fail += 1,
                RuleResult::Undecided => undecided += 1,
            }
            used.push(d.observations);

            let mut rng = ChaCha8Rng::seed_from_u64(1_000_000 + seed);
            for attempt in 1..=RETRIES {
                let ok = fixed_attempt(&mut rng, canary);
                if attempt == 1 && ok {
                    fixed_pass1 += 1;
                }
                if ok || attempt == RETRIES {
                    fixed_req10 += u64::from(attempt) * FIXED_N;
                    if ok {
                        fixed_pass10 += 1;
                    }
                    break;
                }
            }
        }
        used.sort_unstable();
        let mean = used.iter().sum::<u64>() as f64 / RUNS as f64;
        let p95 = percentile(&used, 0.95);
        let pct = |k: u64| 100.0 * k as f64 / RUNS as f64;
        println!(
            "| {:>4.1} % | {truth} | {:.1} % | {:.1} % | {:.1} % | {:.0} | {} | {:.1} % | {FIXED_N} | {:.2} | {:.2} | {:.1} % | {:.0} |",
            canary * 100.0,
            pct(pass),
            pct(fail),
            pct(undecided),
            mean,
            p95,
            pct(fixed_pass1),
            mean / FIXED_N as f64,
            p95 as f64 / FIXED_N as f64,
            pct(fixed_pass10),
            fixed_req10 as f64 / RUNS as f64,
        );
    }
    println!();
    println!(
        "(pass rates on out-of-band rows are false-pass rates; fail rates on the at-weight row are false-fail rates; simulation took {:.2?})",
        start.elapsed()
    );
}
