//! The project's own suites and `scenarios/restore.yaml` turn into a restore spec: Flux version
//! pinned from the suite, CE functions as Deployments, the suite's function image, and the recovery
//! budget from the scenario.

use meshproof::restore::desired::FunctionFormat;
use meshproof::restore::RestoreSpec;
use meshproof::scenario::{Check, Step};
use std::path::Path;
use std::time::Duration;

#[test]
fn project_suites_build_a_restore_spec() {
    let catalog =
        meshproof::scenario::catalog::load_project(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
    let scenario = catalog
        .scenarios
        .iter()
        .find(|s| s.name.to_string() == "restore")
        .expect("scenarios/restore.yaml");
    let check = scenario
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Check(Check::Restore(r)) => Some(r.clone()),
            _ => None,
        })
        .expect("a restore check step");
    assert_eq!(check.max_recovery, Some(Duration::from_secs(30 * 60)));
    let mut seen = 0;
    for suite in catalog
        .suites
        .iter()
        .filter(|s| s.scenarios.iter().any(|n| n.to_string() == "restore"))
    {
        let spec = RestoreSpec::for_suite(
            suite,
            &check,
            suite.images.function.to_string(),
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1",
        )
        .unwrap();
        assert!(spec.flux.version.starts_with('v'), "{}", spec.flux.version);
        // Pro restores Function objects (the operator makes the Deployments), CE plain ones.
        let want = if suite.openfaas.edition.is_pro() {
            FunctionFormat::FunctionCr
        } else {
            FunctionFormat::Deployment
        };
        assert_eq!(spec.format, want, "{}", suite.name);
        assert_eq!(spec.controller.name, "sealed-secrets-controller");
        assert_eq!(spec.controller.namespace, "kube-system");
        assert_eq!(
            spec.check.sealed_secrets,
            [("openfaas-fn".to_string(), "meshproof-restore".to_string())]
        );
        seen += 1;
    }
    assert!(seen >= 1);
}
