//! `meshproof doctor` holds the CLIs that install their own release (istioctl, linkerd, flux)
//! to the suites' pins, as the run does: a wrong version is reported with what is wanted, and
//! fails the doctor — before, istioctl 1.20.0 passed against a 1.30.3 pin. TEST-DOUBLE CLIs
//! report the versions.

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
    assert!(out.contains("pinned: v2.9.4"), "{out}");
}
