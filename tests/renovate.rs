//! `renovate.json` is held to the files it manages: every version the suites and the tool table
//! pin is found by its regex manager (applied here the way Renovate applies it: each match string
//! over a whole file's text, every match), with the source that publishes it; versions that must
//! move together (a suite's mesh and its CLI, the sealed-secrets chart and kubeseal) share a
//! group; and the nightly workflow is in the GitHub Actions manager's files. A pin added without
//! its `# renovate:` comment, or a comment that no longer precedes its version, fails here.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn config() -> Value {
    let text = std::fs::read_to_string(root().join("renovate.json")).expect("renovate.json");
    serde_json::from_str(&text).expect("renovate.json is JSON")
}

/// `/REGEX/` (Renovate's form for a regex file pattern) → the regex.
fn file_pattern(p: &str) -> regex::Regex {
    let inner = p
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{p:?} is not a /regex/ file pattern"));
    regex::Regex::new(inner).expect("file pattern compiles")
}

/// One dependency as the regex manager extracts it.
#[derive(Debug, Clone)]
struct Dep {
    datasource: String,
    dep_name: String,
    current: String,
    versioning: Option<String>,
    extract_version: Option<String>,
    registry_url: Option<String>,
}

/// Every dependency the custom regex managers extract from `rel` (a path relative to the root).
fn extracted(cfg: &Value, rel: &str) -> Vec<Dep> {
    let text = std::fs::read_to_string(root().join(rel)).expect("managed file");
    let mut out = Vec::new();
    for m in cfg["customManagers"].as_array().expect("customManagers") {
        assert_eq!(m["customType"], "regex");
        let applies = m["managerFilePatterns"]
            .as_array()
            .expect("managerFilePatterns")
            .iter()
            .any(|p| file_pattern(p.as_str().unwrap()).is_match(rel));
        if !applies {
            continue;
        }
        for s in m["matchStrings"].as_array().expect("matchStrings") {
            let re = regex::Regex::new(s.as_str().unwrap()).expect("match string compiles");
            for c in re.captures_iter(&text) {
                let get = |n: &str| c.name(n).map(|m| m.as_str().to_string());
                out.push(Dep {
                    datasource: get("datasource").expect("datasource"),
                    dep_name: get("depName").expect("depName"),
                    current: get("currentValue").expect("currentValue"),
                    versioning: get("versioning"),
                    extract_version: get("extractVersion"),
                    registry_url: get("registryUrl"),
                });
            }
        }
    }
    out
}

/// Whether `deps` holds `dep_name` at `current`, a leading `v` aside (flux's tag is `v2.9.4`,
/// tools.yaml writes `2.9.4`, a suite `v2.9.4`).
fn has(deps: &[Dep], dep_name: &str, current: &str) -> bool {
    let bare = |v: &str| v.trim_start_matches('v').to_string();
    deps.iter()
        .any(|d| d.dep_name == dep_name && bare(&d.current) == bare(current))
}

#[test]
fn every_pinned_tool_version_is_managed() {
    let cfg = config();
    let deps = extracted(&cfg, "tools.yaml");
    let table: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("tools.yaml")).unwrap()).unwrap();
    let mut pinned = 0;
    for (tool, entry) in table.as_mapping().expect("a mapping of tools") {
        let tool = tool.as_str().unwrap();
        for key in ["version", "chart"] {
            if let Some(v) = entry.get(key).and_then(|v| v.as_str()) {
                pinned += 1;
                assert!(
                    deps.iter().any(|d| d.current == v),
                    "tools.yaml {tool}.{key} {v} has no `# renovate:` comment the manager reads: {deps:#?}"
                );
            }
        }
    }
    assert_eq!(deps.len(), pinned, "one managed version per pin: {deps:#?}");
    for d in &deps {
        // Each extracted value is one the source publishes, as Renovate will compare them.
        match (&d.versioning, &d.extract_version) {
            (Some(v), _) => {
                let re = regex::Regex::new(v.strip_prefix("regex:").expect("regex versioning"))
                    .expect("versioning regex compiles");
                assert!(re.is_match(&d.current), "{d:?}");
            }
            (None, Some(x)) => {
                // The tag carries a `v` the file leaves out.
                let re = regex::Regex::new(x).expect("extractVersion compiles");
                let tag = format!("v{}", d.current);
                assert_eq!(
                    re.captures(&tag)
                        .and_then(|c| c.name("version"))
                        .map(|m| m.as_str()),
                    Some(d.current.as_str()),
                    "{d:?}"
                );
            }
            (None, None) => {}
        }
        if d.datasource == "helm" {
            assert!(
                d.registry_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("https://")),
                "{d:?}"
            );
        }
    }
}

#[test]
fn every_suite_version_is_managed_and_moves_with_its_tool() {
    let cfg = config();
    let catalog =
        meshproof::scenario::catalog::load_project(&root()).expect("the project's suites load");
    let tools = extracted(&cfg, "tools.yaml");
    let mut shared: BTreeSet<String> = BTreeSet::new();
    for suite in &catalog.suites {
        let rel = suite
            .source
            .strip_prefix(root())
            .unwrap_or(&suite.source)
            .to_string_lossy()
            .to_string();
        let deps = extracted(&cfg, &rel);
        let mut want: Vec<String> = vec![
            suite.mesh.version().as_str().to_string(),
            suite.openfaas.chart.to_string(),
        ];
        let c = &suite.components;
        for v in [
            &c.cert_manager,
            &c.flux,
            &c.sealed_secrets,
            &c.gateway_api,
            &c.traefik,
        ]
        .into_iter()
        .flatten()
        {
            want.push(v.to_string());
        }
        for v in &want {
            assert!(
                deps.iter().any(|d| d.current == *v),
                "{rel}: {v} has no `# renovate:` comment the manager reads: {deps:#?}"
            );
        }
        assert_eq!(deps.len(), want.len(), "{rel}: {deps:#?}");
        // A source a suite and tools.yaml both name must move in one pull request.
        for d in &deps {
            if tools.iter().any(|t| t.dep_name == d.dep_name) {
                assert!(
                    has(&tools, &d.dep_name, &d.current),
                    "{rel}: {} {} differs from tools.yaml",
                    d.dep_name,
                    d.current
                );
                shared.insert(d.dep_name.clone());
            }
        }
    }
    let groups: BTreeMap<String, String> = cfg["packageRules"]
        .as_array()
        .expect("packageRules")
        .iter()
        .filter_map(|r| Some((r["matchDepNames"].as_array()?, r["groupName"].as_str()?)))
        .flat_map(|(names, g)| {
            names
                .iter()
                .map(move |n| (n.as_str().unwrap().to_string(), g.to_string()))
        })
        .collect();
    assert!(!shared.is_empty());
    for name in &shared {
        assert!(
            groups.contains_key(name),
            "{name} moves in a suite and tools.yaml: group it"
        );
    }
    // kubeseal (a GitHub release) and its chart (a Helm chart) are one group.
    assert_eq!(
        groups.get("sealed-secrets"),
        groups.get("bitnami/sealed-secrets")
    );
}

#[test]
fn the_nightly_workflow_is_in_the_actions_managers_files() {
    let cfg = config();
    let patterns = cfg["github-actions"]["managerFilePatterns"]
        .as_array()
        .expect("github-actions.managerFilePatterns");
    assert!(patterns
        .iter()
        .any(|p| file_pattern(p.as_str().unwrap()).is_match("ci/nightly.yml")));
    assert!(Path::new(&root().join("ci/nightly.yml")).is_file());
}
