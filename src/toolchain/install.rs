//! `meshproof tools install`: for each requested tool, download the pinned artifact, verify it
//! (committed lock, else per-user lock, else the project's published checksum — then recorded),
//! extract the executable and write it 0755 by temp file + rename into
//! `<cache>/tools/<tool>/<version>/<os>-<arch>/`, with an install record beside it. Nothing is
//! written before the download verified; a tool whose install record verifies is skipped.

use super::archive;
use super::checksum::{self, sha256_hex};
use super::download::{self, Limits};
use super::lock::{self, Lock};
use super::table::{ArchiveKind, Table};
use super::{install_dir, Platform, ToolchainError};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The file beside an installed executable that says what was installed.
const RECORD: &str = ".meshproof-install.json";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    url: String,
    /// SHA-256 of the download (what the locks hold).
    artifact_sha256: String,
    /// SHA-256 and size of the executable written.
    binary_sha256: String,
    binary_size: u64,
}

/// What to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub tool: String,
    pub version: String,
    pub platform: Platform,
}

/// What verified a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedBy {
    CommittedLock,
    UserLock(PathBuf),
    /// First download: the project's checksum file (its URL); the line for tools.lock.
    Published {
        checksum_url: String,
        lock_line: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    AlreadyInstalled(PathBuf),
    Installed {
        path: PathBuf,
        verified_by: VerifiedBy,
    },
}

/// Everything an install reads, explicit so tests point it at a local server and temp dirs.
#[derive(Debug, Clone)]
pub struct Installer {
    pub table: Table,
    pub committed: Lock,
    pub user_lock: PathBuf,
    pub cache: PathBuf,
    /// `MESHPROOF_TOOLS_BASE_URL`: fetch `https://HOST/PATH` from `BASE/HOST/PATH`.
    pub base_url: Option<String>,
    pub limits: Limits,
}

fn read_record(dir: &Path) -> Option<Record> {
    let text = std::fs::read(dir.join(RECORD)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// The executable in `dir` if an install record is there and the executable still matches it
/// (same size always; same SHA-256 when `artifact` is given, which `tools install` does — the
/// per-command lookup in `process::tools::find` checks size only, as it runs at every spawn).
/// With `artifact`, a record of another download does not count.
pub fn installed(
    dir: &Path,
    tool: &str,
    artifact: Option<&str>,
) -> Result<Option<PathBuf>, ToolchainError> {
    let Some(rec) = read_record(dir) else {
        return Ok(None);
    };
    let bin = dir.join(tool);
    let Ok(meta) = std::fs::metadata(&bin) else {
        return Ok(None);
    };
    if !meta.is_file() || meta.len() != rec.binary_size {
        return Ok(None);
    }
    if let Some(a) = artifact {
        if a != rec.artifact_sha256 {
            return Ok(None);
        }
        let bytes = std::fs::read(&bin).map_err(|e| ToolchainError::io(&bin, e))?;
        if sha256_hex(&bytes) != rec.binary_sha256 {
            return Ok(None);
        }
    }
    Ok(Some(bin))
}

/// Writes `bytes` to `path` with `mode`, atomically: a temp file in the same directory, synced,
/// then renamed over `path`.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ToolchainError> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| ToolchainError::io(dir, e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .and_then(|_| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
        })
        .map_err(|e| ToolchainError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| ToolchainError::io(path, e.error))?;
    Ok(())
}

impl Installer {
    /// The installer for this machine: the committed table and lock, the per-user cache and
    /// lock, `MESHPROOF_TOOLS_BASE_URL` if set.
    pub fn from_env(limits: Limits) -> Result<Installer, ToolchainError> {
        let cache = super::cache_root().ok_or(ToolchainError::NoCache)?;
        Ok(Installer {
            table: Table::committed()?,
            committed: Lock::committed()?,
            user_lock: cache.join("tools.lock"),
            cache,
            base_url: std::env::var(super::BASE_URL_ENV)
                .ok()
                .filter(|v| !v.is_empty()),
            limits,
        })
    }

    /// Where `req` is (or would be) installed.
    pub fn dir(&self, req: &Request) -> PathBuf {
        install_dir(&self.cache, &req.tool, &req.version, req.platform)
    }

    pub async fn install(&self, req: &Request) -> Result<Outcome, ToolchainError> {
        let art = self.table.artifact(&req.tool, &req.version, req.platform)?;
        let user = Lock::read(&self.user_lock)?;
        let committed = self.committed.get(&req.tool, &req.version, req.platform);
        let mine = user.get(&req.tool, &req.version, req.platform);
        if let (Some(c), Some(u)) = (committed, mine) {
            if c != u {
                return Err(ToolchainError::LocksDisagree {
                    tool: req.tool.clone(),
                    committed: c.to_string(),
                    user: u.to_string(),
                    user_lock: self.user_lock.display().to_string(),
                });
            }
        }
        let expected: Option<(String, VerifiedBy)> = committed
            .map(|c| (c.to_string(), VerifiedBy::CommittedLock))
            .or_else(|| {
                mine.map(|u| (u.to_string(), VerifiedBy::UserLock(self.user_lock.clone())))
            });

        let dir = self.dir(req);
        if let Some(bin) = installed(
            &dir,
            &art.binary,
            expected.as_ref().map(|(h, _)| h.as_str()),
        )? {
            // Without a lock line the record itself must verify against the binary.
            if expected.is_some() || installed_verifies(&dir, &art.binary) {
                return Ok(Outcome::AlreadyInstalled(bin));
            }
        }

        let client = download::client(&self.limits)?;
        let url = download::through_mirror(&art.url, self.base_url.as_deref());
        let bytes = download::get(&client, &url, &self.limits).await?;
        let got = sha256_hex(&bytes);
        let verified_by = match expected {
            Some((want, by)) => {
                if want != got {
                    return Err(ToolchainError::Mismatch {
                        tool: req.tool.clone(),
                        url,
                        expected: want,
                        got,
                        source_of_truth: match &by {
                            VerifiedBy::CommittedLock => "the committed tools.lock".into(),
                            VerifiedBy::UserLock(p) => format!("recorded in {}", p.display()),
                            VerifiedBy::Published { .. } => String::new(),
                        },
                    });
                }
                by
            }
            None => {
                let curl = download::through_mirror(&art.checksum.url, self.base_url.as_deref());
                let body = download::get(&client, &curl, &self.limits).await?;
                let want = checksum::expected(art.checksum.format, &body, &art.file_name, &curl)?;
                if want != got {
                    return Err(ToolchainError::Mismatch {
                        tool: req.tool.clone(),
                        url,
                        expected: want,
                        got,
                        source_of_truth: format!("published in {curl}"),
                    });
                }
                VerifiedBy::Published {
                    checksum_url: curl,
                    lock_line: lock::line(&req.tool, &req.version, req.platform, &got),
                }
            }
        };

        let binary = match art.archive {
            ArchiveKind::Binary => bytes,
            ArchiveKind::TarGz => {
                archive::extract_member(&bytes, art.member.as_deref().unwrap_or(&art.binary), &url)?
            }
        };
        std::fs::create_dir_all(&dir).map_err(|e| ToolchainError::io(&dir, e))?;
        let bin = dir.join(&art.binary);
        write_atomic(&bin, &binary, 0o755)?;
        let rec = Record {
            url: art.url.clone(),
            artifact_sha256: got.clone(),
            binary_sha256: sha256_hex(&binary),
            binary_size: binary.len() as u64,
        };
        let json = serde_json::to_vec_pretty(&rec).map_err(|e| ToolchainError::Io {
            path: dir.join(RECORD).display().to_string(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&dir.join(RECORD), &json, 0o644)?;
        if matches!(verified_by, VerifiedBy::Published { .. }) {
            lock::record(&self.user_lock, &req.tool, &req.version, req.platform, &got)?;
        }
        Ok(Outcome::Installed {
            path: bin,
            verified_by,
        })
    }
}

/// The executable in `dir` hashes to what its install record says.
fn installed_verifies(dir: &Path, tool: &str) -> bool {
    read_record(dir).is_some_and(|rec| {
        std::fs::read(dir.join(tool)).is_ok_and(|b| sha256_hex(&b) == rec.binary_sha256)
    })
}
