//! The pinned CLIs (kind, kubectl, helm, istioctl, linkerd, flux, kubeseal): one table of what is
//! pinned (`table`, from `tools.yaml`), a checksum lock (`lock`, from `tools.lock` and the
//! per-user lock), and `meshproof tools install` (`install`): download (`download`), verify
//! (`checksum`), extract (`archive`) into a per-user cache that `process::tools::find` searches
//! for the pinned version.
//!
//! Nothing here imports the suites: callers pass kubectl's version (the node image's).

pub mod archive;
pub mod checksum;
pub mod download;
pub mod install;
pub mod lock;
pub mod table;

use std::path::PathBuf;

/// A platform the table has downloads for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: &'static str,
    pub arch: &'static str,
}

pub const OSES: [&str; 2] = ["linux", "darwin"];
pub const ARCHES: [&str; 2] = ["amd64", "arm64"];

impl Platform {
    /// `linux`/`darwin` × `amd64`/`arm64` (Rust's `macos`, `x86_64`, `aarch64` accepted).
    pub fn parse(os: &str, arch: &str) -> Result<Platform, ToolchainError> {
        let os = match os {
            "linux" => "linux",
            "darwin" | "macos" => "darwin",
            other => return Err(ToolchainError::Platform(format!("OS {other:?}"))),
        };
        let arch = match arch {
            "amd64" | "x86_64" => "amd64",
            "arm64" | "aarch64" => "arm64",
            other => return Err(ToolchainError::Platform(format!("architecture {other:?}"))),
        };
        Ok(Platform { os, arch })
    }

    /// This machine.
    pub fn host() -> Result<Platform, ToolchainError> {
        Platform::parse(std::env::consts::OS, std::env::consts::ARCH)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

/// Points every download and checksum URL at a mirror: `https://HOST/PATH` is fetched from
/// `$MESHPROOF_TOOLS_BASE_URL/HOST/PATH`. A seam for tests (a local server) and for mirrors;
/// verification is unchanged, so a mirror cannot serve other bytes than the lock names.
pub const BASE_URL_ENV: &str = "MESHPROOF_TOOLS_BASE_URL";

/// `$XDG_CACHE_HOME/meshproof`, else `~/.cache/meshproof`.
pub fn cache_root() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })
        .map(|p| p.join("meshproof"))
}

/// Where an installed tool lives: `<cache>/tools/<tool>/<version>/<os>-<arch>/`.
pub fn install_dir(cache: &std::path::Path, tool: &str, version: &str, p: Platform) -> PathBuf {
    cache
        .join("tools")
        .join(tool)
        .join(version)
        .join(format!("{}-{}", p.os, p.arch))
}

/// The installed executable of a pinned tool on this machine, if `tools install` put it there.
/// Only a directory whose install record verifies counts (see [`install::installed`]).
pub fn cached_binary(tool: &str) -> Option<PathBuf> {
    let version = table::Table::pinned()?.version(tool)?;
    let dir = install_dir(&cache_root()?, tool, version, Platform::host().ok()?);
    install::installed(&dir, tool, None).ok().flatten()
}

#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("tools.yaml: {0}")]
    Table(String),
    #[error("no tool {0} in tools.yaml")]
    UnknownTool(String),
    #[error("no pinned download for {0} (the table has linux and darwin, amd64 and arm64)")]
    Platform(String),
    #[error("{file}:{line}: {message}")]
    Lock {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{tool}: {url}: checksum mismatch: expected sha256 {expected} ({source_of_truth}), got {got}")]
    Mismatch {
        tool: String,
        url: String,
        expected: String,
        got: String,
        source_of_truth: String,
    },
    #[error("{tool}: the committed tools.lock says {committed} but {user_lock} says {user}: delete that line from {user_lock} if the committed one is right")]
    LocksDisagree {
        tool: String,
        committed: String,
        user: String,
        user_lock: String,
    },
    #[error("{url}: HTTP {status}{}", if *status == 404 { " (not found: is the version or platform in tools.yaml right?)" } else { "" })]
    Status { url: String, status: u16 },
    #[error("{url}: timed out ({what})")]
    Timeout { url: String, what: String },
    #[error("{url}: truncated download: got {got} of {expected} bytes")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("{url}: larger than {limit} bytes: refused")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: the checksum file does not list {artifact}")]
    NotListed { url: String, artifact: String },
    #[error("{url}: not a checksum file of format {format}: {message}")]
    BadChecksumFile {
        url: String,
        format: String,
        message: String,
    },
    #[error("{url}: bad archive: {message}")]
    BadArchive { url: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no cache directory: set XDG_CACHE_HOME or HOME")]
    NoCache,
}

impl ToolchainError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> ToolchainError {
        ToolchainError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
