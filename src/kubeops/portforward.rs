//! Port-forwarding: a local TCP listener whose every connection is bridged to a pod port.
//!
//! kube's `Portforwarder` gives an in-memory stream per port; probes and HTTP clients need a
//! real socket, so each accepted connection opens its own port-forward stream and the two are
//! copied both ways. For a Service, its selector is resolved to one Ready pod and its port to
//! that pod's target port (numeric or named), like `kubectl port-forward svc/...` does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::call::call;
use super::error::KubeError;
use super::wait::pod_is_ready;

/// Deadline for opening the port-forward stream of one accepted connection.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// A running port-forward. Dropping it (or [`PortForward::stop`]) closes the listener.
pub struct PortForward {
    local_addr: SocketAddr,
    target: String,
    errors: Arc<Mutex<Vec<String>>>,
    stop_tx: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl PortForward {
    /// The local address to connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `pod ns/name:port` the connections go to.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Errors of connections so far (failed stream opens, server-side port errors).
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Stops accepting; connections in flight end when their peers close.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards `bind` (e.g. `127.0.0.1:0`) to port `port` of pod `ns/pod`.
pub async fn forward_pod(
    client: &Client,
    ns: &str,
    pod: &str,
    port: u16,
    bind: SocketAddr,
) -> Result<PortForward, KubeError> {
    let listener = TcpListener::bind(bind).await.map_err(|e| KubeError::Io {
        what: format!("binding port-forward listener on {bind}"),
        source: e,
    })?;
    let local_addr = listener.local_addr().map_err(|e| KubeError::Io {
        what: "port-forward listener address".into(),
        source: e,
    })?;
    let target = format!("pod {ns}/{pod}:{port}");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, mut stop_rx) = oneshot::channel();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let (pod, errs, tgt) = (pod.to_string(), errors.clone(), target.clone());
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = &mut stop_rx => return,
                a = listener.accept() => a,
            };
            let Ok((mut socket, _peer)) = accepted else {
                continue;
            };
            let (api, pod, errs, tgt) = (api.clone(), pod.clone(), errs.clone(), tgt.clone());
            tokio::spawn(async move {
                let record = |msg: String| {
                    if let Ok(mut e) = errs.lock() {
                        e.push(msg);
                    }
                };
                let mut pf = match call_open(&tgt, api.portforward(&pod, &[port])).await {
                    Ok(pf) => pf,
                    Err(e) => return record(e.to_string()),
                };
                let Some(mut upstream) = pf.take_stream(port) else {
                    return record(format!("{tgt}: no stream for port"));
                };
                let port_err = pf.take_error(port);
                if let Err(e) = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await {
                    record(format!("{tgt}: {e}"));
                }
                drop(upstream);
                if let Some(err) = port_err {
                    if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(1), err).await {
                        record(format!("{tgt}: {msg}"));
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), pf.join()).await;
            });
        }
    });
    Ok(PortForward {
        local_addr,
        target,
        errors,
        stop_tx: Some(stop_tx),
        task,
    })
}

async fn call_open<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, KubeError> {
    super::call::call_within(what, OPEN_TIMEOUT, fut).await
}

/// Forwards `bind` to Service `ns/svc` port `port`, through one Ready pod behind it.
pub async fn forward_service(
    client: &Client,
    ns: &str,
    svc: &str,
    port: u16,
    bind: SocketAddr,
) -> Result<PortForward, KubeError> {
    let (pod, target_port) = resolve_service(client, ns, svc, port).await?;
    forward_pod(client, ns, &pod, target_port, bind).await
}

/// The Ready pod (first by name) behind Service `ns/svc` and the pod port its `port` maps to.
pub async fn resolve_service(
    client: &Client,
    ns: &str,
    svc: &str,
    port: u16,
) -> Result<(String, u16), KubeError> {
    let object = format!("service {ns}/{svc}");
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let service = call(&object, services.get(svc)).await?;
    let spec = service.spec.unwrap_or_default();
    let selector = spec.selector.unwrap_or_default();
    if selector.is_empty() {
        return Err(KubeError::Invalid(format!(
            "{object} has no selector; cannot pick a pod"
        )));
    }
    let svc_port = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.port == i32::from(port))
        .ok_or_else(|| KubeError::Invalid(format!("{object} has no port {port}")))?;
    let label_selector = selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut ready: Vec<Pod> = call(
        &object,
        pods.list(&ListParams::default().labels(&label_selector)),
    )
    .await?
    .items
    .into_iter()
    .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_is_ready(p))
    .collect();
    ready.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let pod = ready.into_iter().next().ok_or_else(|| {
        KubeError::Invalid(format!("{object}: no Ready pod matches {label_selector}"))
    })?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let target = match svc_port.target_port {
        None => port,
        Some(IntOrString::Int(n)) => u16::try_from(n)
            .map_err(|_| KubeError::Invalid(format!("{object}: targetPort {n} out of range")))?,
        Some(IntOrString::String(name)) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| {
                KubeError::Invalid(format!(
                    "{object}: named targetPort {name:?} not found on pod {pod_name}"
                ))
            })?,
    };
    Ok((pod_name, target))
}
