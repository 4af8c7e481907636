//! A deploy machine (SPEC §10): `kiln up --image REF` runs the members of a
//! pushed image from a directory that holds the `kiln.yaml` alone (no copied
//! file, no local repo, no tool), on an engine holding nothing of the
//! habitat; end to end on the real engine and a real registry on loopback.

use std::path::Path;
use std::process::Command;

use crate::remote::Remote;
use crate::support::{Habitat, Run, docker, docker_output};

/// A habitat reading a copied file, a local repo inside its directory and a
/// tool file, with two members and `registry:` at `r`.
fn built_habitat(r: &Remote) -> Habitat {
    let h = Habitat::new("kdeploy-up");
    let repo = h.dir().join("src-repo");
    std::fs::create_dir(&repo).expect("repo dir");
    crate::support::sh(
        &repo,
        "git init -q -b main . && echo one > README && git add README && \
         git -c user.name=t -c user.email=t@t commit -qm one",
    );
    h.write("files/app.conf", "port = 3000\n");
    h.write("tools/hello.sh", "#!/bin/sh\necho hello\n");
    let sha = crate::support::sh(&h.dir(), "sha256sum tools/hello.sh | cut -d' ' -f1");
    h.config(&format!(
        r#"name: @NAME@
build:
  base: {{ image: "kiln-test/busybox:latest" }}
  users:
    - {{ name: app, uid: 1000 }}
  files:
    copies:
      - {{ source: files/app.conf, dest: /etc/app/app.conf, owner: app }}
  repos:
    - {{ url: src-repo, path: /opt/app/src, ref: main, owner: app }}
  tools:
    - {{ name: hello, source: tools/hello.sh, sha256: "{sha}", dest: /usr/local/bin/hello }}
  final:
    command: ["sh"]
instances:
  defaults:
    command: [sleep, infinity]
  members:
    web: {{}}
    worker: {{}}
registry:
  repository: {}
  tags: [latest]
"#,
        r.repository(&h)
    ));
    h
}

/// `kiln ARGS` run in `dir` with a cache of its own (a machine of its own)
/// and the registry's Docker config.
fn kiln_in(dir: &Path, cache: &Path, r: &Remote, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(dir)
        .env("KILN_CACHE_DIR", cache)
        .env("DOCKER_CONFIG", r.docker_config.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("kiln runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The image each running member of `name` was made from, by member.
fn member_images(name: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = docker(&[
        "ps",
        "--filter",
        &format!("label=dev.kiln.habitat={name}"),
        "--filter",
        "label=dev.kiln.instance",
        "--format",
        "{{.Label \"dev.kiln.instance\"}} {{.ID}}",
    ])
    .lines()
    .filter_map(|l| {
        let (m, id) = l.split_once(' ')?;
        let image = docker(&["inspect", "--format", "{{.Config.Image}}", id]);
        Some((m.to_string(), image.trim().to_string()))
    })
    .collect();
    v.sort();
    v
}

#[test]
fn up_image_on_a_machine_holding_only_the_kiln_yaml_runs_the_members_by_digest_and_by_tag() {
    let r = Remote::start(false);
    let h = built_habitat(&r);
    let _volumes = crate::instances::Volumes(h.name.clone());
    let push = kiln_in(&h.dir(), &h.cache(), &r, &["push", "--progress", "plain"]);
    push.assert_code(0);
    let digest = push
        .stdout
        .trim()
        .rsplit_once('@')
        .expect("REPO@DIGEST")
        .1
        .to_string();

    // The deploy machine: a directory with the kiln.yaml alone, a cache of
    // its own, an engine holding nothing of the habitat.
    let machine = tempfile::Builder::new()
        .prefix("kdeploy-")
        .tempdir()
        .expect("tempdir");
    let deploy = machine.path().join("app");
    std::fs::create_dir(&deploy).expect("deploy dir");
    std::fs::copy(h.dir().join("kiln.yaml"), deploy.join("kiln.yaml")).expect("copy kiln.yaml");
    let cache = machine.path().join("cache");
    crate::support::remove_habitat(&h.name);
    assert!(crate::support::images_of(&h.name).is_empty());

    // What it lacks is what a build reads: a build there refuses, as ever.
    let build = kiln_in(&deploy, &cache, &r, &["build", "--progress", "plain"]);
    build.assert_code(2);
    assert!(
        build
            .stderr
            .contains("copy source `files/app.conf` does not exist"),
        "{}",
        build.stderr
    );
    let up_built = kiln_in(&deploy, &cache, &r, &["up"]);
    up_built.assert_code(2);

    let up = kiln_in(
        &deploy,
        &cache,
        &r,
        &["up", "--image", &digest, "--progress", "plain"],
    );
    up.assert_code(0);
    assert!(up.stderr.contains("pulled `"), "{}", up.stderr);
    assert!(!up.stderr.contains("built"), "no build: {}", up.stderr);
    let by_digest = format!("{}@{digest}", r.repository(&h));
    let images = member_images(&h.name);
    assert_eq!(
        images,
        [
            ("web".to_string(), by_digest.clone()),
            ("worker".to_string(), by_digest.clone())
        ]
    );
    // The members run the image the push made: the copy, the repo and the
    // tool are in it.
    let inside = docker(&[
        "exec",
        &format!("{}-web", h.name),
        "sh",
        "-c",
        "cat /etc/app/app.conf /opt/app/src/README && sh /usr/local/bin/hello",
    ]);
    assert_eq!(inside, "port = 3000\none\nhello\n");
    // Nothing was built there: the only images of the habitat are the pulled one.
    assert!(
        crate::support::tags_of(&h.name).is_empty(),
        "{:?}",
        crate::support::tags_of(&h.name)
    );

    // By tag, on the engine that holds it now.
    let by_tag = kiln_in(&deploy, &cache, &r, &["up", "--image", "latest"]);
    by_tag.assert_code(0);
    assert_eq!(member_images(&h.name).len(), 2, "{}", by_tag.stderr);
    // From an empty engine again, the tag alone is enough.
    kiln_in(&deploy, &cache, &r, &["down"]).assert_code(0);
    crate::support::remove_habitat(&h.name);
    let by_tag = kiln_in(&deploy, &cache, &r, &["up", "--image", "latest"]);
    by_tag.assert_code(0);
    assert!(by_tag.stderr.contains("pulled `"), "{}", by_tag.stderr);
    let by_tag_ref = format!("{}:latest", r.repository(&h));
    let images = member_images(&h.name);
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(images.iter().all(|(_, i)| *i == by_tag_ref), "{images:?}");

    kiln_in(&deploy, &cache, &r, &["down"]).assert_code(0);
    assert!(
        member_images(&h.name).is_empty(),
        "down removed every member"
    );
    let left = docker_output(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=dev.kiln.habitat={}", h.name),
    ]);
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty());
}
