//! The [`Reporter`]: consumes [`Event`]s and owns every file of the report directory.
//!
//! It is shared by the trials of a run (`&self` methods, internally locked), since libtest runs
//! trials on several threads. Every string that reaches a file passes through the reporter's
//! [`Redactor`]: the JSON document is redacted as a whole (keys and values, evidence included),
//! JUnit is rendered from that redacted document, and artifacts are redacted when written and
//! once more when the run finishes (a secret learned late — a generated password — is still
//! scrubbed from files written before it was known).

use super::conformance::{self, Conformance, CONFORMANCE_YAML};
use super::event::{Event, TrialOutcome};
use super::model::{
    Build, Counts, EnvironmentRecord, Report, Status, Summary, TrialRecord, SCHEMA,
};
use super::{integrity, junit, ReportError};
use crate::process::Redactor;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `report.json`'s file name.
pub const REPORT_JSON: &str = "report.json";
/// `junit.xml`'s file name.
pub const JUNIT_XML: &str = "junit.xml";
/// The artifacts directory's name.
pub const ARTIFACTS: &str = "artifacts";

/// RFC 3339 in UTC with whole seconds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[derive(Default)]
struct State {
    started_at: Option<String>,
    finished_at: Option<String>,
    git_revision: Option<String>,
    invocation: Option<String>,
    envs: BTreeMap<String, EnvironmentRecord>,
    /// Trials started and not yet finished: (environment, scenario).
    running: BTreeMap<(String, String), ()>,
    /// Why the run ended early (a signal), for a partial report.
    interrupted: Option<String>,
}

/// Collects a run's events and writes `junit.xml`, `report.json` and `artifacts/`.
pub struct Reporter {
    dir: PathBuf,
    run_id: String,
    redactor: Mutex<Redactor>,
    state: Mutex<State>,
    /// Set: the run also writes its conformance report(s) (see [`conformance`]).
    conformance: Option<Conformance>,
}

impl Reporter {
    /// A reporter writing into `dir` (created if needed), which must not hold an earlier run's
    /// report.
    pub fn create(
        dir: impl Into<PathBuf>,
        run_id: impl Into<String>,
        redactor: Redactor,
    ) -> Result<Reporter, ReportError> {
        let dir = dir.into();
        // Never mix runs: a stale artifacts/ would be attributed to this run's trials, and an
        // overwritten report.json may be someone's certification.
        for old in [REPORT_JSON, JUNIT_XML, ARTIFACTS, CONFORMANCE_YAML] {
            if dir.join(old).exists() {
                return Err(ReportError::Occupied {
                    path: dir.join(old),
                });
            }
        }
        std::fs::create_dir_all(&dir).map_err(|source| ReportError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Reporter {
            dir,
            run_id: run_id.into(),
            redactor: Mutex::new(redactor),
            state: Mutex::new(State::default()),
            conformance: None,
        })
    }

    /// The run also writes `conformance-report.yaml`: each trial counts towards the profiles
    /// `conf.profiles` gives its scenario, and the implementation is described by
    /// `conf.implementation` (redacted like everything else).
    pub fn with_conformance(mut self, conf: Conformance) -> Reporter {
        self.conformance = Some(conf);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub fn junit_path(&self) -> PathBuf {
        self.dir.join(JUNIT_XML)
    }

    pub fn json_path(&self) -> PathBuf {
        self.dir.join(REPORT_JSON)
    }

    /// A value that must never appear in any file (a password, a token, a license).
    pub fn add_secret(&self, secret: &str) {
        lock(&self.redactor).add(secret);
    }

    /// Every secret of `r` (an environment's password, license, keys) joins the report's.
    pub fn add_secrets(&self, r: &Redactor) {
        lock(&self.redactor).extend(r);
    }

    fn redactor(&self) -> Redactor {
        lock(&self.redactor).clone()
    }

    /// Records one event. Events out of order (a trial of an environment that never started,
    /// anything after `RunFinished`) are a [`ReportError::Protocol`] error — a harness bug that
    /// must not pass silently. `RunFinished` writes `junit.xml` and `report.json`.
    pub fn emit(&self, event: Event) -> Result<(), ReportError> {
        let mut st = lock(&self.state);
        if st.finished_at.is_some() {
            return Err(protocol("event after RunFinished"));
        }
        if st.started_at.is_none() && !matches!(event, Event::RunStarted { .. }) {
            return Err(protocol("event before RunStarted"));
        }
        match event {
            Event::RunStarted {
                at,
                git_revision,
                invocation,
            } => {
                if st.started_at.is_some() {
                    return Err(protocol("RunStarted twice"));
                }
                st.started_at = Some(rfc3339(at));
                st.git_revision = Some(git_revision);
                st.invocation = invocation;
            }
            Event::EnvironmentStarted {
                environment,
                fingerprint,
            } => {
                if st.envs.contains_key(&environment) {
                    return Err(protocol(&format!(
                        "environment {environment:?} started twice"
                    )));
                }
                let record = EnvironmentRecord {
                    name: environment.clone(),
                    suite: fingerprint.suite.clone(),
                    fingerprint: *fingerprint,
                    started_at: rfc3339(OffsetDateTime::now_utc()),
                    finished_at: None,
                    teardown_error: None,
                    trials: Vec::new(),
                };
                st.envs.insert(environment, record);
            }
            Event::EnvironmentUpdated {
                environment,
                fingerprint,
            } => {
                let env = env_mut(&mut st, &environment)?;
                env.fingerprint.merge(&fingerprint);
            }
            Event::TrialStarted {
                environment,
                scenario,
            } => {
                let env = env_mut(&mut st, &environment)?;
                if env.finished_at.is_some() {
                    return Err(protocol(&format!(
                        "trial {scenario:?} started in finished environment {environment:?}"
                    )));
                }
                if env.trials.iter().any(|t| t.scenario == scenario) {
                    return Err(protocol(&format!(
                        "trial {environment}::{scenario} ran twice"
                    )));
                }
                if st
                    .running
                    .insert((environment.clone(), scenario.clone()), ())
                    .is_some()
                {
                    return Err(protocol(&format!(
                        "trial {environment}::{scenario} started twice"
                    )));
                }
            }
            Event::TrialFinished {
                environment,
                scenario,
                outcome,
                duration,
                verdicts,
                controls,
            } => {
                if st
                    .running
                    .remove(&(environment.clone(), scenario.clone()))
                    .is_none()
                {
                    return Err(protocol(&format!(
                        "trial {environment}::{scenario} finished without starting"
                    )));
                }
                let outcome = outcome.reconcile(&verdicts, &controls);
                let id = format!("{environment}::{scenario}");
                let artifacts = self.existing_artifacts(&id);
                let env = env_mut(&mut st, &environment)?;
                env.trials.push(TrialRecord {
                    id,
                    scenario,
                    outcome,
                    duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                    verdicts,
                    controls,
                    artifacts,
                });
                env.trials.sort_by(|a, b| a.scenario.cmp(&b.scenario));
            }
            Event::EnvironmentFinished {
                environment,
                teardown_error,
            } => {
                let env = env_mut(&mut st, &environment)?;
                env.finished_at = Some(rfc3339(OffsetDateTime::now_utc()));
                env.teardown_error = teardown_error;
            }
            Event::RunFinished { at } => {
                self.finish(st, at, None)?;
            }
            Event::RunInterrupted { at, why } => {
                self.finish(st, at, Some(why))?;
            }
        }
        Ok(())
    }

    /// Ends the run (normally, or `interrupted` by a signal) and writes the report files.
    fn finish(
        &self,
        mut st: std::sync::MutexGuard<'_, State>,
        at: OffsetDateTime,
        interrupted: Option<String>,
    ) -> Result<(), ReportError> {
        let finished = rfc3339(at);
        let unfinished = match &interrupted {
            Some(why) => format!("the run was interrupted before the trial finished ({why})"),
            None => "the trial did not finish (it panicked or the run was interrupted)".into(),
        };
        // Whatever never finished (a panicking trial, a signal) is an error, not a gap.
        let running: Vec<(String, String)> = std::mem::take(&mut st.running).into_keys().collect();
        for (environment, scenario) in running {
            let id = format!("{environment}::{scenario}");
            let artifacts = self.existing_artifacts(&id);
            if let Ok(env) = env_mut(&mut st, &environment) {
                env.trials.push(TrialRecord {
                    id,
                    scenario,
                    outcome: TrialOutcome::errored(vec![unfinished.clone()]),
                    duration_ms: 0,
                    verdicts: Vec::new(),
                    controls: Vec::new(),
                    artifacts,
                });
                env.trials.sort_by(|a, b| a.scenario.cmp(&b.scenario));
            }
        }
        for env in st.envs.values_mut() {
            if env.finished_at.is_none() {
                env.finished_at = Some(finished.clone());
            }
        }
        st.finished_at = Some(finished);
        st.interrupted = interrupted;
        let report = self.build(&st)?;
        drop(st);
        self.write(&report)
    }

    /// The report as it stands (redacted), e.g. for a progress display or a test.
    pub fn snapshot(&self) -> Result<Report, ReportError> {
        let st = lock(&self.state);
        self.build(&st)
    }

    fn build(&self, st: &State) -> Result<Report, ReportError> {
        let mut report = Report {
            schema: SCHEMA.into(),
            run_id: self.run_id.clone(),
            meshproof: Build {
                version: env!("CARGO_PKG_VERSION").into(),
                git_revision: st.git_revision.clone().unwrap_or_else(|| "unknown".into()),
            },
            started_at: st.started_at.clone().unwrap_or_default(),
            finished_at: st.finished_at.clone(),
            invocation: st.invocation.clone(),
            environments: st.envs.values().cloned().collect(),
            suites: Vec::new(),
            summary: Summary {
                status: Status::Partial,
                counts: Counts::default(),
                duration_ms: 0,
            },
            interrupted: st.interrupted.clone(),
            sha256: None,
        };
        report.summarize();
        self.redact(&report)
    }

    /// Redacts every string of the report, keys included, by way of its JSON form — complete by
    /// construction, whatever fields the model grows.
    fn redact(&self, report: &Report) -> Result<Report, ReportError> {
        let r = self.redactor();
        if r.is_empty() {
            return Ok(report.clone());
        }
        let mut v = serde_json::to_value(report).map_err(ReportError::Serialize)?;
        r.apply_json(&mut v);
        serde_json::from_value(v).map_err(ReportError::Serialize)
    }

    fn write(&self, report: &Report) -> Result<(), ReportError> {
        let r = self.redactor();
        write_file(&self.junit_path(), junit::render(report)?.as_bytes())?;
        write_file(&self.json_path(), integrity::seal(report)?.as_bytes())?;
        // After report.json: a conformance report that cannot be built leaves the others whole.
        if let Some(conf) = &self.conformance {
            let mut conf = conf.clone();
            let i = &mut conf.implementation;
            for v in [
                &mut i.organization,
                &mut i.project,
                &mut i.url,
                &mut i.version,
            ]
            .into_iter()
            .flatten()
            {
                *v = r.apply(v);
            }
            for c in &mut i.contact {
                *c = r.apply(c);
            }
            for (suite, name) in conformance_files(report) {
                let doc = conformance::build(report, &suite, &conf)?;
                write_file(&self.dir.join(name), conformance::to_yaml(&doc)?.as_bytes())?;
            }
        }
        let artifacts = self.dir.join(ARTIFACTS);
        if artifacts.is_dir() {
            rescrub(&artifacts, &r)?;
        }
        Ok(())
    }

    /// Where the artifacts of `trial` (`<environment>::<scenario>`) go: `artifacts/<trial>/`
    /// with the name made safe for file systems and CI artifact stores. Not created until a
    /// file is written there.
    pub fn artifacts_dir(&self, trial: &str) -> PathBuf {
        self.dir.join(ARTIFACTS).join(safe_name(trial))
    }

    fn existing_artifacts(&self, trial: &str) -> Option<String> {
        let d = self.artifacts_dir(trial);
        let non_empty = std::fs::read_dir(&d)
            .map(|mut it| it.next().is_some())
            .unwrap_or(false);
        non_empty.then(|| format!("{ARTIFACTS}/{}", safe_name(trial)))
    }

    /// Writes one artifact file for `trial`, redacted: text is scrubbed of secrets; binary data
    /// (packet captures) has them overwritten byte for byte, keeping its structure.
    pub fn write_artifact(
        &self,
        trial: &str,
        name: &str,
        bytes: &[u8],
    ) -> Result<PathBuf, ReportError> {
        let dir = self.artifacts_dir(trial);
        std::fs::create_dir_all(&dir).map_err(|source| ReportError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(safe_name(name));
        write_file(&path, &scrub(bytes, &self.redactor()))?;
        Ok(path)
    }

    /// Copies a file (a log, an events dump, a pcap) into `trial`'s artifacts, redacted.
    pub fn copy_artifact(&self, trial: &str, src: &Path) -> Result<PathBuf, ReportError> {
        let bytes = std::fs::read(src).map_err(|source| ReportError::Io {
            path: src.to_path_buf(),
            source,
        })?;
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "artifact".into());
        self.write_artifact(trial, &name, &bytes)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; reporting must go on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn protocol(msg: &str) -> ReportError {
    ReportError::Protocol(msg.to_string())
}

fn env_mut<'a>(st: &'a mut State, env: &str) -> Result<&'a mut EnvironmentRecord, ReportError> {
    st.envs
        .get_mut(env)
        .ok_or_else(|| protocol(&format!("environment {env:?} was never started")))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn scrub(bytes: &[u8], r: &Redactor) -> Vec<u8> {
    match std::str::from_utf8(bytes) {
        Ok(text) => r.apply(text).into_bytes(),
        Err(_) => {
            let mut b = bytes.to_vec();
            r.mask_bytes(&mut b);
            b
        }
    }
}

/// Scrubs every file under `dir` again with the final set of secrets.
fn rescrub(dir: &Path, r: &Redactor) -> Result<(), ReportError> {
    if r.is_empty() {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|source| ReportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let ft = entry.file_type().map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        if ft.is_dir() {
            rescrub(&path, r)?;
        } else if ft.is_file() {
            let bytes = std::fs::read(&path).map_err(|source| ReportError::Io {
                path: path.clone(),
                source,
            })?;
            let clean = scrub(&bytes, r);
            if clean != bytes {
                write_file(&path, &clean)?;
            }
        }
    }
    Ok(())
}

/// The file each suite's conformance report goes to: [`CONFORMANCE_YAML`] for a run of one
/// suite, `conformance-report-<suite>.yaml` for each suite of a run of several (one report, one
/// implementation).
fn conformance_files(report: &Report) -> Vec<(String, String)> {
    match report.suites.as_slice() {
        [one] => vec![(one.name.clone(), CONFORMANCE_YAML.to_string())],
        many => many
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    format!("conformance-report-{}.yaml", safe_name(&s.name)),
                )
            })
            .collect(),
    }
}

/// A name safe as one path component everywhere reports travel (no `/`, `:`, quotes, `..`):
/// `istio[k8s=1.34]::mtls` → `istio.k8s=1.34--mtls`: one path component, no glob characters.
pub fn safe_name(s: &str) -> String {
    let s = s.replace("::", "--");
    let mut out: String = s
        .chars()
        .filter_map(|c| {
            if c.is_ascii_alphanumeric() || "-_.=+,@".contains(c) {
                Some(c)
            } else if c == '[' {
                // A directory name must not be a glob (`[k8s=1.34]` matches one character in a
                // shell, an upload step's path filter, or `gsutil`): the matrix opens with `.`.
                Some('.')
            } else if c == ']' {
                None
            } else {
                Some('_')
            }
        })
        .collect();
    if out.is_empty() || out.chars().all(|c| c == '.') {
        out = format!("_{out}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_stay_one_component() {
        assert_eq!(safe_name("istio[k8s=1.34]::mtls"), "istio.k8s=1.34--mtls");
        assert_eq!(
            safe_name("istio[k8s=1.33,mesh=1.30.3]::tls"),
            "istio.k8s=1.33,mesh=1.30.3--tls"
        );
        assert_eq!(safe_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(safe_name(".."), "_..");
        assert_eq!(safe_name("a\"b<c>|d*?e\nf"), "a_b_c__d__e_f");
    }

    #[test]
    fn rfc3339_is_utc_whole_seconds() {
        let t = time::macros::datetime!(2026-11-21 20:50:40.123 +02:00);
        assert_eq!(rfc3339(t), "2026-11-21T18:50:40Z");
    }
}
