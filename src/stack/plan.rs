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

pub fn provision_and_install(suite: &Suite, env: &EnvironmentSpec, key: &str) -> Vec<PlannedStep> {
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
        (ClusterLayout::Kind(k), ClusterSpec::Kind { node_image, host_ports }) => {
            let mut detail = vec![
                format!("cluster name {} ({PLAN_RUN_ID} = the run's random id)", k.name),
                format!("write {} (0600):", k.config.display()),
            ];
            detail.extend(manifests::kind_config(node_image, *host_ports).lines().map(|l| format!("    {l}")));
            detail.push(format!("$ {}", k.create_cmd().display()));
            detail.push(format!(
                "kubeconfig {} (0600, in the run's 0700 temp dir; never ~/.kube/config)",
                k.kubeconfig.display()
            ));
            out.push(PlannedStep { phase: Phase::Provision, title: format!("create kind cluster for {key}"), detail });
        }
        (ClusterLayout::Existing(t), _) => out.push(PlannedStep {
            phase: Phase::Provision,
            title: format!("use existing cluster for {key}"),
            detail: vec![
                format!(
                    "kubeconfig {} context {}",
                    t.kubeconfig.display(),
                    t.context.as_deref().unwrap_or("(current)")
                ),
                "never created or deleted by meshproof; namespaces it creates carry the run-id label".into(),
            ],
        }),
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
