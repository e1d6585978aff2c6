//! `meshproof doctor`: the preflight, spelled out — the tools against the suites' pins, and the
//! images a run would still have to look up.

use super::project;
use crate::images::{DigestSource, ImageRole, Registry};
use crate::preflight::Report;
use crate::scenario::Catalog;
use std::time::Duration;

/// How long doctor waits for a registry: long enough for a slow one, short enough for a check.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

/// An image a suite names by tag. A run resolves it to a digest before any cluster exists and
/// stops there if its registry does not answer, so doctor asks the registry now instead of
/// staying green until the run fails.
#[derive(Debug, serde::Serialize)]
struct ImageCheck {
    suite: String,
    role: ImageRole,
    image: String,
    /// The digest the tag points at now.
    digest: Option<String>,
    error: Option<String>,
}

async fn check_images(catalog: &Catalog) -> Vec<ImageCheck> {
    let registry = Registry {
        timeout: REGISTRY_TIMEOUT,
    };
    let mut out = Vec::new();
    for suite in &catalog.suites {
        for (role, image) in suite.images.iter().filter(|(_, i)| !i.is_pinned()) {
            let (digest, error) = match registry.digest(image).await {
                Ok(d) => (Some(d), None),
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(ImageCheck {
                suite: suite.source.display().to_string(),
                role,
                image: image.to_string(),
                digest,
                error,
            });
        }
    }
    out
}

#[derive(serde::Serialize)]
struct Json<'a> {
    #[serde(flatten)]
    report: &'a Report,
    images: &'a [ImageCheck],
    /// Versions past their end of life (or unknown to meshproof's dated table).
    freshness: &'a [String],
}

pub fn run(args: Args) -> i32 {
    let catalog = match project::load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(rt) = crate::cli::runtime_or_say("meshproof") else {
        return 2;
    };
    let report = rt.block_on(Report::gather(&catalog));
    let images = rt.block_on(check_images(&catalog));
    let freshness = crate::freshness::warnings(&catalog, time::OffsetDateTime::now_utc().date());
    if args.json {
        let out = Json {
            report: &report,
            images: &images,
            freshness: &freshness,
        };
        outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for (f, envs) in &report.findings {
            let mark = match (f.ok, f.want.is_empty()) {
                (true, _) => "ok     ",
                (false, false) if !f.detail.contains("not found") => "WRONG  ",
                _ => "MISSING",
            };
            outln!("{mark} {:<14} {}", f.label(), f.detail);
            if !f.want.is_empty() {
                outln!("        {:<14} pinned: {}", "", f.want.join(", "));
            }
            if let Some(h) = &f.hint {
                outln!("        {:<14} how to fix: {h}", "");
            }
            outln!(
                "        {:<14} needed by: {}",
                "",
                envs.iter().cloned().collect::<Vec<_>>().join(", ")
            );
        }
        for i in &images {
            let label = format!("image {}", i.role.key());
            match (&i.digest, &i.error) {
                (Some(d), _) => {
                    outln!(
                        "ok      {label:<14} {} is on a tag; it points at {d} today",
                        i.image
                    );
                    outln!(
                        "        {:<14} a run pins it then; pin it in the suite so every run deploys the same bytes: meshproof pin --write {}",
                        "",
                        i.suite
                    );
                }
                (None, e) => {
                    outln!(
                        "MISSING {label:<14} {} is on a tag and its registry does not resolve it: {}",
                        i.image,
                        e.as_deref().unwrap_or("unknown error")
                    );
                    outln!(
                        "        {:<14} how to fix: a run would stop here, before creating any cluster; pin it by digest (meshproof pin --write {} where the registry answers)",
                        "",
                        i.suite
                    );
                }
            }
        }
    }
    if !args.json {
        for w in &freshness {
            outln!("WARN    {:<14} {w}", "kubernetes");
        }
    }
    if report.all_ok() && images.iter().all(|i| i.digest.is_some()) {
        0
    } else {
        1
    }
}
