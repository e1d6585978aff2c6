//! OpenFaaS functions and the gateway: the gateway port-forward with the basic-auth
//! credentials (the password joins the redactor before anything can log it), deploying and
//! removing functions per edition, and finding a function's pod and the gateway's pod IPs.

use super::{Deployer, KubeTrial};
use crate::kubeops::call::call;
use crate::kubeops::portforward::{forward_service, PortForward};
use crate::kubeops::wait;
use crate::scenario_run::executor::TrialOps;
use crate::scenario_run::render::{FunctionRequest, ObjectRef};
use crate::vocab::{FUNCTIONS_NAMESPACE, GATEWAY_NAMESPACE};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// A function's Ready pod, found by its `faas_function` label.
pub(super) struct FunctionPod {
    pub(super) name: String,
    /// The function's own container (where an ephemeral capture container attaches).
    pub(super) container: String,
    pub(super) pod: Pod,
}

/// How long a deleted function's Deployment and Service may take to disappear: the foreground
/// deletion waits for its pods, whose watchdog drains for `write_timeout` (30 s) after SIGTERM
/// within the default 30 s grace period.
const FUNCTION_GONE: Duration = Duration::from_secs(120);

/// Deadline of one request through the gateway.
pub(super) const GATEWAY_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) struct Gateway {
    /// Where requests go: the port-forward's local end, or [`KubeTrial::with_gateway_at`]'s.
    base: SocketAddr,
    /// Held so the port-forward lives as long as the trial; `None` when the gateway is reached
    /// at an address of the caller's.
    _forward: Option<PortForward>,
    user: String,
    password: String,
    http: reqwest::Client,
}

fn is_meshproof_sidecar(name: &str) -> bool {
    matches!(
        name,
        "istio-proxy" | "linkerd-proxy" | "istio-init" | "linkerd-init"
    )
}

impl KubeTrial {
    /// The gateway port-forward and credentials, set up on first use.
    pub(super) async fn gateway(&mut self) -> Result<&Gateway, String> {
        if self.gateway.is_none() {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), GATEWAY_NAMESPACE);
            let s = call("secret openfaas/basic-auth", secrets.get("basic-auth"))
                .await
                .map_err(|e| e.to_string())?;
            let data = s.data.unwrap_or_default();
            let field = |k: &str| {
                data.get(k)
                    .map(|b| String::from_utf8_lossy(&b.0).trim().to_string())
                    .ok_or_else(|| format!("secret openfaas/basic-auth has no key {k}"))
            };
            let user = field("basic-auth-user")?;
            let password = field("basic-auth-password")?;
            self.cfg.redactor.add(&password);
            let (base, forward) = match self.gateway_at {
                Some(addr) => (addr, None),
                None => {
                    let pf = forward_service(
                        &self.streaming,
                        GATEWAY_NAMESPACE,
                        "gateway",
                        8080,
                        ([127, 0, 0, 1], 0).into(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    (pf.local_addr(), Some(pf))
                }
            };
            let http = reqwest::Client::builder()
                .timeout(GATEWAY_REQUEST_TIMEOUT)
                .connect_timeout(GATEWAY_REQUEST_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())?;
            self.gateway = Some(Gateway {
                base,
                _forward: forward,
                user,
                password,
                http,
            });
        }
        self.gateway
            .as_ref()
            .ok_or_else(|| "no gateway".to_string())
    }

    pub(super) async fn gateway_base(&mut self) -> Result<String, String> {
        Ok(format!("http://{}", self.gateway().await?.base))
    }

    /// `/system/functions` with basic auth; returns status and body (redacted).
    pub(super) async fn system_functions(
        &mut self,
        method: reqwest::Method,
        body: &Value,
    ) -> Result<(u16, String), String> {
        let g = self.gateway().await?;
        let url = format!("http://{}/system/functions", g.base);
        let r = g
            .http
            .request(method.clone(), &url)
            .basic_auth(&g.user, Some(&g.password))
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{method} /system/functions: {e}"))?;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        Ok((status, self.redact(text.trim())))
    }

    /// The Ready pod of function `name` and its function container.
    pub(super) async fn function_pod(&self, name: &str) -> Result<FunctionPod, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), FUNCTIONS_NAMESPACE);
        let list = call(
            &format!("pods of function {name}"),
            pods.list(&ListParams::default().labels(&format!("faas_function={name}"))),
        )
        .await
        .map_err(|e| e.to_string())?;
        // The newest Ready pod: right after a function is re-created, a pod of the deleted
        // Deployment may still be Ready without a deletion timestamp yet.
        let pod = list
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && wait::pod_is_ready(p))
            .max_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp))
            .ok_or_else(|| format!("no Ready pod of function {name} (label faas_function={name}) in {FUNCTIONS_NAMESPACE}"))?;
        let containers: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.clone()))
            .collect();
        let container = containers
            .iter()
            .find(|c| c.as_str() == name)
            .or_else(|| containers.iter().find(|c| !is_meshproof_sidecar(c)))
            .cloned()
            .ok_or_else(|| format!("pod of function {name} has no application container"))?;
        Ok(FunctionPod {
            name: pod.metadata.name.clone().unwrap_or_default(),
            container,
            pod,
        })
    }

    /// The IPs of the OpenFaaS gateway's Ready pods: the only peers whose traffic with a
    /// function the mtls check judges.
    pub(super) async fn gateway_pod_ips(&self) -> Result<Vec<std::net::IpAddr>, String> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), GATEWAY_NAMESPACE);
        let list = call(
            "gateway pods",
            pods.list(&ListParams::default().labels("app=gateway")),
        )
        .await
        .map_err(|e| e.to_string())?;
        let ips: Vec<std::net::IpAddr> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && wait::pod_is_ready(p))
            .flat_map(|p| p.status.iter().flat_map(|s| s.pod_ips.iter().flatten()))
            .filter_map(|ip| ip.ip.parse().ok())
            .collect();
        if ips.is_empty() {
            return Err(format!(
                "no Ready gateway pod (label app=gateway) with an IP in {GATEWAY_NAMESPACE}"
            ));
        }
        Ok(ips)
    }

    /// Deploys a function the way the edition does: a Function object on Pro, the gateway
    /// REST API on CE (an existing function, from a re-run, is updated in place).
    pub(super) async fn deploy_function(&mut self, f: &FunctionRequest) -> Result<(), String> {
        // A previous trial's function of the same name may still be going (foreground delete,
        // the watchdog draining): wait it out rather than update over it — faas-netes answers
        // a POST during the delete with a 500 (ledger OF-8).
        if wait::function_deleting(&self.client, FUNCTIONS_NAMESPACE, &f.service)
            .await
            .map_err(|e| e.to_string())?
        {
            wait::function_gone(&self.client, FUNCTIONS_NAMESPACE, &f.service, FUNCTION_GONE)
                .await
                .map_err(|e| format!("the previous {} is still being deleted: {e}", f.service))?;
        }
        match self.cfg.deployer {
            Deployer::FunctionCrd => {
                self.apply(&f.function_cr_yaml(FUNCTIONS_NAMESPACE)).await?;
                Ok(())
            }
            Deployer::Gateway => {
                let body = f.gateway_body();
                let (status, text) = self.system_functions(reqwest::Method::POST, &body).await?;
                if (200..300).contains(&status) {
                    return Ok(());
                }
                // An existing function (from a re-run) is updated in place.
                if status == 409 || text.contains("already exists") {
                    let (status, text) = self.system_functions(reqwest::Method::PUT, &body).await?;
                    if (200..300).contains(&status) {
                        return Ok(());
                    }
                    return Err(format!(
                        "PUT /system/functions for {}: HTTP {status}: {text}",
                        f.service
                    ));
                }
                Err(format!(
                    "POST /system/functions for {}: HTTP {status}: {text}",
                    f.service
                ))
            }
        }
    }

    /// Removes a function and waits until its Deployment and Service are gone; one that is
    /// already gone is fine.
    pub(super) async fn delete_function(&mut self, name: &str) -> Result<(), String> {
        self.request_function_deletion(name).await?;
        wait::function_gone(&self.client, FUNCTIONS_NAMESPACE, name, FUNCTION_GONE)
            .await
            .map_err(|e| self.redact(format!("function {name} was deleted but lingers: {e}")))
    }

    async fn request_function_deletion(&mut self, name: &str) -> Result<(), String> {
        match self.cfg.deployer {
            Deployer::FunctionCrd => {
                let o = ObjectRef {
                    api_version: "openfaas.com/v1".into(),
                    kind: "Function".into(),
                    namespace: Some(FUNCTIONS_NAMESPACE.into()),
                    name: name.into(),
                };
                self.delete_object(&o).await.map_err(|e| self.redact(e))
            }
            Deployer::Gateway => {
                let (status, text) = self
                    .system_functions(
                        reqwest::Method::DELETE,
                        &serde_json::json!({ "functionName": name }),
                    )
                    .await?;
                if (200..300).contains(&status) || status == 404 {
                    Ok(())
                } else {
                    Err(format!(
                        "DELETE /system/functions {name}: HTTP {status}: {text}"
                    ))
                }
            }
        }
    }
}
