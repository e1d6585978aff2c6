//! Group/version/kind: the key a manifest's `apiVersion` and `kind` select a schema by.

use std::fmt;

/// A group/version/kind. The core group is the empty string (`apiVersion: v1`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(
        group: impl Into<String>,
        version: impl Into<String>,
        kind: impl Into<String>,
    ) -> Gvk {
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    /// From a manifest's `apiVersion` (`v1`, `apps/v1`) and `kind`. `None` for an apiVersion with
    /// more than one `/` or empty parts.
    pub fn from_api_version(api_version: &str, kind: &str) -> Option<Gvk> {
        let (group, version) = match api_version.split_once('/') {
            None => ("", api_version),
            Some((g, v)) => (g, v),
        };
        if version.is_empty()
            || version.contains('/')
            || (api_version.contains('/') && group.is_empty())
            || kind.is_empty()
        {
            return None;
        }
        Some(Gvk::new(group, version, kind))
    }

    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl fmt::Display for Gvk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version(), self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_core_and_grouped_api_versions() {
        assert_eq!(
            Gvk::from_api_version("v1", "Secret"),
            Some(Gvk::new("", "v1", "Secret"))
        );
        assert_eq!(
            Gvk::from_api_version("apps/v1", "Deployment"),
            Some(Gvk::new("apps", "v1", "Deployment"))
        );
        assert_eq!(Gvk::from_api_version("a/b/c", "X"), None);
        assert_eq!(Gvk::from_api_version("/v1", "X"), None);
        assert_eq!(Gvk::from_api_version("apps/", "X"), None);
        assert_eq!(Gvk::from_api_version("v1", ""), None);
        assert_eq!(
            Gvk::new("apps", "v1", "Deployment").to_string(),
            "apps/v1 Deployment"
        );
    }
}
