//! `cargo test --test e2e`: the conformance run.
//!
//! Discovery expands the project's suites × scenarios into trials named `<environment>::<scenario>`
//! (kind = mesh). Each environment is provisioned on first use by its trials and torn down after
//! the run, by the session's destructor running *before* the process exits (never
//! `Conclusion::exit()`, which would skip it).
//!
//! When this machine cannot provision clusters, every trial is ignored with a one-line reason and
//! a preflight banner names what is missing; with `MESHPROOF_REQUIRE_CLUSTER=1` the same trials fail.

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use meshproof::plan;
use meshproof::preflight::Report;
use meshproof::run::Session;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

fn require_cluster() -> bool {
    std::env::var("MESHPROOF_REQUIRE_CLUSTER").map(|v| v == "1" || v.eq_ignore_ascii_case("true")).unwrap_or(false)
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
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
    let plans = plan::trials(&envs);

    // Preflight once, only when trials will actually run.
    let preflight: Option<Arc<Report>> = if args.list {
        None
    } else {
        let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
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
        Some(Arc::new(report))
    };

    let session = Arc::new(Session::new(&envs));
    let require = require_cluster();
    let trials: Vec<Trial> = plans
        .iter()
        .map(|t| {
            let t2 = t.clone();
            let session = session.clone();
            let preflight = preflight.clone();
            Trial::ignorable_test(t.name.clone(), move || {
                let missing = preflight.as_ref().map(|p| p.missing_for(&t2.env.name)).unwrap_or_default();
                if !missing.is_empty() {
                    let reason = format!("no cluster: missing {} (see the preflight banner)", missing.join(", "));
                    return if require {
                        Err(Failed::from(format!("{reason}; MESHPROOF_REQUIRE_CLUSTER=1 requires a real cluster")))
                    } else {
                        Ok(Completion::ignored_with(reason))
                    };
                }
                session.run_trial(&t2).map(|()| Completion::Completed).map_err(|e| Failed::from(e.to_string()))
            })
            .with_kind(t.mesh.as_str())
            .with_ignored_flag(t.ignore.is_some())
        })
        .collect();

    // A filter that matches nothing is a typo, not a green run.
    if args.filter.is_some() && !args.list {
        let matched = trials.iter().filter(|t| !args.is_filtered_out(t)).count();
        if matched == 0 {
            eprintln!(
                "e2e: error: no trial matches filter {:?}{}; `cargo test --test e2e -- --list` shows the names",
                args.filter.as_deref().unwrap_or(""),
                if args.exact { " (--exact)" } else { "" }
            );
            return ExitCode::from(101);
        }
    }

    let conclusion = libtest_mimic::run(&args, trials);
    session.teardown();
    drop(session);
    conclusion.exit_code()
}
