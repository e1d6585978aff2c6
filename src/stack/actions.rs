//! Install steps as data: what a component's installer will do, built purely, then either
//! printed (`meshproof plan`) or executed. Because both read the same [`Action`]s — holding the
//! very [`Cmd`]s that run — the plan shows exactly what a run does.

use super::cluster::api::{ClusterApi, KubeTarget};
use super::{Log, StackError};
use crate::process::{Cmd, ProcessError, Redactor};
use std::time::Duration;

/// Timeout for downloading a release manifest.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// One thing an installer does.
#[derive(Clone)]
pub enum Action {
    /// Runs a CLI's version command and requires the suite's pinned version in its output:
    /// `istioctl install` and `linkerd install` install *their own* version.
    CheckVersion { cmd: Cmd, pinned: String },
    /// Runs a CLI to completion.
    Run { cmd: Cmd },
    /// Runs a CLI that prints manifests and applies its output. The output may hold private keys
    /// (`linkerd install` generates its identity issuer): never logged, dropped from errors.
    ApplyOutput { cmd: Cmd },
    /// Applies a manifest meshproof generated. `secret` manifests are never printed.
    Apply {
        what: String,
        manifest: String,
        secret: bool,
    },
    /// Server-side applies a change to objects an installer made; an object that is missing is
    /// an error, never created.
    Patch { what: String, manifest: String },
    /// Runs `then` when `object` exists, else `otherwise` (install, or upgrade what a previous
    /// run installed); `why` says what the object's presence means.
    IfExists {
        object: super::cluster::api::CoreObject,
        why: String,
        then: Vec<Action>,
        otherwise: Vec<Action>,
    },
    /// Creates a namespace labelled with the run id; if it already existed, applies only its mesh
    /// settings (`unlabelled`), so cleanup never deletes a namespace the run did not create.
    Namespace {
        name: String,
        labelled: String,
        unlabelled: String,
    },
    /// Downloads a release manifest and applies it.
    ApplyUrl { url: String },
    /// Planned, but its installer belongs to another issue: the plan prints the commands, a run
    /// stops with "not yet implemented".
    NotYet {
        what: String,
        commands: Vec<Cmd>,
        reason: String,
    },
}

/// One component's install.
#[derive(Clone)]
pub struct ComponentPlan {
    pub component: &'static str,
    pub version: String,
    /// One-line facts for the plan (values and why).
    pub notes: Vec<String>,
    pub actions: Vec<Action>,
}

/// What an executed component reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    pub component: String,
    /// The pinned version, confirmed by the CLI where one reports it.
    pub version: String,
}

impl Action {
    /// A namespace created by meshproof (see [`Action::Namespace`]).
    pub fn namespace(name: &str, run_id: &str, mesh: Option<crate::scenario::Mesh>) -> Action {
        Action::Namespace {
            name: name.to_string(),
            labelled: super::manifests::namespace(name, Some(run_id), mesh),
            unlabelled: super::manifests::namespace(name, None, mesh),
        }
    }

    /// The plan lines for this action.
    pub fn plan_lines(&self) -> Vec<String> {
        match self {
            Action::CheckVersion { cmd, pinned } => {
                vec![format!("$ {}   # must report {pinned}", cmd.display())]
            }
            Action::Run { cmd } => vec![format!("$ {}", cmd.display())],
            Action::ApplyOutput { cmd } => {
                vec![format!(
                    "$ {} | server-side apply (output never logged)",
                    cmd.display()
                )]
            }
            Action::Apply {
                what,
                manifest,
                secret,
            } => {
                if *secret {
                    vec![format!(
                        "server-side apply {what} (holds a secret generated or read at run time; never printed)"
                    )]
                } else {
                    let mut v = vec![format!("server-side apply {what}:")];
                    v.extend(manifest.lines().map(|l| format!("    {l}")));
                    v
                }
            }
            Action::Patch { what, manifest } => {
                let mut v = vec![format!(
                    "server-side apply to the existing {what} (an error if it is missing):"
                )];
                v.extend(manifest.lines().map(|l| format!("    {l}")));
                v
            }
            Action::IfExists {
                object,
                why,
                then,
                otherwise,
            } => {
                let mut v = vec![format!("if {object} exists ({why}):")];
                v.extend(
                    then.iter()
                        .flat_map(|a| a.plan_lines())
                        .map(|l| format!("    {l}")),
                );
                v.push("otherwise:".into());
                v.extend(
                    otherwise
                        .iter()
                        .flat_map(|a| a.plan_lines())
                        .map(|l| format!("    {l}")),
                );
                v
            }
            Action::Namespace { name, labelled, .. } => {
                let mut v = vec![format!(
                    "create Namespace {name} (if it already exists: apply only its mesh settings, no run-id label):"
                )];
                v.extend(labelled.lines().map(|l| format!("    {l}")));
                v
            }
            Action::ApplyUrl { url } => {
                vec![format!(
                    "server-side apply {url} (downloaded, timeout {}s)",
                    FETCH_TIMEOUT.as_secs()
                )]
            }
            Action::NotYet {
                what,
                commands,
                reason,
            } => {
                let mut v = vec![format!(
                    "not yet implemented: {what} ({reason}); it will run:"
                )];
                v.extend(commands.iter().map(|c| format!("$ {}", c.display())));
                v
            }
        }
    }
}

impl ComponentPlan {
    pub fn plan_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self.notes.clone();
        for a in &self.actions {
            v.extend(a.plan_lines());
        }
        v
    }
}

/// What executing actions needs.
pub struct Exec<'a> {
    pub api: &'a dyn ClusterApi,
    pub target: &'a KubeTarget,
    pub log: &'a Log,
    pub redactor: &'a Redactor,
}

impl Exec<'_> {
    fn say(&self, line: &str) {
        (self.log)(&self.redactor.apply(line));
    }

    /// Runs every action of a component in order; the first failure stops it.
    pub async fn component(&self, plan: &ComponentPlan) -> Result<Installed, StackError> {
        self.say(&format!("install {} {}", plan.component, plan.version));
        for a in &plan.actions {
            self.action(plan.component, a).await?;
        }
        self.say(&format!("installed {} {}", plan.component, plan.version));
        Ok(Installed {
            component: plan.component.to_string(),
            version: plan.version.clone(),
        })
    }

    /// Runs one action of `component`.
    pub async fn action(&self, component: &str, a: &Action) -> Result<(), StackError> {
        match a {
            Action::CheckVersion { cmd, pinned } => {
                self.say(&format!("$ {}", cmd.display()));
                let out = cmd.clone().redact(self.redactor).run().await?;
                let text = format!(
                    "{}{}",
                    out.stdout_str(),
                    String::from_utf8_lossy(&out.stderr)
                );
                if !reports_version(&text, pinned) {
                    return Err(StackError::VersionMismatch {
                        component: component.to_string(),
                        tool: cmd.program().to_string(),
                        found: text.lines().next().unwrap_or("").trim().to_string(),
                        pinned: pinned.clone(),
                    });
                }
                Ok(())
            }
            Action::Run { cmd } => {
                self.say(&format!("$ {}", cmd.display()));
                cmd.clone().redact(self.redactor).run().await?;
                Ok(())
            }
            Action::ApplyOutput { cmd } => {
                self.say(&format!("$ {} | apply", cmd.display()));
                let out = cmd
                    .clone()
                    .redact(self.redactor)
                    .run()
                    .await
                    .map_err(drop_stdout)?;
                let text = String::from_utf8(out.stdout).map_err(|_| {
                    StackError::Invalid(format!(
                        "`{}` printed something that is not UTF-8",
                        cmd.display()
                    ))
                })?;
                if text.trim().is_empty() {
                    return Err(StackError::Invalid(format!(
                        "`{}` printed no manifest",
                        cmd.display()
                    )));
                }
                self.api
                    .apply(self.target, &text)
                    .await
                    .map_err(|e| StackError::Api {
                        what: format!("output of `{}`", cmd.display()),
                        source: e,
                    })
            }
            Action::Apply { what, manifest, .. } => {
                self.say(&format!("apply {what}"));
                self.api
                    .apply(self.target, manifest)
                    .await
                    .map_err(|e| StackError::Api {
                        what: what.clone(),
                        source: e,
                    })
            }
            Action::IfExists {
                object,
                why,
                then,
                otherwise,
            } => {
                let found =
                    self.api
                        .exists(self.target, object)
                        .await
                        .map_err(|e| StackError::Api {
                            what: object.to_string(),
                            source: e,
                        })?;
                let branch = if found {
                    self.say(&format!("{object} exists: {why}"));
                    then
                } else {
                    otherwise
                };
                for a in branch {
                    Box::pin(self.action(component, a)).await?;
                }
                Ok(())
            }
            Action::Patch { what, manifest } => {
                self.say(&format!("patch {what}"));
                self.api
                    .patch_existing(self.target, manifest)
                    .await
                    .map_err(|e| StackError::Api {
                        what: what.clone(),
                        source: e,
                    })
            }
            Action::Namespace {
                name,
                labelled,
                unlabelled,
            } => {
                let what = format!("Namespace {name}");
                self.say(&format!("create {what}"));
                let created =
                    self.api
                        .create(self.target, labelled)
                        .await
                        .map_err(|e| StackError::Api {
                            what: what.clone(),
                            source: e,
                        })?;
                if !created {
                    self.say(&format!(
                        "{what} existed before this run: applying its mesh settings only; cleanup will not delete it"
                    ));
                    self.api
                        .apply(self.target, unlabelled)
                        .await
                        .map_err(|e| StackError::Api { what, source: e })?;
                }
                Ok(())
            }
            Action::ApplyUrl { url } => {
                self.say(&format!("apply {url}"));
                let text = fetch(url).await?;
                self.api
                    .apply(self.target, &text)
                    .await
                    .map_err(|e| StackError::Api {
                        what: url.clone(),
                        source: e,
                    })
            }
            Action::NotYet { what, reason, .. } => {
                Err(StackError::NotYet(format!("{what} ({reason})")))
            }
        }
    }
}

/// Whether a version command's output names `pinned` as a whole word (`1.30.3` must not match
/// `1.30.30`).
pub fn reports_version(output: &str, pinned: &str) -> bool {
    output
        .split(|c: char| c.is_whitespace() || matches!(c, ':' | ',' | '"' | '\'' | '(' | ')' | '='))
        .any(|w| {
            w == pinned
                || w.strip_prefix('v') == Some(pinned)
                || pinned.strip_prefix('v') == Some(w)
        })
}

fn drop_stdout(e: ProcessError) -> ProcessError {
    match e {
        ProcessError::Failed {
            cmdline,
            status,
            stderr,
            ..
        } => ProcessError::Failed {
            cmdline,
            status,
            stdout: "(not shown: may hold keys)".into(),
            stderr,
        },
        ProcessError::Timeout {
            cmdline,
            timeout,
            stderr,
            ..
        } => ProcessError::Timeout {
            cmdline,
            timeout,
            stdout: String::new(),
            stderr,
        },
        other => other,
    }
}

/// Downloads a manifest with a timeout; only `https://` (and `http://` for local test servers).
async fn fetch(url: &str) -> Result<String, StackError> {
    let err = |reason: String| StackError::Fetch {
        url: url.to_string(),
        reason,
    };
    let client = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .build()
        .map_err(|e| err(e.to_string()))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(err(format!("HTTP {status}")));
    }
    let text = resp.text().await.map_err(|e| err(e.to_string()))?;
    if text.trim().is_empty() {
        return Err(err("empty body".into()));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_match_is_whole_word() {
        assert!(reports_version("client version: 1.30.3\n", "1.30.3"));
        assert!(!reports_version("client version: 1.30.30\n", "1.30.3"));
        assert!(reports_version("edge-26.8.3\n", "edge-26.8.3"));
        assert!(!reports_version("edge-26.8.4\n", "edge-26.8.3"));
        assert!(reports_version("flux: v2.9.4", "v2.9.4"));
        assert!(reports_version("flux: 2.9.4", "v2.9.4"));
    }

    #[test]
    fn secret_applies_are_not_printed() {
        let a = Action::Apply {
            what: "Secret openfaas/basic-auth".into(),
            manifest: "password: hunter22".into(),
            secret: true,
        };
        let lines = a.plan_lines().join("\n");
        assert!(!lines.contains("hunter22"), "{lines}");
        let b = Action::Apply {
            what: "Namespace openfaas".into(),
            manifest: "kind: Namespace".into(),
            secret: false,
        };
        assert!(b.plan_lines().join("\n").contains("kind: Namespace"));
    }
}
