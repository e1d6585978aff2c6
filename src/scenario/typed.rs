//! The typed raw layer, with every problem of a file reported rather than serde's first.
//!
//! serde stops at the first error. To find the others, the pass is repeated on a copy of the
//! document in which each problem found so far is *repaired* with a stand-in: an unknown key is
//! removed, a value of the wrong shape becomes an empty one of the expected shape, a missing key
//! is added, an unknown value becomes an allowed one. A problem inside a stand-in is a
//! consequence of the repair, not of the file, and is not reported. What cannot be repaired
//! drops the list entry it sits in (later entries keep their own indices in messages), and at
//! the top level ends the search.
//!
//! serde's derives stay the only definition of the schema: nothing here knows the keys of a
//! suite or a scenario, so the two cannot disagree.

use super::path::{FieldPath, Seg};
use super::serde_words::{Expected, Fault};
use super::validate::{Problem, Where};
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeSet, HashMap};

/// Bounds the repair loop: every pass repairs one node, and no real file has this many
/// problems; a file that does gets the first ones.
const MAX_PASSES: usize = 200;

/// A string no enum of the raw layer has as a value: set where an enum of the wrong shape was
/// found, so serde's `unknown variant` answer lists the values it allows.
const PROBE: &str = "\u{1}";

/// Deserializes `text` as `T`; on failure, every problem that repairs can reach, in the order
/// found, each with the path it concerns.
pub(crate) fn deserialize<T: DeserializeOwned>(text: &str) -> Result<T, Vec<Problem>> {
    let first = match pass::<T>(text) {
        Ok(v) => return Ok(v),
        Err(f) => f,
    };
    let doc = match serde_yaml::from_str::<Value>(text) {
        Ok(d) => d,
        Err(_) => return Err(vec![Repairs::default().problem(&first)]),
    };
    let mut r = Repairs {
        doc,
        ..Repairs::default()
    };
    let mut problems = Vec::new();
    let mut failure = first;
    for _ in 0..MAX_PASSES {
        let seen = (failure.path.clone(), failure.fault.clone());
        failure.fault = r.with_choices::<T>(failure.fault, &failure.path);
        if !r.is_stand_in(&r.original(&failure.path)) {
            problems.push(r.problem(&failure));
        }
        if !r.repair(&failure) {
            break;
        }
        let next = match serde_yaml::to_string(&r.doc) {
            Ok(text) => pass::<T>(&text),
            Err(_) => break,
        };
        match next {
            Ok(_) => break,
            // A repair that changed nothing serde sees: stop rather than spin.
            Err(f) if (&f.path, &f.fault) == (&seen.0, &seen.1) => break,
            Err(f) => failure = f,
        }
    }
    Err(problems)
}

/// One serde failure: where (in the current, repaired document) and what.
#[derive(Debug)]
struct Failure {
    path: FieldPath,
    fault: Fault,
}

/// One typed pass with the field path tracked.
fn pass<T: DeserializeOwned>(text: &str) -> Result<T, Failure> {
    let de = serde_yaml::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    // Enums (steps, checks) are written as single-key maps (`- check: {canary: …}`), which
    // serde_yaml 0.9 only accepts through this adapter; the path tracker sits beneath it.
    let res = serde_yaml::with::singleton_map_recursive::deserialize(
        serde_path_to_error::Deserializer::new(de, &mut track),
    );
    res.map_err(|e: serde_yaml::Error| {
        let msg = super::manifest_yaml::strip_location(&e.to_string());
        Failure {
            path: FieldPath::from_serde(&track.path()),
            fault: Fault::parse(strip_serde_yaml_path(&msg)),
        }
    })
}

/// serde_yaml 0.9 writes nested errors as `a.b[0]: message`; the tracker gives the path.
fn strip_serde_yaml_path(msg: &str) -> &str {
    match msg.split_once(": ") {
        Some((head, tail))
            if !head.is_empty()
                && !head.contains(' ')
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c)) =>
        {
            tail
        }
        _ => msg,
    }
}

/// The document being repaired, and how its paths map back to the file's.
#[derive(Default)]
struct Repairs {
    doc: Value,
    /// List entries dropped, by the list's path in the file: the file's indices of the entries.
    dropped: HashMap<Vec<Seg>, BTreeSet<usize>>,
    /// Paths (in the file's terms) whose value is a stand-in.
    stand_ins: Vec<FieldPath>,
}

impl Repairs {
    /// The problem for a failure, with the path in the file's terms.
    fn problem(&self, f: &Failure) -> Problem {
        let at = self.original(&f.path);
        let message = f.fault.describe(&at);
        let pos = f.fault.position_path(&at);
        Problem {
            at: if f.fault.points_at_key(&at) {
                Where::Key(pos)
            } else {
                Where::Value(pos)
            },
            message,
        }
    }

    /// A path in the repaired document, in the file's terms (dropped entries shift indices).
    fn original(&self, cur: &FieldPath) -> FieldPath {
        let mut out: Vec<Seg> = Vec::new();
        for seg in &cur.0 {
            let seg = match seg {
                Seg::Index(j) => Seg::Index(nth_kept(self.dropped.get(&out), *j)),
                Seg::Key(k) => Seg::Key(k.clone()),
            };
            out.push(seg);
        }
        FieldPath(out)
    }

    fn is_stand_in(&self, at: &FieldPath) -> bool {
        self.stand_ins.iter().any(|s| at.0.starts_with(&s.0))
    }

    /// serde names an enum of the wrong shape by its Rust type only; setting the probe there
    /// makes it list the values.
    fn with_choices<T: DeserializeOwned>(&self, fault: Fault, at: &FieldPath) -> Fault {
        let Fault::Mismatch {
            expected: Expected::Choice(None),
            found,
        } = fault
        else {
            return fault;
        };
        let mut doc = self.doc.clone();
        let allowed = node_mut(&mut doc, at)
            .map(|n| *n = Value::String(PROBE.into()))
            .and_then(|()| serde_yaml::to_string(&doc).ok())
            .and_then(|text| pass::<T>(&text).err())
            .and_then(|f| match f.fault {
                Fault::UnknownChoice { allowed, .. } if f.path == *at => Some(allowed),
                _ => None,
            });
        Fault::Mismatch {
            expected: Expected::Choice(allowed),
            found,
        }
    }

    /// Repairs the node a failure concerns; false when nothing more can be done.
    fn repair(&mut self, f: &Failure) -> bool {
        let at = &f.path;
        let repaired = match &f.fault {
            Fault::UnknownKey { key, .. } => self.remove_key(at, key),
            Fault::UnknownChoice { got, allowed } => match (allowed.first(), at.0.split_last()) {
                (Some(first), Some((Seg::Key(k), parent))) if k == got => {
                    let enum_at = FieldPath(parent.to_vec());
                    self.rename_only_key(&enum_at, got, first)
                }
                (Some(first), _) => self.stand_in(at, Value::String(first.clone())),
                (None, _) => false,
            },
            Fault::Missing { key } => self.add_key(at, key),
            Fault::Mismatch { expected, .. } => match self.neutral(at, expected) {
                Some(v) => self.stand_in(at, v),
                None => false,
            },
            Fault::Other(_) => false,
        };
        repaired || self.drop_entry(at)
    }

    /// An empty value of the expected shape.
    fn neutral(&mut self, at: &FieldPath, expected: &Expected) -> Option<Value> {
        Some(match expected {
            Expected::Number | Expected::Whole { .. } | Expected::Integer => Value::from(0),
            Expected::Text => Value::String(String::new()),
            Expected::Bool => Value::Bool(false),
            Expected::List => Value::Sequence(Vec::new()),
            Expected::Mapping | Expected::Record => Value::Mapping(Mapping::new()),
            Expected::Choice(Some(allowed)) => Value::String(allowed.first()?.clone()),
            // A variant that carries data, written as a plain name: give it its mapping.
            Expected::Variant => match node_mut(&mut self.doc, at)? {
                Value::String(name) => {
                    let mut m = Mapping::new();
                    m.insert(Value::String(name.clone()), Value::Null);
                    Value::Mapping(m)
                }
                _ => return None,
            },
            Expected::Choice(None) | Expected::Unknown => return None,
        })
    }

    fn stand_in(&mut self, at: &FieldPath, v: Value) -> bool {
        let Some(node) = node_mut(&mut self.doc, at) else {
            return false;
        };
        *node = v;
        self.stand_ins.push(self.original(at));
        true
    }

    fn remove_key(&mut self, at: &FieldPath, key: &str) -> bool {
        let map_at = match at.0.split_last() {
            Some((Seg::Key(k), parent)) if k == key => FieldPath(parent.to_vec()),
            _ => at.clone(),
        };
        match node_mut(&mut self.doc, &map_at) {
            Some(Value::Mapping(m)) => {
                let before = m.len();
                m.retain(|k, _| !key_is(k, key));
                m.len() < before
            }
            _ => false,
        }
    }

    /// `{sleep: x}` → `{apply: x}`: an unknown variant of an enum written as a single-key
    /// mapping becomes an allowed one, its contents a stand-in.
    fn rename_only_key(&mut self, enum_at: &FieldPath, got: &str, to: &str) -> bool {
        let Some(Value::Mapping(m)) = node_mut(&mut self.doc, enum_at) else {
            return false;
        };
        let Some(v) = m
            .iter()
            .find(|(k, _)| key_is(k, got))
            .map(|(_, v)| v.clone())
        else {
            return false;
        };
        let mut renamed = Mapping::new();
        renamed.insert(Value::String(to.to_string()), v);
        *m = renamed;
        self.stand_ins.push(self.original(&enum_at.key(to)));
        true
    }

    fn add_key(&mut self, at: &FieldPath, key: &str) -> bool {
        match node_mut(&mut self.doc, at) {
            Some(Value::Mapping(m)) if !m.iter().any(|(k, _)| key_is(k, key)) => {
                m.insert(Value::String(key.to_string()), Value::Null);
                self.stand_ins.push(self.original(&at.key(key)));
                true
            }
            _ => false,
        }
    }

    /// Drops the innermost list entry that holds `at`; false at the top level.
    fn drop_entry(&mut self, at: &FieldPath) -> bool {
        let Some(i) = at.0.iter().rposition(|s| matches!(s, Seg::Index(_))) else {
            return false;
        };
        let Seg::Index(j) = at.0[i] else {
            return false;
        };
        let list_at = FieldPath(at.0[..i].to_vec());
        let file_list = self.original(&list_at).0;
        let file_index = nth_kept(self.dropped.get(&file_list), j);
        match node_mut(&mut self.doc, &list_at) {
            Some(Value::Sequence(items)) if j < items.len() => {
                items.remove(j);
                self.dropped
                    .entry(file_list)
                    .or_default()
                    .insert(file_index);
                true
            }
            _ => false,
        }
    }
}

/// The index in the file of the `j`th entry still in the list.
fn nth_kept(dropped: Option<&BTreeSet<usize>>, j: usize) -> usize {
    let Some(dropped) = dropped else {
        return j;
    };
    (0..).filter(|i| !dropped.contains(i)).nth(j).unwrap_or(j)
}

/// Does a YAML key read as `name`? serde's tracker writes non-string keys (`1:`) as text.
fn key_is(k: &Value, name: &str) -> bool {
    match k {
        Value::String(s) => s == name,
        Value::Number(n) => n.to_string() == name,
        Value::Bool(b) => b.to_string() == name,
        _ => false,
    }
}

fn node_mut<'a>(doc: &'a mut Value, at: &FieldPath) -> Option<&'a mut Value> {
    let mut node = doc;
    for seg in &at.0 {
        node = untagged(node);
        node = match (node, seg) {
            (Value::Mapping(m), Seg::Key(k)) => m.iter_mut().find(|(key, _)| key_is(key, k))?.1,
            (Value::Sequence(items), Seg::Index(i)) => items.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(untagged(node))
}

fn untagged(v: &mut Value) -> &mut Value {
    match v {
        Value::Tagged(t) => untagged(&mut t.value),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::raw::{RawScenario, RawSuite};

    fn messages<T: DeserializeOwned + std::fmt::Debug>(text: &str) -> Vec<String> {
        deserialize::<T>(text)
            .expect_err("the document has problems")
            .into_iter()
            .map(|p| p.message)
            .collect()
    }

    const CHECK: &str = "  - check:\n      canary:\n        function: env\n        variants:\n          - { name: a, pattern: a, weight: 90 }\n          - { name: b, pattern: b, weight: 10 }\n        tolerance: 5\n        confidence: 0.99\n";

    #[test]
    fn problems_in_independent_entries_are_all_reported() {
        let text = format!(
            "kind: Scenario\nname: c\nsteps:\n  - wait: {{for: soon, target: a/b, timeout: 5s}}\n  - deploy: {{function: f, image: i, colour: red}}\n{CHECK}"
        );
        assert_eq!(
            messages::<RawScenario>(&text),
            [
                "steps[0].wait.for: must be one of rollout, podsReady, established, condition (got soon)",
                "steps[1].deploy: unknown key colour (allowed: function, image, env, labels, annotations, meshed)",
            ]
        );
    }

    #[test]
    fn what_follows_a_repair_is_not_reported_as_a_problem() {
        // `latency` becomes a stand-in check whose keys do not fit it: only `latency` is wrong.
        let text = format!(
            "kind: Scenario\nname: c\nsteps:\n  - check:\n      latency: {{p99: 5}}\n  - sleep: 5s\n{CHECK}"
        );
        assert_eq!(
            messages::<RawScenario>(&text),
            [
                "steps[0].check: unknown key latency (allowed: mtls, deny, canary, tls, restore)",
                "steps[1]: unknown key sleep (allowed: apply, delete, deploy, wait, check)",
            ]
        );
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_repaired_and_the_next_entry_still_checked() {
        let text = format!(
            "kind: Scenario\nname: c\nsteps:\n  - deploy: !!binary aGVsbG8=\n  - deploy: {{function: f, image: [i]}}\n{CHECK}"
        );
        assert_eq!(
            messages::<RawScenario>(&text),
            [
                "steps[0].deploy: expected a mapping, found the string \"aGVsbG8=\"",
                "steps[1].deploy.image: expected a string, found a list",
            ]
        );
    }

    #[test]
    fn dropped_entries_keep_later_entries_at_their_index_in_the_file() {
        let doc: Value =
            serde_yaml::from_str("steps: [a, b, c, d]\nvariants: [[x, y], [z]]").unwrap();
        let mut r = Repairs {
            doc,
            ..Repairs::default()
        };
        let steps = FieldPath::root().key("steps");
        assert!(r.drop_entry(&steps.index(1).key("x")));
        assert!(r.drop_entry(&steps.index(0)));
        // Left: c, d — the file's entries 2 and 3.
        assert_eq!(r.original(&steps.index(0)), steps.index(2));
        assert_eq!(r.original(&steps.index(1)), steps.index(3));
        let v = FieldPath::root().key("variants");
        assert!(r.drop_entry(&v.index(0).index(0)));
        assert_eq!(r.original(&v.index(0).index(0)), v.index(0).index(1));
        assert_eq!(r.original(&v.index(1).index(0)), v.index(1).index(0));
        assert!(
            !r.drop_entry(&FieldPath::root().key("steps")),
            "nothing holds the top level"
        );
        assert_eq!(
            serde_yaml::to_string(&r.doc).unwrap(),
            "steps:\n- c\n- d\nvariants:\n- - y\n- - z\n"
        );
    }

    #[test]
    fn an_enum_of_the_wrong_shape_lists_its_values() {
        let text = "kind: Suite\nname: s\ncluster: {provider: kind}\nmesh: {name: 5, version: 1.2.3}\nopenfaas: {chart: x, edition: [ce]}\nscenarios: [c]\n";
        assert_eq!(
            messages::<RawSuite>(text),
            [
                "mesh.name: must be one of istio, linkerd (got the number 5)",
                "openfaas.edition: must be one of ce, pro (got a list)",
            ]
        );
    }

    #[test]
    fn missing_keys_are_each_required() {
        let text =
            "kind: Suite\nname: s\nmesh: {version: 1.2.3}\nopenfaas: {chart: x}\nscenarios: [c]\n";
        assert_eq!(
            messages::<RawSuite>(text),
            ["mesh.name: required", "cluster: required"]
        );
    }

    #[test]
    fn a_valid_document_deserializes() {
        let text = format!("kind: Scenario\nname: c\nsteps:\n{CHECK}");
        assert!(deserialize::<RawScenario>(&text).is_ok());
    }
}
