//! Test support: a directory of TEST-DOUBLE CLIs (kind, helm, istioctl, linkerd, flux, docker),
//! all symlinks to `tests/doubles/record-argv`, which records its argv as JSON lines; and a
//! recording double of the Kubernetes API seam.
#![allow(dead_code)]

use meshproof::stack::cluster::api::{ApiFuture, ClusterApi, KubeTarget};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub const TOOLS: [&str; 6] = ["kind", "helm", "istioctl", "linkerd", "flux", "docker"];

/// A temp dir holding the doubles and their argv log.
pub struct Doubles {
    pub dir: tempfile::TempDir,
}

impl Doubles {
    pub fn new() -> Doubles {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/doubles/record-argv");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for t in TOOLS {
            std::os::unix::fs::symlink(&script, bin.join(t)).unwrap();
        }
        Doubles { dir }
    }

    /// The directory to put first on the tool path (`MESHPROOF_TOOL_PATH`).
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("argv.jsonl")
    }

    /// Every recorded call, in order: (tool, argv).
    pub fn calls(&self) -> Vec<(String, Vec<String>)> {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("bad double log line {l:?}: {e}"));
                let tool = v["tool"].as_str().unwrap().to_string();
                let argv = v["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                (tool, argv)
            })
            .collect()
    }

    /// Calls rendered as `tool arg arg…` lines (for substring assertions and messages).
    pub fn call_lines(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .map(|(t, a)| format!("{t} {}", a.join(" ")))
            .collect()
    }
}

/// The value following `flag` in an argv.
pub fn flag<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == flag)
        .and_then(|i| argv.get(i + 1))
        .map(|s| s.as_str())
}

/// One call the recording API received.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiCall {
    Apply {
        target: KubeTarget,
        manifest: String,
        /// The run id the apply labels what it creates with.
        run_id: Option<String>,
    },
    Delete {
        target: KubeTarget,
        manifest: String,
    },
    DeleteSelected {
        target: KubeTarget,
        selection: meshproof::stack::cluster::api::Selection,
    },
    Create {
        target: KubeTarget,
        manifest: String,
    },
    Patch {
        target: KubeTarget,
        manifest: String,
    },
    Cleanup {
        target: KubeTarget,
        label: String,
        run_id: String,
    },
}

/// TEST DOUBLE of the Kubernetes API seam: records every call and succeeds; `create` reports
/// the objects named in `existing` as already there; `patch_existing` fails for objects
/// named in `missing`; `exists` answers yes for the names in `present`.
#[derive(Default)]
pub struct RecordingApi {
    pub calls: Mutex<Vec<ApiCall>>,
    pub existing: Vec<String>,
    pub missing: Vec<String>,
    /// Objects `exists` reports, by name.
    pub present: Vec<String>,
    /// `nodes_ready` fails with this node state when set.
    pub nodes_not_ready: Option<String>,
}

impl RecordingApi {
    pub fn calls(&self) -> Vec<ApiCall> {
        self.calls.lock().unwrap().clone()
    }

    /// Every manifest applied or created, parsed, per YAML document.
    pub fn objects(&self) -> Vec<serde_yaml::Value> {
        let mut out = Vec::new();
        for c in self.calls() {
            if let ApiCall::Apply { manifest, .. }
            | ApiCall::Create { manifest, .. }
            | ApiCall::Patch { manifest, .. } = c
            {
                for d in serde_yaml::Deserializer::from_str(&manifest) {
                    let v = <serde_yaml::Value as serde::Deserialize>::deserialize(d).unwrap();
                    if !v.is_null() {
                        out.push(v);
                    }
                }
            }
        }
        out
    }

    pub fn object(&self, kind: &str, name: &str) -> Option<serde_yaml::Value> {
        self.objects().into_iter().find(|o| {
            o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name)
        })
    }
}

impl ClusterApi for RecordingApi {
    fn apply<'a>(
        &'a self,
        target: &'a KubeTarget,
        manifest: &'a str,
        run_id: Option<&'a str>,
    ) -> ApiFuture<'a, ()> {
        self.calls.lock().unwrap().push(ApiCall::Apply {
            target: target.clone(),
            manifest: manifest.to_string(),
            run_id: run_id.map(str::to_string),
        });
        Box::pin(async { Ok(()) })
    }

    fn delete<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, usize> {
        self.calls.lock().unwrap().push(ApiCall::Delete {
            target: target.clone(),
            manifest: manifest.to_string(),
        });
        Box::pin(async { Ok(1) })
    }

    fn delete_selected<'a>(
        &'a self,
        target: &'a KubeTarget,
        selection: &'a meshproof::stack::cluster::api::Selection,
    ) -> ApiFuture<'a, usize> {
        self.calls.lock().unwrap().push(ApiCall::DeleteSelected {
            target: target.clone(),
            selection: selection.clone(),
        });
        Box::pin(async { Ok(1) })
    }

    fn create<'a>(&'a self, target: &'a KubeTarget, manifest: &'a str) -> ApiFuture<'a, bool> {
        self.calls.lock().unwrap().push(ApiCall::Create {
            target: target.clone(),
            manifest: manifest.to_string(),
        });
        let v: serde_yaml::Value = serde_yaml::from_str(manifest).unwrap();
        let exists = self
            .existing
            .iter()
            .any(|n| v["metadata"]["name"].as_str() == Some(n));
        Box::pin(async move { Ok(!exists) })
    }

    fn patch_existing<'a>(
        &'a self,
        target: &'a KubeTarget,
        manifest: &'a str,
    ) -> ApiFuture<'a, ()> {
        self.calls.lock().unwrap().push(ApiCall::Patch {
            target: target.clone(),
            manifest: manifest.to_string(),
        });
        let v: serde_yaml::Value = serde_yaml::from_str(manifest).unwrap();
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let missing = self.missing.contains(&name);
        Box::pin(async move {
            if missing {
                Err(meshproof::stack::cluster::api::ApiError(format!(
                    "{name} does not exist, so there is nothing to patch (was it installed?)"
                )))
            } else {
                Ok(())
            }
        })
    }

    fn exists<'a>(
        &'a self,
        _target: &'a KubeTarget,
        object: &'a meshproof::stack::cluster::api::ObjectRef,
    ) -> ApiFuture<'a, bool> {
        let found = self.present.contains(&object.name);
        Box::pin(async move { Ok(found) })
    }

    fn nodes_ready<'a>(
        &'a self,
        _target: &'a KubeTarget,
        _timeout: std::time::Duration,
    ) -> ApiFuture<'a, ()> {
        let not_ready = self.nodes_not_ready.clone();
        Box::pin(async move {
            match not_ready {
                Some(state) => Err(meshproof::stack::cluster::api::ApiError(format!(
                    "timed out waiting for every node Ready; current state: {state}"
                ))),
                None => Ok(()),
            }
        })
    }

    fn cleanup_labelled<'a>(
        &'a self,
        target: &'a KubeTarget,
        label: &'a str,
        run_id: &'a str,
    ) -> ApiFuture<'a, ()> {
        self.calls.lock().unwrap().push(ApiCall::Cleanup {
            target: target.clone(),
            label: label.to_string(),
            run_id: run_id.to_string(),
        });
        Box::pin(async { Ok(()) })
    }
}

/// Every file under `dir` (recursively) with its bytes.
pub fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.push((p, b));
        }
    }
    out
}
