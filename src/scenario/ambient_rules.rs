//! What cannot work on Istio's ambient data plane, found in the manifests and deploy steps an
//! ambient suite's scenarios would apply. Pure: it reads manifest text rendered with
//! placeholders, so the catalog refuses the combination at load, before any cluster exists.
//!
//! Two rules, each from istiod's own behaviour at the pinned release:
//! - an AuthorizationPolicy that ztunnel would enforce (no `targetRefs`) must not use HTTP
//!   fields: ztunnel drops an ALLOW rule that has one and applies a DENY rule without it, so the
//!   policy is silently more restrictive than written (ledger IS-26);
//! - the sidecar switches (`sidecar.istio.io/inject`, `istio-injection`) do nothing on ambient,
//!   whose enrolment is `istio.io/dataplane-mode` (IS-6, IS-21): a manifest that relies on them
//!   would run unmeshed or meshed against its author's intent.

use serde_json::Value;

/// The sidecar injection switches: the pod label/annotation and the namespace label (IS-6).
pub const SIDECAR_SWITCHES: [&str; 2] = ["sidecar.istio.io/inject", "istio-injection"];

/// `to.operation` fields ztunnel cannot see (istio 1.30.3
/// `pilot/pkg/serviceregistry/ambient/authorization.go` `httpOperations`).
const HTTP_OPERATION_FIELDS: [&str; 6] = [
    "hosts",
    "notHosts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
];

/// `from.source` fields ztunnel cannot see (`httpSources`).
const HTTP_SOURCE_FIELDS: [&str; 4] = [
    "requestPrincipals",
    "notRequestPrincipals",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
];

/// `when` keys ztunnel enforces (`l4WhenAttributes`); any other key is an HTTP attribute.
const L4_WHEN_KEYS: [&str; 5] = [
    "source.ip",
    "source.namespace",
    "source.principal",
    "destination.ip",
    "destination.port",
];

/// The problems of one manifest document on ambient, each a sentence naming the object.
pub fn document_problems(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let kind = doc["kind"].as_str().unwrap_or("?");
    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
    let what = format!("{kind}/{name}");
    if kind == "AuthorizationPolicy"
        && doc["apiVersion"]
            .as_str()
            .is_some_and(|a| a.starts_with("security.istio.io/"))
    {
        let fields = http_fields(&doc["spec"]);
        let targeted = !doc["spec"]["targetRefs"].is_null() || !doc["spec"]["targetRef"].is_null();
        if !fields.is_empty() && !targeted {
            out.push(format!(
                "{what} uses HTTP fields ({}) but has no `targetRefs`: on ambient it is ztunnel's, which enforces L4 only — it drops an ALLOW rule with HTTP fields and applies a DENY rule without them (ledger IS-26); send the Service through a waypoint (`istio.io/use-waypoint`) and target it with `targetRefs`",
                fields.join(", ")
            ));
        }
    }
    for (place, map) in switch_places(doc) {
        for key in SIDECAR_SWITCHES {
            if !map[key].is_null() {
                out.push(format!(
                    "{what} sets the sidecar switch `{key}` ({place}), which does nothing on Istio's ambient data plane: enrolment is the label istio.io/dataplane-mode (ambient on a namespace, none on a pod to opt out; ledger IS-21)"
                ));
            }
        }
    }
    out
}

/// The HTTP attributes a policy's rules use, as `rules[i].to[j].operation.paths`, in order.
fn http_fields(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (i, rule) in spec["rules"].as_array().into_iter().flatten().enumerate() {
        for (j, to) in rule["to"].as_array().into_iter().flatten().enumerate() {
            for f in HTTP_OPERATION_FIELDS {
                if !to["operation"][f].is_null() {
                    out.push(format!("rules[{i}].to[{j}].operation.{f}"));
                }
            }
        }
        for (j, from) in rule["from"].as_array().into_iter().flatten().enumerate() {
            for f in HTTP_SOURCE_FIELDS {
                if !from["source"][f].is_null() {
                    out.push(format!("rules[{i}].from[{j}].source.{f}"));
                }
            }
        }
        for (j, when) in rule["when"].as_array().into_iter().flatten().enumerate() {
            let key = when["key"].as_str().unwrap_or("");
            if !L4_WHEN_KEYS.contains(&key) {
                out.push(format!("rules[{i}].when[{j}] key {key}"));
            }
        }
    }
    out
}

/// Where a sidecar switch can sit: the object's own labels and annotations, and those of a
/// workload's pod template.
fn switch_places(doc: &Value) -> Vec<(&'static str, &Value)> {
    let mut out = vec![
        ("metadata.labels", &doc["metadata"]["labels"]),
        ("metadata.annotations", &doc["metadata"]["annotations"]),
        (
            "spec.template.metadata.labels",
            &doc["spec"]["template"]["metadata"]["labels"],
        ),
        (
            "spec.template.metadata.annotations",
            &doc["spec"]["template"]["metadata"]["annotations"],
        ),
    ];
    out.retain(|(_, v)| v.is_object());
    out
}

/// The problems of a deploy step's labels and annotations on ambient.
pub fn deploy_problems<'a>(
    function: &str,
    keys: impl IntoIterator<Item = (&'static str, &'a str)>,
) -> Vec<String> {
    keys.into_iter()
        .filter(|(_, k)| SIDECAR_SWITCHES.contains(k))
        .map(|(place, k)| {
            format!("function {function} sets the sidecar switch `{k}` (deploy {place}), which does nothing on Istio's ambient data plane: use `meshed: false` to keep a function out (ledger IS-21)")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(spec: Value) -> Value {
        json!({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
               "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn http_fields_without_target_refs_are_refused_and_named() {
        let p = policy(json!({"action": "DENY", "rules": [
            {"to": [{"operation": {"paths": ["/admin"], "ports": ["8080"]}}]},
            {"from": [{"source": {"requestPrincipals": ["*"], "principals": ["a"]}}],
             "when": [{"key": "request.headers[x]", "values": ["1"]},
                      {"key": "source.namespace", "values": ["n"]}]}
        ]}));
        let got = document_problems(&p);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("AuthorizationPolicy/p uses HTTP fields (rules[0].to[0].operation.paths, rules[1].from[0].source.requestPrincipals, rules[1].when[0] key request.headers[x]) but has no `targetRefs`"),
            "{got:?}"
        );
    }

    #[test]
    fn l4_policies_and_targeted_l7_policies_pass() {
        let l4 = policy(json!({"action": "ALLOW", "rules": [
            {"from": [{"source": {"principals": ["a"], "namespaces": ["n"], "ipBlocks": ["10.0.0.0/8"]}}],
             "to": [{"operation": {"ports": ["8080"]}}],
             "when": [{"key": "destination.port", "values": ["8080"]}]}
        ]}));
        assert!(document_problems(&l4).is_empty());
        for target in ["targetRefs", "targetRef"] {
            let mut spec = json!({"action": "DENY", "rules": [{"to": [{"operation": {"methods": ["DELETE"]}}]}]});
            spec[target] = json!([{"group": "", "kind": "Service", "name": "env2"}]);
            assert!(document_problems(&policy(spec)).is_empty(), "{target}");
        }
        // Another group's AuthorizationPolicy (Linkerd's) is not Istio's.
        let linkerd = json!({"apiVersion": "policy.linkerd.io/v1alpha1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "l"}, "spec": {"rules": [{"to": [{"operation": {"paths": ["/"]}}]}]}});
        assert!(document_problems(&linkerd).is_empty());
    }

    #[test]
    fn sidecar_switches_are_refused_wherever_they_sit() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "n", "labels": {"istio-injection": "enabled"}}});
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}}}});
        let ok = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "n", "labels": {"istio.io/dataplane-mode": "ambient"}}});
        let a = document_problems(&ns);
        let b = document_problems(&dep);
        assert!(
            a.len() == 1 && a[0].contains("`istio-injection` (metadata.labels)"),
            "{a:?}"
        );
        assert!(
            b.len() == 1
                && b[0].contains("`sidecar.istio.io/inject` (spec.template.metadata.annotations)"),
            "{b:?}"
        );
        assert!(document_problems(&ok).is_empty());
        let d = deploy_problems(
            "env",
            [
                ("labels", "app"),
                ("annotations", "sidecar.istio.io/inject"),
            ],
        );
        assert_eq!(d.len(), 1, "{d:?}");
    }
}
