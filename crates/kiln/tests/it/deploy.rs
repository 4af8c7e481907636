//! A deploy machine (SPEC §10): `kiln up --image REF` runs the members of a
//! pushed image from a directory that holds the `kiln.yaml` alone (no copied
//! file, no local repo, no tool), on an engine holding nothing of the
//! habitat; end to end on the real engine and a real registry on loopback.

use std::path::Path;
use std::process::Command;

use kiln_core::registry::Registry;

use crate::remote::{Remote, path_of};
use crate::support::{Habitat, Run, docker, docker_output, image_id};

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

    // The other instance commands build nothing either: they run there too.
    let ps = kiln_in(&deploy, &cache, &r, &["ps"]);
    ps.assert_code(0);
    assert!(
        ps.stdout.contains("web") && ps.stdout.contains("worker"),
        "{}",
        ps.stdout
    );
    kiln_in(&deploy, &cache, &r, &["exec", "web", "--", "true"]).assert_code(0);

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

/// The `org.opencontainers.image.created` label of the config `tag` of
/// `h`'s repository points at.
fn pushed_created(r: &Remote, h: &Habitat, tag: &str) -> String {
    let c = r.client();
    let m = c
        .manifest_get(&path_of(h), tag)
        .expect("manifest")
        .expect("the tag is there");
    let m: serde_json::Value = serde_json::from_slice(&m.bytes).expect("manifest JSON");
    let digest = m["config"]["digest"].as_str().expect("a config digest");
    let mut bytes = Vec::new();
    c.blob_get(&path_of(h), digest, &mut bytes).expect("config");
    let config: serde_json::Value = serde_json::from_slice(&bytes).expect("config JSON");
    config["config"]["Labels"]["org.opencontainers.image.created"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The digest `kiln push` printed (`REPO@DIGEST`).
fn printed_digest(run: &Run) -> String {
    run.assert_code(0);
    run.stdout
        .trim()
        .rsplit_once('@')
        .expect("REPO@DIGEST")
        .1
        .to_string()
}

#[test]
fn a_pushed_final_image_is_dated_when_kiln_made_it_and_keeps_its_digest_when_made_again() {
    let r = Remote::start(false);
    let h = Habitat::new("kdeploy-created");
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: kiln-test/busybox:latest }}\n  env: {{ VERSION: \"1\" }}\n  final: {{ command: [sh] }}\nregistry:\n  repository: {}\n  tags: [latest]\n",
        r.repository(&h)
    ));
    h.build_ok(&[]);
    // What kiln recorded of when it made the final image (its made index),
    // set to a known time: that is the time the push must say.
    let final_id = image_id(&format!("habitat-{}:latest", h.name));
    let made = h.cache().join(format!("made/{}.json", h.name));
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&made).expect("made index")).expect("JSON");
    index["made_at"][&final_id] = serde_json::json!(1_700_000_000u64);
    std::fs::write(&made, serde_json::to_vec(&index).unwrap()).expect("write made index");

    let push = |extra: &[&str]| {
        let mut args = vec!["push", "--progress", "plain"];
        args.extend_from_slice(extra);
        kiln_in(&h.dir(), &h.cache(), &r, &args)
    };
    let first = push(&[]);
    let digest = printed_digest(&first);
    assert_eq!(pushed_created(&r, &h, "latest"), "2023-11-14T22:13:20Z");

    // The final image removed, so the next push makes it again from the
    // snapshots before it: the same key, the same pushed digest.
    docker(&["rmi", "-f", &final_id]);
    let again = push(&[]);
    assert!(again.stderr.contains("built  10-final"), "{}", again.stderr);
    assert_eq!(printed_digest(&again), digest, "{}", again.stderr);
    assert_eq!(pushed_created(&r, &h, "latest"), "2023-11-14T22:13:20Z");

    // A changed config is a new final image, built now: a new date and digest.
    h.edit("VERSION: \"1\"", "VERSION: \"2\"");
    let changed = push(&[]);
    assert_ne!(printed_digest(&changed), digest);
    let created = pushed_created(&r, &h, "latest");
    assert!(
        created.starts_with("20") && created != "2023-11-14T22:13:20Z",
        "{created}"
    );

    // The push record is host cache: `cache status` shows it by kind, and
    // only `nuke` removes it (a medium prune must not change a re-push).
    let record = h.cache().join(format!("pushed/{}.json", h.name));
    assert!(record.is_file());
    let status = kiln_in(&h.dir(), &h.cache(), &r, &["cache", "status", "--json"]);
    status.assert_code(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let pushed: Vec<&serde_json::Value> = status["host"]
        .as_array()
        .expect("host entries")
        .iter()
        .filter(|e| e["kind"] == "pushed")
        .collect();
    assert_eq!(pushed.len(), 1, "{status}");
    assert_eq!(
        pushed[0]["removed_at"],
        serde_json::json!(["nuke"]),
        "{status}"
    );
    assert!(pushed[0]["bytes"].as_u64().unwrap_or(0) > 0, "{status}");
    let text = kiln_in(&h.dir(), &h.cache(), &r, &["cache", "status"]);
    assert!(
        text.stdout.lines().any(|l| l.starts_with("pushed ")),
        "{}",
        text.stdout
    );
    kiln_in(
        &h.dir(),
        &h.cache(),
        &r,
        &["cache", "prune", "--level", "hard"],
    )
    .assert_code(0);
    assert!(record.is_file(), "hard leaves the push record");
    let nuke = kiln_in(
        &h.dir(),
        &h.cache(),
        &r,
        &["cache", "prune", "--level", "nuke", "--yes"],
    );
    nuke.assert_code(0);
    assert!(!record.exists(), "nuke removes it: {}", nuke.stderr);
}
