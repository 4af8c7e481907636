//! Fuzzing the config loader with mutations of real configs: `config::parse`
//! never panics, and every diagnostic it returns is located (a line and a
//! column inside the file, the line's own text) and renders.
//!
//! The seeds are the files in `config_corpus/` (the quickstart, the SPEC
//! example, the benchmark fixtures, every accepted form, a file full of
//! mistakes); drop a file there to add one, and add every input that ever
//! broke the loader there, so it stays fixed. Mutations: byte and character
//! changes (YAML punctuation, tabs, multi-byte characters, NUL), line
//! deletions, duplications, swaps and re-indents, keys replaced by other
//! (or misspelt) keys, values replaced by odd scalars or nested deep in
//! lists and mappings, truncation.
//!
//! `KILN_FUZZ_CASES=N` runs N mutated inputs (default 2000, what CI runs);
//! proptest picks a new seed every run and prints the smallest failing input.

use std::path::{Path, PathBuf};

use kiln_core::config::{self, Diagnostics};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, FileFailurePersistence};

use crate::support::count_from_env;

/// Mutated inputs run when `KILN_FUZZ_CASES` is not set.
const DEFAULT_CASES: usize = 2000;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/config_corpus")
}

/// Every corpus file, by name, sorted.
fn corpus() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(corpus_dir())
        .expect("the config corpus")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Bytes a mutation writes: YAML's own punctuation and what trips up text
/// handling.
const BYTES: &[&str] = &[
    ":", "-", " ", "  ", "\t", "\n", "\r\n", "\"", "'", "{", "}", "[", "]", "#", "&", "*", "!",
    "|", ">", "%", "@", "`", ",", "?", "\\", "\0", "é", "日本", "🦀", "\u{feff}", "\u{2028}",
];

/// Keys a mutation puts in place of another: every key of the schema, and
/// some misspelt ones.
const KEYS: &[&str] = &[
    "name",
    "description",
    "build",
    "base",
    "image",
    "habitat",
    "bootstrap",
    "users",
    "uid",
    "gid",
    "groups",
    "shell",
    "home",
    "env",
    "dirs",
    "work_dir",
    "files",
    "copies",
    "volumes",
    "source",
    "dest",
    "owner",
    "group",
    "mode",
    "setup",
    "packages",
    "apt",
    "npm",
    "pip",
    "commands",
    "root",
    "user",
    "scripts",
    "repos",
    "url",
    "path",
    "ref",
    "tools",
    "sha256",
    "verify",
    "final",
    "workdir",
    "command",
    "entrypoint",
    "expose",
    "labels",
    "secrets",
    "id",
    "file",
    "instances",
    "defaults",
    "members",
    "ports",
    "persist",
    "restart",
    "readonly",
    "distro",
    "suite",
    "variant",
    "mirror",
    "include",
    "global",
    "version",
    "workdr",
    "pakages",
    "<<",
    "",
    "~",
    "0",
    "true",
];

/// Values a mutation puts in place of a scalar.
const VALUES: &[&str] = &[
    "",
    "~",
    "null",
    "[]",
    "{}",
    "[[]]",
    "0",
    "-1",
    "0644",
    "0o777",
    "1e9",
    "99999999999999999999",
    "yes",
    "no",
    ".nan",
    "\"\"",
    "''",
    "&anchor x",
    "*anchor",
    "*missing",
    "!!binary aGk=",
    "!tag x",
    "|",
    ">-",
    "[a, b",
    "{a: 1",
    "\"unclosed",
    "a: b: c",
    "- x",
    "/",
    "../../etc",
    "${HOME}",
    "$$",
    "é",
    "🦀🦀🦀",
    "x\ty",
];

/// One change to a config's text. Positions and choices are raw numbers,
/// taken modulo what the text has when the mutation is applied.
#[derive(Debug, Clone)]
enum Mutation {
    ReplaceByte {
        at: usize,
        with: usize,
    },
    InsertBytes {
        at: usize,
        with: usize,
    },
    DeleteLine {
        line: usize,
    },
    DuplicateLine {
        line: usize,
    },
    SwapLines {
        a: usize,
        b: usize,
    },
    Indent {
        line: usize,
        by: usize,
    },
    Dedent {
        line: usize,
    },
    ReplaceKey {
        line: usize,
        with: usize,
    },
    ReplaceValue {
        line: usize,
        with: usize,
    },
    /// A value wrapped in `depth` flow lists or mappings.
    Nest {
        line: usize,
        depth: usize,
        map: bool,
    },
    Truncate {
        at: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let n = 0..100_000usize;
    prop_oneof![
        (n.clone(), 0..BYTES.len()).prop_map(|(at, with)| Mutation::ReplaceByte { at, with }),
        (n.clone(), 0..BYTES.len()).prop_map(|(at, with)| Mutation::InsertBytes { at, with }),
        n.clone().prop_map(|line| Mutation::DeleteLine { line }),
        n.clone().prop_map(|line| Mutation::DuplicateLine { line }),
        (n.clone(), n.clone()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
        (n.clone(), 1..5usize).prop_map(|(line, by)| Mutation::Indent { line, by }),
        n.clone().prop_map(|line| Mutation::Dedent { line }),
        (n.clone(), 0..KEYS.len()).prop_map(|(line, with)| Mutation::ReplaceKey { line, with }),
        (n.clone(), 0..VALUES.len()).prop_map(|(line, with)| Mutation::ReplaceValue { line, with }),
        (n.clone(), 1..80usize, any::<bool>()).prop_map(|(line, depth, map)| Mutation::Nest {
            line,
            depth,
            map
        }),
        n.prop_map(|at| Mutation::Truncate { at }),
    ]
}

/// The nearest character boundary at or before `at` (modulo the length).
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let count = lines.len();
    match m {
        Mutation::ReplaceByte { at, with } => {
            let at = boundary(text, *at);
            let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            return format!("{}{}{}", &text[..at], BYTES[*with], &text[end..]);
        }
        Mutation::InsertBytes { at, with } => {
            let at = boundary(text, *at);
            return format!("{}{}{}", &text[..at], BYTES[*with], &text[at..]);
        }
        Mutation::Truncate { at } => return text[..boundary(text, *at)].to_string(),
        Mutation::DeleteLine { line } => {
            lines.remove(line % count);
        }
        Mutation::DuplicateLine { line } => {
            let l = lines[line % count].clone();
            lines.insert(line % count, l);
        }
        Mutation::SwapLines { a, b } => lines.swap(a % count, b % count),
        Mutation::Indent { line, by } => {
            let l = &mut lines[line % count];
            *l = format!("{}{l}", " ".repeat(*by));
        }
        Mutation::Dedent { line } => {
            let l = &mut lines[line % count];
            *l = l.strip_prefix("  ").unwrap_or(l.trim_start()).to_string();
        }
        Mutation::ReplaceKey { line, with } => {
            let l = &mut lines[line % count];
            if let Some(colon) = l.find(':') {
                let indent = l.len() - l.trim_start_matches([' ', '-']).len();
                if indent <= colon {
                    *l = format!("{}{}{}", &l[..indent], KEYS[*with], &l[colon..]);
                }
            }
        }
        Mutation::Nest { line, depth, map } => {
            let l = &mut lines[line % count];
            if let Some(colon) = l.find(": ") {
                let (open, close) = if *map { ("{k: ", "}") } else { ("[", "]") };
                let value = l[colon + 2..].to_string();
                *l = format!(
                    "{}: {}{value}{}",
                    &l[..colon],
                    open.repeat(*depth),
                    close.repeat(*depth)
                );
            }
        }
        Mutation::ReplaceValue { line, with } => {
            let l = &mut lines[line % count];
            if let Some(colon) = l.find(": ") {
                *l = format!("{}: {}", &l[..colon], VALUES[*with]);
            } else if let Some(dash) = l.find("- ") {
                *l = format!("{}- {}", &l[..dash], VALUES[*with]);
            }
        }
    }
    lines.join("\n")
}

/// The lines of `text` as YAML counts them: a line ends at CR LF, LF or a
/// lone CR.
fn yaml_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    lines
}

/// Why `diagnostics` of `text` break the contract, if they do.
fn unlocated(file: &str, text: &str, diagnostics: &Diagnostics) -> Option<String> {
    if diagnostics.is_empty() {
        return Some("an error with no diagnostic".to_string());
    }
    let lines = yaml_lines(text);
    for d in diagnostics {
        let problem = if d.file != file {
            Some(format!("names the file `{}`", d.file))
        } else if d.line == 0 || d.column == 0 {
            Some("has no line or column".to_string())
        } else if d.line > lines.len().max(1) + 1 {
            Some(format!("is past the last line ({})", lines.len()))
        } else if d.source_line != lines.get(d.line - 1).copied().unwrap_or("") {
            Some(format!("shows another line: {:?}", d.source_line))
        } else if d.column > d.source_line.chars().count() + 1 {
            Some(format!(
                "is past the end of its line ({} characters)",
                d.source_line.chars().count()
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Some(format!(
                "the diagnostic `{}` at {}:{} {problem}",
                d.message, d.line, d.column
            ));
        }
    }
    None
}

/// Parses `text` as `FILE` and says how the loader broke its contract, if it did.
fn check(text: &str) -> Result<(), String> {
    const FILE: &str = "habitats/fuzz/kiln.yaml";
    let dir = Path::new("/nonexistent/kiln-fuzz");
    let parsed = std::panic::catch_unwind(|| {
        let parsed = config::parse(FILE, text, dir);
        // Rendering is part of the contract: `kiln check` prints every one.
        if let Err(d) = &parsed {
            let _ = d.to_string();
        }
        parsed
    });
    match parsed {
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("the loader panicked: {message}"))
        }
        Ok(Ok(_)) => Ok(()),
        Ok(Err(d)) => match unlocated(FILE, text, &d) {
            Some(problem) => Err(format!("{problem}\n{d}")),
            None => Ok(()),
        },
    }
}

#[test]
fn every_corpus_file_loads_or_fails_with_located_errors() {
    let corpus = corpus();
    assert!(corpus.len() >= 8, "the corpus has {} files", corpus.len());
    for (name, text) in &corpus {
        if let Err(problem) = check(text) {
            panic!("config_corpus/{name}: {problem}");
        }
    }
}

#[test]
fn mutated_configs_never_panic_the_loader_and_every_error_is_located() {
    let corpus = corpus();
    let cases = count_from_env("KILN_FUZZ_CASES", DEFAULT_CASES) as u32;
    let config = RunnerConfig {
        cases,
        // Failures are kept as corpus files, by hand: see the module docs.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..RunnerConfig::default()
    };
    let strategy = (0..corpus.len(), proptest::collection::vec(mutation(), 1..5));
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&strategy, |(file, mutations)| {
        let mut text = corpus[file].1.clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        check(&text).map_err(|problem| {
            TestCaseError::fail(format!(
                "config_corpus/{} mutated by {mutations:?}:\n{problem}\n--- input ---\n{text}",
                corpus[file].0
            ))
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn regression_a_lone_carriage_return_ends_a_line_for_diagnostics_too() {
    // YAML breaks lines at CR LF, LF and a lone CR; a diagnostic that counted
    // lines one way and showed them another pointed past the end of an
    // empty line.
    for (text, line) in [
        (
            "name: x\nbuild:\n  base: { image: \"deb\rian\" }\n  zzz: 1\n",
            5,
        ),
        ("name: x\rbuild:\r  base: { image: debian }\r  zzz: 1\r", 4),
        (
            "name: x\r\nbuild:\r\n  base: { image: debian }\r\n  zzz: 1\r\n",
            4,
        ),
    ] {
        let d = config::parse("kiln.yaml", text, Path::new("/nonexistent")).unwrap_err();
        let d = &d.items()[0];
        assert_eq!(
            (d.line, d.column, d.source_line.as_str()),
            (line, 3, "  zzz: 1"),
            "{text:?}"
        );
    }
}

#[test]
fn regression_deep_nesting_is_a_located_error_not_a_stack_overflow() {
    // Each level of nesting costs the YAML reader tens of kilobytes of stack
    // in a debug build: fifty levels overflowed a test thread's 2 MiB and
    // aborted the process. Runs on a thread of that size on purpose.
    let flow = |depth: usize| {
        format!(
            "name: x\nbuild: {}{}\n",
            "{a: ".repeat(depth),
            "}".repeat(depth)
        )
    };
    let block = |depth: usize| {
        let mut text = String::from("name: x\nbuild:\n");
        for i in 0..depth {
            text.push_str(&format!("{}k{i}:\n", " ".repeat(2 * i + 2)));
        }
        text
    };
    let seq = |depth: usize| {
        format!(
            "name: x\nbuild: {}{}\n",
            "[".repeat(depth),
            "]".repeat(depth)
        )
    };
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let mut out = Vec::new();
            for text in [flow(30), flow(200), block(30), block(200), seq(200)] {
                out.push(check(&text).err());
                let message = match config::parse("kiln.yaml", &text, Path::new("/nonexistent")) {
                    Ok(_) => String::new(),
                    Err(d) => d.items()[0].message.clone(),
                };
                out.push(Some(message).filter(|m| m.contains("budget")));
            }
            out
        })
        .unwrap();
    let problems: Vec<String> = handle.join().unwrap().into_iter().flatten().collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let d = config::parse("kiln.yaml", &flow(200), Path::new("/nonexistent")).unwrap_err();
    assert_eq!(
        d.items()[0].message,
        "the config nests too deeply: more than 32 levels"
    );
}
