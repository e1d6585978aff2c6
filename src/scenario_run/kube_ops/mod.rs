//! The cluster half of a trial: [`TrialOps`] and the check drivers on the kube layer
//! ([`crate::kubeops`]) and the OpenFaaS gateway. One file per concern, named for the check
//! whose cluster side it holds:
//!
//! - this module: the trial's connection, and the generic steps — apply (server-side, field
//!   manager `meshproof`, never the stack's `meshproof-stack`; the run-id label on created
//!   objects), delete (by the objects a manifest names, resolved through discovery; absent is
//!   fine), wait, the failure dump;
//! - [`functions`]: OpenFaaS functions and the gateway — CE deploys through the gateway REST
//!   API (`/system/functions`, basic auth from the `basic-auth` secret, registered with the
//!   redactor and never logged) over a port-forward to `svc/gateway:8080`, Pro through
//!   `openfaas.com/v1` Function objects; a function's pod, the gateway's pod IPs;
//! - [`probes`]: probe pods and exec'd curl (the deny probes and the strict-mTLS client);
//! - [`deny`], [`mtls`], [`canary`], [`tls`], [`restore`]: each check's driver;
//! - [`ztunnel`]: Istio ambient's cluster side shared by deny and mtls — a pod's node's ztunnel
//!   and its access log over a window, and the waypoint pods of a namespace.

mod canary;
mod deny;
mod functions;
mod mtls;
mod probes;
pub mod restore;
mod tls;
mod ztunnel;

pub use deny::outside_classification;

use super::executor::{AppliedObject, TrialOps};
use super::render::{self, FunctionRequest, ObjectRef, WaitTarget};
use super::tracker::Tracker;
use crate::check::{CheckName, Outcome, Verdict};
use crate::kubeops::apply::{apply_yaml, ApplyAction, ApplyOptions};
use crate::kubeops::call::call;
use crate::kubeops::{
    client_from_kubeconfig, wait, ClientOptions, KubeError, RunId, FIELD_MANAGER,
};
use crate::process::Redactor;
use crate::scenario::template::Vars;
use crate::scenario::{Check, DataPlane, Mesh};
use crate::vocab::{FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject};
use kube::core::{GroupVersion, GroupVersionKind};
use kube::discovery::{self, Scope};
use kube::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a namespace deletion is waited on.
const NAMESPACE_GONE: Duration = Duration::from_secs(100);

/// OpenFaaS edition, as far as deploying functions is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployer {
    /// CE: the gateway REST API.
    Gateway,
    /// Pro: `openfaas.com/v1` Function objects.
    FunctionCrd,
}

/// Everything a trial needs to reach its environment.
#[derive(Debug, Clone)]
pub struct KubeTrialConfig {
    pub kubeconfig: PathBuf,
    pub context: Option<String>,
    pub mesh: Mesh,
    /// How workloads join the mesh (Istio: sidecars or ambient), which decides what the checks
    /// look for.
    pub data_plane: DataPlane,
    pub deployer: Deployer,
    pub run_id: RunId,
    /// The environment's secrets; the gateway password is added to it.
    pub redactor: Redactor,
    /// Private (0700) directory for files a check writes (the cluster CA).
    pub work_dir: PathBuf,
}

/// A trial bound to one cluster.
pub struct KubeTrial {
    client: Client,
    streaming: Client,
    cfg: KubeTrialConfig,
    gateway: Option<functions::Gateway>,
    /// Where to reach the gateway instead of a port-forward ([`KubeTrial::with_gateway_at`]).
    gateway_at: Option<std::net::SocketAddr>,
    /// The canary check's meshed client pod, started once per trial.
    canary_client: Option<String>,
    seq: u32,
}

impl KubeTrial {
    pub async fn connect(cfg: KubeTrialConfig) -> Result<KubeTrial, String> {
        let opts = ClientOptions {
            context: cfg.context.clone(),
            ..ClientOptions::default()
        };
        let client = client_from_kubeconfig(&cfg.kubeconfig, &opts)
            .await
            .map_err(|e| e.to_string())?;
        let sopts = ClientOptions {
            context: cfg.context.clone(),
            ..ClientOptions::streaming()
        };
        let streaming = client_from_kubeconfig(&cfg.kubeconfig, &sopts)
            .await
            .map_err(|e| e.to_string())?;
        Ok(KubeTrial {
            client,
            streaming,
            cfg,
            gateway: None,
            gateway_at: None,
            canary_client: None,
            seq: 0,
        })
    }

    /// Reaches the OpenFaaS gateway at `addr` instead of port-forwarding to `svc/gateway:8080`
    /// in `openfaas`. The port-forward needs a kubelet, so this is how a test double serving
    /// `/system/functions` stands in for the gateway (`tests/scenario_run_apiserver.rs`); the
    /// credentials still come from the cluster's `basic-auth` Secret, as in a run.
    pub fn with_gateway_at(mut self, addr: std::net::SocketAddr) -> KubeTrial {
        self.gateway_at = Some(addr);
        self.gateway = None;
        self
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The environment's secrets plus those this trial learned (the gateway password).
    pub fn redactor(&self) -> &Redactor {
        &self.cfg.redactor
    }

    fn redact(&self, text: impl std::fmt::Display) -> String {
        self.cfg.redactor.apply(&text.to_string())
    }

    fn next_id(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            run_id: Some(self.cfg.run_id.clone()),
            field_manager: FIELD_MANAGER.to_string(),
            ..ApplyOptions::default()
        }
    }

    /// Resolves a kind written in a wait target (`certificate`, `Certificate`, `certificates`,
    /// or qualified by its API group, `httproute.gateway.networking.k8s.io`) through discovery.
    pub async fn resolve_kind(&self, kind: &str) -> Result<(ApiResource, bool), String> {
        let mut gvs = vec![GroupVersion::gv("", "v1")];
        let groups = call("API group list", self.client.list_api_groups())
            .await
            .map_err(|e| e.to_string())?;
        for g in groups.groups {
            if let Some(v) = g
                .preferred_version
                .map(|v| v.version)
                .or_else(|| g.versions.first().map(|v| v.version.clone()))
            {
                gvs.push(GroupVersion::gv(&g.name, &v));
            }
        }
        let mut served = Vec::new();
        for gv in gvs {
            let Ok(group) = call(
                &format!("discovery of {}", gv.api_version()),
                discovery::pinned_group(&self.client, &gv),
            )
            .await
            else {
                continue;
            };
            served.extend(
                group
                    .recommended_resources()
                    .into_iter()
                    .map(|(ar, caps)| (ar, matches!(caps.scope, Scope::Namespaced))),
            );
        }
        render::pick_kind(kind, served)
    }

    async fn delete_object(&self, o: &ObjectRef) -> Result<(), String> {
        let (group, version) = match o.api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), o.api_version.clone()),
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &o.kind);
        let (ar, caps) = match call(
            &format!("discovery of {}", o.kind),
            discovery::pinned_kind(&self.client, &gvk),
        )
        .await
        {
            Ok(r) => r,
            // The kind is gone (its CRD was removed): so is the object.
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let api: Api<DynamicObject> = match (&caps.scope, &o.namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ar),
            (Scope::Namespaced, None) => Api::namespaced_with(self.client.clone(), "default", &ar),
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &ar),
        };
        match call(
            &o.to_string(),
            api.delete(&o.name, &DeleteParams::background()),
        )
        .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        if o.kind == "Namespace" && ar.group.is_empty() {
            wait::namespace_gone(&self.client, &o.name, NAMESPACE_GONE)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Applies `yaml` and records what it created.
    pub(super) async fn apply_tracked(
        &mut self,
        yaml: &str,
        tracker: &mut Tracker,
    ) -> Result<(), String> {
        for a in self.apply(yaml).await? {
            tracker.object(&a.object, a.created);
        }
        Ok(())
    }

    async fn run_check(
        &mut self,
        check: &Check,
        vars: &Vars,
        tracker: &mut Tracker,
    ) -> Result<Verdict<Value>, String> {
        match check {
            Check::Deny(d) => self.deny(d, vars, tracker).await,
            Check::Mtls(m) => self.mtls(m, vars, tracker).await,
            Check::Canary(c) => self.canary(c, vars, tracker).await,
            Check::Tls(t) => self.tls(t, vars).await,
            Check::Restore(_) => Ok(restore::without_lifecycle()),
        }
    }
}

impl TrialOps for KubeTrial {
    async fn apply(&mut self, yaml: &str) -> Result<Vec<AppliedObject>, String> {
        let named = render::objects_of(yaml, "default").map_err(|e| self.redact(e))?;
        // Certificates' Secrets that do not exist yet are this trial's too (cert-manager
        // writes them and does not delete them with the Certificate). Listed first, so that
        // cleanup, newest first, removes each Certificate before its Secret.
        let mut secrets = Vec::new();
        for s in render::certificate_secrets(yaml, "default").map_err(|e| self.redact(e))? {
            let ns = s.namespace.clone().unwrap_or_else(|| "default".into());
            let api: Api<k8s_openapi::api::core::v1::Secret> =
                Api::namespaced(self.client.clone(), &ns);
            let existed = call(
                &format!("secret {ns}/{}", s.name),
                api.get_metadata_opt(&s.name),
            )
            .await
            .map_err(|e| self.redact(e))?
            .is_some();
            secrets.push(AppliedObject {
                object: s,
                created: !existed,
            });
        }
        let applied = apply_yaml(&self.client, yaml, &self.apply_options())
            .await
            .map_err(|e| self.redact(e))?;
        Ok(secrets
            .into_iter()
            .chain(applied.iter().map(|a| {
                let object = named
                    .iter()
                    .find(|o| {
                        o.kind == a.kind
                            && o.name == a.name
                            && (o.namespace.is_none() || o.namespace == a.namespace)
                    })
                    .cloned()
                    .unwrap_or_else(|| ObjectRef {
                        api_version: String::new(),
                        kind: a.kind.clone(),
                        namespace: a.namespace.clone(),
                        name: a.name.clone(),
                    });
                let object = ObjectRef {
                    namespace: a.namespace.clone().or(object.namespace.clone()),
                    ..object
                };
                AppliedObject {
                    object,
                    created: a.action == ApplyAction::Created,
                }
            }))
            .collect())
    }

    async fn delete(&mut self, objects: &[ObjectRef]) -> Result<(), String> {
        let mut errors = Vec::new();
        for o in objects {
            if let Err(e) = self.delete_object(o).await {
                errors.push(format!("{o}: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(self.redact(errors.join("; ")))
        }
    }

    async fn deploy(&mut self, f: &FunctionRequest) -> Result<(), String> {
        self.deploy_function(f).await
    }

    async fn remove_function(&mut self, name: &str) -> Result<(), String> {
        self.delete_function(name).await
    }

    async fn wait(&mut self, target: &WaitTarget, timeout: Duration) -> Result<(), String> {
        let r = match target {
            WaitTarget::Rollout { namespace, name } => {
                wait::deployment_rolled_out(&self.client, namespace, name, timeout)
                    .await
                    .map(|_| ())
            }
            WaitTarget::PodsReady {
                namespace,
                selector,
            } => wait::pods_ready(&self.client, namespace, selector, 1, timeout)
                .await
                .map(|_| ()),
            WaitTarget::Established { name } => wait::crd_established(&self.client, name, timeout)
                .await
                .map(|_| ()),
            WaitTarget::Condition {
                kind,
                namespace,
                name,
                type_,
                status,
            } => {
                let (ar, namespaced) = self.resolve_kind(kind).await?;
                let ns = if namespaced {
                    Some(namespace.as_deref().unwrap_or("default"))
                } else {
                    None
                };
                wait::custom_condition(&self.client, &ar, ns, name, type_, status, timeout)
                    .await
                    .map(|_| ())
            }
        };
        r.map_err(|e: KubeError| self.redact(e))
    }

    async fn check(&mut self, check: &Check, vars: &Vars, tracker: &mut Tracker) -> Verdict<Value> {
        let name = match check {
            Check::Mtls(_) => CheckName::Mtls,
            Check::Deny(_) => CheckName::Http,
            Check::Canary(_) => CheckName::Canary,
            Check::Tls(_) => CheckName::Tls,
            Check::Restore(_) => CheckName::Restore,
        };
        match self.run_check(check, vars, tracker).await {
            Ok(mut v) => {
                v.reasons = v.reasons.iter().map(|r| self.redact(r)).collect();
                v
            }
            Err(e) => Verdict::new(
                name,
                Outcome::Error,
                vec![format!(
                    "{} check could not run: {}",
                    check.kind(),
                    self.redact(e)
                )],
                Value::Null,
            ),
        }
    }

    async fn dump(&mut self, dir: &Path) -> Result<(), String> {
        crate::private_fs::private_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let r = crate::kubeops::dump::dump_namespaces(
            &self.client,
            &[GATEWAY_NAMESPACE, FUNCTIONS_NAMESPACE],
            dir,
        )
        .await
        .map_err(|e| self.redact(e))?;
        if r.errors.is_empty() {
            Ok(())
        } else {
            Err(self.redact(r.errors.join("; ")))
        }
    }
}
