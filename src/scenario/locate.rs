//! Where is a field? A position index over a YAML document.
//!
//! serde reports *that* a value is wrong; validation rules that span fields (weights summing to
//! 100, an unknown template variable inside a string) need to say *where*. This module parses
//! the same text with yaml-rust2's marked event parser and records the position of every key and
//! value, so any [`FieldPath`] can be turned into a line and column.

use super::diag::Pos;
use super::path::{FieldPath, Seg};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

#[derive(Debug)]
enum Node {
    Scalar {
        at: Pos,
    },
    Seq {
        at: Pos,
        items: Vec<Node>,
    },
    Map {
        at: Pos,
        entries: Vec<(String, Pos, Node)>,
    },
}

impl Node {
    fn at(&self) -> Pos {
        match self {
            Node::Scalar { at } | Node::Seq { at, .. } | Node::Map { at, .. } => *at,
        }
    }
}

/// Positions of every node of the first document in a YAML text.
#[derive(Debug)]
pub struct Locator {
    root: Option<Node>,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Partial>,
    done: Option<Node>,
    docs: usize,
}

enum Partial {
    Seq {
        at: Pos,
        items: Vec<Node>,
    },
    Map {
        at: Pos,
        entries: Vec<(String, Pos, Node)>,
        key: Option<(String, Pos)>,
    },
}

fn pos(m: Marker) -> Pos {
    // yaml-rust2 markers: 1-based lines; columns are 0-based in practice for block content.
    Pos {
        line: m.line().max(1),
        col: m.col() + 1,
    }
}

impl Builder {
    fn push_node(&mut self, node: Node, key_text: Option<String>) {
        match self.stack.last_mut() {
            None => {
                if self.done.is_none() {
                    self.done = Some(node);
                }
            }
            Some(Partial::Seq { items, .. }) => items.push(node),
            Some(Partial::Map { entries, key, .. }) => match key.take() {
                None => {
                    // This node is a key.
                    let at = node.at();
                    *key = Some((key_text.unwrap_or_default(), at));
                }
                Some((k, kat)) => entries.push((k, kat, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.docs > 1 {
            return;
        }
        match ev {
            Event::DocumentStart => self.docs += 1,
            Event::Scalar(text, ..) => self.push_node(Node::Scalar { at: pos(mark) }, Some(text)),
            Event::Alias(_) => self.push_node(Node::Scalar { at: pos(mark) }, Some(String::new())),
            Event::SequenceStart(..) => self.stack.push(Partial::Seq {
                at: pos(mark),
                items: Vec::new(),
            }),
            Event::MappingStart(..) => self.stack.push(Partial::Map {
                at: pos(mark),
                entries: Vec::new(),
                key: None,
            }),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Partial::Seq { at, items }) => Node::Seq { at, items },
                    Some(Partial::Map { at, entries, .. }) => Node::Map { at, entries },
                    None => return,
                };
                self.push_node(node, None);
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Indexes `text`. A text that does not parse yields a locator that answers the start of the
    /// file for every path (the syntax error itself is reported by the loader).
    pub fn new(text: &str) -> Locator {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut b, false).is_err() {
            return Locator { root: None };
        }
        Locator { root: b.done }
    }

    /// Position of the value at `path`, or of its deepest existing ancestor.
    pub fn value(&self, path: &FieldPath) -> Pos {
        self.find(path, false)
    }

    /// Position of the *key* of the last path segment (for "unknown field" style errors), or of
    /// the value when the last segment is an index.
    pub fn key(&self, path: &FieldPath) -> Pos {
        self.find(path, true)
    }

    /// Does `path` exist in the document?
    pub fn exists(&self, path: &FieldPath) -> bool {
        let mut node = match &self.root {
            Some(n) => n,
            None => return false,
        };
        for seg in &path.0 {
            match Self::child(node, seg) {
                Some((_, n)) => node = n,
                None => return false,
            }
        }
        true
    }

    fn child<'a>(node: &'a Node, seg: &Seg) -> Option<(Pos, &'a Node)> {
        match (node, seg) {
            (Node::Map { entries, .. }, Seg::Key(k)) => entries
                .iter()
                .find(|(name, _, _)| name == k)
                .map(|(_, kat, n)| (*kat, n)),
            (Node::Seq { items, .. }, Seg::Index(i)) => items.get(*i).map(|n| (n.at(), n)),
            _ => None,
        }
    }

    fn find(&self, path: &FieldPath, want_key: bool) -> Pos {
        let mut node = match &self.root {
            Some(n) => n,
            None => return Pos::START,
        };
        // Block-mapping start markers sit after the first key, so when a path stops early we
        // answer the *key* of the deepest segment found: "missing field" then points at the
        // mapping's own name (`canary:`), which is where a reader looks.
        let mut at = Pos::START;
        for (i, seg) in path.0.iter().enumerate() {
            match Self::child(node, seg) {
                Some((kat, n)) => {
                    let last = i + 1 == path.0.len();
                    at = if last && !want_key && matches!(n, Node::Scalar { .. }) {
                        n.at()
                    } else {
                        kat
                    };
                    node = n;
                }
                None => break,
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name: x\nsteps:\n  - check:\n      canary:\n        tolerance: 60\n";

    #[test]
    fn finds_nested_values_and_keys() {
        let l = Locator::new(DOC);
        let p = FieldPath::root()
            .key("steps")
            .index(0)
            .key("check")
            .key("canary")
            .key("tolerance");
        assert_eq!(l.value(&p), Pos { line: 5, col: 20 });
        assert_eq!(l.key(&p), Pos { line: 5, col: 9 });
        assert!(l.exists(&p));
    }

    #[test]
    fn missing_paths_fall_back_to_the_deepest_ancestor() {
        let l = Locator::new(DOC);
        let p = FieldPath::root()
            .key("steps")
            .index(0)
            .key("check")
            .key("canary")
            .key("weights");
        assert_eq!(l.value(&p), Pos { line: 4, col: 7 });
        assert!(!l.exists(&p));
    }

    #[test]
    fn unparsable_text_answers_the_start() {
        let l = Locator::new("a: [1, 2");
        assert_eq!(l.value(&FieldPath::root().key("a")), Pos::START);
    }
}
