//! The failure dump: what a person needs to diagnose a failed run, written as artifacts.
//!
//! For each namespace, one file per kind of thing under `<dir>/<namespace>/`:
//! `events.txt` (oldest first), `pods.yaml`, `deployments.yaml` (spec + status, without
//! `managedFields` noise), and `logs/<pod>.<container>.log`. Best-effort: a part that cannot be
//! fetched is recorded in `dump-errors.txt` and the rest is still written.
//!
//! Secrets are never read, so their data cannot leak into artifacts that CI uploads.

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use super::call::call;
use super::error::KubeError;
use super::logs::{format_event, namespace_events, pod_logs};

/// Lines of each container's log kept in the dump.
pub const LOG_TAIL_LINES: i64 = 2000;

/// What a dump wrote.
#[derive(Debug, Clone, Default)]
pub struct DumpReport {
    pub files: Vec<PathBuf>,
    /// Parts that could not be fetched (also written to `dump-errors.txt`).
    pub errors: Vec<String>,
}

/// Writes the dump of `namespaces` under `dir`. Fails only when `dir` cannot be written.
pub async fn dump_namespaces(
    client: &Client,
    namespaces: &[&str],
    dir: &Path,
) -> Result<DumpReport, KubeError> {
    let mut report = DumpReport::default();
    for ns in namespaces {
        let nsdir = dir.join(ns);
        mkdir(&nsdir)?;
        match namespace_events(client, ns).await {
            Ok(events) => {
                let text: String = events.iter().map(|e| format_event(e) + "\n").collect();
                write(&mut report, &nsdir.join("events.txt"), text.as_bytes())?;
            }
            Err(e) => report.errors.push(format!("events of {ns}: {e}")),
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let pod_list = match call(&format!("pods in {ns}"), pods.list(&ListParams::default())).await
        {
            Ok(l) => l.items,
            Err(e) => {
                report.errors.push(e.to_string());
                Vec::new()
            }
        };
        write(&mut report, &nsdir.join("pods.yaml"), &to_yaml(&pod_list)?)?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        match call(
            &format!("deployments in {ns}"),
            deployments.list(&ListParams::default()),
        )
        .await
        {
            Ok(l) => write(
                &mut report,
                &nsdir.join("deployments.yaml"),
                &to_yaml(&l.items)?,
            )?,
            Err(e) => report.errors.push(e.to_string()),
        }
        let logdir = nsdir.join("logs");
        for pod in &pod_list {
            let containers = pod
                .spec
                .iter()
                .flat_map(|s| {
                    s.init_containers
                        .iter()
                        .flatten()
                        .chain(s.containers.iter())
                })
                .map(|c| c.name.clone());
            for c in containers {
                match pod_logs(client, ns, &pod.name_any(), Some(&c), Some(LOG_TAIL_LINES)).await {
                    Ok(text) => {
                        mkdir(&logdir)?;
                        let file = logdir.join(format!("{}.{}.log", pod.name_any(), c));
                        write(&mut report, &file, text.as_bytes())?;
                    }
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
        }
    }
    if !report.errors.is_empty() {
        mkdir(dir)?;
        let text = report.errors.join("\n") + "\n";
        let file = dir.join("dump-errors.txt");
        std::fs::write(&file, text).map_err(|e| io_err(&file, e))?;
        report.files.push(file);
    }
    Ok(report)
}

/// Objects as one YAML list, without `metadata.managedFields`.
fn to_yaml<K: Serialize>(items: &[K]) -> Result<Vec<u8>, KubeError> {
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        let mut v = serde_json::to_value(item)
            .map_err(|e| KubeError::Invalid(format!("serializing for dump: {e}")))?;
        if let Some(m) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("managedFields");
        }
        values.push(v);
    }
    serde_yaml::to_string(&values)
        .map(String::into_bytes)
        .map_err(|e| KubeError::Invalid(format!("serializing for dump: {e}")))
}

fn mkdir(dir: &Path) -> Result<(), KubeError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))
}

fn write(report: &mut DumpReport, file: &Path, data: &[u8]) -> Result<(), KubeError> {
    std::fs::write(file, data).map_err(|e| io_err(file, e))?;
    report.files.push(file.to_path_buf());
    Ok(())
}

fn io_err(path: &Path, e: std::io::Error) -> KubeError {
    KubeError::Io {
        what: format!("writing {}", path.display()),
        source: e,
    }
}
