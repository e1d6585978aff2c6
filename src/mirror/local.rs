//! `--mirror local` / `--mirror keep`: a pull-through registry container per upstream, started
//! by the run before its kind cluster, on kind's Docker network, where every node reaches it by
//! container name (kind's own local-registry pattern: ledger CTD-9).
//!
//! Each container runs the CNCF distribution registry ([`IMAGE`], or `MESHPROOF_MIRROR_IMAGE`,
//! a test seam) on the config [`super::proxy`] writes. The config — the only place an
//! upstream's credentials go — reaches the container without a bind mount and never through an
//! argument or an environment variable: `docker create`, then `docker cp` of the 0600 file,
//! then `docker start` (CTD-11). The command is passed explicitly (`serve <config>`), so the
//! official image's entrypoint script and a plain `registry` binary as entrypoint run the same.
//!
//! - `local`: containers named per run (`meshproof-mirror-<run id>-<registry>`), registered with
//!   the reaper and written into the run record before they are created, removed at the end of
//!   the run (their access logs read first: [`super::evidence`]).
//! - `keep`: stable names (`meshproof-mirror-<registry>`), a named volume for the cache, reused
//!   by later runs when the label [`CONFIG_LABEL`] holds the same config hash; never removed by
//!   meshproof. A container of that name with another config is an error naming
//!   `docker rm -f NAME`.

use super::proxy::{Credentials, ProxyConfig};
use super::{MirrorError, MirrorHost, Upstream};
use crate::process::Cmd;
use std::path::Path;
use std::time::Duration;

/// The registry image: distribution v3.0.0, the official `registry:3` image (ledger CTD-10).
pub const IMAGE: &str = "docker.io/library/registry:3.0.0";
/// Overrides [`IMAGE`]. A test seam (the tests build a local image from Debian's
/// `docker-registry`, as no registry is reachable there); also usable for a company copy of
/// the image.
pub const IMAGE_ENV: &str = "MESHPROOF_MIRROR_IMAGE";
/// Where the config goes in the container: the official image's own config path (CTD-10).
pub const CONFIG_PATH: &str = "/etc/distribution/config.yml";
/// Where the registry keeps what it fetched (the image's `VOLUME`).
pub const STORAGE: &str = "/var/lib/registry";
/// The port the registry listens on inside the container.
pub const PORT: u16 = 5000;
/// Label holding the SHA-256 of image + config + volume: a kept container is reused only when
/// it matches.
pub const CONFIG_LABEL: &str = "io.meshproof.mirror.config-sha256";
/// Label holding the upstream registry a container mirrors.
pub const UPSTREAM_LABEL: &str = "io.meshproof.mirror.upstream";
/// Label holding the run id of a `local` container (absent on kept ones).
pub const RUN_LABEL: &str = "io.meshproof.mirror.run";
/// Every docker call's limit (`docker create` of an image not yet on the machine pulls it).
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a started registry has to say it listens.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long reading a container's log may take.
pub const LOGS_TIMEOUT: Duration = Duration::from_secs(30);

/// The registries every kind environment gets a local mirror for, besides those the suite's
/// own images name: where the installed charts and manifests pull from.
pub const DEFAULT_UPSTREAMS: [&str; 6] = [
    "docker.io",
    "ghcr.io",
    "registry.k8s.io",
    "quay.io",
    "cr.l5d.io",
    "gcr.io",
];

/// The image the mirrors run.
pub fn image() -> String {
    std::env::var(IMAGE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| IMAGE.to_string())
}

/// The upstreams to mirror: [`DEFAULT_UPSTREAMS`] and every registry `images` name, each once.
pub fn upstreams<'a>(
    images: impl IntoIterator<Item = &'a crate::images::ImageRef>,
) -> Vec<Upstream> {
    let mut all: std::collections::BTreeSet<Upstream> =
        DEFAULT_UPSTREAMS.iter().map(|n| Upstream::new(n)).collect();
    all.extend(images.into_iter().map(Upstream::of));
    all.into_iter().collect()
}

/// The container (and host) name of `upstream`'s mirror: per run for `local`, stable for
/// `keep`.
pub fn container_name(upstream: &Upstream, run_id: Option<&str>) -> String {
    match run_id {
        Some(run) => format!("meshproof-mirror-{run}-{}", upstream.slug()),
        None => format!("meshproof-mirror-{}", upstream.slug()),
    }
}

/// The named volume of a kept mirror's cache.
pub fn volume_name(upstream: &Upstream) -> String {
    format!("meshproof-mirror-{}-cache", upstream.slug())
}

/// What nodes put in their `hosts.toml` for a container.
pub fn node_url(container: &str) -> MirrorHost {
    MirrorHost {
        url: format!("http://{container}:{PORT}"),
    }
}

/// One mirror container, as planned: pure, so `meshproof plan` prints what a run does.
#[derive(Debug, Clone)]
pub struct Spec {
    pub upstream: Upstream,
    pub container: String,
    /// `Some` for `keep`: the named volume holding the cache.
    pub volume: Option<String>,
    pub run_id: Option<String>,
    pub image: String,
    pub config: ProxyConfig,
}

impl Spec {
    /// The spec of `upstream`'s mirror; credentials from the environment
    /// ([`Credentials::from_env`]). `run_id` is `None` for `keep`.
    pub fn new(upstream: &Upstream, run_id: Option<&str>) -> Result<Spec, MirrorError> {
        Ok(Spec {
            upstream: upstream.clone(),
            container: container_name(upstream, run_id),
            volume: run_id.is_none().then(|| volume_name(upstream)),
            run_id: run_id.map(str::to_string),
            image: image(),
            config: ProxyConfig {
                upstream: upstream.clone(),
                listen: format!(":{PORT}"),
                storage: STORAGE.into(),
                credentials: Credentials::from_env(upstream)?,
            },
        })
    }

    /// SHA-256 over what the container runs: image, volume and config, the password left out
    /// (labels are readable by anyone who reaches the engine, and an unsalted hash of a short
    /// password can be searched offline). A rotated token alone therefore keeps a `keep`
    /// container: `docker rm -f` it (README says so).
    pub fn config_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.image.as_bytes());
        h.update(b"\n");
        h.update(self.volume.as_deref().unwrap_or("").as_bytes());
        h.update(b"\n");
        h.update(self.config.yaml_without_secret().as_bytes());
        hex::encode(h.finalize())
    }

    /// `docker create …` (no secret in it: the config is copied in afterwards).
    pub fn create_cmd(&self) -> Cmd {
        let mut c = Cmd::new("docker")
            .args(["create", "--name", &self.container])
            .args(["--label", &format!("{CONFIG_LABEL}={}", self.config_hash())])
            .args([
                "--label",
                &format!("{UPSTREAM_LABEL}={}", self.upstream.name),
            ]);
        if let Some(run) = &self.run_id {
            c = c.args(["--label", &format!("{RUN_LABEL}={run}")]);
        }
        if let Some(v) = &self.volume {
            c = c.args(["--volume", &format!("{v}:{STORAGE}")]);
        }
        c.args([self.image.as_str(), "serve", CONFIG_PATH])
            .timeout(DOCKER_TIMEOUT)
    }

    /// `docker cp FILE NAME:CONFIG_PATH`.
    pub fn copy_cmd(&self, file: &Path) -> Cmd {
        Cmd::new("docker")
            .arg("cp")
            .arg(file)
            .arg(format!("{}:{CONFIG_PATH}", self.container))
            .timeout(DOCKER_TIMEOUT)
    }

    /// One line for `meshproof plan` and the run log.
    pub fn describe(&self, network: &str) -> String {
        format!(
            "{} → local mirror container {} (image {}, on Docker network {network}, nodes use {}; then {}{}{})",
            self.upstream.name,
            self.container,
            self.image,
            node_url(&self.container).url,
            self.upstream.server,
            match &self.volume {
                Some(v) => format!("; kept across runs, cache in volume {v}"),
                None => "; removed at the end of the run".into(),
            },
            if self.config.credentials.is_some() {
                "; with the upstream login from the environment"
            } else {
                ""
            }
        )
    }
}

/// A mirror container that runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Running {
    pub upstream: Upstream,
    pub container: String,
    /// Kept across runs (never removed by meshproof).
    pub kept: bool,
    /// Found running with the same config, not started by this run.
    pub reused: bool,
}

fn docker(args: &[&str]) -> Cmd {
    Cmd::new("docker").args(args).timeout(DOCKER_TIMEOUT)
}

fn failed(container: &str, what: &str, e: impl std::fmt::Display) -> MirrorError {
    MirrorError::Local(format!("mirror container {container}: {what}: {e}"))
}

/// `(running, config label)` of a container, `None` when it does not exist.
async fn inspect(name: &str) -> Result<Option<(bool, String)>, MirrorError> {
    let fmt = format!("{{{{.State.Running}}}} {{{{index .Config.Labels \"{CONFIG_LABEL}\"}}}}");
    let out = docker(&["container", "inspect", "--format", &fmt, name])
        .run_unchecked()
        .await
        .map_err(|e| failed(name, "docker container inspect", e))?;
    if out.status != 0 {
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        if err.contains("no such") {
            return Ok(None);
        }
        return Err(failed(name, "docker container inspect", err.trim()));
    }
    let text = out.stdout_str();
    let mut words = text.split_whitespace();
    let running = words.next() == Some("true");
    let label = words.next().unwrap_or("").to_string();
    Ok(Some((running, label)))
}

/// Starts `spec`'s container (or, for `keep`, reuses a running one with the same config), and
/// connects it to `network` when that network exists. `scratch` is a private directory for the
/// 0600 config file on its way into the container.
///
/// A `local` container is registered with the reaper (and so in the run record) *before* it is
/// created: a run killed at any point leaves nothing `meshproof gc` does not know.
pub async fn start(spec: &Spec, network: &str, scratch: &Path) -> Result<Running, MirrorError> {
    let name = spec.container.as_str();
    let kept = spec.run_id.is_none();
    if kept {
        match inspect(name).await? {
            Some((_, label)) if label != spec.config_hash() => {
                return Err(MirrorError::Local(format!(
                    "a container named {name} exists with another configuration (image, volume, upstream or login changed); remove it with `docker rm -f {name}` and run again"
                )))
            }
            Some((running, _)) => {
                if !running {
                    docker(&["start", name])
                        .run()
                        .await
                        .map_err(|e| failed(name, "docker start", e))?;
                    wait_ready(name).await?;
                }
                connect(name, network).await?;
                return Ok(Running {
                    upstream: spec.upstream.clone(),
                    container: name.to_string(),
                    kept,
                    reused: running,
                });
            }
            None => {}
        }
    } else {
        crate::reaper::add(crate::reaper::Entry::Container {
            name: name.to_string(),
        });
    }
    let file = scratch.join(format!("{}.yml", spec.upstream.slug()));
    spec.config.write(&file)?;
    let result = async {
        spec.create_cmd()
            .run()
            .await
            .map_err(|e| failed(name, "docker create", e))?;
        spec.copy_cmd(&file)
            .run()
            .await
            .map_err(|e| failed(name, "docker cp of its config", e))?;
        docker(&["start", name])
            .run()
            .await
            .map_err(|e| failed(name, "docker start", e))?;
        wait_ready(name).await?;
        connect(name, network).await
    }
    .await;
    // The copy inside the container is the one that counts; the file on disk goes at once.
    let _ = std::fs::remove_file(&file);
    if let Err(e) = result {
        if !kept {
            let _ = remove(name).await;
        }
        return Err(e);
    }
    Ok(Running {
        upstream: spec.upstream.clone(),
        container: name.to_string(),
        kept,
        reused: false,
    })
}

/// Waits until the registry logs that it listens (distribution's `listening on`, CTD-10), or
/// fails with the end of its log when it exits or stays silent.
async fn wait_ready(name: &str) -> Result<(), MirrorError> {
    let end = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        let log = logs(name).await.unwrap_or_default();
        if log.contains("listening on") {
            return Ok(());
        }
        if let Some((false, _)) = inspect(name).await? {
            return Err(failed(name, "the registry exited", last_lines(&log)));
        }
        if tokio::time::Instant::now() >= end {
            return Err(failed(
                name,
                &format!(
                    "the registry did not say it listens within {}",
                    humantime::format_duration(READY_TIMEOUT)
                ),
                last_lines(&log),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn last_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// Whether `network` exists.
pub async fn network_exists(network: &str) -> Result<bool, MirrorError> {
    let out = docker(&["network", "inspect", "--format", "{{.Name}}", network])
        .run_unchecked()
        .await
        .map_err(|e| failed(network, "docker network inspect", e))?;
    Ok(out.status == 0)
}

/// Connects the container to `network` unless it is connected already or the network does not
/// exist yet (kind creates it with the first cluster: call again after `kind create`, as kind's
/// own local-registry script does, CTD-9).
pub async fn connect(name: &str, network: &str) -> Result<bool, MirrorError> {
    if !network_exists(network).await? {
        return Ok(false);
    }
    let fmt = format!("{{{{json (index .NetworkSettings.Networks \"{network}\")}}}}");
    let out = docker(&["container", "inspect", "--format", &fmt, name])
        .run()
        .await
        .map_err(|e| failed(name, "docker container inspect", e))?;
    if out.stdout_str().trim() != "null" {
        return Ok(true);
    }
    docker(&["network", "connect", network, name])
        .run()
        .await
        .map_err(|e| failed(name, &format!("docker network connect {network}"), e))?;
    Ok(true)
}

/// The container's log (stdout and stderr: the registry writes its access log to stdout and
/// its own log to stderr), within [`LOGS_TIMEOUT`].
pub async fn logs(name: &str) -> Result<String, MirrorError> {
    logs_since(name, "").await
}

/// [`logs`] from `since` on (RFC 3339; empty: the whole log).
pub async fn logs_since(name: &str, since: &str) -> Result<String, MirrorError> {
    let mut args = vec!["logs"];
    if !since.is_empty() {
        args.extend(["--since", since]);
    }
    args.push(name);
    let out = Cmd::new("docker")
        .args(args)
        .timeout(LOGS_TIMEOUT)
        .during_shutdown()
        .run()
        .await
        .map_err(|e| failed(name, "docker logs", e))?;
    let mut text = out.stdout_str();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(text)
}

/// `docker rm -f -v NAME` (the anonymous volume of the image's `VOLUME` goes with it), then the
/// reaper forgets it. A container that is already gone counts as removed.
pub async fn remove(name: &str) -> Result<(), MirrorError> {
    let out = docker(&["rm", "-f", "-v", name])
        .during_shutdown()
        .run_unchecked()
        .await
        .map_err(|e| failed(name, "docker rm -f", e))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status != 0 && !err.to_lowercase().contains("no such container") {
        return Err(failed(name, "docker rm -f", err.trim()));
    }
    crate::reaper::remove(crate::reaper::Entry::Container {
        name: name.to_string(),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_per_run_for_local_and_stable_for_keep() {
        let u = Upstream::new("registry.k8s.io");
        assert_eq!(
            container_name(&u, Some("ab12cd")),
            "meshproof-mirror-ab12cd-registry-k8s-io"
        );
        assert_eq!(container_name(&u, None), "meshproof-mirror-registry-k8s-io");
        assert_eq!(
            node_url("meshproof-mirror-docker-io").url,
            "http://meshproof-mirror-docker-io:5000"
        );
    }

    #[test]
    fn the_create_command_carries_labels_and_the_explicit_command_but_no_secret() {
        let mut s = Spec::new(&Upstream::new("docker.io"), Some("ab12cd")).unwrap();
        s.config.credentials = Some(Credentials::new("me".into(), "dckr_pat_SECRET".into()));
        let argv = s.create_cmd().argv();
        let line = argv.join(" ");
        assert!(!line.contains("SECRET"), "{line}");
        assert!(line.contains(&format!("{RUN_LABEL}=ab12cd")), "{line}");
        assert!(line.ends_with(&format!("serve {CONFIG_PATH}")), "{line}");
        assert!(
            !line.contains("--volume"),
            "a per-run mirror has no named volume: {line}"
        );
        let kept = Spec::new(&Upstream::new("docker.io"), None).unwrap();
        let line = kept.create_cmd().argv().join(" ");
        assert!(
            line.contains("--volume meshproof-mirror-docker-io-cache:/var/lib/registry"),
            "{line}"
        );
        assert!(!line.contains(RUN_LABEL), "{line}");
    }

    #[test]
    fn the_config_hash_changes_with_the_config() {
        let a = Spec::new(&Upstream::new("docker.io"), None).unwrap();
        let mut b = a.clone();
        assert_eq!(a.config_hash(), b.config_hash());
        b.config.credentials = Some(Credentials::new("me".into(), "t".into()));
        assert_ne!(a.config_hash(), b.config_hash());
        // The password is not hashed: a label must not let anyone search for it offline.
        let mut b2 = b.clone();
        b2.config.credentials = Some(Credentials::new("me".into(), "other-token".into()));
        assert_eq!(b.config_hash(), b2.config_hash());
        b2.config.credentials = Some(Credentials::new("you".into(), "t".into()));
        assert_ne!(b.config_hash(), b2.config_hash());
        let mut c = a.clone();
        c.image = "other:1".into();
        assert_ne!(a.config_hash(), c.config_hash());
    }

    #[test]
    fn upstreams_are_the_defaults_and_the_suites_own() {
        let imgs = [crate::images::ImageRef::parse("127.0.0.1:5001/x/y:1").unwrap()];
        let names: Vec<String> = upstreams(&imgs).into_iter().map(|u| u.name).collect();
        assert!(names.contains(&"127.0.0.1:5001".to_string()), "{names:?}");
        assert!(names.contains(&"cr.l5d.io".to_string()), "{names:?}");
        assert_eq!(names.len(), DEFAULT_UPSTREAMS.len() + 1);
    }
}
