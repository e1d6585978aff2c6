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
            for g in &pending {
                let _ = g.run_once();
            }
            cleanup_log("cleanup finished");
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
        for m in all {
            msg.push_str(&format!("\n  {m}"));
        }
        log(&msg);
        // Secret files go in any case: deleting them is instant.
        crate::private_fs::remove_on_signal_exit();
        std::process::exit(code);
    }
}
