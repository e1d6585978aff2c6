//! `conformance-report.yaml`: the run's results per conformance profile, in the shape mesh
//! vendors already publish for Gateway API.
//!
//! The shape is the Gateway API `ConformanceReport` as read at **kubernetes-sigs/gateway-api
//! v1.5.1**, `conformance/apis/v1/` (`conformancereport.go`, `profilereport.go`,
//! `statistics.go`, `result.go`; CONTRACTS.md GW-7): `apiVersion`, `kind`, `implementation
//! {organization, project, url, version, contact[]}`, `date`, `mode`, `profiles[] {name,
//! summary, core {result, statistics {Passed, Failed, Skipped}, skippedTests, failedTests}}`.
//! `Statistics` has no JSON tags upstream, so its keys are the Go field names, capitalised.
//!
//! What differs, and why:
//! - `apiVersion` is meshproof's own group (`meshproof/v1`), so that no tool reads this as a
//!   Gateway API conformance claim; `kind` is the same.
//! - `gatewayAPIVersion` and `gatewayAPIChannel` are left out: meshproof does not test Gateway
//!   API, and an empty or made-up version would be a claim.
//! - `extended` is left out (upstream omits it when nil): every scenario a suite lists is
//!   required, meshproof has no optional feature set, so everything is `core`.
//! - Test names are trial ids (`<environment>::<scenario>`): one scenario runs in several
//!   environments (Kubernetes minors), and each run is a result of its own.
//! - `result` follows meshproof's rule ([`Counts::status`], the same as `report.json`), not
//!   upstream's: nothing run, or anything ignored, is `partial`; an errored trial (no verdict) is
//!   counted in `Failed`, since it is not a pass.
//!
//! A teardown failure fails its suite in `report.json` and is an `<error>` in `junit.xml`, but is
//! no profile's result: it says nothing about the mesh.
//!
//! One report describes one implementation, which a suite fixes (its mesh): a run of one suite
//! writes `conformance-report.yaml`; a run of several writes `conformance-report-<suite>.yaml`
//! per suite, never one file mixing two meshes (the reporter, which owns every file name of the
//! report directory, names them).

use super::model::{Counts, Report, Status};
use super::ReportError;
use crate::scenario::{Catalog, Check, Scenario, Step};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The file name when the run covers one suite.
pub const CONFORMANCE_YAML: &str = "conformance-report.yaml";
/// The upstream release the shape was read from.
pub const UPSTREAM_TAG: &str = "v1.5.1";
/// meshproof's own group: the shape is Gateway API's, the claim is not.
pub const API_VERSION: &str = "meshproof/v1";
/// As upstream (`conformance/utils/suite/suite.go`: `Kind: "ConformanceReport"`).
pub const KIND: &str = "ConformanceReport";
/// What an implementation field says when nobody gave it.
pub const UNKNOWN: &str = "unknown";

/// A meshproof conformance profile: one property of a mesh running OpenFaaS, named after the
/// check kind that decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Profile {
    #[serde(rename = "MESH-MTLS")]
    MeshMtls,
    #[serde(rename = "MESH-AUTHZ")]
    MeshAuthz,
    #[serde(rename = "MESH-SPLIT")]
    MeshSplit,
    #[serde(rename = "INGRESS-TLS")]
    IngressTls,
    #[serde(rename = "DR-RESTORE")]
    DrRestore,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::MeshMtls,
        Profile::MeshAuthz,
        Profile::MeshSplit,
        Profile::IngressTls,
        Profile::DrRestore,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Profile::MeshMtls => "MESH-MTLS",
            Profile::MeshAuthz => "MESH-AUTHZ",
            Profile::MeshSplit => "MESH-SPLIT",
            Profile::IngressTls => "INGRESS-TLS",
            Profile::DrRestore => "DR-RESTORE",
        }
    }

    /// What a `success` in this profile claims, for the submission README.
    pub fn claim(self) -> &'static str {
        match self {
            Profile::MeshMtls => "gateway-to-function traffic is mutual TLS on the wire and carries the gateway's mesh identity, and a plaintext client is refused; an unmeshed twin seen in plaintext shows the capture was not blind",
            Profile::MeshAuthz => "the mesh's deny rules hold: functions cannot reach OpenFaaS core services or each other while the gateway still reaches functions, and each probe gave its other outcome before the policy existed",
            Profile::MeshSplit => "a weighted split between two function variants sends each its configured share, within tolerance at the stated confidence (sequential test), and follows the weights when they are changed live",
            Profile::IngressTls => "the ingress serves a certificate that chains to the cluster CA, matches the host, has enough days left and speaks a modern TLS version; the wrong host name and a different CA are rejected",
            Profile::DrRestore => "after the cluster is destroyed and rebuilt, GitOps and the restored sealing key bring every function and secret back; before the key is restored the secrets do not unseal",
        }
    }

    /// The profile a check decides.
    pub fn of(check: &Check) -> Profile {
        match check {
            Check::Mtls(_) => Profile::MeshMtls,
            Check::Deny(_) => Profile::MeshAuthz,
            Check::Canary(_) => Profile::MeshSplit,
            Check::Tls(_) => Profile::IngressTls,
            Check::Restore(_) => Profile::DrRestore,
        }
    }

    /// Every profile a scenario's checks decide (a trial counts once towards each).
    pub fn of_scenario(s: &Scenario) -> BTreeSet<Profile> {
        s.steps
            .iter()
            .filter_map(|st| match st {
                Step::Check(c) => Some(Profile::of(c)),
                _ => None,
            })
            .collect()
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Scenario name → the profiles its trials count towards.
pub type ProfileMap = BTreeMap<String, BTreeSet<Profile>>;

/// The profile map of a catalog's scenarios.
pub fn profile_map(catalog: &Catalog) -> ProfileMap {
    catalog
        .scenarios
        .iter()
        .map(|s| (s.name.as_str().to_string(), Profile::of_scenario(s)))
        .collect()
}

/// `conformance-report.yaml`. Field order and keys as upstream (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConformanceReport {
    pub api_version: String,
    pub kind: String,
    pub implementation: Implementation,
    /// RFC 3339, UTC: when the run finished (as `report.json`'s `finishedAt`).
    pub date: String,
    /// The suite: the mesh, its install mode and the OpenFaaS edition it was tested with.
    pub mode: String,
    pub profiles: Vec<ProfileReport>,
}

/// Upstream `Implementation`. Every field is required upstream (`Implementation.Validate`);
/// here a field nobody gave says [`UNKNOWN`] instead of guessing a vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Implementation {
    pub organization: String,
    pub project: String,
    pub url: String,
    pub version: String,
    pub contact: Vec<String>,
}

/// Upstream `ProfileReport` without `extended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileReport {
    pub name: Profile,
    pub summary: String,
    pub core: CoreStatus,
}

/// Upstream `Status`: `result` and `statistics`, and the test lists (omitted when empty, as
/// upstream's `omitempty`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CoreStatus {
    pub result: Status,
    pub statistics: Statistics,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_tests: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_tests: Vec<String>,
}

/// Upstream `Statistics`: no JSON tags there, so the keys are the capitalised Go names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statistics {
    #[serde(rename = "Passed")]
    pub passed: u32,
    #[serde(rename = "Skipped")]
    pub skipped: u32,
    #[serde(rename = "Failed")]
    pub failed: u32,
}

/// What whoever runs meshproof says about the implementation under test. Unset fields fall
/// back as [`Implementation`] says: project and version to the suite's mesh, the rest to
/// [`UNKNOWN`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImplementationArgs {
    pub organization: Option<String>,
    pub project: Option<String>,
    pub url: Option<String>,
    pub version: Option<String>,
    pub contact: Vec<String>,
}

impl ImplementationArgs {
    pub const ENV_ORGANIZATION: &'static str = "MESHPROOF_IMPLEMENTATION_ORGANIZATION";
    pub const ENV_PROJECT: &'static str = "MESHPROOF_IMPLEMENTATION_PROJECT";
    pub const ENV_URL: &'static str = "MESHPROOF_IMPLEMENTATION_URL";
    pub const ENV_VERSION: &'static str = "MESHPROOF_IMPLEMENTATION_VERSION";
    /// Comma-separated.
    pub const ENV_CONTACT: &'static str = "MESHPROOF_IMPLEMENTATION_CONTACT";

    /// From `MESHPROOF_IMPLEMENTATION_*` (what `meshproof certify --organization …` sets for
    /// the run it starts). Empty values count as unset.
    pub fn from_env() -> ImplementationArgs {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> ImplementationArgs {
        let one = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        ImplementationArgs {
            organization: one(Self::ENV_ORGANIZATION),
            project: one(Self::ENV_PROJECT),
            url: one(Self::ENV_URL),
            version: one(Self::ENV_VERSION),
            contact: one(Self::ENV_CONTACT)
                .map(|c| {
                    c.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The variables that carry these arguments to a run (unset ones left out).
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (k, v) in [
            (Self::ENV_ORGANIZATION, &self.organization),
            (Self::ENV_PROJECT, &self.project),
            (Self::ENV_URL, &self.url),
            (Self::ENV_VERSION, &self.version),
        ] {
            if let Some(v) = v {
                out.push((k, v.clone()));
            }
        }
        if !self.contact.is_empty() {
            out.push((Self::ENV_CONTACT, self.contact.join(",")));
        }
        out
    }
}

/// What the reporter needs to write the conformance reports.
#[derive(Debug, Clone, Default)]
pub struct Conformance {
    pub profiles: ProfileMap,
    pub implementation: ImplementationArgs,
}

/// The conformance report of one suite of a finished (redacted) report.
pub fn build(
    report: &Report,
    suite: &str,
    conf: &Conformance,
) -> Result<ConformanceReport, ReportError> {
    let envs: Vec<_> = report
        .environments
        .iter()
        .filter(|e| e.suite == suite)
        .collect();
    let first = |f: fn(&super::fingerprint::MeshFacts) -> &Option<String>| {
        envs.iter().find_map(|e| f(&e.fingerprint.mesh).clone())
    };
    let given = &conf.implementation;
    let implementation = Implementation {
        organization: given.organization.clone().unwrap_or_else(|| UNKNOWN.into()),
        project: given
            .project
            .clone()
            .or_else(|| first(|m| &m.name))
            .unwrap_or_else(|| UNKNOWN.into()),
        url: given.url.clone().unwrap_or_else(|| UNKNOWN.into()),
        version: given
            .version
            .clone()
            .or_else(|| first(|m| &m.version))
            .unwrap_or_else(|| UNKNOWN.into()),
        contact: if given.contact.is_empty() {
            vec![UNKNOWN.into()]
        } else {
            given.contact.clone()
        },
    };

    #[derive(Default)]
    struct Acc {
        counts: Counts,
        failed: Vec<String>,
        skipped: Vec<String>,
    }
    let mut acc: BTreeMap<Profile, Acc> = BTreeMap::new();
    for env in &envs {
        for t in &env.trials {
            let profiles = conf
                .profiles
                .get(&t.scenario)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| ReportError::Unprofiled {
                    trial: t.id.clone(),
                })?;
            for p in profiles {
                let a = acc.entry(*p).or_default();
                a.counts.add(&t.outcome);
                match t.outcome.label() {
                    "failed" | "errored" => a.failed.push(t.id.clone()),
                    "ignored" => a.skipped.push(t.id.clone()),
                    _ => {}
                }
            }
        }
    }
    let profiles = acc
        .into_iter()
        .map(|(p, a)| {
            let mut result = a.counts.status();
            if report.interrupted.is_some() && result == Status::Success {
                // The profile's trials that never ran are unknown (as in report.json).
                result = Status::Partial;
            }
            let statistics = Statistics {
                passed: a.counts.passed,
                skipped: a.counts.ignored,
                failed: a.counts.failed + a.counts.errored,
            };
            ProfileReport {
                name: p,
                summary: summary(result, &statistics),
                core: CoreStatus {
                    result,
                    statistics,
                    skipped_tests: a.skipped,
                    failed_tests: a.failed,
                },
            }
        })
        .collect();
    Ok(ConformanceReport {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        implementation,
        date: report
            .finished_at
            .clone()
            .unwrap_or_else(|| report.started_at.clone()),
        mode: suite.to_string(),
        profiles,
    })
}

/// Upstream's `buildSummary` wording ("Core tests succeeded."), with meshproof's counts.
fn summary(result: Status, s: &Statistics) -> String {
    match result {
        Status::Success => "Core tests succeeded.".into(),
        Status::Failure => format!("Core tests failed with {} test failures.", s.failed),
        Status::Partial if s.passed + s.skipped == 0 => "Core tests did not run.".into(),
        Status::Partial => format!(
            "Core tests partially succeeded with {} test skips.",
            s.skipped
        ),
    }
}

pub fn to_yaml(c: &ConformanceReport) -> Result<String, ReportError> {
    serde_yaml::to_string(c).map_err(|e| ReportError::Yaml(e.to_string()))
}

pub fn from_yaml(text: &str) -> Result<ConformanceReport, serde_yaml::Error> {
    serde_yaml::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(passed: u32, skipped: u32, failed: u32) -> Statistics {
        Statistics {
            passed,
            skipped,
            failed,
        }
    }

    #[test]
    fn summaries_follow_the_result() {
        assert_eq!(
            summary(Status::Success, &stats(3, 0, 0)),
            "Core tests succeeded."
        );
        assert_eq!(
            summary(Status::Failure, &stats(1, 0, 2)),
            "Core tests failed with 2 test failures."
        );
        assert_eq!(
            summary(Status::Partial, &stats(1, 2, 0)),
            "Core tests partially succeeded with 2 test skips."
        );
        assert_eq!(
            summary(Status::Partial, &stats(0, 0, 0)),
            "Core tests did not run."
        );
    }

    #[test]
    fn implementation_arguments_come_from_the_environment() {
        let env: BTreeMap<&str, &str> = [
            (ImplementationArgs::ENV_ORGANIZATION, "Example Mesh Co"),
            (ImplementationArgs::ENV_VERSION, " "),
            (ImplementationArgs::ENV_CONTACT, "@a, @b/team,,"),
        ]
        .into();
        let a = ImplementationArgs::from_lookup(|k| env.get(k).map(|v| v.to_string()));
        assert_eq!(a.organization.as_deref(), Some("Example Mesh Co"));
        assert_eq!(a.version, None, "blank is unset");
        assert_eq!(a.contact, ["@a", "@b/team"]);
        let back: BTreeMap<&str, String> = a.to_env().into_iter().collect();
        assert_eq!(ImplementationArgs::from_lookup(|k| back.get(k).cloned()), a);
    }
}
