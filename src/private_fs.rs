//! Files and directories that hold secrets (kubeconfigs, sealing keys, plaintext Secrets before
//! sealing, CA bundles): readable by the owner only. Files get mode 0600 when they are opened,
//! never by a `chmod` after the first byte, which would leave a window where they are readable.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates a directory (and parents) readable by the owner only.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Writes a file created with mode 0600 (and forces 0600 if it existed), in a private directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        private_dir(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `path`, which must not exist yet, with mode 0600 and writes `bytes` to it: for files
/// that must never silently replace an earlier one (key backups, plaintext before sealing).
pub fn create_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A private temp dir (mode 0700, set while it is still empty) for one run's secret files;
/// removed on drop.
pub fn temp_private_dir(prefix: &str) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// Secret files to delete if the process exits on a signal, where destructors do not run.
static ON_SIGNAL_EXIT: std::sync::Mutex<Vec<std::path::PathBuf>> =
    std::sync::Mutex::new(Vec::new());

/// Registers `path` for deletion when the process exits on SIGINT/SIGTERM
/// ([`remove_on_signal_exit`], called by the signal handler) and, for exits no handler sees
/// (SIGKILL), with the [`crate::reaper`]; the owner's `Drop` deletes it on every other path and
/// calls [`forget_on_signal_exit`].
pub fn delete_on_signal_exit(path: &Path) {
    crate::reaper::add(crate::reaper::Entry::SecretFile {
        path: path.to_path_buf(),
    });
    ON_SIGNAL_EXIT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(path.to_path_buf());
}

/// The file is gone or no longer secret: stop tracking it.
pub fn forget_on_signal_exit(path: &Path) {
    crate::reaper::remove(crate::reaper::Entry::SecretFile {
        path: path.to_path_buf(),
    });
    ON_SIGNAL_EXIT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|p| p != path);
}

/// Deletes every registered file (best effort); for the signal handler, just before it exits.
pub fn remove_on_signal_exit() {
    let paths = std::mem::take(&mut *ON_SIGNAL_EXIT.lock().unwrap_or_else(|p| p.into_inner()));
    for p in paths {
        let _ = std::fs::remove_file(&p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_file_is_0600_and_never_overwrites() {
        let d = temp_private_dir("mp-test").unwrap();
        let p = d.path().join("s");
        create_private(&p, b"x").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert!(
            create_private(&p, b"y").is_err(),
            "an existing file must not be reused"
        );
        assert_eq!(mode(d.path()), 0o700);
    }

    #[test]
    fn written_file_and_its_parents_are_private_even_if_it_existed() {
        let d = temp_private_dir("mp-test").unwrap();
        let p = d.path().join("a/b/s");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"old").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&p, b"new").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(p.parent().unwrap()), 0o700);
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn registered_secret_files_are_deleted_at_a_signal_exit_and_forgotten_ones_stay() {
        let d = temp_private_dir("mp-test").unwrap();
        let (a, b) = (d.path().join("keys-a.yaml"), d.path().join("keys-b.yaml"));
        create_private(&a, b"key").unwrap();
        create_private(&b, b"key").unwrap();
        delete_on_signal_exit(&a);
        delete_on_signal_exit(&b);
        forget_on_signal_exit(&b);
        remove_on_signal_exit();
        assert!(!a.exists());
        assert!(b.exists());
    }
}
