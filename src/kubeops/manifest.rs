//! Parsing multi-document YAML manifests into dynamic objects, without any I/O.
//!
//! Rendered manifests are streams of `---`-separated documents; empty documents (comments,
//! trailing separators) are normal and skipped. Every error names the document's index so a
//! broken template can be found in a long stream.

use kube::api::{DynamicObject, GroupVersionKind};

use super::error::KubeError;

/// One object parsed from a manifest stream.
#[derive(Debug, Clone)]
pub struct ManifestObject {
    /// 0-based index of the document in the stream (empty documents count too).
    pub doc_index: usize,
    pub gvk: GroupVersionKind,
    pub object: DynamicObject,
}

impl ManifestObject {
    /// True for `apiextensions.k8s.io` CustomResourceDefinitions.
    pub fn is_crd(&self) -> bool {
        self.gvk.group == "apiextensions.k8s.io" && self.gvk.kind == "CustomResourceDefinition"
    }

    /// True for core `Namespace` objects.
    pub fn is_namespace(&self) -> bool {
        self.gvk.group.is_empty() && self.gvk.kind == "Namespace"
    }

    /// `metadata.name`, which [`parse_manifests`] guarantees is present.
    pub fn name(&self) -> &str {
        self.object.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Parses every non-empty document of `yaml` into a [`ManifestObject`].
///
/// A document must be a mapping with `apiVersion`, `kind` and `metadata.name` (server-side apply
/// needs a name; `generateName` cannot be applied).
pub fn parse_manifests(yaml: &str) -> Result<Vec<ManifestObject>, KubeError> {
    let mut out = Vec::new();
    for (doc_index, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let yerr = |msg: String| KubeError::Yaml { doc_index, msg };
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| yerr(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        if !value.is_mapping() {
            return Err(yerr("document is not a mapping".into()));
        }
        let json: serde_json::Value =
            serde_json::to_value(&value).map_err(|e| yerr(format!("not JSON-compatible: {e}")))?;
        let object: DynamicObject =
            serde_json::from_value(json).map_err(|e| yerr(format!("not an object: {e}")))?;
        let types = object
            .types
            .as_ref()
            .ok_or_else(|| yerr("missing apiVersion/kind".into()))?;
        if types.kind.is_empty() || types.api_version.is_empty() {
            return Err(yerr("missing apiVersion/kind".into()));
        }
        let gvk = GroupVersionKind::try_from(types)
            .map_err(|e| yerr(format!("bad apiVersion {:?}: {e}", types.api_version)))?;
        if object
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(yerr(format!(
                "{} has no metadata.name (server-side apply needs one)",
                types.kind
            )));
        }
        out.push(ManifestObject {
            doc_index,
            gvk,
            object,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_documents_are_skipped_and_indices_kept() {
        let y = "---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: a\n";
        let objs = parse_manifests(y).unwrap();
        assert_eq!(objs.len(), 2);
        assert!(objs[0].is_namespace());
        assert_eq!(objs[1].gvk.group, "apps");
        assert!(objs[1].doc_index > objs[0].doc_index);
    }

    #[test]
    fn missing_name_and_kind_are_errors_with_index() {
        let y = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {}\n";
        match parse_manifests(y) {
            Err(KubeError::Yaml { doc_index: 1, msg }) => assert!(msg.contains("metadata.name")),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_manifests("metadata:\n  name: x\n"),
            Err(KubeError::Yaml { doc_index: 0, .. })
        ));
        assert!(matches!(
            parse_manifests("- a\n- b\n"),
            Err(KubeError::Yaml { doc_index: 0, .. })
        ));
    }
}
