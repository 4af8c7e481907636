//! Snapshots of the rendered diagnostics, exactly as `kiln check` prints them, for
//! a few representative broken files.

use std::path::Path;

use kiln_core::config;

/// The rendered diagnostics of a config that must fail. The habitat directory
/// does not exist, so no temporary path can leak into a snapshot.
fn render(yaml: &str) -> String {
    match config::parse(
        "habitats/demo/kiln.yaml",
        yaml,
        Path::new("/nonexistent/habitats/demo"),
    ) {
        Ok(c) => panic!("expected diagnostics, parsed {c:?}"),
        Err(d) => d.to_string(),
    }
}

/// Snapshot under `name`, without the (long) input expression in the header:
/// the input is in the test itself.
fn assert_rendered(name: &str, rendered: String) {
    insta::with_settings!({ omit_expression => true }, {
        insta::assert_snapshot!(name, rendered);
    });
}

#[test]
fn misspelt_key() {
    assert_rendered(
        "misspelt_key",
        render(
            "\
name: demo
build:
  base:
    image: debian:bookworm-slim
  users:
    - { name: dev, uid: 1000 }
  habitat:
    work_dir: /work
  files:
    volumes:
      - { source: ./shared, dest: /habitat/shared }
  verify:
    files: [/work]
  setup:
    pakages:
      apt: [curl]
",
        ),
    );
}

/// Shape errors (unknown keys, wrong types) and meaning errors (the name, the
/// mode) together: one run reports them all.
#[test]
fn several_errors_at_once() {
    assert_rendered(
        "several_errors_at_once",
        render(
            "\
name: Demo
bild: {}
build:
  base:
    imge: debian
  users:
    - name: dev
      uid: abc
      shel: /bin/sh
  setup:
    commands:
      root: [ls]
      root: [pwd]
  files:
    copies: [{ source: ../f, dest: /f, mode: \"888\" }]
  final:
    expose: [3000, [1]]
secrets:
  - { env: TOKEN }
",
        ),
    );
}

#[test]
fn several_semantic_errors_at_once() {
    assert_rendered(
        "several_semantic_errors_at_once",
        render(
            "\
name: Demo
build:
  base:
    image: debian
    habitat: ../base
  users:
    - { name: dev, uid: 1000 }
    - { name: ops, uid: 1000 }
  env:
    - DEBIAN_FRONTEND
  files:
    copies:
      - { source: ../secrets.txt, dest: /etc/app.conf, owner: dve, mode: \"0999\" }
  tools:
    - { name: jq, source: https://example.com/jq, sha256: abc, dest: /etc/app.conf }
secrets:
  - { id: npm, env: NPM_TOKEN, file: token.txt }
",
        ),
    );
}

#[test]
fn yaml_syntax_error() {
    assert_rendered(
        "yaml_syntax_error",
        render(
            "\
name: demo
build:
  base: { image: debian
  users: []
",
        ),
    );
}

/// Control characters of the config (an ESC, an OSC that would retitle the
/// terminal) are shown escaped, never sent to the terminal as they are.
#[test]
fn control_characters_are_escaped() {
    assert_rendered(
        "control_characters_are_escaped",
        render("name: \"x\\e]0;pwned\\a\"\n\"k\\e[31m\": 1\nbuild:\n  base: { image: debian }\n"),
    );
}

/// Bug: `sha256: sha256:HEX` (a digest as Docker writes it) was refused
/// without saying that only the prefix is wrong.
#[test]
fn regression_a_sha256_with_its_prefix_is_refused_with_a_hint_to_drop_it() {
    assert_rendered(
        "sha256_with_its_prefix",
        render(
            "\
name: demo
build:
  base: { image: debian:bookworm-slim }
  tools:
    - name: jq
      source: https://example.com/jq
      sha256: sha256:5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5
",
        ),
    );
}
