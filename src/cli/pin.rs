//! `meshproof pin [SUITE...] [--write | --check]`: pin every image a suite deploys by digest.
//!
//! Without flags, asks each unpinned image's registry which digest its tag points at and prints
//! the pinned reference, one `FILE:LINE:COL` line per image. `--write` puts the pins into the
//! files (only the image strings change; comments and layout stay). `--check` asks no registry:
//! it exits 1 when any image is left on a tag — a lint for CI that needs no network.

use crate::images::pin::{apply, Edit};
use crate::images::{DigestSource, ImageRole, Registry};
use crate::scenario::loader::{load_file, Document};
use crate::scenario::locate::Locator;
use crate::scenario::path::FieldPath;
use crate::scenario::Suite;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Suite files or directories of them (default: suites/).
    pub paths: Vec<PathBuf>,
    /// Write the pins into the suite files.
    #[arg(long, conflicts_with = "check")]
    pub write: bool,
    /// Ask no registry; exit 1 if any image is not pinned by digest.
    #[arg(long)]
    pub check: bool,
    /// Re-resolve images that are already pinned (a newer build behind the same tag).
    #[arg(long, conflicts_with = "check")]
    pub refresh: bool,
    /// Bound on each registry lookup.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// One image entry of a suite file.
struct Entry {
    role: ImageRole,
    /// Where the value is written, or `None` when the suite relies on the built-in default.
    at: Option<(usize, usize)>,
}

pub fn run(args: Args) -> i32 {
    let files = match suite_files(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("meshproof pin: error: {e}");
            return 2;
        }
    };
    let Some(rt) = crate::cli::runtime_or_say("meshproof pin") else {
        return 2;
    };
    let registry = Registry {
        timeout: args.timeout,
    };
    let mut code = 0;
    for file in &files {
        code = code.max(rt.block_on(pin_file(file, &args, &registry)));
    }
    code
}

fn suite_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("suites")]
    } else {
        paths.to_vec()
    };
    crate::scenario::catalog::expand_paths(&paths).map_err(|d| {
        d.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Exit code for one file: 0 done, 1 images left unpinned (`--check`, or a default that
/// `--write` cannot place), 2 the file or a registry failed.
async fn pin_file<S: DigestSource>(file: &Path, args: &Args, source: &S) -> i32 {
    let suite: Suite = match load_file(file) {
        Ok(Document::Suite(s)) => *s,
        Ok(Document::Scenario(_)) => {
            eprintln!(
                "{}: error: a scenario, not a suite: images are pinned in suites",
                file.display()
            );
            return 2;
        }
        Err(diags) => {
            for d in diags {
                eprintln!("{d}");
            }
            return 2;
        }
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: error: {e}", file.display());
            return 2;
        }
    };
    let locator = Locator::new(&text);
    let entries: Vec<Entry> = ImageRole::ALL
        .into_iter()
        .map(|role| {
            let path = FieldPath::root().key("images").key(role.key());
            let at = locator.exists(&path).then(|| {
                let p = locator.value(&path);
                (p.line, p.col)
            });
            Entry { role, at }
        })
        .collect();
    let where_ = |e: &Entry| match e.at {
        Some((l, c)) => format!("{}:{l}:{c}", file.display()),
        None => format!("{}", file.display()),
    };

    let mut code = 0;
    let mut edits = Vec::new();
    for e in &entries {
        let image = suite.images.get(e.role);
        let todo = !image.is_pinned() || args.refresh;
        if !todo {
            continue;
        }
        if args.check {
            let hint = if e.at.is_none() {
                " (the built-in default; set it under `images:`)"
            } else {
                ""
            };
            outln!(
                "{}: images.{}: {image} is not pinned by digest{hint}",
                where_(e),
                e.role.key()
            );
            code = 1;
            continue;
        }
        let digest = match source.digest(image).await {
            Ok(d) => d,
            Err(err) => {
                eprintln!("{}: error: images.{}: {err}", where_(e), e.role.key());
                code = 2;
                continue;
            }
        };
        let pinned = match image.pinned(&digest) {
            Ok(p) => p,
            Err(err) => {
                eprintln!("{}: error: images.{}: {err}", where_(e), e.role.key());
                code = 2;
                continue;
            }
        };
        if pinned == *image {
            outln!("{}: images.{}: {image} is current", where_(e), e.role.key());
            continue;
        }
        outln!(
            "{}: images.{}: {image} -> {pinned}",
            where_(e),
            e.role.key()
        );
        match e.at {
            Some((line, col)) => edits.push(Edit {
                line,
                col,
                old: image.to_string(),
                new: pinned.to_string(),
            }),
            None if args.write => {
                eprintln!(
                    "{}: images.{} is not written in the file; add `images: {{ {}: {pinned} }}` (meshproof does not restructure a suite)",
                    file.display(),
                    e.role.key(),
                    e.role.key()
                );
                code = code.max(1);
            }
            None => {}
        }
    }
    if args.write && !edits.is_empty() && code < 2 {
        let out = match apply(&text, &edits) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("{}: error: {e}", file.display());
                return 2;
            }
        };
        if let Err(e) = std::fs::write(file, out) {
            eprintln!("{}: error: writing: {e}", file.display());
            return 2;
        }
        outln!("{}: wrote {} pin(s)", file.display(), edits.len());
    }
    code
}
