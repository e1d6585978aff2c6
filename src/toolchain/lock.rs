//! The checksum lock: `TOOL VERSION OS/ARCH SHA256` per line, `#` comments.
//!
//! The committed `tools.lock` is compiled in (a binary verifies what its commit pins); the
//! per-user one (`$XDG_CACHE_HOME/meshproof/tools.lock`) records what a first install verified
//! against the project's own checksum file, so that a later download that differs is an error
//! even where the committed lock has no line yet (trust on first use, then never again).

use super::{Platform, ToolchainError};
use std::collections::BTreeMap;
use std::path::Path;

/// The committed lock as built.
pub const COMMITTED_LOCK: &str = include_str!("../../tools.lock");

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lock {
    /// `(tool, version, "os/arch")` → lowercase hex SHA-256.
    entries: BTreeMap<(String, String, String), String>,
    /// Where it was read from, for messages.
    pub label: String,
}

/// A lowercase 64-digit hex string, or `None`.
pub fn normalize_hex(s: &str) -> Option<String> {
    let s = s.trim();
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// The line that records `sha256` for a download.
pub fn line(tool: &str, version: &str, p: Platform, sha256: &str) -> String {
    format!("{tool} {version} {p} {sha256}")
}

impl Lock {
    pub fn parse(text: &str, label: &str) -> Result<Lock, ToolchainError> {
        let mut lock = Lock {
            entries: BTreeMap::new(),
            label: label.to_string(),
        };
        for (i, raw) in text.lines().enumerate() {
            let err = |message: String| ToolchainError::Lock {
                file: label.to_string(),
                line: i + 1,
                message,
            };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = l.split_whitespace().collect();
            let [tool, version, plat, sum] = f.as_slice() else {
                return Err(err(format!(
                    "expected `TOOL VERSION OS/ARCH SHA256`, got {l:?}"
                )));
            };
            let (os, arch) = plat
                .split_once('/')
                .ok_or_else(|| err(format!("{plat:?} is not OS/ARCH")))?;
            let p = Platform::parse(os, arch).map_err(|e| err(e.to_string()))?;
            let sum =
                normalize_hex(sum).ok_or_else(|| err(format!("{sum:?} is not a hex SHA-256")))?;
            let key = (tool.to_string(), version.to_string(), p.to_string());
            if let Some(prev) = lock.entries.get(&key) {
                if *prev != sum {
                    return Err(err(format!(
                        "{tool} {version} {p} is listed twice with different checksums"
                    )));
                }
            }
            lock.entries.insert(key, sum);
        }
        Ok(lock)
    }

    /// The committed lock. Tested to parse; an error here is a broken tree, reported.
    pub fn committed() -> Result<Lock, ToolchainError> {
        Lock::parse(COMMITTED_LOCK, "tools.lock (committed)")
    }

    /// The lock at `path`; empty when there is none yet.
    pub fn read(path: &Path) -> Result<Lock, ToolchainError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Lock::parse(&t, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock {
                entries: BTreeMap::new(),
                label: path.display().to_string(),
            }),
            Err(e) => Err(ToolchainError::io(path, e)),
        }
    }

    pub fn get(&self, tool: &str, version: &str, p: Platform) -> Option<&str> {
        self.entries
            .get(&(tool.to_string(), version.to_string(), p.to_string()))
            .map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Adds a line to the per-user lock at `path`, rewriting it atomically (temp file + rename) so
/// that a crash leaves the old lock or the new one, never half of one.
pub fn record(
    path: &Path,
    tool: &str,
    version: &str,
    p: Platform,
    sha256: &str,
) -> Result<(), ToolchainError> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            "# meshproof per-user tools lock: checksums verified on first download (see tools.lock)\n"
                .to_string()
        }
        Err(e) => return Err(ToolchainError::io(path, e)),
    };
    // Refuse to write a lock that would not read back.
    let current = Lock::parse(&existing, &path.display().to_string())?;
    if current.get(tool, version, p) == Some(sha256) {
        return Ok(());
    }
    let mut text = existing;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&line(tool, version, p, sha256));
    text.push('\n');
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ToolchainError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| ToolchainError::io(dir, e))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .map_err(|e| ToolchainError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| ToolchainError::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const LINUX: Platform = Platform {
        os: "linux",
        arch: "amd64",
    };

    #[test]
    fn the_committed_lock_parses() {
        Lock::committed().unwrap();
    }

    #[test]
    fn lines_are_read_by_tool_version_and_platform() {
        let l = Lock::parse(
            &format!("# c\n\nkind v0.30.0 linux/amd64 {}\n", A.to_uppercase()),
            "x",
        )
        .unwrap();
        assert_eq!(l.get("kind", "v0.30.0", LINUX), Some(A));
        assert_eq!(l.get("kind", "v0.29.0", LINUX), None);
        let mac = Platform {
            os: "darwin",
            arch: "amd64",
        };
        assert_eq!(l.get("kind", "v0.30.0", mac), None);
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        for (text, want) in [
            ("kind v0.30.0 linux/amd64\n", "expected"),
            ("kind v0.30.0 linux-amd64 aa\n", "OS/ARCH"),
            ("kind v0.30.0 linux/amd64 xyz\n", "hex SHA-256"),
            ("kind v0.30.0 windows/amd64 aa\n", "windows"),
        ] {
            let e = Lock::parse(text, "f").unwrap_err().to_string();
            assert!(e.starts_with("f:1:") && e.contains(want), "{e}");
        }
        let twice = format!("kind v0.30.0 linux/amd64 {A}\n#\nkind v0.30.0 linux/amd64 {B}\n");
        let e = Lock::parse(&twice, "f").unwrap_err().to_string();
        assert!(e.starts_with("f:3:") && e.contains("twice"), "{e}");
    }

    #[test]
    fn record_appends_a_line_that_reads_back_and_keeps_the_others() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/tools.lock");
        record(&p, "kind", "v0.30.0", LINUX, A).unwrap();
        record(&p, "helm", "v3.19.0", LINUX, B).unwrap();
        record(&p, "helm", "v3.19.0", LINUX, B).unwrap();
        let l = Lock::read(&p).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("kind", "v0.30.0", LINUX), Some(A));
        assert_eq!(l.get("helm", "v3.19.0", LINUX), Some(B));
        assert!(Lock::read(&d.path().join("none")).unwrap().is_empty());
    }
}
