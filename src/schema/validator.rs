//! The structural-schema walker: what the API server (and kubectl-validate) enforce.
//!
//! The walk is driven by the *value*: every field present is checked against the schema node for
//! it, so recursive `$ref`s cannot loop. Rules, in the order applied at each node:
//! `$ref` (followed), CEL rules (recorded as not evaluated), `nullable`, `type` (or
//! `x-kubernetes-int-or-string`; a mismatch stops the descent), `allOf`/`anyOf`/`oneOf`/`not`
//! (value validations; in a CRD their branches never reject unknown fields), `enum`, then per type: string
//! lengths, `pattern` and a few `format`s; numeric bounds and `int32`/`int64` ranges; array
//! lengths, `items`, uniqueness (`uniqueItems`, and `x-kubernetes-list-type` set/map in CRDs);
//! object `properties`, `additionalProperties`, `required`, property counts, and unknown fields.
//! A `null` is accepted where the schema is `nullable`, and anywhere in a built-in kind (Go
//! decodes it to a zero value); in a CRD a non-nullable `null` is reported, because the API
//! server drops the field.
//!
//! Unknown fields are rejected unless the node has `x-kubernetes-preserve-unknown-fields: true`
//! or `additionalProperties` allows them. The two dialects differ in one place: in Kubernetes'
//! own OpenAPI a `type: object` without `properties`/`additionalProperties` is free-form
//! (RawExtension, FieldsV1), in a CRD it is an object whose every field would be pruned.

use super::set::{Ctx, Origin, SchemaSet};
use super::{Gvk, NotEvaluated, Report, Unchecked, Violation};
use crate::scenario::path::FieldPath;
use base64::Engine as _;
use serde_json::{Map, Value};

impl SchemaSet {
    /// Validates one Kubernetes object (a manifest document as JSON).
    pub fn validate(&self, doc: &Value) -> Vec<Violation> {
        self.check(doc).violations
    }

    /// Validates one object and also reports what was not evaluated and which schema was used.
    pub fn check(&self, doc: &Value) -> Report {
        let root = FieldPath::root();
        let mut w = Walker {
            set: self,
            out: Vec::new(),
            unchecked: Vec::new(),
        };
        let provider = match doc.as_object() {
            None => {
                w.fail(
                    &root,
                    format!("a manifest must be a mapping, got {}", describe(doc)),
                );
                None
            }
            Some(m) => self.check_object(&mut w, doc, m),
        };
        let mut not_evaluated = w.unchecked;
        not_evaluated.sort();
        not_evaluated.dedup();
        let mut violations = w.out;
        violations.dedup();
        Report {
            violations,
            not_evaluated,
            provider,
        }
    }
}

impl SchemaSet {
    /// Picks the schema by apiVersion/kind and walks the document; returns the provider used.
    fn check_object(
        &self,
        w: &mut Walker<'_>,
        doc: &Value,
        m: &Map<String, Value>,
    ) -> Option<String> {
        let root = FieldPath::root();
        let api_version = type_meta(w, m, "apiVersion");
        let kind = type_meta(w, m, "kind");
        let (av, kind) = (api_version?, kind?);
        let Some(gvk) = Gvk::from_api_version(av, kind) else {
            w.fail(
                &root.key("apiVersion"),
                format!("malformed apiVersion {av:?}"),
            );
            return None;
        };
        let Some(c) = self.candidate(&gvk) else {
            let known = self.versions_of(&gvk.group, &gvk.kind);
            let hint = if known.is_empty() {
                String::new()
            } else {
                format!(" (known versions of this kind: {})", known.join(", "))
            };
            w.fail(
                &root.key("apiVersion"),
                format!("no schema for {gvk}{hint}"),
            );
            return None;
        };
        w.node(
            doc,
            c.schema(),
            &c.ctx,
            &root,
            Mode {
                strict: true,
                object_root: true,
            },
        );
        Some(c.provider.clone())
    }
}

fn type_meta<'v>(w: &mut Walker<'_>, m: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    let p = FieldPath::root().key(key);
    match m.get(key) {
        None => {
            w.fail(&p, "required field missing");
            None
        }
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(v) => {
            w.fail(
                &p,
                format!("must be a non-empty string, got {}", describe(v)),
            );
            None
        }
    }
}

#[derive(Clone, Copy)]
struct Mode {
    /// Reject fields the schema does not name. Off inside CRD junctor branches, which only
    /// constrain values.
    strict: bool,
    /// The node is an object's root (the document, or an embedded resource): `apiVersion`,
    /// `kind` and `metadata` are implicit, and `metadata` is checked as ObjectMeta.
    object_root: bool,
}

struct Walker<'s> {
    set: &'s SchemaSet,
    out: Vec<Violation>,
    unchecked: Vec<NotEvaluated>,
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool) == Some(true)
}

fn is_integer(v: &Value) -> bool {
    v.is_i64()
        || v.is_u64()
        || v.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

fn type_matches(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        // An unknown type name is a schema problem, not the manifest's.
        _ => true,
    }
}

/// `string "ninety"`, `integer 5`, `object`, … for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) if is_integer(v) => format!("integer {n}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let short: String = s.chars().take(60).collect();
            let ell = if short.len() < s.len() { "…" } else { "" };
            format!("string {:?}{ell}", short)
        }
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

impl<'s> Walker<'s> {
    fn fail(&mut self, at: &FieldPath, msg: impl Into<String>) {
        self.out.push(Violation::new(at, msg));
    }

    /// Follows `$ref` chains in the node's OpenAPI document.
    fn resolve<'a>(&mut self, s: &'a Value, ctx: &'a Ctx, at: &FieldPath) -> Option<&'a Value> {
        let mut cur = s;
        for _ in 0..32 {
            let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
                return Some(cur);
            };
            match r
                .strip_prefix("#/components/schemas/")
                .and_then(|n| ctx.refs.get(n))
            {
                Some(next) => cur = next,
                None => {
                    self.fail(
                        at,
                        format!("cannot check: schema reference {r} does not resolve"),
                    );
                    return None;
                }
            }
        }
        self.fail(at, "cannot check: schema references loop");
        None
    }

    /// Runs `s` on `v` in a scratch walker; returns its violations (CEL notes are kept).
    fn trial(
        &mut self,
        v: &Value,
        s: &Value,
        ctx: &Ctx,
        at: &FieldPath,
        mode: Mode,
    ) -> Vec<Violation> {
        let mut w = Walker {
            set: self.set,
            out: Vec::new(),
            unchecked: Vec::new(),
        };
        w.node(v, s, ctx, at, mode);
        self.unchecked.append(&mut w.unchecked);
        w.out
    }

    fn node(&mut self, v: &Value, s: &Value, ctx: &Ctx, at: &FieldPath, mode: Mode) {
        let Some(s) = self.resolve(s, ctx, at) else {
            return;
        };
        let Some(schema) = s.as_object() else { return };

        if let Some(rules) = schema
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            for r in rules {
                if let Some(rule) = r.get("rule").and_then(Value::as_str) {
                    let message = r.get("message").and_then(Value::as_str).map(str::to_string);
                    self.unchecked.push(NotEvaluated {
                        path: super::render_path(at),
                        what: Unchecked::CelRule {
                            rule: rule.to_string(),
                            message,
                        },
                    });
                }
            }
        }

        let int_or_string = flag(s, "x-kubernetes-int-or-string");
        let ty = schema.get("type").and_then(Value::as_str);
        if v.is_null() {
            // Go decodes null into a zero value for built-in kinds; a CRD needs `nullable`.
            if flag(s, "nullable") || ctx.origin == Origin::BuiltIn {
                return;
            }
            if int_or_string {
                self.fail(at, "must be an integer or a string, got null");
                return;
            }
            if let Some(t) = ty {
                self.fail(
                    at,
                    format!("must be of type {t}, got null (not nullable: the API server drops the field)"),
                );
                return;
            }
        }

        if int_or_string {
            if !(is_integer(v) || v.is_string()) {
                self.fail(
                    at,
                    format!("must be an integer or a string, got {}", describe(v)),
                );
                return;
            }
        } else if let Some(t) = ty {
            if !type_matches(t, v) {
                self.fail(at, format!("must be of type {t}, got {}", describe(v)));
                return;
            }
        }

        // Junctors. In Kubernetes' OpenAPI, `allOf: [{$ref}]` is how a field names its type,
        // so its branch is checked in full; in a CRD junctors only add value validations.
        let branch_mode = Mode {
            strict: mode.strict && ctx.origin == Origin::BuiltIn,
            object_root: false,
        };
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for b in all {
                self.node(v, b, ctx, at, branch_mode);
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
            let results: Vec<Vec<Violation>> = any
                .iter()
                .map(|b| self.trial(v, b, ctx, at, branch_mode))
                .collect();
            if !results.iter().any(Vec::is_empty) {
                self.fail(
                    at,
                    format!(
                        "matches none of the anyOf alternatives: {}",
                        summarize(any, &results)
                    ),
                );
            }
        }
        if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
            let results: Vec<Vec<Violation>> = one
                .iter()
                .map(|b| self.trial(v, b, ctx, at, branch_mode))
                .collect();
            let passing: Vec<usize> = (0..results.len())
                .filter(|i| results[*i].is_empty())
                .collect();
            match passing.len() {
                1 => {}
                0 => self.fail(
                    at,
                    format!(
                        "matches none of the oneOf alternatives: {}",
                        summarize(one, &results)
                    ),
                ),
                n => {
                    let which: Vec<String> =
                        passing.iter().map(|i| branch_name(&one[*i], *i)).collect();
                    self.fail(
                        at,
                        format!(
                            "matches {n} oneOf alternatives ({}); exactly one is allowed",
                            which.join("; ")
                        ),
                    )
                }
            }
        }
        if let Some(not) = schema.get("not") {
            if self.trial(v, not, ctx, at, branch_mode).is_empty() {
                self.fail(at, format!("must not match: {}", branch_name(not, 0)));
            }
        }

        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            if !v.is_null() && !options.iter().any(|o| json_eq(o, v)) {
                let list: Vec<String> = options.iter().map(Value::to_string).collect();
                let shown = match v {
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => v.to_string(),
                    _ => describe(v),
                };
                self.fail(
                    at,
                    format!(
                        "unsupported value {shown}: supported values: {}",
                        list.join(", ")
                    ),
                );
            }
        }

        match v {
            Value::String(text) => self.string(text, schema, at),
            Value::Number(_) => self.number(v, schema, at),
            Value::Array(items) => self.array(items, schema, ctx, at, mode),
            Value::Object(fields) => self.object(fields, schema, ctx, at, mode),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn string(&mut self, text: &str, s: &Map<String, Value>, at: &FieldPath) {
        let len = text.chars().count() as u64;
        if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
            if len < min {
                self.fail(
                    at,
                    format!("must be at least {min} characters long, got {len}"),
                );
            }
        }
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                self.fail(
                    at,
                    format!("may be at most {max} characters long, got {len}"),
                );
            }
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            match self.set.regex(p) {
                Ok(re) => {
                    if !re.is_match(text) {
                        self.fail(at, format!("{text:?} does not match pattern {p}"));
                    }
                }
                Err(reason) => self.unchecked.push(NotEvaluated {
                    path: super::render_path(at),
                    what: Unchecked::Pattern {
                        pattern: p.to_string(),
                        reason,
                    },
                }),
            }
        }
        match s.get("format").and_then(Value::as_str) {
            Some("byte")
                if base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .is_err() =>
            {
                self.fail(at, "must be base64 (format byte)")
            }
            Some("ipv4") if !text.is_empty() && text.parse::<std::net::Ipv4Addr>().is_err() => {
                self.fail(at, format!("{text:?} is not an IPv4 address"))
            }
            Some("ipv6") if !text.is_empty() && text.parse::<std::net::Ipv6Addr>().is_err() => {
                self.fail(at, format!("{text:?} is not an IPv6 address"))
            }
            _ => {}
        }
    }

    fn number(&mut self, v: &Value, s: &Map<String, Value>, at: &FieldPath) {
        let Some(x) = v.as_f64() else { return };
        // OpenAPI 3.0: exclusiveMinimum/Maximum are booleans qualifying minimum/maximum.
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            let excl = s.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
            if x < min || (excl && x == min) {
                let op = if excl { ">" } else { ">=" };
                self.fail(at, format!("must be {op} {min}, got {v}"));
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            let excl = s.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
            if x > max || (excl && x == max) {
                let op = if excl { "<" } else { "<=" };
                self.fail(at, format!("must be {op} {max}, got {v}"));
            }
        }
        if let Some(m) = s.get("multipleOf").and_then(Value::as_f64) {
            if m > 0.0 && (x / m).fract() != 0.0 {
                self.fail(at, format!("must be a multiple of {m}, got {v}"));
            }
        }
        let range = match s.get("format").and_then(Value::as_str) {
            Some("int32") => Some((i32::MIN as f64, i32::MAX as f64, "int32")),
            Some("int64") => Some((i64::MIN as f64, i64::MAX as f64, "int64")),
            _ => None,
        };
        if let Some((lo, hi, name)) = range {
            if x < lo || x > hi {
                self.fail(at, format!("{v} does not fit in {name}"));
            }
        }
    }

    fn array(
        &mut self,
        items: &[Value],
        s: &Map<String, Value>,
        ctx: &Ctx,
        at: &FieldPath,
        mode: Mode,
    ) {
        let n = items.len() as u64;
        if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
            if n < min {
                self.fail(at, format!("must have at least {min} items, got {n}"));
            }
        }
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64) {
            if n > max {
                self.fail(at, format!("may have at most {max} items, got {n}"));
            }
        }
        if let Some(item_schema) = s.get("items").filter(|i| i.is_object()) {
            let item_mode = Mode {
                strict: mode.strict,
                object_root: false,
            };
            for (i, x) in items.iter().enumerate() {
                self.node(x, item_schema, ctx, &at.index(i), item_mode);
            }
        }
        let list_type = if ctx.origin == Origin::Crd {
            s.get("x-kubernetes-list-type").and_then(Value::as_str)
        } else {
            None
        };
        if s.get("uniqueItems").and_then(Value::as_bool) == Some(true) || list_type == Some("set") {
            for (i, x) in items.iter().enumerate() {
                if items[..i].iter().any(|y| json_eq(x, y)) {
                    self.fail(&at.index(i), format!("duplicate value: {}", x));
                }
            }
        }
        if list_type == Some("map") {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !keys.is_empty() {
                let key_of = |x: &Value| {
                    keys.iter()
                        .map(|k| x.get(*k).cloned().unwrap_or(Value::Null))
                        .collect::<Vec<_>>()
                };
                for (i, x) in items.iter().enumerate() {
                    let kx = key_of(x);
                    if items[..i]
                        .iter()
                        .any(|y| key_of(y).iter().zip(&kx).all(|(a, b)| json_eq(a, b)))
                    {
                        let shown: Vec<String> = keys
                            .iter()
                            .zip(&kx)
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect();
                        self.fail(
                            &at.index(i),
                            format!("duplicate entry for key [{}]", shown.join(", ")),
                        );
                    }
                }
            }
        }
    }

    fn object(
        &mut self,
        fields: &Map<String, Value>,
        s: &Map<String, Value>,
        ctx: &Ctx,
        at: &FieldPath,
        mode: Mode,
    ) {
        let props = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        let preserve = s
            .get("x-kubernetes-preserve-unknown-fields")
            .and_then(Value::as_bool)
            == Some(true);
        let embedded = s
            .get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true);
        let structural = s.get("type").and_then(Value::as_str) == Some("object")
            || props.is_some()
            || additional.is_some();
        let free_form = ctx.origin == Origin::BuiltIn && props.is_none() && additional.is_none();
        let object_root = (mode.object_root && ctx.origin == Origin::Crd) || embedded;
        let child = Mode {
            strict: mode.strict,
            object_root: false,
        };

        if embedded {
            for k in ["apiVersion", "kind"] {
                if !fields.contains_key(k) {
                    self.fail(&at.key(k), "required field missing (embedded resource)");
                }
            }
        }
        for (k, x) in fields {
            let p = at.key(k);
            if object_root && k == "metadata" {
                self.metadata(x, &p);
                if let Some(ms) = props.and_then(|ps| ps.get(k)) {
                    // A CRD may restrict metadata.name; everything else is ObjectMeta's.
                    self.node(
                        x,
                        ms,
                        ctx,
                        &p,
                        Mode {
                            strict: false,
                            object_root: false,
                        },
                    );
                }
                continue;
            }
            if object_root
                && (k == "apiVersion" || k == "kind")
                && props.and_then(|ps| ps.get(k)).is_none()
            {
                if !x.is_string() {
                    self.fail(&p, format!("must be of type string, got {}", describe(x)));
                }
                continue;
            }
            if let Some(ps) = props.and_then(|ps| ps.get(k)) {
                self.node(x, ps, ctx, &p, child);
                continue;
            }
            match additional {
                Some(Value::Object(_)) => {
                    if let Some(a) = additional {
                        self.node(x, a, ctx, &p, child);
                    }
                }
                Some(Value::Bool(true)) => {}
                Some(Value::Bool(false)) if mode.strict => {
                    self.fail(&p, format!("unknown field {k:?}"))
                }
                _ => {
                    if mode.strict && structural && !preserve && !free_form {
                        let hint = props
                            .and_then(|ps| {
                                ps.keys()
                                    .map(|known| (edit_distance(k, known), known))
                                    .filter(|(d, _)| *d <= 2)
                                    .min()
                                    .map(|(_, known)| format!(" (did you mean {known:?}?)"))
                            })
                            .unwrap_or_default();
                        self.fail(&p, format!("unknown field {k:?}{hint}"));
                    }
                }
            }
        }
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                // A CRD's defaults are applied before validation; a built-in kind's `default`s
                // are Go zero values and its required fields are really required.
                let defaulted = ctx.origin == Origin::Crd
                    && props
                        .and_then(|ps| ps.get(r))
                        .is_some_and(|p| p.get("default").is_some());
                if !fields.contains_key(r) && !defaulted {
                    self.fail(&at.key(r), "required field missing");
                }
            }
        }
        let n = fields.len() as u64;
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
            if n < min {
                self.fail(at, format!("must have at least {min} fields, got {n}"));
            }
        }
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64) {
            if n > max {
                self.fail(at, format!("may have at most {max} fields, got {n}"));
            }
        }
    }

    fn metadata(&mut self, v: &Value, at: &FieldPath) {
        let set = self.set;
        match set.object_meta() {
            Some((ctx, meta)) => self.node(
                v,
                meta,
                ctx,
                at,
                Mode {
                    strict: true,
                    object_root: false,
                },
            ),
            None => {
                if !v.is_object() {
                    self.fail(at, format!("must be of type object, got {}", describe(v)));
                }
                self.unchecked.push(NotEvaluated {
                    path: super::render_path(at),
                    what: Unchecked::NoObjectMetaSchema,
                });
            }
        }
    }
}

/// A readable name for a junctor branch: `has field exact` for `{required: [exact]}`.
fn branch_name(b: &Value, i: usize) -> String {
    let only_required = b
        .as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("required"));
    if only_required {
        let names: Vec<&str> = b["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        return format!("has field {}", names.join(" and "));
    }
    if let Some(t) = b.get("type").and_then(Value::as_str) {
        if b.as_object().is_some_and(|m| m.len() == 1) {
            return format!("type {t}");
        }
    }
    if let Some(not) = b.get("not") {
        return format!("not ({})", branch_name(not, i));
    }
    if let Some(any) = b.get("anyOf").and_then(Value::as_array) {
        let parts: Vec<String> = any
            .iter()
            .enumerate()
            .map(|(j, x)| branch_name(x, j))
            .collect();
        return format!("any of [{}]", parts.join(", "));
    }
    format!("alternative {}", i + 1)
}

fn summarize(branches: &[Value], results: &[Vec<Violation>]) -> String {
    branches
        .iter()
        .zip(results)
        .enumerate()
        .map(|(i, (b, r))| {
            let first = r
                .first()
                .map(|v| format!("{}: {}", v.path, v.message))
                .unwrap_or_default();
            format!("[{}: {first}]", branch_name(b, i))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::validate_yaml_text;

    /// A CRD exercising every rule, plus a minimal OpenAPI document with ObjectMeta and one
    /// built-in kind, written to a temporary directory.
    const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.example.com }
spec:
  group: example.com
  names: { kind: Widget, plural: widgets }
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: { type: string }
            kind: { type: string }
            metadata: { type: object }
            spec:
              type: object
              required: [size, level]
              x-kubernetes-validations:
                - rule: self.size < 10
                  message: too big
              properties:
                size: { type: integer, minimum: 1, maximum: 5, exclusiveMaximum: true }
                port: { x-kubernetes-int-or-string: true, anyOf: [ { type: integer }, { type: string } ], pattern: '^[a-z]+$' }
                note: { type: string, nullable: true, maxLength: 3 }
                tag: { type: string, pattern: '^(?=x)' }
                ratio: { type: number }
                free: { type: object, x-kubernetes-preserve-unknown-fields: true, properties: { known: { type: boolean } } }
                anything: { x-kubernetes-preserve-unknown-fields: true }
                labels: { type: object, additionalProperties: { type: string } }
                empty: { type: object }
                tags: { type: array, items: { type: string }, x-kubernetes-list-type: set, maxItems: 2 }
                ports:
                  type: array
                  x-kubernetes-list-type: map
                  x-kubernetes-list-map-keys: [name]
                  items: { type: object, properties: { name: { type: string }, n: { type: integer } } }
                template:
                  type: object
                  x-kubernetes-embedded-resource: true
                  x-kubernetes-preserve-unknown-fields: true
                mode: { type: string, enum: [A, B] }
                level: { type: integer, default: 3 }
    - name: v0
      served: false
      storage: false
      schema: { openAPIV3Schema: { type: object } }
"#;

    const OPENAPI: &str = r##"{"components": {"schemas": {
      "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {"type": "object", "properties": {
          "name": {"type": "string"}, "namespace": {"type": "string"},
          "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}}}},
      "io.k8s.apimachinery.pkg.runtime.RawExtension": {"type": "object"},
      "io.k8s.api.core.v1.Thing": {"type": "object",
          "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Thing"}],
          "properties": {
            "apiVersion": {"type": "string"}, "kind": {"type": "string"},
            "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "default": {}},
            "raw": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.runtime.RawExtension"}]},
            "count": {"type": "integer", "format": "int32"},
            "broken": {"$ref": "#/components/schemas/nope"}}}}}}"##;

    fn set() -> SchemaSet {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("example")).expect("mkdir");
        std::fs::write(dir.path().join("example/widgets.yaml"), CRD).expect("write");
        std::fs::write(dir.path().join("core.json"), OPENAPI).expect("write");
        std::fs::write(dir.path().join("example/values.yaml"), "replicas: 1\n").expect("write");
        SchemaSet::load_dir(dir.path()).expect("load")
    }

    fn widget(spec: &str) -> Vec<String> {
        let text = format!(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {{ name: w }}\nspec: {spec}\n"
        );
        validate_yaml_text(&set(), &text)
            .into_iter()
            .map(|(_, v)| v.to_string())
            .collect()
    }

    #[test]
    fn a_valid_widget_passes_and_unserved_versions_are_unknown() {
        assert_eq!(widget("{ size: 2, port: 80, note: null, free: { known: true, extra: 1 }, anything: [1], labels: { a: b }, empty: {}, tags: [a, b], ports: [ { name: a }, { name: b } ], template: { apiVersion: v1, kind: Pod, metadata: { name: p }, spec: { x: 1 } }, mode: A, ratio: 1.5 }"), Vec::<String>::new());
        let s = set();
        assert!(s.is_known(&Gvk::new("example.com", "v1", "Widget")));
        assert!(!s.is_known(&Gvk::new("example.com", "v0", "Widget")));
        assert_eq!(
            s.providers(&Gvk::new("example.com", "v1", "Widget")),
            vec!["example/widgets.yaml"]
        );
    }

    #[test]
    fn each_rule_can_fail() {
        let cases: &[(&str, &str)] = &[
            ("{ port: 80 }", "spec.size: required field missing"),
            ("{ size: 0 }", "spec.size: must be >= 1, got 0"),
            ("{ size: 5 }", "spec.size: must be < 5, got 5"),
            (
                "{ size: 1.5 }",
                "spec.size: must be of type integer, got number 1.5",
            ),
            (
                "{ size: 1, port: true }",
                "spec.port: must be an integer or a string, got boolean true",
            ),
            (
                "{ size: 1, port: Http }",
                "spec.port: \"Http\" does not match pattern ^[a-z]+$",
            ),
            (
                "{ size: 1, note: abcd }",
                "spec.note: may be at most 3 characters long, got 4",
            ),
            (
                "{ size: 1, mode: C }",
                "spec.mode: unsupported value \"C\": supported values: \"A\", \"B\"",
            ),
            (
                "{ size: 1, mode: null }",
                "spec.mode: must be of type string, got null (not nullable: the API server drops the field)",
            ),
            (
                "{ size: 1, free: { known: 1 } }",
                "spec.free.known: must be of type boolean, got integer 1",
            ),
            (
                "{ size: 1, labels: { a: 1 } }",
                "spec.labels.a: must be of type string, got integer 1",
            ),
            (
                "{ size: 1, empty: { a: 1 } }",
                "spec.empty.a: unknown field \"a\"",
            ),
            (
                "{ size: 1, tags: [a, a] }",
                "spec.tags[1]: duplicate value: \"a\"",
            ),
            (
                "{ size: 1, tags: [a, b, c] }",
                "spec.tags: may have at most 2 items, got 3",
            ),
            (
                "{ size: 1, ports: [ { name: a, n: 1 }, { name: a, n: 2 } ] }",
                "spec.ports[1]: duplicate entry for key [name=\"a\"]",
            ),
            (
                "{ size: 1, template: { kind: Pod } }",
                "spec.template.apiVersion: required field missing (embedded resource)",
            ),
            (
                "{ size: 1, template: { apiVersion: v1, kind: Pod, metadata: { nam: x } } }",
                "spec.template.metadata.nam: unknown field \"nam\" (did you mean \"name\"?)",
            ),
            (
                "{ size: 1, sise: 2 }",
                "spec.sise: unknown field \"sise\" (did you mean \"size\"?)",
            ),
        ];
        for (spec, want) in cases {
            let got = widget(spec);
            assert!(
                got.iter().any(|g| g == want),
                "spec {spec}: want {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn metadata_of_a_custom_resource_is_object_meta() {
        let s = set();
        let text = "apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w, labels: { a: 1 }, lables: {} }\nspec: { size: 1 }\n";
        let got: Vec<String> = validate_yaml_text(&s, text)
            .into_iter()
            .map(|(_, v)| v.to_string())
            .collect();
        assert!(
            got.contains(&"metadata.labels.a: must be of type string, got integer 1".to_string()),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|g| g.starts_with("metadata.lables: unknown field")),
            "{got:?}"
        );
    }

    #[test]
    fn cel_rules_and_uncompilable_patterns_are_reported_not_passed() {
        let s = set();
        let doc = crate::scenario::manifest_yaml::manifest_documents(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w }\nspec: { size: 1, tag: x }\n",
        )
        .expect("yaml");
        let r = s.check(&doc[0]);
        assert!(r.is_valid(), "{:?}", r.violations);
        assert!(r.not_evaluated.iter().any(|n| n.path == "spec"
            && n.what
                == Unchecked::CelRule {
                    rule: "self.size < 10".into(),
                    message: Some("too big".into())
                }));
        assert!(r.not_evaluated.iter().any(|n| n.path == "spec.tag"
            && matches!(&n.what, Unchecked::Pattern { pattern, .. } if pattern == "^(?=x)")));
        assert_eq!(
            s.cel_rule_count(&Gvk::new("example.com", "v1", "Widget")),
            1
        );
    }

    #[test]
    fn built_in_dialect_refs_free_form_objects_and_nulls() {
        let s = set();
        let ok = "apiVersion: v1\nkind: Thing\nmetadata: { name: t, labels: null }\nraw: { anything: [1, 2] }\ncount: 3\n";
        assert_eq!(validate_yaml_text(&s, ok), vec![]);
        let bad = "apiVersion: v1\nkind: Thing\nmetadata: { name: t, nme: x }\ncount: 3000000000\nbroken: 1\nextra: 1\n";
        let got: Vec<String> = validate_yaml_text(&s, bad)
            .into_iter()
            .map(|(_, v)| v.to_string())
            .collect();
        for want in [
            "metadata.nme: unknown field \"nme\" (did you mean \"name\"?)",
            "count: 3000000000 does not fit in int32",
            "broken: cannot check: schema reference #/components/schemas/nope does not resolve",
            "extra: unknown field \"extra\"",
        ] {
            assert!(got.iter().any(|g| g == want), "want {want:?}, got {got:?}");
        }
    }

    #[test]
    fn load_errors_are_reported_not_panicked() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            SchemaSet::load_dir(&dir.path().join("missing")),
            Err(super::super::SchemaError::NotADirectory(_))
        ));
        assert!(matches!(
            SchemaSet::load_dir(dir.path()),
            Err(super::super::SchemaError::Empty(_))
        ));
        std::fs::write(dir.path().join("bad.yaml"), "a: [1,\n").expect("write");
        assert!(matches!(
            SchemaSet::load_dir(dir.path()),
            Err(super::super::SchemaError::Yaml { .. })
        ));
        std::fs::write(
            dir.path().join("bad.yaml"),
            "kind: CustomResourceDefinition\nspec: { group: g }\n",
        )
        .expect("write");
        assert!(matches!(
            SchemaSet::load_dir(dir.path()),
            Err(super::super::SchemaError::BadCrd { .. })
        ));
    }

    #[test]
    fn integers_may_be_written_as_integral_floats() {
        assert!(is_integer(&serde_json::json!(3)));
        assert!(is_integer(&serde_json::json!(3.0)));
        assert!(!is_integer(&serde_json::json!(3.5)));
        assert!(!is_integer(&serde_json::json!("3")));
    }

    #[test]
    fn enum_equality_compares_numbers_by_value() {
        assert!(json_eq(&serde_json::json!(1), &serde_json::json!(1.0)));
        assert!(!json_eq(&serde_json::json!("1"), &serde_json::json!(1)));
    }

    #[test]
    fn suggestions_use_edit_distance() {
        assert_eq!(edit_distance("htpp", "http"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("spec", "spec"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
