//! The contract ledger (`CONTRACTS.md`) names, for each upstream behaviour, the test that
//! encodes it. A renamed or deleted test would leave the entry claiming coverage that no
//! longer exists, so every test it names must exist: `tests/<file>.rs::<fn>` and
//! `src/<path>.rs::tests::<fn>`, and the shorthand `::<fn>` after one of those on the same line
//! (the ledger's way of listing several tests of one file).

use regex::Regex;
use std::path::Path;

/// One line per named test that is not found: `CONTRACTS.md:LINE: path::fn (why)`.
fn stale_test_references(ledger: &str, root: &Path) -> (usize, Vec<String>) {
    let token = Regex::new(r"`([^`]+)`").unwrap();
    let full =
        Regex::new(r"^((?:tests|src)/[A-Za-z0-9_/]+\.rs)::((?:tests::)?)([a-z_0-9]+)$").unwrap();
    let short = Regex::new(r"^::([a-z_0-9]+)$").unwrap();
    let (mut checked, mut stale) = (0, Vec::new());
    for (i, line) in ledger.lines().enumerate() {
        // The file (and whether it is a `tests` module) the shorthand refers to.
        let mut last: Option<(String, bool)> = None;
        for cap in token.captures_iter(line) {
            let tok = &cap[1];
            let (path, name) = if let Some(m) = full.captures(tok) {
                let is_test = m[1].starts_with("tests/") || !m[2].is_empty();
                last = Some((m[1].to_string(), is_test));
                if !is_test {
                    continue; // an item the behaviour is encoded in, not a test
                }
                (m[1].to_string(), m[3].to_string())
            } else if let (Some(m), Some((path, true))) = (short.captures(tok), &last) {
                (path.clone(), m[1].to_string())
            } else {
                continue;
            };
            checked += 1;
            let why = match std::fs::read_to_string(root.join(&path)) {
                Err(e) => Some(format!("{e}")),
                Ok(src) => {
                    let def = Regex::new(&format!(r"\bfn {}\b", regex::escape(&name))).unwrap();
                    (!def.is_match(&src)).then(|| format!("no fn {name} in {path}"))
                }
            };
            if let Some(why) = why {
                stale.push(format!("CONTRACTS.md:{}: {path}::{name} ({why})", i + 1));
            }
        }
    }
    (checked, stale)
}

#[test]
fn every_test_the_ledger_names_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ledger = std::fs::read_to_string(root.join("CONTRACTS.md")).unwrap();
    let (checked, stale) = stale_test_references(&ledger, root);
    assert!(
        stale.is_empty(),
        "the ledger names tests that do not exist:\n{}",
        stale.join("\n")
    );
    // Non-vacuity: the ledger names hundreds of tests; a format change that hid them all from
    // this reader would show here.
    assert!(checked > 200, "only {checked} test references read");
}

#[test]
fn a_renamed_test_or_a_missing_file_is_named_with_its_line() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("tests")).unwrap();
    std::fs::create_dir_all(root.path().join("src/check")).unwrap();
    std::fs::write(root.path().join("tests/a.rs"), "#[test]\nfn kept() {}\n").unwrap();
    std::fs::write(
        root.path().join("src/check/b.rs"),
        "fn item() {}\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn unit() {}\n}\n",
    )
    .unwrap();
    let ledger = "\
# Ledger
- Encoded in: `src/check/b.rs::item` (an item, not a test). Tests: `src/check/b.rs::tests::unit`, `::renamed_unit`
- Tests: `tests/a.rs::kept`, `::kept_too`, `tests/gone.rs::anything`
";
    let (checked, stale) = stale_test_references(ledger, root.path());
    assert_eq!(checked, 5, "{stale:?}");
    assert_eq!(stale.len(), 3, "{stale:?}");
    assert!(
        stale[0].starts_with("CONTRACTS.md:2: src/check/b.rs::renamed_unit (no fn renamed_unit"),
        "{stale:?}"
    );
    assert!(
        stale[1].starts_with("CONTRACTS.md:3: tests/a.rs::kept_too"),
        "{stale:?}"
    );
    assert!(
        stale[2].starts_with("CONTRACTS.md:3: tests/gone.rs::anything"),
        "{stale:?}"
    );
}
