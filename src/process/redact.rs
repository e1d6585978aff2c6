//! Secret redaction for command lines, captured output and reports.

use std::sync::Arc;

/// A set of secret values to blank out of any text. Cheap to clone and share.
#[derive(Clone, Default, Debug)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    /// Adds a secret; values shorter than 4 characters are ignored (they would blank out
    /// ordinary text and are not secrets worth the name).
    pub fn add(&mut self, secret: &str) {
        if secret.len() >= 4 && !self.secrets.iter().any(|s| s == secret) {
            Arc::make_mut(&mut self.secrets).push(secret.to_string());
        }
    }

    pub fn extend(&mut self, other: &Redactor) {
        for s in other.secrets.iter() {
            self.add(s);
        }
    }

    /// `text` with every secret replaced by `***` (longest first, so overlapping secrets are
    /// fully hidden).
    pub fn apply(&self, text: &str) -> String {
        let mut secrets: Vec<&String> = self.secrets.iter().collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }

    /// Redacts every string and object key of a JSON value in place (evidence is JSON; a
    /// secret may sit in any string of it).
    pub fn apply_json(&self, v: &mut serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::String(s) => *s = self.apply(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.apply_json(i)),
            Value::Object(map) => {
                let old = std::mem::take(map);
                for (k, mut val) in old {
                    self.apply_json(&mut val);
                    map.insert(self.apply(&k), val);
                }
            }
            _ => {}
        }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Overwrites every secret in binary data (a packet capture) with `*` bytes of the same
    /// length, so that the file's structure (record lengths) stays valid.
    pub fn mask_bytes(&self, bytes: &mut [u8]) {
        // Longest first: masking a shorter secret inside a longer one would leave its rest.
        let mut secrets: Vec<&String> = self.secrets.iter().collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            let needle = s.as_bytes();
            let mut i = 0;
            while i + needle.len() <= bytes.len() {
                if &bytes[i..i + needle.len()] == needle {
                    bytes[i..i + needle.len()].fill(b'*');
                    i += needle.len();
                } else {
                    i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_every_occurrence_and_ignores_trivial_values() {
        let mut r = Redactor::default();
        r.add("topsecret");
        r.add("ab");
        assert_eq!(r.apply("a topsecret, topsecret ab"), "a ***, *** ab");
    }

    #[test]
    fn masking_bytes_keeps_the_length() {
        let mut r = Redactor::default();
        r.add("hunter2");
        let mut data = b"\x00\xffpass=hunter2;hunter2\x01".to_vec();
        let len = data.len();
        r.mask_bytes(&mut data);
        assert_eq!(data.len(), len);
        assert_eq!(&data[2..], b"pass=*******;*******\x01");
    }

    #[test]
    fn json_strings_and_keys_are_redacted_numbers_kept() {
        let mut r = Redactor::default();
        r.add("hunter22");
        let mut v = serde_json::json!({"a": ["x hunter22", 7], "hunter22": {"b": "hunter22"}});
        r.apply_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["x ***", 7], "***": {"b": "***"}})
        );
    }

    #[test]
    fn overlapping_secrets_are_fully_hidden() {
        let mut r = Redactor::default();
        r.add("secret");
        r.add("secret-long-value");
        assert_eq!(r.apply("x secret-long-value y"), "x *** y");
    }
}
