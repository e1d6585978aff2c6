//! SIGINT/SIGTERM: the first one tears down every environment the process created, then exits
//! 130/143; a second one skips cleanup, says so and prints what to delete by hand. Either way,
//! secret files registered with [`crate::private_fs::delete_on_signal_exit`] (sealing-key
//! backups) are deleted before the process exits, since destructors do not run.
//!
//! The handler itself only writes the signal number to a pipe (the one async-signal-safe thing
//! it needs); a watcher thread does the work. That works whatever thread the signal lands on and
//! needs no runtime.

use super::cluster::guard;
use super::Log;
use std::io::Read;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// How a signal ended the run, for whoever writes results.
#[derive(Debug, Clone)]
pub struct SignalExit {
    /// `SIGINT`, `SIGTERM`.
    pub signal: &'static str,
    /// What the teardown after the signal could not remove (what to do by hand, and why).
    pub left: Vec<String>,
    /// A second signal skipped the cleanup.
    pub cleanup_skipped: bool,
}

impl SignalExit {
    /// One line: the signal and what the teardown left.
    pub fn describe(&self) -> String {
        let mut s = format!("stopped by {}", self.signal);
        if self.cleanup_skipped {
            s.push_str("; a second signal skipped the cleanup");
        }
        if !self.left.is_empty() {
            s.push_str(&format!("; left behind: {}", self.left.join("; ")));
        }
        s
    }
}

type ExitHook = Box<dyn Fn(&SignalExit) + Send + Sync>;
static EXIT_HOOKS: std::sync::Mutex<Vec<ExitHook>> = std::sync::Mutex::new(Vec::new());
static HOOKS_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Held while the hooks run: a second signal waits for them rather than exiting mid-write.
static HOOKS_RUNNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// The first signal received (its number), 0 before any.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signal that is ending the run, if one arrived: a harness that finishes while the
/// teardown runs writes its report as interrupted, not as a run that ended by itself.
pub fn received() -> Option<&'static str> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(name(sig)),
    }
}

/// The exit status of a run a signal is ending (128 + its number): a harness whose main thread
/// gets to the end before the signal thread exits must exit the same way.
pub fn received_exit_code() -> Option<u8> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => u8::try_from(exit_code(sig)).ok(),
    }
}

/// Runs `hook` when a signal ends the process, after the teardown (or when a second signal
/// skips it), before the exit: the e2e harness writes its partial report there. Hooks run
/// once, in registration order; keep them short (a second signal does not wait for them).
pub fn at_signal_exit(hook: impl Fn(&SignalExit) + Send + Sync + 'static) {
    match EXIT_HOOKS.lock() {
        Ok(mut v) => v.push(Box::new(hook)),
        Err(p) => p.into_inner().push(Box::new(hook)),
    }
}

fn run_exit_hooks(exit: &SignalExit) {
    let _running = match HOOKS_RUNNING.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if HOOKS_RAN.swap(true, Ordering::SeqCst) {
        return;
    }
    let hooks = match EXIT_HOOKS.lock() {
        Ok(v) => v,
        Err(p) => p.into_inner(),
    };
    for h in hooks.iter() {
        h(exit);
    }
}

extern "C" fn on_signal(sig: nix::libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte.
        unsafe {
            nix::libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// The exit status after a signal: 128 + its number.
pub fn exit_code(sig: i32) -> i32 {
    128 + sig
}

fn name(sig: i32) -> &'static str {
    match sig {
        2 => "SIGINT",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// Installs the handlers once per process (later calls return the first result).
pub fn install(log: Log) -> Result<(), String> {
    INSTALLED.get_or_init(|| install_now(log)).clone()
}

fn install_now(log: Log) -> Result<(), String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("signal pipe: {e}"))?;
    PIPE_WRITE.store(w.into_raw_fd(), Ordering::Relaxed);
    // SAFETY: the file descriptor was just created by pipe(2) and is owned by nobody else.
    let reader = unsafe { std::fs::File::from_raw_fd(r.into_raw_fd()) };
    std::thread::Builder::new()
        .name("meshproof-signals".into())
        .spawn(move || watch(reader, log))
        .map_err(|e| format!("signal thread: {e}"))?;
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only calls write(2) on a pipe.
        unsafe { sigaction(s, &action) }.map_err(|e| format!("sigaction {s}: {e}"))?;
    }
    Ok(())
}

fn watch(mut reader: std::fs::File, log: Log) {
    let mut b = [0u8; 1];
    if reader.read_exact(&mut b).is_err() {
        return;
    }
    let sig = i32::from(b[0]);
    RECEIVED.store(sig, Ordering::SeqCst);
    let code = exit_code(sig);
    // New commands stop first, then the environments are listed: a `kind create` starting in
    // between would otherwise make a cluster nobody tears down.
    crate::process::begin_shutdown();
    let guards = guard::live();
    log(&format!(
        "received {}: stopping running commands and tearing down {} environment(s); press Ctrl-C again to skip cleanup",
        name(sig),
        guards.len()
    ));
    let cleanup_log = log.clone();
    let pending = guards.clone();
    let _ = std::thread::Builder::new()
        .name("meshproof-cleanup".into())
        .spawn(move || {
            // Secret files first: deleting them is instant, and no teardown needs them.
            crate::private_fs::remove_on_signal_exit();
            let mut left = Vec::new();
            for g in &pending {
                if let Err(e) = g.run_once() {
                    left.push(format!("{} ({e})", g.manual()));
                }
            }
            cleanup_log("cleanup finished");
            run_exit_hooks(&SignalExit {
                signal: name(sig),
                left,
                cleanup_skipped: false,
            });
            std::process::exit(code);
        });
    // A second signal: give up on cleanup, and say exactly what is left.
    if reader.read_exact(&mut b).is_ok() {
        let left: Vec<String> = guards
            .iter()
            .filter(|g| !g.is_finished())
            .map(|g| g.manual())
            .collect();
        crate::process::kill_running_groups();
        let mut msg = format!(
            "received {} again: skipping cleanup.",
            name(i32::from(b[0]))
        );
        if crate::reaper::active() {
            msg.push_str(
                " meshproof's reaper deletes them in the background; check that these are gone:",
            );
        } else if left.is_empty() {
            msg.push_str(" Check that these are gone:");
        } else {
            msg.push_str(" Delete these yourself:");
        }
        let all: Vec<String> = if left.is_empty() {
            guards.iter().map(|g| g.manual()).collect()
        } else {
            left
        };
        for m in &all {
            msg.push_str(&format!("\n  {m}"));
        }
        log(&msg);
        // Secret files go in any case: deleting them is instant.
        crate::private_fs::remove_on_signal_exit();
        run_exit_hooks(&SignalExit {
            signal: name(sig),
            left: all,
            cleanup_skipped: true,
        });
        std::process::exit(code);
    }
}
