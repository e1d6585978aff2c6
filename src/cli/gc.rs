//! `meshproof gc [--dry-run]`: deletes what abandoned runs left behind (kind clusters, secret
//! files, temp dirs, `--mirror local` registry containers), as their run records name it. See [`crate::gc`] for the rules.

use crate::gc::{self, Step};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Say what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// How long one `kind delete cluster` may take.
const KIND_DELETE_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `kind get clusters` may take.
const KIND_LIST_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(args: Args) -> i32 {
    let Some(state) = crate::reaper::records::state_dir() else {
        eprintln!(
            "meshproof: error: no state directory: set {} (or XDG_STATE_HOME or HOME)",
            crate::reaper::records::STATE_DIR_ENV
        );
        return 2;
    };
    let found = match crate::reaper::records::read_all(&state) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "meshproof: error: reading run records in {}: {e}",
                crate::reaper::records::records_dir(&state).display()
            );
            return 1;
        }
    };
    let existing = list_clusters();
    let plan = gc::plan(found, &existing, |r| {
        crate::reaper::records::is_alive(r.pid, r.pid_started)
    });
    let mut failed = false;
    if let Err(why) = &existing {
        let needed = plan.runs.iter().any(|r| {
            r.steps.iter().any(|s| {
                matches!(
                    s,
                    Step::Keep {
                        entry: crate::reaper::Entry::KindCluster { .. },
                        ..
                    }
                )
            })
        });
        eprintln!("meshproof: warning: cannot list kind clusters: {why}");
        failed |= needed;
    }
    for (path, why) in &plan.unreadable {
        failed = true;
        outln!(
            "unreadable run record {} (left in place): {why}",
            path.display()
        );
    }
    let results = if args.dry_run {
        Vec::new()
    } else {
        gc::execute(&plan, KIND_DELETE_TIMEOUT)
    };
    for run in &plan.runs {
        let r = &run.record;
        let who = format!("run {} started {} ({})", r.pid, r.started_at, r.command);
        if run.live {
            outln!("{who}: still running, left alone");
            continue;
        }
        outln!("{who}: abandoned");
        if args.dry_run {
            for s in &run.steps {
                outln!("  {}", would(s));
            }
            continue;
        }
        let done = results
            .iter()
            .find(|(p, _)| p == &run.path)
            .map(|(_, d)| d.as_slice())
            .unwrap_or_default();
        for d in done {
            match &d.result {
                Ok(line) => outln!("  {line}"),
                Err(line) => {
                    failed = true;
                    outln!("  {line}");
                }
            }
        }
    }
    for c in &plan.unrecorded {
        outln!(
            "kind cluster {c}: no record names it (kept with --keep-cluster, or made by a run without a state directory), left alone; delete it with `kind delete cluster --name {c}`"
        );
    }
    if plan.runs.is_empty() && plan.unreadable.is_empty() && plan.unrecorded.is_empty() {
        outln!(
            "nothing to collect (run records in {})",
            crate::reaper::records::records_dir(&state).display()
        );
    }
    i32::from(failed)
}

fn would(s: &Step) -> String {
    match s {
        Step::DeleteCluster { name, .. } => format!("would delete kind cluster {name}"),
        Step::ClusterGone { name } => format!("kind cluster {name} is already gone"),
        Step::DeleteSecret { path } => format!("would delete secret file {}", path.display()),
        Step::RemoveDir { path } => format!("would remove {}", path.display()),
        Step::RemoveContainer { name } => {
            format!("would remove container {name} (`docker rm -f -v {name}`)")
        }
        Step::Keep { entry, why } => format!("would leave {entry:?} alone ({why})"),
    }
}

/// `kind get clusters`, or why it could not run (kind missing, Docker down).
fn list_clusters() -> gc::Existing {
    let rt = super::runtime().map_err(|e| format!("a runtime: {e}"))?;
    let out = rt
        .block_on(
            crate::process::Cmd::new("kind")
                .args(["get", "clusters"])
                .timeout(KIND_LIST_TIMEOUT)
                .run(),
        )
        .map_err(|e| e.to_string())?;
    Ok(gc::parse_cluster_list(&out.stdout_str()))
}
