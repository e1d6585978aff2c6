//! Waiting for objects to reach a state, always with a deadline, always explaining a timeout.
//!
//! Conditions are kube-runtime [`Condition`]s, so they compose with `.and()`, `.or()` and
//! `.not()`. The waits watch the object (a `watch` with a field selector on its name, re-listed
//! on errors) instead of polling, and remember the last state they saw: when the deadline
//! passes, [`KubeError::Timeout`] carries that state (replica counts, phase, conditions), which
//! is what a person needs to see why a run got stuck.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::pin::pin;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::wait::Condition;
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::call::call;
use super::error::KubeError;
use super::state::{describe, describe_value};

/// Server-side timeout of each watch request. Shorter than any sensible client read timeout,
/// so an idle watch ends cleanly and is renewed instead of tripping the read timeout.
pub const WATCH_TIMEOUT_SECS: u32 = 25;

/// Pause after a watch error before the watcher re-lists, so a persistent error does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(500);

/// Conditions usable with [`wait_for`]; all composable through [`Condition`].
pub mod conditions {
    use super::*;

    /// CRD has condition `Established=True`.
    pub fn crd_established() -> impl Condition<CustomResourceDefinition> {
        status_condition("Established", "True")
    }

    /// Deployment rolled out like `kubectl rollout status` decides it: the controller has seen
    /// the latest generation, and all desired replicas are updated and available with no old
    /// replicas left.
    pub fn deployment_rolled_out() -> impl Condition<Deployment> {
        |obj: Option<&Deployment>| {
            let Some(d) = obj else { return false };
            let Some(s) = &d.status else { return false };
            let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let gen = d.metadata.generation.unwrap_or(0);
            s.observed_generation.unwrap_or(0) >= gen
                && s.updated_replicas.unwrap_or(0) >= want
                && s.replicas.unwrap_or(0) <= s.updated_replicas.unwrap_or(0)
                && s.available_replicas.unwrap_or(0) >= want
        }
    }

    /// `status.conditions` contains an entry with `type == type_` and `status == status`
    /// (e.g. `Ready`/`True`, `Synced`/`False`). Gateway API routes keep their conditions per
    /// parent (`status.parents[].conditions`): there, every parent must have it (a route half
    /// its parents ignore is not in effect). Works for typed and dynamic objects.
    pub fn status_condition<K: Serialize>(type_: &str, status: &str) -> impl Condition<K> + use<K> {
        let (t, s) = (type_.to_string(), status.to_string());
        move |obj: Option<&K>| {
            let Some(o) = obj else { return false };
            let Ok(v) = serde_json::to_value(o) else {
                return false;
            };
            let has = |conditions: &serde_json::Value| {
                conditions.as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"].as_str() == Some(&t) && c["status"].as_str() == Some(&s))
                })
            };
            if has(&v["status"]["conditions"]) {
                return true;
            }
            v["status"]["parents"]
                .as_array()
                .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| has(&p["conditions"])))
        }
    }

    /// The object does not exist (any more).
    pub fn is_gone<K>() -> impl Condition<K> {
        |obj: Option<&K>| obj.is_none()
    }
}

/// Watches `name` through `api` until `cond` holds or `timeout` passes.
///
/// `kind` names the object in messages. Returns the object that satisfied the condition
/// (`None` if the condition was satisfied by absence).
pub async fn wait_for<K>(
    api: Api<K>,
    kind: &str,
    name: &str,
    timeout: Duration,
    cond: impl Condition<K>,
) -> Result<Option<K>, KubeError>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug + Send + 'static,
{
    let ns = api.namespace().map(str::to_string);
    let what = match &ns {
        Some(ns) => format!("{} {}/{}", kind, ns, name),
        None => format!("{} {}", kind, name),
    };
    let fields = format!("metadata.name={name}");
    let config = watcher::Config::default()
        .fields(&fields)
        .timeout(WATCH_TIMEOUT_SECS);
    // `None`: nothing observed yet; `Some(None)`: observed absent.
    let mut last: Option<Option<K>> = None;
    let mut last_err: Option<String> = None;
    let outcome = tokio::time::timeout(timeout, async {
        let mut stream = pin!(watcher(api.clone(), config));
        let mut seen_in_init = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => seen_in_init = false,
                Ok(Event::InitApply(o)) | Ok(Event::Apply(o)) => {
                    seen_in_init = true;
                    let hit = cond.matches_object(Some(&o));
                    last = Some(Some(o.clone()));
                    if hit {
                        return Some(o);
                    }
                }
                Ok(Event::Delete(_)) => {
                    last = Some(None);
                    if cond.matches_object(None) {
                        return None;
                    }
                }
                Ok(Event::InitDone) => {
                    if !seen_in_init {
                        last = Some(None);
                        if cond.matches_object(None) {
                            return None;
                        }
                    }
                }
                Err(e) => {
                    last_err = Some(e.to_string());
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
        // The watcher stream never ends on its own; treat an end like a stall.
        std::future::pending().await
    })
    .await;
    match outcome {
        Ok(found) => Ok(found),
        Err(_) => {
            let mut state = match &last {
                Some(obj) => describe(kind, obj.as_ref()),
                None => match call(&what, api.get_opt(name)).await {
                    Ok(obj) => describe(kind, obj.as_ref()),
                    Err(e) => format!("never observed ({e})"),
                },
            };
            if let Some(e) = last_err {
                state.push_str(&format!(" [last watch error: {e}]"));
            }
            Err(KubeError::Timeout {
                what,
                state,
                after: timeout,
            })
        }
    }
}

/// Waits until CRD `name` is `Established=True`.
pub async fn crd_established(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<CustomResourceDefinition, KubeError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let found = wait_for(
        api,
        "CustomResourceDefinition",
        name,
        timeout,
        conditions::crd_established(),
    )
    .await?;
    found.ok_or_else(|| KubeError::Invalid(format!("CRD {name} vanished")))
}

/// Waits until Deployment `ns/name` is rolled out (see [`conditions::deployment_rolled_out`]).
pub async fn deployment_rolled_out(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<Deployment, KubeError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let found = wait_for(
        api,
        "Deployment",
        name,
        timeout,
        conditions::deployment_rolled_out(),
    )
    .await?;
    found.ok_or_else(|| KubeError::Invalid(format!("deployment {ns}/{name} vanished")))
}

/// Waits until the custom resource `ns/name` (of resource `ar`; `ns` is `None` for
/// cluster-scoped kinds) has `status.conditions[type=type_].status == status`.
pub async fn custom_condition(
    client: &Client,
    ar: &ApiResource,
    ns: Option<&str>,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> Result<DynamicObject, KubeError> {
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    let found = wait_for(
        api,
        &ar.kind,
        name,
        timeout,
        conditions::status_condition::<DynamicObject>(type_, status),
    )
    .await?;
    found.ok_or_else(|| KubeError::Invalid(format!("{} {name} vanished", ar.kind)))
}

/// Waits until namespace `name` no longer exists (its finalization completed).
pub async fn namespace_gone(
    client: &Client,
    name: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    wait_for(api, "Namespace", name, timeout, conditions::is_gone()).await?;
    Ok(())
}

/// Waits until a function's Deployment and Service (both named `name` in `ns`, as faas-netes
/// makes them) are gone. faas-netes deletes them with foreground propagation and the watchdog
/// drains for ~30 s after SIGTERM (ledger OF-8), so a function redeployed right after its
/// deletion would collide with the objects still being deleted.
pub async fn function_gone(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), KubeError> {
    let start = std::time::Instant::now();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    wait_for(
        deployments,
        "Deployment",
        name,
        timeout,
        conditions::is_gone(),
    )
    .await?;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    let rest = timeout.saturating_sub(start.elapsed());
    wait_for(services, "Service", name, rest, conditions::is_gone()).await?;
    Ok(())
}

/// Whether a function's Deployment or Service is being deleted (has a deletion timestamp).
pub async fn function_deleting(client: &Client, ns: &str, name: &str) -> Result<bool, KubeError> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    let d = super::call::call(
        &format!("Deployment {ns}/{name}"),
        deployments.get_opt(name),
    )
    .await?;
    let s = super::call::call(&format!("Service {ns}/{name}"), services.get_opt(name)).await?;
    Ok(d.is_some_and(|d| d.metadata.deletion_timestamp.is_some())
        || s.is_some_and(|s| s.metadata.deletion_timestamp.is_some()))
}

/// Waits until there is a Node and every Node's `Ready` condition is `True`; on timeout the
/// error lists each node with its conditions.
pub async fn nodes_ready(client: &Client, timeout: Duration) -> Result<(), KubeError> {
    use k8s_openapi::api::core::v1::Node;
    let api: Api<Node> = Api::all(client.clone());
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let describe_nodes = |nodes: &[Node]| -> String {
        if nodes.is_empty() {
            return "no node has registered".into();
        }
        nodes
            .iter()
            .map(|n| {
                let conds = n
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .map(|cs| {
                        cs.iter()
                            .map(|c| {
                                format!(
                                    "{}={}{}",
                                    c.type_,
                                    c.status,
                                    c.message
                                        .as_deref()
                                        .map(|m| format!(" ({m})"))
                                        .unwrap_or_default()
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_else(|| "no conditions".into());
                format!(
                    "node {}: {conds}",
                    n.metadata.name.as_deref().unwrap_or("?")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let start = std::time::Instant::now();
    let mut last = Vec::new();
    loop {
        match call("nodes", api.list(&Default::default())).await {
            Ok(list) => {
                if !list.items.is_empty() && list.items.iter().all(ready) {
                    return Ok(());
                }
                last = list.items;
            }
            Err(e) if start.elapsed() >= timeout => return Err(e),
            Err(_) => {}
        }
        if start.elapsed() >= timeout {
            return Err(KubeError::Timeout {
                what: "every node Ready".into(),
                after: timeout,
                state: describe_nodes(&last),
            });
        }
        tokio::time::sleep(Duration::from_secs(2).min(timeout)).await;
    }
}

/// True when the pod's `Ready` condition is `True`.
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until at least `min` pods match `selector` in `ns` and every matching pod is Ready.
pub async fn pods_ready(
    client: &Client,
    ns: &str,
    selector: &str,
    min: usize,
    timeout: Duration,
) -> Result<Vec<Pod>, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let config = watcher::Config::default()
        .labels(selector)
        .timeout(WATCH_TIMEOUT_SECS);
    let mut pods: BTreeMap<String, Pod> = BTreeMap::new();
    let mut init: BTreeMap<String, Pod> = BTreeMap::new();
    let mut last_err: Option<String> = None;
    let satisfied =
        |pods: &BTreeMap<String, Pod>| pods.len() >= min.max(1) && pods.values().all(pod_is_ready);
    let outcome = tokio::time::timeout(timeout, async {
        let mut stream = pin!(watcher(api, config));
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => init.clear(),
                Ok(Event::InitApply(p)) => {
                    init.insert(p.metadata.name.clone().unwrap_or_default(), p);
                }
                Ok(Event::InitDone) => pods = std::mem::take(&mut init),
                Ok(Event::Apply(p)) => {
                    pods.insert(p.metadata.name.clone().unwrap_or_default(), p);
                }
                Ok(Event::Delete(p)) => {
                    pods.remove(p.metadata.name.as_deref().unwrap_or_default());
                }
                Err(e) => {
                    last_err = Some(e.to_string());
                    tokio::time::sleep(ERROR_PAUSE).await;
                    continue;
                }
            }
            if satisfied(&pods) {
                return;
            }
        }
        std::future::pending::<()>().await
    })
    .await;
    match outcome {
        Ok(()) => Ok(pods.into_values().collect()),
        Err(_) => {
            let mut state = if pods.is_empty() {
                "no pods match".to_string()
            } else {
                pods.values()
                    .map(|p| match serde_json::to_value(p) {
                        Ok(v) => describe_value("Pod", &v),
                        Err(_) => "pod ?".into(),
                    })
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            if let Some(e) = last_err {
                state.push_str(&format!(" [last watch error: {e}]"));
            }
            Err(KubeError::Timeout {
                what: format!("{} ready pod(s) matching {selector} in {ns}", min.max(1)),
                state,
                after: timeout,
            })
        }
    }
}
