//! What the user asks for: the variants of a split, their patterns and weights, the tolerance and
//! the confidence — parsed and validated once, so that the statistics never see an invalid value.
//!
//! Each type here can only hold a valid value: a [`Weight`] is an integer 0..=100, a
//! [`Tolerance`] lies strictly between 0 and 50 percentage points, a [`Confidence`] strictly
//! between 0.5 and 1, and a [`Split`] has at least two uniquely named variants whose weights sum
//! to exactly 100.

use regex::Regex;
use std::fmt;
use std::str::FromStr;

/// Why a flag or a configuration value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("variant `{0}`: expected NAME=PATTERN:WEIGHT (e.g. `stable=^stable$:90`)")]
    VariantSyntax(String),
    #[error("variant `{spec}`: the name before `=` is empty")]
    EmptyName { spec: String },
    #[error("variant `{name}`: the pattern is empty (it would match every response)")]
    EmptyPattern { name: String },
    #[error("variant `{name}`: pattern `{pattern}` is not a valid regex: {reason}")]
    BadPattern {
        name: String,
        pattern: String,
        reason: String,
    },
    #[error("variant `{name}`: weight `{weight}` is not an integer in 0..=100")]
    BadWeight { name: String, weight: String },
    #[error("at least two variants are needed (got {0}); to assert that all traffic goes to one, give the other weight 0")]
    TooFewVariants(usize),
    #[error("variant name `{0}` is given more than once")]
    DuplicateName(String),
    #[error("variant weights must sum to 100, they sum to {0}")]
    WeightSum(u32),
    #[error(
        "tolerance must be a number of percentage points strictly between 0 and 50, got `{0}`"
    )]
    BadTolerance(String),
    #[error("confidence must be strictly between 0.5 and 1 (e.g. 0.99), got `{0}`")]
    BadConfidence(String),
    #[error("max requests must be at least 1")]
    ZeroMaxRequests,
    #[error("concurrency must be between 1 and {max}, got {got}")]
    BadConcurrency { got: usize, max: usize },
}

/// An integer traffic weight in percent, 0..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Weight(u8);

impl Weight {
    pub fn new(percent: u8) -> Option<Weight> {
        (percent <= 100).then_some(Weight(percent))
    }
    pub fn percent(self) -> u8 {
        self.0
    }
    /// The expected share as a probability in [0, 1].
    pub fn share(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

/// The half-width of the acceptable band, in percentage points, strictly inside (0, 50).
///
/// 50 is excluded because a band of ±50 pp around any weight contains almost every share, so
/// the check could not fail.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
#[serde(transparent)]
pub struct Tolerance(f64);

impl Tolerance {
    pub fn from_points(pp: f64) -> Option<Tolerance> {
        (pp.is_finite() && pp > 0.0 && pp < 50.0).then_some(Tolerance(pp))
    }
    pub fn points(self) -> f64 {
        self.0
    }
    /// δ as a probability.
    pub fn share(self) -> f64 {
        self.0 / 100.0
    }
}

impl FromStr for Tolerance {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_end_matches("pp").trim();
        t.parse::<f64>()
            .ok()
            .and_then(Tolerance::from_points)
            .ok_or_else(|| SpecError::BadTolerance(s.to_string()))
    }
}

/// The confidence level `c`, strictly inside (0.5, 1). Both error rates are `1 − c`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
#[serde(transparent)]
pub struct Confidence(f64);

impl Confidence {
    pub fn new(c: f64) -> Option<Confidence> {
        (c.is_finite() && c > 0.5 && c < 1.0).then_some(Confidence(c))
    }
    pub fn level(self) -> f64 {
        self.0
    }
    /// The error rate the user accepts for each kind of error: `1 − c`.
    pub fn error_rate(self) -> f64 {
        1.0 - self.0
    }
}

impl FromStr for Confidence {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<f64>()
            .ok()
            .and_then(Confidence::new)
            .ok_or_else(|| SpecError::BadConfidence(s.to_string()))
    }
}

/// One variant: its name, the regex that recognises its responses, and its expected weight.
#[derive(Debug, Clone)]
pub struct VariantSpec {
    pub name: String,
    pub pattern: Regex,
    pub weight: Weight,
}

impl FromStr for VariantSpec {
    type Err = SpecError;

    /// Parses `NAME=PATTERN:WEIGHT`, splitting on the first `=` and the last `:` so that a
    /// pattern may itself contain `=` and `:` (e.g. `v2=version: 2:10`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, rest) = s
            .split_once('=')
            .ok_or_else(|| SpecError::VariantSyntax(s.to_string()))?;
        let (pattern, weight) = rest
            .rsplit_once(':')
            .ok_or_else(|| SpecError::VariantSyntax(s.to_string()))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(SpecError::EmptyName {
                spec: s.to_string(),
            });
        }
        if pattern.is_empty() {
            return Err(SpecError::EmptyPattern {
                name: name.to_string(),
            });
        }
        let regex = Regex::new(pattern).map_err(|e| SpecError::BadPattern {
            name: name.to_string(),
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })?;
        let weight = weight
            .trim()
            .parse::<u8>()
            .ok()
            .and_then(Weight::new)
            .ok_or_else(|| SpecError::BadWeight {
                name: name.to_string(),
                weight: weight.to_string(),
            })?;
        Ok(VariantSpec {
            name: name.to_string(),
            pattern: regex,
            weight,
        })
    }
}

/// Compared by what the user wrote (name, pattern text, weight): two compiled regexes of the
/// same text are the same variant.
impl PartialEq for VariantSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.pattern.as_str() == other.pattern.as_str()
            && self.weight == other.weight
    }
}

impl serde::Serialize for VariantSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("VariantSpec", 3)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("pattern", self.pattern.as_str())?;
        st.serialize_field("weight", &self.weight)?;
        st.end()
    }
}

impl fmt::Display for VariantSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={}:{}",
            self.name,
            self.pattern.as_str(),
            self.weight.percent()
        )
    }
}

/// A validated split: ≥ 2 uniquely named variants whose weights sum to 100.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Split {
    variants: Vec<VariantSpec>,
}

impl Split {
    pub fn new(variants: Vec<VariantSpec>) -> Result<Split, SpecError> {
        if variants.len() < 2 {
            return Err(SpecError::TooFewVariants(variants.len()));
        }
        for (i, v) in variants.iter().enumerate() {
            if variants[..i].iter().any(|o| o.name == v.name) {
                return Err(SpecError::DuplicateName(v.name.clone()));
            }
        }
        let sum: u32 = variants.iter().map(|v| u32::from(v.weight.percent())).sum();
        if sum != 100 {
            return Err(SpecError::WeightSum(sum));
        }
        Ok(Split { variants })
    }

    pub fn variants(&self) -> &[VariantSpec] {
        &self.variants
    }

    pub fn weights(&self) -> Vec<Weight> {
        self.variants.iter().map(|v| v.weight).collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.variants.iter().map(|v| v.name.clone()).collect()
    }
}

/// The statistical parameters shared by the sequential test and its fixed-sample fallback.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TestParams {
    pub tolerance: Tolerance,
    pub confidence: Confidence,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_first_equals_and_last_colon() {
        let v: VariantSpec = "v2=a=b:c:10".parse().unwrap();
        assert_eq!(v.name, "v2");
        assert_eq!(v.pattern.as_str(), "a=b:c");
        assert_eq!(v.weight.percent(), 10);
    }

    #[test]
    fn rejects_bad_variants_with_clear_errors() {
        assert!(matches!(
            "stable".parse::<VariantSpec>(),
            Err(SpecError::VariantSyntax(_))
        ));
        assert!(matches!(
            "stable=x".parse::<VariantSpec>(),
            Err(SpecError::VariantSyntax(_))
        ));
        assert!(matches!(
            "=x:10".parse::<VariantSpec>(),
            Err(SpecError::EmptyName { .. })
        ));
        assert!(matches!(
            "a=:10".parse::<VariantSpec>(),
            Err(SpecError::EmptyPattern { .. })
        ));
        assert!(matches!(
            "a=(:10".parse::<VariantSpec>(),
            Err(SpecError::BadPattern { .. })
        ));
        assert!(matches!(
            "a=x:101".parse::<VariantSpec>(),
            Err(SpecError::BadWeight { .. })
        ));
        assert!(matches!(
            "a=x:-1".parse::<VariantSpec>(),
            Err(SpecError::BadWeight { .. })
        ));
        assert!(matches!(
            "a=x:1.5".parse::<VariantSpec>(),
            Err(SpecError::BadWeight { .. })
        ));
    }

    #[test]
    fn split_needs_two_unique_variants_summing_to_100() {
        let v = |s: &str| s.parse::<VariantSpec>().unwrap();
        assert_eq!(
            Split::new(vec![v("a=a:100")]).unwrap_err(),
            SpecError::TooFewVariants(1)
        );
        assert_eq!(
            Split::new(vec![v("a=a:50"), v("a=b:50")]).unwrap_err(),
            SpecError::DuplicateName("a".into())
        );
        assert_eq!(
            Split::new(vec![v("a=a:50"), v("b=b:40")]).unwrap_err(),
            SpecError::WeightSum(90)
        );
        assert!(Split::new(vec![v("a=a:100"), v("b=b:0")]).is_ok());
    }

    #[test]
    fn tolerance_and_confidence_ranges_are_open() {
        assert!("0".parse::<Tolerance>().is_err());
        assert!("50".parse::<Tolerance>().is_err());
        assert!("nan".parse::<Tolerance>().is_err());
        assert_eq!("5".parse::<Tolerance>().unwrap().share(), 0.05);
        assert!("0.5".parse::<Confidence>().is_err());
        assert!("1".parse::<Confidence>().is_err());
        assert!("0.99".parse::<Confidence>().is_ok());
    }
}
