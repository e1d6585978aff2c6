//! Run records: what a run created that outlives a process — kind clusters, `--mirror local`
//! registry containers, secret files, its temp dir — written to a state directory while the run holds them, so that `meshproof gc`
//! can find them after the run *and* its reaper are gone (a CI runner that kills every process
//! of a cancelled job, a machine that rebooted).
//!
//! A record mirrors the reaper's registry ([`crate::reaper`]): every entry registered with the
//! reaper is also written here, and removed when it is unregistered, so a run that ends
//! normally leaves no record. A record names its process (pid and start time, so a reused pid
//! is not mistaken for the run); `gc` treats a record whose process is gone as abandoned.
//!
//! Only the binaries that serve as their own reaper keep records (`reaper::enable`): library
//! tests creating guards never write into a user's state directory.

use super::Entry;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Overrides where run records are kept.
pub const STATE_DIR_ENV: &str = "MESHPROOF_STATE_DIR";

/// `$MESHPROOF_STATE_DIR`, else `$XDG_STATE_HOME/meshproof`, else `~/.local/state/meshproof`.
pub fn state_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty(STATE_DIR_ENV)
        .or_else(|| nonempty("XDG_STATE_HOME").map(|p| p.join("meshproof")))
        .or_else(|| nonempty("HOME").map(|p| p.join(".local/state/meshproof")))
}

/// Set in the reaper's environment: the record of the run it watches, which it rewrites to
/// hold only what it could not remove.
pub const REAPER_RECORD_ENV: &str = "MESHPROOF_REAPER_RECORD";

/// Where this process's record is (or will be), if there is a state directory.
pub fn record_path_for_this_process() -> Option<PathBuf> {
    Some(record_path(&state_dir()?, std::process::id()))
}

fn record_path(state: &Path, pid: u32) -> PathBuf {
    let started = process_started(pid);
    records_dir(state).join(format!("{pid}-{}.json", started.unwrap_or(0)))
}

/// Rewrites the record at `path` to hold only `left` (deleting it when nothing is left): what
/// the reaper could not remove. A record that does not exist stays absent.
pub fn rewrite_entries(path: &Path, left: &[Entry]) -> std::io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut record: Record = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
    record.entries = left.iter().filter(|e| recorded(e)).cloned().collect();
    Ledger {
        path: path.to_path_buf(),
        record,
    }
    .save()
}

/// Where the records are, inside the state directory.
pub fn records_dir(state: &Path) -> PathBuf {
    state.join("runs")
}

/// One process's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22);
    /// `None` where there is no procfs.
    pub pid_started: Option<u64>,
    /// When the record was first written (RFC 3339).
    pub started_at: String,
    /// The command line that made it, for a person reading `gc`'s output.
    pub command: String,
    /// What the run still held, in registration order (kind clusters, secret files, dirs).
    pub entries: Vec<Entry>,
}

/// Whether an entry belongs in a record (process groups die with the machine, and a pid
/// means nothing to a later `gc`).
fn recorded(e: &Entry) -> bool {
    !matches!(e, Entry::Group { .. })
}

/// The start time of process `pid` (Linux procfs), in clock ticks since boot.
pub fn process_started(pid: u32) -> Option<u64> {
    start_time_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 22 of a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and
/// may itself contain spaces and ')': the fields after it start at the *last* ')'.
fn start_time_of(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process a record names is still the one that wrote it.
pub fn is_alive(pid: u32, started: Option<u64>) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return false,
    }
    match (started, process_started(pid)) {
        (Some(want), Some(now)) => want == now,
        // No procfs to compare with: the pid exists, so assume it is the run.
        _ => true,
    }
}

/// A record on disk, kept current as entries come and go.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    record: Record,
}

impl Ledger {
    /// This process's ledger in `state` (nothing is written until the first entry).
    pub fn for_this_process(state: &Path) -> Ledger {
        let pid = std::process::id();
        let started = process_started(pid);
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        Ledger {
            path: record_path(state, pid),
            record: Record {
                pid,
                pid_started: started,
                started_at: now,
                command: std::env::args().collect::<Vec<_>>().join(" "),
                entries: Vec::new(),
            },
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn add(&mut self, e: &Entry) -> std::io::Result<()> {
        if !recorded(e) || self.record.entries.contains(e) {
            return Ok(());
        }
        self.record.entries.push(e.clone());
        self.save()
    }

    pub fn remove(&mut self, e: &Entry) -> std::io::Result<()> {
        let before = self.record.entries.len();
        self.record.entries.retain(|x| x != e);
        if self.record.entries.len() == before {
            return Ok(());
        }
        self.save()
    }

    /// Writes the record (atomically: a reader sees the old or the new one, never half), or
    /// deletes it once nothing is held.
    fn save(&self) -> std::io::Result<()> {
        if self.record.entries.is_empty() {
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        crate::private_fs::private_dir(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        let body = serde_json::to_vec_pretty(&self.record).map_err(std::io::Error::other)?;
        tmp.write_all(&body)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// This process's ledger, once a binary that keeps records registered something.
static LEDGER: Mutex<Option<Ledger>> = Mutex::new(None);

/// Records `e` (called by [`crate::reaper::add`]). Failing to write a record only warns: the
/// record is a net under the run, never a reason to stop it.
pub fn note_added(e: &Entry) {
    if !crate::reaper::enabled() || !recorded(e) {
        return;
    }
    let mut g = LEDGER.lock().unwrap_or_else(|p| p.into_inner());
    if g.is_none() {
        let Some(state) = state_dir() else { return };
        *g = Some(Ledger::for_this_process(&state));
    }
    if let Some(l) = g.as_mut() {
        if let Err(err) = l.add(e) {
            eprintln!(
                "meshproof: warning: cannot write the run record {} (`meshproof gc` will not know this run): {err}",
                l.path().display()
            );
        }
    }
}

/// Forgets `e` (called by [`crate::reaper::remove`]).
pub fn note_removed(e: &Entry) {
    let mut g = LEDGER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(l) = g.as_mut() {
        let _ = l.remove(e);
    }
}

/// A record read back from disk, or why it could not be.
#[derive(Debug)]
pub struct Found {
    pub path: PathBuf,
    pub record: Result<Record, String>,
}

/// Every record in `state`, sorted by path; a directory that does not exist holds none.
pub fn read_all(state: &Path) -> std::io::Result<Vec<Found>> {
    let dir = records_dir(state);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let record = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()));
        out.push(Found { path, record });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_lives_while_something_is_held_and_goes_when_nothing_is() {
        let d = tempfile::tempdir().unwrap();
        let mut l = Ledger::for_this_process(d.path());
        let cluster = Entry::KindCluster {
            name: "meshproof-x".into(),
            kubeconfig: "/tmp/k".into(),
        };
        l.add(&Entry::Group { pgid: 42 }).unwrap();
        assert!(!l.path().exists(), "process groups are not recorded");
        l.add(&cluster).unwrap();
        let found = read_all(d.path()).unwrap();
        assert_eq!(found.len(), 1);
        let r = found[0].record.as_ref().unwrap();
        assert_eq!(r.pid, std::process::id());
        assert_eq!(r.entries, vec![cluster.clone()]);
        assert!(is_alive(r.pid, r.pid_started));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(l.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let secret = Entry::SecretFile {
            path: "/tmp/s".into(),
        };
        l.add(&secret).unwrap();
        rewrite_entries(l.path(), std::slice::from_ref(&secret)).unwrap();
        let r = read_all(d.path()).unwrap().remove(0).record.unwrap();
        assert_eq!(
            r.entries,
            vec![secret],
            "the reaper leaves what it could not remove"
        );
        rewrite_entries(l.path(), &[]).unwrap();
        assert!(!l.path().exists());
        rewrite_entries(l.path(), &[]).unwrap();
        assert!(read_all(d.path()).unwrap().is_empty());
    }

    #[test]
    fn a_reused_pid_is_not_the_run() {
        let me = std::process::id();
        let started = process_started(me).expect("procfs");
        assert!(is_alive(me, Some(started)));
        assert!(!is_alive(me, Some(started + 1)), "another start time");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_alive(pid, None), "an exited process");
    }

    #[test]
    fn a_command_name_with_parentheses_does_not_confuse_the_parser() {
        let line = "123 (a) (b) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19";
        assert_eq!(start_time_of(line), Some(777));
        assert_eq!(start_time_of("123 (a) S 1"), None);
    }
}
