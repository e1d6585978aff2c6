//! Validating manifest text, and every manifest a project's scenarios apply, rendered exactly as
//! a run renders them for each environment.
//!
//! Scenario manifests are `${var}` templates, so they are only Kubernetes objects once rendered:
//! each apply/delete step and each deny check's policy is rendered with the variables a run
//! uses ([`crate::plan::vars_for`] plus the step's own `vars`) for every environment of every
//! suite, then validated. Problems are located in the *raw* manifest file: substitution shifts
//! columns after a placeholder but never lines.

use super::{NotEvaluated, SchemaSet, Violation};
use crate::plan;
use crate::scenario::diag::Pos;
use crate::scenario::locate::Locator;
use crate::scenario::path::FieldPath;
use crate::scenario::{Catalog, Check, Manifests, Source, Step};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Validates every document of a multi-document YAML text. The index is 0-based over the
/// non-empty documents (as [`crate::scenario::manifest_yaml::manifest_documents`] returns them); text
/// that does not parse is one violation on document 0.
pub fn validate_yaml_text(set: &SchemaSet, text: &str) -> Vec<(usize, Violation)> {
    match crate::scenario::manifest_yaml::manifest_documents(text) {
        Ok(docs) => docs
            .iter()
            .enumerate()
            .flat_map(|(i, d)| set.validate(d).into_iter().map(move |v| (i, v)))
            .collect(),
        Err(e) => vec![(
            0,
            Violation::new(&FieldPath::root(), format!("invalid YAML: {e}")),
        )],
    }
}

/// One manifest as a run would apply it.
#[derive(Debug, Clone)]
pub struct RenderedManifest {
    /// The manifest file, or the scenario file for an inline manifest.
    pub file: PathBuf,
    /// The template text as written (positions are computed in it).
    pub raw: String,
    pub rendered: String,
    /// For an inline manifest, where its step starts in the scenario file.
    pub inline_at: Option<Pos>,
    /// Where it is used: `istio-1.34::canary, step 5 (apply)`, …
    pub used_by: Vec<String>,
}

/// Renders every manifest of every trial of every environment of `catalog`; identical
/// renderings of the same file are merged (`used_by` lists them all).
pub fn render_catalog(
    catalog: &Catalog,
    run_id: &str,
) -> Result<Vec<RenderedManifest>, Vec<String>> {
    let mut out: BTreeMap<(PathBuf, String), RenderedManifest> = BTreeMap::new();
    let mut errors = Vec::new();
    for env in plan::expand(catalog) {
        for trial in &env.trials {
            let sc = &trial.scenario;
            let vars = plan::vars_for(&env.suite, &env.env, sc, Some(run_id));
            let base = sc
                .source
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default();
            for (i, step) in sc.steps.iter().enumerate() {
                let (what, m): (&str, &Manifests) = match step {
                    Step::Apply(m) => ("apply", m),
                    Step::Delete(m) => ("delete", m),
                    Step::Check(Check::Deny(d)) => ("deny policy", &d.policy),
                    _ => continue,
                };
                let used = format!("{}, step {} ({what})", trial.name, i + 1);
                let Some(source) = m.for_data_plane(trial.data_plane) else {
                    errors.push(format!("{used}: no manifest for {}", trial.data_plane));
                    continue;
                };
                let (file, inline_at) = match source {
                    Source::File { path, .. } => (base.join(path), None),
                    Source::Inline(_) => {
                        let text = std::fs::read_to_string(&sc.source).unwrap_or_default();
                        let at = Locator::new(&text).key(&FieldPath::root().key("steps").index(i));
                        (sc.source.clone(), Some(at))
                    }
                };
                let rendered = match source.template().render(&vars.overlay(&m.vars)) {
                    Ok(r) => r,
                    Err(e) => {
                        errors.push(format!("{used}: {}: {e}", file.display()));
                        continue;
                    }
                };
                out.entry((file.clone(), rendered.clone()))
                    .or_insert_with(|| RenderedManifest {
                        file,
                        raw: source.template().source().to_string(),
                        rendered,
                        inline_at,
                        used_by: Vec::new(),
                    })
                    .used_by
                    .push(used);
            }
        }
    }
    if errors.is_empty() {
        Ok(out.into_values().collect())
    } else {
        Err(errors)
    }
}

/// A violation in a rendered manifest, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub file: PathBuf,
    pub pos: Pos,
    /// 1-based document number within the file.
    pub doc: usize,
    /// `Kind/name` as rendered.
    pub object: String,
    pub violation: Violation,
    /// The first trial step that applies it.
    pub used_by: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: doc {} {}: {}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.col,
            self.doc,
            self.object,
            self.violation.path,
            self.violation.message
        )
    }
}

/// What [`check_rendered`] looked at, so a caller can tell an empty run from a clean one.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    pub renderings: usize,
    pub documents: usize,
    pub files: std::collections::BTreeSet<PathBuf>,
    /// CEL rules and patterns met but not evaluated, deduplicated.
    pub not_evaluated: Vec<NotEvaluated>,
}

/// Validates rendered manifests; findings are sorted and deduplicated.
pub fn check_rendered(set: &SchemaSet, manifests: &[RenderedManifest]) -> (Vec<Finding>, Coverage) {
    let mut findings = Vec::new();
    let mut cov = Coverage::default();
    for m in manifests {
        cov.renderings += 1;
        cov.files.insert(m.file.clone());
        let used_by = m.used_by.first().cloned().unwrap_or_default();
        let docs = match crate::scenario::manifest_yaml::manifest_documents(&m.rendered) {
            Ok(d) => d,
            Err(e) => {
                findings.push(Finding {
                    file: m.file.clone(),
                    pos: m.inline_at.unwrap_or(Pos::START),
                    doc: 1,
                    object: "?".into(),
                    violation: Violation::new(&FieldPath::root(), format!("invalid YAML: {e}")),
                    used_by,
                });
                continue;
            }
        };
        let chunks = DocChunks::new(&m.raw, &m.rendered);
        for (i, doc) in docs.iter().enumerate() {
            cov.documents += 1;
            let report = set.check(doc);
            cov.not_evaluated.extend(report.not_evaluated);
            let object = format!(
                "{}/{}",
                doc.get("kind").and_then(|k| k.as_str()).unwrap_or("?"),
                doc.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    .unwrap_or("?")
            );
            for v in report.violations {
                let pos = match m.inline_at {
                    Some(at) => at,
                    None => chunks.locate(i, &v),
                };
                findings.push(Finding {
                    file: m.file.clone(),
                    pos,
                    doc: i + 1,
                    object: object.clone(),
                    violation: v,
                    used_by: used_by.clone(),
                });
            }
        }
    }
    findings.sort();
    findings.dedup_by(|a, b| {
        a.file == b.file && a.pos == b.pos && a.doc == b.doc && a.violation == b.violation
    });
    cov.not_evaluated.sort();
    cov.not_evaluated.dedup();
    (findings, cov)
}

/// The non-empty YAML documents of a manifest, with the line each starts on, so a violation's
/// field path can be turned into a file position.
struct DocChunks {
    /// (first line, 0-based; raw text; rendered text) per non-empty document.
    docs: Vec<(usize, String, String)>,
}

fn split_docs(text: &str) -> Vec<(usize, String)> {
    let mut out = vec![(0usize, String::new())];
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") {
            out.push((n + 1, String::new()));
            continue;
        }
        if let Some(last) = out.last_mut() {
            last.1.push_str(line);
            last.1.push('\n');
        }
    }
    out
}

fn is_empty_doc(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    })
}

impl DocChunks {
    fn new(raw: &str, rendered: &str) -> DocChunks {
        let r = split_docs(raw);
        let d = split_docs(rendered);
        let docs = if r.len() == d.len() {
            r.into_iter()
                .zip(d)
                .filter(|(_, (_, rd))| !is_empty_doc(rd))
                .map(|((l, rt), (_, rd))| (l, rt, rd))
                .collect()
        } else {
            Vec::new()
        };
        DocChunks { docs }
    }

    fn locate(&self, doc: usize, v: &Violation) -> Pos {
        let Some((first, raw, rendered)) = self.docs.get(doc) else {
            return Pos::START;
        };
        // The raw template is usually YAML too; where a placeholder breaks it (inside a flow
        // collection), the rendered text gives the same lines.
        let mut loc = Locator::new(raw);
        if !loc.exists(&FieldPath::root()) {
            loc = Locator::new(rendered);
        }
        let p = if v.message.starts_with("unknown field") {
            loc.key(&v.at)
        } else {
            loc.value(&v.at)
        };
        Pos {
            line: first + p.line,
            col: p.col,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_split_on_separator_lines_and_empty_ones_dropped() {
        let text = "# header\n---\na: 1\n---\n# only a comment\n---\nb: 2\n";
        let c = DocChunks::new(text, text);
        let lines: Vec<usize> = c.docs.iter().map(|(l, _, _)| *l).collect();
        assert_eq!(lines, vec![2, 6]);
    }

    #[test]
    fn a_violation_is_located_at_its_field_in_the_right_document() {
        let raw = "a: 1\n---\nkind: X\napiVersion: v1\nspec:\n  w: ${w}\n";
        let rendered = raw.replace("${w}", "ninety");
        let c = DocChunks::new(raw, &rendered);
        let v = Violation::new(
            &FieldPath::root().key("spec").key("w"),
            "must be of type integer",
        );
        assert_eq!(c.locate(1, &v), Pos { line: 6, col: 6 });
        let unknown = Violation::new(
            &FieldPath::root().key("spec").key("w"),
            "unknown field \"w\"",
        );
        assert_eq!(c.locate(1, &unknown), Pos { line: 6, col: 3 });
    }
}
