//! The loader's promise: every malformed suite or scenario gets a `FILE:LINE:COL: error:` line
//! that points at the problem, and no input makes it panic.
//!
//! Each directory under `tests/fixtures/invalid/` is one case: its YAML files are loaded together
//! and the diagnostics (file names relative to the case) must equal `expect.txt` exactly.

use meshproof::scenario::catalog;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

#[test]
fn every_malformed_case_reports_the_expected_locations() {
    let cases = cases();
    assert!(
        cases.len() >= 25,
        "the corpus must hold at least 25 cases, has {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let expected: Vec<String> = std::fs::read_to_string(case.join("expect.txt"))
            .unwrap_or_else(|e| panic!("{}: expect.txt: {e}", case.display()))
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        assert!(
            !expected.is_empty(),
            "{}: expect.txt is empty",
            case.display()
        );
        let got: Vec<String> = match catalog::load(std::slice::from_ref(case)) {
            Ok(_) => vec!["(loaded without errors)".to_string()],
            Err(d) => {
                d.0.iter()
                    .map(|d| {
                        let mut d = d.clone();
                        d.file = d
                            .file
                            .strip_prefix(case)
                            .map(Path::to_path_buf)
                            .unwrap_or(d.file);
                        // Messages that name another file name it as given; make it case-relative.
                        d.to_string().replace(&format!("{}/", case.display()), "")
                    })
                    .collect()
            }
        };
        if got != expected {
            failures.push(format!(
                "{}:\n  expected: {expected:#?}\n  got:      {got:#?}",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_diagnostic_line_has_the_file_line_col_shape() {
    let re = regex::Regex::new(r"^[^:\s]+:\d+:\d+: error: \S.*$").unwrap();
    for case in cases() {
        for line in std::fs::read_to_string(case.join("expect.txt"))
            .unwrap()
            .lines()
        {
            assert!(
                re.is_match(line),
                "{}: not FILE:LINE:COL: {line}",
                case.display()
            );
        }
    }
}

#[test]
fn the_shipped_suites_and_scenarios_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let c = catalog::load_project(root).unwrap_or_else(|d| panic!("{d}"));
    let names: Vec<&str> = c.suites.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"istio") && names.contains(&"linkerd"),
        "{names:?}"
    );
    let mut kinds: Vec<&str> = c
        .scenarios
        .iter()
        .flat_map(|s| s.steps.iter())
        .filter_map(|s| match s {
            meshproof::scenario::Step::Check(c) => Some(c.kind()),
            _ => None,
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["canary", "deny", "mtls", "restore", "tls"]);
}

fn meshproof() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshproof"))
}

#[test]
fn cli_validate_exits_1_and_prints_one_line_per_problem() {
    let case = fixtures().join("weights-not-100");
    let out = meshproof().arg("validate").arg(&case).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].ends_with("c.yaml:7:9: error: steps[0].check.canary.variants: weights must sum to 100, got 90 + 20 = 110"), "{stdout}");
}

#[test]
fn cli_validate_defaults_to_the_project_and_exits_0() {
    let out = meshproof()
        .arg("validate")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = meshproof()
        .arg("validate")
        .arg("no/such/dir")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("no/such/dir:1:1: error: no such file or directory"));
}

/// Every prefix of every shipped file, and the files with bytes flipped, must load to a result
/// (valid or diagnostics), never a panic.
#[test]
fn no_input_makes_the_loader_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = catalog::expand_paths(&[root.join("suites"), root.join("scenarios")]).unwrap();
    files.sort();
    let no_read = |_: &Path| -> std::io::Result<String> {
        Err(std::io::Error::other("not read in this test"))
    };
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut cuts: Vec<usize> = (0..text.len())
            .step_by(7)
            .filter(|i| text.is_char_boundary(*i))
            .collect();
        cuts.push(text.len());
        for cut in cuts {
            let _ = meshproof::scenario::loader::load_text(&f, &text[..cut], &no_read);
        }
        for (i, replacement) in [
            "{", "]", ":", "\t", "'", "&a", "*a", "!!binary", "- ", "\u{0}",
        ]
        .iter()
        .enumerate()
        {
            let pos = (text.len() * (i + 1)) / 11;
            let pos = (pos..text.len())
                .find(|p| text.is_char_boundary(*p))
                .unwrap_or(0);
            let mutated = format!("{}{}{}", &text[..pos], replacement, &text[pos..]);
            let _ = meshproof::scenario::loader::load_text(&f, &mutated, &no_read);
        }
    }
}

/// The rule behind `suite-ce-under-istio-sidecars`: an explicit opt-in runs CE under sidecars
/// anyway, Pro needs no license file in the suite (it comes from `$OPENFAAS_LICENSE_FILE` at run
/// time), and ambient (no sidecars) is not refused.
#[test]
fn ce_under_istio_sidecars_loads_only_when_asked() {
    let case = fixtures().join("suite-ce-under-istio-sidecars");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(case.join("c.yaml"), dir.path().join("c.yaml")).unwrap();
    let suite = std::fs::read_to_string(case.join("s.yaml")).unwrap();
    let load = |text: String| {
        std::fs::write(dir.path().join("s.yaml"), text).unwrap();
        catalog::load(&[dir.path().to_path_buf()])
    };
    assert!(load(suite.clone()).is_err());
    let c = load(suite.replace(
        "  edition: ce",
        "  edition: ce\n  allowCeWithIstioSidecars: true",
    ))
    .expect("the opt-in loads");
    assert!(c.suites[0].openfaas.ce_with_istio_sidecars);
    let c = load(suite.replace("  edition: ce", "  edition: pro")).expect("Pro loads");
    assert_eq!(
        c.suites[0].openfaas.edition,
        meshproof::scenario::Edition::Pro { license_file: None }
    );
    // Ambient has no sidecars: CE loads there. `profile: ambient` alone is refused (it would
    // label namespaces for injection); `dataPlane: ambient` is how a suite asks for it.
    assert!(
        load(suite.replace("  version: 1.30.3", "  version: 1.30.3\n  profile: ambient")).is_err()
    );
    let c = load(
        suite
            .replace(
                "  version: 1.30.3",
                "  version: 1.30.3\n  dataPlane: ambient",
            )
            .replace(
                "scenarios:",
                "components:\n  gatewayApi: { version: v1.4.0 }\nscenarios:",
            ),
    )
    .expect("ambient has no sidecars");
    assert_eq!(
        c.suites[0].mesh.data_plane(),
        meshproof::scenario::DataPlane::IstioAmbient
    );
}

/// With no `profile`, Istio is installed with istioctl's own default, `default`: the profile
/// with the ingress gateway the TLS scenario serves through (`minimal` has none; ledger IS-3).
#[test]
fn an_istio_suite_without_a_profile_gets_the_default_profile() {
    let case = fixtures().join("suite-ce-under-istio-sidecars");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(case.join("c.yaml"), dir.path().join("c.yaml")).unwrap();
    let suite = std::fs::read_to_string(case.join("s.yaml"))
        .unwrap()
        .replace("  edition: ce", "  edition: pro");
    assert!(!suite.contains("profile"));
    std::fs::write(dir.path().join("s.yaml"), suite).unwrap();
    let c = catalog::load(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(
        c.suites[0].mesh,
        meshproof::scenario::MeshSpec::Istio {
            version: meshproof::scenario::Version::semver("1.30.3", false).unwrap(),
            install: meshproof::scenario::IstioInstall::Istioctl {
                profile: "default".into()
            },
            data_plane: meshproof::scenario::IstioDataPlane::Sidecar,
        }
    );
}

/// serde's words are Rust's (`invalid type: integer `5`, expected enum EditionName`); a
/// diagnostic says what the user wrote and what the key allows instead.
const RUST_WORDS: &str = r"\bvariant\b|\.\.=|invalid type|invalid value|unknown field|missing field|\bstruct\b|\benum\b|\b[fiu](8|16|32|64|size)\b|\bRaw[A-Z]|[A-Z][a-z]+Name\b|\bsequence\b|\bmap\b";

const A_CHECK: &str = "  - check:\n      canary:\n        function: env\n        variants:\n          - { name: a, pattern: a, weight: 90 }\n          - { name: b, pattern: b, weight: 10 }\n        tolerance: 5\n        confidence: 0.99\n";

const A_SUITE: &str = "kind: Suite\nname: s\ncluster: {provider: kind}\nmesh: {name: istio, version: 1.30.3}\nopenfaas: {chart: 15.0.6}\nscenarios: [c]\n";

#[test]
fn no_diagnostic_speaks_rust() {
    let re = regex::Regex::new(RUST_WORDS).unwrap();
    let scenario = |steps: &str| format!("kind: Scenario\nname: c\nsteps:\n{steps}{A_CHECK}");
    let suite = |from: &str, to: &str| A_SUITE.replace(from, to);
    let docs = [
        scenario("  - 42\n"),
        scenario("  - apply\n"),
        scenario("  - sleep: 5s\n"),
        scenario("  - check: 5\n"),
        scenario("  - check: {canary: 5}\n"),
        scenario("  - wait: {for: [rollout], target: a/b, timeout: 5s}\n"),
        scenario("  - wait: {for: {rollout: 1}, target: a/b, timeout: 5s}\n"),
        scenario("  - wait: {for: rollout, target: a/b, timeout: 5s, mesh: 7}\n"),
        scenario("  - wait: {for: rollout, target: [a], timeout: 5s}\n"),
        scenario("  - deploy: {function: a, image: b, meshed: yes, env: [1]}\n"),
        scenario("  - check: {tls: {host: a, caSecret: {namespace: a, name: b}, minDays: -1, minProtocol: 1.1}}\n"),
        format!("kind: Scenario\nname: c\nmeshes: istio\nvars: [1]\nsteps:\n{A_CHECK}"),
        "kind: Scenario\nname: c\nsteps: 5\n".to_string(),
        suite("chart: 15.0.6", "chart: 15.0.6, edition: 5"),
        suite("chart: 15.0.6", "chart: 15.0.6, edition: [ce]"),
        suite("chart: 15.0.6", "chart: 15.0.6, edition: {ce: 1}"),
        suite("chart: 15.0.6", "chart: 15.0.6, edition: enterprise"),
        suite("{provider: kind}", "{provider: kind, hostPorts: {http: 70000, https: -1}}"),
        suite("name: istio, ", ""),
        suite("scenarios: [c]", "scenarios: c\nimages: {function: x, 1: y}"),
    ];
    let no_read = |_: &Path| -> std::io::Result<String> { Err(std::io::Error::other("unread")) };
    let mut said = Vec::new();
    for doc in &docs {
        match meshproof::scenario::loader::load_text(Path::new("x.yaml"), doc, &no_read) {
            Ok(_) => panic!("loads, but should not:\n{doc}"),
            Err(d) => said.extend(d.into_iter().map(|d| d.message)),
        }
    }
    for case in cases() {
        if let Err(d) = catalog::load(std::slice::from_ref(&case)) {
            said.extend(d.0.into_iter().map(|d| d.message));
        }
    }
    let rust: Vec<&String> = said.iter().filter(|l| re.is_match(l)).collect();
    assert!(rust.is_empty(), "in Rust's words:\n{rust:#?}");
}

/// `catalog::load` on another thread, given `secs` to answer: a FIFO opened for a plain read
/// blocks for ever, and this test must fail rather than hang.
fn load_within(paths: Vec<PathBuf>, secs: u64) -> Result<usize, Vec<String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let res = catalog::load(&paths)
            .map(|c| c.scenarios.len())
            .map_err(|d| {
                d.0.iter()
                    .map(|d| {
                        let name = d.file.file_name().unwrap_or_default().to_string_lossy();
                        format!("{name}:{}:{}: error: {}", d.line, d.col, d.message)
                    })
                    .collect()
            });
        let _ = tx.send(res);
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("loading hung (a FIFO read without a writer?)")
}

fn dir_with_a_scenario() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        format!("kind: Scenario\nname: c\nsteps:\n{A_CHECK}"),
    )
    .unwrap();
    dir
}

#[test]
fn a_fifo_named_like_a_document_is_an_error_not_a_hang_or_a_skip() {
    let dir = dir_with_a_scenario();
    let fifo = dir.path().join("x.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let expected = vec!["x.yaml:1:1: error: not a regular file (a FIFO)".to_string()];
    assert_eq!(
        load_within(vec![dir.path().to_path_buf()], 20),
        Err(expected.clone())
    );
    // Named on the command line rather than found in a directory.
    assert_eq!(load_within(vec![fifo], 20), Err(expected));
}

#[test]
fn a_symlink_loop_or_a_broken_link_is_an_error_naming_it() {
    let dir = dir_with_a_scenario();
    std::os::unix::fs::symlink("loop.yaml", dir.path().join("loop.yaml")).unwrap();
    std::os::unix::fs::symlink("b.yml", dir.path().join("a.yml")).unwrap();
    std::os::unix::fs::symlink("a.yml", dir.path().join("b.yml")).unwrap();
    std::os::unix::fs::symlink("gone", dir.path().join("gone.yaml")).unwrap();
    let looped = "error: symlink loop: the link leads back to itself";
    assert_eq!(
        load_within(vec![dir.path().to_path_buf()], 20),
        Err(vec![
            format!("a.yml:1:1: {looped}"),
            format!("b.yml:1:1: {looped}"),
            "gone.yaml:1:1: error: broken symlink: it points to gone, which does not exist"
                .to_string(),
            format!("loop.yaml:1:1: {looped}"),
        ])
    );
    assert_eq!(
        load_within(vec![dir.path().join("loop.yaml")], 20),
        Err(vec![format!("loop.yaml:1:1: {looped}")])
    );
}

#[test]
fn a_directory_symlink_to_the_parent_is_never_walked_and_is_an_error_when_named_like_a_document() {
    let dir = dir_with_a_scenario();
    // Not named like a document: a subdirectory like any other, not descended into.
    std::os::unix::fs::symlink("..", dir.path().join("up")).unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("here")).unwrap();
    assert_eq!(load_within(vec![dir.path().to_path_buf()], 20), Ok(1));
    std::os::unix::fs::symlink("..", dir.path().join("up.yaml")).unwrap();
    assert_eq!(
        load_within(vec![dir.path().to_path_buf()], 20),
        Err(vec![
            "up.yaml:1:1: error: not a regular file (a directory)".to_string()
        ])
    );
}

#[test]
fn cli_validate_reports_a_fifo_and_exits() {
    let dir = dir_with_a_scenario();
    nix::unistd::mkfifo(&dir.path().join("x.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut child = meshproof()
        .arg("validate")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("meshproof validate hung on a FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("x.yaml:1:1: error: not a regular file (a FIFO)"),
        "{stdout}"
    );
}
