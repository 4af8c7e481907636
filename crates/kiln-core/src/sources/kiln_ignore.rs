//! `KilnIgnore`: the `.kilnignore` of a copy root, read as Docker reads a
//! `.dockerignore` (SPEC §2.1), so a user's file means in kiln what it means
//! to `docker build`. Pure: the text in, answers about root-relative paths
//! out; the walk in `copies.rs` asks it.
//!
//! The semantics are Docker's (moby's `ignorefile` and `patternmatcher`,
//! as the Docker 23+ client applies them):
//! - a line starting with `#` is a comment; blank lines are skipped; each
//!   line is trimmed, then cleaned like Go's `filepath.Clean` (so `a/../b`
//!   is `b` and `./a/` is `a`), and a leading `/` is dropped: every pattern
//!   is anchored at the root;
//! - `*` matches a run of characters other than `/`, `?` one such
//!   character, `[...]` a class (`[^...]` negated, `a-z` ranges), `\` quotes
//!   the next character; `**` matches any number of directories (`**/` may
//!   match none), and a trailing `**` everything below;
//! - a path is excluded when the last pattern that matches it, or one of
//!   its parent directories, is not an exception (`!`);
//! - the walk does not enter an excluded directory unless an exception's
//!   text starts with that directory's path (`!dir/keep`): Docker's own
//!   shortcut, kept so the same tree and file give the same copy. The
//!   directory itself is kept only as the parent of what is let back in.

use std::path::Path;

use crate::config::Diagnostic;
use crate::config::Diagnostics;

/// The name of the ignore file in a copy root.
pub const FILE_NAME: &str = ".kilnignore";

/// The patterns of one `.kilnignore`, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KilnIgnore {
    patterns: Vec<Pattern>,
}

/// One pattern line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exclusion: bool,
    /// 1-based line in the file.
    line: usize,
    glob: Vec<Token>,
}

/// A piece of a compiled pattern, as moby turns each into a regular
/// expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` followed by more: any run ending in `/`, or nothing (`(.*/)?`).
    Dirs,
    /// A trailing `**`: anything (`.*`).
    All,
    /// `[...]`: a regular-expression class, which (as in moby) may match `/`.
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
}

/// A problem in a `.kilnignore`, at its line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreProblem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl KilnIgnore {
    /// No patterns: nothing is left out.
    pub const EMPTY: KilnIgnore = KilnIgnore {
        patterns: Vec::new(),
    };

    /// Parses the text of a `.kilnignore`. Every bad line is reported, not
    /// only the first.
    pub fn parse(text: &str) -> Result<KilnIgnore, Vec<IgnoreProblem>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        let mut problems = Vec::new();
        // Go's bufio.Scanner splits on `\n` and drops one `\r` before it.
        for (i, raw) in text.split('\n').enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.starts_with('#') {
                continue;
            }
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let column = raw
                .find(trimmed)
                .map_or(1, |b| raw[..b].chars().count() + 1);
            let (exclusion, rest) = match trimmed.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, trimmed),
            };
            if exclusion && rest.is_empty() {
                problems.push(IgnoreProblem {
                    line,
                    column,
                    message: "`!` alone excepts nothing".into(),
                });
                continue;
            }
            let mut cleaned = clean(rest);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            match compile(&cleaned) {
                Ok(glob) => patterns.push(Pattern {
                    text: cleaned,
                    exclusion,
                    line,
                    glob,
                }),
                Err(why) => problems.push(IgnoreProblem {
                    line,
                    column,
                    message: format!("bad pattern `{trimmed}`: {why}"),
                }),
            }
        }
        match problems.is_empty() {
            true => Ok(KilnIgnore { patterns }),
            false => Err(problems),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `rel` (relative to the root, `/`-separated, not empty) is
    /// left out: the last pattern matching it or a parent of it decides.
    pub fn excludes(&self, rel: &str) -> bool {
        self.deciding(rel).is_some_and(|p| !p.exclusion)
    }

    /// The line of the pattern that leaves `rel` out, if one does.
    pub fn excluded_by(&self, rel: &str) -> Option<usize> {
        self.deciding(rel).filter(|p| !p.exclusion).map(|p| p.line)
    }

    /// The last pattern matching `rel` or one of its parents.
    fn deciding(&self, rel: &str) -> Option<&Pattern> {
        let chars: Vec<char> = rel.chars().collect();
        // The ends of each parent directory of `rel` (`a` and `a/b` of `a/b/c`).
        let parents: Vec<usize> = chars
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == '/')
            .map(|(i, _)| i)
            .collect();
        self.patterns.iter().rev().find(|p| {
            matches(&p.glob, &chars) || parents.iter().any(|&end| matches(&p.glob, &chars[..end]))
        })
    }

    /// Whether the walk enters the excluded directory `dir`: only when an
    /// exception's text starts with `dir/` (Docker's shortcut; see above).
    pub fn may_let_back_below(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.text).starts_with(&dir_slash))
    }
}

/// The problems of the `.kilnignore` at `file` (shown as `shown`), as
/// located diagnostics like those of a `kiln.yaml`.
pub fn diagnostics(shown: &str, text: &str, problems: &[IgnoreProblem]) -> Diagnostics {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Diagnostics::default();
    for p in problems {
        let source_line = lines
            .get(p.line - 1)
            .map(|l| l.trim_end_matches('\r'))
            .unwrap_or_default()
            .to_string();
        let len = source_line
            .chars()
            .skip(p.column - 1)
            .collect::<String>()
            .trim_end()
            .chars()
            .count();
        out.push(Diagnostic {
            file: shown.to_string(),
            line: p.line,
            column: p.column,
            len: len.max(1),
            source_line,
            message: p.message.clone(),
            hint: Some("`.kilnignore` uses `.dockerignore` syntax: `*`, `?`, `[a-z]`, `**`, `!` exceptions".into()),
        });
    }
    out
}

/// A `.kilnignore` that cannot be read as text.
pub fn unreadable(shown: &str, why: &str) -> Diagnostics {
    Diagnostics::unlocated(shown, format!("cannot read `.kilnignore`: {why}"), None)
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            part => out.push(part),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Compiles a cleaned pattern as moby's `Pattern.compile` does; malformed
/// patterns (as Go's `filepath.Match` finds them) are errors.
fn compile(pattern: &str) -> Result<Vec<Token>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                out.push(match i == chars.len() {
                    true => Token::All,
                    false => Token::Dirs,
                });
            }
            '*' => out.push(Token::Star),
            '?' => out.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&next) => {
                    out.push(Token::Char(next));
                    i += 1;
                }
                None => return Err("it ends in `\\`"),
            },
            '[' => {
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut items = Vec::new();
                loop {
                    if chars.get(i) == Some(&']') && !items.is_empty() {
                        i += 1;
                        break;
                    }
                    let lo = class_char(&chars, &mut i)?;
                    let hi = match chars.get(i) {
                        Some('-') => {
                            i += 1;
                            class_char(&chars, &mut i)?
                        }
                        _ => lo,
                    };
                    if hi < lo {
                        return Err("a range in `[...]` runs backwards");
                    }
                    items.push((lo, hi));
                }
                out.push(Token::Class { negated, items });
            }
            c => out.push(Token::Char(c)),
        }
    }
    Ok(out)
}

/// One character of a class at `chars[*i]` (Go's `getEsc`): `\` quotes
/// the next; an unquoted `-` or `]` there, or the end, is malformed.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, &'static str> {
    match chars.get(*i) {
        None => Err("a `[` is never closed"),
        Some('-' | ']') => Err("a `-` or `]` in `[...]` must be quoted with `\\`"),
        Some('\\') => {
            let quoted = chars.get(*i + 1).copied().ok_or("a `[` is never closed")?;
            *i += 2;
            Ok(quoted)
        }
        Some(&c) => {
            *i += 1;
            Ok(c)
        }
    }
}

/// Whether `glob` matches all of `text` (a table over token and character
/// positions: no backtracking blow-up on patterns with many stars).
fn matches(glob: &[Token], text: &[char]) -> bool {
    let (m, n) = (glob.len(), text.len());
    // ok[i][j]: glob[i..] matches text[j..]. dirs[i][j]: for a `Dirs` at i,
    // some run text[j..k] ending in `/` is followed by a match of glob[i+1..].
    let mut ok = vec![vec![false; n + 1]; m + 1];
    let mut dirs = vec![false; n + 2];
    ok[m][n] = true;
    for i in (0..m).rev() {
        if let Token::Dirs = glob[i] {
            dirs[n] = false;
            for j in (0..n).rev() {
                dirs[j] = (text[j] == '/' && ok[i + 1][j + 1]) || dirs[j + 1];
            }
        }
        for j in (0..=n).rev() {
            let here = text.get(j).copied();
            ok[i][j] = match &glob[i] {
                Token::Char(c) => here == Some(*c) && ok[i + 1][j + 1],
                Token::One => here.is_some_and(|c| c != '/') && ok[i + 1][j + 1],
                Token::Star => ok[i + 1][j] || (here.is_some_and(|c| c != '/') && ok[i][j + 1]),
                Token::All => ok[i + 1][j] || (here.is_some() && ok[i][j + 1]),
                Token::Dirs => ok[i + 1][j] || dirs[j],
                Token::Class { negated, items } => {
                    here.is_some_and(|c| {
                        items.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
                    }) && ok[i + 1][j + 1]
                }
            };
        }
    }
    ok[0][0]
}

/// The path of `source` relative to its root, `/`-separated, without `.`
/// parts ("" for the root itself).
pub fn root_relative(source: &str) -> String {
    let cleaned = clean(&Path::new(source).to_string_lossy());
    match cleaned.as_str() {
        "." => String::new(),
        c => c.trim_start_matches('/').to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignore(text: &str) -> KilnIgnore {
        KilnIgnore::parse(text).unwrap()
    }

    /// (patterns, path, excluded): each row checked against moby's rules.
    #[test]
    fn patterns_decide_as_docker_does() {
        let rows: &[(&str, &str, bool)] = &[
            ("a", "a", true),
            ("a", "a/b/c", true),
            ("a", "b/a", false),
            ("/a", "a", true),
            ("./a/", "a/x", true),
            ("a/../b", "b", true),
            ("*.log", "x.log", true),
            ("*.log", "d/x.log", false),
            ("*/*.log", "d/x.log", true),
            ("**/*.log", "d/e/x.log", true),
            ("**/*.log", "x.log", true),
            ("a/**", "a", false),
            ("a/**", "a/b/c", true),
            ("a/**/z", "a/z", true),
            ("a/**/z", "a/b/c/z", true),
            ("a**b", "ab", true),
            ("a**b", "axb", false),
            ("a**b", "ax/b", true),
            ("?", "a", true),
            ("?", "ab", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "dx", true),
            ("[^a-c]x", "ax", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a\nb", "a/q", true),
            ("a\n!a/keep", "a/keep", false),
            ("a\n!a/keep", "a/other", true),
            ("a\n!a/keep", "a/keep/deep", false),
            ("!a\na", "a", true),
            ("*\n!x", "x", false),
            ("*\n!x", "y", true),
            ("# a comment\na", "# a comment", false),
            (" #not-a-comment", "#not-a-comment", true),
            ("  spaced  ", "spaced", true),
            ("! b ", "b", false),
            ("**", "any/thing", true),
            ("x/*", "x", false),
            ("x/*", "x/y/z", true),
        ];
        for (text, path, want) in rows {
            assert_eq!(
                ignore(text).excludes(path),
                *want,
                "patterns {text:?} on {path:?}"
            );
        }
    }

    #[test]
    fn the_walk_enters_an_excluded_dir_only_for_an_exception_under_it() {
        let i = ignore("a\n!a/keep\n**/foo\n!a*/x\n");
        assert!(i.may_let_back_below("a"));
        assert!(!i.may_let_back_below("a/b"), "`!a/keep` is not under a/b");
        assert!(
            !i.may_let_back_below("ab"),
            "Docker compares text: `a*/x` is not `ab/`"
        );
        assert!(!ignore("a").may_let_back_below("a"));
    }

    #[test]
    fn bad_lines_are_all_reported_with_their_columns() {
        let problems = KilnIgnore::parse("ok\n  [abc\n!\nx\\\n]y\n[-a]\n[]\n").unwrap_err();
        let at: Vec<(usize, usize)> = problems.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(at, [(2, 3), (3, 1), (4, 1), (6, 1), (7, 1)], "{problems:?}");
        assert!(
            ignore("]y").excludes("]y"),
            "a `]` alone is a plain character"
        );
        assert!(problems[0].message.contains("never closed"), "{problems:?}");
    }

    #[test]
    fn a_crlf_file_and_a_bom_read_as_plain_lines() {
        let i = ignore("\u{feff}a\r\n!a/k\r\n");
        assert!(i.excludes("a/x"));
        assert!(!i.excludes("a/k"));
    }

    #[test]
    fn root_relative_drops_dots_and_slashes() {
        assert_eq!(root_relative("."), "");
        assert_eq!(root_relative("./a/b/"), "a/b");
        assert_eq!(root_relative("a//b"), "a/b");
    }

    /// Generated: the table matcher agrees with a naive backtracking one on
    /// random patterns and paths over a small alphabet.
    #[test]
    fn generated_matches_agree_with_backtracking() {
        fn naive(glob: &[Token], text: &[char]) -> bool {
            match glob.first() {
                None => text.is_empty(),
                Some(Token::Char(c)) => text.first() == Some(c) && naive(&glob[1..], &text[1..]),
                Some(Token::One) => {
                    text.first().is_some_and(|c| *c != '/') && naive(&glob[1..], &text[1..])
                }
                Some(Token::Class { negated, items }) => {
                    text.first().is_some_and(|c| {
                        items.iter().any(|(lo, hi)| (*lo..=*hi).contains(c)) != *negated
                    }) && naive(&glob[1..], &text[1..])
                }
                Some(Token::Star) => (0..=text.len())
                    .take_while(|&k| text[..k].iter().all(|c| *c != '/'))
                    .any(|k| naive(&glob[1..], &text[k..])),
                Some(Token::All) => (0..=text.len()).any(|k| naive(&glob[1..], &text[k..])),
                Some(Token::Dirs) => {
                    naive(&glob[1..], text)
                        || (1..=text.len())
                            .any(|k| text[k - 1] == '/' && naive(&glob[1..], &text[k..]))
                }
            }
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let pieces = ["a", "b", "/", "*", "?", "**", "**/", "[ab]", "[^a]"];
        for _ in 0..3000 {
            let pattern: String = (0..1 + next(5))
                .map(|_| pieces[next(pieces.len() as u64) as usize])
                .collect();
            let Ok(glob) = compile(&clean(&pattern)) else {
                continue;
            };
            let text: Vec<char> = (0..next(7))
                .map(|_| ['a', 'b', '/'][next(3) as usize])
                .collect();
            assert_eq!(
                matches(&glob, &text),
                naive(&glob, &text),
                "{pattern:?} on {:?}",
                text.iter().collect::<String>()
            );
        }
    }
}
