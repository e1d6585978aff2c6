//! The images a rendered manifest runs: every `image` of every container, init container and
//! ephemeral container of every pod template, in any kind of object (Deployments, DaemonSets,
//! Jobs, CronJobs, bare Pods, and custom resources that embed a pod spec).
//!
//! Pure: text in, images out. Images injected at pod creation (a mesh's sidecar proxy) are not
//! in any manifest, and are not guessed here.

use std::collections::BTreeMap;

/// One image a manifest names, and where: `Deployment/istiod (discovery)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RenderedImage {
    pub image: String,
    /// `Kind/name (container)` of the first place it appears.
    pub used_by: String,
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

fn walk(v: &serde_yaml::Value, owner: &str, out: &mut BTreeMap<String, String>) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, child) in m {
                let key = k.as_str().unwrap_or_default();
                if CONTAINER_LISTS.contains(&key) {
                    for c in child.as_sequence().into_iter().flatten() {
                        if let Some(image) = c.get("image").and_then(|i| i.as_str()) {
                            let name = c.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                            out.entry(image.trim().to_string())
                                .or_insert_with(|| format!("{owner} ({name})"));
                        }
                    }
                }
                walk(child, owner, out);
            }
        }
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|c| walk(c, owner, out)),
        serde_yaml::Value::Tagged(t) => walk(&t.value, owner, out),
        _ => {}
    }
}

/// Every distinct image in a multi-document manifest, sorted; a document that is not YAML is
/// an error naming its position (a CLI that printed a warning into its output, say).
pub fn images_in(text: &str) -> Result<Vec<RenderedImage>, String> {
    let mut found = BTreeMap::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = serde::Deserialize::deserialize(doc)
            .map_err(|e: serde_yaml::Error| format!("document {}: {e}", i + 1))?;
        let v: serde_yaml::Value = v;
        if v.is_null() {
            continue;
        }
        let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
        let name = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("?");
        walk(&v, &format!("{kind}/{name}"), &mut found);
    }
    Ok(found
        .into_iter()
        .filter(|(image, _)| !image.is_empty())
        .map(|(image, used_by)| RenderedImage { image, used_by })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_init_containers_and_nested_pod_specs_are_found_once_each() {
        let text = r#"
apiVersion: v1
kind: ConfigMap
metadata: { name: not-a-pod }
data: { image: "not/an-image:1" }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: gateway }
spec:
  template:
    spec:
      initContainers:
        - name: wait
          image: busybox:1.36
      containers:
        - name: gateway
          image: ghcr.io/openfaas/gateway:0.27.13
        - name: operator
          image: "ghcr.io/openfaas/faas-netes:0.18.17"
---
# a comment-only document
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: sweep }
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: sweep
              image: busybox:1.36
            - name: sweep2
              image: registry.k8s.io/pause:3.10@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a
"#;
        let got = images_in(text).unwrap();
        let images: Vec<&str> = got.iter().map(|i| i.image.as_str()).collect();
        assert_eq!(
            images,
            [
                "busybox:1.36",
                "ghcr.io/openfaas/faas-netes:0.18.17",
                "ghcr.io/openfaas/gateway:0.27.13",
                "registry.k8s.io/pause:3.10@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a",
            ]
        );
        assert_eq!(got[0].used_by, "Deployment/gateway (wait)");
        assert_eq!(got[3].used_by, "CronJob/sweep (sweep2)");
    }

    #[test]
    fn text_that_is_not_yaml_is_an_error_naming_the_document() {
        let e = images_in("kind: A\n---\nkey: [unclosed\n").unwrap_err();
        assert!(e.starts_with("document 2:"), "{e}");
    }
}
