//! Property tests of the step keys (SPEC §5): inside setup, and inside repos
//! with `commands`, an edit invalidates exactly from the step it touches and
//! every step after it, never a step before; reorderings of order-insensitive
//! lists, comments, YAML style and `description` change no step key; a
//! change before the phase (another phase, a fact) changes every step key.

use kiln_core::Phase;
use kiln_core::config::{self, Config};
use kiln_core::keys::chain::KeyChain;
use kiln_core::keys::{BaseFact, Facts};
use proptest::prelude::*;

const BASE: &str = r#"
name: steps
description: a habitat for step key tests
build:
  base:
    image: debian:bookworm-slim
  users:
    - { name: dev, uid: 1000 }
  env:
    - A=1
  setup:
    packages:
      apt: [curl, git, unzip]
      pip: [httpie, rich]
    commands:
      root: ["echo r0", "echo r1", "echo r2", "echo r3"]
      user: dev
      scripts: ["echo s0", "echo s1"]
  repos:
    - { url: https://example.invalid/app.git, path: /work/app, ref: main, owner: dev, commands: ["npm ci", "npm run build"] }
    - { url: https://example.invalid/lib.git, path: /work/lib, commands: ["make"] }
"#;

fn parse(text: &str) -> Config {
    let dir = std::env::temp_dir().join(format!("kiln-step-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    match config::parse("kiln.yaml", text, &dir) {
        Ok(c) => c,
        Err(d) => panic!("{d}\n---\n{text}"),
    }
}

fn facts() -> Facts {
    Facts {
        base: BaseFact::Image {
            reference: "debian:bookworm-slim".into(),
            id: Some("sha256:aaaa".into()),
        },
        copies: Vec::new(),
        repos: vec!["1".repeat(40), "2".repeat(40)],
        init: None,
    }
}

/// Every step of setup then repos: (phase, step name, key).
fn steps(c: &Config, f: &Facts) -> Vec<(Phase, String, String)> {
    let chain = KeyChain::compute(c, f);
    [Phase::Setup, Phase::Repos]
        .iter()
        .flat_map(|p| {
            chain
                .get(*p)
                .steps
                .iter()
                .map(|s| (*p, s.name.clone(), s.key.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The first step whose key differs (by name), asserting that every later
/// step of the same phase differs too.
fn first_changed(a: &[(Phase, String, String)], b: &[(Phase, String, String)]) -> Option<String> {
    assert_eq!(a.len(), b.len(), "the edit keeps the number of steps");
    let first = a.iter().zip(b).position(|(x, y)| x.2 != y.2)?;
    for i in first..a.len() {
        if a[i].0 == a[first].0 {
            assert_ne!(
                a[i].2, b[i].2,
                "step `{}` kept its key after `{}` changed",
                a[i].1, a[first].1
            );
        }
    }
    Some(format!("{}:{}", a[first].0.name(), a[first].1))
}

#[test]
fn the_steps_are_the_packages_each_root_command_each_script_and_the_repos() {
    let names: Vec<String> = steps(&parse(BASE), &facts())
        .into_iter()
        .map(|(p, n, _)| format!("{}:{n}", p.name()))
        .collect();
    assert_eq!(
        names,
        [
            "setup:packages",
            "setup:commands.root[0]",
            "setup:commands.root[1]",
            "setup:commands.root[2]",
            "setup:commands.root[3]",
            "setup:commands.scripts[0]",
            "setup:commands.scripts[1]",
            "repos:checkout",
            "repos:repos[0].commands[0]",
            "repos:repos[0].commands[1]",
            "repos:repos[1].commands[0]",
        ]
    );
}

#[test]
fn each_edit_invalidates_exactly_from_its_step() {
    let base = steps(&parse(BASE), &facts());
    let cases: &[(&str, &str, &str)] = &[
        (
            "apt: [curl, git, unzip]",
            "apt: [curl, git]",
            "setup:packages",
        ),
        ("pip: [httpie, rich]", "pip: [httpie]", "setup:packages"),
        ("\"echo r0\"", "\"echo R0\"", "setup:commands.root[0]"),
        ("\"echo r2\"", "\"echo R2\"", "setup:commands.root[2]"),
        ("\"echo r3\"", "\"echo R3\"", "setup:commands.root[3]"),
        // The user is the scripts' input, not the root commands'.
        ("user: dev\n", "user: root\n", "setup:commands.scripts[0]"),
        ("\"echo s1\"", "\"echo S1\"", "setup:commands.scripts[1]"),
        // The shell runs every step.
        (
            "  setup:\n",
            "  setup:\n    shell: [/bin/bash, -c]\n",
            "setup:packages",
        ),
        ("ref: main", "ref: dev", "repos:checkout"),
        (
            "\"npm run build\"",
            "\"npm run dist\"",
            "repos:repos[0].commands[1]",
        ),
        ("[\"make\"]", "[\"make all\"]", "repos:repos[1].commands[0]"),
        // A repo command runs as the repo's owner, in its path.
        (
            "path: /work/lib, commands",
            "path: /work/lib, owner: dev, commands",
            "repos:checkout",
        ),
    ];
    for (from, to, want) in cases {
        assert!(BASE.contains(from), "edit {from:?} does not apply");
        let edited = steps(&parse(&BASE.replacen(from, to, 1)), &facts());
        assert_eq!(
            first_changed(&base, &edited).as_deref(),
            Some(*want),
            "editing {from:?} -> {to:?}"
        );
    }
}

#[test]
fn neutral_rewrites_change_no_step_key() {
    let base = steps(&parse(BASE), &facts());
    let cases: &[(&str, &str)] = &[
        (
            "description: a habitat for step key tests",
            "description: another",
        ),
        ("apt: [curl, git, unzip]", "apt: [unzip, curl, git]"),
        ("apt: [curl, git, unzip]", "apt: [git, curl, unzip, git]"),
        (
            "pip: [httpie, rich]",
            "pip:\n        - rich\n        - httpie",
        ),
        ("name: steps\n", "name: steps # a comment\n# another\n"),
        ("  setup:\n", "  setup:\n    shell: [/bin/sh, -e, -c]\n"),
        (
            "root: [\"echo r0\", \"echo r1\", \"echo r2\", \"echo r3\"]",
            "root:\n        - 'echo r0'\n        - echo r1\n        - \"echo r2\"\n        - echo r3",
        ),
    ];
    for (from, to) in cases {
        assert!(BASE.contains(from), "rewrite {from:?} does not apply");
        let edited = steps(&parse(&BASE.replacen(from, to, 1)), &facts());
        assert_eq!(first_changed(&base, &edited), None, "{from:?} -> {to:?}");
    }
}

#[test]
fn a_change_before_the_phase_changes_every_step_key_and_a_commit_only_the_repos() {
    let c = parse(BASE);
    let base = steps(&c, &facts());
    let env = steps(&parse(&BASE.replacen("- A=1", "- A=2", 1)), &facts());
    assert!(base.iter().zip(&env).all(|(a, b)| a.2 != b.2));
    let mut f = facts();
    f.repos[1] = "3".repeat(40);
    let moved = steps(&c, &f);
    assert_eq!(
        first_changed(&base, &moved).as_deref(),
        Some("repos:checkout")
    );
    // A step key is never a phase key, and the phase keys are as before steps.
    let chain = KeyChain::compute(&c, &facts());
    let phase_keys: Vec<String> = chain.0.iter().map(|p| p.key.to_string()).collect();
    assert!(base.iter().all(|s| !phase_keys.contains(&s.2)));
}

#[test]
fn a_repo_without_commands_is_one_step_less_and_keeps_the_phase_key() {
    // Without any commands the repos phase is not run in steps, and its key
    // is the one it had before `commands` existed.
    let without = BASE
        .replacen(", commands: [\"npm ci\", \"npm run build\"]", "", 1)
        .replacen(", commands: [\"make\"]", "", 1);
    let c = parse(&without);
    let chain = KeyChain::compute(&c, &facts());
    assert!(chain.get(Phase::Repos).steps.is_empty());
    assert!(
        !chain
            .get(Phase::Repos)
            .inputs
            .to_string()
            .contains("commands"),
        "{}",
        chain.get(Phase::Repos).inputs
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Generated command lists: editing command `k` of a random list
    /// invalidates exactly from its step; the packages step never changes.
    #[test]
    fn generated_command_edits_invalidate_from_their_step(
        root in prop::collection::vec("[a-z ]{1,12}", 1..8),
        scripts in prop::collection::vec("[a-z ]{1,12}", 0..5),
        pick in any::<prop::sample::Index>(),
    ) {
        let yaml = |root: &[String], scripts: &[String]| {
            let list = |v: &[String]| v.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
            format!(
                "name: gen\nbuild:\n  base: {{ image: debian }}\n  setup:\n    packages: {{ apt: [curl] }}\n    commands:\n      root: [{}]\n      scripts: [{}]\n",
                list(root), list(scripts)
            )
        };
        let all = root.len() + scripts.len();
        let k = pick.index(all);
        let (mut r2, mut s2) = (root.clone(), scripts.clone());
        let want = if k < root.len() {
            r2[k].push('!');
            format!("setup:commands.root[{k}]")
        } else {
            s2[k - root.len()].push('!');
            format!("setup:commands.scripts[{}]", k - root.len())
        };
        let f = facts();
        let a = steps(&parse(&yaml(&root, &scripts)), &f);
        let b = steps(&parse(&yaml(&r2, &s2)), &f);
        prop_assert_eq!(first_changed(&a, &b), Some(want));
        prop_assert_eq!(&a[0], &b[0]);
    }
}
