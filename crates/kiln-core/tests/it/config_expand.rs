//! Variable expansion (SPEC §2.1) against a reference model: random values
//! are built as trees, written out as text, and the expander's reading of
//! the text must evaluate as the tree does directly. The same for its
//! canonical (partly expanded) form, which keys hash: it must mean what the
//! value means in every environment.

use std::collections::BTreeMap;

use kiln_core::config::expand;
use proptest::prelude::*;

/// A value as the model knows it.
#[derive(Debug, Clone)]
enum M {
    Lit(String),
    Dollar,
    Var(String, Op),
}

#[derive(Debug, Clone)]
enum Op {
    Plain,
    Default(Vec<M>),
    Alt(Vec<M>),
}

fn render(word: &[M]) -> String {
    let mut out = String::new();
    for (i, part) in word.iter().enumerate() {
        match part {
            M::Lit(s) => out.push_str(s),
            M::Dollar => out.push_str("$$"),
            M::Var(n, Op::Plain) => {
                // `$NAME` only where the next character cannot extend the name.
                let next = match word.get(i + 1) {
                    Some(M::Lit(s)) => s.chars().next(),
                    Some(_) => Some('$'),
                    None => None,
                };
                if next.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_')) {
                    out.push_str(&format!("${n}"));
                } else {
                    out.push_str(&format!("${{{n}}}"));
                }
            }
            M::Var(n, Op::Default(w)) => out.push_str(&format!("${{{n}:-{}}}", render(w))),
            M::Var(n, Op::Alt(w)) => out.push_str(&format!("${{{n}:+{}}}", render(w))),
        }
    }
    out
}

/// What the tree means in `env`: Docker's rules, written down directly.
fn eval(word: &[M], env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for part in word {
        match part {
            M::Lit(s) => out.push_str(s),
            M::Dollar => out.push('$'),
            M::Var(n, op) => {
                let v = env.get(n).cloned().unwrap_or_default();
                match op {
                    Op::Plain => out.push_str(&v),
                    Op::Default(w) => out.push_str(&if v.is_empty() { eval(w, env) } else { v }),
                    Op::Alt(w) => {
                        if !v.is_empty() {
                            out.push_str(&eval(w, env));
                        }
                    }
                }
            }
        }
    }
    out
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![Just("A"), Just("B"), Just("PATH"), Just("_x1")].prop_map(str::to_string)
}

fn lit() -> impl Strategy<Value = String> {
    // No `$` (that is `M::Dollar`) and no `}` (it would end a nested word).
    "[a-z0-9/:._ -]{1,4}"
}

fn word(depth: u32) -> BoxedStrategy<Vec<M>> {
    let leaf = prop_oneof![
        lit().prop_map(M::Lit),
        Just(M::Dollar),
        name().prop_map(|n| M::Var(n, Op::Plain)),
    ];
    let part = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![
            3 => leaf,
            1 => (name(), word(depth - 1)).prop_map(|(n, w)| M::Var(n, Op::Default(w))),
            1 => (name(), word(depth - 1)).prop_map(|(n, w)| M::Var(n, Op::Alt(w))),
        ]
        .boxed()
    };
    prop::collection::vec(part, 0..5).boxed()
}

fn env() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(name(), "[a-z/$]{0,3}", 0..4)
}

proptest! {
    #[test]
    fn expansion_matches_the_model(w in word(2), env in env()) {
        let text = render(&w);
        let parsed = expand::parse(&text).expect("a rendered value parses");
        let got = parsed.expand(&|n: &str| env.get(n).map(String::as_str));
        prop_assert_eq!(got, eval(&w, &env), "{}", text);
    }

    #[test]
    fn the_canonical_form_means_the_value(w in word(2), env in env()) {
        let text = render(&w);
        let parsed = expand::parse(&text).unwrap();
        // Nothing known: the canonical text reads back as the same value.
        let canonical = parsed.partial(&|_: &str| None);
        let reread = expand::parse(&canonical).expect("the canonical form parses");
        let lookup = |n: &str| env.get(n).map(String::as_str);
        prop_assert_eq!(reread.expand(&lookup), eval(&w, &env), "{} -> {}", text, canonical);
        // It is its own canonical form.
        prop_assert_eq!(reread.partial(&|_: &str| None), canonical.clone());
        // Everything known: the canonical text is the value, with `$` as `$$`.
        let escaped: BTreeMap<String, String> =
            env.iter().map(|(k, v)| (k.clone(), v.replace('$', "$$"))).collect();
        let full = parsed.partial(&|n: &str| Some((escaped.get(n).map_or("", String::as_str), false)));
        prop_assert_eq!(full, eval(&w, &env).replace('$', "$$"));
    }

    /// A value built by an env entry is what the next one sees.
    #[test]
    fn env_entries_apply_in_order(a in word(1), b in word(1), env in env()) {
        let base: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let entries = vec![("A".to_string(), render(&a)), ("B".to_string(), render(&b))];
        let got = expand::apply_env(&base, &entries, false);
        let mut model = env.clone();
        let va = eval(&a, &model);
        model.insert("A".into(), va.clone());
        let vb = eval(&b, &model);
        let (want_a, want_b) = (format!("A={va}"), format!("B={vb}"));
        prop_assert!(got.contains(&want_a), "{:?} lacks {}", got, want_a);
        prop_assert!(got.contains(&want_b), "{:?} lacks {}", got, want_b);
    }
}

/// What `check` says of variables in env values and path fields, as
/// `line:col: message`; empty when the config is valid.
fn check(yaml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    match kiln_core::config::parse("kiln.yaml", yaml, dir.path()) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .iter()
            .map(|d| format!("{}:{}: {}", d.line(), d.column(), d.message()))
            .collect(),
    }
}

#[test]
fn check_reads_variables_in_env_values_and_path_fields() {
    const IMAGE: &str = "name: x\nbuild:\n  base: { image: debian }\n";
    const BOOT: &str = "name: x\nbuild:\n  base: { bootstrap: { suite: bookworm } }\n";
    let cases: &[(&str, &str, &[&str])] = &[
        (IMAGE, "  env: [\"PATH=/opt/bin:$PATH\"]\n", &[]),
        (
            IMAGE,
            "  env: [\"A=${A\"]\n",
            &["4:9: invalid variable reference in `build.env[0]`: `${` is never closed with `}`"],
        ),
        (
            IMAGE,
            "  env: { A: \"${:-x}\" }\n",
            &[
                "4:13: invalid variable reference in `build.env.A`: `${` is not followed by a variable name",
            ],
        ),
        // The base image's environment is the build's to know.
        (IMAGE, "  habitat: { work_dir: $HOME/w }\n", &[]),
        // A bootstrap base sets `PATH` alone: anything else must come from `env`.
        (
            BOOT,
            "  habitat: { work_dir: $WORK/w }\n",
            &["4:24: unset variable `$WORK` in `build.habitat.work_dir` and no default"],
        ),
        (BOOT, "  habitat: { work_dir: \"${WORK:-/work}/w\" }\n", &[]),
        (BOOT, "  env: [W=/w]\n  habitat: { work_dir: $W/x }\n", &[]),
        // Known before the build, the expanded path is checked as any path.
        (
            BOOT,
            "  env: [W=rel]\n  habitat: { work_dir: $W/x }\n",
            &["5:24: `build.habitat.work_dir` must be an absolute path, found `rel/x`"],
        ),
        (
            IMAGE,
            "  env: [W=/w]\n  verify: { files: [\"$W/../x\"] }\n",
            &["5:21: `build.verify.files[0]` must not contain `..`, found `/w/../x`"],
        ),
        (
            IMAGE,
            "  repos: [{ url: a, path: \"${P\" }]\n",
            &[
                "4:27: invalid variable reference in `build.repos[0].path`: `${` is never closed with `}`",
            ],
        ),
    ];
    for (head, body, want) in cases {
        let yaml = format!("{head}{body}");
        let got = check(&yaml);
        let got: Vec<String> = got
            .into_iter()
            .filter(|m| !m.contains("repo") || m.contains("path"))
            .collect();
        assert_eq!(got, *want, "{yaml}");
    }
}
