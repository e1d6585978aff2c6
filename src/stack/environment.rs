//! Provisioning one environment — cluster, then every component — and tearing it down.
//!
//! Order matters for cleanup: the teardown guard is armed *before* `kind create cluster` runs,
//! so an interrupted or failed create is still deleted. On failure the kind logs are exported to
//! the run's artifacts dir first, then the cluster is deleted.

use super::actions::{Action, Exec, Installed};
use super::cluster::api::KubeTarget;
use super::cluster::guard::{Teardown, TeardownGuard, TeardownHandle};
use super::cluster::uninstall::{Owned, OwnedList};
use super::cluster::{existing, kind::KindCluster};
use super::footprint;
use super::install::{self, linkerd, InstallCtx, Secrets};
use super::names::{self, RunId};
use super::{manifests, Log, RunDirs, StackError, StackOptions};
use crate::process::Redactor;
use crate::scenario::{ClusterSpec, Edition, EnvironmentSpec, LinkerdInstall, MeshSpec, Suite};
use std::path::{Path, PathBuf};

/// The kind release tools.yaml pins (`None` only if the embedded table does not parse, which
/// its own tests rule out).
pub fn kind_pin() -> Option<String> {
    crate::toolchain::table::Table::committed()
        .ok()?
        .version("kind")
        .map(str::to_string)
}

/// How long a new kind cluster's nodes may take to be Ready after `kind create` returned.
pub const NODES_READY: std::time::Duration = std::time::Duration::from_secs(180);

/// Where an environment's cluster is, decided before anything runs.
#[derive(Debug, Clone)]
pub enum ClusterLayout {
    Kind(KindCluster),
    Existing(KubeTarget),
}

impl ClusterLayout {
    pub fn target(&self) -> KubeTarget {
        match self {
            ClusterLayout::Kind(k) => KubeTarget {
                kubeconfig: k.kubeconfig.clone(),
                context: None,
            },
            ClusterLayout::Existing(t) => t.clone(),
        }
    }
}

/// The environment's private directory and cluster location.
pub fn layout(
    env: &EnvironmentSpec,
    key: &str,
    run: &RunId,
    temp_root: &Path,
) -> Result<(PathBuf, ClusterLayout), StackError> {
    let work_dir = temp_root.join(names::sanitize(key));
    let cluster = match &env.cluster {
        ClusterSpec::Kind { .. } => {
            ClusterLayout::Kind(KindCluster::new(names::cluster_name(key, run), &work_dir))
        }
        ClusterSpec::Existing {
            kubeconfig,
            context,
            ..
        } => ClusterLayout::Existing(
            existing::target(kubeconfig.as_ref(), context.as_ref()).ok_or_else(|| {
                StackError::Invalid(
                    "provider existing: no kubeconfig (set cluster.kubeconfig, KUBECONFIG or HOME)"
                        .into(),
                )
            })?,
        ),
    };
    Ok((work_dir, cluster))
}

/// A provisioned, installed environment. Dropping it tears it down.
pub struct Environment {
    pub key: String,
    pub target: KubeTarget,
    /// The kind cluster's name (`None` for an existing cluster).
    pub cluster_name: Option<String>,
    pub installed: Vec<Installed>,
    /// Secret values of this environment, for redacting anything printed about it.
    pub redactor: Redactor,
    kind: Option<KindCluster>,
    artifacts: PathBuf,
    log: Log,
    guard: TeardownGuard,
}

impl Environment {
    /// Exports kind's logs to the artifacts dir (after a failure), then tears down.
    pub fn teardown(&self, export_logs: bool) -> Result<(), String> {
        if export_logs && !crate::process::shutting_down() {
            if let Some(k) = &self.kind {
                export_logs_blocking(k, &self.artifacts, &self.log);
            }
        }
        self.guard.teardown()
    }

    /// Tears down (without exporting logs) as a future a deadline can cut off: see
    /// [`TeardownHandle::teardown`].
    pub fn teardown_handle(&self) -> TeardownHandle {
        self.guard.handle()
    }

    /// The environment's artifacts directory (`<artifacts root>/<run id>/<environment>`).
    pub fn artifacts(&self) -> &Path {
        &self.artifacts
    }

    /// What a user runs to remove the environment by hand.
    pub fn manual_teardown(&self) -> String {
        self.guard.manual()
    }
}

fn export_logs_blocking(k: &KindCluster, dir: &Path, log: &Log) {
    let cmd = k.export_logs_cmd(&dir.join("kind-logs"));
    let log2 = log.clone();
    let dir = dir.to_path_buf();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        if let Err(e) = crate::private_fs::private_dir(&dir) {
            log2(&format!("cannot create {}: {e}", dir.display()));
            return None;
        }
        log2(&format!("$ {}", cmd.display()));
        if let Err(e) = rt.block_on(cmd.run()) {
            log2(&format!("exporting kind logs failed: {e}"));
        }
        Some(())
    })
    .join();
}

/// Creates (or attaches to) the environment's cluster and installs every component.
pub async fn up(
    suite: &Suite,
    env: &EnvironmentSpec,
    key: &str,
    opts: &StackOptions,
    run: &RunDirs,
) -> Result<Environment, StackError> {
    let prefix = key.to_string();
    let base_log = opts.log.clone();
    let log: Log = std::sync::Arc::new(move |l: &str| base_log(&format!("[{prefix}] {l}")));
    let (work_dir, cluster) = layout(env, key, &run.run_id, run.temp())?;
    crate::private_fs::private_dir(&work_dir).map_err(|source| StackError::Io {
        what: format!("creating {}", work_dir.display()),
        source,
    })?;
    let artifacts = run.env_artifacts(key);

    // Secrets first: everything printed from here on is redacted.
    let mut redactor = Redactor::default();
    let password = Secrets::generate_password();
    redactor.add(&password);
    let license = match &suite.openfaas.edition {
        Edition::Ce => None,
        Edition::Pro { license_file } => {
            let path = crate::preflight::license_path(license_file.as_deref())
                .map_err(StackError::Invalid)?;
            let text = std::fs::read_to_string(&path).map_err(|source| StackError::Io {
                what: format!("reading the OpenFaaS Pro license {}", path.display()),
                source,
            })?;
            redactor.add(text.trim());
            Some(text)
        }
    };
    if let MeshSpec::Linkerd {
        install: LinkerdInstall::Helm,
        ..
    } = &env.mesh
    {
        let id = linkerd::generate_identity().map_err(|e| StackError::Invalid(e.to_string()))?;
        redactor.add(id.issuer_key_pem.trim());
        linkerd::write_identity(&id, &linkerd::CertFiles::in_dir(&work_dir))
            .map_err(|e| StackError::Invalid(e.to_string()))?;
    }
    let secrets = Secrets {
        basic_auth_password: password,
        license,
    };
    let target = cluster.target();
    let ctx = InstallCtx {
        suite,
        env,
        target: &target,
        run_id: run.run_id.as_str(),
        work_dir: &work_dir,
        secrets: &secrets,
        gateway_api_base: &opts.gateway_api_base,
    };
    let plans = install::plans(&ctx);
    let exec = Exec {
        api: opts.api.as_ref(),
        target: &target,
        run_id: run.run_id.as_str(),
        log: &log,
        redactor: &redactor,
    };

    // Fail fast on a wrong CLI version, before a cluster exists: kind's own first (the node
    // images were built by the pinned release), then each component's CLI.
    if let (ClusterLayout::Kind(_), Some(pinned)) = (&cluster, kind_pin()) {
        let check = Action::CheckVersion {
            cmd: super::cluster::kind::KindCluster::version_cmd(),
            pinned,
        };
        exec.action("kind", &check).await?;
    }
    for p in &plans {
        for a in p
            .actions
            .iter()
            .filter(|a| matches!(a, Action::CheckVersion { .. }))
        {
            exec.action(p.component, a).await?;
        }
    }

    // On an existing cluster: components found there and reused, and what the run installs
    // (recorded before each install starts, so a half-done one is uninstalled too).
    let mut reused = std::collections::BTreeSet::new();
    let owned = OwnedList::default();
    let (guard, kind) = match &cluster {
        ClusterLayout::Kind(k) => {
            let ClusterSpec::Kind {
                node_image,
                host_ports,
            } = &env.cluster
            else {
                return Err(StackError::Invalid(
                    "kind layout without a kind spec".into(),
                ));
            };
            // The mirror is asked before anything exists: a silent one would hang every pull.
            let setting = opts
                .mirror
                .as_ref()
                .map_err(|e| StackError::Invalid(e.clone()))?;
            let mirror = match (setting, &run.mirrors) {
                // Local mirrors: one container per upstream, started (or found) before the
                // cluster, named in every node's hosts.toml. The default ones (nobody asked)
                // that cannot start leave the nodes pulling directly, with the reason logged;
                // asked for by name, they stop the run.
                (crate::mirror::MirrorSetting::Local { by_default, .. }, Some(pool)) => {
                    let upstreams =
                        crate::mirror::local::upstreams(suite.images.iter().map(|(_, i)| i));
                    let prepared = match pool.ensure(&upstreams, &*log).await {
                        Ok(containers) => crate::mirror::prepare_node_local(&containers, &work_dir),
                        Err(e) => Err(e),
                    };
                    match prepared {
                        Ok(m) => Some(m),
                        Err(e) if *by_default => {
                            log(&format!(
                                "registry mirror: the default local mirrors could not start ({e}); the nodes pull from each registry directly (--mirror off skips the attempt, --mirror local makes it required)"
                            ));
                            None
                        }
                        Err(e) => return Err(StackError::Invalid(e.to_string())),
                    }
                }
                _ => crate::mirror::prepare_node(setting, &work_dir, crate::mirror::probe::TIMEOUT)
                    .await
                    .map_err(|e| StackError::Invalid(e.to_string()))?,
            };
            if mirror.is_some() && run.mirrors.is_none() {
                for line in setting.describe() {
                    log(&format!("registry mirror: {line}"));
                }
            }
            let guard =
                TeardownGuard::new(Teardown::Kind(k.clone()), opts.keep_cluster, log.clone());
            crate::private_fs::write_private(
                &k.config,
                manifests::kind_config(node_image, *host_ports, mirror.as_ref()).as_bytes(),
            )
            .map_err(|source| StackError::Io {
                what: format!("writing {}", k.config.display()),
                source,
            })?;
            let cmd = k.create_cmd();
            log(&format!("$ {}", cmd.display()));
            // What the kind cluster is once `kind create` ran: what a failure after it tears down.
            let made = |redactor, artifacts, guard| Environment {
                key: key.to_string(),
                target: target.clone(),
                cluster_name: Some(k.name.clone()),
                installed: vec![],
                redactor,
                kind: Some(k.clone()),
                artifacts,
                log: log.clone(),
                guard,
            };
            if let Err(e) = cmd.run().await {
                let env = made(redactor, artifacts, guard);
                // kind refuses a name that is taken: that cluster is not this run's, and must
                // not be deleted (ledger KIND-4).
                if e.to_string()
                    .contains("node(s) already exist for a cluster with the name")
                {
                    env.guard.disown();
                    return Err(StackError::Invalid(format!(
                        "{e}\na kind cluster named {} exists already and was not created by this run: meshproof leaves it alone; delete it yourself (`kind delete cluster --name {}`) if it is a leftover",
                        k.name, k.name
                    )));
                }
                let teardown = env.teardown(true);
                return Err(port_hint(e, *host_ports).after_teardown(teardown));
            }
            // kind writes it 0600 already; make sure, since it holds cluster-admin credentials.
            set_private(&k.kubeconfig)?;
            // The first cluster made kind's network: the mirrors join it now, before any pod
            // is scheduled (kind's own local-registry script connects after create: CTD-9).
            let mirror_by_default = matches!(
                setting,
                crate::mirror::MirrorSetting::Local {
                    by_default: true,
                    ..
                }
            );
            if let (Some(pool), Some(_)) = (&run.mirrors, &mirror) {
                if let Err(e) = pool.connect_all().await {
                    if !mirror_by_default {
                        let teardown = made(redactor, artifacts, guard).teardown(true);
                        return Err(StackError::Invalid(e.to_string()).after_teardown(teardown));
                    }
                    // A node's containerd falls back to the registry when a mirror's name does
                    // not resolve (CTD-5): the default mirrors only cost the attempt.
                    log(&format!(
                        "registry mirror: the default local mirrors could not join kind's network ({e}); the nodes fall back to each registry directly"
                    ));
                }
            }
            // `kind create --wait` only warns when the control plane is not Ready (ledger
            // KIND-3): a NotReady node would surface minutes later as an install timeout.
            if let Err(e) = opts.api.nodes_ready(&target, NODES_READY).await {
                let teardown = made(redactor, artifacts, guard).teardown(true);
                return Err(StackError::Api {
                    what: format!("kind cluster {}: the node is not Ready", k.name),
                    source: e,
                }
                .after_teardown(teardown));
            }
            (guard, Some(k.clone()))
        }
        ClusterLayout::Existing(t) => {
            // Before anything changes: components already there are refused, or used as found
            // when the suite says so (see `footprint`).
            let ClusterSpec::Existing { reuse, .. } = &env.cluster else {
                return Err(StackError::Invalid(
                    "existing layout without an existing spec".into(),
                ));
            };
            let found = footprint::survey(opts.api.as_ref(), t, &plans).await?;
            reused = footprint::decide(&found, reuse, t)?;
            let guard = TeardownGuard::new(
                Teardown::Existing {
                    target: t.clone(),
                    run_id: run.run_id.to_string(),
                    api: opts.api.clone(),
                    owned: owned.clone(),
                },
                opts.keep_cluster,
                log.clone(),
            );
            (guard, None)
        }
    };

    let mut environment = Environment {
        key: key.to_string(),
        target: target.clone(),
        cluster_name: kind.as_ref().map(|k| k.name.clone()),
        installed: vec![],
        redactor: redactor.clone(),
        kind,
        artifacts,
        log: log.clone(),
        guard,
    };
    for p in &plans {
        if reused.contains(&p.id) {
            log(&format!(
                "{} is on the cluster already and `cluster.reuse` lists {}: used as found (not installed, not changed, not removed)",
                p.component,
                p.id.key()
            ));
            environment.installed.push(Installed {
                component: p.component.to_string(),
                version: p.version.clone(),
                reused: true,
            });
            continue;
        }
        if matches!(cluster, ClusterLayout::Existing(_)) {
            owned.record(Owned {
                component: p.component.to_string(),
                steps: p.uninstall.clone(),
            });
        }
        let mut p2 = p.clone();
        p2.notes.clear();
        p2.actions
            .retain(|a| !matches!(a, Action::CheckVersion { .. }));
        match exec.component(&p2).await {
            Ok(i) => environment.installed.push(i),
            Err(e) => {
                log(&format!(
                    "installing {} failed: {}",
                    p.component,
                    redactor.apply(&e.to_string())
                ));
                let teardown = environment.teardown(true);
                return Err(e.after_teardown(teardown));
            }
        }
    }
    Ok(environment)
}

/// kind's error for a taken host port is a Docker message; say what to do about it.
fn port_hint(e: crate::process::ProcessError, ports: crate::scenario::HostPorts) -> StackError {
    let text = e.to_string();
    if text.contains("port is already allocated") || text.contains("address already in use") {
        StackError::Invalid(format!(
            "{text}\nhint: host port {} or {} on 127.0.0.1 is taken (another kind cluster? `kind get clusters`); \
             free it or change the suite's cluster.hostPorts",
            ports.http, ports.https
        ))
    } else {
        e.into()
    }
}

fn set_private(path: &Path) -> Result<(), StackError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        StackError::Io {
            what: format!("kind wrote no kubeconfig at {}", path.display()),
            source,
        }
    })
}
