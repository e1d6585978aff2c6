//! Tests of `meshproof check canary`:
//! 1. the pure sequential rule on seeded random streams — measured error rates against the
//!    promised ones, speed on gross misconfiguration, three-way splits;
//! 2. the engine with the real HTTP sampler against a real axum server on loopback that answers
//!    "stable"/"canary" at chosen probabilities from a seeded RNG;
//! 3. the `meshproof` binary against that server: exit codes and `--json`.

use axum::extract::State;
use axum::http::{HeaderMap as AxHeaders, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use meshproof::check::canary::sampler::HttpSampler;
use meshproof::check::canary::sprt::{
    run_to_decision, Direction, RuleResult, SequentialTest, StopReason,
};
use meshproof::check::canary::{
    run_canary, CanaryConfig, Classifier, Confidence, Split, TestParams, Tolerance, VariantSpec,
    Weight,
};
use meshproof::check::Outcome;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// 1. The pure rule on seeded streams
// ---------------------------------------------------------------------------------------------

/// Seeds per Monte-Carlo estimate. 2000 keeps the Monte-Carlo slack (3 standard errors of a 1 %
/// rate: 0.67 pp) well under the rate itself, and the whole file under ~20 s in debug.
const SEEDS: u64 = 2000;

fn params(tol: f64, conf: f64) -> TestParams {
    TestParams {
        tolerance: Tolerance::from_points(tol).unwrap(),
        confidence: Confidence::new(conf).unwrap(),
    }
}

fn weights(ws: &[u8]) -> Vec<Weight> {
    ws.iter().map(|&w| Weight::new(w).unwrap()).collect()
}

/// Draws a variant index from the true shares `truth` (summing to 1).
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

#[derive(Debug, Default)]
struct Tally {
    pass: u64,
    fail: u64,
    undecided: u64,
    max_used: u64,
    total_used: u64,
}

fn simulate(
    ws: &[u8],
    truth: &[f64],
    p: TestParams,
    max: u64,
    seeds: u64,
    seed_base: u64,
) -> Tally {
    let mut t = Tally::default();
    for seed in 0..seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed_base + seed);
        let mut test = SequentialTest::new(&weights(ws), p).unwrap();
        let d = run_to_decision(
            &mut test,
            std::iter::repeat_with(|| draw(&mut rng, truth)),
            max,
        )
        .unwrap();
        match d.result {
            RuleResult::Pass => t.pass += 1,
            RuleResult::Fail => t.fail += 1,
            RuleResult::Undecided => t.undecided += 1,
        }
        t.max_used = t.max_used.max(d.observations);
        t.total_used += d.observations;
    }
    t
}

/// The promised rate plus three Monte-Carlo standard errors.
fn bound(rate: f64, n: u64) -> f64 {
    rate + 3.0 * (rate * (1.0 - rate) / n as f64).sqrt()
}

#[test]
fn false_pass_rate_at_the_band_edge_is_within_beta() {
    // 90/10 ±5 pp at 99 %: true canary share 15 % (high edge) and 5 % (low edge).
    let p = params(5.0, 0.99);
    let limit = bound(0.01, SEEDS);
    for (truth, label) in [
        ([0.85, 0.15], "canary at 15 %"),
        ([0.95, 0.05], "canary at 5 %"),
    ] {
        let t = simulate(&[90, 10], &truth, p, 2000, SEEDS, 10_000);
        let rate = t.pass as f64 / SEEDS as f64;
        eprintln!("{label}: {t:?}, false-pass rate {rate:.4} (bound {limit:.4})");
        assert!(
            rate <= limit,
            "{label}: false-pass rate {rate} exceeds {limit}: {t:?}"
        );
        // And the test is doing work: most runs fail (a rule that never passes would also meet
        // the bound, but it would fail the next test).
        assert!(t.fail as f64 / SEEDS as f64 > 0.9, "{label}: {t:?}");
    }
}

#[test]
fn false_fail_rate_at_the_weight_is_within_alpha() {
    let p = params(5.0, 0.99);
    let t = simulate(&[90, 10], &[0.9, 0.1], p, 2000, SEEDS, 20_000);
    let rate = t.fail as f64 / SEEDS as f64;
    let limit = bound(0.01, SEEDS);
    eprintln!(
        "true 90/10: {t:?}, false-fail rate {rate:.4} (bound {limit:.4}), mean requests {}",
        t.total_used / SEEDS
    );
    assert!(
        rate <= limit,
        "false-fail rate {rate} exceeds {limit}: {t:?}"
    );
    // A correct split passes in a few hundred requests on average, and never uses more than
    // the limit; undecided endings are rare.
    assert!(t.total_used / SEEDS < 700, "{t:?}");
    assert!(t.max_used <= 2000);
    assert!(t.pass as f64 / SEEDS as f64 > 0.97, "{t:?}");
}

// Issue #18's targets, one seeded simulation each (90/10, ±5 pp, 99 %, --max-requests 2000).
// The seeds are fixed, so each rate is a deterministic measurement; the bounds are the targets
// themselves, which the error-budget rule (module docs of `check::canary`) guarantees in
// expectation, with no Monte-Carlo slack added.

/// Target: at the weight (10 %), false fail ≤ 1 %, in fewer requests than two separate Wald
/// tests (mean ~498 in `cargo bench --bench canary`). The calibrated joint pass region takes
/// ~469; no test with these error rates can take fewer than ~463 (module docs), so the issue's
/// 450 is out of reach and 480 is the bound asserted.
#[test]
fn target_at_the_weight_false_fail_within_one_percent_in_fewer_requests() {
    let n = 4000;
    let t = simulate(&[90, 10], &[0.9, 0.1], params(5.0, 0.99), 2000, n, 100_000);
    let mean = t.total_used as f64 / n as f64;
    eprintln!("90/10 at 10 %: {t:?}, mean {mean:.0}");
    assert!(t.fail as f64 / n as f64 <= 0.01, "{t:?}");
    assert!(mean < 480.0, "mean {mean} requests: {t:?}");
}

/// Target: canary at 15 % (the high edge), false pass ≤ 1 %; and at 5 % (the low edge).
///
/// The calibrated rule spends the budget: its exact false-pass bound at each edge is
/// `β_s + φβ` = 1 % (computed, and asserted in the unit tests of `sprt`), so a seeded estimate
/// lands on either side of 1 % by chance (bench, 10 000 runs: 0.92 %, 0.96 %). The measured
/// rate is held to 1 % plus three Monte-Carlo standard errors; a budget twice too large
/// (~2 %) fails it.
#[test]
fn target_at_either_edge_false_pass_within_one_percent() {
    let n = 4000;
    for (truth, label) in [([0.85, 0.15], "15 %"), ([0.95, 0.05], "5 %")] {
        let t = simulate(&[90, 10], &truth, params(5.0, 0.99), 2000, n, 200_000);
        eprintln!("90/10 at {label}: {t:?}");
        assert!(t.pass as f64 / n as f64 <= bound(0.01, n), "{label}: {t:?}");
        assert!(t.fail as f64 / n as f64 >= 0.98, "{label}: {t:?}");
    }
}

/// Target: canary at 20 % (beyond the edge), false pass ≤ 0.1 %.
#[test]
fn target_beyond_the_edge_false_pass_within_a_tenth_of_a_percent() {
    let n = 5000;
    let t = simulate(&[90, 10], &[0.8, 0.2], params(5.0, 0.99), 2000, n, 300_000);
    eprintln!("90/10 at 20 %: {t:?}");
    assert!(t.pass as f64 / n as f64 <= 0.001, "{t:?}");
    assert_eq!(t.fail, n - t.pass - t.undecided);
    assert!(t.fail as f64 / n as f64 >= 0.999, "{t:?}");
}

/// Targets: a 50 % canary is rejected within a mean of 30 requests, a 0 % canary within 100.
#[test]
fn target_gross_misconfiguration_rejected_within_30_and_100_requests() {
    let n = 2000;
    for (truth, limit) in [([0.5, 0.5], 30.0), ([1.0, 0.0], 100.0)] {
        let t = simulate(&[90, 10], &truth, params(5.0, 0.99), 2000, n, 400_000);
        let mean = t.total_used as f64 / n as f64;
        eprintln!("90/10 at {truth:?}: {t:?}, mean {mean:.1}");
        assert_eq!(t.fail, n, "{truth:?}: {t:?}");
        assert!(mean <= limit, "{truth:?}: mean {mean} > {limit}");
    }
}

/// Target: three-way splits keep the guarantees per variant — false fail ≤ 1 % at the
/// weights, false pass ≤ 1 % with one variant on its high edge and another on its low edge
/// (80/15/5), and with the heavy variant on its low edge (75/15/10).
#[test]
fn target_three_way_split_keeps_the_error_rates_per_variant() {
    let p = params(5.0, 0.99);
    let n = 2000;
    let right = simulate(&[80, 10, 10], &[0.8, 0.1, 0.1], p, 3000, n, 500_000);
    eprintln!("80/10/10 at weight: {right:?}");
    assert!(right.fail as f64 / n as f64 <= 0.01, "{right:?}");
    for truth in [[0.80, 0.15, 0.05], [0.75, 0.15, 0.10]] {
        let t = simulate(&[80, 10, 10], &truth, p, 3000, n, 600_000);
        eprintln!("80/10/10 at {truth:?}: {t:?}");
        assert!(t.pass as f64 / n as f64 <= 0.01, "{truth:?}: {t:?}");
    }
}

/// Target: the request-budget fallback keeps its stated error. Cut at 300 requests, where the
/// sequential test has often not decided, the fallback decides those runs: at the edge the
/// false-pass rate stays ≤ β, at the weight the false-fail rate ≤ α, and the fallback does
/// pass some correct splits (it is not a rule that never passes).
#[test]
fn target_fallback_at_a_low_request_limit_keeps_the_error_rates() {
    let p = params(5.0, 0.95);
    let n = 4000;
    let edge = simulate(&[90, 10], &[0.85, 0.15], p, 300, n, 700_000);
    eprintln!("90/10 at 15 %, limit 300, 95 %: {edge:?}");
    assert!(edge.pass as f64 / n as f64 <= 0.05, "{edge:?}");
    let right = simulate(&[90, 10], &[0.9, 0.1], p, 300, n, 800_000);
    eprintln!("90/10 at 10 %, limit 300, 95 %: {right:?}");
    assert!(right.fail as f64 / n as f64 <= 0.05, "{right:?}");
    assert!(
        right.undecided > 0 && right.pass > right.undecided,
        "{right:?}"
    );
}

#[test]
fn gross_misconfiguration_fails_in_tens_of_requests() {
    let p = params(5.0, 0.99);
    for truth in [[0.0, 1.0], [0.5, 0.5]] {
        for seed in 0..200 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut test = SequentialTest::new(&weights(&[90, 10]), p).unwrap();
            let d = run_to_decision(
                &mut test,
                std::iter::repeat_with(|| draw(&mut rng, &truth)),
                2000,
            )
            .unwrap();
            assert_eq!(d.result, RuleResult::Fail, "{truth:?} seed {seed}: {d:?}");
            assert!(d.observations < 100, "{truth:?} seed {seed}: {d:?}");
            // 50/50 and 0/100 both put too much traffic on the canary and too little on stable.
            assert!(matches!(d.reason, StopReason::RejectedH0 { .. }), "{d:?}");
        }
    }
}

#[test]
fn direction_of_a_rejection_is_reported() {
    let p = params(5.0, 0.99);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut test = SequentialTest::new(&weights(&[90, 10]), p).unwrap();
    let d = run_to_decision(
        &mut test,
        std::iter::repeat_with(|| draw(&mut rng, &[0.5, 0.5])),
        2000,
    )
    .unwrap();
    match d.reason {
        StopReason::RejectedH0 {
            variant: 0,
            direction: Direction::Low,
        }
        | StopReason::RejectedH0 {
            variant: 1,
            direction: Direction::High,
        } => {}
        other => panic!("50/50 against 90/10 must reject stable-low or canary-high, got {other:?}"),
    }
}

#[test]
fn three_variants_pass_when_right_and_fail_when_wrong() {
    let p = params(5.0, 0.99);
    let n = 500;
    let right = simulate(&[80, 10, 10], &[0.8, 0.1, 0.1], p, 3000, n, 30_000);
    eprintln!("80/10/10 true: {right:?}");
    assert!(right.fail as f64 / n as f64 <= bound(0.01, n), "{right:?}");
    assert!(right.pass as f64 / n as f64 > 0.95, "{right:?}");
    // The third variant gets nothing and the second gets its traffic.
    let wrong = simulate(&[80, 10, 10], &[0.8, 0.2, 0.0], p, 3000, n, 40_000);
    eprintln!("80/10/10 vs true 80/20/0: {wrong:?}");
    assert_eq!(wrong.fail, n, "{wrong:?}");
    assert!(wrong.max_used < 400, "{wrong:?}");
}

// ---------------------------------------------------------------------------------------------
// 2. The engine over real HTTP on loopback
// ---------------------------------------------------------------------------------------------

/// How the test server answers.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// The variant name as the body.
    Body,
    /// A constant body, the variant name in the `x-variant` header.
    Header,
    /// 503 for every request.
    Unavailable,
    /// Waits this long before answering.
    Slow(Duration),
}

#[derive(Clone)]
struct ServerState {
    rng: Arc<Mutex<Draws>>,
    canary: f64,
    junk: f64,
    answer: Answer,
}

/// The server's seeded randomness. With `blocked`, canaries are drawn as a seeded shuffle of
/// blocks of 20 responses holding exactly `round(20·canary)` canaries: still random order, but
/// with the share pinned to the weight, so that a test expecting a pass on a correct split is
/// not subject to the rule's (≤ 1 %) false-fail rate and cannot flake. Without it, every
/// response is an independent draw.
struct Draws {
    rng: ChaCha8Rng,
    blocked: bool,
    pending: Vec<bool>,
}

impl Draws {
    fn next_is_canary(&mut self, canary: f64) -> bool {
        if !self.blocked {
            return self.rng.random_bool(canary);
        }
        if self.pending.is_empty() {
            let k = (20.0 * canary).round() as usize;
            let mut block: Vec<bool> = (0..20).map(|i| i < k).collect();
            for i in (1..block.len()).rev() {
                let j = self.rng.random_range(0..=i);
                block.swap(i, j);
            }
            self.pending = block;
        }
        self.pending.pop().unwrap_or(false)
    }
}

async fn handler(State(s): State<ServerState>) -> impl IntoResponse {
    let body = match s.rng.lock() {
        Ok(mut d) => {
            let junk = d.rng.random_bool(s.junk);
            if junk {
                "upstream connect error"
            } else if d.next_is_canary(s.canary) {
                "canary"
            } else {
                "stable"
            }
        }
        Err(_) => "poisoned",
    };
    let mut headers = AxHeaders::new();
    match s.answer {
        Answer::Body => (StatusCode::OK, headers, body.to_string()),
        Answer::Header => {
            headers.insert("x-variant", body.parse().unwrap());
            (
                StatusCode::OK,
                headers,
                "hello from the service".to_string(),
            )
        }
        Answer::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            headers,
            "no healthy upstream".to_string(),
        ),
        Answer::Slow(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, headers, body.to_string())
        }
    }
}

/// Starts a real HTTP server on an ephemeral loopback port on the current runtime.
async fn serve(canary: f64, junk: f64, seed: u64, answer: Answer) -> SocketAddr {
    serve_with(canary, junk, seed, answer, false).await
}

/// As [`serve`], with the canary share pinned per block of 20 (see [`Draws`]).
async fn serve_blocked(canary: f64, seed: u64, answer: Answer) -> SocketAddr {
    serve_with(canary, 0.0, seed, answer, true).await
}

async fn serve_with(
    canary: f64,
    junk: f64,
    seed: u64,
    answer: Answer,
    blocked: bool,
) -> SocketAddr {
    let draws = Draws {
        rng: ChaCha8Rng::seed_from_u64(seed),
        blocked,
        pending: vec![],
    };
    let state = ServerState {
        rng: Arc::new(Mutex::new(draws)),
        canary,
        junk,
        answer,
    };
    let app = Router::new().route("/", get(handler)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A loopback address where nothing listens: bind, note the port, close.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn split_90_10() -> Split {
    let v = |s: &str| s.parse::<VariantSpec>().unwrap();
    Split::new(vec![v("stable=^stable$:90"), v("canary=^canary$:10")]).unwrap()
}

async fn check(
    addr: SocketAddr,
    classify_header: Option<&str>,
    timeout: Duration,
) -> meshproof::check::Verdict<meshproof::check::canary::CanaryEvidence> {
    let url = format!("http://{addr}/");
    let split = split_90_10();
    let sampler = HttpSampler::new(
        &url,
        Default::default(),
        classify_header,
        Classifier::new(&split),
        timeout,
    )
    .unwrap();
    let mut config = CanaryConfig::new(url, split, params(5.0, 0.99))
        .with_concurrency(4)
        .unwrap();
    config.request_timeout = timeout;
    run_canary(&config, || sampler.sample()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_correct_split_passes() {
    let addr = serve_blocked(0.10, 1, Answer::Body).await;
    let v = check(addr, None, Duration::from_secs(5)).await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.to_json_string());
    let e = &v.evidence;
    assert!(
        e.requests_used < 2000 && e.requests_used > 100,
        "{}",
        v.to_json_string()
    );
    assert_eq!(e.variants[0].hits + e.variants[1].hits, e.classified);
    assert_eq!(e.unclassified.total, 0);
    // The canary's interval covers its weight.
    assert!(e.variants[1].interval.low < 0.10 && e.variants[1].interval.high > 0.10);
    // The verdict states the requests spent and every variant's share and interval.
    assert!(
        v.reasons[0].contains(&format!("of {} requests", e.requests_used)),
        "{:?}",
        v.reasons
    );
    for name in ["stable: ", "canary: "] {
        assert!(
            v.reasons
                .iter()
                .any(|r| r.starts_with(name) && r.contains("% interval [")),
            "{name}{:?}",
            v.reasons
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_wrong_split_fails_fast() {
    let addr = serve(0.50, 0.0, 2, Answer::Body).await;
    let v = check(addr, None, Duration::from_secs(5)).await;
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.to_json_string());
    assert!(v.evidence.requests_used < 100, "{}", v.to_json_string());
    // The reason names the variant and the direction: too much canary or too little stable.
    let r = &v.reasons[0];
    assert!(
        r.starts_with("canary's share is 5 pp or more above")
            || r.starts_with("stable's share is 5 pp or more below"),
        "{r}"
    );
    // Requests in flight at the decision are discarded, never more than the concurrency.
    assert!(v.evidence.requests_sent <= v.evidence.requests_used + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_classifies_by_header() {
    let addr = serve_blocked(0.10, 3, Answer::Header).await;
    let v = check(addr, Some("x-variant"), Duration::from_secs(5)).await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.to_json_string());
    // The same server judged by its (constant) body cannot be classified at all.
    let v = check(addr, None, Duration::from_secs(5)).await;
    assert_eq!(v.outcome, Outcome::Error, "{}", v.to_json_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_unclassifiable_bodies_are_an_error_not_dropped() {
    // 5 % of responses are an error page that matches no variant.
    let addr = serve(0.10, 0.05, 4, Answer::Body).await;
    let v = check(addr, None, Duration::from_secs(5)).await;
    assert_eq!(v.outcome, Outcome::Error, "{}", v.to_json_string());
    let u = &v.evidence.unclassified;
    assert!(u.total > 5, "{}", v.to_json_string());
    assert_eq!(u.by_kind.get("no_match").copied(), Some(u.total));
    assert!(u.examples[0].detail.contains("upstream connect error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_down_is_an_error() {
    let v = check(closed_port(), None, Duration::from_secs(2)).await;
    assert_eq!(v.outcome, Outcome::Error, "{}", v.to_json_string());
    assert_eq!(v.evidence.classified, 0);
    assert!(
        v.evidence.unclassified.by_kind.contains_key("transport"),
        "{}",
        v.to_json_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_503_and_timeouts_are_errors() {
    let addr = serve(0.10, 0.0, 5, Answer::Unavailable).await;
    let v = check(addr, None, Duration::from_secs(2)).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        v.evidence.unclassified.by_kind.contains_key("http_status"),
        "{}",
        v.to_json_string()
    );
    // The reasons show the first example, not only where to look for it.
    assert!(
        v.reasons
            .iter()
            .any(|r| r.contains("the first: HttpStatus status 503")),
        "{:?}",
        v.reasons
    );

    let addr = serve(0.10, 0.0, 6, Answer::Slow(Duration::from_secs(30))).await;
    let started = std::time::Instant::now();
    let v = check(addr, None, Duration::from_millis(300)).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert!(
        v.evidence.unclassified.by_kind.contains_key("timeout"),
        "{}",
        v.to_json_string()
    );
    // 6 timed-out requests, 4 at a time: two rounds of 300 ms, not 30 s.
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A sample-source double (no network): variant of request `k` is `seq[k]`, and canary
/// responses come back slower than stable ones, so completion order differs from issue order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_feeds_outcomes_in_issue_order_not_completion_order() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let seq: Arc<Vec<usize>> = Arc::new((0..2000).map(|_| draw(&mut rng, &[0.9, 0.1])).collect());
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = CanaryConfig::new("double", split_90_10(), params(5.0, 0.99))
        .with_concurrency(8)
        .unwrap();
    let v = run_canary(&config, || {
        let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let variant = seq[k];
        async move {
            let delay = if variant == 1 { 3 } else { 0 };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            meshproof::check::canary::Sample::Variant(variant)
        }
    })
    .await;
    let used = v.evidence.requests_used as usize;
    let canaries = seq[..used].iter().filter(|&&x| x == 1).count() as u64;
    assert_eq!(
        v.evidence.variants[1].hits, canaries,
        "fed sequence must be the issue-order prefix"
    );
    // The pure rule on the same prefix reaches the same decision at the same point.
    let mut test = SequentialTest::new(&weights(&[90, 10]), params(5.0, 0.99)).unwrap();
    let d = run_to_decision(&mut test, seq.iter().copied(), 2000).unwrap();
    assert_eq!(d.observations as usize, used);
    assert!(v.evidence.requests_sent <= v.evidence.requests_used + 8);
}

// ---------------------------------------------------------------------------------------------
// 3. The binary
// ---------------------------------------------------------------------------------------------

/// A runtime that keeps a test server alive while the binary runs in the foreground.
fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn meshproof(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_args(url: &str) -> Vec<String> {
    vec![
        "check".into(),
        "canary".into(),
        "--url".into(),
        url.into(),
        "--variant".into(),
        "stable=^stable$:90".into(),
        "--variant".into(),
        "canary=^canary$:10".into(),
        "--tolerance".into(),
        "5".into(),
        "--confidence".into(),
        "0.99".into(),
        "--timeout".into(),
        "2s".into(),
    ]
}

fn run_cli(url: &str, extra: &[&str]) -> (i32, String, String) {
    let mut a = cli_args(url);
    a.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    meshproof(&refs)
}

#[test]
fn cli_exit_codes_and_json() {
    let rt = server_runtime();
    let good = rt.block_on(serve_blocked(0.10, 11, Answer::Body));
    let bad = rt.block_on(serve(0.50, 0.0, 12, Answer::Body));

    let (code, out, err) = run_cli(&format!("http://{good}/"), &["--json"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let j: serde_json::Value = serde_json::from_str(&out).expect("--json prints one JSON object");
    assert_eq!(j["check"], "canary");
    assert_eq!(j["outcome"], "pass");
    let e = &j["evidence"];
    let hits: u64 = e["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hits"].as_u64().unwrap())
        .sum();
    assert_eq!(hits, e["classified"].as_u64().unwrap());
    for v in e["variants"].as_array().unwrap() {
        let (lo, hi) = (
            v["interval"]["low"].as_f64().unwrap(),
            v["interval"]["high"].as_f64().unwrap(),
        );
        assert!(lo <= hi && lo >= 0.0 && hi <= 1.0, "{v}");
        assert!(v["sides"][0]["llr"].is_number() || v["sides"][0]["llr"].is_string());
    }
    assert_eq!(e["stop"]["kind"], "rule");
    assert_eq!(e["stop"]["decision"]["reason"]["kind"], "accepted_h0");

    let (code, out, _) = run_cli(&format!("http://{bad}/"), &["--json"]);
    assert_eq!(code, 1, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["outcome"], "fail");
    assert_eq!(
        j["evidence"]["stop"]["decision"]["reason"]["kind"],
        "rejected_h0"
    );

    // Human output names the variants and the verdict.
    let (code, out, _) = run_cli(&format!("http://{bad}/"), &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("canary check: FAIL") && out.contains("canary"),
        "{out}"
    );

    let (code, out, _) = run_cli(&format!("http://{}/", closed_port()), &["--json"]);
    assert_eq!(code, 2, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["outcome"], "error");
}

#[test]
fn cli_rejects_bad_flags_with_exit_2() {
    let url = "http://127.0.0.1:9/";
    let cases: &[(&[&str], &str)] = &[
        (&["--variant", "a=a:50", "--variant", "b=b:40"], "sum to 90"),
        (
            &["--variant", "a=a:50", "--variant", "b=(:50"],
            "not a valid regex",
        ),
        (
            &["--variant", "a=a:50", "--variant", "b"],
            "NAME=PATTERN:WEIGHT",
        ),
        (&["--variant", "a=a:100"], "at least two variants"),
        (
            &[
                "--variant",
                "a=a:50",
                "--variant",
                "b=b:50",
                "--tolerance",
                "0",
            ],
            "tolerance",
        ),
        (
            &[
                "--variant",
                "a=a:50",
                "--variant",
                "b=b:50",
                "--confidence",
                "1.2",
            ],
            "confidence",
        ),
        (
            &[
                "--variant",
                "a=a:50",
                "--variant",
                "b=b:50",
                "--concurrency",
                "0",
            ],
            "concurrency",
        ),
        (
            &[
                "--variant",
                "a=a:50",
                "--variant",
                "b=b:50",
                "--max-requests",
                "0",
            ],
            "max requests",
        ),
        (
            &[
                "--variant",
                "a=a:50",
                "--variant",
                "b=b:50",
                "--header",
                "nocolon",
            ],
            "NAME:VALUE",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["check", "canary", "--url", url];
        args.extend_from_slice(extra);
        let (code, out, err) = meshproof(&args);
        assert_eq!(code, 2, "{extra:?}: stdout {out} stderr {err}");
        assert!(
            err.contains(needle),
            "{extra:?}: expected `{needle}` in stderr: {err}"
        );
    }
}

/// A sample-source double cut short by `--max-requests`: the fixed-sample fallback cannot
/// decide on 50 responses, and the verdict is ERROR ("undecided"), neither pass nor fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_reports_undecided_as_error_at_the_request_limit() {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let config = CanaryConfig::new("double", split_90_10(), params(5.0, 0.99))
        .with_max_requests(50)
        .unwrap();
    let v = run_canary(&config, || {
        // Exactly one canary in every ten: the right split, but too little data.
        let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { meshproof::check::canary::Sample::Variant(usize::from(k % 10 == 9)) }
    })
    .await;
    assert_eq!(v.outcome, Outcome::Error, "{}", v.to_json_string());
    assert!(v.reasons[0].starts_with("undecided"), "{:?}", v.reasons);
    assert_eq!(v.evidence.requests_used, 50);
    assert_eq!(v.evidence.requests_sent, 50);
    let j: serde_json::Value = serde_json::from_str(&v.to_json_string()).unwrap();
    assert_eq!(
        j["evidence"]["stop"]["decision"]["reason"]["kind"],
        "max_requests"
    );
    assert_eq!(
        j["evidence"]["stop"]["decision"]["reason"]["fallback"]["kind"],
        "straddles"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. The in-pod batch: the script run for real by this machine's `sh` and `curl`
// ---------------------------------------------------------------------------------------------

fn batch(url: &str, n: u32) -> String {
    use meshproof::check::canary::batch;
    let argv = batch::command(url, n, 5);
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .expect("sh and curl run the batch script");
    String::from_utf8(out.stdout).unwrap()
}

/// The canary client in the cluster is a meshed pod running curl in batches (the split applies
/// at the client's proxy, to Service-addressed requests: ledger IS-8, LD-15). The same script,
/// run here against the loopback server, yields exactly the server's answers in order, and
/// feeds the engine to the right verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_pod_batch_yields_the_servers_answers_and_decides_the_split() {
    use meshproof::check::canary::{batch, Sample, UnclassifiedKind};
    let split = split_90_10();
    let classifier = Classifier::new(&split);
    let addr = serve_blocked(0.10, 11, Answer::Body).await;
    let url = format!("http://{addr}/");
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || batch(&u, 40))
        .await
        .unwrap();
    let samples = batch::parse(&out, &classifier);
    assert_eq!(samples.len(), 40, "{out}");
    let canaries = samples.iter().filter(|s| **s == Sample::Variant(1)).count();
    let stables = samples.iter().filter(|s| **s == Sample::Variant(0)).count();
    assert_eq!(
        (stables, canaries),
        (36, 4),
        "blocks of 20 hold exactly 2 canaries"
    );

    // 503s, and nothing listening, are unclassified with their reason.
    let down = serve(0.10, 0.0, 3, Answer::Unavailable).await;
    let u = format!("http://{down}/");
    let out = tokio::task::spawn_blocking(move || batch(&u, 2))
        .await
        .unwrap();
    let s = batch::parse(&out, &classifier);
    assert!(
        matches!(&s[..], [Sample::Unclassified(a), Sample::Unclassified(_)]
            if a.kind == UnclassifiedKind::HttpStatus && a.detail.contains("503") && a.detail.contains("no healthy upstream")),
        "{s:?}"
    );
    let closed = closed_port();
    let u = format!("http://{closed}/");
    let out = tokio::task::spawn_blocking(move || batch(&u, 1))
        .await
        .unwrap();
    let s = batch::parse(&out, &classifier);
    assert!(
        matches!(&s[..], [Sample::Unclassified(a)] if a.kind == UnclassifiedKind::Transport && a.detail.starts_with("curl exit 7")),
        "{s:?}"
    );
    // A cut-short batch (no marker after the last response) drops that response.
    let cut = out
        .trim_end()
        .rsplit_once('\n')
        .map(|(a, _)| a)
        .unwrap_or("");
    assert!(batch::parse(cut, &classifier).is_empty());

    // The engine, fed batch by batch, decides the split like it does from this machine.
    let queue = Arc::new(tokio::sync::Mutex::new(std::collections::VecDeque::new()));
    let config = CanaryConfig::new(url.clone(), split.clone(), params(5.0, 0.99));
    let v = run_canary(&config, || {
        let (queue, url, classifier) = (queue.clone(), url.clone(), classifier.clone());
        async move {
            let mut q = queue.lock().await;
            if q.is_empty() {
                let out = tokio::task::spawn_blocking(move || batch(&url, 50))
                    .await
                    .unwrap();
                q.extend(batch::parse(&out, &classifier));
            }
            q.pop_front().expect("a batch yields samples")
        }
    })
    .await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.to_json_string());
}
