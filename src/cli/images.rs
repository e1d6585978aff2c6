//! `meshproof images SUITE [--env ENV] [--json]`: every image a run of the suite's environments
//! pulls — the suite's images by role, and each installed component's images as its CLI renders
//! them for the pinned version. A component whose CLI is absent (or fails) is listed as
//! incomplete with the reason, never guessed (issue #17).

use super::project;
use crate::stack::render::{self, Inventory};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite name (`istio`) or suite file (`suites/istio.yaml`).
    pub suite: String,
    /// Only this environment (e.g. `istio[k8s=1.34]`).
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Print JSON: `[{environment, images: [{image, digest, role, source}], incomplete: [{source, reason}]}]`.
    #[arg(long)]
    pub json: bool,
}

/// One line per image: `IMAGE  digest=… role=… source=…`, then what is incomplete and why.
pub fn text(env: &str, inv: &Inventory) -> String {
    let mut out = format!("== environment {env} ({} image(s))\n", inv.images.len());
    for i in &inv.images {
        out.push_str(&format!(
            "{}  digest={}  role={}  source={}\n",
            i.image,
            i.digest.as_deref().unwrap_or("-"),
            i.role,
            i.source
        ));
    }
    for i in &inv.incomplete {
        out.push_str(&format!("incomplete: {}: {}\n", i.source, i.reason));
    }
    out
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
    let envs: Vec<_> = suite
        .environments
        .iter()
        .filter(|e| args.env.as_ref().is_none_or(|n| &e.name == n))
        .collect();
    if envs.is_empty() {
        return project::no_environment(suite, args.env.as_deref());
    }
    let Some(rt) = crate::cli::runtime_or_say("meshproof") else {
        return 2;
    };
    // Helm's repository config and cache go into a private temp dir, as in a run.
    let tmp = match crate::private_fs::temp_private_dir("meshproof-images-") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meshproof: error: cannot create a temp dir: {e}");
            return 2;
        }
    };
    let mut json = Vec::new();
    for env in envs {
        let work = tmp.path().join(crate::stack::names::sanitize(&env.name));
        let plans = render::plans_for(suite, env, &work);
        let inv = rt.block_on(render::inventory(suite, &render::renders(&plans)));
        if args.json {
            json.push(serde_json::json!({
                "environment": env.name,
                "images": inv.images,
                "incomplete": inv.incomplete,
            }));
        } else {
            out!("{}", text(&env.name, &inv));
        }
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    }
    0
}
