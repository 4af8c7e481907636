//! `setup.shell` and `verify.user` on the real engine (SPEC §2.1): the
//! configured shell runs every setup step, root's and a user's, and verify's
//! commands; verify's commands run as `verify.user`; a repo's branch ref
//! is checked out on a local branch.

use crate::support::{Habitat, docker};

/// `false; CMD` fails under the default `/bin/sh -e -c` and succeeds under a
/// shell without `-e`, so which shell ran each step shows in the image.
const YAML: &str = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  setup:
    SHELL
    commands:
      root: ["false; echo root > /root-step"]
      user: dev
      scripts: ["false; id -u > /tmp/user-step"]
  verify:
    user: dev
    commands: ["false; test \"$(id -u)\" = 1000"]
"#;

fn cat(h: &Habitat, path: &str) -> String {
    docker(&[
        "run",
        "--rm",
        "--label",
        &format!("dev.kiln.habitat={}", h.name),
        "--entrypoint",
        "/bin/cat",
        &format!("habitat-{}:latest", h.name),
        path,
    ])
    .trim()
    .to_string()
}

#[test]
fn the_configured_shell_runs_setup_and_verify_and_verify_runs_as_its_user() {
    let h = Habitat::new("shell");
    // The default shell stops at `false`: the root step fails.
    h.config(&YAML.replace("    SHELL\n", ""));
    let run = h.kiln(&["build", ".", "--progress", "plain"]).run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("false; echo root > /root-step"),
        "{}",
        run.stderr
    );

    h.config(&YAML.replace("SHELL", "shell: [/bin/busybox, sh, -c]"));
    let run = h.kiln(&["build", ".", "--progress", "plain"]).run();
    run.assert_code(0);
    assert_eq!(cat(&h, "/root-step"), "root");
    assert_eq!(cat(&h, "/tmp/user-step"), "1000");
}

#[test]
fn verify_commands_run_as_verify_user() {
    let h = Habitat::new("vuser");
    let yaml = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  verify:
    USER
    commands: ["test \"$(id -u)\" = 1000"]
"#;
    h.config(&yaml.replace("USER", "user: dev"));
    h.kiln(&["build", ".", "--progress", "plain"])
        .run()
        .assert_code(0);
    // As root (the default) the same check fails: the user is what differs.
    h.config(&yaml.replace("USER", "user: root"));
    let run = h.kiln(&["build", ".", "--progress", "plain"]).run();
    run.assert_code(1);
    assert!(
        run.stderr.contains("test \"$(id -u)\" = 1000"),
        "{}",
        run.stderr
    );
}

/// A branch ref lands on a local branch in the image (what `git rev-parse
/// --abbrev-ref HEAD` reads: `.git/HEAD` naming the branch; busybox has no
/// git), a tag on a detached HEAD.
#[test]
fn a_repo_branch_is_checked_out_on_a_local_branch_in_the_image() {
    let h = Habitat::new("branch");
    let repo = h.root().join("repo");
    std::fs::create_dir(&repo).expect("repo dir");
    crate::support::sh(
        &repo,
        "git init -q -b main . && echo one > README && git add README && \
         git -c user.name=t -c user.email=t@t commit -qm one && git tag v1 && \
         git branch feature/x",
    );
    let yaml = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  repos:
    - { url: "@ROOT@/repo", path: /work/app, ref: REF }
"#;
    for (git_ref, head) in [
        ("feature/x", "ref: refs/heads/feature/x"),
        ("main", "ref: refs/heads/main"),
    ] {
        h.config(&yaml.replace("REF", git_ref));
        h.kiln(&["build", ".", "--progress", "plain"])
            .run()
            .assert_code(0);
        assert_eq!(cat(&h, "/work/app/.git/HEAD"), head, "ref {git_ref}");
    }
    h.config(&yaml.replace("REF", "v1"));
    h.kiln(&["build", ".", "--progress", "plain"])
        .run()
        .assert_code(0);
    let detached = cat(&h, "/work/app/.git/HEAD");
    assert!(
        detached.len() == 40 && detached.bytes().all(|b| b.is_ascii_hexdigit()),
        "{detached}"
    );
}
