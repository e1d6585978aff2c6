//! Loading sets of files and the checks that span files: duplicate names, a suite listing a
//! scenario that does not exist, does not run on its mesh, or needs a component the suite does
//! not install, and suite variables no scenario declares.

use super::ambient_rules;
use super::diag::{Diagnostic, Diagnostics};
use super::loader::{load_file, Document};
use super::locate::Locator;
use super::manifest_yaml::manifest_documents;
use super::model::{Catalog, Check, Component, DataPlane, Scenario, Source, Step, Suite};
use super::path::FieldPath;
use super::template::Vars;
use super::validate::BUILTIN_VARS;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Expands directories into the suite/scenario files directly inside them (`*.yaml`, `*.yml`),
/// sorted; files are kept as given. Subdirectories (e.g. `scenarios/manifests/`) are not
/// documents and are not descended into, so a directory symlink that leads back up cannot make
/// the walk loop.
///
/// Every entry *named* like a document is kept, whatever it is: a FIFO, a symlink loop, a broken
/// link or a directory named `x.yaml` is a mistake the user should hear about rather than a file
/// silently left out, and `load_file` says what it is without a blocking read.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for p in paths {
        if p.is_dir() {
            match document_entries(p) {
                Ok(files) => out.extend(files),
                Err(e) => errs.push(Diagnostic::whole_file(
                    p,
                    format!("cannot read directory: {e}"),
                )),
            }
        } else if p.symlink_metadata().is_ok() {
            // Exists as an entry (maybe a link that leads nowhere): loading says what is wrong.
            out.push(p.clone());
        } else {
            errs.push(Diagnostic::whole_file(p, "no such file or directory"));
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// The entries of `dir` named `*.yaml` / `*.yml`, sorted. Names only: nothing is followed.
fn document_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every file under `paths` and cross-checks them. Scenarios a suite names that are not
/// among `paths` are looked up in the `scenarios/` directory beside the suite's directory, so
/// `meshproof validate suites/istio.yaml` works on its own.
pub fn load(paths: &[PathBuf]) -> Result<Catalog, Diagnostics> {
    let files = expand_paths(paths).map_err(Diagnostics)?;
    let mut diags = Vec::new();
    let mut suites: Vec<Suite> = Vec::new();
    let mut scenarios: Vec<Scenario> = Vec::new();
    let mut loaded: BTreeSet<PathBuf> = BTreeSet::new();
    let mut load_into = |f: &Path,
                         suites: &mut Vec<Suite>,
                         scenarios: &mut Vec<Scenario>,
                         diags: &mut Vec<Diagnostic>| {
        let key = f.canonicalize().unwrap_or_else(|_| f.to_path_buf());
        if !loaded.insert(key) {
            return;
        }
        match load_file(f) {
            Ok(Document::Suite(s)) => suites.push(*s),
            Ok(Document::Scenario(s)) => scenarios.push(*s),
            Err(d) => diags.extend(d),
        }
    };
    for f in &files {
        load_into(f, &mut suites, &mut scenarios, &mut diags);
    }
    // Resolve scenarios from the sibling directory when they were not given.
    let mut extra_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for s in &suites {
        let missing = s
            .scenarios
            .iter()
            .any(|n| !scenarios.iter().any(|sc| &sc.name == n));
        if missing {
            if let Some(dir) = s.source.parent().and_then(Path::parent) {
                extra_dirs.insert(dir.join("scenarios"));
            }
        }
    }
    for dir in extra_dirs {
        if dir.is_dir() {
            if let Ok(more) = expand_paths(&[dir]) {
                for f in more {
                    load_into(&f, &mut suites, &mut scenarios, &mut diags);
                }
            }
        }
    }
    diags.extend(cross_check(&suites, &scenarios));
    if diags.is_empty() {
        suites.sort_by(|a, b| a.name.cmp(&b.name));
        scenarios.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Catalog {
            suites: suites.into_iter().map(Arc::new).collect(),
            scenarios: scenarios.into_iter().map(Arc::new).collect(),
        })
    } else {
        Err(Diagnostics(diags).sorted())
    }
}

/// Loads the project layout: `<root>/suites` and `<root>/scenarios`.
pub fn load_project(root: &Path) -> Result<Catalog, Diagnostics> {
    load(&[root.join("suites"), root.join("scenarios")])
}

fn locator_for(file: &Path) -> Locator {
    Locator::new(&std::fs::read_to_string(file).unwrap_or_default())
}

fn at(file: &Path, path: &FieldPath, key: bool, msg: String) -> Diagnostic {
    let l = locator_for(file);
    let pos = if key { l.key(path) } else { l.value(path) };
    Diagnostic::new(file, pos, msg)
}

/// What in a scenario cannot work on Istio's ambient data plane (`ambient_rules`): its
/// `istioAmbient` (or common) manifests rendered with placeholders, and its deploy steps.
fn ambient_problems(sc: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    for (i, step) in sc.steps.iter().enumerate() {
        let m = match step {
            Step::Apply(m) | Step::Delete(m) => m,
            Step::Check(Check::Deny(d)) => &d.policy,
            Step::Deploy(d) => {
                let keys = d
                    .labels
                    .keys()
                    .map(|k| ("labels", k.as_str()))
                    .chain(d.annotations.keys().map(|k| ("annotations", k.as_str())));
                for problem in ambient_rules::deploy_problems(d.function.as_str(), keys) {
                    out.push(format!("steps[{i}]: {problem}"));
                }
                continue;
            }
            _ => continue,
        };
        let Some(source) = m.for_data_plane(DataPlane::IstioAmbient) else {
            continue;
        };
        let origin = match source {
            Source::File { path, .. } => path.display().to_string(),
            Source::Inline(_) => "inline manifest".to_string(),
        };
        let t = source.template();
        let mut vars = Vars::default();
        for (name, _) in t.vars() {
            vars.set(name, "placeholder");
        }
        // Load-time validation has already parsed these documents; a render or parse failure
        // here would have been reported there.
        let Ok(text) = t.render(&vars.overlay(&m.vars)) else {
            continue;
        };
        let Ok(docs) = manifest_documents(&text) else {
            continue;
        };
        for doc in &docs {
            for problem in ambient_rules::document_problems(doc) {
                out.push(format!("steps[{i}] ({origin}): {problem}"));
            }
        }
    }
    out
}

fn cross_check(suites: &[Suite], scenarios: &[Scenario]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let name_path = FieldPath::root().key("name");
    for (i, s) in suites.iter().enumerate() {
        if let Some(first) = suites[..i].iter().find(|o| o.name == s.name) {
            out.push(at(
                &s.source,
                &name_path,
                false,
                format!(
                    "name: duplicate suite name {} (also in {})",
                    s.name,
                    first.source.display()
                ),
            ));
        }
    }
    for (i, s) in scenarios.iter().enumerate() {
        if let Some(first) = scenarios[..i].iter().find(|o| o.name == s.name) {
            out.push(at(
                &s.source,
                &name_path,
                false,
                format!(
                    "name: duplicate scenario name {} (also in {})",
                    s.name,
                    first.source.display()
                ),
            ));
        }
    }
    for suite in suites {
        let mesh = suite.mesh.mesh();
        let data_plane = suite.mesh.data_plane();
        let mut declared: BTreeSet<&str> = BTreeSet::new();
        for (i, n) in suite.scenarios.iter().enumerate() {
            let p = FieldPath::root().key("scenarios").index(i);
            let Some(sc) = scenarios.iter().find(|s| &s.name == n) else {
                let known: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
                out.push(at(
                    &suite.source,
                    &p,
                    false,
                    format!("{p}: unknown scenario {n} (known: {})", known.join(", ")),
                ));
                continue;
            };
            declared.extend(sc.vars.keys().map(String::as_str));
            if !sc.applies_to(data_plane) {
                let why = if data_plane == DataPlane::IstioAmbient {
                    " (see its `meshes`; without them a scenario runs on istio-ambient only when every per-mesh manifest gives `istioAmbient`: the sidecar `istio` ones are never used on ambient)"
                } else {
                    " (see its `meshes`)"
                };
                out.push(at(
                    &suite.source,
                    &p,
                    false,
                    format!("{p}: scenario {n} does not run on {data_plane}{why}"),
                ));
            } else if data_plane == DataPlane::IstioAmbient {
                for problem in ambient_problems(sc) {
                    out.push(at(
                        &suite.source,
                        &p,
                        false,
                        format!("{p}: scenario {n}, {problem}"),
                    ));
                }
            } else {
                // `enforcer` says which ambient enforcement point answers a denial; no such
                // point exists on another data plane, so the check could not hold it.
                for (step, probe) in sc.ambient_enforcers() {
                    out.push(at(
                        &suite.source,
                        &p,
                        false,
                        format!("{p}: scenario {n} names an ambient `enforcer` (steps[{step}], probe {probe:?}), but this suite runs on {}: `enforcer` is for `mesh.dataPlane: ambient` only (give the scenario `meshes: [istio-ambient]`)", if data_plane == DataPlane::Linkerd { "Linkerd" } else { "Istio sidecars" }),
                    ));
                }
            }
            for c in sc.needs(mesh) {
                let present = match c {
                    Component::CertManager => suite.components.cert_manager.is_some(),
                    Component::Flux => suite.components.flux.is_some(),
                    Component::SealedSecrets => suite.components.sealed_secrets.is_some(),
                    Component::Traefik => suite.components.traefik.is_some(),
                };
                if !present {
                    out.push(at(
                        &suite.source,
                        &p,
                        false,
                        format!(
                            "{p}: scenario {n} needs `components.{}` in the suite",
                            c.yaml_key()
                        ),
                    ));
                }
            }
        }
        for k in suite.vars.keys() {
            if !declared.contains(k.as_str()) && !BUILTIN_VARS.contains(&k.as_str()) {
                let p = FieldPath::root().key("vars").key(k);
                out.push(at(
                    &suite.source,
                    &p,
                    true,
                    format!("{p}: no scenario of this suite declares variable `{k}`"),
                ));
            }
        }
    }
    out
}
