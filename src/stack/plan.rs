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
            let node_mirror = mirror_lines(mirror, &work_dir, &mut detail);
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
    work_dir: &Path,
    detail: &mut Vec<String>,
) -> Option<crate::mirror::NodeMirror> {
    detail.extend(
        mirror
            .describe()
            .into_iter()
            .map(|l| format!("registry mirror: {l}")),
    );
    let hosts = match mirror.hosts() {
        Ok(Some(h)) => h,
        Ok(None) => return None,
        Err(e) => {
            detail.push(format!("error: {e}"));
            return None;
        }
    };
    let mut urls: Vec<&str> = hosts.files.iter().map(|f| f.mirror.url.as_str()).collect();
    urls.dedup();
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
