//! `meshproof run SUITE --env NAME`: provision one environment and install its stack, then tear
//! it down (or keep it with `--keep-cluster`). A debugging aid for the stack; trials run through
//! `cargo test --test e2e`.

use super::project;
use crate::stack::{environment, signals, RunDirs, StackOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite name (`istio`) or suite file (`suites/istio.yaml`).
    pub suite: String,
    /// Environment name (`istio[k8s=1.33]`); required when the suite has a matrix.
    #[arg(long)]
    pub env: Option<String>,
    /// Keep the cluster afterwards and print how to delete it (also MESHPROOF_KEEP_CLUSTER=1).
    #[arg(long)]
    pub keep_cluster: bool,
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
    let names: Vec<&str> = suite.environments.iter().map(|e| e.name.as_str()).collect();
    let env = match &args.env {
        Some(n) => suite.environments.iter().find(|e| &e.name == n),
        None if suite.environments.len() == 1 => suite.environments.first(),
        None => {
            eprintln!(
                "meshproof: error: suite {} has several environments; pick one with --env ({})",
                suite.name,
                names.join(", ")
            );
            return 2;
        }
    };
    let Some(env) = env else {
        eprintln!(
            "meshproof: error: no environment {:?} in suite {} ({})",
            args.env.unwrap_or_default(),
            suite.name,
            names.join(", ")
        );
        return 2;
    };
    let mut opts = StackOptions::from_env();
    opts.keep_cluster |= args.keep_cluster;
    opts.mirror =
        crate::mirror::MirrorSetting::from_args_or_env(&args.mirror).map_err(|e| e.to_string());
    if let Err(e) = &opts.mirror {
        eprintln!("meshproof: error: {e}");
        return 2;
    }
    if let Err(e) = signals::install(opts.log.clone()) {
        eprintln!("meshproof: error: cannot install signal handlers: {e}");
        return 2;
    }
    let Some(rt) = crate::cli::runtime_or_say("meshproof") else {
        return 2;
    };
    let mut run = match RunDirs::new(&opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meshproof: error: {e}");
            return 2;
        }
    };
    eprintln!(
        "meshproof: run {} for {} (temp dir {})",
        run.run_id,
        env.name,
        run.temp().display()
    );
    let result = rt.block_on(environment::up(suite, env, &env.name, &opts, &run));
    if opts.keep_cluster {
        // A kept cluster's kubeconfig lives in the temp dir.
        run.persist();
    }
    let code = match result {
        Ok(e) => {
            for i in &e.installed {
                if i.reused {
                    outln!("reused {} as found on the cluster", i.component);
                } else {
                    outln!("installed {} {}", i.component, i.version);
                }
            }
            if let Some(n) = &e.cluster_name {
                outln!(
                    "cluster {n} ready (kubeconfig {})",
                    e.target.kubeconfig.display()
                );
            }
            match e.teardown(false) {
                Ok(()) => 0,
                Err(_) => 1,
            }
        }
        Err(e) => {
            eprintln!("meshproof: error: {e}");
            1
        }
    };
    // Local mirrors: what each served (its access log), then the run's own go.
    let code = match run
        .mirrors
        .as_ref()
        .and_then(|p| rt.block_on(p.finish(opts.keep_cluster)))
    {
        Some(done) => {
            for c in &done.kept_with_clusters {
                outln!("kept registry mirror {c} with the kept cluster (its nodes pull through it): remove it with `docker rm -f -v {c}` when you delete the cluster");
            }
            for (container, served) in &done.served {
                outln!(
                    "registry mirror {container} served {} image manifest(s){}",
                    served.len(),
                    if served.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ": {}",
                            served.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    }
                );
            }
            for e in &done.errors {
                eprintln!("meshproof: error: {e}");
            }
            if done.errors.is_empty() {
                code
            } else {
                1
            }
        }
        None => code,
    };
    if crate::process::shutting_down() {
        // The signal handler is tearing down and will exit with 130/143; do not race it.
        loop {
            std::thread::park();
        }
    }
    code
}
