//! `setup.shell` and `verify.user` on the real engine (SPEC §2.1): the
//! configured shell runs every setup step, root's and a user's, and verify's
//! commands; verify's commands run as `verify.user`.

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
