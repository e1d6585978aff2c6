//! Image pinning against a real registry: Debian's `docker-registry` (the CNCF distribution
//! registry, v2.8) started on loopback for each test. Images are pushed over the distribution
//! API, then resolved by meshproof; the expected digest is the SHA-256 of the manifest bytes
//! pushed, computed here, not read back from the registry.
//!
//! The registry binary is installed by `.ci/run`. Without it each test says why it skips —
//! except under `CI=true`, where it fails. The anonymous bearer-token flow of ghcr.io and Docker
//! Hub is exercised against a test double (an axum server, named as such) because the local
//! registry's token auth would need a signing CA and a token service of its own.

mod support_registry;

use meshproof::images::resolve::{pin_all, ResolveErrorKind};
use meshproof::images::{DigestSource, ImageRef, Images, Registry};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support_registry::{client, push_oci_image, put_manifest};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A registry process on a free loopback port, killed on drop.
struct LocalRegistry {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry(test: &str) -> Option<LocalRegistry> {
    if !Path::new(REGISTRY_BIN).exists() {
        let why = format!("{REGISTRY_BIN} is missing (apt-get install docker-registry)");
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: the registry is required in CI: {why}");
        }
        eprintln!("SKIPPED {test}: {why}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog: {{ level: error }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\n  delete: {{ enabled: true }}\nhttp: {{ addr: \"{addr}\" }}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let reg = LocalRegistry {
        child,
        addr,
        _dir: dir,
    };
    let url = format!("http://{}/v2/", reg.addr);
    let up = rt().block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    });
    assert!(up, "{test}: the registry did not answer /v2/ within 20 s");
    Some(reg)
}

/// Pushes a one-layer OCI image under `tag`; returns the manifest digest (SHA-256 of the bytes).
async fn push_image(addr: &str, repo: &str, tag: &str, layer: &[u8]) -> String {
    let base = format!("http://{addr}");
    push_oci_image(&client(), &base, repo, tag, layer).await.0
}

/// Pushes an OCI index over one image (what multi-arch images are); returns the index digest.
async fn push_index(addr: &str, repo: &str, tag: &str) -> (String, String) {
    let c = client();
    let child = push_image(addr, repo, "amd64-only", b"layer for the index").await;
    let size = c
        .get(format!("http://{addr}/v2/{repo}/manifests/amd64-only"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{ "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child, "size": size,
                        "platform": { "architecture": "amd64", "os": "linux" } }],
    }))
    .unwrap();
    let index_digest = put_manifest(
        &c,
        &format!("http://{addr}"),
        repo,
        tag,
        "application/vnd.oci.image.index.v1+json",
        &index,
    )
    .await;
    (index_digest, child)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn image(addr: &str, rest: &str) -> ImageRef {
    ImageRef::parse(&format!("{addr}/{rest}")).unwrap()
}

#[test]
fn a_tag_resolves_to_the_digest_of_the_manifest_pushed_and_follows_the_tag_when_it_moves() {
    let Some(reg) = registry("a_tag_resolves…") else {
        return;
    };
    let rt = rt();
    let first = rt.block_on(push_image(
        &reg.addr,
        "meshproof/alpine",
        "latest",
        b"first build",
    ));
    let r = Registry {
        timeout: Duration::from_secs(10),
    };
    let img = image(&reg.addr, "meshproof/alpine:latest");
    assert_eq!(rt.block_on(r.digest(&img)).unwrap(), first);
    let second = rt.block_on(push_image(
        &reg.addr,
        "meshproof/alpine",
        "latest",
        b"second build",
    ));
    assert_ne!(first, second);
    assert_eq!(
        rt.block_on(r.digest(&img)).unwrap(),
        second,
        "the tag moved; so does the pin"
    );
}

#[test]
fn a_multi_arch_tag_resolves_to_its_index_not_to_one_platform() {
    let Some(reg) = registry("a_multi_arch_tag…") else {
        return;
    };
    let rt = rt();
    let (index, child) = rt.block_on(push_index(&reg.addr, "meshproof/curl", "8.11.1"));
    let r = Registry {
        timeout: Duration::from_secs(10),
    };
    let got = rt
        .block_on(r.digest(&image(&reg.addr, "meshproof/curl:8.11.1")))
        .unwrap();
    assert_eq!(got, index);
    assert_ne!(got, child);
}

#[test]
fn unknown_tags_and_repositories_are_not_found() {
    let Some(reg) = registry("unknown_tags…") else {
        return;
    };
    let rt = rt();
    rt.block_on(push_image(&reg.addr, "meshproof/alpine", "latest", b"x"));
    let r = Registry {
        timeout: Duration::from_secs(10),
    };
    for rest in ["meshproof/alpine:nope", "meshproof/nothing:latest"] {
        let e = rt.block_on(r.digest(&image(&reg.addr, rest))).unwrap_err();
        assert!(matches!(e.kind, ResolveErrorKind::NotFound), "{rest}: {e}");
        assert!(e.to_string().contains(rest), "{e}");
    }
}

#[test]
fn a_registry_that_never_answers_is_a_timeout_not_a_hang() {
    // Accepts connections and says nothing (the listener is never read).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let r = Registry {
        timeout: Duration::from_secs(2),
    };
    let e = rt()
        .block_on(r.digest(&image(&addr, "meshproof/alpine:latest")))
        .unwrap_err();
    assert!(matches!(e.kind, ResolveErrorKind::Timeout(_)), "{e}");
    drop(l);
}

#[test]
fn nothing_listening_is_unreachable() {
    let addr = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let r = Registry {
        timeout: Duration::from_secs(5),
    };
    let e = rt()
        .block_on(r.digest(&image(&addr, "meshproof/alpine:latest")))
        .unwrap_err();
    assert!(matches!(e.kind, ResolveErrorKind::Unreachable(_)), "{e}");
}

#[test]
fn a_run_pins_every_image_of_the_suite_from_the_registry() {
    let Some(reg) = registry("a_run_pins…") else {
        return;
    };
    let rt = rt();
    let digest = rt.block_on(push_image(
        &reg.addr,
        "openfaas/alpine",
        "latest",
        b"watchdog",
    ));
    let images = Images {
        function: image(&reg.addr, "openfaas/alpine:latest"),
        ..Images::default()
    };
    let (pinned, record) = rt.block_on(pin_all(&images, &Registry::default())).unwrap();
    assert_eq!(
        pinned.function.to_string(),
        format!("{}/openfaas/alpine:latest@{digest}", reg.addr)
    );
    assert_eq!(
        pinned.probe, images.probe,
        "already pinned: untouched, no lookup on Docker Hub"
    );
    assert_eq!(record.len(), 3);
}

// ------------------------------------------------------------------ meshproof pin (the CLI)

fn meshproof(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The shipped istio suite with its function image moved to `function`, in a temp dir next to
/// a copy of the scenarios it names (a suite is validated with its manifests).
fn suite_copy(function: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("suites/istio.yaml")).unwrap();
    assert!(text.contains("  function: ghcr.io/openfaas/alpine:latest\n"));
    let text = text.replace(
        "  function: ghcr.io/openfaas/alpine:latest\n",
        &format!("  function: {function} # the function image\n"),
    );
    std::fs::create_dir(dir.path().join("suites")).unwrap();
    let path = dir.path().join("suites/istio.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn pin_write_pins_in_place_keeping_comments_and_check_then_passes() {
    let Some(reg) = registry("pin_write…") else {
        return;
    };
    let rt = rt();
    let first = rt.block_on(push_image(&reg.addr, "openfaas/alpine", "latest", b"one"));
    let tagged = format!("{}/openfaas/alpine:latest", reg.addr);
    let (_dir, suite) = suite_copy(&tagged);
    let before = std::fs::read_to_string(&suite).unwrap();
    let s = suite.to_str().unwrap();

    let (code, out, err) = meshproof(&["pin", "--check", s]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "images.function: {tagged} is not pinned by digest"
        )),
        "{out}"
    );

    // Without --write nothing changes on disk.
    let (code, out, err) = meshproof(&["pin", s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("{tagged} -> {tagged}@{first}")),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&suite).unwrap(), before);

    let (code, out, err) = meshproof(&["pin", "--write", s]);
    assert_eq!(code, 0, "{out}{err}");
    let after = std::fs::read_to_string(&suite).unwrap();
    assert_eq!(
        after,
        before.replace(&tagged, &format!("{tagged}@{first}")),
        "only the image string changes"
    );
    assert!(after.contains("# the function image"));
    let (code, out, err) = meshproof(&["pin", "--check", s]);
    assert_eq!(code, 0, "{out}{err}");

    // The tag moves: a plain `pin` leaves a pinned image alone; `--refresh` follows the tag.
    let second = rt.block_on(push_image(&reg.addr, "openfaas/alpine", "latest", b"two"));
    let (code, out, _) = meshproof(&["pin", "--write", s]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out, err) = meshproof(&["pin", "--write", "--refresh", "--timeout", "10s", s]);
    assert_eq!(
        code, 2,
        "the probe and capture images live on Docker Hub, which this test cannot reach: {out}{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&suite).unwrap(),
        after,
        "a failed lookup writes nothing"
    );
    let _ = second;
}

#[test]
fn pin_refuses_a_scenario_and_reports_a_broken_suite_with_its_position() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, _, err) = meshproof(&[
        "pin",
        "--check",
        root.join("scenarios/mtls.yaml").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("a scenario, not a suite"), "{err}");
    let (_dir, suite) = suite_copy("Not An Image");
    let (code, _, err) = meshproof(&["pin", "--check", suite.to_str().unwrap()]);
    assert_eq!(code, 2);
    let line = std::fs::read_to_string(&suite)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("  function: "))
        .unwrap()
        + 1;
    let want = format!("istio.yaml:{line}:13: error: images.function: image \"Not An Image\" is not a valid image reference");
    assert!(err.contains(&want), "{err}");
}

// ------------------------------------------------------------------ the bearer-token flow (double)

/// A registry double speaking the anonymous token flow of ghcr.io and Docker Hub: `/v2/` and the
/// manifest endpoint answer 401 with a `WWW-Authenticate: Bearer` challenge until given the token
/// the token endpoint hands out for the repository's pull scope.
#[test]
fn the_anonymous_bearer_token_flow_of_public_registries() {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, head};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    const DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);
    let rt = rt();
    let seen = Seen::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let realm = format!("http://{addr}/token");
    let manifest = move |headers: HeaderMap| {
        let realm = realm.clone();
        async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer t0k") {
                ([("docker-content-digest", DIGEST)], "").into_response()
            } else {
                let challenge = format!(
                    r#"Bearer realm="{realm}",service="double",scope="repository:openfaas/alpine:pull""#
                );
                (
                    StatusCode::UNAUTHORIZED,
                    [("www-authenticate", challenge)],
                    "",
                )
                    .into_response()
            }
        }
    };
    let token = |State(seen): State<Seen>, Query(q): Query<HashMap<String, String>>| async move {
        seen.0
            .lock()
            .unwrap()
            .push(format!("service={} scope={}", q["service"], q["scope"]));
        if q["scope"] == "repository:openfaas/alpine:pull" {
            axum::Json(serde_json::json!({ "token": "t0k" })).into_response()
        } else {
            StatusCode::FORBIDDEN.into_response()
        }
    };
    let app = axum::Router::new()
        .route("/v2/", get(manifest.clone()))
        .route(
            "/v2/openfaas/alpine/manifests/latest",
            head(manifest.clone()).get(manifest),
        )
        .route("/token", get(token))
        .with_state(seen.clone());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    let r = Registry {
        timeout: Duration::from_secs(10),
    };
    let got = rt
        .block_on(r.digest(&image(&addr, "openfaas/alpine:latest")))
        .unwrap();
    assert_eq!(got, DIGEST);
    assert_eq!(
        *seen.0.lock().unwrap(),
        vec!["service=double scope=repository:openfaas/alpine:pull"]
    );
}

// ------------------------------------------------------------------ meshproof doctor

/// A project (suites and scenarios) whose Istio suite names `function`; only the Istio suite.
fn project_copy(function: &str) -> tempfile::TempDir {
    let (dir, _) = suite_copy(function);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("cp")
        .arg("-r")
        .arg(root.join("scenarios"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn doctor_json(project: &Path) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .args(["doctor", "--json"])
        .env("MESHPROOF_PROJECT_DIR", project)
        .current_dir(project)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue #21: `doctor` asks the registry of every image still on a tag (a run resolves it
/// before creating any cluster, and stops there if it cannot): the digest the tag points at
/// when it answers, the registry's error and a failing exit code when it does not.
#[test]
fn doctor_resolves_the_images_still_on_a_tag() {
    let Some(reg) = registry("doctor_resolves…") else {
        return;
    };
    let digest = rt().block_on(push_image(&reg.addr, "openfaas/alpine", "latest", b"doc"));
    let found = project_copy(&format!("{}/openfaas/alpine:latest", reg.addr));
    let (_, v, err) = doctor_json(found.path());
    let images = v["images"]
        .as_array()
        .unwrap_or_else(|| panic!("{v:#}{err}"));
    assert_eq!(images.len(), 1, "{v:#}");
    assert_eq!(images[0]["role"], "function");
    assert_eq!(images[0]["digest"].as_str(), Some(digest.as_str()), "{v:#}");
    assert!(images[0]["error"].is_null());

    let missing = project_copy(&format!("{}/openfaas/alpine:nosuchtag", reg.addr));
    let (code, v, err) = doctor_json(missing.path());
    assert_eq!(code, 1, "{v:#}{err}");
    let e = v["images"][0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(e.contains("no such image or tag"), "{e}");
    // The text form says what a run would do and how to fix it.
    let out = Command::new(env!("CARGO_BIN_EXE_meshproof"))
        .arg("doctor")
        .env("MESHPROOF_PROJECT_DIR", missing.path())
        .current_dir(missing.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MISSING image function")
            && text.contains("a run would stop here, before creating any cluster"),
        "{text}"
    );
}
