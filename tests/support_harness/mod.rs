//! A small test harness (libtest-mimic) for tests that need something of the machine — the
//! kube-rig API server, the right to capture packets. A test whose need is not met is reported
//! **ignored, with the reason**, never as passed (a skipped check reported as passed is a check
//! that cannot fail); under `CI=true` it fails instead, since CI provides every need.
#![allow(dead_code)]

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

/// Something a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A real API server: `MESHPROOF_TEST_KUBECONFIG` (`../shared/kube-rig/start DIR`).
    KubeRig,
    /// `tcpdump` able to capture on `lo` (root or CAP_NET_RAW).
    Tcpdump,
    /// `dumpcap` (Wireshark's capture tool) able to capture on `lo`.
    Dumpcap,
    /// A Docker engine that answers (`.ci/run` starts Debian's `dockerd`) and a static busybox
    /// to make a local image from (Debian's `busybox-static`): no registry is needed.
    Docker,
    /// Debian's `docker-registry` (CNCF distribution 2.8).
    Registry,
    /// Debian's `containerd` and `ctr`, run as root (a containerd of the test's own, on its own
    /// socket and root directory).
    Containerd,
}

impl Need {
    /// `Some(why)` when the need is not met.
    fn missing(self) -> Option<String> {
        match self {
            Need::KubeRig => match std::env::var_os("MESHPROOF_TEST_KUBECONFIG") {
                Some(p) if !p.is_empty() && std::path::Path::new(&p).is_file() => None,
                _ => Some("needs the kube-rig API server: start ../shared/kube-rig (`../shared/kube-rig/start DIR`) and set MESHPROOF_TEST_KUBECONFIG=DIR/kubeconfig".into()),
            },
            Need::Tcpdump => can_capture("tcpdump", &["-i", "lo", "-n", "-w", "/dev/null"]),
            Need::Dumpcap => can_capture("dumpcap", &["-i", "lo", "-q", "-w", "/dev/null"]),
            Need::Docker => docker_ready(),
            Need::Registry => (!std::path::Path::new("/usr/bin/docker-registry").is_file())
                .then(|| "needs /usr/bin/docker-registry (Debian: apt-get install docker-registry)".into()),
            Need::Containerd => {
                if !std::path::Path::new("/usr/bin/containerd").is_file()
                    || !std::path::Path::new("/usr/bin/ctr").is_file()
                {
                    Some("needs /usr/bin/containerd and /usr/bin/ctr (Debian: apt-get install containerd)".into())
                } else if !nix::unistd::geteuid().is_root() {
                    Some("needs root to run a containerd of its own (its snapshots and mounts)".into())
                } else {
                    None
                }
            }
        }
    }
}

fn docker_ready() -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Err(e) => return Some(format!("needs a Docker engine (`docker`: {e}; Debian: apt-get install docker.io, then start dockerd)")),
        Ok(o) if !o.status.success() => {
            return Some(format!(
                "needs a running Docker engine (start dockerd): {}",
                String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").trim()
            ))
        }
        Ok(_) => {}
    }
    if !std::path::Path::new("/bin/busybox").is_file() {
        return Some(
            "needs /bin/busybox to make a local image (Debian: apt-get install busybox-static)"
                .into(),
        );
    }
    None
}

/// Starts a capture on `lo` and watches it for a moment: one that is still running can
/// capture; one that exited says why not.
fn can_capture(tool: &str, args: &[&str]) -> Option<String> {
    let child = std::process::Command::new(tool)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Some(format!(
                "needs {tool} ({e}; install it, e.g. Debian's tcpdump / tshark packages)"
            ))
        }
    };
    std::thread::sleep(Duration::from_millis(400));
    match child.try_wait() {
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
        _ => {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            Some(format!(
                "needs {tool} to capture on lo (root or CAP_NET_RAW): {}",
                err.lines().last().unwrap_or("it exited").trim()
            ))
        }
    }
}

type Body = Box<dyn FnOnce() + Send + 'static>;

/// One test: its name, what it needs, and its body.
pub struct Case {
    name: &'static str,
    needs: Vec<Need>,
    body: Body,
}

impl Case {
    pub fn sync(name: &'static str, needs: &[Need], f: fn()) -> Case {
        Case {
            name,
            needs: needs.to_vec(),
            body: Box::new(f),
        }
    }

    /// An async test, run on a runtime of its own (multi-threaded, like
    /// `#[tokio::test(flavor = "multi_thread")]`).
    pub fn tokio<F: Future<Output = ()> + 'static>(
        name: &'static str,
        needs: &[Need],
        f: fn() -> F,
    ) -> Case {
        Case {
            name,
            needs: needs.to_vec(),
            body: Box::new(move || {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime")
                    .block_on(f())
            }),
        }
    }
}

/// Runs the cases as libtest would (same arguments), each need checked once.
pub fn run(cases: Vec<Case>) -> ExitCode {
    let args = Arguments::from_args();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let mut known: Vec<(Need, Option<String>)> = Vec::new();
    let mut missing = |n: Need| -> Option<String> {
        if let Some((_, m)) = known.iter().find(|(k, _)| *k == n) {
            return m.clone();
        }
        let m = n.missing();
        known.push((n, m.clone()));
        m
    };
    let trials = cases
        .into_iter()
        .map(|c| {
            let why: Vec<String> = if args.list {
                Vec::new()
            } else {
                c.needs.iter().filter_map(|n| missing(*n)).collect()
            };
            let body = c.body;
            Trial::ignorable_test(c.name, move || {
                if why.is_empty() {
                    body();
                    Ok(Completion::Completed)
                } else if ci {
                    Err(Failed::from(format!("CI=true: {}", why.join("; "))))
                } else {
                    Ok(Completion::ignored_with(why.join("; ")))
                }
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
