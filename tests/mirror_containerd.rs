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

use meshproof::mirror::{MirrorHost, MirrorSetting, Upstream};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support_registry::{block, containerd, push_image, registry, text};

const REPO: &str = "meshproof/hello";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    let mut up = registry(dir, "upstream", &upstream_name, None);
    let (manifest_digest, blobs) = block(push_image(
        &format!("http://127.0.0.1:{up_port}"),
        REPO,
        b"pulled through the meshproof mirror\n",
    ));
    let mut proxy = registry(
        dir,
        "proxy",
        &format!("127.0.0.1:{proxy_port}"),
        Some(&upstream),
    );
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
