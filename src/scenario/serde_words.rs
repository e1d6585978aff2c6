//! serde's error messages, read back and said in the words of someone editing a YAML file.
//!
//! serde describes a failure in Rust's terms — `invalid type: integer `5`, expected enum
//! EditionName`, `expected u16`, `unknown field`, `struct RawCanary` — but the user wrote keys,
//! lists, mappings and the values a key allows. The raw layer's types are serde derives, so
//! serde's texts (`serde::de::Error`'s default constructors, stable across serde 1.x) are the
//! only description of a failure there is: this module parses them into a [`Fault`] and renders
//! that without a Rust type name. A text it does not recognise is kept as it is rather than
//! guessed at.

use super::path::{FieldPath, Seg};

/// What serde said went wrong, in a form that can be rendered and repaired.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Fault {
    /// `unknown field `x`, expected one of …`: a key this mapping does not take.
    UnknownKey { key: String, allowed: Vec<String> },
    /// `unknown variant `x`, expected …`: a value (or, for an enum written as a single-key
    /// mapping, a key) outside the allowed set.
    UnknownChoice { got: String, allowed: Vec<String> },
    /// `missing field `x``.
    Missing { key: String },
    /// `invalid type` / `invalid value`: the value is not of the expected shape or range.
    Mismatch { expected: Expected, found: String },
    /// Anything else, as serde said it.
    Other(String),
}

/// The shape serde expected, from the `expected …` half of its message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expected {
    Number,
    /// An unsigned integer no larger than `max`.
    Whole {
        max: Option<u64>,
    },
    /// A signed integer.
    Integer,
    Text,
    Bool,
    List,
    Mapping,
    /// A struct: a mapping with keys of its own.
    Record,
    /// One of an enum's values; serde names only the type, so the values are filled in by the
    /// caller when it can find them out (see `typed::choices`).
    Choice(Option<Vec<String>>),
    /// An enum variant that carries data (written `key: {…}`).
    Variant,
    Unknown,
}

impl Fault {
    /// Reads one of serde's messages (without serde_yaml's location or path prefix).
    pub(crate) fn parse(msg: &str) -> Fault {
        if let Some(rest) = msg.strip_prefix("unknown field ") {
            if let Some((key, tail)) = ticked(rest) {
                return Fault::UnknownKey {
                    key,
                    allowed: ticked_list(tail),
                };
            }
        }
        if let Some(rest) = msg.strip_prefix("unknown variant ") {
            if let Some((got, tail)) = ticked(rest) {
                return Fault::UnknownChoice {
                    got,
                    allowed: ticked_list(tail),
                };
            }
        }
        if let Some(rest) = msg.strip_prefix("missing field ") {
            if let Some((key, tail)) = ticked(rest) {
                if tail.is_empty() {
                    return Fault::Missing { key };
                }
            }
        }
        let mismatch = msg
            .strip_prefix("invalid type: ")
            .or_else(|| msg.strip_prefix("invalid value: "));
        if let Some((found, expected)) = mismatch.and_then(|m| m.rsplit_once(", expected ")) {
            return Fault::Mismatch {
                expected: Expected::parse(expected),
                found: found.to_string(),
            };
        }
        Fault::Other(msg.to_string())
    }

    /// The message for a fault at `at` (the path serde's tracker reported).
    pub(crate) fn describe(&self, at: &FieldPath) -> String {
        match self {
            Fault::UnknownKey { key, allowed } => {
                prefixed(&parent_of_key(at, key), &unknown_key(key, allowed))
            }
            Fault::UnknownChoice { got, allowed } if is_keyed(at, got) => {
                prefixed(&parent_of_key(at, got), &unknown_key(got, allowed))
            }
            Fault::UnknownChoice { got, allowed } => prefixed(
                at,
                &format!("must be one of {} (got {got})", allowed.join(", ")),
            ),
            Fault::Missing { key } => format!("{}: required", at.key(key)),
            Fault::Mismatch {
                expected: Expected::Choice(Some(allowed)),
                found,
            } => prefixed(
                at,
                &format!(
                    "must be one of {} (got {})",
                    allowed.join(", "),
                    found_words(found)
                ),
            ),
            Fault::Mismatch { expected, found } => prefixed(
                at,
                &format!(
                    "expected {}, found {}",
                    expected.words(),
                    found_words(found)
                ),
            ),
            Fault::Other(msg) => prefixed(at, msg),
        }
    }

    /// Whether the diagnostic points at a key (the unknown one) rather than a value.
    pub(crate) fn points_at_key(&self, at: &FieldPath) -> bool {
        match self {
            Fault::UnknownKey { .. } => true,
            Fault::UnknownChoice { got, .. } => is_keyed(at, got),
            _ => false,
        }
    }

    /// The path a diagnostic should point at: the unknown key itself, or the mapping a missing
    /// key belongs in, or the value.
    pub(crate) fn position_path(&self, at: &FieldPath) -> FieldPath {
        match self {
            Fault::UnknownKey { key, .. } => parent_of_key(at, key).key(key),
            _ => at.clone(),
        }
    }
}

impl Expected {
    fn parse(s: &str) -> Expected {
        match s {
            "f32" | "f64" => Expected::Number,
            "u8" => Expected::Whole {
                max: Some(u8::MAX.into()),
            },
            "u16" => Expected::Whole {
                max: Some(u16::MAX.into()),
            },
            "u32" => Expected::Whole {
                max: Some(u32::MAX.into()),
            },
            "u64" | "usize" | "u128" => Expected::Whole { max: None },
            "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => Expected::Integer,
            "a string" | "a borrowed string" | "a character" | "char" | "string" => Expected::Text,
            "a boolean" | "bool" => Expected::Bool,
            "a sequence" => Expected::List,
            "a map" => Expected::Mapping,
            "unit variant" => Expected::Choice(None),
            "newtype variant" | "struct variant" | "tuple variant" => Expected::Variant,
            _ if s.starts_with("struct ") => Expected::Record,
            _ if s.starts_with("enum ") => Expected::Choice(None),
            _ => Expected::Unknown,
        }
    }

    fn words(&self) -> String {
        match self {
            Expected::Number => "a number".into(),
            Expected::Whole { max: Some(m) } => format!("a whole number from 0 to {m}"),
            Expected::Whole { max: None } => "a whole number, 0 or more".into(),
            Expected::Integer => "a whole number".into(),
            Expected::Text => "a string".into(),
            Expected::Bool => "true or false".into(),
            Expected::List => "a list".into(),
            Expected::Mapping | Expected::Record | Expected::Variant => "a mapping".into(),
            Expected::Choice(Some(allowed)) => format!("one of {}", allowed.join(", ")),
            Expected::Choice(None) => "one of the allowed values".into(),
            Expected::Unknown => "a different value".into(),
        }
    }
}

/// serde's `Unexpected` text (`integer `5``, `string "five"`, `unit value`…) in the user's
/// words.
fn found_words(found: &str) -> String {
    let tick = |s: &str| s.trim_start().trim_matches('`').to_string();
    if let Some(v) = found.strip_prefix("boolean") {
        return tick(v);
    }
    if let Some(v) = found
        .strip_prefix("integer")
        .or_else(|| found.strip_prefix("floating point"))
    {
        return format!("the number {}", tick(v));
    }
    if let Some(v) = found.strip_prefix("string ") {
        return format!("the string {v}");
    }
    match found {
        // serde_yaml reports YAML's null (`key:` with nothing after it) as the unit value.
        "unit value" => "no value".into(),
        "sequence" => "a list".into(),
        "map" | "newtype variant" | "tuple variant" | "struct variant" => "a mapping".into(),
        "unit variant" => "a plain value".into(),
        other => other.replace('`', ""),
    }
}

fn unknown_key(key: &str, allowed: &[String]) -> String {
    if allowed.is_empty() {
        format!("unknown key {key} (this mapping takes no keys)")
    } else {
        format!("unknown key {key} (allowed: {})", allowed.join(", "))
    }
}

/// An enum written as a single-key mapping (`- sleep: 5s`) reports its unknown key as the last
/// path segment.
fn is_keyed(at: &FieldPath, got: &str) -> bool {
    matches!(at.0.last(), Some(Seg::Key(k)) if k == got)
}

/// The mapping an unknown key was found in (serde's tracker may or may not include the key).
fn parent_of_key(at: &FieldPath, key: &str) -> FieldPath {
    match at.0.split_last() {
        Some((Seg::Key(k), parent)) if k == key => FieldPath(parent.to_vec()),
        _ => at.clone(),
    }
}

fn prefixed(at: &FieldPath, msg: &str) -> String {
    if at.is_root() {
        msg.to_string()
    } else {
        format!("{at}: {msg}")
    }
}

/// Splits `` `x`rest `` into `x` and `rest` (with a leading comma and space dropped).
fn ticked(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('`')?;
    let end = s.find('`')?;
    let rest = &s[end + 1..];
    Some((s[..end].to_string(), rest.trim_start_matches(", ")))
}

/// The names in serde's `expected one of `a`, `b``, `expected `a` or `b`` and `expected `a``;
/// empty for `there are no fields` / `there are no variants`.
fn ticked_list(s: &str) -> Vec<String> {
    s.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, name)| name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> FieldPath {
        let mut out = FieldPath::root();
        for seg in s {
            out = match seg.parse::<usize>() {
                Ok(i) => out.index(i),
                Err(_) => out.key(seg),
            };
        }
        out
    }

    fn say(msg: &str, at: &[&str]) -> String {
        Fault::parse(msg).describe(&p(at))
    }

    #[test]
    fn an_unknown_value_names_the_allowed_ones() {
        assert_eq!(
            say(
                "unknown variant `enterprise`, expected `ce` or `pro`",
                &["openfaas", "edition"]
            ),
            "openfaas.edition: must be one of ce, pro (got enterprise)"
        );
        assert_eq!(
            say("unknown variant `x`, expected one of `a`, `b`, `c`", &["m"]),
            "m: must be one of a, b, c (got x)"
        );
    }

    #[test]
    fn an_unknown_key_names_its_mapping_and_the_allowed_keys() {
        assert_eq!(
            say(
                "unknown field `tolerence`, expected one of `function`, `tolerance`",
                &["steps", "0", "check", "canary", "tolerence"]
            ),
            "steps[0].check.canary: unknown key tolerence (allowed: function, tolerance)"
        );
        assert_eq!(
            say("unknown field `nmae`, expected `name`", &["nmae"]),
            "unknown key nmae (allowed: name)"
        );
        assert_eq!(
            say("unknown field `x`, there are no fields", &["a", "x"]),
            "a: unknown key x (this mapping takes no keys)"
        );
        // An enum written as a single-key mapping: its variant is a key to the user.
        assert_eq!(
            say(
                "unknown variant `sleep`, expected one of `apply`, `wait`",
                &["steps", "0", "sleep"]
            ),
            "steps[0]: unknown key sleep (allowed: apply, wait)"
        );
    }

    #[test]
    fn a_missing_key_is_required() {
        assert_eq!(
            say(
                "missing field `confidence`",
                &["steps", "0", "check", "canary"]
            ),
            "steps[0].check.canary.confidence: required"
        );
        assert_eq!(say("missing field `name`", &[]), "name: required");
    }

    #[test]
    fn a_wrong_type_says_what_was_expected_and_found_without_rust_names() {
        let cases = [
            (
                "invalid type: string \"five\", expected f64",
                "expected a number, found the string \"five\"",
            ),
            (
                "invalid value: integer `70000`, expected u16",
                "expected a whole number from 0 to 65535, found the number 70000",
            ),
            (
                "invalid type: integer `-1`, expected u32",
                "expected a whole number from 0 to 4294967295, found the number -1",
            ),
            (
                "invalid type: sequence, expected a map",
                "expected a mapping, found a list",
            ),
            (
                "invalid type: integer `5`, expected struct RawCanary",
                "expected a mapping, found the number 5",
            ),
            (
                "invalid type: string \"yes\", expected a boolean",
                "expected true or false, found the string \"yes\"",
            ),
            (
                "invalid type: unit value, expected a string",
                "expected a string, found no value",
            ),
            (
                "invalid type: map, expected a sequence",
                "expected a list, found a mapping",
            ),
            (
                "invalid type: boolean `true`, expected a string",
                "expected a string, found true",
            ),
            (
                "invalid type: integer `5`, expected enum EditionName",
                "expected one of the allowed values, found the number 5",
            ),
        ];
        for (serde, ours) in cases {
            assert_eq!(say(serde, &["a"]), format!("a: {ours}"), "{serde}");
        }
    }

    #[test]
    fn an_enum_with_its_values_found_out_lists_them() {
        let mut f = Fault::parse("invalid type: integer `5`, expected enum EditionName");
        if let Fault::Mismatch { expected, .. } = &mut f {
            *expected = Expected::Choice(Some(vec!["ce".into(), "pro".into()]));
        }
        assert_eq!(
            f.describe(&p(&["openfaas", "edition"])),
            "openfaas.edition: must be one of ce, pro (got the number 5)"
        );
    }

    #[test]
    fn an_unrecognised_message_is_kept() {
        assert_eq!(
            say("recursion limit exceeded", &["a"]),
            "a: recursion limit exceeded"
        );
    }
}
