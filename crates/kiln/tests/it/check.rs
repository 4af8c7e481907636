//! `kiln check` catches what the build would trip on: each problem located,
//! all of them in one run, exit 2, and a `build` of the same file builds
//! nothing. And what people write builds: nested habitat directories, a
//! work dir that is an existing home.

use crate::support;

use support::{Habitat, docker};

/// Bug: each of these passed `check` (or came out as "this is a bug in
/// kiln" at 1:1, hiding the rest), and the build tripped on it later.
#[test]
fn regression_check_catches_what_the_build_would_trip_on() {
    let h = Habitat::new("check-trips");
    h.write("tool.sh", "#!/bin/sh\n");
    h.write("tree/a", "a\n");
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  users: [{ name: dev, home: /home/../dev }]
  env: { GREETING: "hi\0there" }
  habitat: { dirs: [/srv/../opt], work_dir: /work }
  files:
    copies: [{ source: tree, dest: / }]
  repos: [{ url: ./no-such-repo, path: /work/app }]
  tools:
    - { name: t, source: "file:///etc/passwd", sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5 }
    - { name: u, source: tool.sh, sha256: 5942c9b0934e510ee61eb3e30273f1b3fe2590df93933a93d7c58b81d19c8ff5, dest: /usr/local/bin/ }
  final: { user: "root:staff\e]0;title\a" }
instances:
  defaults: { restart: sometimes }
"#,
    );
    let dir = std::fs::canonicalize(h.dir()).expect("canonical habitat dir");
    let shown = |s: &str| {
        s.replace(&dir.display().to_string(), "[HABITAT]")
            .replace(&h.name, "[NAME]")
    };
    let run = h.kiln(&["check"]).run();
    run.assert_code(2);
    assert_eq!(run.stdout, "");
    assert!(
        !run.stderr.contains('\u{1b}') && !run.stderr.contains('\u{7}'),
        "raw control characters on the terminal:\n{}",
        run.stderr
    );
    insta::assert_snapshot!(shown(&run.stderr));
    let build = h.build(&[]);
    build.assert_code(2);
    assert_eq!(shown(&build.stderr), shown(&run.stderr));
    assert!(support::images_of(&h.name).is_empty());
    assert!(support::tags_of(&h.name).is_empty());
    assert!(support::containers_of(&h.name).is_empty());
}

/// Bug: a `kiln.yaml` that is not UTF-8 was reported with no line or column.
#[test]
fn regression_a_config_that_is_not_utf8_is_located() {
    let h = Habitat::new("check-utf8");
    std::fs::write(
        h.dir().join("kiln.yaml"),
        b"name: x\nbuild:\n  base: { image: caf\xe9 }\n",
    )
    .expect("write");
    let run = h.kiln(&["check"]).run();
    run.assert_code(2);
    insta::assert_snapshot!(run.stderr);
}

/// `stat` of `paths` in a throwaway container of `image`: `uid:gid mode mtime`.
fn stat_in(name: &str, image: &str, paths: &[&str]) -> Vec<String> {
    let out = docker(
        &[
            "run",
            "--rm",
            "--label",
            &format!("dev.kiln.habitat={name}"),
            "--entrypoint",
            "/bin/stat",
            image,
            "-c",
            "%u:%g %a %Y",
        ]
        .into_iter()
        .chain(paths.iter().copied())
        .collect::<Vec<_>>(),
    );
    out.lines().map(str::to_string).collect()
}

/// Bug: `habitat.dirs` with one directory inside another (`[/a/b, /a]`, or
/// the same one spelt twice), or a `work_dir` that is the parent of a listed
/// directory, failed at 4-habitat with the engine's "duplicates of file
/// paths not supported", exit 3.
#[test]
fn regression_nested_habitat_dirs_build() {
    let h = Habitat::new("nested-dirs");
    h.config(
        "name: @NAME@\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  habitat:\n    dirs: [/srv/a/b, /srv/a, /srv//a/b/, /w/x]\n    work_dir: /w\n",
    );
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);
    let got = stat_in(&h.name, &image, &["/srv/a", "/srv/a/b", "/w", "/w/x"]);
    let owners: Vec<&str> = got.iter().map(|l| l.rsplit_once(' ').unwrap().0).collect();
    assert_eq!(owners, ["0:0 755", "0:0 755", "0:0 755", "0:0 755"]);
}

/// Bug: `work_dir: /home/alice` left alice's home root-owned, mode 0755,
/// mtime 1970: the habitat phase wrote every listed directory afresh. An
/// existing directory keeps its owner, mode and time, as `mkdir -p` does.
#[test]
fn regression_an_existing_work_dir_keeps_its_owner_mode_and_time() {
    let h = Habitat::new("existing-home");
    h.config(
        "name: @NAME@\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  users: [{ name: alice, uid: 1500 }]\n  habitat:\n    dirs: [/tmp]\n    work_dir: /home/alice\n",
    );
    h.build_ok(&[]);
    let users = format!("habitat-{}:2-users", h.name);
    let latest = format!("habitat-{}:latest", h.name);
    let paths = ["/home/alice", "/home", "/tmp"];
    let before = stat_in(&h.name, &users, &paths);
    assert!(before[0].starts_with("1500:1500 "), "{before:?}");
    assert!(before[2].starts_with("0:0 1777 "), "{before:?}");
    assert_eq!(stat_in(&h.name, &latest, &paths), before);
}

/// `kiln services` prints the boot graph stage by stage and runs nothing;
/// a cycle is refused as `check` refuses it (exit 2, located).
#[test]
fn services_prints_the_boot_graph_and_refuses_a_cycle() {
    let h = Habitat::new("services-graph");
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
services:
  web: { command: "httpd -f", after: [db], ready: { tcp: 8080 } }
  db: { command: [db, serve], stop: { signal: SIGINT, grace: 30s }, restart: on-failure }
  seed: { oneshot: true, after: [db], command: seed, creates: /data/seeded }
"#,
    );
    let run = h.kiln(&["services"]).run();
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    assert!(
        lines[1].starts_with("1. db ")
            && lines[1].contains("stop: SIGINT, grace 30s; restart on-failure, 5 a minute"),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].starts_with("2. seed ") && lines[2].contains("skipped when /data/seeded exists"),
        "{}",
        run.stdout
    );
    assert!(
        lines[3].starts_with("2. web ")
            && lines[3].contains("ready: tcp 127.0.0.1:8080 every 100ms, within 60s"),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[4],
        "no main process: the container runs until it is stopped"
    );
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
services:
  a: { command: x, after: [b] }
  b: { command: x, after: [a] }
"#,
    );
    let run = h.kiln(&["services"]).run();
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("services wait for each other: `a` -> `b` -> `a`"),
        "{}",
        run.stderr
    );
}
