//! Diagnostics: a problem in a user's file, pointed at by file, line and column.
//!
//! Every loader error ends up here so that `meshproof validate` can print one line per problem
//! in the `FILE:LINE:COL: error: MESSAGE` form that editors and CI annotators understand.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one file. Lines and columns are 1-based.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic; the message is folded onto one line (one line per problem is the
    /// contract of `meshproof validate`, and some library errors span several).
    pub fn new(file: impl Into<PathBuf>, pos: Pos, message: impl Into<String>) -> Self {
        let message: String = message
            .into()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Diagnostic {
            file: file.into(),
            line: pos.line,
            col: pos.col,
            message,
        }
    }

    /// A problem that concerns a file as a whole (unreadable, empty).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Diagnostic::new(file, Pos::START, message)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// A 1-based position in a text file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };
}

/// All problems found while loading a set of files; never empty when returned as an error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.0))]
pub struct Diagnostics(pub Vec<Diagnostic>);

fn render(d: &[Diagnostic]) -> String {
    d.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Diagnostics {
    pub fn sorted(mut self) -> Self {
        self.0.sort();
        self.0.dedup();
        self
    }
}
