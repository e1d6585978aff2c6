//! `cargo bench --bench schema`: schema loading and manifest validation, each against a
//! baseline doing the unavoidable part of the same work side by side (parsing the same bytes),
//! so the table shows what indexing and validating cost on top of parsing.

use meshproof::schema::manifests::{check_rendered, render_catalog};
use meshproof::schema::SchemaSet;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Baseline: read and parse every schema file into JSON values, nothing else.
fn parse_only(paths: &[PathBuf]) -> usize {
    let mut n = 0;
    for p in paths {
        let bytes = std::fs::read(p).expect("read");
        match p.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
                n += v.as_object().map(|o| o.len()).unwrap_or(0);
            }
            Some("yaml" | "yml") => {
                let text = String::from_utf8(bytes).expect("utf8");
                for d in serde_yaml::Deserializer::from_str(&text) {
                    let v = serde_json::Value::deserialize(d).expect("yaml");
                    n += usize::from(!v.is_null());
                }
            }
            _ => {}
        }
    }
    n
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut t: Vec<Duration> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[runs / 2]
}

fn main() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = repo.join("../shared/crds");
    if !dir.is_dir() {
        eprintln!("skipping: {} is absent", dir.display());
        return;
    }
    let mut paths = Vec::new();
    files(&dir, &mut paths);
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let runs = 7;

    let parse = median(
        || {
            std::hint::black_box(parse_only(&paths));
        },
        runs,
    );
    let load = median(
        || {
            drop(std::hint::black_box(
                SchemaSet::load_dir(&dir).expect("load"),
            ))
        },
        runs,
    );

    let set = SchemaSet::load_dir(&dir).expect("load");
    let catalog = meshproof::scenario::catalog::load_project(repo).expect("catalog");
    let rendered = render_catalog(&catalog, "run-1").expect("render");
    let docs: usize = rendered
        .iter()
        .map(|m| {
            meshproof::scenario::manifest_yaml::manifest_documents(&m.rendered)
                .map(|d| d.len())
                .unwrap_or(0)
        })
        .sum();
    let reps = 20;
    let parse_docs = median(
        || {
            for _ in 0..reps {
                for m in &rendered {
                    std::hint::black_box(
                        meshproof::scenario::manifest_yaml::manifest_documents(&m.rendered).ok(),
                    );
                }
            }
        },
        runs,
    );
    let validate = median(
        || {
            for _ in 0..reps {
                std::hint::black_box(check_rendered(&set, &rendered));
            }
        },
        runs,
    );

    println!(
        "schema directory: {} files, {:.1} MB; median of {runs} runs",
        paths.len(),
        bytes as f64 / 1e6
    );
    println!("{:<58} {:>12} {:>8}", "work", "time", "ratio");
    println!(
        "{:<58} {:>12.1?} {:>8}",
        "baseline: read + parse every schema file", parse, "1.00"
    );
    println!(
        "{:<58} {:>12.1?} {:>8.2}",
        "SchemaSet::load_dir (parse + index)",
        load,
        load.as_secs_f64() / parse.as_secs_f64()
    );
    println!(
        "{:<58} {:>12.1?} {:>8}",
        format!("baseline: parse {docs} scenario documents x{reps}"),
        parse_docs,
        "1.00"
    );
    println!(
        "{:<58} {:>12.1?} {:>8.2}",
        format!("check_rendered: parse + validate {docs} documents x{reps}"),
        validate,
        validate.as_secs_f64() / parse_docs.as_secs_f64()
    );
}
