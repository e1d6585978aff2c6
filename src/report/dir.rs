//! Where a run's report goes, and the run id that names it.
//!
//! Precedence: `--report-dir`, then `MESHPROOF_REPORT_DIR`, then
//! `<target dir>/meshproof/<run id>/` — a fresh directory per run, so reports of earlier runs
//! are never overwritten.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The environment variable that names the report directory.
pub const ENV: &str = "MESHPROOF_REPORT_DIR";

/// A run id: UTC timestamp plus a short random suffix, e.g. `20261121T205040Z-3fa91c`. Sorts
/// by time; the suffix keeps two runs started in the same second apart.
pub fn new_run_id() -> String {
    run_id_at(OffsetDateTime::now_utc(), rand::random::<u32>() & 0xff_ffff)
}

fn run_id_at(t: OffsetDateTime, suffix: u32) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{suffix:06x}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Resolves the report directory from the flag, the environment variable's value and the
/// default base (`<target dir>/meshproof`). Empty values count as unset.
pub fn resolve(
    flag: Option<&Path>,
    env_value: Option<OsString>,
    default_base: &Path,
    run_id: &str,
) -> PathBuf {
    if let Some(f) = flag.filter(|f| !f.as_os_str().is_empty()) {
        return f.to_path_buf();
    }
    if let Some(v) = env_value.filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    default_base.join(run_id)
}

/// `resolve` with `MESHPROOF_REPORT_DIR` read from the environment and the default base
/// `<CARGO_TARGET_DIR or project/target>/meshproof`.
pub fn from_env(flag: Option<&Path>, project_root: &Path, run_id: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root.join("target"));
    resolve(
        flag,
        std::env::var_os(ENV),
        &target.join("meshproof"),
        run_id,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_utc_timestamps_with_a_suffix() {
        let t = time::macros::datetime!(2026-01-02 03:04:05 +01:00);
        assert_eq!(run_id_at(t, 0xabc), "20260102T020405Z-000abc");
        let a = new_run_id();
        assert_eq!(a.len(), "20260102T020405Z-000abc".len(), "{a}");
    }

    #[test]
    fn flag_beats_env_beats_default() {
        let base = Path::new("/t/meshproof");
        assert_eq!(
            resolve(Some(Path::new("/f")), Some("/e".into()), base, "r"),
            PathBuf::from("/f")
        );
        assert_eq!(
            resolve(None, Some("/e".into()), base, "r"),
            PathBuf::from("/e")
        );
        assert_eq!(
            resolve(None, Some("".into()), base, "r"),
            PathBuf::from("/t/meshproof/r")
        );
        assert_eq!(
            resolve(Some(Path::new("")), None, base, "r"),
            PathBuf::from("/t/meshproof/r")
        );
    }
}
