//! Dockerfile-style variable expansion (SPEC §2.1): `$NAME`, `${NAME}`,
//! `${NAME:-default}`, `${NAME:+alt}`, and `$$` for a literal `$`.
//!
//! Pure: a value is parsed once into [`Word`] parts, then either expanded
//! against a full environment (the build), or partly expanded against what is
//! known so far (the keys), which leaves every unknown reference written out
//! in one canonical spelling. `$` before anything that cannot start a name is
//! kept as it is, as Docker does. As in Docker, `:-` takes the default when
//! the variable is unset or empty, and `:+` the alternative when it is set
//! and not empty.

use std::fmt;

/// One piece of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var { name: String, op: Op },
}

/// What a reference does when its variable is unset (or empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `$NAME` or `${NAME}`.
    Plain,
    /// `${NAME:-word}`.
    Default(Word),
    /// `${NAME:+word}`.
    Alt(Word),
}

/// A parsed value: literal text and references, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Word(pub Vec<Part>);

/// Why a value cannot be parsed; `at` is the character offset of the `$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub at: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Parse `text` into its parts.
pub fn parse(text: &str) -> Result<Word, SyntaxError> {
    let chars: Vec<char> = text.chars().collect();
    let mut pos = 0;
    let word = parse_word(&chars, &mut pos, false)?;
    Ok(word)
}

/// Parse until the end, or (inside `${…}`) until the closing `}`.
fn parse_word(chars: &[char], pos: &mut usize, nested: bool) -> Result<Word, SyntaxError> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    while *pos < chars.len() {
        let c = chars[*pos];
        if nested && c == '}' {
            break;
        }
        if c != '$' {
            lit.push(c);
            *pos += 1;
            continue;
        }
        let start = *pos;
        match chars.get(start + 1) {
            Some('$') => {
                lit.push('$');
                *pos += 2;
            }
            Some('{') => {
                *pos += 2;
                let name = take_name(chars, pos);
                if name.is_empty() {
                    return Err(SyntaxError {
                        at: start,
                        message: "`${` is not followed by a variable name".into(),
                    });
                }
                let op = match (chars.get(*pos), chars.get(*pos + 1)) {
                    (Some('}'), _) => Op::Plain,
                    (Some(':'), Some('-')) => {
                        *pos += 2;
                        Op::Default(parse_word(chars, pos, true)?)
                    }
                    (Some(':'), Some('+')) => {
                        *pos += 2;
                        Op::Alt(parse_word(chars, pos, true)?)
                    }
                    (None, _) => {
                        return Err(unclosed(start));
                    }
                    (Some(other), _) => {
                        return Err(SyntaxError {
                            at: start,
                            message: format!(
                                "unsupported `{other}` in `${{{name}…}}`: use `${{{name}}}`, `${{{name}:-default}}` or `${{{name}:+alt}}`"
                            ),
                        });
                    }
                };
                if chars.get(*pos) != Some(&'}') {
                    return Err(unclosed(start));
                }
                *pos += 1;
                flush(&mut parts, &mut lit);
                parts.push(Part::Var { name, op });
            }
            Some(&n) if is_name_start(n) => {
                *pos += 1;
                let name = take_name(chars, pos);
                flush(&mut parts, &mut lit);
                parts.push(Part::Var {
                    name,
                    op: Op::Plain,
                });
            }
            // A `$` that starts no reference is itself, as in Docker.
            _ => {
                lit.push('$');
                *pos += 1;
            }
        }
    }
    flush(&mut parts, &mut lit);
    Ok(Word(parts))
}

fn unclosed(at: usize) -> SyntaxError {
    SyntaxError {
        at,
        message: "`${` is never closed with `}`".into(),
    }
}

fn take_name(chars: &[char], pos: &mut usize) -> String {
    let mut name = String::new();
    if chars.get(*pos).is_some_and(|c| is_name_start(*c)) {
        while let Some(&c) = chars.get(*pos).filter(|c| is_name_char(**c)) {
            name.push(c);
            *pos += 1;
        }
    }
    name
}

fn flush(parts: &mut Vec<Part>, lit: &mut String) {
    if !lit.is_empty() {
        parts.push(Part::Lit(std::mem::take(lit)));
    }
}

impl Word {
    /// The names this value refers to where their value is needed: a `:-`
    /// default covers an unset variable, a `:+` alternative needs none.
    /// Nested references inside a default are included.
    pub fn required(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for part in &self.0 {
            match part {
                Part::Lit(_) => {}
                Part::Var {
                    name,
                    op: Op::Plain,
                } => out.push(name.as_str()),
                Part::Var {
                    op: Op::Default(w) | Op::Alt(w),
                    ..
                } => out.extend(w.required()),
            }
        }
        out
    }

    /// Every name referred to, in order.
    pub fn names(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for part in &self.0 {
            if let Part::Var { name, op } = part {
                out.push(name.as_str());
                if let Op::Default(w) | Op::Alt(w) = op {
                    out.extend(w.names());
                }
            }
        }
        out
    }

    /// The value with every reference replaced; an unset variable is empty,
    /// as in a Dockerfile `ENV`.
    pub fn expand<'a>(&self, lookup: &impl Fn(&str) -> Option<&'a str>) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Var { name, op } => {
                    let value = lookup(name).unwrap_or("");
                    match op {
                        Op::Plain => out.push_str(value),
                        Op::Default(w) if value.is_empty() => out.push_str(&w.expand(lookup)),
                        Op::Default(_) => out.push_str(value),
                        Op::Alt(w) if !value.is_empty() => out.push_str(&w.expand(lookup)),
                        Op::Alt(_) => {}
                    }
                }
            }
        }
        out
    }

    /// The value expanded where `lookup` knows the variable, and written back
    /// in expander syntax (literal `$` as `$$`, references as `${NAME…}`)
    /// where it does not: two values that expand alike in every environment
    /// the unknown variables may take are one string, so keys can hash it.
    /// `lookup` gives a known variable's value already in this canonical
    /// form, and whether it still holds references (then whether it is empty
    /// is unknown, and a `:-` or `:+` on it stays written out, with the value).
    pub fn partial<'a>(&self, lookup: &impl Fn(&str) -> Option<(&'a str, bool)>) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Lit(s) => out.push_str(&s.replace('$', "$$")),
                Part::Var { name, op } => match (lookup(name), op) {
                    (Some((v, _)), Op::Plain) => out.push_str(v),
                    (Some(("", false)), Op::Default(w)) => {
                        out.push_str(&w.partial(lookup));
                    }
                    (Some((v, false)), Op::Default(_)) => out.push_str(v),
                    (Some((v, false)), Op::Alt(w)) if !v.is_empty() => {
                        out.push_str(&w.partial(lookup));
                    }
                    (Some((_, false)), Op::Alt(_)) => {}
                    (Some((v, true)), Op::Default(w)) => {
                        out.push_str(&format!("${{{name}={v}:-{}}}", w.partial(lookup)));
                    }
                    (Some((v, true)), Op::Alt(w)) => {
                        out.push_str(&format!("${{{name}={v}:+{}}}", w.partial(lookup)));
                    }
                    (None, Op::Plain) => out.push_str(&format!("${{{name}}}")),
                    (None, Op::Default(w)) => {
                        out.push_str(&format!("${{{name}:-{}}}", w.partial(lookup)));
                    }
                    (None, Op::Alt(w)) => {
                        out.push_str(&format!("${{{name}:+{}}}", w.partial(lookup)));
                    }
                },
            }
        }
        out
    }

    /// Whether any reference is left to expand.
    pub fn has_references(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Part::Var { .. }))
    }
}

/// Expand `text` against `lookup`, refusing a reference to an unset
/// variable that has no `:-` default (as a path must): the error names the
/// variables missing.
pub fn expand_strict<'a>(
    text: &str,
    lookup: &impl Fn(&str) -> Option<&'a str>,
) -> Result<String, StrictError> {
    let word = parse(text).map_err(StrictError::Syntax)?;
    let mut unset: Vec<String> = Vec::new();
    for name in word.required() {
        if lookup(name).is_none() && !unset.iter().any(|u| u == name) {
            unset.push(name.to_string());
        }
    }
    if unset.is_empty() {
        Ok(word.expand(lookup))
    } else {
        Err(StrictError::Unset(unset))
    }
}

/// Why a strict expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrictError {
    Syntax(SyntaxError),
    /// These variables are unset and have no default.
    Unset(Vec<String>),
}

impl fmt::Display for StrictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrictError::Syntax(e) => e.fmt(f),
            StrictError::Unset(names) => {
                let names: Vec<String> = names.iter().map(|n| format!("`${n}`")).collect();
                write!(f, "unset variable {} and no default", names.join(", "))
            }
        }
    }
}

/// The value of `name` in a `KEY=VALUE` environment (an image config's `Env`).
pub fn env_get<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The image environment after the env phase: `base` (`KEY=VALUE`, as an
/// image config holds it) with `entries` applied in order, each value
/// expanded against the environment before it (`PATH=/opt/bin:$PATH`).
/// With `simultaneous` (the map form, whose order YAML does not keep), every
/// value sees only `base`, as the pairs of one Dockerfile `ENV` do.
/// Values that do not parse are kept as written (`check` refuses them).
pub fn apply_env(base: &[String], entries: &[(String, String)], simultaneous: bool) -> Vec<String> {
    let mut env: Vec<String> = base.to_vec();
    let set = |env: &mut Vec<String>, k: &str, v: String| {
        env.retain(|kv| kv.split_once('=').map_or(kv.as_str(), |(n, _)| n) != k);
        env.push(format!("{k}={v}"));
    };
    if simultaneous {
        let values: Vec<(String, String)> = entries
            .iter()
            .map(|(k, v)| (k.clone(), expand_lenient(v, &|n: &str| env_get(base, n))))
            .collect();
        for (k, v) in values {
            set(&mut env, &k, v);
        }
    } else {
        for (k, v) in entries {
            let value = expand_lenient(v, &|n: &str| env_get(&env, n));
            set(&mut env, k, value);
        }
    }
    env
}

fn expand_lenient<'a>(text: &str, lookup: &impl Fn(&str) -> Option<&'a str>) -> String {
    match parse(text) {
        Ok(word) => word.expand(lookup),
        Err(_) => text.to_string(),
    }
}

/// The env entries in a canonical form for keys: each value partly expanded
/// against the entries before it (the base's variables stay references), so
/// a reordering that keeps the meaning keeps the key, and one that changes
/// it (`B=$A` before or after `A=1`) does not.
pub fn canonical_env(
    entries: &[(String, String)],
    simultaneous: bool,
) -> std::collections::BTreeMap<String, String> {
    env_known(entries, simultaneous)
        .into_iter()
        .map(|(k, (v, _))| (k, v))
        .collect()
}

/// What the env entries set, each value in the canonical form of
/// [`canonical_env`], and whether it still refers to the base's variables
/// (when not, the value is known before the build: `$$` in it is a `$`).
pub fn env_known(
    entries: &[(String, String)],
    simultaneous: bool,
) -> std::collections::BTreeMap<String, (String, bool)> {
    let mut known: std::collections::BTreeMap<String, (String, bool)> = Default::default();
    for (k, v) in entries {
        let (value, symbolic) = match parse(v) {
            Ok(word) => {
                let value = if simultaneous {
                    word.partial(&|_: &str| None)
                } else {
                    word.partial(&|n: &str| known.get(n).map(|(t, s)| (t.as_str(), *s)))
                };
                let symbolic = word
                    .names()
                    .iter()
                    .any(|n| simultaneous || known.get(*n).is_none_or(|(_, s)| *s));
                (value, symbolic)
            }
            Err(_) => (v.replace('$', "$$"), false),
        };
        known.insert(k.clone(), (value, symbolic));
    }
    known
}

/// A path field that does not expand: which field (`build.repos[0].path`),
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub field: String,
    pub error: StrictError,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.error)
    }
}

/// `config` with every path field (`habitat.dirs`, `work_dir`, copy `dest`,
/// repo `path`, tool `dest`, `verify.files`, `final.workdir`) expanded
/// against `env`, the image's environment after the env phase; every field
/// that cannot be expanded, when any cannot.
pub fn expand_paths(
    config: &super::Config,
    env: &[String],
) -> Result<super::Config, Vec<PathError>> {
    let lookup = |n: &str| env_get(env, n);
    let mut out = config.clone();
    let mut errors = Vec::new();
    let mut one = |value: &mut String, field: String| match expand_strict(value, &lookup) {
        Ok(v) => *value = v,
        Err(error) => errors.push(PathError { field, error }),
    };
    let b = &mut out.build;
    if let Some(h) = &mut b.habitat {
        for (i, d) in h.dirs.iter_mut().enumerate() {
            let field = match d {
                super::HabitatDir::Path(_) => format!("build.habitat.dirs[{i}]"),
                super::HabitatDir::Spec(_) => format!("build.habitat.dirs[{i}].path"),
            };
            one(d.path_mut(), field);
        }
        if let Some(w) = &mut h.work_dir {
            one(w, "build.habitat.work_dir".into());
        }
    }
    if let Some(f) = &mut b.files {
        for (i, c) in f.copies.iter_mut().enumerate() {
            one(&mut c.dest, format!("build.files.copies[{i}].dest"));
        }
    }
    for (i, r) in b.repos.iter_mut().enumerate() {
        one(&mut r.path, format!("build.repos[{i}].path"));
    }
    for (i, t) in b.tools.iter_mut().enumerate() {
        if let Some(d) = &mut t.dest {
            one(d, format!("build.tools[{i}].dest"));
        }
    }
    if let Some(v) = &mut b.verify {
        for (i, f) in v.files.iter_mut().enumerate() {
            one(f, format!("build.verify.files[{i}]"));
        }
    }
    if let Some(w) = b.final_.as_mut().and_then(|f| f.workdir.as_mut()) {
        one(w, "build.final.workdir".into());
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    #[test]
    fn expands_as_a_dockerfile_does() {
        let vars = [("A", "x"), ("E", ""), ("PATH", "/usr/bin:/bin")];
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$A", "x"),
            ("${A}", "x"),
            ("$A/b", "x/b"),
            ("${A}b", "xb"),
            ("$Ab", ""),
            ("$U", ""),
            ("${U:-d}", "d"),
            ("${E:-d}", "d"),
            ("${A:-d}", "x"),
            ("${A:+y}", "y"),
            ("${E:+y}", ""),
            ("${U:+y}", ""),
            ("${U:-$A/z}", "x/z"),
            ("${U:-${V:-deep}}", "deep"),
            ("$$A", "$A"),
            ("$$", "$"),
            ("a$", "a$"),
            ("$1", "$1"),
            ("$/", "$/"),
            ("/opt/bin:$PATH", "/opt/bin:/usr/bin:/bin"),
            ("${U:-}", ""),
            ("é$A", "éx"),
        ];
        for (text, want) in cases {
            let got = parse(text).unwrap().expand(&env(&vars));
            assert_eq!(&got, want, "{text}");
        }
    }

    #[test]
    fn bad_references_are_located() {
        let cases: &[(&str, usize, &str)] = &[
            ("a${", 1, "`${` is not followed by a variable name"),
            ("${A", 0, "`${` is never closed with `}`"),
            ("x${A:-b", 1, "`${` is never closed with `}`"),
            ("${}", 0, "`${` is not followed by a variable name"),
            ("${1}", 0, "`${` is not followed by a variable name"),
        ];
        for (text, at, message) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!((err.at, err.message.as_str()), (*at, *message), "{text}");
        }
        assert!(
            parse("${A:?x}")
                .unwrap_err()
                .message
                .contains("unsupported `:`")
        );
        assert!(
            parse("${A-x}")
                .unwrap_err()
                .message
                .contains("unsupported `-`")
        );
    }

    #[test]
    fn strict_expansion_names_the_unset() {
        let vars = [("HOME", "/home/dev")];
        let strict = |t: &str| expand_strict(t, &env(&vars));
        assert_eq!(strict("$HOME/x"), Ok("/home/dev/x".into()));
        assert_eq!(strict("${W:-/work}/a"), Ok("/work/a".into()));
        assert_eq!(strict("/a${W:+/w}"), Ok("/a".into()));
        assert_eq!(
            strict("$W/$X/$W"),
            Err(StrictError::Unset(vec!["W".into(), "X".into()]))
        );
        assert_eq!(
            strict("$W/a").unwrap_err().to_string(),
            "unset variable `$W` and no default"
        );
    }

    #[test]
    fn env_entries_see_the_base_and_earlier_entries() {
        let base = vec!["PATH=/usr/bin:/bin".to_string(), "HOME=/root".to_string()];
        let e = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let got = apply_env(
            &base,
            &e(&[
                ("PATH", "/opt/bin:$PATH"),
                ("P2", "$PATH:x"),
                ("H", "$$HOME"),
            ]),
            false,
        );
        assert_eq!(
            got,
            [
                "HOME=/root",
                "PATH=/opt/bin:/usr/bin:/bin",
                "P2=/opt/bin:/usr/bin:/bin:x",
                "H=$HOME",
            ]
        );
        // The map form: every value sees the base only.
        let got = apply_env(&base, &e(&[("A", "1"), ("B", "${A:-none}")]), true);
        assert_eq!(got[2..], ["A=1".to_string(), "B=none".to_string()]);
    }

    #[test]
    fn canonical_env_keeps_meaning_not_spelling() {
        let e = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let a = canonical_env(&e(&[("A", "1"), ("B", "$A")]), false);
        let b = canonical_env(&e(&[("A", "1"), ("B", "${A}")]), false);
        let c = canonical_env(&e(&[("B", "$A"), ("A", "1")]), false);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let p = canonical_env(&e(&[("PATH", "/opt/bin:$PATH")]), false);
        assert_eq!(p["PATH"], "/opt/bin:${PATH}");
        // Literal text without references is its own canonical form.
        let plain = canonical_env(&e(&[("X", "a b c")]), false);
        assert_eq!(plain["X"], "a b c");
    }
}
