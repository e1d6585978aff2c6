//! Writing pins back into a suite file, touching nothing but the image strings.
//!
//! A suite is a reviewed document with comments; re-serialising it would lose them. So a pin is a
//! textual edit at the position the YAML parser reported for the value, checked against the
//! text found there (plain, single- or double-quoted scalar) before anything is replaced.

/// Replace the scalar `old` that starts at `line`:`col` (1-based, columns in characters) with
/// `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub line: usize,
    pub col: usize,
    pub old: String,
    pub new: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}, column {col}: expected {expected:?} there ({found}); was the file edited meanwhile?")]
pub struct EditError {
    pub line: usize,
    pub col: usize,
    pub expected: String,
    pub found: String,
}

/// Applies `edits` to `text`. Either every edit applies or none does.
pub fn apply(text: &str, edits: &[Edit]) -> Result<String, EditError> {
    // Byte ranges first, against the unmodified text; then replace from the end so earlier
    // ranges stay valid.
    let mut ranges = Vec::with_capacity(edits.len());
    for e in edits {
        let fail = |found: String| EditError {
            line: e.line,
            col: e.col,
            expected: e.old.clone(),
            found,
        };
        let line_start = if e.line <= 1 {
            Some(0)
        } else {
            text.match_indices('\n').nth(e.line - 2).map(|(i, _)| i + 1)
        };
        let Some(line_start) = line_start else {
            return Err(fail("the file is shorter".into()));
        };
        let line_text = &text[line_start
            ..text[line_start..]
                .find('\n')
                .map_or(text.len(), |n| line_start + n)];
        let Some((offset, _)) = line_text.char_indices().nth(e.col.saturating_sub(1)) else {
            return Err(fail("the line is shorter".into()));
        };
        let rest = &line_text[offset..];
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let body = quote.map_or(rest, |q| &rest[q.len_utf8()..]);
        let ends_cleanly = |after: &str| match quote {
            Some(q) => after.starts_with(q),
            None => after.is_empty() || after.starts_with([' ', '\t', ',', '}', ']', '#', '\r']),
        };
        if !body.starts_with(e.old.as_str()) || !ends_cleanly(&body[e.old.len()..]) {
            let shown: String = rest.chars().take(e.old.len() + 2).collect();
            return Err(fail(format!("found {shown:?}")));
        }
        let start = line_start + offset + quote.map_or(0, char::len_utf8);
        ranges.push((start, start + e.old.len(), e.new.as_str()));
    }
    ranges.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out = text.to_string();
    for (start, end, new) in ranges {
        out.replace_range(start..end, new);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(line: usize, col: usize, old: &str, new: &str) -> Edit {
        Edit {
            line,
            col,
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn replaces_plain_and_quoted_scalars_and_keeps_comments() {
        let text =
            "# head\nimages:\n  function: a/b:1 # why\n  probe: \"c/d:2\"\n  capture: 'e/f:3'\n";
        let out = apply(
            text,
            &[
                edit(3, 13, "a/b:1", "a/b:1@sha256:x"),
                edit(4, 10, "c/d:2", "c/d:2@y"),
                edit(5, 12, "e/f:3", "E"),
            ],
        )
        .unwrap();
        assert_eq!(out, "# head\nimages:\n  function: a/b:1@sha256:x # why\n  probe: \"c/d:2@y\"\n  capture: 'E'\n");
    }

    #[test]
    fn flow_mappings_and_multibyte_columns() {
        let text = "# é\nimages: { é: c, function: a/b:1 }\n";
        let out = apply(text, &[edit(2, 27, "a/b:1", "z")]).unwrap();
        assert_eq!(out, "# é\nimages: { é: c, function: z }\n");
    }

    #[test]
    fn a_mismatch_changes_nothing() {
        let text = "images:\n  function: a/b:1\n  probe: c/d:2\n";
        let e = apply(
            text,
            &[edit(2, 13, "a/b:1", "X"), edit(3, 10, "c/d:20", "Y")],
        )
        .unwrap_err();
        assert_eq!((e.line, e.col), (3, 10));
        // A prefix is not a match.
        assert!(apply("f: a/b:10\n", &[edit(1, 4, "a/b:1", "X")]).is_err());
        assert!(apply("f: a\n", &[edit(9, 1, "a", "X")]).is_err());
        assert!(apply("f: a\n", &[edit(1, 40, "a", "X")]).is_err());
    }
}
