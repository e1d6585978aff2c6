//! Field paths (`steps[2].check.canary.tolerance`): how a message names the field it is about,
//! and how the locator finds that field's line and column.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the document root to a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Converts a serde_path_to_error path. Enum variants count as keys because meshproof's
    /// enums are written as single-key maps (`check: {canary: …}`).
    pub fn from_serde(p: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let mut out = FieldPath::root();
        for seg in p.iter() {
            match seg {
                Segment::Seq { index } => out.0.push(Seg::Index(*index)),
                Segment::Map { key } => out.0.push(Seg::Key(key.clone())),
                Segment::Enum { variant } => out.0.push(Seg::Key(variant.clone())),
                Segment::Unknown => {}
            }
        }
        out
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        let mut first = true;
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(i) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_a_jsonpath_without_the_dollar() {
        let p = FieldPath::root()
            .key("steps")
            .index(2)
            .key("check")
            .key("canary")
            .key("tolerance");
        assert_eq!(p.to_string(), "steps[2].check.canary.tolerance");
        assert_eq!(FieldPath::root().to_string(), "(document)");
    }
}
