//! `--mirror local` / `keep` for real (issue #17): a Docker engine, a user-defined network
//! standing in for kind's, an upstream registry on the host (Debian's `docker-registry`) holding
//! images pushed here, and the mirror container started by meshproof's own code (the pool a run
//! uses: `docker create`, `docker cp` of the 0600 config, `docker start`, `docker network
//! connect`) from an image made here out of Debian's `docker-registry` binary (no registry is
//! reachable where the tests run: `MESHPROOF_MIRROR_IMAGE` names it).
//!
//! What it shows: Debian's containerd pulls through the container with the hosts tree meshproof
//! generates, and the upstream serves the manifest once for two pulls; another container on the
//! network reaches the mirror by its name (kind's nodes do the same, CTD-9); the end of the run
//! reads the access log (the evidence finds the pulled repository and not another) and removes
//! the container; `keep` reuses a running mirror and refuses one with another configuration;
//! when the run is SIGKILLed its reaper removes the container, and `meshproof gc` removes the
//! container of a dead run's record.

mod support_docker;
mod support_harness;
mod support_registry;

use meshproof::mirror::evidence::{self, Route};
use meshproof::mirror::local::{self, IMAGE_ENV};
use meshproof::mirror::pool::Pool;
use meshproof::mirror::Upstream;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support_docker::{docker, import_image_with, rand_suffix};
use support_registry::{block, containerd, push_image, registry, text, Daemon};

/// The registry image made here from Debian's `docker-registry` (distribution 2.8.2).
const TEST_IMAGE: &str = "meshproof-test-registry:1";
const BUSYBOX: &str = "meshproof-test-busybox:1";
const REPO: &str = "meshproof/hello";
const OTHER: &str = "meshproof/other";
/// Set in the environment of this binary re-executed as a "run" for the reaper test.
const CHILD_ENV: &str = "MESHPROOF_TEST_MIRROR_CHILD";

/// [`TEST_IMAGE`]: the binary and its libraries, the config's directory, busybox for `test`
/// in `docker exec`; the entrypoint is the binary itself (the command comes from meshproof:
/// `serve <config>`).
fn registry_image() {
    import_image_with(
        TEST_IMAGE,
        &[r#"ENTRYPOINT ["/usr/bin/docker-registry"]"#],
        |root| {
            support_docker::copy_with_libraries(root, &["/usr/bin/docker-registry"]);
            for d in ["etc/distribution", "var/lib/registry", "tmp"] {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            for a in ["test", "ls"] {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
            }
        },
    );
}

fn busybox_image() {
    import_image_with(BUSYBOX, &[], |_| {});
}

/// A network standing in for kind's, with an upstream registry on its gateway; removed (with
/// every container still on it) on drop.
struct Net {
    name: String,
    gateway: String,
}

impl Net {
    fn new() -> Net {
        let name = format!(
            "meshproof-test-mirror-{}-{}",
            std::process::id(),
            rand_suffix()
        );
        docker(&["network", "create", &name]);
        let gateway = docker(&[
            "network",
            "inspect",
            &name,
            "--format",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
        ]);
        Net { name, gateway }
    }

    /// A free port on the gateway address.
    fn free_addr(&self) -> String {
        let l = std::net::TcpListener::bind((self.gateway.as_str(), 0)).unwrap();
        l.local_addr().unwrap().to_string()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("network={}", self.name)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default();
        for id in ids.split_whitespace() {
            let _ = Command::new("docker").args(["rm", "-f", "-v", id]).output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.name])
            .output();
    }
}

/// An upstream registry on the network's gateway holding [`REPO`] and [`OTHER`].
struct Upstreamed {
    daemon: Daemon,
    upstream: Upstream,
    /// The manifest digest and blobs of [`REPO`].
    digest: String,
    blobs: [String; 2],
}

fn upstream(net: &Net, dir: &Path) -> Upstreamed {
    let addr = net.free_addr();
    let daemon = registry(dir, "upstream", &addr, None);
    let base = format!("http://{addr}");
    let (digest, blobs) = block(push_image(&base, REPO, b"pulled through a local mirror\n"));
    block(push_image(&base, OTHER, b"never pulled\n"));
    Upstreamed {
        daemon,
        upstream: Upstream::plain_http(&addr),
        digest,
        blobs,
    }
}

fn exists(container: &str) -> bool {
    Command::new("docker")
        .args(["container", "inspect", container])
        .output()
        .unwrap()
        .status
        .success()
}

fn quiet(_: &str) {}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mp-local-")
        .tempdir_in("/tmp")
        .unwrap()
}

/// A run id as a run makes one (six lowercase letters and digits), unique per call.
fn run_id() -> String {
    let s = rand_suffix();
    format!("t{}", &format!("{s:0>5}")[..5])
}

fn a_local_mirror_serves_the_nodes_and_its_log_is_the_evidence() {
    registry_image();
    busybox_image();
    let net = Net::new();
    let dir = tmp();
    let up = upstream(&net, dir.path());
    let pool = Pool::new(false, &run_id(), &net.name, dir.path().join("scratch"));
    let containers = block(pool.ensure(std::slice::from_ref(&up.upstream), &quiet)).unwrap();
    let name = containers[&up.upstream].clone();
    assert!(name.starts_with("meshproof-mirror-t"), "{name}");

    // The nodes' hosts tree names the container; kind's nodes resolve it on the network.
    let node = meshproof::mirror::prepare_node_local(&containers, &dir.path().join("env")).unwrap();
    let ns = meshproof::mirror::hosts::namespace_dir(&up.upstream.name);
    let toml = std::fs::read_to_string(node.host_dir.join(&ns).join("hosts.toml")).unwrap();
    assert!(
        toml.contains(&format!("[host.\"http://{name}:5000\"]")),
        "{toml}"
    );
    assert!(
        toml.contains(&format!("server = \"{}\"", up.upstream.server)),
        "{toml}"
    );

    // (b) Another container on the network reaches it by name (busybox wget: no -T).
    let body = docker(&[
        "run",
        "--rm",
        "--network",
        &net.name,
        BUSYBOX,
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{name}:5000/v2/"),
    ]);
    assert_eq!(body, "{}", "GET /v2/ by container name");

    // (a) containerd on this machine (no Docker DNS here: the container's address instead of
    // its name, in the same generated tree) pulls through it twice; the upstream serves the
    // manifest once.
    let ip = docker(&[
        "container",
        "inspect",
        "--format",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            net.name
        ),
        &name,
    ]);
    let by_ip = meshproof::mirror::prepare_node_local(
        &BTreeMap::from([(up.upstream.clone(), ip.clone())]),
        &dir.path().join("env-ip"),
    )
    .unwrap();
    let reference = format!("{}/{REPO}@{}", up.upstream.name, up.digest);
    let first = containerd(&dir.path().join("containerd-1"));
    let out = first.pull(&by_ip.host_dir, &reference);
    assert!(out.status.success(), "first pull: {}", text(&out));
    assert_eq!(
        first.image_digest(&reference).as_deref(),
        Some(up.digest.as_str())
    );
    // The proxy stores a blob after streaming it; a second pull before that would fetch again
    // (CTD-7): wait until both are in the container's storage.
    for b in &up.blobs {
        let hex = b.trim_start_matches("sha256:");
        let path = format!(
            "{}/docker/registry/v2/blobs/sha256/{}/{hex}/data",
            local::STORAGE,
            &hex[..2]
        );
        let end = Instant::now() + Duration::from_secs(20);
        let stored = || {
            Command::new("docker")
                .args(["exec", &name, "test", "-f", &path])
                .output()
                .unwrap()
                .status
                .success()
        };
        while !stored() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(stored(), "the mirror never stored {b}");
    }
    let manifest_fetches = |log: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("\"GET /v2/{REPO}/manifests/{} ", up.digest)))
            .count()
    };
    assert_eq!(manifest_fetches(&up.daemon.log()), 1, "{}", up.daemon.log());
    let second = containerd(&dir.path().join("containerd-2"));
    let out = second.pull(&by_ip.host_dir, &reference);
    assert!(out.status.success(), "second pull: {}", text(&out));
    let up_log = up.daemon.log();
    assert_eq!(
        manifest_fetches(&up_log),
        1,
        "the second pull reached the upstream:\n{up_log}"
    );
    assert!(
        !up_log.contains("containerd/"),
        "containerd talked to the upstream directly:\n{up_log}"
    );

    // (e) The evidence, from the real log: the pulled repository, not the other one.
    let log = block(local::logs(&name)).unwrap();
    let served = evidence::served_manifests(&log);
    assert!(served.contains_key(REPO), "{served:?}\n{log}");
    assert!(!served.contains_key(OTHER), "{served:?}");

    // (c) The end of the run reads the log, then removes the container.
    let done = block(pool.finish(false)).expect("first finish");
    assert!(!exists(&name), "{name} is still there after the run's end");
    let image = |repo: &str| {
        meshproof::images::ImageRef::parse(&format!("{}/{repo}:v1", up.upstream.name)).unwrap()
    };
    assert!(matches!(
        evidence::route_of(&image(REPO), &done.containers, &done.served),
        Route::LocalMirror { container, .. } if container == name
    ));
    assert_eq!(
        evidence::route_of(&image(OTHER), &done.containers, &done.served),
        Route::NotSeen {
            container: name.clone()
        }
    );
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert!(block(pool.finish(false)).is_none(), "finished once");
    drop((first, second));
}

fn keep_reuses_a_running_mirror_and_refuses_another_configuration() {
    registry_image();
    let net = Net::new();
    let dir = tmp();
    let up = upstream(&net, dir.path());
    let name = local::container_name(&up.upstream, None);
    let volume = local::volume_name(&up.upstream);
    let ups = std::slice::from_ref(&up.upstream);
    let cleanup = || {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &name])
            .output();
        let _ = Command::new("docker")
            .args(["volume", "rm", &volume])
            .output();
    };
    cleanup();
    let id = |n: &str| docker(&["container", "inspect", "--format", "{{.Id}}", n]);

    let first = Pool::new(true, &run_id(), &net.name, dir.path().join("s1"));
    assert_eq!(
        block(first.ensure(ups, &quiet)).unwrap()[&up.upstream],
        name
    );
    let started = id(&name);
    assert!(block(first.finish(false)).unwrap().errors.is_empty());
    assert!(exists(&name), "a kept mirror outlives its run");

    let lines = std::sync::Mutex::new(Vec::new());
    let second = Pool::new(true, &run_id(), &net.name, dir.path().join("s2"));
    block(second.ensure(ups, &|l: &str| lines.lock().unwrap().push(l.to_string()))).unwrap();
    assert_eq!(id(&name), started, "the same container is reused");
    assert!(
        lines.lock().unwrap().iter().any(|l| l.contains("reused")),
        "{:?}",
        lines.lock().unwrap()
    );

    // Another configuration (a login appears for this upstream): refused, naming the fix.
    let (user, token) = meshproof::mirror::proxy::Credentials::env_names(&up.upstream);
    std::env::set_var(&user, "me");
    std::env::set_var(&token, "tok_SECRET_kept");
    let third = Pool::new(true, &run_id(), &net.name, dir.path().join("s3"));
    let e = block(third.ensure(ups, &quiet)).unwrap_err().to_string();
    std::env::remove_var(&user);
    std::env::remove_var(&token);
    assert!(e.contains(&format!("docker rm -f {name}")), "{e}");
    assert!(!e.contains("SECRET"), "{e}");
    assert_eq!(
        id(&name),
        started,
        "the refused run left the container alone"
    );
    cleanup();
}

/// The "run" the reaper test kills: registers with a reaper, starts a local mirror through the
/// pool, says which, and waits to be killed.
fn child(spec: &str) -> std::process::ExitCode {
    let mut parts = spec.split('|');
    let (Some(network), Some(addr), Some(log)) = (parts.next(), parts.next(), parts.next()) else {
        eprintln!("bad {CHILD_ENV}");
        return std::process::ExitCode::from(2);
    };
    meshproof::reaper::enable();
    meshproof::reaper::start(Path::new(log)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let pool = Pool::new(false, &run_id(), network, scratch.path().to_path_buf());
    let up = Upstream::plain_http(addr);
    let c = block(pool.ensure(std::slice::from_ref(&up), &quiet)).unwrap();
    println!("ready {}", c[&up]);
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(300));
    std::process::ExitCode::SUCCESS
}

fn the_reaper_removes_the_mirror_of_a_killed_run_and_its_record() {
    registry_image();
    let net = Net::new();
    let dir = tmp();
    let up = upstream(&net, dir.path());
    let state = tempfile::tempdir().unwrap();
    let reaper_log = dir.path().join("reaper.log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(
            CHILD_ENV,
            format!("{}|{}|{}", net.name, up.upstream.name, reaper_log.display()),
        )
        .env(meshproof::reaper::records::STATE_DIR_ENV, state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let name = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("the child said {line:?}"))
        .to_string();
    assert!(exists(&name));
    let records = meshproof::reaper::records::read_all(state.path()).unwrap();
    let recorded = records.iter().any(|f| {
        f.record.as_ref().is_ok_and(|r| {
            r.entries
                .contains(&meshproof::reaper::Entry::Container { name: name.clone() })
        })
    });
    assert!(recorded, "the run record names the container: {records:?}");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    while exists(&name) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !exists(&name),
        "the reaper did not remove {name} within 60 s; its log:\n{}",
        std::fs::read_to_string(&reaper_log).unwrap_or_default()
    );
    let end = Instant::now() + Duration::from_secs(20);
    while !meshproof::reaper::records::read_all(state.path())
        .unwrap()
        .is_empty()
        && Instant::now() < end
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::read_to_string(&reaper_log).unwrap_or_default();
    assert!(log.contains(&format!("removed container {name}")), "{log}");
    assert!(
        meshproof::reaper::records::read_all(state.path())
            .unwrap()
            .is_empty(),
        "the reaper removed everything, so the record goes"
    );
}

fn gc_removes_the_mirror_a_dead_run_recorded() {
    registry_image();
    let net = Net::new();
    let dir = tmp();
    let up = upstream(&net, dir.path());
    let pool = Pool::new(false, &run_id(), &net.name, dir.path().join("scratch"));
    let name = block(pool.ensure(std::slice::from_ref(&up.upstream), &quiet)).unwrap()
        [&up.upstream]
        .clone();
    // A record as a run killed together with its reaper leaves it: a process that is gone.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let state = tempfile::tempdir().unwrap();
    let path = meshproof::reaper::records::records_dir(state.path()).join(format!("{pid}-1.json"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let record = meshproof::reaper::records::Record {
        pid,
        pid_started: Some(1),
        started_at: "2026-12-06T00:00:00Z".into(),
        command: "e2e".into(),
        entries: vec![meshproof::reaper::Entry::Container { name: name.clone() }],
    };
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    let found = meshproof::reaper::records::read_all(state.path()).unwrap();
    let plan = meshproof::gc::plan(found, &Ok(Default::default()), |r| {
        meshproof::reaper::records::is_alive(r.pid, r.pid_started)
    });
    assert_eq!(
        plan.runs[0].steps,
        [meshproof::gc::Step::RemoveContainer { name: name.clone() }]
    );
    let done = meshproof::gc::execute(&plan, Duration::from_secs(60));
    assert!(!exists(&name), "gc left {name}: {done:?}");
    assert!(meshproof::reaper::records::read_all(state.path())
        .unwrap()
        .is_empty());
    // The pool's own end finds it gone: its log cannot be read (said), the removal is no error.
    let errors = block(pool.finish(false)).unwrap().errors;
    assert!(
        errors.len() == 1 && errors[0].contains("docker logs"),
        "{errors:?}"
    );
}

/// `--keep-cluster`: the kept nodes' hosts.toml still name the run's `local` mirror, so the end
/// of the run leaves it running, says so, and takes it off the reaper's list (a later `gc` or
/// the reaper would otherwise cut the kept cluster off its mirror).
fn a_kept_cluster_keeps_the_runs_local_mirror() {
    registry_image();
    let net = Net::new();
    let dir = tmp();
    let up = upstream(&net, dir.path());
    let run = run_id();
    let name = local::container_name(&up.upstream, Some(&run));
    let ups = std::slice::from_ref(&up.upstream);
    let pool = Pool::new(false, &run, &net.name, dir.path().join("s"));
    assert_eq!(block(pool.ensure(ups, &quiet)).unwrap()[&up.upstream], name);
    let done = block(pool.finish(true)).expect("finish");
    assert_eq!(done.kept_with_clusters, vec![name.clone()]);
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert!(exists(&name), "the kept cluster's mirror still runs");
    block(local::remove(&name)).expect("removed by hand");
    assert!(!exists(&name));
}

fn main() -> std::process::ExitCode {
    // This binary is its own reaper in the reaper test (as meshproof's main is).
    if let Some(code) = meshproof::reaper::run_if_reaper() {
        return std::process::ExitCode::from(code as u8);
    }
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    std::env::set_var(IMAGE_ENV, TEST_IMAGE);
    use support_harness::{Case, Need};
    let docker = &[Need::Docker, Need::Registry];
    support_harness::run(vec![
        Case::sync(
            "a_local_mirror_serves_the_nodes_and_its_log_is_the_evidence",
            &[Need::Docker, Need::Registry, Need::Containerd],
            a_local_mirror_serves_the_nodes_and_its_log_is_the_evidence,
        ),
        Case::sync(
            "keep_reuses_a_running_mirror_and_refuses_another_configuration",
            docker,
            keep_reuses_a_running_mirror_and_refuses_another_configuration,
        ),
        Case::sync(
            "a_kept_cluster_keeps_the_runs_local_mirror",
            docker,
            a_kept_cluster_keeps_the_runs_local_mirror,
        ),
        Case::sync(
            "the_reaper_removes_the_mirror_of_a_killed_run_and_its_record",
            docker,
            the_reaper_removes_the_mirror_of_a_killed_run_and_its_record,
        ),
        Case::sync(
            "gc_removes_the_mirror_a_dead_run_recorded",
            docker,
            gc_removes_the_mirror_a_dead_run_recorded,
        ),
    ])
}
