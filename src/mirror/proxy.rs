//! The configuration of one pull-through proxy: the CNCF distribution registry (Debian's
//! `docker-registry`, the `registry:2` image) with `proxy.remoteurl` set to one upstream
//! (ledger CTD-7). A proxy mirrors exactly one upstream, so there is one per registry.
//!
//! Credentials for an upstream (a Docker Hub token lifts its anonymous rate limit) go into this
//! file only, written 0600 through [`crate::private_fs`]: never into an argument, an
//! environment variable of a container, a log line or a report. Nodes never see them.

use super::{MirrorError, Upstream};
use std::path::{Path, PathBuf};

/// A login to an upstream, from `MESHPROOF_MIRROR_<KEY>_USERNAME` and `…_TOKEN`.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(username: String, password: String) -> Credentials {
        Credentials { username, password }
    }

    /// The secret, for the redactor of whatever prints near it.
    pub fn secret(&self) -> &str {
        &self.password
    }

    /// The variables for `upstream`: `(MESHPROOF_MIRROR_DOCKERHUB_USERNAME, …_TOKEN)`.
    pub fn env_names(upstream: &Upstream) -> (String, String) {
        let k = upstream.credentials_key();
        (
            format!("MESHPROOF_MIRROR_{k}_USERNAME"),
            format!("MESHPROOF_MIRROR_{k}_TOKEN"),
        )
    }

    /// Both variables, or neither; one without the other is an error naming the missing one.
    pub fn from_env(upstream: &Upstream) -> Result<Option<Credentials>, MirrorError> {
        let (u, t) = Credentials::env_names(upstream);
        let get = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        match (get(&u), get(&t)) {
            (None, None) => Ok(None),
            (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
            (Some(_), None) => Err(MirrorError::Setting {
                input: u.clone(),
                reason: format!("{u} is set but {t} is not"),
            }),
            (None, Some(_)) => Err(MirrorError::Setting {
                input: t.clone(),
                reason: format!(
                    "{t} is set but {u} is not (Docker Hub needs the account name with a token)"
                ),
            }),
        }
    }
}

/// One proxy's settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub upstream: Upstream,
    /// `host:port` the proxy listens on (`:5000` in a container).
    pub listen: String,
    /// Where it keeps what it fetched.
    pub storage: PathBuf,
    pub credentials: Option<Credentials>,
}

impl ProxyConfig {
    /// The registry's `config.yml`. Access logs stay on: they are how a test counts what the
    /// upstream served.
    pub fn yaml(&self) -> String {
        self.render(self.credentials.as_ref().map(|c| c.password.as_str()))
    }

    /// The same config with the password replaced by a placeholder: what may be hashed into
    /// a container label (an unsalted hash of a short password could be searched offline, and
    /// labels are readable by anyone who can reach the engine).
    pub fn yaml_without_secret(&self) -> String {
        self.render(self.credentials.as_ref().map(|_| "<secret>"))
    }

    fn render(&self, password: Option<&str>) -> String {
        let mut proxy = serde_json::json!({ "remoteurl": self.upstream.server });
        if let (Some(c), Some(p)) = (&self.credentials, password) {
            proxy["username"] = c.username.clone().into();
            proxy["password"] = p.into();
        }
        let v = serde_json::json!({
            "version": 0.1,
            "log": { "level": "info", "accesslog": { "disabled": false } },
            "storage": {
                "filesystem": { "rootdirectory": self.storage.display().to_string() },
                "delete": { "enabled": true },
            },
            "http": { "addr": self.listen },
            "proxy": proxy,
        });
        serde_yaml::to_string(&v).unwrap_or_default()
    }

    /// Writes the config 0600 (it may hold a token).
    pub fn write(&self, path: &Path) -> Result<(), MirrorError> {
        crate::private_fs::write_private(path, self.yaml().as_bytes()).map_err(|source| {
            MirrorError::Io {
                what: format!("writing the mirror config {}", path.display()),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn config(creds: Option<Credentials>) -> ProxyConfig {
        ProxyConfig {
            upstream: Upstream::new("docker.io"),
            listen: ":5000".into(),
            storage: "/var/lib/registry".into(),
            credentials: creds,
        }
    }

    #[test]
    fn the_config_proxies_the_upstream_server_and_holds_the_login_only_there() {
        let c = config(Some(Credentials::new(
            "me".into(),
            "dckr_pat_SECRET".into(),
        )));
        let v: serde_yaml::Value = serde_yaml::from_str(&c.yaml()).unwrap();
        assert_eq!(
            v["proxy"]["remoteurl"].as_str(),
            Some("https://registry-1.docker.io")
        );
        assert_eq!(v["proxy"]["password"].as_str(), Some("dckr_pat_SECRET"));
        assert_eq!(v["http"]["addr"].as_str(), Some(":5000"));
        assert!(!format!("{c:?}").contains("SECRET"), "{c:?}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m/config.yml");
        c.write(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn anonymous_configs_have_no_login() {
        let v: serde_yaml::Value = serde_yaml::from_str(&config(None).yaml()).unwrap();
        assert!(v["proxy"].get("username").is_none());
        assert!(v["proxy"].get("password").is_none());
    }

    #[test]
    fn the_variable_names_follow_the_upstream() {
        assert_eq!(
            Credentials::env_names(&Upstream::new("docker.io")),
            (
                "MESHPROOF_MIRROR_DOCKERHUB_USERNAME".to_string(),
                "MESHPROOF_MIRROR_DOCKERHUB_TOKEN".to_string()
            )
        );
    }
}
