//! The registry mirror for real (issue #17): Debian's `docker-registry` (CNCF distribution
//! 2.8) as an upstream holding an image pushed here, a second one as a pull-through proxy in
//! front of it running on the config meshproof writes (`mirror::proxy`), and Debian's
//! `containerd` (own root, state and socket under a temp dir, never the host's) pulling with
//! `ctr images pull --hosts-dir` through exactly the hosts tree meshproof generates
//! (`mirror::prepare_node`). Ledger CTD-2…CTD-8.
//!
//! What it shows: the pull goes through the mirror and the digest survives it; a second client
//! (a second containerd, empty content store) is served by the mirror, the upstream having
//! served the manifest once; with the upstream stopped, pulls through the per-registry and the
//! `_default` configurations still succeed (so the mirror served them), and with the mirror
//! stopped too the same pull fails (the check can fail). A mirror that accepts and never
//! answers stops the run before a cluster exists, naming the registry.

#[path = "support_harness/mod.rs"]
mod support_harness;
mod support_registry;

use meshproof::mirror::proxy::ProxyConfig;
use meshproof::mirror::{MirrorHost, MirrorSetting, Upstream};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support_registry::{push_blob, sha256};

const REGISTRY: &str = "/usr/bin/docker-registry";
const CONTAINERD: &str = "/usr/bin/containerd";
const CTR: &str = "/usr/bin/ctr";
const REPO: &str = "meshproof/hello";

/// Runs a future to completion on a runtime of its own (the harness's bodies are synchronous).
fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a command to completion within `limit`, killing it past that.
fn run(cmd: &mut Command, limit: Duration) -> Output {
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
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Daemon {
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

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(&mut self) {
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

/// A registry on `127.0.0.1:port`, up when `/v2/` answers.
fn registry(dir: &Path, name: &str, port: u16, proxy_of: Option<&Upstream>) -> Daemon {
    let config = dir.join(format!("{name}.yml"));
    let storage = dir.join(format!("{name}-data"));
    match proxy_of {
        // The proxy runs on the config meshproof writes.
        Some(up) => ProxyConfig {
            upstream: up.clone(),
            listen: format!("127.0.0.1:{port}"),
            storage,
            credentials: None,
        }
        .write(&config)
        .unwrap(),
        None => std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: info }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\nhttp: {{ addr: \"127.0.0.1:{port}\" }}\n",
                storage.display()
            ),
        )
        .unwrap(),
    }
    let d = Daemon::spawn(
        Command::new(REGISTRY).arg("serve").arg(&config),
        dir.join(format!("{name}.log")),
    );
    let url = format!("http://127.0.0.1:{port}/v2/");
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

/// A ustar archive holding one file: a layer containerd can unpack.
fn tar_one_file(name: &str, body: &[u8]) -> Vec<u8> {
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

/// Pushes a one-layer linux/amd64 OCI image made here; returns its manifest digest (the
/// SHA-256 of the bytes pushed) and its blobs' (layer, config).
async fn push_image(port: u16) -> (String, [String; 2]) {
    let base = format!("http://127.0.0.1:{port}");
    let c = client();
    let layer = tar_one_file("hello.txt", b"pulled through the meshproof mirror\n");
    let layer_digest = push_blob(&c, &base, REPO, &layer).await;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        "config": {},
    }))
    .unwrap();
    let config_digest = push_blob(&c, &base, REPO, &config).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len() }],
    }))
    .unwrap();
    let r = c
        .put(format!("{base}/v2/{REPO}/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "put manifest");
    (sha256(&manifest), [layer_digest, config_digest])
}

/// A containerd of this test's own: root, state and sockets under `dir`, the CRI plugin off.
struct Containerd {
    /// Held so that the daemon is stopped when the client is dropped.
    _daemon: Daemon,
    sock: PathBuf,
}

fn containerd(dir: &Path) -> Containerd {
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
    fn pull(&self, hosts: &Path, reference: &str) -> Output {
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
    fn image_digest(&self, reference: &str) -> Option<String> {
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

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes the hosts tree for `setting` as a run does (probe included) into `dir`.
fn hosts_tree(setting: &MirrorSetting, dir: &Path) -> PathBuf {
    let node = block(meshproof::mirror::prepare_node(
        setting,
        dir,
        Duration::from_secs(10),
    ))
    .unwrap()
    .expect("a mirror setting gives a hosts tree");
    node.host_dir
}

fn a_pull_through_the_generated_hosts_goes_via_the_mirror_and_keeps_the_digest() {
    let tmp = tempfile::Builder::new()
        .prefix("mp-mirror-")
        .tempdir_in("/tmp")
        .unwrap();
    let dir = tmp.path();
    let (up_port, proxy_port) = (free_port(), free_port());
    let upstream_name = format!("127.0.0.1:{up_port}");
    let upstream = Upstream::plain_http(&upstream_name);
    let mut up = registry(dir, "upstream", up_port, None);
    let (manifest_digest, blobs) = block(push_image(up_port));
    let mut proxy = registry(dir, "proxy", proxy_port, Some(&upstream));
    let mirror = MirrorHost {
        url: format!("http://127.0.0.1:{proxy_port}"),
    };

    // Per registry: the upstream's own namespace, its server as the fallback.
    let per = hosts_tree(
        &MirrorSetting::Remote {
            default: None,
            per: BTreeMap::from([(upstream.clone(), mirror.clone())]),
        },
        &dir.join("env-per"),
    );
    let toml = std::fs::read_to_string(per.join(format!("127.0.0.1_{up_port}_/hosts.toml")))
        .expect("the namespace directory containerd looks for first");
    assert!(
        toml.contains(&format!("server = \"http://{upstream_name}\"")),
        "{toml}"
    );

    let reference = format!("{upstream_name}/{REPO}@{manifest_digest}");
    let first = containerd(&dir.join("containerd-1"));
    let out = first.pull(&per, &reference);
    assert!(out.status.success(), "first pull: {}", text(&out));
    assert_eq!(
        first.image_digest(&reference).as_deref(),
        Some(manifest_digest.as_str()),
        "the digest survives the mirror"
    );

    // What the upstream served for the first pull. distribution's proxy fetches a blob it
    // does not hold twice, once to store and once to stream (CTD-7); the second client must
    // cost the upstream nothing, so wait until the proxy has committed both blobs (a blob
    // still in flight would be fetched again for it).
    let fetches = |log: &str, what: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("\"GET /v2/{REPO}/{what} ")))
            .count()
    };
    for b in &blobs {
        let hex = b.trim_start_matches("sha256:");
        let data = dir.join(format!(
            "proxy-data/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            &hex[..2]
        ));
        let end = Instant::now() + Duration::from_secs(20);
        while !data.is_file() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            data.is_file(),
            "the proxy never stored {b}:\n{}",
            proxy.log()
        );
    }
    let before = up.log();
    let counts = |log: &str| {
        [
            fetches(log, &format!("manifests/{manifest_digest}")),
            fetches(log, &format!("blobs/{}", blobs[0])),
            fetches(log, &format!("blobs/{}", blobs[1])),
        ]
    };
    let first_counts = counts(&before);
    assert_eq!(first_counts[0], 1, "upstream manifest fetches:\n{before}");
    assert!(first_counts[1] >= 1 && first_counts[2] >= 1, "{before}");

    // A second client with an empty content store.
    let second = containerd(&dir.join("containerd-2"));
    let out = second.pull(&per, &reference);
    assert!(out.status.success(), "second pull: {}", text(&out));
    assert_eq!(
        second.image_digest(&reference).as_deref(),
        Some(manifest_digest.as_str())
    );
    let up_log = up.log();
    assert_eq!(
        counts(&up_log),
        first_counts,
        "the second pull reached the upstream:\n{up_log}"
    );
    assert!(
        !up_log.contains("containerd/"),
        "containerd talked to the upstream directly:\n{up_log}"
    );
    assert!(
        proxy
            .log()
            .contains(&format!("/v2/{REPO}/manifests/{manifest_digest}")),
        "the proxy saw the pull:\n{}",
        proxy.log()
    );

    // Upstream gone: the per-registry and the `_default` configurations still pull (the
    // mirror serves them), each from a fresh content store.
    up.stop();
    let third = containerd(&dir.join("containerd-3"));
    let out = third.pull(&per, &reference);
    assert!(
        out.status.success(),
        "pull with the upstream stopped: {}",
        text(&out)
    );
    let every = hosts_tree(
        &MirrorSetting::Remote {
            default: Some(mirror.clone()),
            per: BTreeMap::new(),
        },
        &dir.join("env-default"),
    );
    assert!(every.join("_default/hosts.toml").is_file());
    let fourth = containerd(&dir.join("containerd-4"));
    let out = fourth.pull(&every, &reference);
    assert!(
        out.status.success(),
        "pull through _default: {}",
        text(&out)
    );
    assert_eq!(
        fourth.image_digest(&reference).as_deref(),
        Some(manifest_digest.as_str())
    );

    // The control: with the mirror gone too, the same pull fails.
    proxy.stop();
    let fifth = containerd(&dir.join("containerd-5"));
    let out = fifth.pull(&per, &reference);
    assert!(
        !out.status.success(),
        "a pull with neither mirror nor upstream succeeded: {}",
        text(&out)
    );
    drop((first, second, third, fourth, fifth));
}

fn a_silent_mirror_fails_the_probe_naming_the_registry() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let held = std::thread::spawn(move || {
        // Accept one connection and hold it, answering nothing.
        listener.accept().map(|(s, _)| {
            std::thread::sleep(Duration::from_secs(3));
            drop(s)
        })
    });
    let tmp = tempfile::tempdir().unwrap();
    let setting = MirrorSetting::Remote {
        default: None,
        per: BTreeMap::from([(
            Upstream::new("docker.io"),
            MirrorHost {
                url: format!("http://{addr}"),
            },
        )]),
    };
    let e = block(meshproof::mirror::prepare_node(
        &setting,
        tmp.path(),
        Duration::from_millis(500),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("for docker.io"), "{e}");
    assert!(e.contains(&format!("http://{addr}")), "{e}");
    assert!(
        !tmp.path().join(meshproof::mirror::NODE_HOSTS_DIR).exists(),
        "no hosts tree is written for a mirror that does not answer"
    );
    let _ = held.join();
}

fn main() -> std::process::ExitCode {
    use support_harness::{Case, Need};
    support_harness::run(vec![
        Case::sync(
            "a_pull_through_the_generated_hosts_goes_via_the_mirror_and_keeps_the_digest",
            &[Need::Registry, Need::Containerd],
            a_pull_through_the_generated_hosts_goes_via_the_mirror_and_keeps_the_digest,
        ),
        Case::sync(
            "a_silent_mirror_fails_the_probe_naming_the_registry",
            &[],
            a_silent_mirror_fails_the_probe_naming_the_registry,
        ),
    ])
}
