//! Every chart value meshproof sets on OpenFaaS exists in the chart's own values.yaml (a typo in
//! a `--set` key is silently ignored by Helm, so only this test would notice).

use meshproof::scenario::{HostPorts, Mesh};
use meshproof::stack::install::helm::Value;
use meshproof::stack::install::openfaas;
use std::path::Path;

fn chart_values() -> serde_yaml::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crds/openfaas/values.yaml");
    serde_yaml::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

fn lookup<'a>(v: &'a serde_yaml::Value, dotted: &str) -> Option<&'a serde_yaml::Value> {
    dotted.split('.').try_fold(v, |node, key| {
        node.as_mapping()?
            .get(serde_yaml::Value::String(key.into()))
    })
}

#[test]
fn every_set_key_exists_in_the_chart_values() {
    let chart = chart_values();
    assert_eq!(
        serde_yaml::from_str::<serde_yaml::Value>(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crds/openfaas/Chart.yaml")
            )
            .unwrap()
        )
        .unwrap()["version"]
            .as_str(),
        Some("15.0.6"),
        "the values file must be the chart version the suites pin"
    );
    let mut checked = 0;
    for mesh in Mesh::ALL {
        for pro in [false, true] {
            for v in openfaas::values(mesh, pro, HostPorts::default()) {
                let Value::Set(k, val) = v else {
                    panic!("OpenFaaS takes no --set-file")
                };
                let node = lookup(&chart, &k)
                    .unwrap_or_else(|| panic!("--set {k}={val}: no such key in values.yaml"));
                assert!(
                    !node.is_mapping() && !node.is_sequence(),
                    "--set {k} would overwrite a whole section"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20);
}

#[test]
fn the_lookup_rejects_unknown_keys() {
    // The test above could pass vacuously if lookup accepted anything.
    let chart = chart_values();
    assert!(lookup(&chart, "gateway.directFunctions").is_some());
    assert!(lookup(&chart, "gateway.directFunction").is_none());
    assert!(lookup(&chart, "gatewayy.directFunctions").is_none());
}

#[test]
fn values_follow_the_field_notes() {
    let has = |mesh, pro, k: &str, v: &str| {
        openfaas::values(mesh, pro, HostPorts::default()).contains(&Value::set(k, v))
    };
    for mesh in Mesh::ALL {
        // Pro calls Services only with directFunctions (off by default even for Pro); CE
        // ignores it (ledger OF-3, OF-5), so it is set for Pro only.
        assert!(has(mesh, true, "gateway.directFunctions", "true"));
        assert!(has(mesh, true, "gateway.probeFunctions", "true"));
        assert!(has(mesh, true, "clusterRole", "true"));
        assert!(!openfaas::values(mesh, false, HostPorts::default())
            .iter()
            .any(|v| matches!(v, Value::Set(k, _) if k.contains("Functions"))));
        assert!(has(mesh, false, "functionNamespace", "openfaas-fn"));
        assert!(has(mesh, false, "generateBasicAuth", "false"));
        // NATS speaks first; a meshed gateway could not open its queue (DESIGN.md, OpenFaaS).
        assert!(has(mesh, false, "async", "false") && has(mesh, true, "async", "false"));
        assert!(
            !has(mesh, false, "operator.create", "true"),
            "the operator is Pro only"
        );
        assert!(
            has(mesh, true, "operator.create", "true") && has(mesh, true, "openfaasPro", "true")
        );
        for pro in [false, true] {
            assert!(!openfaas::values(mesh, pro, HostPorts::default())
                .iter()
                .any(|v| matches!(v, Value::Set(k, _) if k.starts_with("istio"))));
        }
    }
}

/// The ServiceAccount the scenarios' policies name for the gateway (`gateway.serviceAccount`,
/// e.g. the Istio deny ALLOW on its principal) is the one the chart runs the gateway as, given
/// the values meshproof sets: `<release>-operator` when `operator.create`, else
/// `<release>-controller` (faas-netes@662ce9ce `chart/openfaas/templates/gateway-dep.yaml:41-45`;
/// ledger OF-5). A mismatch would make every deny trial's allowed path fail.
#[test]
fn the_gateway_service_account_the_policies_name_is_the_charts() {
    use meshproof::scenario::Edition;
    let chart = chart_values();
    assert_eq!(
        lookup(&chart, "operator.create").and_then(serde_yaml::Value::as_bool),
        Some(false),
        "the chart's default: the controller's account unless meshproof asks for the operator"
    );
    let catalog = meshproof::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|d| panic!("{d}"));
    let mut seen = std::collections::BTreeSet::new();
    for env in meshproof::plan::expand(&catalog) {
        let pro = matches!(env.suite.openfaas.edition, Edition::Pro { .. });
        let operator = openfaas::values(env.env.mesh.mesh(), pro, HostPorts::default())
            .contains(&Value::set("operator.create", "true"));
        let expected = format!(
            "{}-{}",
            openfaas::RELEASE,
            if operator { "operator" } else { "controller" }
        );
        for t in &env.trials {
            let vars = meshproof::plan::vars_for(&env.suite, &env.env, &t.scenario, Some("r1"));
            assert_eq!(
                vars.get("gateway.serviceAccount"),
                Some(expected.as_str()),
                "{}",
                t.name
            );
        }
        seen.insert(expected);
    }
    // Non-vacuity: the shipped suites run both editions.
    assert_eq!(seen.len(), 2, "{seen:?}");
}
