//! Taking the executable out of a release tarball, in memory. Every entry is checked before
//! anything is used: an absolute path, a `..`, a link that points out of the archive's
//! directory, or a device/fifo makes the whole archive refused — such an archive is not what the
//! project publishes. Only the one member is ever written (by `install`), under a fixed name.

use super::ToolchainError;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// `p` without `.` components, or why it is unsafe.
fn clean(p: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("{} goes up with `..`", p.display())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{} is an absolute path", p.display()))
            }
        }
    }
    Ok(out)
}

/// Whether the link `target`, found at entry `at`, stays inside the archive's directory.
fn link_stays_inside(at: &Path, target: &Path) -> Result<(), String> {
    if target.is_absolute() {
        return Err(format!(
            "{} links to the absolute path {}",
            at.display(),
            target.display()
        ));
    }
    let mut depth: i64 = at.components().count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(format!(
                "{} links to {}, outside the archive's directory",
                at.display(),
                target.display()
            ));
        }
    }
    Ok(())
}

/// The bytes of `member` in the gzip'd tarball `gz` (downloaded from `url`, for messages).
pub fn extract_member(gz: &[u8], member: &str, url: &str) -> Result<Vec<u8>, ToolchainError> {
    let bad = |message: String| ToolchainError::BadArchive {
        url: url.to_string(),
        message,
    };
    let want = clean(Path::new(member)).map_err(|e| bad(format!("member {e}")))?;
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    let entries = ar
        .entries()
        .map_err(|e| bad(format!("not a tar.gz: {e}")))?;
    let mut found: Option<Vec<u8>> = None;
    let mut seen = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a tar.gz: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| bad(format!("entry name: {e}")))?
            .into_owned();
        let path = clean(&raw).map_err(|e| bad(format!("refused: entry {e}")))?;
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Directory => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| bad(format!("link name: {e}")))?
                    .ok_or_else(|| bad(format!("{} is a link without a target", raw.display())))?
                    .into_owned();
                // A hard link's target is archive-relative; a symlink's is relative to its dir.
                let at = if kind == tar::EntryType::Link {
                    Path::new("x")
                } else {
                    raw.as_path()
                };
                link_stays_inside(at, &target).map_err(|e| bad(format!("refused: {e}")))?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(bad(format!(
                    "refused: entry {} is a {other:?}",
                    raw.display()
                )))
            }
        }
        if path == want {
            if kind != tar::EntryType::Regular && kind != tar::EntryType::Continuous {
                return Err(bad(format!("{member} is a {kind:?}, not a regular file")));
            }
            let mut buf = Vec::with_capacity(entry.size().min(256 << 20) as usize);
            entry
                .read_to_end(&mut buf)
                .map_err(|e| bad(format!("reading {member}: {e}")))?;
            found = Some(buf);
        } else if seen.len() < 8 {
            seen.push(path.display().to_string());
        }
    }
    found.ok_or_else(|| {
        bad(format!(
            "no {member} in it (entries: {})",
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            }
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(clean(Path::new("./a/b")).unwrap(), PathBuf::from("a/b"));
        assert!(clean(Path::new("../escape")).is_err());
        assert!(clean(Path::new("a/../../b")).is_err());
        assert!(clean(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn links_must_stay_inside() {
        assert!(link_stays_inside(Path::new("dir/link"), Path::new("../file")).is_ok());
        assert!(link_stays_inside(Path::new("dir/link"), Path::new("../../file")).is_err());
        assert!(link_stays_inside(Path::new("link"), Path::new("/usr/bin/x")).is_err());
        assert!(link_stays_inside(Path::new("link"), Path::new("a/../../x")).is_err());
    }

    #[test]
    fn garbage_is_a_bad_archive() {
        let e = extract_member(b"not gzip at all", "helm", "u").unwrap_err();
        assert!(matches!(e, ToolchainError::BadArchive { .. }), "{e}");
    }
}
