//! The reaper: a small detached process that deletes what a run leaves behind when the run
//! cannot — killed with SIGKILL, killed with its whole process tree by a CI runner, a panic
//! that aborts, a signal that arrives before the handlers are installed.
//!
//! Why a process: nothing inside a process survives `SIGKILL`. The harness starts the reaper
//! once ([`start`]), keeping the write end of a pipe whose read end is the reaper's stdin. It
//! registers everything it creates *before* creating it — kind clusters, the process group of
//! every child it spawns (written by the child itself between `fork` and `exec`, so no child
//! runs unregistered), secret files, the run's temp dir — and unregisters what it removed
//! itself. When the pipe closes, however the harness ended, the reaper kills the registered
//! process groups, deletes the secret files, deletes the kind clusters (clearing the stale
//! kubeconfig lock a killed `kind` leaves), removes the directories, and writes what it did to
//! its log. A normal run cleans up in-process as before: the reaper is the net, with nothing
//! left to do.
//!
//! The reaper detaches (`fork`, `setsid`, the intermediate exits), so it is neither in the
//! harness's process group nor its descendant once reparented: a runner killing the tree does
//! not reach it. The harness's write end is close-on-exec, so no child holds the pipe open.
//!
//! The protocol is one JSON object per line ([`Message`]), each written with a single
//! `write(2)` of less than `PIPE_BUF` bytes, so lines from the harness and from its children
//! never interleave.

pub mod records;

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Set (to the log file's path) in the environment of the process that is to be the reaper.
pub const MODE_ENV: &str = "MESHPROOF_REAPER_LOG";

/// Something the reaper removes unless it is unregistered first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Entry {
    /// A kind cluster (registered before `kind create`).
    KindCluster { name: String, kubeconfig: PathBuf },
    /// The process group of a running child.
    Group { pgid: i32 },
    /// A file holding a secret.
    SecretFile { path: PathBuf },
    /// A directory the run made (its temp dir).
    Dir { path: PathBuf },
    /// A Docker container the run made (a `--mirror local` registry): `docker rm -f -v`.
    Container { name: String },
}

/// One line of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Message {
    Add { entry: Entry },
    Remove { entry: Entry },
}

// ------------------------------------------------------------------------------ harness side

/// The write end of the pipe to the reaper; `-1` when no reaper runs (library tests).
static PIPE: AtomicI32 = AtomicI32::new(-1);
/// Set by binaries whose `main` calls [`run_if_reaper`]: only they can be re-executed as the
/// reaper (a test binary re-executed would run its tests).
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says this executable serves as its own reaper ([`run_if_reaper`] is first in its `main`).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}
/// Whether this executable serves as its own reaper (and keeps run records: [`records`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// Serialises writes from the harness's threads (children write with one syscall).
static WRITE: Mutex<()> = Mutex::new(());

/// Starts the reaper as a detached copy of this executable, logging to `log`. Does nothing
/// unless the executable [`enable`]d it, or when a reaper already runs.
pub fn start(log: &Path) -> Result<(), String> {
    static STARTING: Mutex<()> = Mutex::new(());
    let _once = STARTING.lock();
    if !ENABLED.load(Ordering::SeqCst) || PIPE.load(Ordering::SeqCst) >= 0 {
        return Ok(());
    }
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let exe = std::env::current_exe().map_err(|e| format!("the reaper's executable: {e}"))?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.env(MODE_ENV, log);
    if let Some(record) = crate::reaper::records::record_path_for_this_process() {
        cmd.env(crate::reaper::records::REAPER_RECORD_ENV, record);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the reaper ({}): {e}", exe.display()))?;
    let stdin = child.stdin.take().ok_or("the reaper has no stdin")?;
    // The intermediate process exits as soon as the reaper proper has detached.
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the reaper to detach: {e}"))?;
    if !status.success() {
        return Err(format!("the reaper did not start: {status}"));
    }
    use std::os::fd::IntoRawFd;
    let pending = {
        let mut p = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        PIPE.store(stdin.into_raw_fd(), Ordering::SeqCst);
        std::mem::take(&mut *p)
    };
    for entry in pending {
        send(&Message::Add { entry });
    }
    Ok(())
}

/// Whether a reaper is watching this process.
pub fn active() -> bool {
    PIPE.load(Ordering::SeqCst) >= 0
}

fn send(m: &Message) {
    let fd = PIPE.load(Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    let Ok(mut line) = serde_json::to_vec(m) else {
        return;
    };
    line.push(b'\n');
    let _held = WRITE.lock();
    // SAFETY: `fd` is the pipe's write end, owned by this module for the process's life.
    let mut f = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd)
    });
    let _ = f.write_all(&line);
}

/// Entries registered before the reaper started (the e2e harness's raw artifacts dir is made
/// before any environment needs a reaper): [`start`] hands them over, so they are reaped too.
static PENDING: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Registers `entry`: the reaper removes it if the run ends without unregistering it.
pub fn add(entry: Entry) {
    crate::reaper::records::note_added(&entry);
    {
        // Checked under the lock `start` holds while it connects: an entry is either pending
        // when `start` takes the list, or sent on the pipe.
        let mut p = PENDING.lock().unwrap_or_else(|p| p.into_inner());
        if !active() {
            if ENABLED.load(Ordering::SeqCst) && !p.contains(&entry) {
                p.push(entry);
            }
            return;
        }
    }
    send(&Message::Add { entry });
}

/// Unregisters `entry` (the run removed it itself, or must keep it).
pub fn remove(entry: Entry) {
    crate::reaper::records::note_removed(&entry);
    PENDING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|e| *e != entry);
    send(&Message::Remove { entry });
}

/// Deletes a registered temp dir, then unregisters it (in that order, so no moment exists
/// where it is on disk and nobody would remove it).
pub fn remove_dir(dir: tempfile::TempDir) -> std::io::Result<()> {
    let path = dir.path().to_path_buf();
    let r = dir.close();
    if r.is_ok() {
        remove(Entry::Dir { path });
    }
    r
}

/// The raw pipe fd, for [`register_group_in_child`].
pub fn pipe_fd() -> i32 {
    PIPE.load(Ordering::SeqCst)
}

/// Called in a freshly forked child (before `exec`, after it became its own process group
/// leader): registers the child's process group. Async-signal-safe: `getpid` and one `write`,
/// no allocation.
pub fn register_group_in_child(fd: i32) {
    if fd < 0 {
        return;
    }
    let mut buf = [0u8; 96];
    let head = br#"{"op":"add","entry":{"kind":"group","pgid":"#;
    let mut n = 0;
    for &b in head {
        buf[n] = b;
        n += 1;
    }
    // SAFETY: getpid(2) is async-signal-safe.
    let mut pid = unsafe { nix::libc::getpid() } as u32;
    let mut digits = [0u8; 10];
    let mut d = 0;
    loop {
        digits[d] = b'0' + (pid % 10) as u8;
        d += 1;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    for &b in b"}}\n" {
        buf[n] = b;
        n += 1;
    }
    // SAFETY: write(2) is async-signal-safe; `buf[..n]` is initialised.
    unsafe {
        nix::libc::write(fd, buf.as_ptr().cast(), n);
    }
}

// ------------------------------------------------------------------------------- reaper side

/// If this process was started as the reaper, detaches, serves, and returns the exit code;
/// otherwise `None`. Call it first thing in `main`, before any thread starts.
pub fn run_if_reaper() -> Option<i32> {
    let log = std::env::var_os(MODE_ENV)?;
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: called first in `main`, while the process is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => return Some(0),
        Ok(ForkResult::Child) => {}
        Err(_) => return Some(1),
    }
    let _ = setsid();
    let _ = std::env::set_current_dir("/");
    use nix::sys::signal::{signal, SigHandler, Signal};
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: setting SIG_IGN installs no handler code.
        let _ = unsafe { signal(s, SigHandler::SigIgn) };
    }
    let stdin = std::io::stdin();
    let registry = read_until_closed(stdin.lock());
    let reaped = reap(&registry, &Reap::default());
    // The run record now holds only what could not be removed (or goes), so `meshproof gc`
    // is left with exactly that.
    let mut lines = reaped.log();
    if let Some(record) = std::env::var_os(crate::reaper::records::REAPER_RECORD_ENV) {
        if let Err(e) = crate::reaper::records::rewrite_entries(Path::new(&record), &reaped.left())
        {
            lines.push(format!(
                "could not update the run record {}: {e}",
                Path::new(&record).display()
            ));
        }
    }
    if !lines.is_empty() {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PathBuf::from(log))
        {
            for l in &lines {
                let _ = writeln!(f, "{l}");
            }
        }
    }
    Some(0)
}

/// Reads messages until EOF; returns what is still registered, in registration order.
pub fn read_until_closed(input: impl BufRead) -> Vec<Entry> {
    let mut live: Vec<Entry> = Vec::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Message>(&line) {
            Ok(Message::Add { entry }) => {
                if !live.contains(&entry) {
                    live.push(entry);
                }
            }
            Ok(Message::Remove { entry }) => live.retain(|e| e != &entry),
            Err(_) => {}
        }
    }
    live
}

/// How the reaper removes things (timeouts; a test shortens them).
#[derive(Debug, Clone)]
pub struct Reap {
    pub kind_delete_timeout: Duration,
    /// Bounds each `docker rm -f`.
    pub docker_timeout: Duration,
}

impl Default for Reap {
    fn default() -> Reap {
        Reap {
            kind_delete_timeout: Duration::from_secs(180),
            docker_timeout: Duration::from_secs(60),
        }
    }
}

/// What [`reap`] did: each entry acted on, with what was done or why it failed. Process groups
/// already gone and files already gone leave no line.
#[derive(Debug, Default)]
pub struct Reaped {
    pub done: Vec<(Entry, Result<String, String>)>,
}

impl Reaped {
    /// One line per action, for the reaper's log.
    pub fn log(&self) -> Vec<String> {
        self.done
            .iter()
            .map(|(_, r)| match r {
                Ok(l) | Err(l) => l.clone(),
            })
            .collect()
    }

    /// What could not be removed (process groups excepted: they are gone or not ours).
    pub fn left(&self) -> Vec<Entry> {
        self.done
            .iter()
            .filter(|(e, r)| r.is_err() && !matches!(e, Entry::Group { .. }))
            .map(|(e, _)| e.clone())
            .collect()
    }
}

/// Removes every entry: process groups killed first (a `kind create` still running would
/// outlive a delete), then secret files (instant), then kind clusters, then containers, then
/// directories.
/// Used by the reaper and by `meshproof gc`.
pub fn reap(entries: &[Entry], how: &Reap) -> Reaped {
    let mut done = Vec::new();
    for e in entries {
        if let Entry::Group { pgid } = e {
            let r = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pgid),
                nix::sys::signal::Signal::SIGKILL,
            );
            if r.is_ok() {
                done.push((e.clone(), Ok(format!("killed process group {pgid}"))));
            }
        }
    }
    for e in entries {
        if let Entry::SecretFile { path } = e {
            match std::fs::remove_file(path) {
                Ok(()) => done.push((
                    e.clone(),
                    Ok(format!("deleted secret file {}", path.display())),
                )),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => done.push((
                    e.clone(),
                    Err(format!("could not delete {}: {err}", path.display())),
                )),
            }
        }
    }
    for e in entries {
        if let Entry::KindCluster { name, kubeconfig } = e {
            let r = delete_kind_cluster(name, kubeconfig, how.kind_delete_timeout)
                .map(|()| format!("deleted kind cluster {name}"));
            done.push((e.clone(), r));
        }
    }
    for e in entries {
        if let Entry::Container { name } = e {
            done.push((e.clone(), remove_container(name, how.docker_timeout)));
        }
    }
    for e in entries {
        if let Entry::Dir { path } = e {
            match std::fs::remove_dir_all(path) {
                Ok(()) => done.push((e.clone(), Ok(format!("removed {}", path.display())))),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => done.push((
                    e.clone(),
                    Err(format!("could not remove {}: {err}", path.display())),
                )),
            }
        }
    }
    Reaped { done }
}

/// `docker rm -f -v NAME` within `timeout` (blocking: the reaper has no runtime). A container
/// that is already gone counts as removed.
pub fn remove_container(name: &str, timeout: Duration) -> Result<String, String> {
    let docker = crate::process::tools::find("docker")
        .map_err(|e| format!("could not remove container {name}: {e}"))?;
    let child = std::process::Command::new(docker)
        .args(["rm", "-f", "-v", name])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not remove container {name}: {e}"))?;
    match wait_blocking(child, timeout) {
        Some((s, err)) if s.success() || err.to_lowercase().contains("no such container") => {
            Ok(format!("removed container {name}"))
        }
        Some((s, err)) => Err(format!(
            "`docker rm -f {name}` failed ({s}): {}",
            err.trim()
        )),
        None => Err(format!(
            "`docker rm -f {name}` did not finish within {}s",
            timeout.as_secs()
        )),
    }
}

/// Waits for `child` up to `timeout`, polling (blocking: the reaper has no runtime): its exit
/// status and stderr, or `None` when it did not finish, after killing and reaping it.
fn wait_blocking(
    mut child: std::process::Child,
    timeout: Duration,
) -> Option<(std::process::ExitStatus, String)> {
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(s)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Some((s, err));
            }
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// The lock file kind takes on a kubeconfig while it edits it. A `kind` killed mid-create
/// leaves it behind, and the next `kind delete` then fails to update the kubeconfig although
/// it deleted the nodes (ledger KIND-5). Only meshproof's own kind processes use a run's
/// kubeconfig, so once they are gone the lock is stale.
pub fn kubeconfig_lock(kubeconfig: &Path) -> PathBuf {
    let mut p = kubeconfig.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Deletes kind cluster `name` with `kind delete cluster`, blocking up to `timeout`; clears
/// the kubeconfig's stale lock first. Used by the reaper and by `meshproof gc`, when no
/// meshproof process that could hold the lock is left. Where the kubeconfig's directory is
/// gone (a cleaned `/tmp`), kind would create it again to take its lock (ledger KIND-5), so a
/// throwaway kubeconfig is named instead.
pub fn delete_kind_cluster(name: &str, kubeconfig: &Path, timeout: Duration) -> Result<(), String> {
    let _ = std::fs::remove_file(kubeconfig_lock(kubeconfig));
    let kind = crate::process::tools::find("kind")
        .map_err(|e| format!("could not delete kind cluster {name}: {e}"))?;
    let scratch;
    let kubeconfig = match kubeconfig.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
            scratch = tempfile::Builder::new()
                .prefix("meshproof-gc-")
                .tempdir()
                .map_err(|e| format!("could not delete kind cluster {name}: a scratch dir: {e}"))?;
            scratch.path().join("kubeconfig")
        }
        _ => kubeconfig.to_path_buf(),
    };
    let child = std::process::Command::new(kind)
        .args(["delete", "cluster", "--name", name, "--kubeconfig"])
        .arg(&kubeconfig)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let child = child.map_err(|e| format!("could not delete kind cluster {name}: {e}"))?;
    match wait_blocking(child, timeout) {
        Some((s, _)) if s.success() => Ok(()),
        Some((s, err)) => Err(format!(
            "`kind delete cluster --name {name}` failed ({s}): {}",
            err.trim()
        )),
        None => Err(format!(
            "`kind delete cluster --name {name}` did not finish within {}s",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_keeps_what_was_added_and_not_removed_in_order() {
        let a = Entry::SecretFile {
            path: "/tmp/a".into(),
        };
        let c = Entry::KindCluster {
            name: "meshproof-x".into(),
            kubeconfig: "/tmp/k".into(),
        };
        let lines = [
            Message::Add { entry: a.clone() },
            Message::Add { entry: c.clone() },
            Message::Add {
                entry: Entry::Group { pgid: 42 },
            },
            Message::Remove {
                entry: Entry::Group { pgid: 42 },
            },
            Message::Add { entry: a.clone() },
        ]
        .iter()
        .map(|m| serde_json::to_string(m).unwrap())
        .chain(["not json".to_string()])
        .collect::<Vec<_>>()
        .join("\n");
        assert_eq!(read_until_closed(lines.as_bytes()), [a, c]);
    }

    /// The line a child writes between fork and exec parses like the harness's own.
    #[test]
    fn a_childs_own_registration_line_is_a_protocol_message() {
        let (r, w) = nix::unistd::pipe().unwrap();
        use std::os::fd::{AsRawFd, IntoRawFd};
        register_group_in_child(w.as_raw_fd());
        drop(w);
        let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(r.into_raw_fd()) };
        let got = read_until_closed(std::io::BufReader::new(f));
        assert_eq!(
            got,
            [Entry::Group {
                pgid: std::process::id() as i32
            }]
        );
    }

    #[test]
    fn reaping_deletes_files_and_dirs_and_clears_a_stale_kubeconfig_lock() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("key");
        std::fs::write(&secret, "k").unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir_all(run.join("env")).unwrap();
        let reaped = reap(
            &[
                Entry::Dir { path: run.clone() },
                Entry::SecretFile {
                    path: secret.clone(),
                },
            ],
            &Reap::default(),
        );
        let log = reaped.log();
        assert!(!secret.exists() && !run.exists(), "{log:?}");
        assert!(reaped.left().is_empty(), "{:?}", reaped.left());
        assert!(
            log[0].starts_with("deleted secret file"),
            "secrets first: {log:?}"
        );
        assert_eq!(
            kubeconfig_lock(Path::new("/r/env/kubeconfig")),
            PathBuf::from("/r/env/kubeconfig.lock")
        );
    }
}
