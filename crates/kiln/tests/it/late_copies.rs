//! `late: true` copies (SPEC §2.1) on the real engine: they land after repos
//! and tools, on top of a checkout, and editing one rebuilds from tools
//! only, while an early copy's edit rebuilds from files.

use crate::support::{Habitat, docker, sh};

const CONFIG: &str = r#"name: @NAME@
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  files:
    copies:
      - { source: files/motd, dest: /etc/motd }
      - { source: files/app.env, dest: /work/app/.env, owner: dev, late: true }
      - { source: files/README.local, dest: /work/app/README, late: true }
      - { source: files/gitconfig, dest: /home/dev/.gitconfig, owner: dev, late: true }
  setup:
    commands:
      root: ["cat /etc/motd > /setup-saw-motd"]
  repos:
    - { url: "@ROOT@/repo", path: /work/app, ref: main, owner: dev }
  verify:
    files: [/work/app/.env, /work/app/src/main.js]
"#;

#[test]
fn late_copies_land_on_the_checkout_and_rebuild_only_from_tools() {
    let h = Habitat::new("ignt-late");
    let repo = h.root().join("repo");
    std::fs::create_dir_all(repo.join("src")).expect("repo dir");
    sh(
        &repo,
        "git init -q -b main . && echo upstream > README && echo 'run()' > src/main.js && \
         git add . && git -c user.name=t -c user.email=t@t commit -qm one",
    );
    h.write("files/motd", "welcome\n");
    h.write("files/app.env", "PORT=3000\n");
    h.write("files/README.local", "local notes\n");
    h.write("files/gitconfig", "[user]\n  name = dev\n");
    h.config(CONFIG);
    let first = h.build_ok(&[]);
    assert!(
        first.built().contains(&"tools".to_string()),
        "{}",
        first.stdout
    );
    let image = format!("habitat-{}:latest", h.name);
    let show = |script: &str| {
        docker(&[
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &image,
            "-c",
            script,
        ])
    };
    assert_eq!(
        show("cat /work/app/.env /work/app/README /work/app/src/main.js /setup-saw-motd"),
        "PORT=3000\nlocal notes\nrun()\nwelcome\n",
        "the late copies lie on top of the checkout, which keeps its other files"
    );
    assert_eq!(
        show("stat -c '%u %n' /work/app/.env /home/dev/.gitconfig"),
        "1000 /work/app/.env\n1000 /home/dev/.gitconfig\n"
    );

    h.write("files/app.env", "PORT=4000\n");
    let run = h.build_ok(&[]);
    let built = run.built();
    assert_eq!(
        built.first().map(String::as_str),
        Some("tools"),
        "{}",
        run.stdout
    );
    for phase in ["files", "setup", "repos"] {
        assert_eq!(run.end(phase).status, "cached", "{phase}: {}", run.stdout);
    }
    assert!(
        run.end("tools").reason.contains("files/app.env"),
        "the reason names the file: {}",
        run.end("tools").reason
    );
    assert_eq!(show("cat /work/app/.env"), "PORT=4000\n");

    h.write("files/motd", "hello again\n");
    let run = h.build_ok(&[]);
    assert_eq!(
        run.built().first().map(String::as_str),
        Some("files"),
        "{}",
        run.stdout
    );
    assert_eq!(
        show("cat /setup-saw-motd /work/app/.env"),
        "hello again\nPORT=4000\n"
    );
}

#[test]
fn an_early_copy_under_a_repo_path_is_refused_with_a_hint() {
    let h = Habitat::new("ignt-early");
    h.write("files/app.env", "PORT=3000\n");
    h.config(
        "name: @NAME@\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n  files:\n    copies:\n      - { source: files/app.env, dest: /work/app/.env }\n  repos:\n    - { url: \"@ROOT@/repo\", path: /work/app }\n",
    );
    let run = h.kiln(&["check", "."]).run();
    run.assert_code(2);
    assert!(run.stderr.contains("kiln.yaml:6:"), "{}", run.stderr);
    assert!(run.stderr.contains("add `late: true`"), "{}", run.stderr);
}
