//! Turning one response into one observation: which variant sent it, or why nobody can tell.
//!
//! A response is attributed to a variant only when exactly one variant's pattern matches.
//! Everything else — no match, several matches, a missing classify header, a non-2xx status, a
//! transport error, a timeout — is an [`Unclassified`] outcome that is counted and reported,
//! never dropped: a canary that fails half its requests would otherwise look like a canary
//! that gets half its traffic.

use super::spec::Split;
use regex::Regex;

/// Why a response could not be attributed to a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnclassifiedKind {
    /// No variant's pattern matched.
    NoMatch,
    /// Several variants' patterns matched.
    Ambiguous,
    /// `--classify-header` was given and the response lacks it (or it is not text).
    MissingHeader,
    /// The response status was not 2xx: not a routing signal, and likely an outage.
    HttpStatus,
    /// Connection refused, reset, TLS failure, bad response…
    Transport,
    /// No complete response within the per-request timeout.
    Timeout,
}

/// An unattributable response and a short human detail (truncated body, error text…).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unclassified {
    pub kind: UnclassifiedKind,
    pub detail: String,
}

/// One observation: what the sampler hands to the engine for each request sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sample {
    /// The response came from this variant (index into the split).
    Variant(usize),
    Unclassified(Unclassified),
}

impl Sample {
    pub fn unclassified(kind: UnclassifiedKind, detail: impl Into<String>) -> Sample {
        Sample::Unclassified(Unclassified {
            kind,
            detail: detail.into(),
        })
    }
}

/// Matches text (a body or a header value) against every variant's pattern.
#[derive(Debug, Clone)]
pub struct Classifier {
    names: Vec<String>,
    patterns: Vec<Regex>,
}

/// How much of an unmatched text to keep as a detail.
const DETAIL_CHARS: usize = 120;

impl Classifier {
    pub fn new(split: &Split) -> Classifier {
        Classifier {
            names: split.names(),
            patterns: split.variants().iter().map(|v| v.pattern.clone()).collect(),
        }
    }

    /// Attributes `text` to the single variant whose pattern matches it.
    pub fn classify(&self, text: &str) -> Sample {
        let matched: Vec<usize> = self
            .patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_match(text))
            .map(|(i, _)| i)
            .collect();
        match matched.as_slice() {
            [one] => Sample::Variant(*one),
            [] => Sample::unclassified(
                UnclassifiedKind::NoMatch,
                format!("no pattern matched {:?}", excerpt(text)),
            ),
            many => Sample::unclassified(
                UnclassifiedKind::Ambiguous,
                format!(
                    "patterns of {} all matched {:?}",
                    many.iter()
                        .map(|&i| self.names[i].as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    excerpt(text)
                ),
            ),
        }
    }
}

/// The first characters of `text`, for error details.
pub fn excerpt(text: &str) -> String {
    let mut s: String = text.chars().take(DETAIL_CHARS).collect();
    if text.chars().nth(DETAIL_CHARS).is_some() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::canary::spec::VariantSpec;

    fn classifier() -> Classifier {
        let v = |s: &str| s.parse::<VariantSpec>().unwrap();
        Classifier::new(&Split::new(vec![v("stable=^stable$:90"), v("canary=^canary:10")]).unwrap())
    }

    #[test]
    fn exactly_one_match_classifies() {
        assert_eq!(classifier().classify("stable"), Sample::Variant(0));
        assert_eq!(classifier().classify("canary v2"), Sample::Variant(1));
    }

    #[test]
    fn no_match_and_several_matches_are_unclassified() {
        let c = classifier();
        assert!(matches!(
            c.classify("oops"),
            Sample::Unclassified(Unclassified {
                kind: UnclassifiedKind::NoMatch,
                ..
            })
        ));
        let v = |s: &str| s.parse::<VariantSpec>().unwrap();
        let loose = Classifier::new(&Split::new(vec![v("a=a:50"), v("b=b:50")]).unwrap());
        match loose.classify("ab") {
            Sample::Unclassified(u) => {
                assert_eq!(u.kind, UnclassifiedKind::Ambiguous);
                assert!(u.detail.contains("a, b"), "{}", u.detail);
            }
            other => panic!("expected ambiguous, got {other:?}"),
        }
    }
}
