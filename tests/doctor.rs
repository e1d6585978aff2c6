//! `meshproof doctor` holds the CLIs that install their own release (istioctl, linkerd, flux)
//! to the suites' pins, as the run does: a wrong version is reported with what is wanted, and
//! fails the doctor — before, istioctl 1.20.0 passed against a 1.30.3 pin. TEST-DOUBLE CLIs
//! report the versions. The pins come from tools.yaml (issue #16).

mod doubles;

use doubles::Doubles;
use std::process::Command;

fn doctor(d: &Doubles, istio_version: &str) -> (i32, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .arg("doctor")
        .current_dir(root)
        .env("MESHPROOF_PROJECT_DIR", root)
        .env("MESHPROOF_TOOL_PATH", d.bin())
        .env("MESHPROOF_DOUBLE_LOG", d.log())
        .env("MESHPROOF_DOUBLE_ISTIO_VERSION", istio_version)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn line<'a>(out: &'a str, tool: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(tool))
        .unwrap_or_else(|| panic!("no {tool} line in\n{out}"))
}

#[test]
fn a_cli_of_another_release_than_the_pin_is_wrong() {
    let d = Doubles::new();
    let (code, out) = doctor(&d, "1.20.0");
    assert_eq!(code, 1, "{out}");
    assert!(line(&out, "istioctl").starts_with("WRONG"), "{out}");
    assert!(out.contains("pinned: 1.30.3"), "{out}");
    assert!(out.contains("install istioctl 1.30.3"), "{out}");
    // The pinned release passes; flux reports its pin too.
    let (_, out) = doctor(&d, "1.30.3");
    assert!(line(&out, "istioctl").starts_with("ok"), "{out}");
    assert!(line(&out, "flux").starts_with("ok"), "{out}");
    // The pins are tools.yaml's (flux 2.9.4 there; the suites' v2.9.4 agrees, validate says so).
    assert!(out.contains("pinned: 2.9.4"), "{out}");
    assert!(line(&out, "helm").starts_with("ok"), "{out}");
}

/// Issue #16: every pinned tool is held to tools.yaml, not only the mesh CLIs: a helm of another
/// release is wrong, and the hint names `meshproof tools install`.
#[test]
fn helm_is_held_to_the_tool_table() {
    let d = Doubles::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .arg("doctor")
        .current_dir(root)
        .env("MESHPROOF_PROJECT_DIR", root)
        .env("MESHPROOF_TOOL_PATH", d.bin())
        .env("MESHPROOF_DOUBLE_LOG", d.log())
        .env("MESHPROOF_DOUBLE_HELM_VERSION", "v3.18.4")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(line(&out, "helm").starts_with("WRONG"), "{out}");
    assert!(out.contains("pinned: v3.19.0"), "{out}");
    assert!(
        out.contains("run `meshproof tools install` or install helm v3.19.0"),
        "{out}"
    );
}
