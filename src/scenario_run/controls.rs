//! The negative controls a trial ran, read back from its checks' evidence for the report.
//!
//! Each check already folds its control into its verdict (a control that did not hold makes the
//! check an error); this turns the same evidence into the report's `controls` list, so a reader
//! sees *what* was expected and observed without opening the evidence. The mapping reads the
//! serialized evidence (trials hand verdicts on type-erased); its tests serialize the real
//! evidence types, so a renamed field breaks them instead of silently dropping a control.

use crate::check::{CheckName, Verdict};
use crate::report::Control;
use serde_json::Value;

/// The controls recorded in `v`'s evidence (none for checks without one, e.g. canary).
pub fn of(v: &Verdict<Value>) -> Vec<Control> {
    let e = &v.evidence;
    match v.check {
        CheckName::Http => deny(e),
        CheckName::Mtls => mtls(e),
        CheckName::Tls => tls(e),
        CheckName::Restore => restore(e),
        _ => Vec::new(),
    }
}

fn deny(e: &Value) -> Vec<Control> {
    e["probes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| !p["observed_before"].is_null())
        .map(|p| {
            let observed = p["observed_before"]["classification"]["class"]
                .as_str()
                .unwrap_or("unknown");
            Control::compare(
                format!(
                    "{} before the policy ({})",
                    p["name"].as_str().unwrap_or("?"),
                    p["url"].as_str().unwrap_or("?")
                ),
                p["before"].as_str().unwrap_or("?"),
                observed,
            )
        })
        .collect()
}

fn mtls(e: &Value) -> Vec<Control> {
    let Some(judgements) = e["control"]["judgements"].as_array() else {
        return Vec::new();
    };
    let seen = judgements
        .iter()
        .filter(|j| j[1].as_u64().unwrap_or(0) > 0)
        .count();
    let observed = if seen == judgements.len() && seen > 0 {
        "every sentinel seen in plaintext".to_string()
    } else {
        format!("{seen} of {} sentinels seen in plaintext", judgements.len())
    };
    // On Istio ambient the twin is out of the mesh by a pod label, and the capture keeps
    // ztunnel's HBONE port and any waypoint as well: the report says so.
    let twin = e["control"]["function"].as_str().unwrap_or("?");
    let name = match e["ambient"]["control_opt_out"].as_str() {
        Some(opt_out) => format!(
            "unmeshed twin {twin} ({opt_out}) captured on eth0 with Istio ambient's peers (gateway and {} waypoint pods) and HBONE port 15008",
            e["ambient"]["peers"]["waypoints"].as_array().map_or(0, Vec::len)
        ),
        None => format!("unmeshed twin {twin} captured on eth0"),
    };
    vec![Control::compare(
        name,
        "every sentinel seen in plaintext",
        observed,
    )]
}

fn tls(e: &Value) -> Vec<Control> {
    [
        ("wrong_host", "the wrong host name"),
        ("foreign_ca", "a foreign CA"),
    ]
    .into_iter()
    .filter(|(k, _)| !e[*k].is_null())
    .map(|(k, what)| {
        Control::compare(
            format!("the endpoint judged with {what}"),
            "fail",
            e[k]["outcome"].as_str().unwrap_or("unknown"),
        )
    })
    .collect()
}

fn restore(e: &Value) -> Vec<Control> {
    match e["control"]["outcome"].as_str() {
        Some(o) => vec![Control::compare(
            "nothing unseals before the sealing key is restored",
            "held",
            o,
        )],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::http::{Classification, Denial};
    use crate::check::Outcome;
    use crate::scenario::{Allowance, ProbeFrom};
    use crate::scenario_run::checks::deny::{DenyEvidence, Observed, ProbeEvidence, RenderedProbe};

    fn verdict<E: serde::Serialize>(check: CheckName, e: E) -> Verdict<Value> {
        Verdict::new(check, Outcome::Pass, vec![], e).erase()
    }

    #[test]
    fn deny_controls_are_the_before_probes() {
        let probe = |name: &str, before, class: Classification| ProbeEvidence {
            probe: RenderedProbe {
                name: name.into(),
                from: ProbeFrom::Probe,
                url: format!("http://{name}:8080/"),
                before,
                after: Allowance::Denied,
                enforcer: None,
            },
            target: None,
            observed_before: Some(Observed::new(class, "")),
            observed_after: None,
            after_attempts: 0,
            after_seconds: None,
            probe_path_allows: None,
        };
        let e = DenyEvidence {
            probes: vec![
                probe(
                    "gw",
                    Allowance::Allowed,
                    Classification::Allowed { status: 200 },
                ),
                probe(
                    "fn",
                    Allowance::Allowed,
                    Classification::Denied(Denial::ConnectionReset),
                ),
            ],
            policy_applied: true,
            workloads_not_ready: None,
        };
        let c = of(&verdict(CheckName::Http, e));
        assert_eq!(c.len(), 2);
        assert!(
            c[0].held && c[0].name.starts_with("gw before the policy"),
            "{c:?}"
        );
        assert!(!c[1].held && c[1].observed == "denied", "{c:?}");
    }

    /// The ambient twin's control names its opt-out and the capture's ambient scope, read from
    /// the real evidence type.
    #[test]
    fn the_ambient_mtls_control_names_its_opt_out_and_scope() {
        use crate::scenario_run::checks::mtls::{
            AmbientEvidence, AmbientPeers, MtlsTrialEvidence, PhaseEvidence,
        };
        let e = MtlsTrialEvidence {
            control: Some(PhaseEvidence {
                function: "env-nomesh".into(),
                requests: 1,
                pcap_bytes: 10,
                capture_log: String::new(),
                retries: 0,
                failures: vec![],
                judgements: vec![(Outcome::Fail, 1)],
                engine_evidence: None,
            }),
            ambient: Some(AmbientEvidence {
                peers: AmbientPeers {
                    gateway: vec!["10.0.0.1".parse().unwrap()],
                    waypoints: vec!["10.0.0.2".parse().unwrap()],
                },
                control_opt_out: "pod label istio.io/dataplane-mode=none".into(),
                ..AmbientEvidence::default()
            }),
            ..MtlsTrialEvidence::default()
        };
        let c = of(&verdict(CheckName::Mtls, e));
        assert!(c[0].held, "{c:?}");
        assert!(
            c[0].name.contains("istio.io/dataplane-mode=none")
                && c[0].name.contains("1 waypoint pods")
                && c[0].name.contains("15008"),
            "{c:?}"
        );
        let sidecar =
            serde_json::json!({"control": {"function": "env-nomesh", "judgements": [["fail", 2]]}});
        let c = of(&Verdict::new(
            CheckName::Mtls,
            Outcome::Pass,
            vec![],
            sidecar,
        ));
        assert_eq!(c[0].name, "unmeshed twin env-nomesh captured on eth0");
    }

    #[test]
    fn mtls_tls_and_restore_controls_read_their_evidence() {
        let mtls = serde_json::json!({"control": {"function": "env-nomesh", "judgements": [["fail", 2], ["fail", 1]]}});
        let c = of(&Verdict::new(CheckName::Mtls, Outcome::Pass, vec![], mtls));
        assert!(c[0].held, "{c:?}");
        let blind = serde_json::json!({"control": {"function": "env-nomesh", "judgements": [["fail", 2], ["pass", 0]]}});
        assert!(
            !of(&Verdict::new(
                CheckName::Mtls,
                Outcome::Error,
                vec![],
                blind
            ))[0]
                .held
        );

        let tls = serde_json::json!({"wrong_host": {"outcome": "fail"}, "foreign_ca": {"outcome": "pass"}});
        let c = of(&Verdict::new(CheckName::Tls, Outcome::Error, vec![], tls));
        assert_eq!((c[0].held, c[1].held), (true, false));

        let held = crate::check::restore::ControlJudgement::Held { evidence: vec![] };
        let e = serde_json::json!({ "control": held });
        assert!(of(&Verdict::new(CheckName::Restore, Outcome::Pass, vec![], e))[0].held);
        assert!(of(&Verdict::new(
            CheckName::Canary,
            Outcome::Pass,
            vec![],
            Value::Null
        ))
        .is_empty());
    }
}
