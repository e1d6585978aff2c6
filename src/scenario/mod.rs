//! Suites and scenarios: the declarative language of meshproof.
//!
//! Two layers: [`raw`] mirrors the YAML (serde, unknown fields denied); [`model`] is the
//! validated meaning (newtypes, real durations, weights that sum to 100). [`loader`] is the only
//! module that parses suite and scenario files and turns every problem into a `FILE:LINE:COL`
//! diagnostic ([`manifest_yaml`] checks and splits the manifests they carry);
//! [`catalog`] loads sets of files and checks what spans files (duplicate names, references).

pub mod ambient_rules;
pub mod catalog;
pub mod diag;
pub mod loader;
pub mod locate;
pub mod manifest_yaml;
pub mod model;
pub mod path;
pub mod raw;
mod serde_words;
pub mod template;
mod typed;
pub mod validate;

pub use diag::{Diagnostic, Diagnostics, Pos};
pub use model::*;
