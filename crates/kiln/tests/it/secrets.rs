//! Build secrets seen from outside, on the real engine: a multi-line secret
//! printed by a command is redacted line by line in every output mode and
//! in the failure tail, a script's non-root user still reads it, and the
//! directory that holds it on the host is private and swept after a build
//! that was killed.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Habitat;

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAAAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIK\n-----END OPENSSH PRIVATE KEY-----\n";

/// A user `dev` whose scripts print the key; the second script fails, so
/// the key is in the failure tail too.
const YAML: &str = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  setup:
    commands:
      user: dev
      scripts:
        - "cat /run/secrets/key; test -r /run/secrets/key && echo readable-by-$(id -u)"
        - "cat /run/secrets/key; exit 3"
secrets:
  - { id: key, file: key.pem }
"#;

/// The `kiln-secrets-*` directories in `dir`.
fn secrets_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read the temp dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("kiln-secrets-"))
        })
        .collect()
}

#[test]
fn regression_a_multi_line_secret_is_redacted_in_every_output_mode_and_the_failure_tail() {
    let h = Habitat::new("pem");
    h.write("key.pem", KEY);
    h.config(YAML);
    let tmp = h.root().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    for progress in ["plain", "json"] {
        let run = h
            // `--no-cache`: the first script's step is kept after the first
            // mode's failure (SPEC §5); each mode must run and show both.
            .kiln(&["build", ".", "--progress", progress, "--no-cache"])
            .env("TMPDIR", &tmp.display().to_string())
            .run();
        run.assert_code(1);
        let all = format!("{}{}", run.stdout, run.stderr);
        for line in KEY.lines() {
            assert!(
                !all.contains(line),
                "{progress}: the secret line {line:?} was printed:\n{all}"
            );
        }
        assert!(
            all.contains("readable-by-1000"),
            "{progress}: the script's user cannot read the secret:\n{all}"
        );
        // The failure tail is shown, redacted, with the command that failed.
        assert!(run.stderr.contains("| ***"), "{progress}:\n{}", run.stderr);
        assert!(
            run.stderr.contains("cat /run/secrets/key; exit 3"),
            "{progress}:\n{}",
            run.stderr
        );
        assert_eq!(secrets_dirs(&tmp), Vec::<PathBuf>::new(), "{progress}");
    }
}

#[test]
fn regression_a_killed_builds_secrets_dir_is_private_and_swept_by_the_next_build() {
    let h = Habitat::new("secdir");
    h.write("key.pem", KEY);
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  setup:
    commands:
      root: ["echo started; sleep 60"]
secrets:
  - { id: key, file: key.pem }
"#,
    );
    let tmp = h.root().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    let mut child = h
        .kiln(&["build", ".", "--progress", "json"])
        .env("TMPDIR", &tmp.display().to_string())
        .spawn();
    let stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line");
        let started = line.contains("\"line\":\"started\"");
        seen.push(line);
        if started {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("started")),
        "{seen:?}"
    );
    let dirs = secrets_dirs(&tmp);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(
        mode(&dirs[0]),
        0o700,
        "other users of the host can reach it"
    );
    let status = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait().expect("kiln ends");
    assert_eq!(secrets_dirs(&tmp), dirs, "SIGKILL leaves it behind");

    h.edit("echo started; sleep 60", "true");
    let run = h
        .kiln(&["build", ".", "--progress", "json"])
        .env("TMPDIR", &tmp.display().to_string())
        .run();
    run.assert_code(0);
    assert_eq!(
        secrets_dirs(&tmp),
        Vec::<PathBuf>::new(),
        "the next build did not sweep it"
    );
}
