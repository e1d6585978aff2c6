//! Requests-to-verdict and error rates of meshproof's sequential canary test, side by side with
//! the fixed-sample rule of the Gateway API conformance suite, by seeded simulation (no network).
//!
//! Each row is a configured split and a true split; for each, `RUNS` seeded runs of
//! - meshproof: `SequentialTest` at ±5 pp, 99 % confidence, `--max-requests 2000` (the
//!   fixed-sample fallback decides at the limit);
//! - the fixed rule: 500 requests, pass iff every observed share is within ±5 pp of its weight
//!   (inclusive); retried up to 10 times, passing if any attempt passes (as the upstream suite
//!   retries until the check converges). Its requests are 500 per attempt made.
//!
//! On an out-of-band row every pass is a false pass; on an at-weight row every fail is a false
//! fail. Issue #18's targets are checked on those rows at the end, each printed as met or MISSED.
//!
//! Run with `cargo bench --bench canary`.

use meshproof::check::canary::spec::{Confidence, TestParams, Tolerance, Weight};
use meshproof::check::canary::sprt::{run_to_decision, RuleResult, SequentialTest};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const RUNS: u64 = 10_000;
const MAX_REQUESTS: u64 = 2000;
const FIXED_N: u64 = 500;
const FIXED_TOL: f64 = 0.05;
const RETRIES: u64 = 10;

/// Draws a variant index from the true shares (summing to 1).
fn draw(rng: &mut ChaCha8Rng, truth: &[f64]) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, p) in truth.iter().enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    truth.len() - 1
}

/// One attempt of the fixed rule: pass iff every observed share is within ±5 pp.
fn fixed_attempt(rng: &mut ChaCha8Rng, weights: &[u8], truth: &[f64]) -> bool {
    let mut hits = vec![0u64; weights.len()];
    for _ in 0..FIXED_N {
        hits[draw(rng, truth)] += 1;
    }
    hits.iter().zip(weights).all(|(&h, &w)| {
        (h as f64 / FIXED_N as f64 - f64::from(w) / 100.0).abs() <= FIXED_TOL + 1e-12
    })
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    let idx = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Truth {
    AtWeight,
    Indifference,
    OutOfBand,
}

struct Row {
    weights: &'static [u8],
    truth: &'static [f64],
}

struct Measured {
    truth: Truth,
    pass: f64,
    fail: f64,
    undecided: f64,
    mean: f64,
    p95: u64,
    fixed_pass1: f64,
    fixed_pass10: f64,
    fixed_mean: f64,
    fixed_p95: u64,
}

fn classify(weights: &[u8], truth: &[f64]) -> Truth {
    let off: Vec<f64> = weights
        .iter()
        .zip(truth)
        .map(|(&w, &p)| (p - f64::from(w) / 100.0).abs())
        .collect();
    if off.iter().any(|&d| d >= FIXED_TOL - 1e-9) {
        Truth::OutOfBand
    } else if off.iter().all(|&d| d < 1e-9) {
        Truth::AtWeight
    } else {
        Truth::Indifference
    }
}

fn measure(row: &Row, params: TestParams, seed_base: u64) -> Measured {
    let weights: Vec<Weight> = row
        .weights
        .iter()
        .map(|&w| Weight::new(w).expect("weight"))
        .collect();
    let (mut pass, mut fail, mut undecided) = (0u64, 0u64, 0u64);
    let mut used = Vec::with_capacity(RUNS as usize);
    let (mut fixed_pass1, mut fixed_pass10) = (0u64, 0u64);
    let mut fixed_used = Vec::with_capacity(RUNS as usize);
    for seed in 0..RUNS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed_base + seed);
        let mut test = SequentialTest::new(&weights, params).expect("valid split");
        let stream = std::iter::repeat_with(|| draw(&mut rng, row.truth));
        let d = run_to_decision(&mut test, stream, MAX_REQUESTS).expect("indices in range");
        match d.result {
            RuleResult::Pass => pass += 1,
            RuleResult::Fail => fail += 1,
            RuleResult::Undecided => undecided += 1,
        }
        used.push(d.observations);

        let mut rng = ChaCha8Rng::seed_from_u64(seed_base + 5_000_000 + seed);
        for attempt in 1..=RETRIES {
            let ok = fixed_attempt(&mut rng, row.weights, row.truth);
            if attempt == 1 && ok {
                fixed_pass1 += 1;
            }
            if ok || attempt == RETRIES {
                fixed_used.push(attempt * FIXED_N);
                fixed_pass10 += u64::from(ok);
                break;
            }
        }
    }
    used.sort_unstable();
    fixed_used.sort_unstable();
    let rate = |k: u64| k as f64 / RUNS as f64;
    Measured {
        truth: classify(row.weights, row.truth),
        pass: rate(pass),
        fail: rate(fail),
        undecided: rate(undecided),
        mean: used.iter().sum::<u64>() as f64 / RUNS as f64,
        p95: percentile(&used, 0.95),
        fixed_pass1: rate(fixed_pass1),
        fixed_pass10: rate(fixed_pass10),
        fixed_mean: fixed_used.iter().sum::<u64>() as f64 / RUNS as f64,
        fixed_p95: percentile(&fixed_used, 0.95),
    }
}

fn shares(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| format!("{:.1}", x * 100.0))
        .collect::<Vec<_>>()
        .join("/")
}

fn main() {
    let params = TestParams {
        tolerance: Tolerance::from_points(5.0).expect("valid tolerance"),
        confidence: Confidence::new(0.99).expect("valid confidence"),
    };
    let rows = [
        Row {
            weights: &[90, 10],
            truth: &[0.90, 0.10],
        },
        Row {
            weights: &[90, 10],
            truth: &[0.875, 0.125],
        },
        Row {
            weights: &[90, 10],
            truth: &[0.85, 0.15],
        },
        Row {
            weights: &[90, 10],
            truth: &[0.95, 0.05],
        },
        Row {
            weights: &[90, 10],
            truth: &[0.80, 0.20],
        },
        Row {
            weights: &[90, 10],
            truth: &[0.50, 0.50],
        },
        Row {
            weights: &[90, 10],
            truth: &[1.00, 0.00],
        },
        Row {
            weights: &[70, 30],
            truth: &[0.76, 0.24],
        },
        Row {
            weights: &[80, 10, 10],
            truth: &[0.80, 0.10, 0.10],
        },
        Row {
            weights: &[80, 10, 10],
            truth: &[0.80, 0.15, 0.05],
        },
        Row {
            weights: &[80, 10, 10],
            truth: &[0.75, 0.15, 0.10],
        },
        Row {
            weights: &[80, 10, 10],
            truth: &[0.80, 0.20, 0.00],
        },
    ];
    let start = std::time::Instant::now();
    println!("canary: ±5 pp, 99 % confidence, {RUNS} seeded runs per row and rule");
    println!("meshproof = sequential test (--max-requests {MAX_REQUESTS}); fixed = Gateway API conformance rule ({FIXED_N} requests, ±5 pp, up to {RETRIES} attempts, pass if any attempt passes)");
    println!();
    println!("| split | true shares | truth | mp pass | mp fail | mp undecided | mp mean req | mp p95 req | fixed pass (1 try) | fixed pass (≤{RETRIES} tries) | fixed mean req | fixed p95 req | mean req mp/fixed |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let pct = |x: f64| format!("{:.2} %", x * 100.0);
    let mut measured = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let m = measure(row, params, i as u64 * 10_000_000);
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.0} | {} | {:.2} |",
            row.weights
                .iter()
                .map(u8::to_string)
                .collect::<Vec<_>>()
                .join("/"),
            shares(row.truth),
            match m.truth {
                Truth::AtWeight => "at weight",
                Truth::Indifference => "indifference zone",
                Truth::OutOfBand => "out of band",
            },
            pct(m.pass),
            pct(m.fail),
            pct(m.undecided),
            m.mean,
            m.p95,
            pct(m.fixed_pass1),
            pct(m.fixed_pass10),
            m.fixed_mean,
            m.fixed_p95,
            m.mean / m.fixed_mean,
        );
        measured.push(m);
    }
    println!();
    println!("(pass on an out-of-band row is a false pass, fail on an at-weight row a false fail; simulation took {:.2?})", start.elapsed());
    println!();

    // Issue #18's targets, on the rows above (index into `rows`).
    let checks: [(&str, bool, String); 9] = [
        (
            "90/10 at 10 %: mean requests ≤ 450",
            measured[0].mean <= 450.0,
            format!("{:.0}", measured[0].mean),
        ),
        (
            "90/10 at 10 %: false fail ≤ 1 %",
            measured[0].fail <= 0.01,
            pct(measured[0].fail),
        ),
        (
            "90/10 at 15 %: false pass ≤ 1 %",
            measured[2].pass <= 0.01,
            pct(measured[2].pass),
        ),
        (
            "90/10 at 5 %: false pass ≤ 1 %",
            measured[3].pass <= 0.01,
            pct(measured[3].pass),
        ),
        (
            "90/10 at 20 %: false pass ≤ 0.1 %",
            measured[4].pass <= 0.001,
            pct(measured[4].pass),
        ),
        (
            "90/10 at 50 %: rejected, mean requests ≤ 30",
            measured[5].fail == 1.0 && measured[5].mean <= 30.0,
            format!("{:.1}, fail {}", measured[5].mean, pct(measured[5].fail)),
        ),
        (
            "90/10 at 0 %: rejected, mean requests ≤ 100",
            measured[6].fail == 1.0 && measured[6].mean <= 100.0,
            format!("{:.1}, fail {}", measured[6].mean, pct(measured[6].fail)),
        ),
        (
            "80/10/10 at weight: false fail ≤ 1 %",
            measured[8].fail <= 0.01,
            pct(measured[8].fail),
        ),
        (
            "80/10/10 at an edge (80/15/5, 75/15/10): false pass ≤ 1 %",
            measured[9].pass <= 0.01 && measured[10].pass <= 0.01,
            format!("{}, {}", pct(measured[9].pass), pct(measured[10].pass)),
        ),
    ];
    let mut missed = 0;
    for (what, ok, got) in &checks {
        println!("{} {what}: {got}", if *ok { "met    " } else { "MISSED " });
        missed += usize::from(!ok);
    }
    println!("{} of {} targets met", checks.len() - missed, checks.len());
    println!();
    println!(
        "fixed rule on the same true shares: 90/10 at 15 % passes {} (≤{RETRIES} tries; {} in one), 70/30 with 76 % on the 70 % backend passes {} ({} in one); meshproof: {}, {}",
        pct(measured[2].fixed_pass10),
        pct(measured[2].fixed_pass1),
        pct(measured[7].fixed_pass10),
        pct(measured[7].fixed_pass1),
        pct(measured[2].pass),
        pct(measured[7].pass),
    );
    println!("no test with false pass ≤ 1 % at both edges and false fail ≤ 1 % can pass a correct 90/10 split in a mean below ~463 requests (the floor is derived in the docs of meshproof::check::canary)");
}
