//! `meshproof plan SUITE`: the ordered, resolved steps a run will take, touching no cluster.

use super::project;
use crate::plan::{expand, steps_with_mirror, Phase};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite name (`istio`) or suite file (`suites/istio.yaml`).
    pub suite: String,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only this environment (e.g. `istio[k8s=1.34]`), with its dedicated ones.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// One line per provision, install and trial step, and each trial's negative controls,
    /// instead of every command and manifest.
    #[arg(long, conflicts_with = "json")]
    pub summary: bool,
    /// The registry mirror kind nodes pull through: `URL` (every registry), `REGISTRY=URL`
    /// (repeatable), `local`, `keep` or `off` (default: MESHPROOF_MIRROR, else local, falling back to direct pulls).
    #[arg(long, value_name = "MIRROR")]
    pub mirror: Vec<String>,
}

pub fn run(args: Args) -> i32 {
    let catalog = match project::load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let suite = match project::find_suite(&catalog, &args.suite) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mirror = match crate::mirror::MirrorSetting::from_args_or_env(&args.mirror) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("meshproof: error: {e}");
            return 2;
        }
    };
    let envs: Vec<_> = expand(&catalog)
        .into_iter()
        .filter(|e| e.suite.name == suite.name)
        .filter(|e| args.env.as_ref().is_none_or(|n| &e.env.name == n))
        .collect();
    if envs.is_empty() {
        return project::no_environment(suite, args.env.as_deref());
    }
    if args.json {
        let v: Vec<_> = envs
            .iter()
            .map(|e| serde_json::json!({ "environment": e.key, "steps": steps_with_mirror(e, &catalog, &mirror) }))
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    for e in &envs {
        outln!("== environment {} ({} trial(s))", e.key, e.trials.len());
        for (i, s) in steps_with_mirror(e, &catalog, &mirror).iter().enumerate() {
            let phase = match s.phase {
                Phase::Preflight => "preflight",
                Phase::Provision => "provision",
                Phase::Install => "install",
                Phase::Trial => "trial",
                Phase::Teardown => "teardown",
            };
            if args.summary && matches!(s.phase, Phase::Preflight) {
                continue;
            }
            outln!("{:>3}. [{phase}] {}", i + 1, s.title);
            for d in &s.detail {
                if args.summary && !d.contains("negative control") {
                    continue;
                }
                outln!("       {d}");
            }
        }
        outln!();
    }
    0
}
