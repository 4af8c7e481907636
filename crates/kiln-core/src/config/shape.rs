//! The structure check: walks the YAML tree against the JSON Schema generated from
//! the model types and reports every unknown key, wrong type and missing key at
//! once, producing the JSON value the typed config is then read from.
//!
//! Driving it from the schema keeps the check, `kiln schema` and the serde types
//! from disagreeing. It understands the subset of JSON Schema schemars emits for
//! our types: `$ref`, `type` (one or several), `properties`, `required`,
//! `additionalProperties`, `items`, `anyOf`/`oneOf`, and integer `format`s.

use serde_json::{Map, Value};

use super::diagnostic::Sink;
use super::node::{Loc, Node, NodeKind};

/// Check `root` against `schema`; the JSON form of the document when it fits.
pub(crate) fn check(root: &Node, schema: &Value, sink: &mut Sink<'_>) -> Option<Value> {
    if root.kind == NodeKind::Null {
        sink.error_hint(
            root.loc,
            "the config is empty",
            "a `kiln.yaml` needs at least `name` and `build.base`",
        );
        return None;
    }
    let walker = Walker { root: schema };
    walker.walk(root, schema, &Path::default(), root.loc, sink)
}

struct Walker<'s> {
    root: &'s Value,
}

/// Where in the document a node sits, for messages: `build.users[0].name`.
#[derive(Debug, Clone, Default)]
struct Path(String);

impl Path {
    fn key(&self, k: &str) -> Path {
        if self.0.is_empty() {
            Path(k.to_string())
        } else {
            Path(format!("{}.{k}", self.0))
        }
    }

    fn index(&self, i: usize) -> Path {
        Path(format!("{}[{i}]", self.0))
    }

    /// `in `build.setup`` or `at the top level`.
    fn place(&self) -> String {
        if self.0.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in `{}`", self.0)
        }
    }

    fn name(&self) -> String {
        if self.0.is_empty() {
            "the config".to_string()
        } else {
            format!("`{}`", self.0)
        }
    }
}

impl<'s> Walker<'s> {
    /// Follow `$ref`s to the schema they name.
    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        // Bounded, so a self-referencing `$ref` cannot loop forever.
        for _ in 0..32 {
            let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
                break;
            };
            let found = target
                .strip_prefix('#')
                .and_then(|pointer| self.root.pointer(pointer));
            match found {
                Some(s) => schema = s,
                None => break,
            }
        }
        schema
    }

    fn alternatives<'a>(&'a self, schema: &'a Value) -> Option<Vec<&'a Value>> {
        let alts = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))?
            .as_array()?;
        Some(alts.iter().map(|a| self.resolve(a)).collect())
    }

    /// The JSON types a schema accepts: `["string", "null"]`.
    fn types<'a>(&'a self, schema: &'a Value) -> Vec<&'a str> {
        let schema = self.resolve(schema);
        if let Some(alts) = self.alternatives(schema) {
            return alts.into_iter().flat_map(|a| self.types(a)).collect();
        }
        match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            // No constraint at all: anything goes.
            _ => vec![
                "string", "integer", "number", "boolean", "array", "object", "null",
            ],
        }
    }

    fn accepts_null(&self, schema: &Value) -> bool {
        self.types(schema).contains(&"null")
    }

    /// `a list or a mapping`.
    fn describe(&self, schema: &Value) -> String {
        let mut names: Vec<&str> = Vec::new();
        for t in self.types(schema) {
            let name = match t {
                "string" => "a string",
                "integer" => "an integer",
                "number" => "a number",
                "boolean" => "`true` or `false`",
                "array" => "a list",
                "object" => "a mapping",
                _ => continue,
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        match names.as_slice() {
            [] => "nothing".to_string(),
            [one] => (*one).to_string(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        }
    }

    /// `anchor` is where to point when something is missing inside this node: the
    /// key that holds it, which reads better than the first key of a block mapping.
    fn walk(
        &self,
        node: &Node,
        schema: &Value,
        path: &Path,
        anchor: Loc,
        sink: &mut Sink<'_>,
    ) -> Option<Value> {
        let schema = self.resolve(schema);
        if let Some(alts) = self.alternatives(schema) {
            return self.walk_any_of(node, schema, &alts, path, anchor, sink);
        }
        let types = self.types(schema);
        match &node.kind {
            NodeKind::Null if types.contains(&"null") => Some(Value::Null),
            NodeKind::Map(entries) if types.contains(&"object") => {
                self.walk_object(entries, schema, path, anchor, sink)
            }
            NodeKind::Seq(items) if types.contains(&"array") => {
                let item_schema = schema.get("items").unwrap_or(&Value::Bool(true));
                // A bad item is left out (and reported), so the rest can still be checked.
                let out = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        self.walk(item, item_schema, &path.index(i), item.loc, sink)
                    })
                    .collect();
                Some(Value::Array(out))
            }
            NodeKind::Scalar { text, typed } => self.scalar(node, text, *typed, schema, path, sink),
            other => {
                let found = other.describe();
                let message = format!(
                    "wrong type for {}: expected {}, found {found}",
                    path.name(),
                    self.describe(schema)
                );
                if *other == NodeKind::Null {
                    // An empty value has no text of its own to point at: point at its key.
                    sink.error_hint(anchor, message, "give a value, or remove the key");
                } else {
                    sink.error(node.loc, message);
                }
                None
            }
        }
    }

    fn walk_any_of(
        &self,
        node: &Node,
        schema: &Value,
        alts: &[&Value],
        path: &Path,
        anchor: Loc,
        sink: &mut Sink<'_>,
    ) -> Option<Value> {
        if node.kind == NodeKind::Null && alts.iter().any(|a| self.accepts_null(a)) {
            return Some(Value::Null);
        }
        let fits = |alt: &Value| {
            let types = self.types(alt);
            match &node.kind {
                NodeKind::Null => types.contains(&"null"),
                NodeKind::Map(_) => types.contains(&"object"),
                NodeKind::Seq(_) => types.contains(&"array"),
                NodeKind::Scalar { .. } => types
                    .iter()
                    .any(|t| matches!(*t, "string" | "integer" | "number" | "boolean")),
            }
        };
        let mut candidates: Vec<&Value> = alts.iter().copied().filter(|a| fits(a)).collect();
        // A quoted scalar means a string even when it looks like a number.
        if matches!(node.kind, NodeKind::Scalar { typed: false, .. }) {
            candidates.sort_by_key(|a| !self.types(a).contains(&"string"));
        }
        for alt in &candidates {
            let mut trial = sink.child();
            if let Some(v) = self.walk(node, alt, path, anchor, &mut trial)
                && trial.is_empty()
            {
                return Some(v);
            }
        }
        if let [only] = candidates.as_slice() {
            // The node is clearly meant as this alternative: report its own errors.
            return self.walk(node, only, path, anchor, sink);
        }
        sink.error(
            node.loc,
            format!(
                "wrong type for {}: expected {}, found {}",
                path.name(),
                self.describe(schema),
                node.kind.describe()
            ),
        );
        None
    }

    fn walk_object(
        &self,
        entries: &[(Node, Node)],
        schema: &Value,
        path: &Path,
        anchor: Loc,
        sink: &mut Sink<'_>,
    ) -> Option<Value> {
        let empty = Map::new();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let additional = schema.get("additionalProperties");
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        // Only a bad or missing required key makes the whole mapping unusable; a
        // bad optional key is left out (and reported) so the rest can be checked.
        let mut ok = true;
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for (key, value) in entries {
            let Some(k) = key.as_text() else {
                sink.error(
                    key.loc,
                    format!(
                        "keys must be strings, found {} {}",
                        key.kind.describe(),
                        path.place()
                    ),
                );
                continue;
            };
            if let Some((_, first)) = seen.iter().find(|(s, _)| *s == k) {
                sink.error_hint(
                    key.loc,
                    format!("duplicate key `{k}` {}", path.place()),
                    format!("it is already set on line {first}; remove one of them"),
                );
                continue;
            }
            seen.push((k, key.loc.line));
            let value_schema = match properties.get(k) {
                Some(s) => s,
                None => match additional {
                    Some(Value::Bool(false)) => {
                        self.unknown_key(key, k, properties, path, sink);
                        continue;
                    }
                    Some(s) => s,
                    None => &Value::Bool(true),
                },
            };
            // `packages:` with nothing under it reads as if the key were absent.
            if value.kind == NodeKind::Null
                && properties.contains_key(k)
                && !required.contains(&k)
                && !self.accepts_null(value_schema)
            {
                continue;
            }
            match self.walk(value, value_schema, &path.key(k), key.loc, sink) {
                Some(v) => {
                    out.insert(k.to_string(), v);
                }
                None if required.contains(&k) => ok = false,
                None => {}
            }
        }
        for r in &required {
            if !seen.iter().any(|(s, _)| s == r) {
                let message = if path.0.is_empty() {
                    format!("missing required key `{r}`")
                } else {
                    format!("missing required key `{r}` {}", path.place())
                };
                sink.error(anchor, message);
                ok = false;
            }
        }
        ok.then_some(Value::Object(out))
    }

    fn unknown_key(
        &self,
        key: &Node,
        k: &str,
        properties: &Map<String, Value>,
        path: &Path,
        sink: &mut Sink<'_>,
    ) {
        let message = format!("unknown key `{k}` {}", path.place());
        let names: Vec<&str> = properties.keys().map(String::as_str).collect();
        let hint = match suggest(k, &names) {
            Some(s) => format!("did you mean `{s}`?"),
            None => {
                let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                format!("expected one of {}", list.join(", "))
            }
        };
        sink.error_hint(key.loc, message, hint);
    }

    fn scalar(
        &self,
        node: &Node,
        text: &str,
        typed: bool,
        schema: &Value,
        path: &Path,
        sink: &mut Sink<'_>,
    ) -> Option<Value> {
        let types = self.types(schema);
        // Quoted text fills a string field as is, even if it looks like a number.
        if types.contains(&"string") && !typed {
            return self.string(node, text, schema, path, sink);
        }
        if types.contains(&"integer") {
            match parse_integer(text) {
                Some(n) => {
                    let (min, max) = integer_range(schema);
                    if n < min || n > max {
                        sink.error(
                            node.loc,
                            format!(
                                "`{text}` is out of range for {}: expected {min} to {max}",
                                path.name()
                            ),
                        );
                        return None;
                    }
                    return Some(if n < 0 {
                        Value::from(i64::try_from(n).ok()?)
                    } else {
                        Value::from(u64::try_from(n).ok()?)
                    });
                }
                None if !types.contains(&"string") => {
                    sink.error(
                        node.loc,
                        format!(
                            "wrong type for {}: expected {}, found `{text}`",
                            path.name(),
                            self.describe(schema)
                        ),
                    );
                    return None;
                }
                None => {}
            }
        }
        if types.contains(&"boolean") {
            match text {
                "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
                "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
                _ if !types.contains(&"string") => {
                    sink.error(
                        node.loc,
                        format!(
                            "wrong type for {}: expected `true` or `false`, found `{text}`",
                            path.name()
                        ),
                    );
                    return None;
                }
                _ => {}
            }
        }
        if types.contains(&"string") {
            return self.string(node, text, schema, path, sink);
        }
        if types.contains(&"number")
            && let Ok(f) = text.parse::<f64>()
        {
            return serde_json::Number::from_f64(f).map(Value::Number);
        }
        sink.error(
            node.loc,
            format!(
                "wrong type for {}: expected {}, found `{text}`",
                path.name(),
                self.describe(schema)
            ),
        );
        None
    }
}

impl Walker<'_> {
    /// A string value: one of the schema's `enum` values when it lists them,
    /// and never holding a NUL, which no variable, argument or path can.
    fn string(
        &self,
        node: &Node,
        text: &str,
        schema: &Value,
        path: &Path,
        sink: &mut Sink<'_>,
    ) -> Option<Value> {
        if text.contains('\0') {
            sink.error_hint(
                node.loc,
                format!("{} contains a NUL character", path.name()),
                "no variable, argument or path can hold one: remove it",
            );
            return None;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            if !names.contains(&text) {
                let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                let message = format!(
                    "invalid value `{text}` for {}: expected one of {}",
                    path.name(),
                    list.join(", ")
                );
                match suggest(text, &names) {
                    Some(s) => sink.error_hint(node.loc, message, format!("did you mean `{s}`?")),
                    None => sink.error(node.loc, message),
                }
                return None;
            }
        }
        Some(Value::String(text.to_string()))
    }
}

/// A decimal integer as YAML writes one (`1000`, `+5`, `-1`, `1_000` is not one).
fn parse_integer(text: &str) -> Option<i128> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.strip_prefix('+').unwrap_or(text).parse().ok()
}

/// The range an integer schema allows, from schemars' `format` and bounds.
fn integer_range(schema: &Value) -> (i128, i128) {
    let (mut min, mut max) = match schema.get("format").and_then(Value::as_str) {
        Some("uint8") => (0, i128::from(u8::MAX)),
        Some("uint16") => (0, i128::from(u16::MAX)),
        Some("uint32") => (0, i128::from(u32::MAX)),
        Some("uint64" | "uint") => (0, i128::from(u64::MAX)),
        Some("int8") => (i128::from(i8::MIN), i128::from(i8::MAX)),
        Some("int16") => (i128::from(i16::MIN), i128::from(i16::MAX)),
        Some("int32") => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(u64::MAX)),
    };
    if let Some(m) = schema.get("minimum").and_then(Value::as_i64) {
        min = min.max(i128::from(m));
    }
    if let Some(m) = schema.get("maximum").and_then(Value::as_u64) {
        max = max.min(i128::from(m));
    }
    (min, max)
}

/// The known name closest to a misspelt one, when it is close enough to be meant:
/// at most one edit (a transposition counts as one) per three characters.
pub(crate) fn suggest<'a>(wrong: &str, known: &[&'a str]) -> Option<&'a str> {
    let allowed = (wrong.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(wrong, k), *k))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let known = ["packages", "commands"];
        assert_eq!(suggest("pakages", &known), Some("packages"));
        assert_eq!(suggest("comands", &known), Some("commands"));
        assert_eq!(suggest("zzz", &known), None);
        assert_eq!(suggest("dve", &["dev", "root"]), Some("dev"));
        assert_eq!(suggest("x", &["dev", "root"]), None);
    }

    #[test]
    fn integers_are_decimal() {
        assert_eq!(parse_integer("1000"), Some(1000));
        assert_eq!(parse_integer("+7"), Some(7));
        assert_eq!(parse_integer("-1"), Some(-1));
        assert_eq!(parse_integer("1.5"), None);
        assert_eq!(parse_integer("0x10"), None);
        assert_eq!(parse_integer(""), None);
    }
}
