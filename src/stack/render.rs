//! Every image an environment pulls, for `meshproof images` (issue #17): the suite's images by
//! role, and each installed component's images as its own CLI renders them for the pinned
//! version — the same commands the install runs, turned into their render-only form
//! (`helm template`, `istioctl manifest generate`, `linkerd install --ignore-cluster`,
//! `flux install --export`). Where a CLI is absent or fails, that component's list is reported
//! incomplete with the reason; nothing is guessed.

use super::actions::{Action, ComponentPlan};
use super::install::{self, InstallCtx, Secrets};
use crate::images::rendered::images_in;
use crate::process::Cmd;
use crate::scenario::{EnvironmentSpec, Suite};
use std::path::Path;
use std::time::Duration;

/// How long one render may take (a chart download included).
const RENDER_TIMEOUT: Duration = Duration::from_secs(180);

/// One image a run pulls.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedImage {
    pub image: String,
    /// The pin, when the reference carries one.
    pub digest: Option<String>,
    /// The suite role (`function`, `probe`, `capture`) or what runs it (`Deployment/x (c)`).
    pub role: String,
    /// `suite` or `<component> <version>`.
    pub source: String,
}

/// A list that could not be made, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Incomplete {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Inventory {
    pub images: Vec<ListedImage>,
    pub incomplete: Vec<Incomplete>,
}

/// What one component's images are rendered by.
#[derive(Clone)]
pub struct Render {
    pub source: String,
    /// Run first (`helm repo add`).
    pub setup: Vec<Cmd>,
    /// Prints the manifests; `None` when the component has no render-only form.
    pub render: Option<Cmd>,
    /// Why there is no render command, or what the rendered list leaves out.
    pub note: Option<String>,
}

/// Removes `flag VALUE` pairs and bare flags a render must not pass (cluster access, waits).
fn render_args(argv: &[String], drop_with_value: &[&str], drop_bare: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in argv {
        if skip {
            skip = false;
            continue;
        }
        if drop_with_value.contains(&a.as_str()) {
            skip = true;
            continue;
        }
        if drop_bare.contains(&a.as_str()) {
            continue;
        }
        out.push(a.clone());
    }
    out
}

fn with_envs(mut c: Cmd, from: &Cmd) -> Cmd {
    for (k, v) in from.envs() {
        c = c.env(k.clone(), v.clone());
    }
    c.timeout(RENDER_TIMEOUT)
}

/// The render-only form of an install command, if it has one.
fn render_of(cmd: &Cmd) -> Option<Cmd> {
    // A command with a secret argument is never re-run in another form: its value would lose
    // its redaction.
    if cmd.display().contains("***") {
        return None;
    }
    let args = cmd.argv();
    let access = ["--kubeconfig", "--kube-context", "--context", "--timeout"];
    match (cmd.program(), args.first().map(String::as_str)) {
        // `helm upgrade --install R CHART …` → `helm template R CHART …`.
        ("helm", Some("upgrade")) => {
            let rest = render_args(&args[1..], &access, &["--install", "--wait"]);
            Some(with_envs(Cmd::new("helm").arg("template").args(rest), cmd))
        }
        ("istioctl", Some("install")) => {
            let rest = render_args(&args[1..], &access, &["-y", "--skip-confirmation"]);
            Some(with_envs(
                Cmd::new("istioctl")
                    .args(["manifest", "generate"])
                    .args(rest),
                cmd,
            ))
        }
        // The CRDs carry no images; the control plane's render needs no cluster with
        // `--ignore-cluster` (ledger LD-2; never used to install: LD-3).
        ("linkerd", Some("install")) if !args.iter().any(|a| a == "--crds") => {
            let rest = render_args(&args[1..], &access, &[]);
            Some(with_envs(
                Cmd::new("linkerd")
                    .arg("install")
                    .arg("--ignore-cluster")
                    .args(rest),
                cmd,
            ))
        }
        // `flux install --export` prints the manifests instead of applying them
        // (fluxcd/flux2@v2.9.4 `cmd/flux/install.go:92-93,205-207`).
        ("flux", Some("install")) => {
            let rest = render_args(&args[1..], &access, &[]);
            Some(with_envs(
                Cmd::new("flux").arg("install").arg("--export").args(rest),
                cmd,
            ))
        }
        _ => None,
    }
}

/// The commands of a plan in the order a fresh install runs them (`IfExists` takes its
/// install branch).
fn fresh_install_cmds(actions: &[Action], out: &mut Vec<Cmd>) {
    for a in actions {
        match a {
            Action::Run { cmd } | Action::ApplyOutput { cmd } => out.push(cmd.clone()),
            Action::IfExists { otherwise, .. } => fresh_install_cmds(otherwise, out),
            _ => {}
        }
    }
}

/// How each component of a plan is rendered.
pub fn renders(plans: &[ComponentPlan]) -> Vec<Render> {
    plans
        .iter()
        .map(|p| {
            let mut cmds = Vec::new();
            fresh_install_cmds(&p.actions, &mut cmds);
            let setup: Vec<Cmd> = cmds
                .iter()
                .filter(|c| c.program() == "helm" && c.argv().first().is_some_and(|a| a == "repo"))
                .cloned()
                .collect();
            let render = cmds.iter().find_map(render_of);
            let note = match (&render, p.component) {
                (None, _) => Some(format!(
                    "{} is installed from a downloaded manifest or by meshproof itself; `meshproof images` does not download it",
                    p.component
                )),
                (Some(_), "istio") | (Some(_), "linkerd") => Some(
                    "the mesh's sidecar proxy is injected into pods at creation and is not in the rendered manifests".into(),
                ),
                _ => None,
            };
            Render {
                source: format!("{} {}", p.component, p.version),
                setup,
                render,
                note,
            }
        })
        .collect()
}

/// The suite's images, by role.
pub fn suite_images(suite: &Suite) -> Vec<ListedImage> {
    suite
        .images
        .iter()
        .map(|(role, image)| ListedImage {
            image: image.as_str().to_string(),
            digest: image.digest().map(str::to_string),
            role: role.key().to_string(),
            source: "suite".into(),
        })
        .collect()
}

/// The install plans of an environment, as a plan prints them (no cluster touched).
pub fn plans_for(suite: &Suite, env: &EnvironmentSpec, work_dir: &Path) -> Vec<ComponentPlan> {
    let target = super::cluster::api::KubeTarget {
        kubeconfig: work_dir.join("kubeconfig"),
        context: None,
    };
    let secrets = Secrets::placeholder();
    let ctx = InstallCtx {
        suite,
        env,
        target: &target,
        run_id: super::plan::PLAN_RUN_ID,
        work_dir,
        secrets: &secrets,
        gateway_api_base: install::gateway_api::DEFAULT_BASE_URL,
    };
    install::plans(&ctx)
}

/// Runs each render (setup first) and lists what it prints; a CLI that is absent or fails makes
/// that component incomplete, with the reason.
pub async fn inventory(suite: &Suite, renders: &[Render]) -> Inventory {
    let mut inv = Inventory {
        images: suite_images(suite),
        incomplete: Vec::new(),
    };
    'each: for r in renders {
        let Some(render) = &r.render else {
            if let Some(n) = &r.note {
                inv.incomplete.push(Incomplete {
                    source: r.source.clone(),
                    reason: n.clone(),
                });
            }
            continue;
        };
        for s in &r.setup {
            if let Err(e) = s.run().await {
                inv.incomplete.push(Incomplete {
                    source: r.source.clone(),
                    reason: format!("not rendered (`{}`): {e}", s.display()),
                });
                continue 'each;
            }
        }
        match render.run().await {
            Err(e) => inv.incomplete.push(Incomplete {
                source: r.source.clone(),
                reason: format!("not rendered (`{}`): {e}", render.display()),
            }),
            Ok(out) => match images_in(&out.stdout_str()) {
                Err(e) => inv.incomplete.push(Incomplete {
                    source: r.source.clone(),
                    reason: format!(
                        "`{}` printed something that is not YAML: {e}",
                        render.display()
                    ),
                }),
                Ok(found) => {
                    inv.images.extend(found.into_iter().map(|f| {
                        ListedImage {
                            digest: crate::images::ImageRef::parse(&f.image)
                                .ok()
                                .and_then(|i| i.digest().map(str::to_string)),
                            image: f.image,
                            role: f.used_by,
                            source: r.source.clone(),
                        }
                    }));
                    if let Some(n) = &r.note {
                        inv.incomplete.push(Incomplete {
                            source: r.source.clone(),
                            reason: n.clone(),
                        });
                    }
                }
            },
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(c: &Cmd) -> Vec<String> {
        let mut v = vec![c.program().to_string()];
        v.extend(c.argv());
        v
    }

    #[test]
    fn install_commands_become_their_render_only_form() {
        let helm = Cmd::new("helm").args([
            "upgrade",
            "--install",
            "openfaas",
            "openfaas/openfaas",
            "--version",
            "15.0.6",
            "--namespace",
            "openfaas",
            "--kubeconfig",
            "/k",
            "--wait",
            "--timeout",
            "10m",
            "--set",
            "a=b",
        ]);
        assert_eq!(
            argv(&render_of(&helm).unwrap()),
            [
                "helm",
                "template",
                "openfaas",
                "openfaas/openfaas",
                "--version",
                "15.0.6",
                "--namespace",
                "openfaas",
                "--set",
                "a=b"
            ]
        );
        let istio = Cmd::new("istioctl").args([
            "install",
            "-y",
            "--set",
            "profile=default",
            "--kubeconfig",
            "/k",
        ]);
        assert_eq!(
            argv(&render_of(&istio).unwrap()),
            [
                "istioctl",
                "manifest",
                "generate",
                "--set",
                "profile=default"
            ]
        );
        let crds = Cmd::new("linkerd").args(["install", "--crds"]);
        assert!(render_of(&crds).is_none());
        let flux = Cmd::new("flux").args(["install", "--kubeconfig", "/k"]);
        assert_eq!(
            argv(&render_of(&flux).unwrap()),
            ["flux", "install", "--export"]
        );
        assert!(render_of(&Cmd::new("kubectl").arg("apply")).is_none());
    }
}
