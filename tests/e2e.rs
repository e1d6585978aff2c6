//! `cargo test --test e2e`: the conformance run.
//!
//! Discovery expands the project's suites × scenarios into trials named `<environment>::<scenario>`
//! (kind = mesh). Each environment is provisioned on first use by its trials and torn down after
//! the run, by the session's destructor running *before* the process exits (never
//! `Conclusion::exit()`, which would skip it).
//!
//! When this machine cannot provision clusters, every trial is ignored with a one-line reason and
//! a preflight banner names what is missing; with `MESHPROOF_REQUIRE_CLUSTER=1` the same trials fail.
//!
//! Every run (not `--list`) writes a report directory — `junit.xml`, `report.json`,
//! `conformance-report.yaml`, `artifacts/` — to `--report-dir DIR` (taken out of the arguments
//! before libtest sees them), `MESHPROOF_REPORT_DIR`, or `target/meshproof/<run id>/`, and prints
//! its path on stderr. The harness only emits events; `meshproof::report::Reporter` writes the
//! files.

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use meshproof::check::Verdict;
use meshproof::plan;
use meshproof::preflight::Report;
use meshproof::process::Redactor;
use meshproof::report::conformance::{self, Conformance, ImplementationArgs};
use meshproof::report::progress::Progress;
use meshproof::report::{dir, revision, Control, Event, Fingerprint, Reporter, TrialOutcome};
use meshproof::run::Session;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Whether nextest runs this binary: it lists the trials, then runs each one in a process of
/// its own (`NEXTEST_EXECUTION_MODE=process-per-test`), so no environment can be shared.
fn under_nextest() -> bool {
    std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test")
}

/// What a trial says under nextest: one process per trial would provision one cluster per
/// trial, all at once, on the same host ports.
fn nextest_refusal(env: &str) -> String {
    format!(
        "meshproof's trials share one environment per cell, and nextest runs each test in a process of its own: run this cell with `cargo test --test e2e -- '{env}'` (one environment, one report)"
    )
}

/// Install the pinned tools the selected trials need before preflight.
const INSTALL_TOOLS_ENV: &str = "MESHPROOF_INSTALL_TOOLS";

fn install_tools_requested() -> bool {
    std::env::var(INSTALL_TOOLS_ENV).is_ok_and(|v| v == "1" || v == "true")
}

/// Installs (verified, into the per-user cache `process::tools::find` searches) every pinned
/// tool the environments of the trials the filter selects need.
fn install_tools(
    envs: &[plan::EnvPlan],
    plans: &[plan::TrialPlan],
    args: &Arguments,
    catalog: &meshproof::scenario::Catalog,
) -> Result<(), String> {
    use meshproof::toolchain::install::{Installer, Outcome, Request};
    let mut by_name = args.clone();
    by_name.ignored = false;
    by_name.include_ignored = false;
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for t in plans.iter().filter(|t| {
        !by_name.is_filtered_out(
            &Trial::test(t.name.clone(), || Ok(())).with_kind(t.data_plane.scenario_key()),
        )
    }) {
        if let Some(e) = envs.iter().find(|e| e.key == t.env_key) {
            // kubectl aside: meshproof talks to the API itself.
            wanted.extend(
                meshproof::preflight::pinned_tools(&e.suite, &t.env, catalog)
                    .into_iter()
                    .filter(|(tool, _)| tool != "kubectl"),
            );
        }
    }
    let platform = meshproof::toolchain::Platform::host().map_err(|e| e.to_string())?;
    let inst = Installer::from_env(Default::default()).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    for (tool, version) in wanted {
        let req = Request {
            tool,
            version,
            platform,
        };
        match rt.block_on(inst.install(&req)) {
            Ok(Outcome::AlreadyInstalled(p)) => {
                eprintln!(
                    "e2e: {} {}: already installed ({})",
                    req.tool,
                    req.version,
                    p.display()
                )
            }
            Ok(Outcome::Installed { path, .. }) => {
                eprintln!(
                    "e2e: {} {}: installed {}",
                    req.tool,
                    req.version,
                    path.display()
                )
            }
            Err(e) => return Err(format!("{} {}: {e}", req.tool, req.version)),
        }
    }
    Ok(())
}

fn require_cluster() -> bool {
    std::env::var("MESHPROOF_REQUIRE_CLUSTER")
        .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
        .unwrap_or(false)
}

/// Takes `FLAG PATH` / `FLAG=PATH` out of the arguments (libtest would reject it).
fn take_path_flag(
    args: Vec<OsString>,
    flag: &str,
) -> Result<(Vec<OsString>, Option<PathBuf>), String> {
    let mut rest = Vec::new();
    let mut value = None;
    let mut it = args.into_iter();
    let prefix = format!("{flag}=");
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == flag {
            value = Some(
                it.next()
                    .map(PathBuf::from)
                    .ok_or(format!("{flag} needs a path"))?,
            );
        } else if let Some(v) = s.strip_prefix(&prefix) {
            value = Some(PathBuf::from(v));
        } else {
            rest.push(a);
        }
    }
    Ok((rest, value))
}

/// A signal is ending the run: the signal thread exits the process (130/143) once its teardown
/// and exit hooks (the partial report) are done. The main thread, done first, waits for that
/// rather than racing it: returning would end the process mid-write, with another exit code.
fn wait_for_the_signal_exit() {
    if let Some(code) = meshproof::stack::signals::received_exit_code() {
        std::thread::sleep(std::time::Duration::from_secs(120));
        // The signal thread should have exited long ago; exit as it would have.
        std::process::exit(i32::from(code));
    }
}

/// The command line that reproduces this run.
fn invocation(args: &[OsString]) -> String {
    let mut s = String::from("cargo test --test e2e");
    if args.len() > 1 {
        s.push_str(" --");
        for a in &args[1..] {
            s.push(' ');
            s.push_str(&meshproof::report::render::shell_quote(
                &a.to_string_lossy(),
            ));
        }
    }
    s
}

/// Emits report events from the trials (on several threads) and remembers whether any was
/// rejected — a harness bug that must fail the run.
struct Emitter {
    reporter: Reporter,
    fingerprints: BTreeMap<String, Fingerprint>,
    started: Mutex<BTreeSet<String>>,
    broken: AtomicBool,
    /// The partial report of a signal exit is written: the trials the signal is ending still
    /// finish on their threads, and their events have nowhere to go.
    closed: AtomicBool,
}

impl Emitter {
    fn emit(&self, e: Event) {
        if self.closed.load(Ordering::SeqCst) {
            return;
        }
        if let Err(err) = self.reporter.emit(e) {
            eprintln!("e2e: report: {err}");
            self.broken.store(true, Ordering::SeqCst);
        }
    }

    /// Starts the environment on its first trial.
    fn environment(&self, env: &str) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if started.insert(env.to_string()) {
            let fingerprint = Box::new(self.fingerprints.get(env).cloned().unwrap_or_default());
            self.emit(Event::EnvironmentStarted {
                environment: env.to_string(),
                fingerprint,
            });
        }
    }

    /// Copies `trial`'s artifacts (written by the session under the run's nested layout) into the
    /// report's `artifacts/<trial>/`, redacted, so that report.json links them. Sub-directories
    /// are flattened into the file names (`dump/pods.txt` → `dump--pods.txt`).
    fn collect_artifacts(&self, trial: &str, dir: &std::path::Path) {
        self.collect_files(trial, dir, |_| true);
    }

    /// Copies the files under `dir` that `keep` accepts into the report's `artifacts/<into>/`,
    /// redacted, sub-directories flattened into the names.
    fn collect_files(
        &self,
        into: &str,
        dir: &std::path::Path,
        keep: impl Fn(&std::path::Path) -> bool,
    ) {
        fn walk(d: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.is_file() {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        walk(dir, &mut files);
        files.retain(|f| keep(f.strip_prefix(dir).unwrap_or(f)));
        files.sort();
        for f in files {
            let name = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('/', "--");
            let result = std::fs::read(&f)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    self.reporter
                        .write_artifact(into, &name, &bytes)
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = result {
                eprintln!("e2e: report: artifact {}: {e}", f.display());
            }
        }
    }

    /// Records a finished trial; returns the outcome after reconciliation (what libtest reports).
    fn trial(
        &self,
        env: &str,
        scenario: &str,
        outcome: TrialOutcome,
        verdicts: &[Verdict<serde_json::Value>],
        started: Instant,
    ) -> TrialOutcome {
        // The negative controls each check ran, as the report lists them.
        let controls: Vec<Control> = verdicts
            .iter()
            .flat_map(meshproof::scenario_run::controls::of)
            .collect();
        let outcome = outcome.reconcile(verdicts, &controls);
        self.emit(Event::TrialFinished {
            environment: env.to_string(),
            scenario: scenario.to_string(),
            outcome: outcome.clone(),
            duration: started.elapsed(),
            verdicts: verdicts.to_vec(),
            controls,
        });
        outcome
    }
}

fn main() -> ExitCode {
    // A copy of this executable may be the run's reaper (see `meshproof::reaper`).
    if let Some(code) = meshproof::reaper::run_if_reaper() {
        return ExitCode::from(code as u8);
    }
    meshproof::reaper::enable();
    let (raw_args, report_dir_flag) =
        match take_path_flag(std::env::args_os().collect(), "--report-dir") {
            Ok(x) => x,
            Err(e) => {
                eprintln!("e2e: error: {e}");
                return ExitCode::from(101);
            }
        };
    // `--rerun-failed REPORT`: only the trials an earlier report says failed or errored.
    let (raw_args, rerun_from) = match take_path_flag(raw_args, "--rerun-failed") {
        Ok(x) => x,
        Err(e) => {
            eprintln!("e2e: error: {e}");
            return ExitCode::from(101);
        }
    };
    let mut args = Arguments::from_iter(raw_args.clone());
    // One trial at a time unless asked otherwise: every kind environment binds the same host
    // ports, so trials of different environments running side by side would keep tearing each
    // other's clusters down (the session serialises them anyway). `--test-threads N` still wins.
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let root = std::env::var_os("MESHPROOF_PROJECT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf());
    let catalog = match meshproof::scenario::catalog::load_project(&root) {
        Ok(c) => c,
        Err(d) => {
            eprintln!("{d}");
            eprintln!("e2e: the suites and scenarios do not validate; fix them (see `meshproof validate`)");
            return ExitCode::from(101);
        }
    };
    let envs = plan::expand(&catalog);
    let mut plans = plan::trials(&envs);
    if let Some(report) = &rerun_from {
        let chosen = meshproof::report::rerun::failed_trials(report).and_then(|failed| {
            meshproof::report::rerun::select(report, &failed, plans.iter().map(|t| t.name.as_str()))
        });
        match chosen {
            Ok(chosen) if chosen.is_empty() => {
                eprintln!(
                    "e2e: {} has no failed or errored trial: nothing to rerun",
                    report.display()
                );
                return ExitCode::SUCCESS;
            }
            Ok(chosen) => {
                eprintln!(
                    "e2e: rerunning {} trial(s) that failed or errored in {}: {}",
                    chosen.len(),
                    report.display(),
                    chosen.iter().cloned().collect::<Vec<_>>().join(", ")
                );
                plans.retain(|t| chosen.contains(&t.name));
            }
            Err(e) => {
                eprintln!("e2e: error: --rerun-failed: {e}");
                return ExitCode::from(101);
            }
        }
    }

    // A filter that matches nothing is a typo, not a green run.
    if args.filter.is_some() && !args.list {
        // By name only: `--ignored` (nextest running a trial it listed as ignored) is not part
        // of whether the filter names a trial.
        let mut by_name = args.clone();
        by_name.ignored = false;
        by_name.include_ignored = false;
        let matched = plans
            .iter()
            .filter(|t| {
                !by_name.is_filtered_out(
                    &Trial::test(t.name.clone(), || Ok(())).with_kind(t.data_plane.scenario_key()),
                )
            })
            .count();
        if matched == 0 {
            eprintln!(
                "e2e: error: no trial matches filter {:?}{}; `cargo test --test e2e -- --list` shows the names",
                args.filter.as_deref().unwrap_or(""),
                if args.exact { " (--exact)" } else { "" }
            );
            return ExitCode::from(101);
        }
    }

    // Under nextest, trials that cannot run are marked ignored (so nextest lists them as
    // skipped, not passed), and marked the same way when nextest runs one, so that `--ignored`
    // selects it; a trial that nextest does run refuses (see `nextest_refusal`).
    let nextest = under_nextest();
    let mut ignored_at_list: BTreeSet<String> = BTreeSet::new();
    if nextest && !require_cluster() {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let report = rt.block_on(Report::gather(&catalog));
            for t in &plans {
                if !report.missing_for(&t.env.name).is_empty() {
                    ignored_at_list.insert(t.name.clone());
                }
            }
        }
    }

    // `MESHPROOF_INSTALL_TOOLS=1`: install the pinned CLIs the selected trials need first
    // (`meshproof tools install` for their environments), so a machine with Docker needs nothing
    // else. A failed install stops the run: the user asked for verified tools.
    if install_tools_requested() && !args.list && !nextest {
        if let Err(e) = install_tools(&envs, &plans, &args, &catalog) {
            eprintln!("e2e: error: {INSTALL_TOOLS_ENV}=1: {e}");
            return ExitCode::from(101);
        }
    }

    // Preflight once, only when trials will actually run; the report likewise (never under
    // nextest: each trial is a process of its own there, and refuses).
    let mut preflight: Option<Arc<Report>> = None;
    let mut emitter: Option<Arc<Emitter>> = None;
    let mut artifacts_root: Option<PathBuf> = None;
    let mut raw_artifacts: Option<tempfile::TempDir> = None;
    if !args.list && !nextest {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("e2e: cannot start a runtime for preflight: {e}");
                return ExitCode::from(101);
            }
        };
        let report = rt.block_on(Report::gather(&catalog));
        if let Some(b) = report.banner() {
            eprint!("{b}");
        }
        let run_id = dir::new_run_id();
        let report_dir = dir::from_env(report_dir_flag.as_deref(), &root, &run_id);
        // Raw artifacts (kind logs, dumps) go to a private directory, not the report: only
        // their redacted copies reach the report, which is uploaded and shared.
        match meshproof::private_fs::temp_private_dir("meshproof-artifacts-") {
            Ok(d) => {
                meshproof::reaper::add(meshproof::reaper::Entry::Dir {
                    path: d.path().to_path_buf(),
                });
                artifacts_root = Some(d.path().to_path_buf());
                raw_artifacts = Some(d);
            }
            Err(e) => {
                eprintln!("e2e: error: cannot create a private directory for artifacts: {e}");
                return ExitCode::from(101);
            }
        }
        // conformance-report.yaml: each trial counts towards the profiles of its scenario's
        // checks; the implementation fields come from MESHPROOF_IMPLEMENTATION_* (certify's
        // --organization …) or say "unknown".
        let conf = Conformance {
            profiles: conformance::profile_map(&catalog),
            implementation: ImplementationArgs::from_env(),
        };
        let reporter = match Reporter::create(&report_dir, &run_id, Redactor::default()) {
            Ok(r) => r.with_conformance(conf),
            Err(e) => {
                eprintln!("e2e: error: cannot create the report directory: {e}");
                return ExitCode::from(101);
            }
        };
        let mut fingerprints = BTreeMap::new();
        for e in &envs {
            fingerprints
                .entry(e.env.name.clone())
                .or_insert_with(|| Fingerprint::declared(&e.suite, &e.env).with_tools(&report));
        }
        let em = Emitter {
            reporter,
            fingerprints,
            started: Mutex::new(BTreeSet::new()),
            broken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        };
        em.emit(Event::RunStarted {
            at: time::OffsetDateTime::now_utc(),
            git_revision: rt.block_on(revision::git_revision(&root)),
            invocation: Some(invocation(&{
                let mut a = raw_args.clone();
                if let Some(r) = &rerun_from {
                    a.push("--rerun-failed".into());
                    a.push(r.clone().into_os_string());
                }
                a
            })),
        });
        preflight = Some(Arc::new(report));
        let em = Arc::new(em);
        // A signal ends the process from the signal thread once the teardown is done: write the
        // partial report then (junit.xml and report.json say the run was interrupted). If the
        // run already wrote its report, that one stands.
        let on_signal = em.clone();
        meshproof::stack::signals::at_signal_exit(move |exit| {
            on_signal.closed.store(true, Ordering::SeqCst);
            if let Err(e) = on_signal.reporter.emit(Event::RunInterrupted {
                at: time::OffsetDateTime::now_utc(),
                why: exit.describe(),
            }) {
                // The run wrote its own report first (it ended while the teardown ran).
                if !matches!(e, meshproof::report::ReportError::Protocol(_)) {
                    eprintln!("e2e: report: {e}");
                }
            } else {
                eprintln!(
                    "e2e: partial report (interrupted): {}",
                    on_signal.reporter.dir().display()
                );
            }
        });
        emitter = Some(em);
    }
    let progress = Arc::new(Progress::stderr(args.quiet));

    // Failure artifacts (kind logs, dumps, verdicts) are written raw to the private directory
    // and copied, redacted, into the report; MESHPROOF_ARTIFACTS_DIR still overrides.
    let mut stack_opts = meshproof::stack::StackOptions::from_env();
    if let (Some(dir), None) = (&artifacts_root, std::env::var_os("MESHPROOF_ARTIFACTS_DIR")) {
        stack_opts.artifacts_root = dir.clone();
    }
    let session = Arc::new(Session::with_options(&envs, stack_opts));
    let require = require_cluster();
    let trials: Vec<Trial> = plans
        .iter()
        .map(|t| {
            let t2 = t.clone();
            let session = session.clone();
            let preflight = preflight.clone();
            let emitter = emitter.clone();
            let progress = progress.clone();
            Trial::ignorable_test(t.name.clone(), move || {
                if nextest {
                    return Err(Failed::from(nextest_refusal(&t2.env.name)));
                }
                let started = Instant::now();
                let (env, scenario) = (t2.env.name.as_str(), t2.scenario.name.as_str());
                if let Some(em) = &emitter {
                    em.environment(env);
                    em.emit(Event::TrialStarted {
                        environment: env.into(),
                        scenario: scenario.into(),
                    });
                }
                let mut verdicts = Vec::new();
                let missing = preflight
                    .as_ref()
                    .map(|p| p.missing_for(&t2.env.name))
                    .unwrap_or_default();
                let outcome = if !missing.is_empty() {
                    let reason = format!(
                        "no cluster: missing {} (see the preflight banner)",
                        missing.join(", ")
                    );
                    if require {
                        TrialOutcome::errored(vec![format!(
                            "{reason}; MESHPROOF_REQUIRE_CLUSTER=1 requires a real cluster"
                        )])
                    } else {
                        TrialOutcome::ignored(reason)
                    }
                } else {
                    // Only trials that do real work report progress; ignored ones would be noise.
                    progress.phase(
                        &t2.name,
                        "provisioning its environment on first use, then running",
                    );
                    let result = session.run_trial(&t2);
                    // What the environment turned out to be: the digest each image ran at
                    // (also when the suite named a tag), the server and mesh versions.
                    if let (Some(em), Some(facts)) = (&emitter, session.facts(&t2.env_key)) {
                        em.emit(Event::EnvironmentUpdated {
                            environment: env.into(),
                            fingerprint: Box::new(facts),
                        });
                    }
                    match result {
                        // Reconciliation still turns a pass without verdicts into an error.
                        Ok(v) => {
                            verdicts = v;
                            TrialOutcome::Passed
                        }
                        Err(e) => {
                            // What the checks did decide goes into the report too. An
                            // environment that could not be set up is an errored trial.
                            verdicts = e.verdicts().to_vec();
                            e.outcome()
                        }
                    }
                };
                if let Some(em) = &emitter {
                    em.reporter.add_secrets(&session.secrets());
                }
                if let (Some(em), Some(dir)) = (&emitter, session.trial_artifacts(&t2)) {
                    em.collect_artifacts(&t2.name, &dir);
                }
                let outcome = match &emitter {
                    Some(em) => em.trial(env, scenario, outcome, &verdicts, started),
                    None => outcome.reconcile(&verdicts, &[]),
                };
                if !matches!(outcome, TrialOutcome::Ignored { .. }) {
                    progress.finished(&t2.name, outcome.label(), started.elapsed());
                }
                match outcome {
                    TrialOutcome::Passed => Ok(Completion::Completed),
                    TrialOutcome::Ignored { reason } => Ok(Completion::ignored_with(reason)),
                    TrialOutcome::Failed { reasons } | TrialOutcome::Errored { reasons } => {
                        Err(Failed::from(reasons.join("; ")))
                    }
                }
            })
            .with_kind(t.data_plane.scenario_key())
            .with_ignored_flag(t.ignore.is_some() || ignored_at_list.contains(&t.name))
        })
        .collect();

    // Trials marked `ignore:` are not run by libtest; the report still lists them, with why.
    if let Some(em) = &emitter {
        for (trial, t) in trials.iter().zip(&plans) {
            if !args.is_filtered_out(trial) && args.is_ignored(trial) {
                let (env, scenario) = (t.env.name.as_str(), t.scenario.name.as_str());
                em.environment(env);
                em.emit(Event::TrialStarted {
                    environment: env.into(),
                    scenario: scenario.into(),
                });
                let reason = match &t.ignore {
                    Some(r) => format!("ignored unless run with --ignored: {r}"),
                    None => "not run: only benchmarks were requested".into(),
                };
                em.trial(
                    env,
                    scenario,
                    TrialOutcome::ignored(reason),
                    &[],
                    Instant::now(),
                );
            }
        }
    }

    let conclusion = libtest_mimic::run(&args, trials);
    let teardown_errors = session.teardown();
    if let Some(em) = &emitter {
        // The kind logs exported before a failed environment's teardown, redacted.
        em.reporter.add_secrets(&session.secrets());
        for e in &envs {
            // The facts known only after the teardown: with local mirrors, which image each
            // mirror's access log shows it served.
            if let Some(facts) = session.facts(&e.key) {
                em.emit(Event::EnvironmentUpdated {
                    environment: e.env.name.clone(),
                    fingerprint: Box::new(facts),
                });
            }
            if let Some(dir) = session.env_artifacts(&e.key) {
                em.collect_files(&e.key, &dir, |rel| rel.starts_with("kind-logs"));
            }
        }
    }
    drop(session);
    if let Some(d) = raw_artifacts {
        let _ = meshproof::reaper::remove_dir(d);
    }
    for (env, errors) in &teardown_errors {
        eprintln!(
            "e2e: error: tearing down {env} failed (a cluster may be left behind): {}",
            errors.join("; ")
        );
    }

    if let Some(em) = emitter {
        let started: Vec<String> = em
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        for env in started {
            let teardown_error = teardown_errors.get(&env).map(|e| e.join("; "));
            em.emit(Event::EnvironmentFinished {
                environment: env,
                teardown_error,
            });
        }
        // A run a signal is ending (its teardown is under way) is reported as interrupted.
        em.emit(match meshproof::stack::signals::received() {
            Some(sig) => Event::RunInterrupted {
                at: time::OffsetDateTime::now_utc(),
                why: format!("stopped by {sig}"),
            },
            None => Event::RunFinished {
                at: time::OffsetDateTime::now_utc(),
            },
        });
        eprintln!("e2e: report: {}", em.reporter.dir().display());
        wait_for_the_signal_exit();
        if em.broken.load(Ordering::SeqCst) {
            eprintln!("e2e: error: the report could not be written completely (see above)");
            return ExitCode::from(101);
        }
    }
    wait_for_the_signal_exit();
    if !teardown_errors.is_empty() {
        return ExitCode::from(101);
    }
    conclusion.exit_code()
}
