//! What the user asked for: `--mirror` (repeatable) or `MESHPROOF_MIRROR` (the same values,
//! separated by commas or spaces).
//!
//! - nothing given (the default): `local`, where the run can start it — if the containers cannot
//!   start (no image, another kind provider), the nodes pull directly and the log says why.
//! - `off`: nodes pull from the registries directly.
//! - `URL`: one mirror for every registry (containerd's `_default` namespace), for a company
//!   registry that serves each upstream's repositories at its root.
//! - `REGISTRY=URL`: a mirror for one registry (`docker.io=http://mirror:5000`); repeatable, and
//!   combinable with a `URL` for the others.
//! - `local` / `keep`: a pull-through registry per upstream on the kind network, started by the
//!   run (kept across runs with `keep`): [`super::local`].
//!
//! A mirror is a property of the machine a run happens on, not of the suite: the same suite runs
//! behind a company registry and on a laptop, and pulls the same digests either way.

use super::hosts::{HostsDir, MirrorHost};
use super::{MirrorError, Upstream};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The environment variable `--mirror` defaults from.
pub const ENV: &str = "MESHPROOF_MIRROR";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MirrorSetting {
    #[default]
    Off,
    /// A pull-through registry per upstream on the kind network; `keep` leaves them running.
    /// `by_default`: nobody asked for it (no `--mirror`, no `MESHPROOF_MIRROR`), so mirrors
    /// that cannot start leave the nodes pulling directly instead of stopping the run.
    Local { keep: bool, by_default: bool },
    /// Mirrors the user runs.
    Remote {
        default: Option<MirrorHost>,
        per: BTreeMap<Upstream, MirrorHost>,
    },
}

/// A node's registry configuration: the hosts tree and where it is written on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMirror {
    pub hosts: HostsDir,
    pub host_dir: PathBuf,
}

fn bad(input: &str, reason: impl Into<String>) -> MirrorError {
    MirrorError::Setting {
        input: input.into(),
        reason: reason.into(),
    }
}

/// `http(s)://host[:port][/path]`, nothing else (a query or credentials in a URL would end up
/// in every node's hosts.toml and in `meshproof plan`).
fn mirror_url(input: &str, url: &str) -> Result<MirrorHost, MirrorError> {
    let u = reqwest::Url::parse(url).map_err(|e| bad(input, format!("not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad(input, "a mirror URL starts with http:// or https://"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad(input, "the URL names no host"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            input,
            "credentials do not go in a mirror URL (they would reach every node and the plan); give them to the mirror itself",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(bad(input, "a mirror URL has no query or fragment"));
    }
    Ok(MirrorHost {
        url: url.trim_end_matches('/').to_string(),
    })
}

/// A registry host as image references name it: `name[:port]`, lowercase DNS characters.
fn registry_name(input: &str, name: &str) -> Result<String, MirrorError> {
    let (host, port) = match name.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (name, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if !host_ok || !port_ok {
        return Err(bad(
            input,
            format!("{name:?} is not a registry host (like docker.io, ghcr.io or host:5000)"),
        ));
    }
    Ok(name.to_string())
}

impl MirrorSetting {
    /// Parses the values of every `--mirror` given (or `MESHPROOF_MIRROR` split on commas and
    /// spaces). No value means `local`, by default.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<MirrorSetting, MirrorError> {
        let mut local: Option<bool> = None;
        let mut off = false;
        let mut default: Option<MirrorHost> = None;
        let mut per = BTreeMap::new();
        for v in values.iter().map(AsRef::as_ref).filter(|v| !v.is_empty()) {
            match v {
                "off" => off = true,
                "local" => local = Some(local.unwrap_or(false)),
                "keep" => local = Some(true),
                _ if v.starts_with("http://") || v.starts_with("https://") => {
                    if default.is_some() {
                        return Err(bad(
                            v,
                            "only one mirror for every registry; name the others REGISTRY=URL",
                        ));
                    }
                    default = Some(mirror_url(v, v)?);
                }
                _ => {
                    let Some((reg, url)) = v.split_once('=') else {
                        return Err(bad(v, "expected off, local, keep, URL or REGISTRY=URL"));
                    };
                    let name = registry_name(v, reg)?;
                    let up = Upstream::new(&name);
                    if per.insert(up, mirror_url(v, url)?).is_some() {
                        return Err(bad(v, format!("{name} is given twice")));
                    }
                }
            }
        }
        let remote = default.is_some() || !per.is_empty();
        match (off, local, remote) {
            (true, None, false) => Ok(MirrorSetting::Off),
            (false, None, false) => Ok(MirrorSetting::Local {
                keep: false,
                by_default: true,
            }),
            (false, Some(keep), false) => Ok(MirrorSetting::Local {
                keep,
                by_default: false,
            }),
            (false, None, true) => Ok(MirrorSetting::Remote { default, per }),
            _ => Err(bad(
                &values
                    .iter()
                    .map(AsRef::as_ref)
                    .collect::<Vec<_>>()
                    .join(" "),
                "off, local/keep and mirror URLs exclude each other",
            )),
        }
    }

    /// The `--mirror` values a command was given, else [`MirrorSetting::from_env`].
    pub fn from_args_or_env<S: AsRef<str>>(values: &[S]) -> Result<MirrorSetting, MirrorError> {
        if values.is_empty() {
            MirrorSetting::from_env()
        } else {
            MirrorSetting::parse(values)
        }
    }

    /// `MESHPROOF_MIRROR`, split on commas and spaces; unset or empty is the default (`local`,
    /// falling back to direct pulls).
    pub fn from_env() -> Result<MirrorSetting, MirrorError> {
        let v = std::env::var(ENV).unwrap_or_default();
        let parts: Vec<&str> = v.split([',', ' ']).filter(|s| !s.is_empty()).collect();
        MirrorSetting::parse(&parts)
    }

    /// The hosts tree every node of the run gets (`None`: nodes pull directly).
    pub fn hosts(&self) -> Result<Option<HostsDir>, MirrorError> {
        match self {
            MirrorSetting::Off => Ok(None),
            MirrorSetting::Local { keep, .. } => Err(MirrorError::Local(format!(
                "--mirror {}: the nodes' hosts tree names the mirror containers the run starts (mirror::local_hosts)",
                if *keep { "keep" } else { "local" }
            ))),
            MirrorSetting::Remote { default, per } => {
                Ok(Some(HostsDir::new(default.as_ref(), per)))
            }
        }
    }

    /// One line per mirror, for `meshproof plan` and the run log.
    pub fn describe(&self) -> Vec<String> {
        match self {
            MirrorSetting::Off => vec![
                "no registry mirror: nodes pull from each registry directly (--mirror to use one)"
                    .into(),
            ],
            MirrorSetting::Local { keep, by_default } => vec![format!(
                "a local pull-through registry container per upstream on kind's Docker network ({}), started before the cluster{}{}",
                crate::vocab::kind_network(),
                if *keep {
                    ", kept across runs (--mirror keep)"
                } else {
                    ", removed at the end of the run (--mirror local)"
                },
                if *by_default {
                    "; the default: if they cannot start, nodes pull from each registry directly (--mirror off skips them, --mirror local requires them)"
                } else {
                    ""
                }
            )],
            MirrorSetting::Remote { default, per } => {
                let mut out: Vec<String> = per
                    .iter()
                    .map(|(u, m)| format!("{} → mirror {} (then {})", u.name, m.url, u.server))
                    .collect();
                if let Some(m) = default {
                    out.push(format!(
                        "every other registry → mirror {} (then the registry itself)",
                        m.url
                    ));
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: &[&str]) -> String {
        MirrorSetting::parse(v).unwrap_err().to_string()
    }

    #[test]
    fn values_parse_into_settings() {
        // Nothing asked for: local mirrors, by default (they may fall back to direct pulls).
        assert_eq!(
            MirrorSetting::parse::<&str>(&[]).unwrap(),
            MirrorSetting::Local {
                keep: false,
                by_default: true
            }
        );
        assert_eq!(MirrorSetting::parse(&["off"]).unwrap(), MirrorSetting::Off);
        assert_eq!(
            MirrorSetting::parse(&["local"]).unwrap(),
            MirrorSetting::Local {
                keep: false,
                by_default: false
            }
        );
        assert_eq!(
            MirrorSetting::parse(&["keep"]).unwrap(),
            MirrorSetting::Local {
                keep: true,
                by_default: false
            }
        );
        let MirrorSetting::Remote { default, per } = MirrorSetting::parse(&[
            "https://mirror.corp.example/",
            "docker.io=http://hub-cache:5000",
        ])
        .unwrap() else {
            panic!("remote expected")
        };
        assert_eq!(default.unwrap().url, "https://mirror.corp.example");
        let (u, m) = per.iter().next().unwrap();
        assert_eq!(
            (u.name.as_str(), m.url.as_str()),
            ("docker.io", "http://hub-cache:5000")
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        assert!(
            err(&["ftp://x"]).contains("expected off, local"),
            "{}",
            err(&["ftp://x"])
        );
        assert!(err(&["https://user:pw@m"]).contains("credentials do not go"));
        assert!(err(&["Docker.io=http://m"]).contains("not a registry host"));
        assert!(err(&["docker.io=http://m", "docker.io=http://n"]).contains("given twice"));
        assert!(err(&["http://a", "http://b"]).contains("only one mirror"));
        assert!(err(&["local", "http://a"]).contains("exclude each other"));
        assert!(err(&["x.io:0=http://a"]).contains("not a registry host"));
        assert!(err(&["http://"]).contains("--mirror \"http://\""));
    }

    #[test]
    fn local_hosts_need_the_runs_containers() {
        let e = MirrorSetting::Local {
            keep: false,
            by_default: false,
        }
        .hosts()
        .unwrap_err();
        assert!(e.to_string().contains("mirror containers"), "{e}");
        assert_eq!(MirrorSetting::Off.hosts().unwrap(), None);
    }
}
