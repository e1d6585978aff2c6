//! `${var}` templating for scenario strings and manifest files.
//!
//! Deliberately tiny: variables only, no expressions, no conditionals — per-mesh differences are
//! expressed with per-mesh manifest variants, which stay readable and schema-checkable. `$${`
//! writes a literal `${`. Every variable a template uses is checked against the scope when the
//! scenario loads, so a typo is a `FILE:LINE:COL` error, not a broken manifest at run time.

use indexmap::IndexMap;
use std::fmt;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var { name: String, offset: usize },
}

/// A syntax error in a template, with the byte offset where it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

/// A variable that the template uses but the scope does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown template variable `${{{name}}}`")]
pub struct UnknownVar {
    pub name: String,
    pub offset: usize,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let bytes = source.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if source[i..].starts_with("$${") {
                lit.push_str("${");
                i += 3;
            } else if source[i..].starts_with("${") {
                let start = i;
                let rest = &source[i + 2..];
                let end = rest.find('}').ok_or_else(|| TemplateError {
                    offset: start,
                    message: "unterminated `${` (write `$${` for a literal)".into(),
                })?;
                let name = rest[..end].trim();
                if !valid_name(name) {
                    return Err(TemplateError {
                        offset: start,
                        message: format!(
                            "bad template variable `${{{}}}`: names start with a letter and contain letters, digits, `_`, `.`, `-`",
                            &rest[..end]
                        ),
                    });
                }
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var {
                    name: name.to_string(),
                    offset: start,
                });
                i += 2 + end + 1;
            } else {
                let ch = source[i..].chars().next().unwrap_or('\0');
                lit.push(ch);
                i += ch.len_utf8().max(1);
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Variables used, with their byte offsets, in order of appearance.
    pub fn vars(&self) -> impl Iterator<Item = (&str, usize)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { name, offset } => Some((name.as_str(), *offset)),
            Part::Lit(_) => None,
        })
    }

    /// Checks that every variable is in `scope`.
    pub fn check(&self, scope: &dyn Fn(&str) -> bool) -> Result<(), UnknownVar> {
        for (name, offset) in self.vars() {
            if !scope(name) {
                return Err(UnknownVar {
                    name: name.to_string(),
                    offset,
                });
            }
        }
        Ok(())
    }

    /// Renders with `vars`; a missing variable is an error (checked scopes make it unreachable).
    pub fn render(&self, vars: &Vars) -> Result<String, UnknownVar> {
        let mut out = String::with_capacity(self.source.len());
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var { name, offset } => match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        return Err(UnknownVar {
                            name: name.clone(),
                            offset: *offset,
                        })
                    }
                },
            }
        }
        Ok(out)
    }

    /// True when the template has no variables.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A variable scope for rendering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(pub IndexMap<String, String>);

impl Vars {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// `self` overlaid with `other` (other wins).
    pub fn overlay(&self, other: &IndexMap<String, String>) -> Vars {
        let mut v = self.clone();
        for (k, val) in other {
            v.0.insert(k.clone(), val.clone());
        }
        v
    }
}

/// Converts a byte offset in `text` into a 1-based (line, column).
pub fn offset_to_line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        Vars(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn renders_variables_and_escapes() {
        let t = Template::parse("ns=${ns}, w=${weights.stable}; lit=$${x}").unwrap();
        let out = t
            .render(&vars(&[("ns", "openfaas-fn"), ("weights.stable", "90")]))
            .unwrap();
        assert_eq!(out, "ns=openfaas-fn, w=90; lit=${x}");
    }

    #[test]
    fn reports_unknown_variables_with_offsets() {
        let t = Template::parse("a ${ok} b ${nope}").unwrap();
        let e = t.check(&|n| n == "ok").unwrap_err();
        assert_eq!(e.name, "nope");
        assert_eq!(e.offset, 10);
        assert!(t.render(&vars(&[("ok", "1")])).is_err());
    }

    #[test]
    fn rejects_bad_syntax() {
        assert!(Template::parse("x ${unterminated").is_err());
        assert!(Template::parse("x ${}").is_err());
        assert!(Template::parse("x ${1abc}").is_err());
        assert!(Template::parse("x ${a b}").is_err());
        assert!(Template::parse("plain $ dollar and $HOME")
            .unwrap()
            .is_literal());
    }

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let text = "a\nbc ${x}\n";
        assert_eq!(offset_to_line_col(text, 5), (2, 4));
        assert_eq!(offset_to_line_col(text, 0), (1, 1));
    }

    #[test]
    fn multibyte_text_is_kept() {
        let t = Template::parse("héllo ${x} ✓").unwrap();
        assert_eq!(t.render(&vars(&[("x", "wörld")])).unwrap(), "héllo wörld ✓");
    }
}
