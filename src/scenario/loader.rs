//! The loader: the one place that parses suite and scenario YAML.
//!
//! It reads a file, picks the schema from `kind`, deserializes the raw layer with the field
//! path tracked (every type problem of the file, in the user's words: see `typed`), runs
//! validation, and turns every problem into a [`Diagnostic`] with file, line and column. Nothing here panics on any input: the corpus test feeds it malformed files.

use super::diag::{Diagnostic, Pos};
use super::locate::Locator;
use super::manifest_yaml::{location, strip_location};
use super::model::{Scenario, Suite};
use super::path::FieldPath;
use super::raw::{DocKind, RawScenario, RawSuite};
use super::typed;
use super::validate::{self, Problem, Where};
use serde::Deserialize;
use std::path::Path;

/// A validated document.
#[derive(Debug, Clone)]
pub enum Document {
    Suite(Box<Suite>),
    Scenario(Box<Scenario>),
}

/// Loads and validates one file from disk.
pub fn load_file(path: &Path) -> Result<Document, Vec<Diagnostic>> {
    let text = read_document(path).map_err(|msg| vec![Diagnostic::whole_file(path, msg)])?;
    load_text(path, &text, &|p: &Path| std::fs::read_to_string(p))
}

/// Reads a file that must be a regular file, or says in the user's words what it is instead.
///
/// A directory holds more than documents: a FIFO named `x.yaml` would block a plain `read`
/// forever (no writer) and a symlink loop fails with an errno the user cannot act on. The file
/// is opened non-blocking (a no-op for regular files, and a FIFO then opens without waiting)
/// and its type checked on the open handle, so nothing can swap it for a FIFO in between.
fn read_document(path: &Path) -> Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| open_error(path, &e))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read file: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "not a regular file ({})",
            file_type_words(meta.file_type())
        ));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read file: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "file is not valid UTF-8".to_string())
}

fn open_error(path: &Path, e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
        return "symlink loop: the link leads back to itself".into();
    }
    if e.kind() == std::io::ErrorKind::NotFound {
        if let Ok(target) = std::fs::read_link(path) {
            return format!(
                "broken symlink: it points to {}, which does not exist",
                target.display()
            );
        }
        return "no such file or directory".into();
    }
    if e.kind() == std::io::ErrorKind::IsADirectory {
        return "not a regular file (a directory)".into();
    }
    format!("cannot read file: {e}")
}

fn file_type_words(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a file"
    }
}

/// Loads and validates a document from text; `path` names it in diagnostics and anchors
/// relative manifest paths; `read` reads referenced manifest files.
pub fn load_text(
    path: &Path,
    text: &str,
    read: validate::ReadFile<'_>,
) -> Result<Document, Vec<Diagnostic>> {
    let diag = |pos: Pos, msg: String| vec![Diagnostic::new(path, pos, msg)];

    // 1. Syntax, document count and emptiness, on the untyped value.
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        match serde_yaml::Value::deserialize(doc) {
            Ok(v) => docs.push(v),
            Err(e) => {
                return Err(diag(
                    location(&e).unwrap_or(Pos::START),
                    format!("invalid YAML: {}", strip_location(&e.to_string())),
                ))
            }
        }
    }
    let locator = Locator::new(text);
    let value = match docs.len() {
        0 => {
            return Err(diag(
                Pos::START,
                "file is empty: expected a document with `kind: Suite` or `kind: Scenario`".into(),
            ))
        }
        1 => docs.remove(0),
        n => {
            return Err(diag(
                second_doc_pos(text),
                format!("expected one document per file, found {n}"),
            ))
        }
    };
    let map = match &value {
        serde_yaml::Value::Null => {
            return Err(diag(
                Pos::START,
                "file is empty: expected a document with `kind: Suite` or `kind: Scenario`".into(),
            ))
        }
        serde_yaml::Value::Mapping(m) => m,
        _ => {
            return Err(diag(
                Pos::START,
                "expected a mapping with `kind: Suite` or `kind: Scenario` at the top level".into(),
            ))
        }
    };

    // 2. The kind decides the schema.
    let kind = match map.get("kind") {
        None => {
            return Err(diag(
                Pos::START,
                "kind: required (add `kind: Suite` or `kind: Scenario`)".into(),
            ))
        }
        Some(k) => match serde_yaml::from_value::<DocKind>(k.clone()) {
            Ok(k) => k,
            Err(_) => {
                let at = locator.value(&FieldPath::root().key("kind"));
                return Err(diag(
                    at,
                    format!("kind: expected `Suite` or `Scenario`, got {}", short(k)),
                ));
            }
        },
    };

    // 3. Typed raw layer, 4. validation.
    let res = match kind {
        DocKind::Suite => typed::deserialize::<RawSuite>(text)
            .map_err(|p| to_diags(path, &locator, p))
            .and_then(|raw| {
                validate::suite(raw, path, read).map_err(|p| to_diags(path, &locator, p))
            })
            .map(|s| Document::Suite(Box::new(s))),
        DocKind::Scenario => typed::deserialize::<RawScenario>(text)
            .map_err(|p| to_diags(path, &locator, p))
            .and_then(|raw| {
                validate::scenario(raw, path, read).map_err(|p| to_diags(path, &locator, p))
            })
            .map(|s| Document::Scenario(Box::new(s))),
    };
    res.map_err(|mut d| {
        d.sort();
        d.dedup();
        d
    })
}

fn to_diags(file: &Path, locator: &Locator, problems: Vec<Problem>) -> Vec<Diagnostic> {
    problems
        .into_iter()
        .map(|p| match p.at {
            Where::Value(path) => Diagnostic::new(file, locator.value(&path), p.message),
            Where::Key(path) => Diagnostic::new(file, locator.key(&path), p.message),
            Where::File(other, pos) => Diagnostic::new(other, pos, p.message),
        })
        .collect()
}

fn second_doc_pos(text: &str) -> Pos {
    let mut seen_content = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") {
            if seen_content {
                return Pos {
                    line: i + 1,
                    col: 1,
                };
            }
        } else if !t.trim_start().is_empty() && !t.trim_start().starts_with('#') {
            seen_content = true;
        }
    }
    Pos::START
}

fn short(v: &serde_yaml::Value) -> String {
    let s = serde_yaml::to_string(v).unwrap_or_default();
    let s = s.trim();
    if s.len() > 40 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(40).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s.to_string()
    }
}
