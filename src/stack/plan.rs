//! What provisioning and installing an environment will do, as plan steps: the exact commands
//! (the same [`Cmd`](crate::process::Cmd)s a run executes, shown with `display()`), the chart
//! values and the generated manifests. Paths inside the run's temp dir print as `<run-dir>/…`,
//! and the run's random id as `xxxxxx`.

use super::actions::Action;
use super::environment::{layout, ClusterLayout};
use super::install::{self, InstallCtx, Secrets};
use super::manifests;
use super::names::RunId;
use crate::scenario::*;
use crate::vocab::{Phase, PlannedStep};
use std::path::Path;

/// The id plans print in place of the run's random one.
pub const PLAN_RUN_ID: &str = "xxxxxx";

pub fn provision_and_install(
    suite: &Suite,
    env: &EnvironmentSpec,
    key: &str,
    mirror: &crate::mirror::MirrorSetting,
) -> Vec<PlannedStep> {
    let mut out = Vec::new();
    let Some(run) = RunId::fixed(PLAN_RUN_ID) else {
        return out;
    };
    let temp_root = Path::new("<run-dir>");
    let (work_dir, cluster) = match layout(env, key, &run, temp_root) {
        Ok(l) => l,
        Err(e) => {
            out.push(PlannedStep {
                phase: Phase::Provision,
                title: format!("provision {key}"),
                detail: vec![format!("error: {e}")],
            });
            return out;
        }
    };
    match (&cluster, &env.cluster) {
        (
            ClusterLayout::Kind(k),
            ClusterSpec::Kind {
                node_image,
                host_ports,
            },
        ) => {
            let mut detail = vec![format!(
                "cluster name {} ({PLAN_RUN_ID} = the run's random id)",
                k.name
            )];
            if let Some(pinned) = super::environment::kind_pin() {
                detail.push(format!(
                    "$ {}   # must report {pinned} (tools.yaml), before any cluster exists",
                    super::cluster::kind::KindCluster::version_cmd().display()
                ));
            }
            let node_mirror = mirror_lines(mirror, suite, &work_dir, &mut detail);
            detail.push(format!("write {} (0600):", k.config.display()));
            detail.extend(
                manifests::kind_config(node_image, *host_ports, node_mirror.as_ref())
                    .lines()
                    .map(|l| format!("    {l}")),
            );
            detail.push(format!("$ {}", k.create_cmd().display()));
            detail.push(format!(
                "kubeconfig {} (0600, in the run's 0700 temp dir; never ~/.kube/config)",
                k.kubeconfig.display()
            ));
            out.push(PlannedStep {
                phase: Phase::Provision,
                title: format!("create kind cluster for {key}"),
                detail,
            });
        }
        (ClusterLayout::Existing(t), _) => {
            let mut detail = vec![
                format!(
                    "kubeconfig {} context {}",
                    t.kubeconfig.display(),
                    t.context.as_deref().unwrap_or("(current)")
                ),
                "never created or deleted by meshproof; namespaces it creates carry the run-id label".into(),
            ];
            if *mirror != crate::mirror::MirrorSetting::Off {
                detail.push("registry mirror: not applied — an existing cluster's nodes pull as they are configured".into());
            }
            out.push(PlannedStep {
                phase: Phase::Provision,
                title: format!("use existing cluster for {key}"),
                detail,
            })
        }
        _ => {}
    }
    let target = cluster.target();
    let secrets = Secrets::placeholder();
    let ctx = InstallCtx {
        suite,
        env,
        target: &target,
        run_id: PLAN_RUN_ID,
        work_dir: &work_dir,
        secrets: &secrets,
        gateway_api_base: install::gateway_api::DEFAULT_BASE_URL,
    };
    for p in install::plans(&ctx) {
        let mut detail = Vec::new();
        if p.actions
            .iter()
            .any(|a| matches!(a, Action::Run { cmd } if cmd.program() == "helm"))
        {
            detail.push(
                "helm repositories: HELM_REPOSITORY_CONFIG/HELM_REPOSITORY_CACHE inside the run's temp dir".into(),
            );
        }
        detail.extend(p.plan_lines());
        if matches!(cluster, ClusterLayout::Existing(_)) {
            detail.extend(p.existing_cluster_lines());
        }
        out.push(PlannedStep {
            phase: Phase::Install,
            title: format!("install {} {}", p.component, p.version),
            detail,
        });
    }
    out
}

/// The teardown lines of an environment: the exact delete command, or what cleanup removes on
/// an existing cluster.
pub fn teardown(env: &EnvironmentSpec, key: &str) -> Vec<String> {
    let Some(run) = RunId::fixed(PLAN_RUN_ID) else {
        return vec![];
    };
    match layout(env, key, &run, Path::new("<run-dir>")) {
        Ok((_, ClusterLayout::Kind(k))) => vec![
            format!(
                "on failure first: $ {}",
                k.export_logs_cmd(Path::new("<artifacts>/xxxxxx").join(super::names::sanitize(key)).join("kind-logs").as_path()).display()
            ),
            format!("$ {}", k.delete_cmd().display()),
            "skipped with --keep-cluster / MESHPROOF_KEEP_CLUSTER=1 (prints the delete command instead)".into(),
            "also on panic (teardown guard) and on SIGINT/SIGTERM (exit 130/143; a second signal skips cleanup)".into(),
        ],
        Ok((_, ClusterLayout::Existing(t))) => vec![
            "uninstall every component the run installed, newest first (the commands under each install step); never one it found and reused".into(),
            format!(
                "then delete only the namespaces and cluster-scoped objects labelled {}=xxxxxx (kubeconfig {}); never the cluster",
                super::cluster::api::RUN_ID_LABEL,
                t.kubeconfig.display()
            ),
        ],
        Err(e) => vec![format!("error: {e}")],
    }
}

/// The mirror's lines of a kind provisioning step: each mirror, the probe, and every node's
/// `hosts.toml`; returns the node configuration the kind config then mounts.
fn mirror_lines(
    mirror: &crate::mirror::MirrorSetting,
    suite: &Suite,
    work_dir: &Path,
    detail: &mut Vec<String>,
) -> Option<crate::mirror::NodeMirror> {
    detail.extend(
        mirror
            .describe()
            .into_iter()
            .map(|l| format!("registry mirror: {l}")),
    );
    let hosts = match mirror {
        crate::mirror::MirrorSetting::Local { keep, .. } => {
            match local_mirror_lines(*keep, suite, detail) {
                Ok(h) => Ok(Some(h)),
                Err(e) => Err(e),
            }
        }
        _ => mirror.hosts(),
    };
    let hosts = match hosts {
        Ok(Some(h)) => h,
        Ok(None) => return None,
        Err(e) => {
            detail.push(format!("error: {e}"));
            return None;
        }
    };
    let mut urls: Vec<&str> = hosts.files.iter().map(|f| f.mirror.url.as_str()).collect();
    urls.dedup();
    if matches!(mirror, crate::mirror::MirrorSetting::Local { .. }) {
        urls.clear();
    }
    for u in urls {
        detail.push(format!(
            "before the cluster: GET {u}/v2/ must answer within {} (any HTTP status), else the run stops naming the registry",
            humantime::format_duration(crate::mirror::probe::TIMEOUT)
        ));
    }
    let host_dir = work_dir.join(crate::mirror::NODE_HOSTS_DIR);
    for f in &hosts.files {
        detail.push(format!(
            "write {}/{}/hosts.toml (mounted read-only at {}/{} in every node):",
            host_dir.display(),
            f.namespace,
            crate::mirror::kind::NODE_CERTS_DIR,
            f.namespace
        ));
        detail.extend(f.text().lines().map(|l| format!("    {l}")));
    }
    Some(crate::mirror::NodeMirror { hosts, host_dir })
}

/// The local mirror containers a run starts for this environment (named with the plan's run
/// id), the docker commands of each, and the hosts tree naming them.
fn local_mirror_lines(
    keep: bool,
    suite: &Suite,
    detail: &mut Vec<String>,
) -> Result<crate::mirror::HostsDir, crate::mirror::MirrorError> {
    use crate::mirror::local;
    let network = crate::vocab::kind_network();
    let upstreams = local::upstreams(suite.images.iter().map(|(_, i)| i));
    let run = (!keep).then_some(PLAN_RUN_ID);
    let mut containers = std::collections::BTreeMap::new();
    for u in &upstreams {
        let spec = local::Spec::new(u, run)?;
        detail.push(format!("registry mirror: {}", spec.describe(&network)));
        if keep {
            detail.push(format!(
                "    reused when {} runs with label {}={}; another configuration stops the run (`docker rm -f {}`)",
                spec.container,
                local::CONFIG_LABEL,
                spec.config_hash(),
                spec.container
            ));
        } else {
            detail.push(format!(
                "    registered with the reaper and the run record first; removed at the end with `docker rm -f -v {}` (its access log read first)",
                spec.container
            ));
        }
        detail.push(format!("    $ {}", spec.create_cmd().display()));
        detail.push(format!(
            "    $ {}   # the 0600 config ({}), never in argv or env",
            spec.copy_cmd(&Path::new("<run-dir>/mirror-configs").join(format!("{}.yml", u.slug())))
                .display(),
            if spec.config.credentials.is_some() {
                "with the upstream login"
            } else {
                "anonymous"
            }
        ));
        detail.push(format!(
            "    $ docker start {}; wait for \"listening on\" ({}); docker network connect {network} {} (before kind create if the network exists, else right after)",
            spec.container,
            humantime::format_duration(local::READY_TIMEOUT),
            spec.container
        ));
        containers.insert(u.clone(), spec.container);
    }
    Ok(crate::mirror::local_hosts(&containers))
}
