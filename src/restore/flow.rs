//! The restore scenario, phase by phase.
//!
//! [`prepare`] puts the desired state in git and brings the *first* cluster to it; [`run`] then
//! records what runs, backs up the sealing keys, destroys the cluster, rebuilds it, runs the
//! negative control, restores the keys, reconciles and verifies — timing each phase on a
//! [`Clock`] and wrapping each in a timeout. [`execute`] does both and always returns a verdict.
//!
//! The RTO runs from the start of destruction to the end of the last check, less the negative
//! control's deliberate part ([`ControlTimeline`]): Flux's clone and apply inside the control
//! are real recovery work and count.

use crate::check::restore::inventory::{Inventory, SecretRef, ValueDigest};
use crate::check::restore::{
    decide, deployment_available, judge_control, kustomization_ready, sealed_secret_state,
    ControlJudgement, ControlTimeline, Phase, PhaseRecord, Readiness, RestoreEvidence, UnsealState,
};
use crate::check::Verdict;
use crate::private_fs::temp_private_dir;
use crate::restore::desired::{self, FunctionFormat, FunctionSpec, PlainSecret, SecretValue};
use crate::restore::flux::{self, FluxSpec};
use crate::restore::keys::{KeyBackup, KEY_LABEL};
use crate::restore::ops::{Clock, ClusterOps, Lifecycle, OpsError, ResourceKind};
use crate::restore::repo::{FluxRevision, GitRepo};
use crate::restore::seal::{self, Controller};
use crate::restore::serve::GitHttpServer;
use crate::restore::wait::{self, Poll};
use crate::scenario::RestoreCheck;
use crate::vocab::FUNCTIONS_NAMESPACE;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// The programs the flow runs: names looked up on `PATH`, or paths (tests point them at
/// doubles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub git: String,
    pub kubeseal: String,
    pub flux: String,
}

impl Default for Tools {
    fn default() -> Self {
        Tools {
            git: "git".into(),
            kubeseal: "kubeseal".into(),
            flux: "flux".into(),
        }
    }
}

/// A deadline for every phase and every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Each external command (git, kubeseal, flux reconcile …).
    pub command: Duration,
    /// Preparing the first cluster (seal, commit, bootstrap Flux, converge).
    pub prepare: Duration,
    pub record: Duration,
    pub destroy: Duration,
    /// A new cluster and the whole stack on it.
    pub rebuild: Duration,
    pub bootstrap: Duration,
    /// Until every SealedSecret has failed for want of the key.
    pub control: Duration,
    /// After that, how long meshproof keeps watching that nothing unseals late (left out of
    /// the RTO).
    pub control_hold: Duration,
    pub key_restore: Duration,
    pub reconcile: Duration,
    /// Waiting for the Secrets, then restarting the functions that started without them.
    pub restart: Duration,
    pub verify: Duration,
    /// Between two observations of a wait.
    pub poll: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let m = |n: u64| Duration::from_secs(60 * n);
        Timeouts {
            command: m(3),
            prepare: m(10),
            record: m(2),
            destroy: m(5),
            rebuild: m(30),
            bootstrap: m(5),
            control: m(5),
            control_hold: Duration::from_secs(10),
            key_restore: m(5),
            reconcile: m(10),
            restart: m(5),
            verify: m(10),
            poll: Duration::from_secs(2),
        }
    }
}

/// Everything the restore scenario needs to know.
#[derive(Debug, Clone)]
pub struct RestoreSpec {
    /// Functions, SealedSecrets and recovery budget, from the scenario.
    pub check: RestoreCheck,
    /// Image of the scenario's functions.
    pub image: String,
    /// `FunctionCr` for OpenFaaS Pro, `Deployment` for CE (see [`crate::restore::desired`]).
    pub format: FunctionFormat,
    pub controller: Controller,
    pub flux: FluxSpec,
    /// Where the git server listens. For kind: the `kind` docker network's gateway address
    /// (`docker network inspect kind`), port 0.
    pub serve_bind: SocketAddr,
    /// The host name/address the cluster's pods use to reach `serve_bind` (usually its IP).
    pub serve_host: String,
    /// The kind node that must reach the repository before Flux is bootstrapped, and its
    /// Docker network (`None` in tests without containers).
    pub probe: Option<NodeProbe>,
    pub timeouts: Timeouts,
    pub tools: Tools,
}

impl RestoreSpec {
    /// The spec for `check` in an environment of `suite`: the pinned Flux version from the
    /// suite's components, the function format from its OpenFaaS edition, default controller,
    /// timeouts and tools. `image` is the scenario's `image` variable.
    pub fn for_suite(
        suite: &crate::scenario::Suite,
        check: &RestoreCheck,
        image: impl Into<String>,
        serve_bind: SocketAddr,
        serve_host: impl Into<String>,
    ) -> Result<RestoreSpec, String> {
        let flux_version = suite.components.flux.as_ref().ok_or_else(|| {
            format!(
                "suite {} has no flux component; the restore check needs one",
                suite.name
            )
        })?;
        Ok(RestoreSpec {
            check: check.clone(),
            image: image.into(),
            format: match suite.openfaas.edition {
                crate::scenario::Edition::Ce => FunctionFormat::Deployment,
                crate::scenario::Edition::Pro { .. } => FunctionFormat::FunctionCr,
            },
            controller: Controller::default(),
            flux: FluxSpec::new(flux_version.as_str()),
            serve_bind,
            serve_host: serve_host.into(),
            probe: None,
            timeouts: Timeouts::default(),
            tools: Tools::default(),
        })
    }

    fn secret_refs(&self) -> Vec<SecretRef> {
        self.check
            .sealed_secrets
            .iter()
            .map(|(ns, n)| SecretRef::new(ns.clone(), n.clone()))
            .collect()
    }

    fn function_names(&self) -> Vec<String> {
        self.check.functions.iter().map(|f| f.to_string()).collect()
    }

    fn namespaces(&self) -> BTreeSet<String> {
        self.secret_refs()
            .into_iter()
            .map(|s| s.namespace)
            .collect()
    }
}

/// Where the repository is proved reachable from: a kind node container, and how the nodes
/// reach this machine (for the hint when they do not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProbe {
    pub node: String,
    pub at: crate::restore::reach::ServeAt,
}

/// Why preparing the first cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("sealing: {0}")]
    Seal(#[from] seal::SealError),
    #[error("git repository: {0}")]
    Repo(#[from] crate::restore::repo::RepoError),
    #[error("git server: {0}")]
    Serve(std::io::Error),
    #[error("temp dir: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Step(String),
    #[error("timed out after {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
}

/// The controller certificate the secrets were sealed with, in the run's private dir.
const CERT_FILE: &str = "sealing-cert.pem";

/// The state in git, the server publishing it, and the run's private dir (key backup, cert).
pub struct Prepared {
    pub repo: GitRepo,
    pub server: GitHttpServer,
    pub revision: FluxRevision,
    /// The URL the cluster fetches the repository from.
    pub url: String,
    /// Digests of the values meshproof generated and sealed: the Secrets in the first cluster
    /// must match them, or the inventory is not of the committed state.
    pub sealed_digests: BTreeMap<SecretRef, BTreeMap<String, ValueDigest>>,
    workdir: tempfile::TempDir,
}

impl Prepared {
    pub fn workdir(&self) -> &std::path::Path {
        self.workdir.path()
    }
}

/// Seals the scenario's secrets for the first cluster's controller, commits the desired state,
/// serves it, bootstraps Flux and waits until the cluster runs it.
pub async fn prepare<C: ClusterOps>(
    spec: &RestoreSpec,
    cluster: &C,
) -> Result<Prepared, PrepareError> {
    match tokio::time::timeout(spec.timeouts.prepare, prepare_inner(spec, cluster)).await {
        Ok(r) => r,
        Err(_) => Err(PrepareError::TimedOut(spec.timeouts.prepare)),
    }
}

async fn prepare_inner<C: ClusterOps>(
    spec: &RestoreSpec,
    cluster: &C,
) -> Result<Prepared, PrepareError> {
    let t = &spec.timeouts;
    let workdir = temp_private_dir("meshproof-restore-")?;
    let cert_pem = seal::fetch_cert(
        &spec.tools.kubeseal,
        cluster.kubeconfig(),
        &spec.controller,
        t.command,
    )
    .await?;
    let cert = workdir.path().join(CERT_FILE);
    std::fs::write(&cert, cert_pem)?;

    let mut repo = GitRepo::init(&spec.tools.git, t.command).await?;
    let mut resources = Vec::new();
    let mut sealed_digests = BTreeMap::new();
    let fn_secrets: Vec<String> = spec
        .secret_refs()
        .into_iter()
        .filter(|s| s.namespace == FUNCTIONS_NAMESPACE)
        .map(|s| s.name)
        .collect();
    for name in spec.function_names() {
        let f = FunctionSpec::echo(&name, &spec.image, fn_secrets.clone());
        let path = format!("functions/{name}.yaml");
        repo.write_file(&path, &desired::function_manifests(&f, spec.format))?;
        resources.push(path);
    }
    for sref in spec.secret_refs() {
        // A fresh random value per run: if it comes back, it came from the sealed copy in git.
        let plain = PlainSecret {
            namespace: sref.namespace.clone(),
            name: sref.name.clone(),
            data: BTreeMap::from([("token".to_string(), SecretValue::random())]),
        };
        let sealed = seal::seal(
            &spec.tools.kubeseal,
            &cert,
            &spec.controller,
            &plain,
            workdir.path(),
            t.command,
        )
        .await?;
        sealed_digests.insert(
            sref.clone(),
            plain
                .data
                .iter()
                .map(|(k, v)| (k.clone(), ValueDigest::of(v.expose())))
                .collect(),
        );
        let path = format!("secrets/{}-{}.sealedsecret.yaml", sref.namespace, sref.name);
        repo.write_file(&path, &sealed)?;
        resources.push(path);
    }
    repo.write_file("kustomization.yaml", &desired::kustomization(&resources))?;
    repo.commit("meshproof: desired state for the restore scenario")
        .await?;
    repo.publish("desired").await?;
    let revision = repo.head_revision()?;
    let server = GitHttpServer::start(
        spec.serve_bind,
        repo.served_root(),
        &spec.tools.git,
        t.command,
    )
    .await
    .map_err(PrepareError::Serve)?;
    let url = server.url(&spec.serve_host, "desired");

    bootstrap_flux(spec, cluster, &url)
        .await
        .map_err(PrepareError::Step)?;
    reconcile(spec, cluster).await.map_err(PrepareError::Step)?;
    let at = wait_kustomization(spec, cluster, t.verify)
        .await
        .map_err(PrepareError::Step)?;
    if at != revision.as_str() {
        return Err(PrepareError::Step(format!(
            "Flux applied {at}, not the committed {revision}"
        )));
    }
    converged(spec, cluster, t.verify)
        .await
        .map_err(PrepareError::Step)?;
    Ok(Prepared {
        repo,
        server,
        revision,
        url,
        sealed_digests,
        workdir,
    })
}

/// `flux install`, then the GitRepository and Kustomization — after proving a node reaches the
/// repository (a firewall would otherwise surface as a GitRepository stuck minutes later).
async fn bootstrap_flux<C: ClusterOps>(
    spec: &RestoreSpec,
    cluster: &C,
    url: &str,
) -> Result<(), String> {
    if let Some(p) = &spec.probe {
        crate::restore::reach::probe_from(&p.node, url, &p.at).await?;
    }
    flux::install_cmd(
        &spec.tools.flux,
        &spec.flux,
        cluster.kubeconfig(),
        spec.timeouts.command,
    )
    .run()
    .await
    .map_err(|e| e.to_string())?;
    cluster
        .apply(&flux::sources_yaml(&spec.flux, url))
        .await
        .map_err(|e| format!("applying Flux sources: {e}"))
}

async fn reconcile<C: ClusterOps>(spec: &RestoreSpec, cluster: &C) -> Result<(), String> {
    flux::reconcile_cmd(
        &spec.tools.flux,
        &spec.flux,
        cluster.kubeconfig(),
        spec.timeouts.command,
    )
    .run()
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Waits for the Kustomization to be Ready (at whatever revision) and returns that revision;
/// the verdict compares it with the commit.
async fn wait_kustomization<C: ClusterOps>(
    spec: &RestoreSpec,
    cluster: &C,
    timeout: Duration,
) -> Result<String, String> {
    let what = format!(
        "Kustomization {}/{} Ready",
        spec.flux.namespace, spec.flux.name
    );
    wait::until(&what, timeout, spec.timeouts.poll, || async {
        let Some(k) = cluster
            .get(
                ResourceKind::Kustomization,
                &spec.flux.namespace,
                &spec.flux.name,
            )
            .await?
        else {
            return Ok(Poll::Pending("Kustomization not found".into()));
        };
        let rev = k
            .pointer("/status/lastAppliedRevision")
            .and_then(|r| r.as_str())
            .unwrap_or("")
            .to_string();
        Ok(match kustomization_ready(&k, &rev) {
            Readiness::Ready if !rev.is_empty() => Poll::Done(rev),
            Readiness::Ready => Poll::Pending("Ready without a revision".into()),
            // The Kustomization only says "source not ready"; the GitRepository says why (the
            // host's git server unreachable from the kind network, a firewall on the bridge…).
            Readiness::NotReady(why) => {
                let source = cluster
                    .get(
                        ResourceKind::GitRepository,
                        &spec.flux.namespace,
                        &spec.flux.name,
                    )
                    .await?
                    .map(|g| crate::kubeops::state::conditions(&g["status"]))
                    .unwrap_or_else(|| "not found".into());
                Poll::Pending(format!(
                    "{why}; GitRepository {}/{}: {source}",
                    spec.flux.namespace, spec.flux.name
                ))
            }
        })
    })
    .await
    .map_err(|e| e.to_string())
}

/// Every SealedSecret Synced with its Secret present, every function Deployment available.
async fn converged<C: ClusterOps>(
    spec: &RestoreSpec,
    cluster: &C,
    timeout: Duration,
) -> Result<(), String> {
    wait::until(
        "SealedSecrets Synced and functions available",
        timeout,
        spec.timeouts.poll,
        || async {
            let mut missing = Vec::new();
            for s in spec.secret_refs() {
                match cluster
                    .get(ResourceKind::SealedSecret, &s.namespace, &s.name)
                    .await?
                {
                    None => missing.push(format!("SealedSecret {s} not applied")),
                    Some(obj) => match sealed_secret_state(&obj) {
                        UnsealState::Synced => {}
                        UnsealState::Failed(why) => {
                            missing.push(format!("SealedSecret {s} Synced=False ({why})"))
                        }
                        UnsealState::Pending => {
                            missing.push(format!("SealedSecret {s} not processed"))
                        }
                    },
                }
                if cluster
                    .get(ResourceKind::Secret, &s.namespace, &s.name)
                    .await?
                    .is_none()
                {
                    missing.push(format!("Secret {s} absent"));
                }
            }
            for f in spec.function_names() {
                match cluster
                    .get(ResourceKind::Deployment, FUNCTIONS_NAMESPACE, &f)
                    .await?
                {
                    None => missing.push(format!("function {f} not deployed")),
                    Some(d) => {
                        if let Readiness::NotReady(why) = deployment_available(&d) {
                            missing.push(format!("function {f}: {why}"));
                        }
                    }
                }
            }
            Ok(if missing.is_empty() {
                Poll::Done(())
            } else {
                Poll::Pending(missing.join("; "))
            })
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// Functions (Deployments labelled `faas_function` in the functions' namespace) and the
/// scenario's Secrets, as digests.
async fn observe_inventory<C: ClusterOps>(
    spec: &RestoreSpec,
    cluster: &C,
) -> Result<Inventory, String> {
    let mut inv = Inventory::default();
    let deployments = cluster
        .list(
            ResourceKind::Deployment,
            FUNCTIONS_NAMESPACE,
            Some("faas_function"),
        )
        .await
        .map_err(|e| format!("listing functions: {e}"))?;
    inv.add_function_deployments(&deployments)
        .map_err(|e| e.to_string())?;
    for s in spec.secret_refs() {
        if let Some(obj) = cluster
            .get(ResourceKind::Secret, &s.namespace, &s.name)
            .await
            .map_err(|e| e.to_string())?
        {
            inv.add_secret(&obj).map_err(|e| e.to_string())?;
        }
    }
    Ok(inv)
}

/// Collects evidence and phase timings.
struct Recorder<'a, K: Clock> {
    clock: &'a K,
    ev: RestoreEvidence,
}

impl<K: Clock> Recorder<'_, K> {
    /// Runs one phase under `timeout`, timing it; `None` when it failed (recorded as the
    /// failed phase).
    async fn phase<T>(
        &mut self,
        phase: Phase,
        timeout: Duration,
        fut: impl Future<Output = Result<T, String>>,
    ) -> Option<T> {
        let start = self.clock.now();
        let r = match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            )),
        };
        let seconds = self.clock.now().saturating_sub(start).as_secs_f64();
        self.ev.phases.push(PhaseRecord {
            phase,
            seconds,
            ok: r.is_ok(),
        });
        match r {
            Ok(v) => Some(v),
            Err(why) => {
                self.ev.failed_phase = Some((phase, why));
                None
            }
        }
    }
}

/// Prepares the first cluster and runs the restore; any failure becomes an error verdict.
pub async fn execute<L: Lifecycle, K: Clock>(
    spec: &RestoreSpec,
    cluster: L::Cluster,
    lifecycle: &mut L,
    clock: &K,
) -> Verdict<RestoreEvidence> {
    match prepare(spec, &cluster).await {
        Ok(prepared) => run(spec, &prepared, cluster, lifecycle, clock).await,
        Err(e) => {
            let ev = RestoreEvidence {
                failed_phase: Some((Phase::Prepare, e.to_string())),
                max_recovery_seconds: spec.check.max_recovery.map(|d| d.as_secs_f64()),
                ..RestoreEvidence::default()
            };
            decide(ev)
        }
    }
}

/// Destroys `cluster` (prepared by [`prepare`]), rebuilds it and proves the recovery.
pub async fn run<L: Lifecycle, K: Clock>(
    spec: &RestoreSpec,
    prepared: &Prepared,
    cluster: L::Cluster,
    lifecycle: &mut L,
    clock: &K,
) -> Verdict<RestoreEvidence> {
    let t = &spec.timeouts;
    let expected = prepared.revision.as_str().to_string();
    let mut rec = Recorder {
        clock,
        ev: RestoreEvidence {
            expected_revision: Some(expected.clone()),
            max_recovery_seconds: spec.check.max_recovery.map(|d| d.as_secs_f64()),
            functions: spec.function_names(),
            secrets: spec.secret_refs().iter().map(|s| s.to_string()).collect(),
            ..RestoreEvidence::default()
        },
    };

    // 1. What runs now, and at which revision.
    let recorded = rec
        .phase(Phase::RecordInventory, t.record, async {
            let rev = wait_kustomization(spec, &cluster, t.record).await?;
            let inv = observe_inventory(spec, &cluster).await?;
            let mut gaps = Vec::new();
            for f in spec.function_names() {
                if !inv.functions.contains_key(&f) {
                    gaps.push(format!("function {f} is not running"));
                }
            }
            for s in spec.secret_refs() {
                match (inv.secrets.get(&s), prepared.sealed_digests.get(&s)) {
                    (None, _) => gaps.push(format!("secret {s} does not exist")),
                    (Some(have), Some(sealed)) if have != sealed => gaps.push(format!(
                        "secret {s} does not hold the values meshproof sealed into git"
                    )),
                    _ => {}
                }
            }
            if gaps.is_empty() {
                Ok((rev, inv))
            } else {
                Err(format!("before destruction: {}", gaps.join("; ")))
            }
        })
        .await;
    let Some((rev_before, before)) = recorded else {
        return decide(rec.ev);
    };
    rec.ev.revision_before = Some(rev_before);

    // 2. The sealing keys, to a 0600 file removed when `backup` drops (end of this function).
    let backup = rec
        .phase(Phase::BackupKeys, t.record, async {
            let keys = cluster
                .list(ResourceKind::Secret, &spec.controller.namespace, Some(KEY_LABEL))
                .await
                .map_err(|e| format!("listing sealing keys: {e}"))?;
            let backup = KeyBackup::write(prepared.workdir(), &keys).map_err(|e| e.to_string())?;
            // The backup is only worth something if it holds the key the secrets were sealed for.
            let sealed_with = std::fs::read_to_string(prepared.workdir().join(CERT_FILE))
                .map_err(|e| format!("reading the sealing certificate: {e}"))?;
            if !backup.certificates().iter().any(|c| c.trim() == sealed_with.trim()) {
                return Err(format!(
                    "none of the backed-up keys ({}) matches the certificate the secrets were sealed with",
                    backup.names().join(", ")
                ));
            }
            Ok(backup)
        })
        .await;
    let Some(backup) = backup else {
        return decide(rec.ev);
    };
    rec.ev.keys_backed_up = backup.names().to_vec();

    // 3. Destruction: the RTO starts here.
    let t0 = clock.now();
    drop(cluster);
    if rec
        .phase(Phase::Destroy, t.destroy, async {
            lifecycle.destroy().await.map_err(|e| e.0)
        })
        .await
        .is_none()
    {
        return decide(rec.ev);
    }
    let Some(new) = rec
        .phase(Phase::Rebuild, t.rebuild, async {
            lifecycle.rebuild().await.map_err(|e| e.0)
        })
        .await
    else {
        return decide(rec.ev);
    };
    let bootstrapped = rec
        .phase(Phase::BootstrapFlux, t.bootstrap, async {
            bootstrap_flux(spec, &new, &prepared.url).await
        })
        .await;
    if bootstrapped.is_none() {
        return decide(rec.ev);
    }

    // 4. Negative control: without the old key, nothing may unseal.
    let control_start = clock.now();
    let mut timeline = ControlTimeline::default();
    let control = tokio::time::timeout(
        t.control + t.control_hold + 2 * t.poll + Duration::from_secs(1),
        observe_control(spec, &new, &expected, clock, control_start, &mut timeline),
    )
    .await;
    let control = match control {
        Ok(j) => j,
        Err(_) => ControlJudgement::Undecided {
            waiting: vec!["the observation itself hung".into()],
        },
    };
    let held = matches!(control, ControlJudgement::Held { .. });
    let control_seconds = clock.now().saturating_sub(control_start).as_secs_f64();
    timeline.ended_after = control_seconds;
    rec.ev.phases.push(PhaseRecord {
        phase: Phase::NegativeControl,
        seconds: control_seconds,
        ok: held,
    });
    rec.ev.control = Some(control);
    rec.ev.control_timeline = Some(timeline);
    if !held {
        return decide(rec.ev);
    }

    // 5. Restore the keys; the controller reads keys only at start.
    let restored = rec
        .phase(Phase::KeyRestore, t.key_restore, async {
            let docs = backup.restore_documents().map_err(|e| e.to_string())?;
            new.apply(&docs)
                .await
                .map_err(|e| format!("applying sealing keys: {}", backup.redactor().apply(&e.0)))?;
            new.restart_deployment(&spec.controller.namespace, &spec.controller.name)
                .await
                .map_err(|e| {
                    format!(
                        "restarting {}/{}: {e}",
                        spec.controller.namespace, spec.controller.name
                    )
                })
        })
        .await;
    if restored.is_none() {
        return decide(rec.ev);
    }

    // 6. Reconcile from git.
    let after_rev = rec
        .phase(Phase::Reconcile, t.reconcile, async {
            reconcile(spec, &new).await?;
            wait_kustomization(spec, &new, t.reconcile).await
        })
        .await;
    let Some(after_rev) = after_rev else {
        return decide(rec.ev);
    };
    rec.ev.revision_after = Some(after_rev);

    // 7. Functions whose pods started before their Secret existed wait out kubelet's mount
    // retry backoff; a real operator restarts them, and so does meshproof.
    let restarted = rec
        .phase(Phase::RestartFunctions, t.restart, async {
            restart_waiting_functions(spec, &new, t.restart).await
        })
        .await;
    let Some(restarted) = restarted else {
        return decide(rec.ev);
    };
    rec.ev.restarted_functions = restarted;

    // 8. Everything back?
    let after = rec
        .phase(Phase::Verify, t.verify, async {
            converged(spec, &new, t.verify).await?;
            observe_inventory(spec, &new).await
        })
        .await;
    let Some(after) = after else {
        return decide(rec.ev);
    };
    let elapsed = clock.now().saturating_sub(t0).as_secs_f64();
    let deliberate = rec
        .ev
        .control_timeline
        .as_ref()
        .map(ControlTimeline::deliberate_seconds)
        .unwrap_or(0.0);
    rec.ev.elapsed_seconds = Some(elapsed);
    rec.ev.rto_seconds = Some((elapsed - deliberate).max(0.0));
    rec.ev.diff = Some(Inventory::diff(&before, &after));
    drop(backup);
    decide(rec.ev)
}

/// Polls the new cluster until the control decides; once it holds, keeps watching for
/// `control_hold` that nothing unseals late (a controller that found a key elsewhere). Fills
/// `timeline` (seconds from `start` on `clock`) as it goes. On the deadline, the last undecided
/// observation.
async fn observe_control<C: ClusterOps, K: Clock>(
    spec: &RestoreSpec,
    cluster: &C,
    revision: &str,
    clock: &K,
    start: Duration,
    timeline: &mut ControlTimeline,
) -> ControlJudgement {
    let expected = spec.secret_refs();
    let t = &spec.timeouts;
    let since = |clock: &K| clock.now().saturating_sub(start).as_secs_f64();
    let deadline = tokio::time::Instant::now() + t.control;
    let mut hold_until: Option<(tokio::time::Instant, f64)> = None;
    loop {
        let last = match observe_control_once(spec, cluster, &expected, revision).await {
            Ok(seen) => {
                let at = since(clock);
                if seen.kustomization_ready && timeline.kustomization_ready_after.is_none() {
                    timeline.kustomization_ready_after = Some(at);
                }
                if seen.any_key_failure && timeline.first_failure_after.is_none() {
                    timeline.first_failure_after = Some(at);
                }
                seen.judgement
            }
            Err(e) => ControlJudgement::Undecided {
                waiting: vec![format!("error observing: {e}")],
            },
        };
        match (&last, hold_until) {
            (ControlJudgement::Violated { .. }, _) => return last,
            (ControlJudgement::Held { .. }, None) => {
                let at = since(clock);
                timeline.held_after = Some(at);
                hold_until = Some((tokio::time::Instant::now() + t.control_hold, at));
            }
            (ControlJudgement::Held { .. }, Some(_)) => {}
            // Held once, then not: something changed under the control; say so.
            (ControlJudgement::Undecided { waiting }, Some(_)) => {
                return ControlJudgement::Undecided {
                    waiting: std::iter::once("the control held, then no longer did".to_string())
                        .chain(waiting.iter().cloned())
                        .collect(),
                }
            }
            (ControlJudgement::Undecided { .. }, None) => {}
        }
        let now = tokio::time::Instant::now();
        if let Some((until, held_at)) = hold_until {
            // The hold ends on the run's clock or, where that clock does not move on its own
            // (a test's), on the wall clock.
            if now >= until || since(clock) - held_at >= t.control_hold.as_secs_f64() {
                return last;
            }
        } else if now + t.poll > deadline {
            return last;
        }
        tokio::time::sleep(t.poll).await;
    }
}

/// One observation of the control.
struct ControlSeen {
    judgement: ControlJudgement,
    /// Some SealedSecret failed for want of the key.
    any_key_failure: bool,
    /// The Kustomization is Ready at the committed revision.
    kustomization_ready: bool,
}

async fn observe_control_once<C: ClusterOps>(
    spec: &RestoreSpec,
    cluster: &C,
    expected: &[SecretRef],
    revision: &str,
) -> Result<ControlSeen, OpsError> {
    let mut sealed = Vec::new();
    let mut events = Vec::new();
    for ns in spec.namespaces() {
        sealed.extend(cluster.list(ResourceKind::SealedSecret, &ns, None).await?);
        events.extend(cluster.list(ResourceKind::Event, &ns, None).await?);
    }
    let mut present = BTreeSet::new();
    for s in expected {
        if cluster
            .get(ResourceKind::Secret, &s.namespace, &s.name)
            .await?
            .is_some()
        {
            present.insert(s.clone());
        }
    }
    let any_key_failure = expected.iter().any(|s| {
        matches!(
            judge_control(std::slice::from_ref(s), &sealed, &events, &present),
            ControlJudgement::Held { .. }
        )
    });
    let kustomization_ready = cluster
        .get(
            ResourceKind::Kustomization,
            &spec.flux.namespace,
            &spec.flux.name,
        )
        .await?
        .is_some_and(|k| kustomization_ready(&k, revision).is_ready());
    Ok(ControlSeen {
        judgement: judge_control(expected, &sealed, &events, &present),
        any_key_failure,
        kustomization_ready,
    })
}

/// Waits until every Secret exists, then restarts each function whose Deployment is not
/// available: its pods started before the Secret existed and kubelet retries the mount only
/// after its backoff. Returns the functions restarted.
async fn restart_waiting_functions<C: ClusterOps>(
    spec: &RestoreSpec,
    cluster: &C,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    wait::until(
        "the restored Secrets",
        timeout,
        spec.timeouts.poll,
        || async {
            let mut missing = Vec::new();
            for s in spec.secret_refs() {
                if cluster
                    .get(ResourceKind::Secret, &s.namespace, &s.name)
                    .await?
                    .is_none()
                {
                    missing.push(format!("Secret {s} absent"));
                }
            }
            Ok(if missing.is_empty() {
                Poll::Done(())
            } else {
                Poll::Pending(missing.join("; "))
            })
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut restarted = Vec::new();
    for f in spec.function_names() {
        let Some(d) = cluster
            .get(ResourceKind::Deployment, FUNCTIONS_NAMESPACE, &f)
            .await
            .map_err(|e| e.to_string())?
        else {
            continue;
        };
        if deployment_available(&d).is_ready() {
            continue;
        }
        cluster
            .restart_deployment(FUNCTIONS_NAMESPACE, &f)
            .await
            .map_err(|e| format!("restarting function {f}: {e}"))?;
        restarted.push(f);
    }
    Ok(restarted)
}
