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
    /// Applies a manifest meshproof generated. `secret` manifests are never printed, and are
    /// *created*, never applied over an object of the same name: a Secret the run did not make
    /// (a user's `openfaas/basic-auth` on an existing cluster) keeps its value and its owner.
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
        object: super::cluster::api::ObjectRef,
        why: String,
        then: Vec<Action>,
        otherwise: Vec<Action>,
    },
    /// Creates a namespace labelled with the run id. One that already exists is an error: the
    /// run would otherwise install into (and relabel for injection) a namespace it does not own.
    /// Components found on an existing cluster are refused or reused before any action runs
    /// ([`crate::stack::footprint`]), so this fires only for a namespace no footprint names.
    Namespace { name: String, labelled: String },
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
    /// The key a suite names it by (`cluster.reuse`).
    pub id: crate::scenario::StackComponent,
    pub component: &'static str,
    pub version: String,
    /// Objects whose presence on an existing cluster means the component is there already
    /// (see [`crate::stack::footprint`]).
    pub footprint: Vec<super::cluster::api::ObjectRef>,
    /// How to remove it from an existing cluster, beyond the labelled cleanup (see
    /// [`super::cluster::uninstall`]).
    pub uninstall: Vec<super::cluster::uninstall::Uninstall>,
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
    /// Found on an existing cluster and used as it was (`cluster.reuse`): `version` is the
    /// suite's pin, which the run did not install and did not check.
    pub reused: bool,
}

impl Action {
    /// A namespace created by meshproof (see [`Action::Namespace`]).
    pub fn namespace(
        name: &str,
        run_id: &str,
        data_plane: Option<crate::scenario::DataPlane>,
    ) -> Action {
        Action::Namespace {
            name: name.to_string(),
            labelled: super::manifests::namespace(name, Some(run_id), data_plane),
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
                        "create {what} (holds a secret generated or read at run time; never printed; an existing one is an error, never overwritten)"
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
                    "create Namespace {name} (one that exists already is an error: the run never installs into a namespace it did not create):"
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
    /// What the component means on an existing cluster: what refuses the run if found, and
    /// what removes it on teardown.
    pub fn existing_cluster_lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.footprint.is_empty() {
            let objects: Vec<String> = self.footprint.iter().map(ToString::to_string).collect();
            v.push(format!(
                "on an existing cluster: stop before installing if any of {} exists, unless `cluster.reuse` lists {} (then use it as found: no install, no uninstall)",
                objects.join(", "),
                self.id.key()
            ));
        }
        if !self.uninstall.is_empty() {
            v.push("on an existing cluster, teardown uninstalls it:".into());
            v.extend(
                self.uninstall
                    .iter()
                    .map(|u| format!("    {}", u.describe())),
            );
        }
        v
    }

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
    /// Labels what the run's applies create, so an existing cluster's teardown finds it.
    pub run_id: &'a str,
    pub log: &'a Log,
    pub redactor: &'a Redactor,
}

impl Exec<'_> {
    fn say(&self, line: &str) {
        (self.log)(&self.redactor.apply(line));
    }

    /// Creates the object in `manifest`; one that exists already is the error `taken`: the run
    /// never takes over what it did not make.
    async fn create_new(
        &self,
        what: &str,
        manifest: &str,
        taken: String,
    ) -> Result<(), StackError> {
        self.say(&format!("create {what}"));
        let created =
            self.api
                .create(self.target, manifest)
                .await
                .map_err(|e| StackError::Api {
                    what: what.to_string(),
                    source: e,
                })?;
        if created {
            Ok(())
        } else {
            Err(StackError::Invalid(taken))
        }
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
            reused: false,
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
                    .apply(self.target, &text, Some(self.run_id))
                    .await
                    .map_err(|e| StackError::Api {
                        what: format!("output of `{}`", cmd.display()),
                        source: e,
                    })
            }
            Action::Apply {
                what,
                manifest,
                secret: true,
            } => {
                self.create_new(
                    what,
                    manifest,
                    format!("{what}: a Secret of that name exists already and was not made by this run; meshproof never overwrites it"),
                )
                .await
            }
            Action::Apply {
                what,
                manifest,
                secret: false,
            } => {
                self.say(&format!("apply {what}"));
                self.api
                    .apply(self.target, manifest, Some(self.run_id))
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
            Action::Namespace { name, labelled } => {
                self.create_new(
                    &format!("Namespace {name}"),
                    labelled,
                    format!("Namespace {name} exists already and was not created by this run: meshproof does not install into a namespace it does not own (remove it, or reuse its component as it is with `cluster.reuse`)"),
                )
                .await
            }
            Action::ApplyUrl { url } => {
                self.say(&format!("apply {url}"));
                let text = fetch(url).await?;
                self.api
                    .apply(self.target, &text, Some(self.run_id))
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
/// `1.30.30`). `+` ends a word too: `helm version --short` prints `v3.19.0+g<commit>`.
pub fn reports_version(output: &str, pinned: &str) -> bool {
    output
        .split(|c: char| {
            c.is_whitespace() || matches!(c, ':' | ',' | '"' | '\'' | '(' | ')' | '=' | '+')
        })
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
        assert!(reports_version("v3.19.0+g3d8990f\n", "v3.19.0"));
        assert!(!reports_version("v3.19.01+g3d8990f\n", "v3.19.0"));
    }

    #[test]
    fn the_plan_says_what_refuses_an_existing_cluster_and_what_uninstalls() {
        use super::super::cluster::api::ObjectRef;
        use super::super::cluster::uninstall::Uninstall;
        let p = ComponentPlan {
            id: crate::scenario::StackComponent::OpenFaas,
            component: "OpenFaaS",
            version: "15.0.6".into(),
            footprint: vec![ObjectRef::namespace("openfaas")],
            uninstall: vec![Uninstall::Run(
                Cmd::new("helm").args(["uninstall", "openfaas"]),
            )],
            notes: vec![],
            actions: vec![],
        };
        let lines = p.existing_cluster_lines().join("\n");
        assert!(
            lines.contains("stop before installing if any of Namespace openfaas exists, unless `cluster.reuse` lists openfaas"),
            "{lines}"
        );
        assert!(lines.contains("    $ helm uninstall openfaas"), "{lines}");
        let none = ComponentPlan {
            footprint: vec![],
            uninstall: vec![],
            ..p
        };
        assert!(none.existing_cluster_lines().is_empty());
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
