//! Pod logs and namespace events, for diagnosis and for the failure dump.

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, LogParams};
use kube::Client;

use super::call::call;
use super::error::KubeError;

/// Logs of `ns/pod` (container `container` or the only one), at most the last `tail_lines`.
pub async fn pod_logs(
    client: &Client,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    tail_lines: Option<i64>,
) -> Result<String, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = LogParams {
        container: container.map(str::to_string),
        tail_lines,
        ..LogParams::default()
    };
    let what = match container {
        Some(c) => format!("logs of pod {ns}/{pod} container {c}"),
        None => format!("logs of pod {ns}/{pod}"),
    };
    call(&what, api.logs(pod, &lp)).await
}

/// Logs of `ns/pod` container `container` written in the last `since_seconds`, each line
/// prefixed with the API server's RFC 3339 timestamp (`timestamps=true`), so lines can be
/// placed in time whatever the container's own format.
pub async fn pod_logs_since(
    client: &Client,
    ns: &str,
    pod: &str,
    container: &str,
    since_seconds: i64,
) -> Result<String, KubeError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let lp = LogParams {
        container: Some(container.to_string()),
        since_seconds: Some(since_seconds.max(1)),
        timestamps: true,
        ..LogParams::default()
    };
    call(
        &format!("logs of pod {ns}/{pod} container {container}"),
        api.logs(pod, &lp),
    )
    .await
}

/// The time an event last happened: `lastTimestamp`, else `eventTime` (events.k8s.io-style
/// writers), else `firstTimestamp`, else its creation.
pub fn event_time(e: &Event) -> Option<Time> {
    e.last_timestamp
        .clone()
        .or_else(|| e.event_time.as_ref().map(|t| Time(t.0)))
        .or_else(|| e.first_timestamp.clone())
        .or_else(|| e.metadata.creation_timestamp.clone())
}

/// Events of namespace `ns`, oldest first.
pub async fn namespace_events(client: &Client, ns: &str) -> Result<Vec<Event>, KubeError> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut events = call(&format!("events in {ns}"), api.list(&ListParams::default()))
        .await?
        .items;
    events.sort_by_key(event_time);
    Ok(events)
}

/// One line per event: `time type reason kind/name: message (xN)`.
pub fn format_event(e: &Event) -> String {
    let when = event_time(e)
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| "-".into());
    let obj = &e.involved_object;
    let mut line = format!(
        "{when} {} {} {}/{}: {}",
        e.type_.as_deref().unwrap_or("-"),
        e.reason.as_deref().unwrap_or("-"),
        obj.kind.as_deref().unwrap_or("?"),
        obj.name.as_deref().unwrap_or("?"),
        e.message.as_deref().unwrap_or("").trim_end()
    );
    if let Some(n) = e.count.filter(|n| *n > 1) {
        line.push_str(&format!(" (x{n})"));
    }
    line
}
