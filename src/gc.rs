//! `meshproof gc`: removes what abandoned runs left behind, from their run records
//! ([`crate::reaper::records`]).
//!
//! The reaper ([`crate::reaper`]) is the net under a run that dies; `gc` is the net under the
//! reaper — a CI runner that killed every process of a cancelled job, a machine that rebooted,
//! a reaper that could not reach Docker. It acts only on what a record names, and only for a
//! record whose process is gone: a cluster nobody recorded (a kept cluster, another tool's) is
//! listed with the command that deletes it, never deleted.
//!
//! Planning is pure ([`plan`]: records, the clusters that exist, and who is alive in; steps
//! out), so every rule is tested without kind; [`execute`] carries the steps out.

use crate::reaper::records::{Found, Record};
use crate::reaper::Entry;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The prefix of every cluster, temp dir and artifacts dir meshproof names.
pub const PREFIX: &str = "meshproof-";

/// One thing to do for an abandoned run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `kind delete cluster` (the cluster exists).
    DeleteCluster { name: String, kubeconfig: PathBuf },
    /// The recorded cluster no longer exists: only the record entry goes.
    ClusterGone { name: String },
    /// Delete a secret file.
    DeleteSecret { path: PathBuf },
    /// Remove a directory the run made.
    RemoveDir { path: PathBuf },
    /// `docker rm -f` a container the run made (a `--mirror local` registry).
    RemoveContainer { name: String },
    /// Not touched; the entry stays in the record.
    Keep { entry: Entry, why: String },
}

impl Step {
    /// The entry to hand to [`crate::reaper::reap`], for the steps that delete something.
    fn to_reap(&self) -> Option<Entry> {
        match self {
            Step::DeleteCluster { name, kubeconfig } => Some(Entry::KindCluster {
                name: name.clone(),
                kubeconfig: kubeconfig.clone(),
            }),
            Step::DeleteSecret { path } => Some(Entry::SecretFile { path: path.clone() }),
            Step::RemoveDir { path } => Some(Entry::Dir { path: path.clone() }),
            Step::RemoveContainer { name } => Some(Entry::Container { name: name.clone() }),
            Step::ClusterGone { .. } | Step::Keep { .. } => None,
        }
    }
}

/// What `gc` found for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    pub path: PathBuf,
    pub record: Record,
    /// The process that wrote the record still runs: nothing of it is touched.
    pub live: bool,
    /// Empty for a live run.
    pub steps: Vec<Step>,
}

/// Everything `gc` would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub runs: Vec<RunPlan>,
    /// Records that could not be read, with why; left in place.
    pub unreadable: Vec<(PathBuf, String)>,
    /// `meshproof-*` clusters that exist and that no record names; left alone.
    pub unrecorded: Vec<String>,
}

/// The kind clusters that exist, or why they could not be listed.
pub type Existing = Result<BTreeSet<String>, String>;

/// Decides what to do. `existing` is the output of `kind get clusters`; `alive` says whether
/// a record's process still runs.
pub fn plan(found: Vec<Found>, existing: &Existing, alive: impl Fn(&Record) -> bool) -> Plan {
    let mut out = Plan::default();
    let mut named: BTreeSet<String> = BTreeSet::new();
    for f in found {
        let record = match f.record {
            Ok(r) => r,
            Err(e) => {
                out.unreadable.push((f.path, e));
                continue;
            }
        };
        for e in &record.entries {
            if let Entry::KindCluster { name, .. } = e {
                named.insert(name.clone());
            }
        }
        let live = alive(&record);
        let steps = if live {
            Vec::new()
        } else {
            record
                .entries
                .iter()
                .map(|e| step_for(e, existing))
                .collect()
        };
        out.runs.push(RunPlan {
            path: f.path,
            record,
            live,
            steps,
        });
    }
    if let Ok(existing) = existing {
        out.unrecorded = existing
            .iter()
            .filter(|c| c.starts_with(PREFIX) && !named.contains(*c))
            .cloned()
            .collect();
    }
    out
}

/// Whether `path` is one meshproof made: absolute, and named `meshproof-*`.
fn ours(path: &Path) -> bool {
    path.is_absolute()
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(PREFIX))
}

fn step_for(e: &Entry, existing: &Existing) -> Step {
    let keep = |why: &str| Step::Keep {
        entry: e.clone(),
        why: why.to_string(),
    };
    match e {
        Entry::KindCluster { name, kubeconfig } => {
            if !name.starts_with(PREFIX) {
                return keep("not a cluster meshproof names");
            }
            match existing {
                Err(why) => keep(&format!("cannot list kind clusters: {why}")),
                Ok(set) if set.contains(name) => Step::DeleteCluster {
                    name: name.clone(),
                    kubeconfig: kubeconfig.clone(),
                },
                Ok(_) => Step::ClusterGone { name: name.clone() },
            }
        }
        Entry::SecretFile { path } if path.is_absolute() => {
            Step::DeleteSecret { path: path.clone() }
        }
        Entry::SecretFile { .. } => keep("not an absolute path"),
        Entry::Dir { path } if ours(path) => Step::RemoveDir { path: path.clone() },
        Entry::Dir { .. } => keep("not an absolute path named meshproof-*"),
        Entry::Group { .. } => keep("a process group means nothing after its run"),
        // Only a per-run mirror is ever recorded; a name outside meshproof's is left alone.
        Entry::Container { name } if name.starts_with("meshproof-mirror-") => {
            Step::RemoveContainer { name: name.clone() }
        }
        Entry::Container { .. } => keep("not a container meshproof names"),
    }
}

/// What happened to one step: what was done, or why it failed or was not done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub result: Result<String, String>,
}

/// Carries out the steps of every abandoned run — the deletions with the reaper's own
/// [`crate::reaper::reap`] (same order, same stale-lock handling) — and rewrites each record
/// to what is left (deleting it when nothing is). `kind_timeout` bounds each `kind delete`.
pub fn execute(plan: &Plan, kind_timeout: Duration) -> Vec<(PathBuf, Vec<Done>)> {
    let how = crate::reaper::Reap {
        kind_delete_timeout: kind_timeout,
        ..crate::reaper::Reap::default()
    };
    let mut out = Vec::new();
    for run in plan.runs.iter().filter(|r| !r.live) {
        let mut done = Vec::new();
        let mut left = Vec::new();
        for step in &run.steps {
            match step {
                Step::ClusterGone { name } => done.push(Done {
                    result: Ok(format!("kind cluster {name} is already gone")),
                }),
                Step::Keep { entry, why } => {
                    done.push(Done {
                        result: Err(format!("left alone ({why})")),
                    });
                    left.push(entry.clone());
                }
                _ => {}
            }
        }
        let doable: Vec<Entry> = run.steps.iter().filter_map(Step::to_reap).collect();
        let reaped = crate::reaper::reap(&doable, &how);
        left.extend(reaped.left());
        done.extend(reaped.done.into_iter().map(|(_, result)| Done { result }));
        if let Err(e) = crate::reaper::records::rewrite_entries(&run.path, &left) {
            done.push(Done {
                result: Err(format!(
                    "could not update the record {}: {e}",
                    run.path.display()
                )),
            });
        }
        out.push((run.path.clone(), done));
    }
    out
}

/// Parses `kind get clusters` output: one name per line (kind prints "No kind clusters
/// found." to stderr when there are none, so stdout is then empty).
pub fn parse_cluster_list(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(pid: u32, entries: Vec<Entry>) -> Found {
        Found {
            path: PathBuf::from(format!("/state/runs/{pid}-1.json")),
            record: Ok(Record {
                pid,
                pid_started: Some(1),
                started_at: "2026-12-04T00:00:00Z".into(),
                command: "e2e".into(),
                entries,
            }),
        }
    }

    fn cluster(n: &str) -> Entry {
        Entry::KindCluster {
            name: n.into(),
            kubeconfig: format!("/tmp/meshproof-r-1/{n}/kubeconfig").into(),
        }
    }

    #[test]
    fn only_abandoned_runs_get_steps_and_only_for_what_meshproof_made() {
        let existing: Existing = Ok(
            ["meshproof-dead", "meshproof-live", "meshproof-kept", "dev"]
                .into_iter()
                .map(String::from)
                .collect(),
        );
        let found = vec![
            record(
                1,
                vec![
                    cluster("meshproof-dead"),
                    cluster("meshproof-gone"),
                    cluster("dev"),
                    Entry::SecretFile {
                        path: "/tmp/meshproof-s/key".into(),
                    },
                    Entry::SecretFile {
                        path: "rel/key".into(),
                    },
                    Entry::Dir {
                        path: "/tmp/meshproof-r-1".into(),
                    },
                    Entry::Dir {
                        path: "/home/me".into(),
                    },
                    Entry::Container {
                        name: "meshproof-mirror-ab12cd-docker-io".into(),
                    },
                    Entry::Container {
                        name: "registry".into(),
                    },
                ],
            ),
            record(2, vec![cluster("meshproof-live")]),
            Found {
                path: "/state/runs/bad.json".into(),
                record: Err("expected value at line 1 column 1".into()),
            },
        ];
        let p = plan(found, &existing, |r| r.pid == 2);
        assert_eq!(p.unreadable.len(), 1);
        assert_eq!(
            p.unrecorded,
            ["meshproof-kept"],
            "dev is not ours; live is recorded"
        );
        let live = &p.runs[1];
        assert!(live.live && live.steps.is_empty());
        let s = &p.runs[0].steps;
        assert!(matches!(&s[0], Step::DeleteCluster { name, .. } if name == "meshproof-dead"));
        assert_eq!(
            s[1],
            Step::ClusterGone {
                name: "meshproof-gone".into()
            }
        );
        assert!(matches!(&s[2], Step::Keep { why, .. } if why.contains("not a cluster meshproof")));
        assert!(matches!(&s[3], Step::DeleteSecret { .. }));
        assert!(matches!(&s[4], Step::Keep { .. }), "relative secret path");
        assert!(matches!(&s[5], Step::RemoveDir { .. }));
        assert!(
            matches!(&s[6], Step::Keep { .. }),
            "a dir not named meshproof-*"
        );
        assert_eq!(
            s[7],
            Step::RemoveContainer {
                name: "meshproof-mirror-ab12cd-docker-io".into()
            }
        );
        assert!(
            matches!(&s[8], Step::Keep { why, .. } if why.contains("not a container meshproof")),
            "a container not named meshproof-mirror-*"
        );
    }

    #[test]
    fn clusters_are_kept_when_they_cannot_be_listed() {
        let p = plan(
            vec![record(1, vec![cluster("meshproof-a")])],
            &Err("Cannot connect to the Docker daemon".into()),
            |_| false,
        );
        assert!(
            matches!(&p.runs[0].steps[0], Step::Keep { why, .. } if why.contains("Docker daemon"))
        );
        assert!(p.unrecorded.is_empty());
    }

    #[test]
    fn executing_removes_files_and_rewrites_the_record_to_what_is_left() {
        let state = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("meshproof-r-1");
        std::fs::create_dir_all(dir.join("env")).unwrap();
        let secret = tmp.path().join("key");
        std::fs::write(&secret, "k").unwrap();
        let entries = vec![
            Entry::SecretFile {
                path: secret.clone(),
            },
            Entry::Dir { path: dir.clone() },
            Entry::Dir {
                path: "relative".into(),
            },
        ];
        let path = crate::reaper::records::records_dir(state.path()).join("1-1.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let rec = Record {
            pid: 1,
            pid_started: Some(1),
            started_at: "x".into(),
            command: "e2e".into(),
            entries,
        };
        std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
        let found = crate::reaper::records::read_all(state.path()).unwrap();
        let p = plan(found, &Ok(BTreeSet::new()), |_| false);
        let done = execute(&p, Duration::from_secs(5));
        assert!(!secret.exists() && !dir.exists());
        let ok = done[0].1.iter().filter(|d| d.result.is_ok()).count();
        let kept = done[0].1.iter().filter(|d| d.result.is_err()).count();
        assert_eq!((ok, kept), (2, 1), "{done:?}");
        let left = crate::reaper::records::read_all(state.path()).unwrap();
        assert_eq!(
            left[0].record.as_ref().unwrap().entries,
            [Entry::Dir {
                path: "relative".into()
            }]
        );
    }

    #[test]
    fn the_cluster_list_is_one_name_per_line() {
        assert_eq!(
            parse_cluster_list("meshproof-a\n\nkind\n"),
            ["kind", "meshproof-a"]
                .into_iter()
                .map(String::from)
                .collect()
        );
        assert!(parse_cluster_list("").is_empty());
    }
}
