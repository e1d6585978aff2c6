//! Human-readable one-line summaries of an object's current state, for timeout errors.
//!
//! A wait that times out is only useful if it says *where* the object got stuck, e.g.
//! `deployment openfaas-fn/env: 0/1 updated, 0 available, conditions: Progressing=True
//! (ReplicaSetUpdated)`. These functions work on the JSON form so they cover typed and dynamic
//! objects alike.

use serde::Serialize;
use serde_json::Value;

/// Summarises any object: kind-specific replica counts where they apply, then phase and
/// `status.conditions`.
pub fn describe<K: Serialize>(kind: &str, obj: Option<&K>) -> String {
    match obj {
        None => format!("{} does not exist", kind.to_lowercase()),
        Some(o) => match serde_json::to_value(o) {
            Ok(v) => describe_value(kind, &v),
            Err(e) => format!("{kind}: unrepresentable ({e})"),
        },
    }
}

/// Like [`describe`], on a JSON value.
pub fn describe_value(kind: &str, v: &Value) -> String {
    let meta = &v["metadata"];
    let name = meta["name"].as_str().unwrap_or("?");
    let id = match meta["namespace"].as_str() {
        Some(ns) => format!("{}/{}", ns, name),
        None => name.to_string(),
    };
    let status = &v["status"];
    let mut parts: Vec<String> = Vec::new();
    if kind == "Deployment" || kind == "StatefulSet" || kind == "ReplicaSet" {
        let want = v["spec"]["replicas"].as_i64().unwrap_or(1);
        let updated = status["updatedReplicas"].as_i64().unwrap_or(0);
        let available = status["availableReplicas"].as_i64().unwrap_or(0);
        let ready = status["readyReplicas"].as_i64().unwrap_or(0);
        let gen = meta["generation"].as_i64().unwrap_or(0);
        let observed = status["observedGeneration"].as_i64().unwrap_or(0);
        parts.push(format!(
            "{updated}/{want} updated, {ready} ready, {available} available, observedGeneration {observed}/{gen}"
        ));
    }
    if let Some(phase) = status["phase"].as_str() {
        parts.push(format!("phase {phase}"));
    }
    // Init containers too: a native sidecar (Istio on Kubernetes >= 1.33, Linkerd's proxy by
    // default since 2.20: IS-15) is an init container with `restartPolicy: Always`, and a
    // crash-looping proxy shows only there.
    for (key, what) in [
        ("initContainerStatuses", "init container"),
        ("containerStatuses", "container"),
        ("ephemeralContainerStatuses", "container"),
    ] {
        if let Some(list) = status[key].as_array() {
            for c in list {
                parts.push(format!(
                    "{what} {}: {}",
                    c["name"].as_str().unwrap_or("?"),
                    container_state(&c["state"])
                ));
            }
        }
    }
    if meta["deletionTimestamp"].is_string() {
        parts.push("terminating".into());
    }
    parts.push(format!("conditions: {}", conditions(status)));
    format!("{} {}: {}", kind.to_lowercase(), id, parts.join(", "))
}

/// `running`, `waiting (Reason)` or `terminated (Reason, exit N)`.
pub fn container_state(state: &Value) -> String {
    if state["running"].is_object() {
        "running".into()
    } else if let Some(w) = state["waiting"].as_object() {
        format!(
            "waiting ({})",
            w.get("reason").and_then(Value::as_str).unwrap_or("-")
        )
    } else if let Some(t) = state["terminated"].as_object() {
        format!(
            "terminated ({}, exit {})",
            t.get("reason").and_then(Value::as_str).unwrap_or("-"),
            t.get("exitCode").and_then(Value::as_i64).unwrap_or(-1)
        )
    } else {
        "unknown".into()
    }
}

/// `Type=Status (Reason): message` for each entry of `status.conditions` — and, for Gateway API
/// routes, of each `status.parents[].conditions`, prefixed with the parent — or `none`.
pub fn conditions(status: &Value) -> String {
    let own = own_conditions(status);
    let parents: Vec<String> = status["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let r = &p["parentRef"];
            let name = format!(
                "{}/{}",
                r["kind"].as_str().unwrap_or("?"),
                r["name"].as_str().unwrap_or("?")
            );
            format!("parent {name}: {}", own_conditions(p))
        })
        .collect();
    match (own.as_str(), parents.is_empty()) {
        (_, true) => own,
        ("none", false) => parents.join("; "),
        _ => format!("{own}; {}", parents.join("; ")),
    }
}

fn own_conditions(status: &Value) -> String {
    let Some(list) = status["conditions"].as_array() else {
        return "none".into();
    };
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|c| {
            let mut s = format!(
                "{}={}",
                c["type"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?")
            );
            if let Some(r) = c["reason"].as_str().filter(|r| !r.is_empty()) {
                s.push_str(&format!(" ({r})"));
            }
            if let Some(m) = c["message"].as_str().filter(|m| !m.is_empty()) {
                s.push_str(&format!(": {m}"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_summary_names_counts_and_conditions() {
        let d = json!({
            "metadata": {"name": "env", "namespace": "openfaas-fn", "generation": 2},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 2, "updatedReplicas": 0,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
        });
        let s = describe_value("Deployment", &d);
        assert!(
            s.starts_with("deployment openfaas-fn/env: 0/1 updated"),
            "{s}"
        );
        assert!(s.contains("0 available"), "{s}");
        assert!(s.contains("Progressing=True (ReplicaSetUpdated)"), "{s}");
    }

    #[test]
    fn a_crash_looping_native_sidecar_is_named() {
        let pod = json!({
            "metadata": {"name": "env-1", "namespace": "openfaas-fn"},
            "status": {
                "phase": "Pending",
                "initContainerStatuses": [
                    {"name": "linkerd-proxy", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ],
                "containerStatuses": [
                    {"name": "env", "state": {"waiting": {"reason": "PodInitializing"}}}
                ]
            }
        });
        let d = describe("Pod", Some(&pod));
        assert!(
            d.contains("init container linkerd-proxy: waiting (CrashLoopBackOff)")
                && d.contains("container env: waiting (PodInitializing)"),
            "{d}"
        );
    }

    #[test]
    fn absent_object_and_missing_conditions() {
        assert_eq!(
            describe::<Value>("Namespace", None),
            "namespace does not exist"
        );
        let ns = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
        assert_eq!(
            describe_value("Namespace", &ns),
            "namespace x: phase Terminating, conditions: none"
        );
    }
}
