//! containerd's registry hosts configuration: one `hosts.toml` per registry host namespace,
//! in a directory named after it (ledger CTD-2, CTD-3).
//!
//! Each file sends pulls to the mirror first and falls back to the registry's own server when
//! the mirror fails (containerd tries the hosts in order, the `server` last: CTD-5). The mirror
//! may `pull` and `resolve` (a private mirror, trusted to map a tag to a digest: CTD-3); pinned
//! references are checked against their digest by containerd whatever the mirror says.

use super::{MirrorError, Upstream};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The namespace containerd consults when no directory matches a registry (CTD-2).
pub const DEFAULT_NAMESPACE: &str = "_default";

/// How long containerd waits for a TCP connection to a mirror before it falls back to the next
/// host (`dial_timeout`, CTD-3); without it a mirror on an unroutable address costs 30 s per
/// request.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// A mirror endpoint: `http(s)://host[:port][/path]`, as containerd's `[host."…"]` key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MirrorHost {
    pub url: String,
}

impl MirrorHost {
    /// The URL of the mirror's distribution API root, as containerd forms it: `/v2` appended
    /// to the path unless it ends with it (CTD-3, `override_path` unset).
    pub fn api_root(&self) -> String {
        let base = self.url.trim_end_matches('/');
        if base.ends_with("/v2") {
            format!("{base}/")
        } else {
            format!("{base}/v2/")
        }
    }
}

/// One `hosts.toml`: where it goes and what it says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostsFile {
    /// The directory name under the hosts root (`docker.io`, `127.0.0.1_5000_`, `_default`).
    pub namespace: String,
    /// The registry it configures (`None` for `_default`: every other registry).
    pub upstream: Option<Upstream>,
    pub mirror: MirrorHost,
}

impl HostsFile {
    /// The file's text.
    pub fn text(&self) -> String {
        hosts_toml(self.upstream.as_ref(), &self.mirror)
    }
}

/// A whole hosts directory, one file per namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostsDir {
    pub files: Vec<HostsFile>,
}

impl HostsDir {
    /// `default` for every registry, `per` for the ones named (which then fall back to their own
    /// server, not to `default`).
    pub fn new(default: Option<&MirrorHost>, per: &BTreeMap<Upstream, MirrorHost>) -> HostsDir {
        let mut files: Vec<HostsFile> = per
            .iter()
            .map(|(u, m)| HostsFile {
                namespace: namespace_dir(&u.name),
                upstream: Some(u.clone()),
                mirror: m.clone(),
            })
            .collect();
        if let Some(m) = default {
            files.push(HostsFile {
                namespace: DEFAULT_NAMESPACE.into(),
                upstream: None,
                mirror: m.clone(),
            });
        }
        HostsDir { files }
    }

    /// Writes `<root>/<namespace>/hosts.toml` for every file (the tree is not secret: mirror
    /// URLs only, never credentials).
    pub fn write(&self, root: &Path) -> Result<Vec<PathBuf>, MirrorError> {
        let mut written = Vec::new();
        for f in &self.files {
            let dir = root.join(&f.namespace);
            let io = |what: String| move |source| MirrorError::Io { what, source };
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            let path = dir.join("hosts.toml");
            std::fs::write(&path, f.text()).map_err(io(format!("writing {}", path.display())))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// The directory containerd looks for first for a registry host: `host:port` becomes
/// `host_port_` (CTD-2), so no `:` appears in a path handed to a bind mount.
pub fn namespace_dir(registry: &str) -> String {
    match registry.rfind(':') {
        Some(i) if i > 0 => format!("{}_{}_", &registry[..i], &registry[i + 1..]),
        _ => registry.to_string(),
    }
}

#[derive(serde::Serialize)]
struct FileToml<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a str>,
    host: BTreeMap<&'a str, HostToml>,
}

#[derive(serde::Serialize)]
struct HostToml {
    capabilities: [&'static str; 2],
    dial_timeout: String,
}

/// The text of one `hosts.toml`: `server` is the registry's own (omitted for `_default`, where
/// containerd falls back to each image's registry itself: CTD-4), then the mirror as the first
/// host.
pub fn hosts_toml(upstream: Option<&Upstream>, mirror: &MirrorHost) -> String {
    let mut host = BTreeMap::new();
    host.insert(
        mirror.url.as_str(),
        HostToml {
            capabilities: ["pull", "resolve"],
            dial_timeout: format!("{}s", DIAL_TIMEOUT.as_secs()),
        },
    );
    let file = FileToml {
        server: upstream.map(|u| u.server.as_str()),
        host,
    };
    // Plain strings and string arrays always serialise; an empty file would make containerd use
    // the registry directly, which the tests of this module would catch.
    toml::to_string(&file).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(url: &str) -> MirrorHost {
        MirrorHost { url: url.into() }
    }

    #[test]
    fn a_registry_file_names_its_server_and_the_mirror_first() {
        let text = hosts_toml(
            Some(&Upstream::new("docker.io")),
            &mirror("http://meshproof-mirror-docker-io:5000"),
        );
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["server"].as_str(), Some("https://registry-1.docker.io"));
        let h = &v["host"]["http://meshproof-mirror-docker-io:5000"];
        assert_eq!(
            h["capabilities"].as_array().unwrap(),
            &vec![toml::Value::from("pull"), toml::Value::from("resolve")]
        );
        assert_eq!(h["dial_timeout"].as_str(), Some("5s"));
        assert!(
            text.contains("[host.\"http://meshproof-mirror-docker-io:5000\"]"),
            "{text}"
        );
    }

    #[test]
    fn the_default_namespace_has_no_server() {
        let text = hosts_toml(None, &mirror("https://mirror.corp.example"));
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert!(v.get("server").is_none(), "{text}");
        assert!(v["host"].get("https://mirror.corp.example").is_some());
    }

    #[test]
    fn ports_become_underscores_in_directory_names() {
        assert_eq!(namespace_dir("127.0.0.1:5000"), "127.0.0.1_5000_");
        assert_eq!(namespace_dir("docker.io"), "docker.io");
    }

    #[test]
    fn api_root_appends_v2_like_containerd() {
        assert_eq!(mirror("http://m:5000").api_root(), "http://m:5000/v2/");
        assert_eq!(mirror("https://m/x/").api_root(), "https://m/x/v2/");
        assert_eq!(mirror("https://m/x/v2").api_root(), "https://m/x/v2/");
    }

    #[test]
    fn the_tree_has_one_file_per_namespace() {
        let mut per = BTreeMap::new();
        per.insert(Upstream::new("ghcr.io"), mirror("http://a:5000"));
        per.insert(Upstream::new("127.0.0.1:5001"), mirror("http://b:5000"));
        let dir = HostsDir::new(Some(&mirror("http://c:5000")), &per);
        let tmp = tempfile::tempdir().unwrap();
        let written = dir.write(tmp.path()).unwrap();
        let rel: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(tmp.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "127.0.0.1_5001_/hosts.toml",
                "ghcr.io/hosts.toml",
                "_default/hosts.toml"
            ]
        );
        let ghcr = std::fs::read_to_string(tmp.path().join("ghcr.io/hosts.toml")).unwrap();
        assert!(ghcr.contains("server = \"https://ghcr.io\""), "{ghcr}");
    }
}
