//! Property tests of the key chain (SPEC §5): an edit to one phase's config
//! changes exactly that phase's key and every later one; reorderings of
//! order-insensitive lists, comments, YAML style and `description` change none.
//! `services:` and the init's digest are inputs of `final` only (SPEC §9).

use kiln_core::Phase;
use kiln_core::config::{self, Config};
use kiln_core::keys::chain::KeyChain;
use kiln_core::keys::{BaseFact, Facts};
use proptest::prelude::*;

const BASE: &str = r#"
name: props
description: a habitat for property tests
build:
  base:
    image: debian:bookworm-slim
  users:
    - { name: dev, uid: 1000, groups: [sudo, adm], shell: /bin/bash }
  env:
    - A=1
    - B=2
  habitat:
    dirs: [/habitat/a, /habitat/b]
    work_dir: /work
  files:
    copies:
      - { source: kiln.yaml, dest: /etc/kiln.yaml, owner: root, mode: "0644" }
      - { source: kiln.yaml, dest: /home/dev/.gitconfig, owner: dev, late: true }
    volumes:
      - { source: ./shared, dest: /shared, readonly: true }
  setup:
    packages:
      apt: [curl, git, unzip]
      pip: [httpie, rich]
    commands:
      root: ["echo root"]
      user: dev
      scripts: ["echo user"]
  repos:
    - { url: https://example.invalid/app.git, path: /work/app, ref: main, owner: dev }
  tools:
    - { name: jq, source: https://example.invalid/jq, sha256: "0000000000000000000000000000000000000000000000000000000000000000" }
    - { name: node, source: https://example.invalid/node.tar.xz, sha256: "2222222222222222222222222222222222222222222222222222222222222222", extract: true, path: node/bin/node, dest: /usr/local/bin/node }
  verify:
    files: [/work/app/README.md]
    commands: ["git --version"]
  final:
    user: dev
    workdir: /work/app
    command: ["bash"]
    expose: [3000]
"#;

fn parse(text: &str) -> Config {
    let dir = std::env::temp_dir().join(format!("kiln-key-props-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kiln.yaml"), "name: x\n").unwrap();
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
        copies: vec!["c0".into(), "c1".into()],
        repos: vec!["1111111111111111111111111111111111111111".into()],
        init: None,
    }
}

fn keys(c: &Config, f: &Facts) -> Vec<String> {
    KeyChain::compute(c, f)
        .0
        .iter()
        .map(|p| p.key.to_string())
        .collect()
}

/// The index of the first key that differs, asserting all later ones differ too.
fn first_changed(a: &[String], b: &[String]) -> Option<usize> {
    let first = a.iter().zip(b).position(|(x, y)| x != y)?;
    for i in first..a.len() {
        assert_ne!(
            a[i],
            b[i],
            "phase {} kept its key after phase {} changed",
            i + 1,
            first + 1
        );
    }
    Some(first)
}

/// Edits of one phase's config, each with the phase it belongs to. (The base
/// is keyed by the image's id, a fact: see `facts_invalidate_their_phase`.)
fn edits() -> Vec<(Phase, &'static str, &'static str)> {
    vec![
        (Phase::Users, "uid: 1000", "uid: 1001"),
        (Phase::Users, "groups: [sudo, adm]", "groups: [sudo]"),
        (Phase::Env, "- B=2", "- B=3"),
        // A value that refers to an earlier entry means something else.
        (Phase::Env, "- B=2", "- B=$A"),
        (Phase::Env, "- B=2", "- B=$$A"),
        // A path field's variables are its own phase's input.
        (Phase::Habitat, "work_dir: /work", "work_dir: $HOME/work"),
        (Phase::Habitat, "work_dir: /work", "work_dir: /srv"),
        (
            Phase::Habitat,
            "dirs: [/habitat/a, /habitat/b]",
            "dirs: [/habitat/a]",
        ),
        (Phase::Files, "mode: \"0644\"", "mode: \"0600\""),
        (
            Phase::Files,
            "dest: /etc/kiln.yaml",
            "dest: /etc/kiln2.yaml",
        ),
        // A late copy (SPEC §2.1) is an input of tools, not of files.
        (
            Phase::Tools,
            "dest: /home/dev/.gitconfig",
            "dest: /home/dev/.gitconfig2",
        ),
        (
            Phase::Tools,
            "owner: dev, late: true",
            "owner: root, late: true",
        ),
        (
            Phase::Files,
            "owner: dev, late: true",
            "owner: dev, late: false",
        ),
        (Phase::Files, "owner: dev, late: true", "owner: dev"),
        (Phase::Setup, "apt: [curl, git, unzip]", "apt: [curl, git]"),
        // `depth` cuts the image's history: the repos phase's input.
        (
            Phase::Repos,
            "ref: main, owner: dev }",
            "ref: main, owner: dev, depth: 1 }",
        ),
        (
            Phase::Setup,
            "root: [\"echo root\"]",
            "root: [\"echo ROOT\"]",
        ),
        (
            Phase::Setup,
            "scripts: [\"echo user\"]",
            "scripts: [\"echo USER\"]",
        ),
        (
            Phase::Setup,
            "  setup:\n",
            "  setup:\n    shell: [/bin/bash, -c]\n",
        ),
        (Phase::Repos, "ref: main", "ref: dev"),
        // Repo commands run after the checkout: keyed beside the commit.
        (
            Phase::Repos,
            "url: https://example.invalid/app.git,",
            "url: https://example.invalid/app.git, commands: [\"npm ci\"],",
        ),
        (Phase::Repos, "path: /work/app", "path: /work/app2"),
        (
            Phase::Tools,
            "\"0000000000000000000000000000000000000000000000000000000000000000\"",
            "\"1111111111111111111111111111111111111111111111111111111111111111\"",
        ),
        (
            Phase::Tools,
            "extract: true, path: node/bin/node",
            "extract: true, path: node/bin/nodejs",
        ),
        (
            Phase::Tools,
            "extract: true, path: node/bin/node, dest: /usr/local/bin/node",
            "extract: true, dest: /opt",
        ),
        (
            Phase::Verify,
            "commands: [\"git --version\"]",
            "commands: [\"git --help\"]",
        ),
        (Phase::Verify, "  verify:\n", "  verify:\n    user: dev\n"),
        (Phase::Final, "command: [\"bash\"]", "command: [\"sh\"]"),
        (Phase::Final, "expose: [3000]", "expose: [3000, 4000]"),
    ]
}

#[test]
fn every_single_edit_invalidates_its_phase_and_those_after() {
    let base = keys(&parse(BASE), &facts());
    for (phase, from, to) in edits() {
        assert!(BASE.contains(from), "edit {from:?} does not apply");
        let edited = keys(&parse(&BASE.replacen(from, to, 1)), &facts());
        assert_eq!(
            first_changed(&base, &edited),
            Some(phase.index()),
            "editing {from:?} -> {to:?}"
        );
    }
}

#[test]
fn facts_invalidate_their_phase() {
    let c = parse(BASE);
    let base = keys(&c, &facts());
    let mut f = facts();
    f.base = BaseFact::Image {
        reference: "debian:bookworm-slim".into(),
        id: Some("sha256:bbbb".into()),
    };
    assert_eq!(
        first_changed(&base, &keys(&c, &f)),
        Some(Phase::Base.index())
    );
    let mut f = facts();
    f.copies[0] = "c0-edited".into();
    assert_eq!(
        first_changed(&base, &keys(&c, &f)),
        Some(Phase::Files.index())
    );
    // A late copy's content invalidates from tools only.
    let mut f = facts();
    f.copies[1] = "c1-edited".into();
    assert_eq!(
        first_changed(&base, &keys(&c, &f)),
        Some(Phase::Tools.index())
    );
    let mut f = facts();
    f.repos[0] = "2222222222222222222222222222222222222222".into();
    assert_eq!(
        first_changed(&base, &keys(&c, &f)),
        Some(Phase::Repos.index())
    );
}

#[test]
fn keys_are_deterministic_and_pinned() {
    let a = keys(&parse(BASE), &facts());
    let b = keys(&parse(BASE), &facts());
    assert_eq!(a, b);
}

fn neutral_rewrites() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "description: a habitat for property tests",
            "description: something else entirely",
        ),
        ("apt: [curl, git, unzip]", "apt: [unzip, curl, git]"),
        (
            "apt: [curl, git, unzip]",
            "apt:\n        - git\n        - unzip\n        - curl",
        ),
        ("pip: [httpie, rich]", "pip: [rich, httpie]"),
        ("groups: [sudo, adm]", "groups: [adm, sudo]"),
        ("- A=1\n    - B=2", "- B=2\n    - A=1"),
        // A reference to an earlier entry is keyed by the value it takes.
        ("- B=2", "- B=${A:+2}"),
        (
            "dirs: [/habitat/a, /habitat/b]",
            "dirs: [/habitat/b, /habitat/a]",
        ),
        (
            "{ source: ./shared, dest: /shared, readonly: true }",
            "{ source: ./other, dest: /other }",
        ),
        (
            "name: props\n",
            "name: props # a comment\n# another comment\n",
        ),
        // `cache:` bounds what is kept, never what is built (SPEC §11).
        ("name: props\n", "name: props\ncache: { keep: 0 }\n"),
        ("name: props\n", "name: props\ncache:\n  keep: 12\n"),
        (
            "name: props\n",
            "name: props\ninstances:\n  defaults: { restart: always, persist: [/home/dev] }\n  members:\n    alice: { ports: [\"127.0.0.1:8081:3000\"] }\n",
        ),
        // `registry` is not a key input (SPEC §10).
        (
            "name: props\n",
            "name: props\nregistry:\n  repository: ghcr.io/team/app\n  tags: [\"{branch}-{sha7}\", latest]\n  cache: true\n  retention: [{ match: \"pr-*\", keep: 20 }]\n",
        ),
        (
            "{ name: dev, uid: 1000, groups: [sudo, adm], shell: /bin/bash }",
            "{ shell: /bin/bash, groups: [sudo, adm], uid: 1000, name: dev }",
        ),
        ("command: [\"bash\"]", "command:\n      - 'bash'"),
        // One mode, spelt three ways (issue 10).
        ("mode: \"0644\"", "mode: 644"),
        ("mode: \"0644\"", "mode: \"644\""),
        // The defaults written out are the same build as none.
        ("  setup:\n", "  setup:\n    shell: [/bin/sh, -e, -c]\n"),
        ("  verify:\n", "  verify:\n    user: root\n"),
    ]
}

/// Env entries with references: pairs that mean the same (`true`) or not.
#[test]
fn env_references_are_keyed_by_meaning() {
    let env = |entries: &str| {
        let text = BASE.replacen("    - A=1\n    - B=2\n", entries, 1);
        assert_ne!(text, BASE, "the env rewrite applies");
        keys(&parse(&text), &facts())
    };
    let cases: &[(&str, &str, bool)] = &[
        ("    - PATH=/x:$PATH\n", "    - PATH=/x:${PATH}\n", true),
        ("    - A=1\n    - B=$A\n", "    - A=1\n    - B=1\n", true),
        ("    - A=1\n    - B=$A\n", "    - B=$A\n    - A=1\n", false),
        ("    - B=${A:-d}\n", "    - B=${A:-e}\n", false),
        ("    - A=\n    - B=${A:-d}\n", "    - A=\n    - B=d\n", true),
        ("    - B=$$A\n", "    - B=$A\n", false),
        (
            "    - A=x\n    - B=${A:+y}\n",
            "    - A=x\n    - B=y\n",
            true,
        ),
    ];
    for (a, b, same) in cases {
        let changed = first_changed(&env(a), &env(b));
        let want = if *same {
            None
        } else {
            Some(Phase::Env.id() as usize - 1)
        };
        assert_eq!(changed, want, "{a:?} vs {b:?}");
    }
}

#[test]
fn neutral_rewrites_change_no_key() {
    let base = keys(&parse(BASE), &facts());
    for (from, to) in neutral_rewrites() {
        assert!(BASE.contains(from), "rewrite {from:?} does not apply");
        let edited = keys(&parse(&BASE.replacen(from, to, 1)), &facts());
        assert_eq!(
            first_changed(&base, &edited),
            None,
            "rewriting {from:?} -> {to:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any subset of edits, applied together, invalidates from the earliest
    /// edited phase; any shuffle of the apt list changes nothing.
    #[test]
    fn random_edits_invalidate_from_the_earliest(mask in 1u64..u64::MAX, seed in any::<u64>()) {
        // Every edit can be drawn, however many the table grows to.
        prop_assert!(edits().len() <= 64);
        let base = keys(&parse(BASE), &facts());
        let mut text = BASE.to_string();
        let mut earliest: Option<Phase> = None;
        for (i, (phase, from, to)) in edits().into_iter().enumerate() {
            if mask & (1u64 << i) != 0 && text.contains(from) {
                text = text.replacen(from, to, 1);
                earliest = Some(earliest.map_or(phase, |e| e.min(phase)));
            }
        }
        // A neutral shuffle on top never matters.
        let mut apt = ["curl", "git", "unzip"];
        let mut s = seed;
        for i in (1..apt.len()).rev() {
            let j = (s % (i as u64 + 1)) as usize;
            s /= 3;
            apt.swap(i, j);
        }
        let shuffled = text.replacen("apt: [curl, git, unzip]", &format!("apt: [{}]", apt.join(", ")), 1);
        let edited = keys(&parse(&shuffled), &facts());
        prop_assert_eq!(first_changed(&base, &edited), earliest.map(Phase::index));
    }
}

/// `BASE` with services (SPEC §9's example, shaped as an app with its database).
fn with_services() -> String {
    format!("{BASE}{SERVICES}")
}

const SERVICES: &str = r#"services:
  initdb:
    oneshot: true
    creates: /var/lib/postgresql/data/PG_VERSION
    user: postgres
    command: "initdb -D /var/lib/postgresql/data"
  postgres:
    after: [initdb]
    user: postgres
    command: ["postgres", "-D", "/var/lib/postgresql/data", "-k", "/run/postgresql"]
    ready: { command: "pg_isready -q -h /run/postgresql", timeout: 60s }
    stop: { signal: SIGINT, grace: 30s }
    restart: on-failure
    env: { PGDATA: /var/lib/postgresql/data }
  migrate:
    oneshot: true
    after: [postgres]
    command: "/app/bin/migrate"
"#;

fn init_facts(digest: &str) -> Facts {
    Facts {
        init: Some(digest.to_string()),
        ..facts()
    }
}

/// Edits of `services:`, each of which means another container.
fn service_edits() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "command: \"/app/bin/migrate\"",
            "command: \"/app/bin/migrate --all\"",
        ),
        ("after: [postgres]", "after: [initdb]"),
        ("timeout: 60s", "timeout: 90s"),
        ("grace: 30s", "grace: 20s"),
        ("signal: SIGINT", "signal: SIGTERM"),
        ("restart: on-failure", "restart: always"),
        (
            "    restart: on-failure\n",
            "    restart: on-failure\n    max_restarts: 2\n",
        ),
        ("PGDATA: /var/lib/postgresql/data", "PGDATA: /data"),
        (
            "creates: /var/lib/postgresql/data/PG_VERSION",
            "creates: /data/PG_VERSION",
        ),
        (
            "user: postgres\n    command: \"initdb",
            "user: root\n    command: \"initdb",
        ),
        (
            "  migrate:\n",
            "  web:\n    after: [migrate]\n    command: \"/app/bin/web\"\n    ready: { http: \"http://127.0.0.1:8000/\" }\n  migrate:\n",
        ),
    ]
}

#[test]
fn services_and_the_init_are_inputs_of_final_only() {
    let plain = keys(&parse(BASE), &init_facts("sha256:i1"));
    let with = keys(&parse(&with_services()), &init_facts("sha256:i1"));
    assert_eq!(first_changed(&plain, &with), Some(Phase::Final.index()));
    // A new init rebuilds final only, and only where there are services.
    let new_init = keys(&parse(&with_services()), &init_facts("sha256:i2"));
    assert_eq!(first_changed(&with, &new_init), Some(Phase::Final.index()));
    assert_eq!(
        first_changed(&plain, &keys(&parse(BASE), &facts())),
        None,
        "the init's digest is no input without services"
    );
    for (from, to) in service_edits() {
        let text = with_services();
        assert!(text.contains(from), "edit {from:?} does not apply");
        let edited = keys(
            &parse(&text.replacen(from, to, 1)),
            &init_facts("sha256:i1"),
        );
        assert_eq!(
            first_changed(&with, &edited),
            Some(Phase::Final.index()),
            "editing {from:?} -> {to:?}"
        );
    }
}

/// Rewrites of `services:` that give the init the same spec.
fn neutral_service_rewrites() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grace: 30s", "grace: 30000ms"),
        ("timeout: 60s", "timeout: 1m"),
        ("signal: SIGINT", "signal: int"),
        // The defaults written out.
        ("timeout: 60s }", "timeout: 60s, interval: 100ms }"),
        (
            "    restart: on-failure\n",
            "    restart: on-failure\n    max_restarts: 5\n",
        ),
        // Key order, and the order services are declared in.
        (
            "stop: { signal: SIGINT, grace: 30s }",
            "stop: { grace: 30s, signal: SIGINT }",
        ),
        (
            "  migrate:\n    oneshot: true\n    after: [postgres]\n    command: \"/app/bin/migrate\"\n",
            "",
        ),
    ]
}

#[test]
fn neutral_service_rewrites_change_no_key() {
    let with = keys(&parse(&with_services()), &init_facts("sha256:i1"));
    for (from, to) in neutral_service_rewrites() {
        let text = with_services();
        assert!(text.contains(from), "rewrite {from:?} does not apply");
        let mut edited = text.replacen(from, to, 1);
        if to.is_empty() {
            // Moved, not removed: declared first instead of last.
            edited = edited.replacen(
                "services:\n",
                "services:\n  migrate:\n    oneshot: true\n    after: [postgres]\n    command: \"/app/bin/migrate\"\n",
                1,
            );
        }
        assert_eq!(
            first_changed(&with, &keys(&parse(&edited), &init_facts("sha256:i1"))),
            None,
            "rewriting {from:?} -> {to:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any subset of phase edits and service edits together invalidates from
    /// the earliest edited phase, final when only services changed; a grace
    /// spelt in ms or s is one key.
    #[test]
    fn random_service_edits_invalidate_final_only(
        phase_mask in 0u32..(1 << 8),
        service_mask in 0u32..(1 << 11),
        grace_s in 1u64..600,
        in_ms in any::<bool>(),
    ) {
        let spelt = |text: &str| {
            let grace = if in_ms { format!("{}ms", grace_s * 1000) } else { format!("{grace_s}s") };
            text.replacen("grace: 30s", &format!("grace: {grace}"), 1)
        };
        let original = with_services().replacen("grace: 30s", &format!("grace: {grace_s}s"), 1);
        let base = keys(&parse(&original), &init_facts("sha256:i1"));
        let mut text = with_services();
        let mut earliest: Option<Phase> = None;
        for (i, (phase, from, to)) in edits().into_iter().take(8).enumerate() {
            if phase_mask & (1 << i) != 0 && text.contains(from) {
                text = text.replacen(from, to, 1);
                earliest = Some(earliest.map_or(phase, |e| e.min(phase)));
            }
        }
        for (i, (from, to)) in service_edits().into_iter().enumerate() {
            // The grace edit would undo the generated grace: left to the table.
            if service_mask & (1 << i) != 0 && from != "grace: 30s" && text.contains(from) {
                text = text.replacen(from, to, 1);
                earliest = Some(earliest.map_or(Phase::Final, |e| e.min(Phase::Final)));
            }
        }
        let edited = keys(&parse(&spelt(&text)), &init_facts("sha256:i1"));
        prop_assert_eq!(first_changed(&base, &edited), earliest.map(Phase::index));
    }
}
