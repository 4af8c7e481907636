//! A YAML document as a tree of nodes that remember where they came from, so
//! every later check can point at the exact line and column it complains about.
//!
//! serde-saphyr parses; its `Spanned<T>` gives each node's location. Scalars keep
//! their source text (`0644` stays `0644`, not the number 644) because the
//! expected type, not YAML's guess, decides what a scalar means in `kiln.yaml`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter, Spanned};

/// Where a node starts in the file: 1-based line and column (in characters), and
/// how many characters to underline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: usize,
    pub column: usize,
    pub len: usize,
    /// Which file of a habitat's sources the node is in: 0 is its
    /// `kiln.yaml`, the others are its included fragments (`include.rs`).
    pub file: u16,
}

/// One YAML node and its location.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub loc: Loc,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null` or nothing at all.
    Null,
    /// Any other scalar, as written. `typed` is true when YAML would read the plain
    /// scalar as a number or boolean: only such scalars may fill number and
    /// boolean fields (a quoted `"3000"` is a string).
    Scalar {
        text: String,
        typed: bool,
    },
    Seq(Vec<Node>),
    /// Entries in file order; duplicate keys are kept so they can be reported.
    Map(Vec<(Node, Node)>),
}

impl NodeKind {
    /// How the user would name this kind of node in an error message.
    pub fn describe(&self) -> &'static str {
        match self {
            NodeKind::Null => "nothing",
            NodeKind::Scalar { .. } => "a scalar",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value at a path of map keys and list indexes below this node.
    pub fn get(&self, path: &[Seg<'_>]) -> Option<&Node> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let child = match (&self.kind, first) {
            (NodeKind::Map(entries), Seg::Key(k)) => entries
                .iter()
                .rev() // the last of duplicate keys wins, as in the typed config
                .find(|(key, _)| key.as_text() == Some(k))
                .map(|(_, v)| v),
            (NodeKind::Seq(items), Seg::Index(i)) => items.get(*i),
            _ => None,
        }?;
        child.get(rest)
    }

    /// The key node of the entry at `path` (for pointing at `key:` rather than its
    /// value), or the node itself for list items.
    pub fn get_key(&self, path: &[Seg<'_>]) -> Option<&Node> {
        let (last, parent) = path.split_last()?;
        let parent = self.get(parent)?;
        match (&parent.kind, last) {
            (NodeKind::Map(entries), Seg::Key(k)) => entries
                .iter()
                .rev()
                .find(|(key, _)| key.as_text() == Some(k))
                .map(|(key, _)| key),
            (NodeKind::Seq(items), Seg::Index(i)) => items.get(*i),
            _ => None,
        }
    }
}

/// One step of a path into the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

impl From<usize> for Seg<'_> {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

impl<'a> From<&'a str> for Seg<'a> {
    fn from(k: &'a str) -> Self {
        Seg::Key(k)
    }
}

/// The lines of `text` as YAML counts them, and so as every [`Loc`] does: a
/// line ends at CR LF, LF or a lone CR (where [`str::lines`] sees no end).
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest.take().filter(|t| !t.is_empty())?;
        match text.find(['\r', '\n']) {
            Some(at) => {
                let skip = if text[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
            None => Some(text),
        }
    })
}

/// A YAML syntax error, located.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub loc: Loc,
    pub message: String,
    /// The text may be valid YAML, but more than the parser reads: its
    /// limits guard against documents built to exhaust memory (aliases of
    /// aliases), and no config written by hand comes near them.
    pub too_large: bool,
}

impl SyntaxError {
    /// The message and hint a user is shown: the parser's messages that
    /// speak to its API rather than the user reworded.
    pub fn worded(&self) -> (String, Option<String>) {
        if self.too_large {
            return (self.message.clone(), None);
        }
        let (message, hint) = if self.message.contains("multiple YAML documents") {
            (
                "more than one YAML document".to_string(),
                Some("a `kiln.yaml` holds one document: remove the `---` separator"),
            )
        } else if self.message.contains("tabs disallowed") {
            (self.message.clone(), Some("indent with spaces, not tabs"))
        } else {
            (self.message.clone(), None)
        };
        (format!("invalid YAML: {message}"), hint.map(str::to_string))
    }
}

/// How deep a `kiln.yaml` may nest. The deepest key of the schema is five
/// levels down (`instances.members.NAME.env.KEY`); the parser's own limit
/// (64) lets a document recurse deeper than a 2 MiB thread's stack holds in
/// a debug build, and a base habitat is loaded on such a thread.
const MAX_DEPTH: usize = 32;

/// The parser's limits: its defaults, but for the depth.
fn budget() -> serde_saphyr::Budget {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget
}

/// What a breached parser limit means, in the user's words.
fn too_large(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let limits = budget();
    match breach {
        B::Nodes { .. } => format!(
            "the config is too large: more than {} values",
            limits.max_nodes
        ),
        B::Events { .. } => format!(
            "the config is too large: more than {} YAML events",
            limits.max_events
        ),
        B::Depth { .. } => format!(
            "the config nests too deeply: more than {} levels",
            limits.max_depth
        ),
        B::ScalarBytes { .. } => format!(
            "the config's values are too large: more than {} bytes in all",
            limits.max_total_scalar_bytes
        ),
        B::Aliases { .. } | B::AliasAnchorRatio { .. } => {
            "the config uses too many aliases (`*name`)".to_string()
        }
        B::Anchors { .. } => "the config defines too many anchors (`&name`)".to_string(),
        B::MergeKeys { .. } => "the config uses too many merge keys (`<<`)".to_string(),
        _ => "the config is too large to read".to_string(),
    }
}

/// Parse YAML text into a located node tree.
pub fn parse_yaml(text: &str) -> Result<Node, SyntaxError> {
    // Duplicate keys reach the tree so the structure check can report them along
    // with everything else instead of stopping the parse at the first one.
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        budget: Some(budget()),
    };
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(raw) => Ok(convert(raw, text)),
        Err(err) => {
            let loc = err
                .location()
                .map(|l| Loc {
                    line: to_usize(l.line()),
                    column: to_usize(l.column()),
                    len: 1,
                    file: 0,
                })
                .filter(|l| l.line > 0)
                .unwrap_or(Loc {
                    line: 1,
                    column: 1,
                    len: 1,
                    file: 0,
                });
            if let serde_saphyr::Error::Budget { breach, .. } = err.without_snippet() {
                return Err(SyntaxError {
                    loc,
                    message: too_large(breach),
                    too_large: true,
                });
            }
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(err.without_snippet())
                .into_owned();
            Err(SyntaxError {
                loc,
                message: message.trim().to_string(),
                too_large: false,
            })
        }
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// What serde-saphyr hands over before the scalars get their source text back.
enum Raw {
    Null,
    Str(String),
    /// A number or boolean, as YAML guessed; the source text replaces it.
    Typed,
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_i128<E>(self, _: i128) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_u128<E>(self, _: u128) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
        Ok(Raw::Typed)
    }

    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        Ok(Raw::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

/// The source text a location covers, when serde-saphyr knows its bytes.
fn source_slice(loc: &Location, text: &str) -> Option<String> {
    let span = loc.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    text.get(start..start.checked_add(len)?).map(str::to_string)
}

fn convert(raw: Spanned<Raw>, text: &str) -> Node {
    let Spanned {
        value,
        referenced,
        defined,
    } = raw;
    let written = source_slice(&referenced, text).unwrap_or_default();
    let first_line_len = lines(&written).next().map_or(0, |l| l.chars().count());
    let mut loc = Loc {
        line: to_usize(referenced.line()),
        column: to_usize(referenced.column()),
        len: first_line_len.max(1),
        file: 0,
    };
    let kind = match value {
        Raw::Null => NodeKind::Null,
        Raw::Str(s) => NodeKind::Scalar {
            text: s,
            typed: false,
        },
        Raw::Typed => {
            // `defined` is the anchored scalar itself when this one is an alias.
            let text = source_slice(&defined, text).unwrap_or(written);
            NodeKind::Scalar {
                text: text.trim().to_string(),
                typed: true,
            }
        }
        Raw::Seq(items) => {
            loc.len = 1;
            NodeKind::Seq(items.into_iter().map(|i| convert(i, text)).collect())
        }
        Raw::Map(entries) => {
            loc.len = 1;
            NodeKind::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (convert(k, text), convert(v, text)))
                    .collect(),
            )
        }
    };
    Node { loc, kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(n: &Node) -> (&str, bool) {
        match &n.kind {
            NodeKind::Scalar { text, typed } => (text, *typed),
            other => panic!("not a scalar: {other:?}"),
        }
    }

    #[test]
    fn scalars_keep_their_source_text() {
        let root = parse_yaml("a: 0644\nb: \"0644\"\nc: 3000\nd: yes\ne:\nf: ~\n").unwrap();
        assert_eq!(scalar(root.get(&["a".into()]).unwrap()), ("0644", true));
        assert_eq!(scalar(root.get(&["b".into()]).unwrap()), ("0644", false));
        assert_eq!(scalar(root.get(&["c".into()]).unwrap()), ("3000", true));
        assert_eq!(scalar(root.get(&["d".into()]).unwrap()).0, "yes");
        assert_eq!(root.get(&["e".into()]).unwrap().kind, NodeKind::Null);
        assert_eq!(root.get(&["f".into()]).unwrap().kind, NodeKind::Null);
    }

    #[test]
    fn nodes_know_their_line_and_column() {
        let root = parse_yaml("build:\n  setup:\n    pakages: [a, bb]\n").unwrap();
        let key = root
            .get_key(&["build".into(), "setup".into(), "pakages".into()])
            .unwrap();
        assert_eq!(
            key.loc,
            Loc {
                line: 3,
                column: 5,
                len: 7,
                file: 0,
            }
        );
        let bb = root
            .get(&[
                "build".into(),
                "setup".into(),
                "pakages".into(),
                1usize.into(),
            ])
            .unwrap();
        assert_eq!(
            bb.loc,
            Loc {
                line: 3,
                column: 18,
                len: 2,
                file: 0,
            }
        );
    }

    #[test]
    fn aliases_resolve_to_the_anchored_text() {
        let root = parse_yaml("a: &m 0755\nb: *m\n").unwrap();
        let b = root.get(&["b".into()]).unwrap();
        assert_eq!(scalar(b), ("0755", true));
        assert_eq!(b.loc.line, 2);
    }

    #[test]
    fn duplicate_keys_are_kept() {
        let root = parse_yaml("a: 1\na: 2\n").unwrap();
        let NodeKind::Map(entries) = &root.kind else {
            panic!("not a map")
        };
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn lines_end_where_yaml_ends_them() {
        let split = |t| lines(t).collect::<Vec<_>>();
        assert_eq!(split("a\nb\r\nc\rd"), ["a", "b", "c", "d"]);
        assert_eq!(split("a\n\nb\n"), ["a", "", "b"]);
        assert_eq!(split(""), Vec::<&str>::new());
        assert_eq!(split("\r\r\n"), ["", ""]);
    }

    #[test]
    fn syntax_errors_are_located() {
        let err = parse_yaml("x: \"abc\n").unwrap_err();
        assert_eq!(err.loc.line, 1);
        assert_eq!(err.loc.column, 4);
        assert_eq!(err.message, "unclosed quote");
    }
}
