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

/// Bug guard: the parents of a late copy that a tool's archive made in the
/// same layer (SPEC §2.1: missing parents get the copy's owner, existing
/// ones are left alone) keep what the tool gave them; only the parents
/// nothing made are the copy owner's. `docker build` with `ADD` of the
/// archive, then `COPY --chown`, is the oracle.
#[test]
fn late_copy_parents_made_by_a_tool_keep_the_tools_owner_and_mode() {
    let h = Habitat::new("kdirs-late");
    let pkg = h.root().join("pkg");
    std::fs::create_dir_all(pkg.join("tool-1.0/etc")).expect("mkdir");
    std::fs::write(pkg.join("tool-1.0/etc/defaults"), "d\n").expect("write");
    sh(
        &pkg,
        &format!(
            "chmod 0750 tool-1.0/etc && chmod 0644 tool-1.0/etc/defaults && \
             tar --owner=0 --group=0 -czf {} tool-1.0",
            h.dir().join("tool.tgz").display()
        ),
    );
    let sha = sh(h.dir().as_path(), "sha256sum tool.tgz | cut -d' ' -f1");
    let sha = sha.trim();
    h.write("files/app.conf", "conf\n");
    h.config(&format!(
        "name: @NAME@\n\
         build:\n  base: {{ image: \"kiln-test/busybox:latest\" }}\n\
         \x20 users:\n    - {{ name: dev, uid: 1000 }}\n\
         \x20 files:\n    copies:\n\
         \x20     - {{ source: files/app.conf, dest: /opt/tool/tool-1.0/etc/app.conf, owner: dev, late: true }}\n\
         \x20     - {{ source: files/app.conf, dest: /opt/tool/conf.d/app.conf, owner: dev, late: true }}\n\
         \x20 tools:\n\
         \x20   - {{ name: tool, source: tool.tgz, sha256: \"{sha}\", extract: true, dest: /opt/tool }}\n"
    ));
    h.build_ok(&[]);
    let image = format!("habitat-{}:latest", h.name);
    let stat = "for p in /opt/tool /opt/tool/tool-1.0 /opt/tool/tool-1.0/etc \
        /opt/tool/tool-1.0/etc/app.conf /opt/tool/conf.d /opt/tool/conf.d/app.conf; do \
        stat -c '%u:%g %a %n' $p 2>&1; done";
    let show = |image: &str| docker(&["run", "--rm", "--entrypoint", "/bin/sh", image, "-c", stat]);
    let kiln = show(&image);
    assert!(kiln.contains("0:0 750 /opt/tool/tool-1.0/etc\n"), "{kiln}");
    assert!(kiln.contains("1000:1000 755 /opt/tool/conf.d\n"), "{kiln}");

    let oracle = format!("kiln-test/{}-oracle", h.name);
    let ctx = h.root().join("oracle");
    std::fs::create_dir_all(&ctx).expect("mkdir");
    std::fs::copy(h.dir().join("tool.tgz"), ctx.join("tool.tgz")).expect("copy");
    std::fs::write(ctx.join("app.conf"), "conf\n").expect("write");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM kiln-test/busybox:latest\n\
         RUN echo 'dev:x:1000:1000::/home/dev:/bin/sh' >> /etc/passwd && echo 'dev:x:1000:' >> /etc/group\n\
         ADD tool.tgz /opt/tool/\n\
         COPY --chown=dev:dev app.conf /opt/tool/tool-1.0/etc/app.conf\n\
         COPY --chown=dev:dev app.conf /opt/tool/conf.d/app.conf\n",
    )
    .expect("write Dockerfile");
    let out = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &oracle, "."])
        .env("DOCKER_BUILDKIT", "0")
        .current_dir(&ctx)
        .output()
        .expect("`docker build` runs");
    let made = show(&oracle);
    let _ = crate::support::docker_output(&["rmi", "-f", &oracle]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(kiln, made, "kiln's image vs docker build's");
}
