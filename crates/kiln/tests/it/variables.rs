//! Variables on the real engine (SPEC §2.1): `PATH` extended through `env`
//! reaches the final image as Docker's own `ENV PATH=…:$PATH` makes it, a
//! later command finds a binary on the extended `PATH`, and path fields
//! expand against the environment after the env phase.

use crate::support::{self, BUSYBOX, Habitat};

const EXTENDED: &str = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  env:
    - PATH=/opt/kt/bin:$PATH
    - KT_HOME=/srv/kt
    - LITERAL=$$PATH
  habitat:
    dirs: [/opt/kt/bin, "$KT_HOME/data"]
    work_dir: ${KT_HOME}/work
  setup:
    commands:
      root:
        - "printf '#!/bin/sh\necho found-on-path\n' > /opt/kt/bin/kt-hello && chmod 755 /opt/kt/bin/kt-hello"
        - "kt-hello > /kt-out"
  verify:
    files: ["${KT_HOME}/data", "${UNSET:-/kt-out}"]
    commands: ["kt-hello"]
  final:
    workdir: $KT_HOME/work
    command: ["sh"]
"#;

fn env_of(image: &str) -> Vec<String> {
    let out = support::docker(&["image", "inspect", "-f", "{{json .Config.Env}}", image]);
    serde_json::from_str(out.trim()).expect("env is JSON")
}

fn path_of(env: &[String]) -> String {
    env.iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .expect("PATH is set")
        .to_string()
}

#[test]
fn path_extended_through_env_is_dockers_and_later_commands_find_it() {
    let h = Habitat::new("vars");
    h.config(EXTENDED);
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);
    let env = env_of(&image);

    // The oracle: Docker's classic builder, `ENV` on the same base.
    let ctx = h.root().join("oracle");
    std::fs::create_dir_all(&ctx).expect("oracle dir");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {BUSYBOX}\nENV PATH=/opt/kt/bin:$PATH\n"),
    )
    .expect("Dockerfile");
    let oracle = format!("kt-oracle-{}", h.name);
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &oracle])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build runs");
    let want = built.status.success().then(|| path_of(&env_of(&oracle)));
    let _ = support::docker_output(&["rmi", "-f", &oracle]);
    let want = want.unwrap_or_else(|| {
        panic!(
            "the oracle build failed: {}",
            String::from_utf8_lossy(&built.stderr)
        )
    });
    assert!(want.starts_with("/opt/kt/bin:") && want.len() > "/opt/kt/bin:".len());
    assert_eq!(path_of(&env), want);
    assert!(env.contains(&"LITERAL=$PATH".to_string()), "{env:?}");

    // A later command found the binary on the extended PATH, and so does
    // a container of the final image.
    let out = support::docker(&["run", "--rm", &image, "cat", "/kt-out"]);
    assert_eq!(out.trim(), "found-on-path");
    let out = support::docker(&["run", "--rm", &image, "kt-hello"]);
    assert_eq!(out.trim(), "found-on-path");

    // Path fields expanded against the env: the dirs, the work dir.
    let workdir = support::docker(&["image", "inspect", "-f", "{{.Config.WorkingDir}}", &image]);
    assert_eq!(workdir.trim(), "/srv/kt/work");
    let out = support::docker(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "pwd; test -d /srv/kt/data && echo dir",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["/srv/kt/work", "dir"]
    );
}

#[test]
fn a_path_with_an_unset_variable_stops_the_build_before_its_phase() {
    let h = Habitat::new("varsunset");
    h.config(
        r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  habitat: { work_dir: $KT_NOWHERE/w }
  setup:
    commands: { root: ["touch /never"] }
"#,
    );
    let run = h.build(&[]);
    run.assert_code(2);
    let stderr = run.stderr.clone();
    assert!(
        stderr.contains("`build.habitat.work_dir`: unset variable `$KT_NOWHERE` and no default"),
        "{stderr}"
    );
    // Nothing from the habitat phase on was built.
    for e in run.phase_ends() {
        assert!(
            !["habitat", "files", "setup"].contains(&e.phase.as_str()) || e.status != "built",
            "{e:?}"
        );
    }
}
