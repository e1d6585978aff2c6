//! The one place meshproof spawns processes.
//!
//! Every external CLI (kind, helm, istioctl, linkerd, flux, kubeseal, docker, git) goes through
//! [`Cmd`]: the program is found on `PATH` first (a missing tool is an error that says how to get
//! it), the command line is logged with secrets redacted, the process runs in its own process
//! group under a timeout, and on timeout — or when the future is dropped, e.g. on Ctrl-C — the
//! whole group is killed so no `helm` or `kind` child outlives the harness.

mod redact;
pub mod tools;

pub use redact::Redactor;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// One argument; secret ones print as `***`.
#[derive(Clone)]
enum Arg {
    Plain(OsString),
    Secret(OsString),
}

/// A command to run, built up like `std::process::Command`.
#[derive(Clone)]
pub struct Cmd {
    program: String,
    args: Vec<Arg>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    redactor: Redactor,
    /// Allowed to start after [`begin_shutdown`] (the cleanup commands themselves).
    during_shutdown: bool,
}

/// Process groups of children that are running right now, so that a signal handler can kill
/// them before `std::process::exit` (which runs no destructors, so no [`GroupGuard`] would).
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
/// Set once the harness is shutting down on a signal: no new ordinary command may start.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Starts shutting down: from now on only commands marked [`Cmd::during_shutdown`] start, and
/// every running child's process group is killed (a half-done `helm install` is not worth
/// waiting for when the cluster is about to be deleted).
pub fn begin_shutdown() {
    let live = LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner());
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
    for pid in live.iter() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Whether [`begin_shutdown`] was called.
pub fn shutting_down() -> bool {
    SHUTTING_DOWN.load(Ordering::SeqCst)
}

/// Kills the process group of every child started by [`Cmd`] that is still running.
pub fn kill_running_groups() {
    let groups: Vec<i32> = match LIVE_GROUPS.lock() {
        Ok(g) => g.iter().copied().collect(),
        Err(p) => p.into_inner().iter().copied().collect(),
    };
    for pid in groups {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// What a finished process produced.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("`{program}` not found on PATH; {hint}")]
    NotFound { program: String, hint: String },
    #[error("could not start `{cmdline}`: {source}")]
    Spawn {
        cmdline: String,
        source: std::io::Error,
    },
    #[error("`{cmdline}` timed out after {}; stderr: {stderr}", humantime::format_duration(*.timeout))]
    Timeout {
        cmdline: String,
        timeout: Duration,
        stdout: String,
        stderr: String,
    },
    #[error("`{cmdline}` exited with {status}; stderr: {stderr}")]
    Failed {
        cmdline: String,
        status: i32,
        stdout: String,
        stderr: String,
    },
    #[error("I/O with `{cmdline}` failed: {source}")]
    Io {
        cmdline: String,
        source: std::io::Error,
    },
    #[error("`{cmdline}` not started: meshproof is shutting down on a signal")]
    ShuttingDown { cmdline: String },
}

/// Keeps the last `max` bytes of captured output, redacted, for error messages.
fn tail(bytes: &[u8], redactor: &Redactor, max: usize) -> String {
    let text = redactor.apply(&String::from_utf8_lossy(bytes));
    let text = text.trim();
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

impl Cmd {
    /// A command with a default timeout of 60 s.
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout: Duration::from_secs(60),
            redactor: Redactor::default(),
            during_shutdown: false,
        }
    }

    /// Marks a cleanup command (`kind delete cluster`, `kind export logs`): it may still start
    /// after [`begin_shutdown`].
    pub fn during_shutdown(mut self) -> Cmd {
        self.during_shutdown = true;
        self
    }

    /// The configured timeout.
    pub fn timeout_value(&self) -> Duration {
        self.timeout
    }

    /// Extra environment variables the process gets (not shown by [`Cmd::display`]).
    pub fn envs(&self) -> &[(OsString, OsString)] {
        &self.env
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Cmd {
        self.args.push(Arg::Plain(a.into()));
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args
            .extend(args.into_iter().map(|a| Arg::Plain(a.into())));
        self
    }

    /// An argument that must never be printed (a password given as a flag value).
    pub fn secret_arg(mut self, a: impl Into<OsString>) -> Cmd {
        let a = a.into();
        self.redactor.add(&a.to_string_lossy());
        self.args.push(Arg::Secret(a));
        self
    }

    pub fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Cmd {
        self.cwd = Some(dir.into());
        self
    }

    /// Bytes written to the process's stdin (the preferred way to hand it a secret).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }

    /// Values to blank out of the logged command line and of captured output in errors.
    pub fn redact(mut self, r: &Redactor) -> Cmd {
        self.redactor.extend(r);
        self
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// The argument list as the process will see it (secrets included): for tests that check
    /// what a CLI is asked to do.
    pub fn argv(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| match a {
                Arg::Plain(s) | Arg::Secret(s) => s.to_string_lossy().into_owned(),
            })
            .collect()
    }

    /// The command line for logs and plans: shell-quoted, secrets replaced by `***`.
    pub fn display(&self) -> String {
        let mut parts = vec![shell_quote(&self.program)];
        for a in &self.args {
            match a {
                Arg::Plain(s) => {
                    parts.push(shell_quote(&self.redactor.apply(&s.to_string_lossy())))
                }
                Arg::Secret(_) => parts.push("***".into()),
            }
        }
        parts.join(" ")
    }

    /// Runs to completion; a non-zero exit is an error carrying the output tails.
    pub async fn run(&self) -> Result<Output, ProcessError> {
        let out = self.run_unchecked().await?;
        if out.status != 0 {
            return Err(ProcessError::Failed {
                cmdline: self.display(),
                status: out.status,
                stdout: tail(&out.stdout, &self.redactor, 2000),
                stderr: tail(&out.stderr, &self.redactor, 4000),
            });
        }
        Ok(out)
    }

    /// Runs to completion and returns the output whatever the exit status (timeouts and spawn
    /// failures are still errors).
    pub async fn run_unchecked(&self) -> Result<Output, ProcessError> {
        let path = tools::find(&self.program)?;
        let cmdline = self.display();
        let mut cmd = tokio::process::Command::new(&path);
        for a in &self.args {
            match a {
                Arg::Plain(s) | Arg::Secret(s) => cmd.arg(s),
            };
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
        // The child registers its own process group with the reaper between fork and exec, so
        // no child runs unregistered even if this process dies the next instant.
        let reaper_fd = crate::reaper::pipe_fd();
        // SAFETY: the closure only calls async-signal-safe functions (getpid, write).
        unsafe {
            cmd.pre_exec(move || {
                crate::reaper::register_group_in_child(reaper_fd);
                Ok(())
            });
        }
        let started = std::time::Instant::now();
        // The shutdown check, the spawn and the listing happen under one lock, which
        // `begin_shutdown` takes too: a child is either refused or listed, and so killed.
        let (mut child, guard) = {
            let mut live = LIVE_GROUPS.lock().unwrap_or_else(|p| p.into_inner());
            if shutting_down() && !self.during_shutdown {
                return Err(ProcessError::ShuttingDown { cmdline });
            }
            let child = cmd.spawn().map_err(|source| ProcessError::Spawn {
                cmdline: cmdline.clone(),
                source,
            })?;
            // Cleanup commands (a `kind delete` under way) are not listed for the signal
            // handler's kill: a Ctrl-C must not abort the very teardown it is waiting for.
            let listed = !self.during_shutdown;
            if let (true, Some(pid)) = (listed, child.id()) {
                live.insert(pid as i32);
            }
            let guard = GroupGuard::new(child.id());
            (child, guard)
        };
        if let (Some(bytes), Some(mut sin)) = (self.stdin.clone(), child.stdin.take()) {
            // Write in the background so a process that does not read stdin cannot block us.
            tokio::spawn(async move {
                let _ = sin.write_all(&bytes).await;
                let _ = sin.shutdown().await;
            });
        }
        let waited = tokio::time::timeout(self.timeout, child.wait_with_output()).await;
        match waited {
            Err(_) => {
                // `guard` kills the process group when dropped below.
                drop(guard);
                Err(ProcessError::Timeout {
                    cmdline,
                    timeout: self.timeout,
                    stdout: String::new(),
                    stderr: String::new(),
                })
            }
            Ok(Err(source)) => Err(ProcessError::Io { cmdline, source }),
            Ok(Ok(out)) => {
                guard.disarm();
                Ok(Output {
                    status: out.status.code().unwrap_or(-1),
                    stdout: out.stdout,
                    stderr: out.stderr,
                    elapsed: started.elapsed(),
                })
            }
        }
    }
}

/// Kills a process group when dropped, unless disarmed after a normal exit.
/// While armed, the group is listed in [`LIVE_GROUPS`].
struct GroupGuard(Option<i32>);

impl GroupGuard {
    /// The guard of a child the caller has just listed in [`LIVE_GROUPS`] (or chose not to).
    fn new(pid: Option<u32>) -> GroupGuard {
        GroupGuard(pid.and_then(|p| i32::try_from(p).ok()))
    }

    /// The group is gone or about to be: off the signal handler's list and the reaper's.
    fn unlist(&self) {
        if let Some(p) = self.0 {
            if let Ok(mut g) = LIVE_GROUPS.lock() {
                g.remove(&p);
            }
            crate::reaper::remove(crate::reaper::Entry::Group { pgid: p });
        }
    }

    fn disarm(mut self) {
        self.unlist();
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // Killed first, unlisted after: never a moment unlisted and alive.
            let pg = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::killpg(pg, nix::sys::signal::Signal::SIGKILL);
            self.unlist();
        }
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%^".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_and_captures() {
        let out = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2"])
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout_str(), "out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    }

    #[tokio::test]
    async fn failure_carries_stderr_and_redacts_secrets() {
        let e = Cmd::new("sh")
            .args(["-c", "echo \"bad $1\" >&2; exit 3", "sh"])
            .secret_arg("hunter2")
            .run()
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("exited with 3"), "{msg}");
        assert!(msg.contains("bad ***"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        // The grandchild would create the marker after 2 s if it were not killed with the group.
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.display());
        let e = Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(300))
            .run()
            .await
            .unwrap_err();
        assert!(matches!(e, ProcessError::Timeout { .. }), "{e}");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "a grandchild outlived the timeout");
    }

    #[tokio::test]
    async fn missing_program_says_how_to_get_it() {
        let e = Cmd::new("kind-does-not-exist-xyz").run().await.unwrap_err();
        assert!(matches!(e, ProcessError::NotFound { .. }));
    }

    #[test]
    fn display_quotes_and_hides_secrets() {
        let c = Cmd::new("helm")
            .args(["upgrade", "--set", "a=b c"])
            .secret_arg("s3cret");
        assert_eq!(c.display(), "helm upgrade --set 'a=b c' ***");
        assert_eq!(c.argv(), vec!["upgrade", "--set", "a=b c", "s3cret"]);
    }

    #[tokio::test]
    async fn stdin_is_delivered() {
        let out = Cmd::new("cat")
            .stdin(b"from stdin".to_vec())
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout_str(), "from stdin");
    }
}
