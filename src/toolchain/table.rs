//! The pinned-tool table (`tools.yaml` at the project root, compiled in): per tool its version,
//! its download per OS/arch, how it is packed and where its project publishes the checksum.
//!
//! Compiled in, like the lock, so a binary always installs what the commit it was built from
//! pins; parsed strictly (`deny_unknown_fields`) so a typo in a bump is an error, not a default.

use super::{Platform, ToolchainError, ARCHES, OSES};
use std::collections::BTreeMap;

/// The table as committed.
pub const TABLE_YAML: &str = include_str!("../../tools.yaml");

/// The tools the table pins, in the order `tools install` takes them.
pub const TOOLS: [&str; 7] = [
    "kind", "kubectl", "helm", "istioctl", "linkerd", "flux", "kubeseal",
];

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assets {
    #[serde(rename = "linux/amd64")]
    pub linux_amd64: String,
    #[serde(rename = "linux/arm64")]
    pub linux_arm64: String,
    #[serde(rename = "darwin/amd64")]
    pub darwin_amd64: String,
    #[serde(rename = "darwin/arm64")]
    pub darwin_arm64: String,
}

impl Assets {
    fn get(&self, p: Platform) -> &str {
        match (p.os, p.arch) {
            ("linux", "amd64") => &self.linux_amd64,
            ("linux", "arm64") => &self.linux_arm64,
            ("darwin", "amd64") => &self.darwin_amd64,
            _ => &self.darwin_arm64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum ArchiveKind {
    /// The download is the executable.
    #[serde(rename = "binary")]
    Binary,
    /// A gzip'd tarball holding the executable at `member`.
    #[serde(rename = "tar.gz")]
    TarGz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChecksumFormat {
    /// `HEX  NAME` lines (`sha256sum`/`shasum -a 256` output, goreleaser's checksums.txt).
    Sha256sum,
    /// The file is the hex digest alone (dl.k8s.io's `.sha256`).
    Hex,
    /// The GitHub release API's JSON: `assets[].name` and `assets[].digest` (`sha256:HEX`).
    GithubRelease,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecksumSource {
    pub url: String,
    pub format: ChecksumFormat,
}

/// Where a tool's version comes from when the table does not state one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VersionFrom {
    /// The Kubernetes release of the environment's kind node image (its tag): kubectl.
    KindNodeImage,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolEntry {
    pub version: Option<String>,
    pub version_from: Option<VersionFrom>,
    /// kubeseal only: the sealed-secrets Helm chart whose appVersion `version` is.
    pub chart: Option<String>,
    pub url: String,
    pub assets: Assets,
    pub archive: ArchiveKind,
    pub member: Option<String>,
    pub checksum: ChecksumSource,
}

/// The parsed, checked table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub tools: BTreeMap<String, ToolEntry>,
}

/// One download, rendered for a version and a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub tool: String,
    pub version: String,
    pub platform: Platform,
    pub url: String,
    /// The artifact's file name: the name its checksum file lists it under.
    pub file_name: String,
    pub archive: ArchiveKind,
    /// The executable's path inside a tarball.
    pub member: Option<String>,
    pub checksum: ChecksumSource,
    /// The executable's name once installed.
    pub binary: String,
}

fn render(t: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = t.to_string();
    for (k, v) in pairs {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

impl Table {
    pub fn parse(text: &str) -> Result<Table, ToolchainError> {
        let bad = |m: String| ToolchainError::Table(m);
        let tools: BTreeMap<String, ToolEntry> =
            serde_yaml::from_str(text).map_err(|e| bad(e.to_string()))?;
        for name in TOOLS {
            if !tools.contains_key(name) {
                return Err(bad(format!("no entry for {name}")));
            }
        }
        for (name, e) in &tools {
            if !TOOLS.contains(&name.as_str()) {
                return Err(bad(format!(
                    "unknown tool {name} (known: {})",
                    TOOLS.join(", ")
                )));
            }
            match (&e.version, &e.version_from) {
                (Some(v), None) if !v.trim().is_empty() => {}
                (None, Some(_)) => {}
                _ => {
                    return Err(bad(format!(
                        "{name}: give exactly one of `version` and `versionFrom`"
                    )))
                }
            }
            match (e.archive, &e.member) {
                (ArchiveKind::TarGz, None) => {
                    return Err(bad(format!(
                        "{name}: a tar.gz needs `member` (the executable's path inside)"
                    )))
                }
                (ArchiveKind::Binary, Some(_)) => {
                    return Err(bad(format!("{name}: `member` is for tar.gz archives")))
                }
                _ => {}
            }
            if e.chart.is_some() && name != "kubeseal" {
                return Err(bad(format!("{name}: `chart` is for kubeseal only")));
            }
            for os in OSES {
                for arch in ARCHES {
                    let a = e.assets.get(Platform { os, arch });
                    if a.is_empty() || a.contains("..") || a.starts_with('/') {
                        return Err(bad(format!("{name}: bad asset name {a:?} for {os}/{arch}")));
                    }
                }
            }
        }
        Ok(Table { tools })
    }

    /// The committed table. It is tested to parse (`tests::the_committed_table_parses`), so a
    /// failure here is a build from a broken tree, reported rather than panicked on.
    pub fn committed() -> Result<Table, ToolchainError> {
        Table::parse(TABLE_YAML)
    }

    /// The committed table, parsed once per process (the tool lookup runs at every spawn).
    /// `None` only for a build from a tree whose table does not parse, which its tests refuse.
    pub fn pinned() -> Option<&'static Table> {
        static TABLE: std::sync::OnceLock<Option<Table>> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| Table::committed().ok()).as_ref()
    }

    pub fn entry(&self, tool: &str) -> Result<&ToolEntry, ToolchainError> {
        self.tools
            .get(tool)
            .ok_or_else(|| ToolchainError::UnknownTool(tool.to_string()))
    }

    /// The version the table pins for `tool`; `None` for kubectl (it follows the node image).
    pub fn version(&self, tool: &str) -> Option<&str> {
        self.tools.get(tool).and_then(|e| e.version.as_deref())
    }

    /// The download of `tool` at `version` for `platform`. `version` must be the pinned one
    /// where the table pins one.
    pub fn artifact(
        &self,
        tool: &str,
        version: &str,
        platform: Platform,
    ) -> Result<Artifact, ToolchainError> {
        let e = self.entry(tool)?;
        if let Some(pinned) = &e.version {
            if pinned != version {
                return Err(ToolchainError::Table(format!(
                    "{tool}: the table pins {pinned}, not {version}"
                )));
            }
        }
        let vars = [
            ("version", version),
            ("os", platform.os),
            ("arch", platform.arch),
        ];
        let asset = render(e.assets.get(platform), &vars);
        let url = render(&e.url, &[("asset", asset.as_str()), ("version", version)]);
        let checksum = ChecksumSource {
            url: render(
                &e.checksum.url,
                &[
                    ("url", url.as_str()),
                    ("asset", asset.as_str()),
                    ("version", version),
                ],
            ),
            format: e.checksum.format,
        };
        let file_name = asset.rsplit('/').next().unwrap_or(&asset).to_string();
        Ok(Artifact {
            tool: tool.to_string(),
            version: version.to_string(),
            platform,
            url,
            file_name,
            archive: e.archive,
            member: e.member.as_ref().map(|m| render(m, &vars)),
            checksum,
            binary: tool.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::committed().expect("tools.yaml parses")
    }

    #[test]
    fn the_committed_table_parses_and_pins_every_tool() {
        let t = table();
        for tool in TOOLS {
            let e = t.entry(tool).unwrap();
            assert_eq!(
                e.version.is_none(),
                tool == "kubectl",
                "{tool}: only kubectl follows the node image"
            );
        }
    }

    #[test]
    fn every_tool_renders_every_os_and_arch_to_a_distinct_https_url() {
        let t = table();
        for tool in TOOLS {
            let v = t.version(tool).unwrap_or("v1.34.0").to_string();
            let mut urls = std::collections::BTreeSet::new();
            for os in OSES {
                for arch in ARCHES {
                    let a = t.artifact(tool, &v, Platform { os, arch }).unwrap();
                    for u in [&a.url, &a.checksum.url] {
                        assert!(u.starts_with("https://"), "{u}");
                        assert!(!u.contains('{') && !u.contains('}'), "unrendered: {u}");
                    }
                    assert!(a.url.contains(v.trim_start_matches('v')), "{}", a.url);
                    assert!(
                        a.url.contains(arch) || (tool == "linkerd" && os == "darwin"),
                        "{}: {}",
                        a.url,
                        arch
                    );
                    if let Some(m) = &a.member {
                        assert!(!m.contains('{') && !m.is_empty(), "{m}");
                    }
                    urls.insert(a.url);
                }
            }
            assert_eq!(urls.len(), 4, "{tool}: one download per platform");
        }
    }

    #[test]
    fn urls_render_as_each_project_lays_them_out() {
        let t = table();
        let linux = Platform {
            os: "linux",
            arch: "amd64",
        };
        let mac = Platform {
            os: "darwin",
            arch: "amd64",
        };
        let kind = t.artifact("kind", "v0.33.0", linux).unwrap();
        assert_eq!(
            kind.url,
            "https://github.com/kubernetes-sigs/kind/releases/download/v0.33.0/kind-linux-amd64"
        );
        assert_eq!(kind.checksum.url, format!("{}.sha256sum", kind.url));
        let helm = t.artifact("helm", "v3.19.0", mac).unwrap();
        assert_eq!(
            helm.url,
            "https://get.helm.sh/helm-v3.19.0-darwin-amd64.tar.gz"
        );
        assert_eq!(helm.member.as_deref(), Some("darwin-amd64/helm"));
        let kubectl = t.artifact("kubectl", "v1.34.0", linux).unwrap();
        assert_eq!(
            kubectl.url,
            "https://dl.k8s.io/release/v1.34.0/bin/linux/amd64/kubectl"
        );
        assert_eq!(kubectl.file_name, "kubectl");
        assert_eq!(
            kubectl.checksum.url,
            "https://dl.k8s.io/v1.34.0/bin/linux/amd64/kubectl.sha256"
        );
        let istio = t.artifact("istioctl", "1.30.3", mac).unwrap();
        assert!(istio
            .url
            .ends_with("/1.30.3/istioctl-1.30.3-osx-amd64.tar.gz"));
        let linkerd = t.artifact("linkerd", "edge-26.8.3", mac).unwrap();
        assert!(linkerd.url.ends_with("/linkerd2-cli-edge-26.8.3-darwin"));
        assert_eq!(linkerd.checksum.format, ChecksumFormat::GithubRelease);
        let flux = t.artifact("flux", "2.9.4", linux).unwrap();
        assert!(flux.url.ends_with("/v2.9.4/flux_2.9.4_linux_amd64.tar.gz"));
        assert!(flux.checksum.url.ends_with("/flux_2.9.4_checksums.txt"));
        let ks = t.artifact("kubeseal", "0.38.4", linux).unwrap();
        assert_eq!(
            ks.url,
            "https://github.com/bitnami/sealed-secrets/releases/download/v0.38.4/kubeseal-0.38.4-linux-amd64.tar.gz"
        );
        assert!(ks.checksum.url.ends_with(
            "/bitnami/sealed-secrets/releases/download/v0.38.4/sealed-secrets_0.38.4_checksums.txt"
        ));
        assert_eq!(t.tools["kubeseal"].chart.as_deref(), Some("2.19.1"));
    }

    #[test]
    fn another_version_than_the_pin_is_refused() {
        let linux = Platform {
            os: "linux",
            arch: "amd64",
        };
        assert!(table().artifact("kind", "v0.29.0", linux).is_err());
        assert!(matches!(
            table().artifact("kubecolor", "1", linux),
            Err(ToolchainError::UnknownTool(_))
        ));
    }

    #[test]
    fn a_malformed_table_is_an_error_naming_the_problem() {
        let good = TABLE_YAML;
        let e = Table::parse(&good.replace(
            "  archive: binary\n  checksum: { url: \"{url}.sha256sum\"",
            "  archive: binary\n  membr: x\n  checksum: { url: \"{url}.sha256sum\"",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("membr"), "{e}");
        let e = Table::parse(&good.replace("    darwin/arm64: kind-darwin-arm64\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("darwin/arm64"), "{e}");
        let e = Table::parse(&good.replace("  member: istioctl\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("istioctl") && e.contains("member"), "{e}");
        let e = Table::parse(&good.replace("  versionFrom: kindNodeImage\n", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kubectl"), "{e}");
    }
}
