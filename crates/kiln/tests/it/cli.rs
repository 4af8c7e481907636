//! End-to-end tests of the `kiln` binary against the real Docker Engine: each
//! test writes a habitat into a temp dir, runs `kiln`, and checks the whole
//! output, the json events, and what the engine holds afterwards.
//!
//! Over 600 lines: one test per user-visible promise of the CLI, sharing the
//! habitat builder in `support`; each test stands alone.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::Command;

use support::{Habitat, docker, docker_output, sh};

const PHASES: [&str; 10] = [
    "base", "users", "env", "habitat", "files", "setup", "repos", "tools", "verify", "final",
];

fn tags(phases: &[&str]) -> Vec<String> {
    phases
        .iter()
        .map(|p| {
            let i = PHASES.iter().position(|q| q == p).expect("a phase") + 1;
            format!("{i}-{p}")
        })
        .collect()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The time now as docker's `--since`/`--until` take it, with nanoseconds.
fn docker_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// The containers of habitat `name` the engine created between two instants.
fn containers_created(name: &str, since: &str, until: &str) -> Vec<String> {
    let out = docker(&[
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--filter",
        &format!("label=dev.kiln.habitat={name}"),
        "--format",
        "{{.ID}}",
    ]);
    out.lines().map(str::to_string).collect()
}

/// Runs `cmd` in a throwaway container of `image` (labelled, removed after).
fn run_in(name: &str, image: &str, cmd: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "--label",
        &format!("dev.kiln.habitat={name}"),
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        cmd,
    ])
}

/// A habitat that configures every phase: a local git repo beside it, a
/// local tool with its checksum, a copied file and a runtime volume.
fn full_habitat(prefix: &str) -> Habitat {
    let h = Habitat::new(prefix);
    let repo = h.root().join("repo");
    std::fs::create_dir(&repo).expect("repo dir");
    sh(
        &repo,
        "git init -q -b main . && echo one > README && git add README && \
         git -c user.name=t -c user.email=t@t commit -qm one",
    );
    h.write("files/motd", "welcome\n");
    h.write("tools/hello.sh", "#!/bin/sh\necho hello\n");
    let sha = sh(&h.dir(), "sha256sum tools/hello.sh | cut -d' ' -f1");
    h.config(&FULL.replace("@SHA@", &sha));
    h
}

const FULL: &str = r#"name: @NAME@
description: first description
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  env:
    - GREETING=hello
  habitat:
    dirs: [/habitat/tools]
    work_dir: /work
  files:
    copies:
      - { source: files/motd, dest: /etc/motd, mode: "0644" }
    volumes:
      - { source: ./shared, dest: /habitat/shared }
  setup:
    commands:
      root: ["echo one > /setup-marker"]
  repos:
    - { url: "@ROOT@/repo", path: /work/app, ref: main }
  tools:
    - { name: hello, source: tools/hello.sh, sha256: "@SHA@" }
  verify:
    files: [/etc/motd]
    commands: ["test -f /work/app/README"]
  final:
    command: ["sh"]
"#;

/// Base, env, setup and final only: six phases are not configured.
/// A busybox habitat with an env and one setup command (shared with `cli_surface`).
pub(crate) const SPARSE: &str = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  env: [GREETING=hello]
  setup:
    commands:
      root: ["echo built > /setup-marker"]
  final:
    command: ["sh"]
"#;

#[test]
fn cold_build_tags_every_phase_and_labels_snapshots() {
    let h = Habitat::new("cold");
    h.config(SPARSE);
    let run = h.build_ok(&[]);
    let ends = run.phase_ends();
    assert_eq!(
        ends.iter().map(|e| e.phase.as_str()).collect::<Vec<_>>(),
        PHASES.to_vec()
    );
    for e in &ends {
        let configured = ["base", "env", "setup", "final"].contains(&e.phase.as_str());
        if configured {
            assert_eq!(
                (e.status.as_str(), e.reason.as_str()),
                ("built", "no snapshot yet"),
                "{e:?}"
            );
        } else {
            assert_eq!(
                (e.status.as_str(), e.reason.as_str()),
                ("cached", "not configured"),
                "{e:?}"
            );
        }
        assert_eq!(e.image, format!("habitat-{}:{}-{}", h.name, e.id, e.phase));
        assert_eq!(e.key.len(), 64, "{e:?}");
    }
    let final_key = &run.end("final").key;
    let final_image = format!("habitat-{}:final-{}", h.name, &final_key[..12]);
    assert_eq!(run.build_end()["status"], "ok");
    assert_eq!(run.build_end()["image"], final_image.as_str());

    let mut expected: std::collections::BTreeSet<String> = tags(&PHASES).into_iter().collect();
    expected.insert(format!("final-{}", &final_key[..12]));
    expected.insert("latest".into());
    assert_eq!(support::tags_of(&h.name), expected);
    assert_eq!(
        support::image_id(&format!("habitat-{}:latest", h.name)),
        support::image_id(&final_image)
    );

    let labels = support::labels_of(&format!("habitat-{}:6-setup", h.name));
    assert_eq!(labels["dev.kiln.habitat"], h.name);
    assert_eq!(labels["dev.kiln.phase"], "6-setup");
    assert_eq!(labels["dev.kiln.key"], run.end("setup").key);
    assert_eq!(labels["dev.kiln.parent"], run.end("files").key);
    let inputs: serde_json::Value =
        serde_json::from_str(&labels["dev.kiln.inputs"]).expect("inputs label is json");
    assert!(
        inputs.to_string().contains("echo built > /setup-marker"),
        "{inputs}"
    );
    assert_eq!(
        run_in(&h.name, &final_image, "cat /setup-marker; echo $GREETING"),
        "built\nhello\n"
    );
    assert!(support::containers_of(&h.name).is_empty());
}

#[test]
fn noop_build_is_all_cached_and_creates_no_container() {
    let h = full_habitat("noop");
    let first = h.build_ok(&[]);
    assert_eq!(first.built(), names(&PHASES));
    let before = support::containers_of(&h.name).len();
    let since = docker_now();
    let run = h.build_ok(&[]);
    let until = docker_now();
    for e in run.phase_ends() {
        assert_eq!(e.status, "cached", "{e:?}");
    }
    assert!(run.events().iter().all(|e| e["event"] != "phase_start"));
    assert_eq!(support::containers_of(&h.name).len(), before);
    assert_eq!(
        containers_created(&h.name, &since, &until),
        Vec::<String>::new()
    );
    assert_eq!(run.build_end(), {
        let mut v = first.build_end();
        v["duration_ms"] = run.build_end()["duration_ms"].clone();
        v
    });
}

/// Every phase from `first` on, among those `full_habitat` configures.
fn from(first: &str) -> Vec<String> {
    let i = PHASES.iter().position(|p| *p == first).expect("a phase");
    names(&PHASES[i..])
}

#[test]
fn an_edit_to_each_phase_rebuilds_from_that_phase() {
    let h = full_habitat("edits");
    h.build_ok(&[]);
    let check = |what: &str, first: &str| {
        let run = h.build_ok(&[]);
        assert_eq!(
            run.built(),
            from(first),
            "after editing {what}:\n{}",
            run.stdout
        );
        let head = run.end(first);
        assert!(
            !head.reason.is_empty()
                && !head.reason.contains("after")
                && !head.reason.contains("no snapshot"),
            "reason of `{first}` after editing {what}: {head:?}"
        );
        for later in &from(first)[1..] {
            let e = run.end(later);
            assert!(
                e.reason.contains(&format!("after {first} rebuilt")) || e.reason.contains(first),
                "{e:?}"
            );
        }
        run
    };

    h.edit("uid: 1000", "uid: 1001");
    let run = check("users", "users");
    assert!(
        run.end("users").reason.contains("users"),
        "{:?}",
        run.end("users")
    );

    h.edit("GREETING=hello", "GREETING=hi");
    let run = check("env", "env");
    assert!(
        run.end("env").reason.contains("GREETING"),
        "{:?}",
        run.end("env")
    );

    h.edit("dirs: [/habitat/tools]", "dirs: [/habitat/tools2]");
    check("habitat dirs", "habitat");

    h.write("files/motd", "welcome back\n");
    let run = check("a copied file", "files");
    assert_eq!(run.end("files").reason, "input file changed: files/motd");
    let latest = format!("habitat-{}:latest", h.name);
    assert_eq!(run_in(&h.name, &latest, "cat /etc/motd"), "welcome back\n");

    h.edit("echo one > /setup-marker", "echo two > /setup-marker");
    let run = check("a root command", "setup");
    assert!(
        run.end("setup").reason.contains("setup.commands.root"),
        "{:?}",
        run.end("setup")
    );
    assert_eq!(run_in(&h.name, &latest, "cat /setup-marker"), "two\n");

    let repo = h.root().join("repo");
    let old = sh(&repo, "git rev-parse HEAD");
    sh(
        &repo,
        "echo two > README && git -c user.name=t -c user.email=t@t commit -qam two",
    );
    let new = sh(&repo, "git rev-parse HEAD");
    let run = check("the repo's branch", "repos");
    let reason = run.end("repos").reason;
    assert!(
        reason.contains(&format!("moved from {} to {}", &old[..12], &new[..12])),
        "{reason}"
    );
    assert_eq!(run_in(&h.name, &latest, "cat /work/app/README"), "two\n");

    h.write("tools/hello.sh", "#!/bin/sh\necho hello again\n");
    let sha = sh(&h.dir(), "sha256sum tools/hello.sh | cut -d' ' -f1");
    let text = std::fs::read_to_string(h.dir().join("kiln.yaml")).expect("read");
    let old_sha = text
        .split("sha256: \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a sha256")
        .to_string();
    h.edit(&old_sha, &sha);
    check("a tool", "tools");
    assert_eq!(run_in(&h.name, &latest, "hello"), "hello again\n");

    h.edit("files: [/etc/motd]", "files: [/etc/motd, /work/app/README]");
    check("verify", "verify");

    h.edit("command: [\"sh\"]", "command: [\"sh\"]\n    expose: [3000]");
    check("final", "final");

    // Edits that must rebuild nothing.
    let nothing = |what: &str| {
        let run = h.build_ok(&[]);
        assert_eq!(
            run.built(),
            Vec::<String>::new(),
            "after {what}:\n{}",
            run.stdout
        );
    };
    h.edit("first description", "another description");
    nothing("changing the description");
    h.edit(
        "  env:\n    - GREETING=hi\n",
        "  # a comment\n  env: [ 'GREETING=hi' ]   # style\n",
    );
    nothing("changing comments and YAML style");
    h.edit(
        "dest: /habitat/shared }",
        "dest: /habitat/other, readonly: true }",
    );
    nothing("changing a runtime volume");
}

#[test]
fn plan_keys_ignore_the_order_of_apt_packages() {
    let h = Habitat::new("apt");
    let cfg = |apt: &str| {
        format!(
            "name: @NAME@\nbuild:\n  base: {{ image: \"kiln-test/busybox:latest\" }}\n  setup:\n    packages:\n      apt: {apt}\n"
        )
    };
    let keys = |apt: &str| {
        h.config(&cfg(apt));
        let run = h.kiln(&["plan", "--json"]).run();
        run.assert_code(0);
        run.stdout
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("json");
                (
                    v["phase"].as_str().unwrap_or("").to_string(),
                    v["key"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let a = keys("[curl, git, unzip]");
    let b = keys("[unzip, curl, git]");
    assert_eq!(a.len(), 10);
    assert_eq!(a, b);
    // The keys do read the list: a different list is a different key.
    let c = keys("[curl, git]");
    assert_ne!(a[5], c[5]);
    assert!(support::images_of(&h.name).is_empty());
}

#[test]
fn rebuild_flag_by_id_or_name_forces_from_repos() {
    let h = full_habitat("rebuild");
    h.build_ok(&[]);
    for flag in ["7", "repos"] {
        let run = h.build_ok(&["--rebuild", flag]);
        assert_eq!(
            run.built(),
            from("repos"),
            "--rebuild {flag}:\n{}",
            run.stdout
        );
        // The first phase built says it was forced; later ones say after which.
        let head = run.end("repos");
        assert_eq!(head.reason, "forced by --rebuild repos", "--rebuild {flag}");
        for p in &from("repos")[1..] {
            let e = run.end(p);
            assert_eq!(e.reason, "after repos rebuilt", "--rebuild {flag}: {e:?}");
        }
        for p in ["base", "users", "env", "habitat", "files", "setup"] {
            assert_eq!(run.end(p).status, "cached");
        }
    }
}

#[test]
fn a_failing_phase_exits_1_keeps_earlier_snapshots_and_resumes() {
    let h = full_habitat("fail");
    h.edit(
        "root: [\"echo one > /setup-marker\"]",
        "root: [\"echo first-line; echo last-line; exit 3\"]",
    );
    let run = h.build(&[]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("echo first-line; echo last-line; exit 3"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("exit code: 3"), "{}", run.stderr);
    assert!(
        run.stderr.contains("first-line") && run.stderr.contains("| last-line"),
        "{}",
        run.stderr
    );
    assert_eq!(run.end("setup").status, "failed");
    assert_eq!(run.build_end()["status"], "failed");
    let kept: std::collections::BTreeSet<String> =
        tags(&["base", "users", "env", "habitat", "files"])
            .into_iter()
            .collect();
    assert_eq!(support::tags_of(&h.name), kept);
    assert!(support::containers_of(&h.name).is_empty());

    h.edit("exit 3", "true");
    let run = h.build_ok(&[]);
    for p in ["base", "users", "env", "habitat", "files"] {
        assert_eq!(run.end(p).status, "cached", "{p}");
    }
    assert_eq!(run.built(), from("setup"));
}

#[test]
fn an_interrupted_build_leaves_no_container_and_resumes() {
    let h = Habitat::new("intr");
    h.config(&SPARSE.replace(
        "echo built > /setup-marker",
        "sleep 8; echo slept > /setup-marker",
    ));
    let mut child = h.kiln(&["build", ".", "--progress", "json"]).spawn();
    let stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        let started = line.contains("\"phase_start\"") && line.contains("\"setup\"");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.contains("setup")), "{seen:?}");
    // Interrupt once the setup container exists, so there is one to clean up.
    while support::containers_of(&h.name).is_empty() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "kiln ended early: {seen:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = child.wait_with_output().expect("kiln ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    // Counted in words, as clashes are (issue 10).
    assert!(
        stderr.contains("interrupted: removed 1 build container;")
            || stderr.contains("build containers;"),
        "{stderr}"
    );
    assert!(!stderr.contains("(s)"), "{stderr}");
    assert!(support::containers_of(&h.name).is_empty());
    let tags = support::tags_of(&h.name);
    assert!(!tags.contains("6-setup"), "{tags:?}");
    assert!(tags.contains("5-files"), "{tags:?}");

    let run = h.build_ok(&[]);
    assert_eq!(run.built(), names(&["setup", "final"]));
    assert_eq!(run.end("env").status, "cached");
}

#[test]
fn a_copied_file_changed_without_size_or_mtime_change_rebuilds_files() {
    let h = full_habitat("mtime");
    h.build_ok(&[]);
    let motd = h.dir().join("files/motd");
    let reference = h.root().join("motd.ref");
    sh(
        h.root(),
        &format!("cp -p {} {}", motd.display(), reference.display()),
    );
    std::fs::write(&motd, "WELCOME\n").expect("write");
    sh(
        h.root(),
        &format!("touch -r {} {}", reference.display(), motd.display()),
    );
    let run = h.build_ok(&[]);
    assert_eq!(run.built(), from("files"));
    assert_eq!(run.end("files").reason, "input file changed: files/motd");
    let latest = format!("habitat-{}:latest", h.name);
    assert_eq!(run_in(&h.name, &latest, "cat /etc/motd"), "WELCOME\n");
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_secret_never_enters_a_snapshot() {
    let h = Habitat::new("secret");
    let secret = format!("tok-{}-Zq9xW", h.name);
    let marker = format!("marker-{}-visible", h.name);
    h.config(&format!(
        r#"name: @NAME@
build:
  base: {{ image: "kiln-test/busybox:latest" }}
  setup:
    commands:
      root:
        - printf %s "$KILN_TEST_TOKEN" | wc -c > /token-length
        - echo {marker} > /marker
  final:
    command: ["sh"]
secrets:
  - {{ id: tok, env: KILN_TEST_TOKEN }}
"#
    ));
    let run = h
        .kiln(&["build", ".", "--progress", "json"])
        .env("KILN_TEST_TOKEN", &secret)
        .run();
    run.assert_code(0);
    assert!(!run.stdout.contains(&secret) && !run.stderr.contains(&secret));
    let latest = format!("habitat-{}:latest", h.name);
    assert_eq!(
        run_in(
            &h.name,
            &latest,
            "tr -d ' ' < /token-length; ls /run/secrets 2>&1 | wc -l"
        ),
        format!("{}\n0\n", secret.len())
    );
    let images = support::images_of(&h.name);
    assert!(images.len() >= 3, "{images:?}");
    for id in &images {
        let save = docker_output(&["save", id]);
        assert!(
            save.status.success(),
            "{}",
            String::from_utf8_lossy(&save.stderr)
        );
        // `docker save` writes uncompressed nested layer tars, so a byte
        // search of the stream reaches every file of every layer.
        assert!(
            !contains(&save.stdout, &secret),
            "secret in `docker save {id}`"
        );
        for args in [
            vec!["inspect", id.as_str()],
            vec!["history", "--no-trunc", id.as_str()],
        ] {
            let out = docker(&args);
            assert!(
                !out.contains(&secret),
                "secret in `docker {}`",
                args.join(" ")
            );
        }
    }
    // The search does see layer contents: the marker written beside it is found.
    let save = docker_output(&["save", &latest]);
    assert!(contains(&save.stdout, &marker));
}

#[test]
fn an_escaping_copy_exits_2_and_builds_nothing() {
    let h = Habitat::new("escape");
    h.config(
        "name: @NAME@\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  files:\n    copies: [{ source: ../outside, dest: /x }]\n",
    );
    std::fs::write(h.root().join("outside"), "secret").expect("write");
    let run = h.build(&[]);
    run.assert_code(2);
    assert!(
        run.stderr
            .contains("`../outside` is outside the habitat directory"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("kiln.yaml:5:"), "{}", run.stderr);
    assert!(support::images_of(&h.name).is_empty());
    assert!(support::tags_of(&h.name).is_empty());
}

#[test]
fn regression_a_local_tool_changed_under_its_sha256_fails_every_build_and_plan() {
    let h = Habitat::new("toolsha");
    h.write("tools/hello.sh", "#!/bin/sh\necho hello\n");
    let sha = sh(&h.dir(), "sha256sum tools/hello.sh | cut -d' ' -f1");
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: \"kiln-test/busybox:latest\" }}\n  tools:\n\
         \x20   - {{ name: hello, source: tools/hello.sh, sha256: \"{sha}\" }}\n  final:\n    command: [\"sh\"]\n"
    ));
    h.build_ok(&[]);
    // Same size, same mtime, other bytes: only the content says it changed.
    let tool = h.dir().join("tools/hello.sh");
    let reference = h.root().join("hello.ref");
    sh(
        h.root(),
        &format!("cp -p {} {}", tool.display(), reference.display()),
    );
    std::fs::write(&tool, "#!/bin/sh\necho HELLO\n").expect("write");
    sh(
        h.root(),
        &format!("touch -r {} {}", reference.display(), tool.display()),
    );
    let actual = sh(&h.dir(), "sha256sum tools/hello.sh | cut -d' ' -f1");
    for args in [
        &["build", ".", "--progress", "json"][..],
        &["plan", "."][..],
    ] {
        let run = h.kiln(args).run();
        run.assert_code(2);
        let e = &run.stderr;
        assert!(
            e.contains("checksum mismatch for tool `hello` from `tools/hello.sh`")
                && e.contains(&format!("expected sha256 `{sha}`, got `{actual}`"))
                && e.contains("kiln.yaml:5:")
                && e.contains(&format!(
                    "hint: if the new file is the one you want, set `sha256: {actual}`"
                )),
            "{args:?}: {e}"
        );
    }
    // Put back, the build is all cached again.
    std::fs::write(&tool, "#!/bin/sh\necho hello\n").expect("write");
    assert!(h.build_ok(&[]).built().is_empty());
}

#[test]
fn an_invalid_config_lists_every_error_with_its_location() {
    let h = Habitat::new("invalid");
    h.config(
        r#"name: Bad Name
descripton: a misspelt key
build:
  base: { image: "kiln-test/busybox:latest" }
  users: [{ name: dev, uid: not-a-number }]
  files:
    copies: [{ source: ../outside, dest: /x }]
  final:
    user: ghost
"#,
    );
    let path = h.dir().join("kiln.yaml").display().to_string();
    let run = h.kiln(&["build", &path, "--progress", "json"]).run();
    run.assert_code(2);
    assert_eq!(run.stdout, "");
    let stderr = run.stderr.replace(&path, "[HABITAT]/kiln.yaml");
    insta::assert_snapshot!(stderr);
}

#[test]
fn an_unreachable_engine_exits_3_with_where_and_a_hint() {
    let h = Habitat::new("noengine");
    h.config(SPARSE);
    let run = h
        .kiln(&["build", ".", "--progress", "json"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .run();
    run.assert_code(3);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("/nonexistent.sock"),
        "{}",
        run.stderr
    );
    assert!(lines[0].contains("hint: start"), "{}", run.stderr);
}

#[test]
fn plan_says_cached_or_build_with_reasons_and_runs_nothing() {
    let h = full_habitat("plan");
    let since = docker_now();
    let run = h.kiln(&["plan"]).run();
    let until = docker_now();
    run.assert_code(0);
    assert_eq!(
        containers_created(&h.name, &since, &until),
        Vec::<String>::new()
    );
    assert!(support::images_of(&h.name).is_empty());
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{}", run.stdout);
    for (line, tag) in lines.iter().zip(tags(&PHASES)) {
        assert!(
            line.starts_with(&tag)
                && line.contains(" build ")
                && line.ends_with("  because no snapshot yet"),
            "{line}"
        );
    }

    h.build_ok(&[]);
    h.edit("echo one > /setup-marker", "echo two > /setup-marker");
    let tags_before = support::tags_of(&h.name);
    let run = h.kiln(&["plan", "--json"]).run();
    run.assert_code(0);
    let plan = support::events_of(&run.stdout);
    let actions: Vec<(&str, &str)> = plan
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().unwrap_or(""),
                p["action"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let expected: Vec<(&str, &str)> = PHASES
        .iter()
        .map(|p| {
            (
                *p,
                if from("setup").contains(&p.to_string()) {
                    "build"
                } else {
                    "cached"
                },
            )
        })
        .collect();
    assert_eq!(actions, expected);
    assert_eq!(plan[5]["reason"], "config changed: setup.commands.root[0]");
    assert_eq!(plan[6]["reason"], "after setup rebuilt");
    assert_eq!(support::tags_of(&h.name), tags_before);
}

#[test]
fn phases_lists_the_ten_phases() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("phases")
        .output()
        .expect("kiln runs");
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

#[test]
fn schema_is_json_with_build_properties() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("schema")
        .output()
        .expect("kiln runs");
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid json");
    assert!(schema["properties"]["build"].is_object(), "{schema}");
    assert!(schema["properties"]["name"].is_object(), "{schema}");
}

#[test]
fn a_second_build_of_the_same_habitat_waits_for_the_first() {
    let h = Habitat::new("lock");
    h.config(&SPARSE.replace(
        "echo built > /setup-marker",
        "sleep 4; echo slept > /setup-marker",
    ));
    let mut first = h.kiln(&["build", ".", "--progress", "json"]).spawn();
    let stdout = first.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut first_out = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read");
        assert!(n > 0, "first build ended before setup: {first_out}");
        first_out.push_str(&line);
        if line.contains("\"phase_start\"") && line.contains("\"setup\"") {
            break;
        }
    }
    // The first build holds the lock until it ends; the second must wait.
    let second = h.build(&[]);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).expect("read");
    first_out.push_str(&rest);
    let status = first.wait().expect("first ends");
    assert!(status.success(), "first build failed:\n{first_out}");
    second.assert_code(0);
    assert!(
        second.events().iter().any(|e| e["event"] == "waiting"),
        "no waiting event:\n{}",
        second.stdout
    );
    // The second build reuses what the first made.
    assert_eq!(second.built(), Vec::<String>::new(), "{}", second.stdout);
}

/// Bug: a changed root command was reported as `setup.root[0]`, a path that
/// is not in kiln.yaml (indexed fields missed the `commands.` prefix).
/// kiln-core's `plan_cases` has the planner's case; this one checks that a
/// real build's `phase_end` events carry it.
#[test]
fn regression_setup_reason_names_the_kiln_yaml_path_of_an_indexed_command() {
    let h = Habitat::new("reg-root");
    h.config(SPARSE);
    h.build_ok(&[]);
    h.edit("echo built", "echo rebuilt");
    let run = h.build_ok(&[]);
    assert_eq!(run.built(), names(&["setup", "final"]));
    assert_eq!(
        run.end("setup").reason,
        "config changed: setup.commands.root[0]"
    );
}

/// Bug: verify has no snapshot of its own, so once anything before it
/// rebuilt its reason was "no snapshot yet" instead of "after X rebuilt".
/// kiln-core's `plan_cases` has the planner's case; this one checks it on the
/// labels (`dev.kiln.verified`) a real build writes.
#[test]
fn regression_verify_reason_is_not_no_snapshot_yet_on_a_rebuild() {
    let h = Habitat::new("reg-verify");
    h.config(&SPARSE.replace(
        "  final:",
        "  verify:\n    files: [/setup-marker]\n  final:",
    ));
    h.build_ok(&[]);
    h.edit("GREETING=hello", "GREETING=hi");
    let run = h.build_ok(&[]);
    assert_eq!(run.built(), names(&["env", "setup", "verify", "final"]));
    assert_eq!(run.end("verify").reason, "after env rebuilt");
    h.edit("files: [/setup-marker]", "files: [/setup-marker, /bin/sh]");
    let run = h.build_ok(&[]);
    assert_eq!(run.built(), names(&["verify", "final"]));
    assert_eq!(
        run.end("verify").reason,
        "its inputs changed since it last passed"
    );
}

/// A verify of files alone is checked in the image's layers, with no
/// container: it follows symlinks as `test -e` would, and a missing file
/// fails the phase naming the file.
#[test]
fn a_files_only_verify_checks_the_image_without_a_container() {
    let h = Habitat::new("verify-files");
    h.config(&SPARSE.replace(
        "  final:",
        "  verify:\n    files: [/setup-marker, /bin/sh]\n  final:",
    ));
    // `/bin/sh` is busybox's symlink to `busybox`.
    assert_eq!(h.build_ok(&[]).end("verify").status, "built");
    h.edit(
        "files: [/setup-marker, /bin/sh]",
        "files: [/setup-marker, /no/such/file]",
    );
    let since = docker_now();
    let run = h.build(&[]);
    let until = docker_now();
    run.assert_code(1);
    assert_eq!(run.end("verify").status, "failed");
    assert!(
        run.stderr
            .contains("verify.files: `/no/such/file` does not exist in the image"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("test -e"), "{}", run.stderr);
    assert_eq!(
        containers_created(&h.name, &since, &until),
        Vec::<String>::new(),
        "no container for a files-only verify"
    );
}

/// Bug: SIGINT while the phase container's create request was in flight left
/// that container behind: the engine finished the create after kiln had
/// already swept for build containers.
#[test]
fn regression_an_interrupt_during_container_create_leaves_no_container() {
    let h = Habitat::new("reg-intr");
    h.config(&SPARSE.replace("echo built > /setup-marker", "sleep 30"));
    for _ in 0..3 {
        let mut child = h.kiln(&["build", ".", "--progress", "json"]).spawn();
        let stdout = child.stdout.take().expect("stdout");
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("a line");
            if line.contains("\"phase_start\"") && line.contains("\"setup\"") {
                break;
            }
        }
        // At once: the setup container's create request is likely in flight.
        let pid = child.id().to_string();
        let status = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let out = child.wait_with_output().expect("kiln ends");
        assert_eq!(out.status.code(), Some(130));
        let left = support::containers_of(&h.name);
        assert!(
            left.is_empty(),
            "left behind: {left:?}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Bug: `kiln schema | head` panicked ("failed printing to stdout: Broken
/// pipe") with a backtrace once the reader went away.
#[test]
fn regression_a_closed_stdout_pipe_does_not_panic() {
    for cmd in ["schema", "phases"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg(cmd)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kiln starts");
        // Close the read end before kiln writes.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("kiln ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "kiln {cmd}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "kiln {cmd}: {stderr}");
    }
}

#[test]
fn a_failed_phase_shows_its_last_50_lines() {
    let h = Habitat::new("tail");
    h.config(&SPARSE.replace(
        "echo built > /setup-marker",
        "for i in $(seq 1 60); do echo out-$i; done; exit 3",
    ));
    let run = h.build(&[]);
    run.assert_code(1);
    let shown: Vec<&str> = run
        .stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("| out-"))
        .collect();
    let expected: Vec<String> = (11..=60).map(|i| i.to_string()).collect();
    assert_eq!(shown, expected, "{}", run.stderr);
    assert!(
        run.stderr.contains("last 50 lines of output"),
        "{}",
        run.stderr
    );
}

/// `kiln start` off a terminal: builds, runs the given command in the final
/// image with the runtime volumes mounted, passes its exit code on, and
/// removes the container.
#[test]
fn start_runs_a_command_with_runtime_volumes_and_removes_the_container() {
    let h = Habitat::new("start");
    h.write("shared/note.txt", "from the host\n");
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  files:
    volumes:
      - { source: ./shared, dest: /shared, readonly: true }
  final:
    command: ["sh"]
"#,
    );
    let run = h
        .kiln(&["start", ".", "--", "cat", "/shared/note.txt"])
        .run();
    run.assert_code(0);
    assert!(run.stdout.contains("from the host"), "{}", run.stdout);
    let run = h
        .kiln(&["start", ".", "--", "sh", "-c", "touch /shared/x"])
        .run();
    assert_ne!(run.code, 0, "the volume is read-only: {}", run.stderr);
    let run = h.kiln(&["start", ".", "--", "sh", "-c", "exit 7"]).run();
    run.assert_code(7);
    assert!(
        support::containers_of(&h.name).is_empty(),
        "start leaves no container"
    );
}

/// Snapshots are made from the container's writable layer (read on the host)
/// where the engine allows: deletions and replaced directories must come out
/// as the image layer's whiteouts, so nothing deleted comes back.
#[test]
fn regression_deleted_and_replaced_paths_stay_gone_in_the_snapshot() {
    let h = Habitat::new("whiteout");
    h.write("tree/a.txt", "a\n");
    h.write("tree/b.txt", "b\n");
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  files:
    copies:
      - { source: tree, dest: /opt/tree }
  setup:
    commands:
      root:
        - "rm -rf /opt/tree && mkdir /opt/tree && echo new > /opt/tree/c.txt"
        - "rm /bin/vi"
  final:
    command: ["sh"]
"#,
    );
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);
    let listing = docker(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "ls /opt/tree; test -e /bin/vi && echo vi-is-back; true",
    ]);
    assert_eq!(
        listing.trim(),
        "c.txt",
        "only the new file is left: {listing}"
    );
}

/// Bug: `kiln ps | head -1` panicked ("failed printing to stdout: Broken
/// pipe"): its table was written with `println!`. Every command that writes
/// data ends quietly when its reader goes away, after the first line or
/// before any.
#[test]
fn regression_a_reader_that_leaves_after_one_line_does_not_panic() {
    let h = Habitat::new("pipe");
    h.config(&format!(
        "name: \"@NAME@\"\nbuild:\n  base: {{ image: \"{}\" }}\ninstances:\n  members:\n    a: {{}}\n    b: {{}}\n    c: {{}}\n",
        support::BUSYBOX
    ));
    let commands: [&[&str]; 4] = [&["phases"], &["schema"], &["ps"], &["ps", "--json"]];
    for args in commands {
        for read_first in [true, false] {
            let mut child = h.kiln(args).spawn();
            let stdout = child.stdout.take().expect("piped stdout");
            if read_first {
                let mut line = String::new();
                BufReader::new(stdout)
                    .read_line(&mut line)
                    .expect("read a line");
                assert!(!line.trim().is_empty(), "kiln {args:?} printed nothing");
            } else {
                drop(stdout);
            }
            let out = child.wait_with_output().expect("kiln ends");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "kiln {args:?}: {stderr}");
            assert_ne!(out.status.code(), Some(101), "kiln {args:?}: {stderr}");
            assert_eq!(out.status.code(), Some(0), "kiln {args:?}: {stderr}");
        }
    }
}
