//! The CLI's surface as a new user meets it (issue 10): `-C DIR` on every
//! command that reads a habitat, shell completions made from the same clap
//! types that parse the command line.

use std::io::Write;
use std::process::{Command, Stdio};

/// A busybox habitat with one setup command, for tests that build.
use crate::cli::SPARSE as BUSYBOX;
use crate::support::Habitat;

fn kiln(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("kiln runs")
}

/// A config that plans without an engine-side base: the image is missing, so
/// the plan builds everything and pulls nothing.
const PLAN_ONLY: &str =
    "name: @NAME@\nbuild:\n  base: { image: kiln-test-absent:none }\n  env: [A=1]\n";

#[test]
fn completions_for_bash_zsh_and_fish_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = kiln(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        for sub in ["build", "plan", "check", "up", "ps", "completions"] {
            assert!(script.contains(sub), "{shell} script lacks `{sub}`");
        }
    }
}

#[test]
fn the_bash_completion_script_loads_and_completes_subcommands() {
    let script = kiln(&["completions", "bash"]).stdout;
    let mut bash = Command::new("bash")
        .args([
            "--norc",
            "-c",
            // Load the script, then ask it for the words after `kiln pl`.
            "source /dev/stdin; COMP_WORDS=(kiln pl); COMP_CWORD=1; _kiln kiln pl kiln; printf '%s\\n' \"${COMPREPLY[@]}\"",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash runs");
    bash.stdin
        .take()
        .expect("stdin")
        .write_all(&script)
        .expect("write the script");
    let out = bash.wait_with_output().expect("bash ends");
    assert!(out.status.success(), "{out:?}");
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(words.lines().any(|w| w == "plan"), "{words}");
}

#[test]
fn check_and_plan_take_dash_c_like_git_and_make() {
    let h = Habitat::new("dashc");
    h.config(PLAN_ONLY);
    let dir = h.dir().display().to_string();
    let elsewhere = h.root().display().to_string();
    // `-C DIR` alone, and a PATH read from DIR.
    let out = kiln(&["check", "-C", &dir]);
    assert!(out.status.success(), "{out:?}");
    let rel = h
        .dir()
        .strip_prefix(h.root())
        .expect("the habitat is in its root")
        .join("kiln.yaml");
    let out = kiln(&["check", "-C", &elsewhere, &rel.display().to_string()]);
    assert!(out.status.success(), "{out:?}");
    let out = kiln(&["plan", "-C", &dir, "--json"]);
    assert!(out.status.success(), "{out:?}");
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .expect("a line"),
    )
    .expect("json");
    assert_eq!(first["phase"], "base");
    // A `-C` that does not exist says so.
    let out = kiln(&["check", "-C", "/nonexistent-kiln-dir"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent-kiln-dir"), "{err}");
}

#[test]
fn kiln_yml_is_found_when_kiln_yaml_is_absent() {
    let h = Habitat::new("yml");
    h.write("kiln.yml", &PLAN_ONLY.replace("@NAME@", &h.name));
    let out = kiln(&["check", &h.dir().display().to_string()]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kiln.yml`"), "{err}");
}

/// A config file kiln would not read, beside where it looks, is hinted.
#[test]
fn a_misnamed_kiln_yaml_is_hinted() {
    let h = Habitat::new("yml-hint");
    for (name, hinted) in [
        ("Kiln.yaml", true),
        ("KILN.YML", true),
        ("kiln.yaml.bak", true),
        ("kiln-old.yaml", false),
    ] {
        let path = h.write(name, &PLAN_ONLY.replace("@NAME@", &h.name));
        let out = kiln(&["check", &h.dir().display().to_string()]);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no `kiln.yaml` in"), "{name}: {err}");
        let hint =
            format!("`{name}` is there, but kiln reads `kiln.yaml` (or `kiln.yml`): rename it");
        assert_eq!(err.contains(&hint), hinted, "{name}: {err}");
        std::fs::remove_file(path).expect("rm");
    }
}

#[test]
fn regression_a_mistyped_path_says_the_path_does_not_exist() {
    let h = Habitat::new("typo");
    h.config(PLAN_ONLY);
    for args in [
        &["up", "./no-such-dir"][..],
        &["down", "./no-such-dir"],
        &["restart", "no/such/dir"],
        &["logs", "./no-such-dir/kiln.yaml"],
        &["exec", "./no-such-dir", "--", "true"],
    ] {
        let out = h.kiln(args).run();
        out.assert_code(2);
        assert!(
            out.stderr.contains("the path does not exist"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("unknown member") && !out.stderr.contains("no `kiln.yaml`"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // A path that exists, where a member was expected, gets `-C` as a hint.
    let out = h.kiln(&["down", "."]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("-C ."), "{}", out.stderr);
}

/// Bug: a missing `verify.files` path checked in a container was reported as
/// "a command failed: test -e /path", the check kiln wrote, not the user's file.
#[test]
fn regression_a_missing_verify_file_is_named_not_its_test_command() {
    let h = Habitat::new("verify-named");
    // A command beside the files: the check runs in a container.
    h.config(&BUSYBOX.replace(
        "  final:",
        "  verify:\n    files: [/no/such/file]\n    commands: [\"true\"]\n  final:",
    ));
    let run = h.build(&[]);
    run.assert_code(1);
    assert!(
        run.stderr
            .contains("verify.files: `/no/such/file` does not exist in the image"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("test -e"), "{}", run.stderr);
}

/// Bug: the plain output said "because after env rebuilt", and `plan` put a
/// reason that has parentheses of its own inside parentheses.
#[test]
fn regression_reasons_read_as_sentences_in_plain_and_plan_output() {
    let h = Habitat::new("because");
    h.config(BUSYBOX);
    h.build_ok(&[]);
    h.edit("GREETING=hello", "GREETING=hi");
    let plan = h.kiln(&["plan", "."]).run();
    plan.assert_code(0);
    let setup = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("6-setup"))
        .expect("a setup line");
    assert!(setup.ends_with("  after env rebuilt"), "{setup}");
    let users = plan
        .stdout
        .lines()
        .find(|l| l.starts_with("2-users"))
        .expect("a users line");
    assert!(
        users.starts_with("2-users    cached ") && users.ends_with("(not configured)"),
        "plan says what build says for an unconfigured phase: {users}"
    );
    let run = h.kiln(&["build", ".", "--progress", "plain"]).run();
    run.assert_code(0);
    assert!(!run.stderr.contains("because after"), "{}", run.stderr);
    assert!(
        run.stderr.contains("-> ") && run.stderr.contains("  after env rebuilt"),
        "{}",
        run.stderr
    );
}

/// Bug: `plan`, which builds nothing, said "phase `7-repos` failed … build
/// again to resume there" for a repo it could not resolve, with git's
/// credentials hint for what is a directory on this host.
#[test]
fn regression_plan_of_an_unresolvable_repo_offers_no_resume_and_no_credentials() {
    let h = Habitat::new("plan-inputs");
    h.write("notrepo/README", "not a repository\n");
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: {} }}\n  repos:\n    - {{ url: ./notrepo, path: /src/app }}\n",
        crate::support::BUSYBOX
    ));
    for args in [&["plan", "."][..], &["build", ".", "--progress", "plain"]] {
        let run = h.kiln(args).run();
        run.assert_code(1);
        let stderr = run
            .stderr
            .replace(&h.dir().display().to_string(), "[HABITAT]")
            .replace(&h.name, "[NAME]");
        let error = &stderr[stderr.find("error:").expect("an error")..];
        insta::assert_snapshot!(
            "unresolvable_repo_input",
            error,
            &format!("kiln {}", args.join(" "))
        );
        for wrong in ["resume", "failed: ", "credentials", "access rights"] {
            assert!(!stderr.contains(wrong), "{args:?}: {stderr}");
        }
    }
}

/// The deepest nesting of parentheses in `line`.
fn paren_depth(line: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in line.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Bug: reasons with parentheses of their own were put in parentheses. Every
/// kind of reason `plan` and a plain build show, after edits of each kind
/// (an env value, a copied file's content, a new copy, a setup command, a
/// forced rebuild), reads without nesting.
#[test]
fn regression_no_reason_is_nested_in_parentheses() {
    let h = Habitat::new("parens");
    h.write("motd", "one\n");
    h.config(&BUSYBOX.replace(
        "  setup:",
        "  files:\n    copies: [{ source: ./motd, dest: /etc/motd, mode: \"0644\" }]\n  setup:",
    ));
    h.build_ok(&[]);
    type Edit<'a> = Box<dyn Fn() + 'a>;
    let edits: [(&str, Edit); 5] = [
        ("env", Box::new(|| h.edit("GREETING=hello", "GREETING=hi"))),
        (
            "file content",
            Box::new(|| {
                h.write("motd", "two\n");
            }),
        ),
        (
            "a new copy",
            Box::new(|| {
                h.write("extra", "x\n");
                h.edit(
                    "copies: [",
                    "copies: [{ source: ./extra, dest: /etc/extra }, ",
                );
            }),
        ),
        ("setup", Box::new(|| h.edit("echo built", "echo rebuilt"))),
        ("nothing: forced", Box::new(|| {})),
    ];
    for (what, edit) in edits {
        edit();
        let extra: &[&str] = if what.starts_with("nothing") {
            &["--rebuild", "users"]
        } else {
            &[]
        };
        let mut plan_args = vec!["plan", "."];
        plan_args.extend_from_slice(extra);
        let plan = h.kiln(&plan_args).run();
        plan.assert_code(0);
        let mut build_args = vec!["build", ".", "--progress", "plain"];
        build_args.extend_from_slice(extra);
        let build = h.kiln(&build_args).run();
        build.assert_code(0);
        let all = format!("{}{}{}", plan.stdout, build.stdout, build.stderr);
        assert!(
            all.contains("rebuilt") || all.contains("changed") || all.contains("--rebuild"),
            "{what}: {all}"
        );
        for line in all.lines() {
            assert!(paren_depth(line) <= 1, "{what}: nested: {line}");
        }
    }
}

/// Removes a second habitat's images and containers when dropped.
struct AlsoRemove(String);

impl Drop for AlsoRemove {
    fn drop(&mut self) {
        crate::support::remove_habitat(&self.0);
    }
}

/// `--progress json` of a build on a base habitat, as a tool reading it
/// sees it: every event names its habitat, the base's phases are the base's,
/// exactly one `build_end` (the habitat asked for) ends the stream, and
/// `plan --json` names each phase's image as the build's `phase_end` does.
#[test]
fn json_of_a_build_on_a_base_habitat_names_habitats_and_ends_once() {
    let h = Habitat::new("jsonbase");
    let base = format!("{}-base", h.name);
    let _base = AlsoRemove(base.clone());
    let base_dir = h.root().join("base");
    std::fs::create_dir_all(&base_dir).expect("mkdir");
    std::fs::write(
        base_dir.join("kiln.yaml"),
        format!(
            "name: {base}\nbuild:\n  base: {{ image: \"{}\" }}\n  env: [B=1]\n",
            crate::support::BUSYBOX
        ),
    )
    .expect("write");
    h.config("name: @NAME@\nbuild:\n  base: { habitat: ../base }\n  env: [A=1]\n");

    let planned = h.kiln(&["plan", ".", "--json"]).run();
    planned.assert_code(0);
    let run = h.build_ok(&[]);
    let events = run.events();
    for e in &events {
        let habitat = e["habitat"].as_str().unwrap_or_default();
        assert!(habitat == h.name || habitat == base, "{e}");
    }
    let ends: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "build_end")
        .collect();
    assert_eq!(ends.len(), 1, "{}", run.stdout);
    assert_eq!(ends[0]["habitat"], h.name.as_str());
    assert_eq!(events.last(), Some(ends[0]));
    let phase_ends = |habitat: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e["event"] == "phase_end" && e["habitat"] == habitat)
            .cloned()
            .collect()
    };
    assert_eq!(phase_ends(&base).len(), 10);
    let own = phase_ends(&h.name);
    assert_eq!(own.len(), 10);
    let plan = crate::support::events_of(&planned.stdout);
    assert_eq!(plan.len(), 10);
    for (p, e) in plan.iter().zip(&own) {
        assert_eq!(p["phase"], e["phase"]);
        assert_eq!(p["image"], e["image"], "plan names images as build does");
        assert_eq!(p["key"], e["key"], "plan planned what build built");
    }
}

/// Every subcommand that reads a habitat takes `-C DIR` (SPEC §7), and the
/// instance commands take member names after it; a habitat in another
/// directory is reached from anywhere.
#[test]
fn every_command_that_reads_a_habitat_takes_dash_c() {
    let h = Habitat::new("dashc-all");
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: \"{}\" }}\ninstances:\n  defaults: {{ command: [sleep, infinity] }}\n  members:\n    a: {{}}\n    b: {{}}\n",
        crate::support::BUSYBOX
    ));
    let dir = h.dir().display().to_string();
    let elsewhere = h.root().display().to_string();
    let from_elsewhere = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .current_dir(&elsewhere)
            .env("KILN_CACHE_DIR", h.cache())
            .env("NO_COLOR", "1")
            .output()
            .expect("kiln runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    from_elsewhere(&["check", "-C", &dir]);
    from_elsewhere(&["services", "-C", &dir]);
    from_elsewhere(&["plan", "-C", &dir]);
    from_elsewhere(&["build", "-C", &dir, "--progress", "plain"]);
    let up = from_elsewhere(&["up", "-C", &dir, "a"]);
    assert!(
        up.contains(&format!("{}-a ", h.name)) && !up.contains("-b "),
        "{up}"
    );
    from_elsewhere(&["up", "-C", &dir, "b"]);
    let ps = from_elsewhere(&["ps", "-C", &dir]);
    assert!(ps.contains("\na ") && ps.contains("\nb "), "{ps}");
    from_elsewhere(&["exec", "-C", &dir, "a", "--", "true"]);
    from_elsewhere(&["logs", "-C", &dir, "a"]);
    from_elsewhere(&["restart", "-C", &dir, "a", "b"]);
    let down = from_elsewhere(&["down", "-C", &dir, "a", "b"]);
    assert!(
        down.contains(&format!("removed container {}-a", h.name)),
        "{down}"
    );
}

/// Plain and json output of a real build: carriage-return progress shows its
/// last state only, apt's debconf notice is dropped, and a build where
/// nothing changed says so in one line instead of ten `cached` lines.
#[test]
fn plain_and_json_logs_are_cleaned_and_a_no_op_is_one_line() {
    let h = Habitat::new("cleanlogs");
    h.config(&BUSYBOX.replace(
        "root: [\"echo built > /setup-marker\"]",
        "root: [\"printf '  0%%\\\\r 50%%\\\\rdone-100%%\\\\n'; echo 'debconf: delaying package configuration, since apt-utils is not installed'; echo built > /setup-marker\"]",
    ));
    let plain = h.kiln(&["build", ".", "--progress", "plain"]).run();
    plain.assert_code(0);
    let log: Vec<&str> = plain
        .stderr
        .lines()
        .filter(|l| l.starts_with("  6-setup | "))
        .collect();
    assert_eq!(log.len(), 1, "{}", plain.stderr);
    assert!(
        log[0].ends_with("done-100%") && !log[0].contains('\r'),
        "{log:?}"
    );

    h.edit("echo built", "echo built-again");
    let json = h.build_ok(&[]);
    let lines: Vec<String> = json
        .events()
        .iter()
        .filter(|e| e["event"] == "phase_log")
        .filter_map(|e| e["line"].as_str().map(str::to_string))
        .collect();
    assert!(lines.iter().any(|l| l == "done-100%"), "{lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains('\r') || l.contains("debconf") || l.contains(" 50%")),
        "{lines:?}"
    );

    let again = h.kiln(&["build", ".", "--progress", "plain"]).run();
    again.assert_code(0);
    let cached: Vec<&str> = again
        .stderr
        .lines()
        .filter(|l| l.contains("cached"))
        .collect();
    assert_eq!(cached.len(), 1, "{}", again.stderr);
    assert!(cached[0].ends_with("(nothing changed)"), "{}", again.stderr);
}
