//! The crate's modules form no import cycle: no module imports (through `crate::`, `super::` or
//! `self::` paths, `use` or inline) a module that imports it back, directly or through others.
//! A parent and its own children are not counted against each other (a `mod.rs` re-exports its
//! children and they use its types: that is one module's inside).
//!
//! Read from the source text, not the compiler, so it sees what a reader sees: comment lines
//! and `#[cfg(test)] mod tests` blocks are left out.

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn modules(root: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .expect("under src")
                    .with_extension("");
                let mut m: Module = rel
                    .iter()
                    .map(|c| c.to_string_lossy().into_owned())
                    .collect();
                if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    m.pop();
                }
                out.insert(m, path);
            }
        }
    }
    out
}

/// The longest prefix of `path` that is a module of the crate.
fn resolve(mods: &BTreeMap<Module, PathBuf>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|i| path[..i].to_vec())
        .find(|p| mods.contains_key(p))
}

fn related(a: &Module, b: &Module) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// A `crate::…`, `super::…` or `self::…` path written in module `m`, made absolute.
fn absolute(m: &Module, path: &str) -> Module {
    let mut parts = path.split("::");
    let mut cur = match parts.next() {
        Some("crate") => Vec::new(),
        Some("super") => m[..m.len().saturating_sub(1)].to_vec(),
        _ => m.clone(),
    };
    for part in parts {
        if part == "super" {
            cur.pop();
        } else {
            cur.push(part.to_string());
        }
    }
    cur
}

/// What a module's text imports, as crate modules.
fn imports(mods: &BTreeMap<Module, PathBuf>, m: &Module, text: &str) -> BTreeSet<Module> {
    let body = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or(text);
    let code: String = body
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let path_re = Regex::new(r"\b(?:crate|super|self)(?:::(?:[A-Za-z_][A-Za-z_0-9]*))+").unwrap();
    let group_re =
        Regex::new(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z_0-9]*)*)::\{").unwrap();
    let item_re = Regex::new(r"(?:^|[{,]\s*)([a-z_][a-z_0-9]*)").unwrap();
    let mut out = BTreeSet::new();
    let base = |p: &str| absolute(m, p);
    let mut add = |full: Module| {
        if let Some(t) = resolve(mods, &full) {
            if &t != m && !related(&t, m) {
                out.insert(t);
            }
        }
    };
    for mt in path_re.find_iter(&code) {
        add(base(mt.as_str()));
    }
    for cap in group_re.captures_iter(&code) {
        let start = cap.get(0).unwrap().end();
        let mut depth = 1;
        let inner: String = code[start..]
            .chars()
            .take_while(|c| {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                depth > 0
            })
            .collect();
        let prefix = base(&cap[1]);
        for item in item_re.captures_iter(&inner) {
            let mut full = prefix.clone();
            full.push(item[1].to_string());
            add(full);
        }
    }
    out
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct T<'g> {
        g: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on: BTreeSet<Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit(t: &mut T, v: &Module) {
        t.index.insert(v.clone(), t.next);
        t.low.insert(v.clone(), t.next);
        t.next += 1;
        t.stack.push(v.clone());
        t.on.insert(v.clone());
        for w in t.g.get(v).into_iter().flatten() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn graph_of(root: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mods = modules(root);
    mods.iter()
        .map(|(m, path)| {
            let text = std::fs::read_to_string(path).expect("source is readable");
            (m.clone(), imports(&mods, m, &text))
        })
        .collect()
}

fn show(c: &[Module]) -> String {
    c.iter()
        .map(|m| m.join("::"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph_of(&root);
    assert!(graph.len() > 50, "the walk found the crate's modules");
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import cycles:\n{}",
        found.iter().map(|c| show(c)).collect::<Vec<_>>().join("\n")
    );
}

/// The detector itself finds a cycle: the `plan` ↔ `stack` pair this test was written for, in a
/// miniature crate.
#[test]
fn the_detector_sees_a_cycle_through_crate_and_super_paths() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("stack")).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "pub mod plan;\npub mod stack;\npub mod vocab;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("plan.rs"),
        "// crate::vocab in a comment is no import\nuse crate::stack::plan::provision;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("stack/mod.rs"),
        "pub mod plan;\npub mod install;\n",
    )
    .unwrap();
    std::fs::write(src.join("stack/install.rs"), "use super::plan::x;\n").unwrap();
    std::fs::write(
        src.join("stack/plan.rs"),
        "use crate::{plan::{Phase, PlannedStep}};\n",
    )
    .unwrap();
    std::fs::write(src.join("vocab.rs"), "").unwrap();
    let g = graph_of(src);
    let found = cycles(&g);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(show(&found[0]), "plan, stack::plan");
    // `stack::install` → `stack::plan` through `super::` is seen, and is no cycle.
    assert!(g[&vec!["stack".to_string(), "install".to_string()]]
        .contains(&vec!["stack".to_string(), "plan".to_string()]));
    // Moving the shared words down breaks it.
    std::fs::write(
        src.join("stack/plan.rs"),
        "use crate::vocab::{Phase, PlannedStep};\n",
    )
    .unwrap();
    assert!(cycles(&graph_of(src)).is_empty());
}
