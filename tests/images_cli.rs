//! `meshproof images` with the rendering CLIs absent: the suite's images are listed by role,
//! with their digests where pinned, and every component's list is reported incomplete with the
//! reason (the CLI that was not found and the command that would render it) — never guessed.
//! And `meshproof mirror-config`, which writes the pull-through proxies' configs.

use std::path::Path;
use std::process::Command;

fn images(args: &[&str]) -> (i32, String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .arg("images")
        .args(args)
        .current_dir(root)
        .env("MESHPROOF_PROJECT_DIR", root)
        // No CLI anywhere: neither on PATH nor in the test-double directory.
        .env("PATH", empty.path())
        .env("MESHPROOF_TOOL_PATH", empty.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn without_the_clis_the_suite_images_are_listed_and_every_chart_is_incomplete_with_the_reason() {
    let (code, out, err) = images(&["linkerd", "--env", "linkerd[k8s=1.36]"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("== environment linkerd[k8s=1.36] (3 image(s))\n"),
        "{out}"
    );
    let probe = out
        .lines()
        .find(|l| l.contains("role=probe"))
        .expect("the probe image");
    assert!(probe.starts_with("curlimages/curl:"), "{probe}");
    assert!(probe.contains("digest=sha256:"), "{probe}");
    assert!(probe.ends_with("source=suite"), "{probe}");
    for (source, cli) in [
        ("Linkerd edge-26.8.3", "`linkerd` not found on PATH"),
        ("OpenFaaS 15.0.6", "`helm` not found on PATH"),
        ("Flux v2.9.4", "`flux` not found on PATH"),
        ("cert-manager v1.21.1", "`helm` not found on PATH"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("incomplete: {source}: ")))
            .unwrap_or_else(|| panic!("no incomplete line for {source}:\n{out}"));
        assert!(line.contains(cli), "{line}");
        assert!(line.contains("not rendered (`"), "{line}");
    }
    assert!(
        out.contains(
            "incomplete: Gateway API CRDs v1.5.1: Gateway API CRDs is installed from a downloaded manifest"
        ),
        "{out}"
    );
}

#[test]
fn json_has_the_same_lists() {
    let (code, out, err) = images(&["istio", "--env", "istio[k8s=1.36]", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let env = &v[0];
    assert_eq!(env["environment"], "istio[k8s=1.36]");
    let roles: Vec<&str> = env["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["function", "probe", "capture"]);
    let istio = env["incomplete"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["source"] == "Istio 1.30.3")
        .expect("istio is incomplete");
    assert!(
        istio["reason"]
            .as_str()
            .unwrap()
            .contains("`istioctl` not found on PATH"),
        "{istio}"
    );
}

#[test]
fn an_unknown_environment_is_an_error() {
    let (code, _, err) = images(&["istio", "--env", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("has no environment \"nope\""), "{err}");
}

/// `meshproof mirror-config`: one 0600 proxy config per registry, the upstream's login only in
/// that file (never on stdout or stderr), and the `MESHPROOF_MIRROR` value on stdout; a login
/// missing its other half is refused.
#[test]
fn mirror_config_writes_private_proxy_configs_and_prints_the_mirror_value() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(["mirror-config", "--out"])
        .arg(dir.path())
        .args(["docker.io", "ghcr.io"])
        .env("MESHPROOF_MIRROR_DOCKERHUB_USERNAME", "me")
        .env("MESHPROOF_MIRROR_DOCKERHUB_TOKEN", "dckr_pat_NOT_PRINTED")
        .env_remove("MESHPROOF_MIRROR_GHCR_IO_USERNAME")
        .env_remove("MESHPROOF_MIRROR_GHCR_IO_TOKEN")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout.trim(),
        "docker.io=http://meshproof-mirror-docker-io:5000,ghcr.io=http://meshproof-mirror-ghcr-io:5000"
    );
    assert!(!stdout.contains("NOT_PRINTED") && !stderr.contains("NOT_PRINTED"));
    let hub = dir.path().join("docker-io/config.yml");
    let text = std::fs::read_to_string(&hub).unwrap();
    assert!(
        text.contains("remoteurl: https://registry-1.docker.io"),
        "{text}"
    );
    assert!(text.contains("password: dckr_pat_NOT_PRINTED"), "{text}");
    assert_eq!(
        std::fs::metadata(&hub).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ghcr = std::fs::read_to_string(dir.path().join("ghcr-io/config.yml")).unwrap();
    assert!(!ghcr.contains("password"), "{ghcr}");

    let half = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(["mirror-config", "--out"])
        .arg(dir.path())
        .arg("docker.io")
        .env_remove("MESHPROOF_MIRROR_DOCKERHUB_USERNAME")
        .env("MESHPROOF_MIRROR_DOCKERHUB_TOKEN", "dckr_pat_NOT_PRINTED")
        .output()
        .unwrap();
    assert_eq!(half.status.code(), Some(2));
    let err = String::from_utf8_lossy(&half.stderr);
    assert!(err.contains("MESHPROOF_MIRROR_DOCKERHUB_USERNAME"), "{err}");
    assert!(!err.contains("NOT_PRINTED"), "{err}");
}
