//! Pushing content into a real registry (Debian's `docker-registry`) over the OCI distribution
//! API, for the tests that run one: image pinning (`tests/images_registry.rs`) and the mirror
//! (`tests/mirror_containerd.rs`, `tests/mirror_local.rs`): images made here, the test's own
//! registries and containerds.
#![allow(dead_code)]

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `b`, as the distribution API names content.
pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Pushes a blob into `repo` of the registry at `base` (`http://HOST:PORT`) with a monolithic
/// upload (POST, then PUT with the digest); returns its digest.
pub async fn push_blob(c: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let start = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202, "start upload");
    let loc = start.headers()["location"].to_str().unwrap().to_string();
    let loc = if loc.starts_with("http") {
        loc
    } else {
        format!("{base}{loc}")
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = c
        .put(format!("{loc}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "finish upload: {:?}", put.text().await);
    digest
}

// ---------------------------------------------------------------- daemons and containerd

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CONTAINERD: &str = "/usr/bin/containerd";
pub const CTR: &str = "/usr/bin/ctr";

use meshproof::mirror::proxy::ProxyConfig;
use meshproof::mirror::Upstream;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Runs a command to completion within `limit`, killing it past that.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    std::thread::spawn(move || {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if d2.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !d2.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    out
}

/// A daemon this test started, killed (by its own pid) on drop.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn spawn(cmd: &mut Command, log: PathBuf) -> Daemon {
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A ustar archive holding one file: a layer containerd can unpack.
pub fn tar_one_file(name: &str, body: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mut field = |off: usize, len: usize, s: String| {
        h[off..off + s.len()].copy_from_slice(s.as_bytes());
        assert!(s.len() <= len);
    };
    field(100, 8, "0000644\0".into());
    field(108, 8, "0000000\0".into());
    field(116, 8, "0000000\0".into());
    field(124, 12, format!("{:011o}\0", body.len()));
    field(136, 12, format!("{:011o}\0", 0));
    field(156, 1, "0".into());
    field(257, 6, "ustar\0".into());
    field(263, 2, "00".into());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| *b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Pushes a one-layer linux/amd64 OCI image made here as `REPO:v1` into the registry at `base`
/// (`http://HOST:PORT`); returns its manifest digest (the SHA-256 of the bytes pushed) and its
/// blobs' (layer, config). `body` is the layer's one file, so images pushed with different
/// bodies differ.
pub async fn push_image(base: &str, repo: &str, body: &[u8]) -> (String, [String; 2]) {
    let layer = tar_one_file("hello.txt", body);
    push_oci_image(&client(), base, repo, "v1", &layer).await
}

/// Pushes `layer` (the bytes as given) and a linux/amd64 config naming it, then an OCI image
/// manifest over both as `repo:tag`; returns the manifest digest and the blobs' (layer,
/// config).
pub async fn push_oci_image(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    layer: &[u8],
) -> (String, [String; 2]) {
    let layer_digest = push_blob(c, base, repo, layer).await;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "config": {},
    }))
    .unwrap();
    let config_digest = push_blob(c, base, repo, &config).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len() }],
    }))
    .unwrap();
    let digest = put_manifest(
        c,
        base,
        repo,
        tag,
        "application/vnd.oci.image.manifest.v1+json",
        &manifest,
    )
    .await;
    (digest, [layer_digest, config_digest])
}

/// PUTs a manifest (or index) of media type `media` as `repo:tag`; returns its digest.
pub async fn put_manifest(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    media: &str,
    body: &[u8],
) -> String {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", media)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "put manifest: {:?}", r.text().await);
    sha256(body)
}

/// A containerd of this test's own: root, state and sockets under `dir`, the CRI plugin off.
pub struct Containerd {
    /// Held so that the daemon is stopped when the client is dropped.
    _daemon: Daemon,
    pub sock: PathBuf,
}

pub fn containerd(dir: &Path) -> Containerd {
    std::fs::create_dir_all(dir).unwrap();
    let sock = dir.join("c.sock");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = sock.display(),
        ),
    )
    .unwrap();
    let daemon = Daemon::spawn(
        Command::new(CONTAINERD).arg("--config").arg(&config),
        dir.join("containerd.log"),
    );
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if sock.exists() {
            let out = run(
                Command::new(CTR).arg("-a").arg(&sock).arg("version"),
                Duration::from_secs(10),
            );
            if out.status.success() {
                return Containerd {
                    _daemon: daemon,
                    sock,
                };
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "containerd did not answer on {} within 30 s:\n{}",
        sock.display(),
        daemon.log()
    );
}

impl Containerd {
    /// `ctr images pull --hosts-dir DIR REF` (unpacked with the native snapshotter, which needs
    /// no kernel feature); a pull is bounded by 60 s.
    pub fn pull(&self, hosts: &Path, reference: &str) -> Output {
        run(
            Command::new(CTR)
                .arg("-a")
                .arg(&self.sock)
                .args([
                    "-n",
                    "meshproof-test",
                    "images",
                    "pull",
                    "--snapshotter",
                    "native",
                    "--hosts-dir",
                ])
                .arg(hosts)
                .arg(reference),
            Duration::from_secs(60),
        )
    }

    /// The target digest containerd recorded for `reference`.
    pub fn image_digest(&self, reference: &str) -> Option<String> {
        let out = run(
            Command::new(CTR).arg("-a").arg(&self.sock).args([
                "-n",
                "meshproof-test",
                "images",
                "ls",
            ]),
            Duration::from_secs(20),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.split_whitespace().next() == Some(reference))
            .and_then(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("sha256:"))
                    .map(str::to_string)
            })
    }
}

/// Runs a future to completion on a runtime of its own (the harness's bodies are synchronous).
pub fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Debian's `docker-registry` listening on `addr` (`HOST:PORT`), up when `/v2/` answers: a
/// plain registry, or a pull-through proxy of `proxy_of` on the config meshproof writes.
pub fn registry(dir: &Path, name: &str, addr: &str, proxy_of: Option<&Upstream>) -> Daemon {
    let config = dir.join(format!("{name}.yml"));
    let storage = dir.join(format!("{name}-data"));
    match proxy_of {
        // The proxy runs on the config meshproof writes.
        Some(up) => ProxyConfig {
            upstream: up.clone(),
            listen: addr.to_string(),
            storage,
            credentials: None,
        }
        .write(&config)
        .unwrap(),
        None => std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: info }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\nhttp: {{ addr: \"{addr}\" }}\n",
                storage.display()
            ),
        )
        .unwrap(),
    }
    let d = Daemon::spawn(
        Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config),
        dir.join(format!("{name}.log")),
    );
    let url = format!("http://{addr}/v2/");
    let c = client();
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if block(async { c.get(&url).send().await }).is_ok_and(|r| r.status().is_success()) {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{name} did not answer {url} within 20 s:\n{}", d.log());
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
