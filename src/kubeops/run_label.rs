//! The label that marks what a run created, and the validated run id that goes in it.
//!
//! Cleanup deletes exactly the objects carrying this label with the run's id, so the label is
//! the whole of the "we only remove what we created" promise towards an existing cluster.

use super::error::KubeError;

/// Label key set on every object a run creates. The one place this key is spelled.
pub const RUN_ID_LABEL: &str = "meshproof.dev/run-id";

/// Field manager used for every server-side apply, so ownership is visible in `managedFields`.
pub const FIELD_MANAGER: &str = "meshproof";

/// A run id that is a valid Kubernetes label value (1–63 chars, `[A-Za-z0-9._-]`, alphanumeric at
/// both ends). Constructing one is the only validation point, so label selectors built from it
/// can never be malformed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(String);

impl RunId {
    /// Validates `id` as a label value.
    pub fn new(id: impl Into<String>) -> Result<Self, KubeError> {
        let id = id.into();
        let ok_len = !id.is_empty() && id.len() <= 63;
        let ok_chars = id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        let ok_ends = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && id.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
        if ok_len && ok_chars && ok_ends {
            Ok(RunId(id))
        } else {
            Err(KubeError::Invalid(format!(
                "run id {id:?} is not a valid label value (1-63 chars of [A-Za-z0-9._-], alphanumeric at both ends)"
            )))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The label selector `meshproof.dev/run-id=<id>`.
    pub fn selector(&self) -> String {
        format!("{RUN_ID_LABEL}={}", self.0)
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_accepts_label_values_and_rejects_the_rest() {
        assert!(RunId::new("run-20260101-abc").is_ok());
        assert!(RunId::new("a").is_ok());
        for bad in ["", "-x", "x-", "a b", "a/b", &"x".repeat(64)] {
            assert!(RunId::new(bad).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(
            RunId::new("r1").unwrap().selector(),
            "meshproof.dev/run-id=r1"
        );
    }
}
