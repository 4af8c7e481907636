//! The registry commands of SPEC §10 that read what was pushed, end to end
//! on the real engine and a real registry (Debian's `docker-registry` on
//! loopback): `kiln promote` and `kiln retention`. Images are seeded with
//! the engine itself (`docker tag` + `docker push`) or, where a test needs
//! chosen creation times, written with kiln's registry client.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use kiln_core::registry::oci::{Credentials, OciRegistry};
use kiln_core::registry::{
    MEDIA_CONFIG, MEDIA_LAYER, MEDIA_MANIFEST, Manifest, Registry, digest_of,
};
use kiln_core::testing::{LocalRegistry, RegistryOptions};

use crate::support::{Habitat, docker};

/// A registry on loopback and a Docker config directory with no credentials.
pub(crate) struct Remote {
    pub server: LocalRegistry,
    pub docker_config: tempfile::TempDir,
}

impl Remote {
    pub fn start(deletes: bool) -> Remote {
        let server = LocalRegistry::start(&RegistryOptions {
            deletes,
            user: None,
        })
        .unwrap_or_else(|e| panic!("these tests need docker-registry: {e}"));
        Remote {
            server,
            docker_config: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn client(&self) -> OciRegistry {
        OciRegistry::with_credentials(&self.server.host, Credentials::Anonymous)
    }

    /// `HOST:PORT/PATH` of the habitat's repository.
    pub fn repository(&self, h: &Habitat) -> String {
        format!("{}/{}", self.server.host, path_of(h))
    }
}

/// The repository path of `h` in the registry: `remote/NAME`.
pub(crate) fn path_of(h: &Habitat) -> String {
    format!("remote/{}", h.name)
}

/// `kiln ARGS` with this registry's (empty) Docker config.
fn kiln(h: &Habitat, r: &Remote, args: &[&str]) -> crate::support::Run {
    h.kiln(args)
        .env(
            "DOCKER_CONFIG",
            &r.docker_config.path().display().to_string(),
        )
        .run()
}

/// A busybox habitat with two phases and `registry:` pointing at `r`.
fn habitat(prefix: &str, r: &Remote, retention: &str) -> Habitat {
    let h = Habitat::new(prefix);
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: kiln-test/busybox:latest }}\n  env: [ A=1 ]\n  final: {{ command: [sh] }}\nregistry:\n  repository: {}\n  tags: [latest]\n{retention}",
        r.repository(&h)
    ));
    h
}

/// Pushes the habitat's final image through the engine as `tag`; returns
/// the manifest digest the registry reports.
fn docker_push(h: &Habitat, r: &Remote, tag: &str) -> String {
    let target = format!("{}:{tag}", r.repository(h));
    docker(&["tag", &format!("habitat-{}:latest", h.name), &target]);
    let out = docker(&["push", &target]);
    out.split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in `docker push` output: {out}"))
        .to_string()
}

#[test]
fn promote_points_the_tag_at_the_same_digest_and_prints_it() {
    let r = Remote::start(true);
    let h = habitat("rmt-promote", &r, "");
    h.build_ok(&[]);
    let pushed = docker_push(&h, &r, "main-abc1234");
    let client = r.client();
    let path = path_of(&h);
    let tags_before = client.tags(&path).expect("tags");

    let run = kiln(&h, &r, &["promote", "main-abc1234", "prod"]);
    run.assert_code(0);
    assert_eq!(
        run.stdout.trim(),
        format!("{}@{pushed}", r.repository(&h)),
        "{}",
        run.stderr
    );
    let prod = client
        .manifest_get(&path, "prod")
        .expect("get")
        .expect("prod");
    assert_eq!(prod.digest, pushed, "promote keeps the digest");
    let mut tags = tags_before;
    tags.push("prod".to_string());
    tags.sort();
    assert_eq!(client.tags(&path).expect("tags"), tags);

    // By digest, to a second tag, and the engine pulls what it points at.
    let run = kiln(&h, &r, &["promote", &pushed, "staging"]);
    run.assert_code(0);
    let staging = format!("{}:staging", r.repository(&h));
    docker(&["pull", &staging]);
    let digests = docker(&["inspect", "--format", "{{json .RepoDigests}}", &staging]);
    assert!(digests.contains(&pushed), "{digests}");

    // A source that is not there is the user's mistake (exit 2), naming it.
    let run = kiln(&h, &r, &["promote", "pr-404", "prod"]);
    run.assert_code(2);
    assert!(run.stderr.contains("pr-404"), "{}", run.stderr);
    // A destination that is no tag is refused before the registry is asked.
    let run = kiln(&h, &r, &["promote", "prod", "bad/tag"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("`bad/tag` is not a valid tag"),
        "{}",
        run.stderr
    );
}

#[test]
fn promote_without_a_registry_section_or_with_the_registry_down() {
    let r = Remote::start(true);
    let h = Habitat::new("rmt-noreg");
    h.config("name: @NAME@\nbuild:\n  base: { image: kiln-test/busybox:latest }\n");
    let run = kiln(&h, &r, &["promote", "a", "b"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("has no `registry:` section"),
        "{}",
        run.stderr
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let down = format!("127.0.0.1:{port}");
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: kiln-test/busybox:latest }}\nregistry: {{ repository: {down}/team/app }}\n"
    ));
    let run = kiln(&h, &r, &["promote", "a", "b"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains(&down),
        "names the registry: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("manifest pull"),
        "names the operation: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("docker login {down}")),
        "{}",
        run.stderr
    );
}

fn upload(c: &dyn Registry, repo: &str, bytes: &[u8]) -> String {
    let digest = digest_of(bytes);
    if c.blob_size(repo, &digest).expect("head").is_none() {
        c.blob_upload(
            repo,
            &digest,
            bytes.len() as u64,
            &mut Cursor::new(bytes.to_vec()),
        )
        .expect("upload");
    }
    digest
}

/// An image whose config says it was created `days_ago` (never when `None`).
fn seed(c: &dyn Registry, repo: &str, tag: &str, days_ago: Option<u64>) -> String {
    let mut labels = BTreeMap::new();
    if let Some(days) = days_ago {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        labels.insert(
            "org.opencontainers.image.created".to_string(),
            rfc3339(now - days * 86_400),
        );
    }
    let layer = format!("layer of {tag}");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [digest_of(layer.as_bytes())] },
        "config": { "Labels": labels }
    })
    .to_string();
    let cd = upload(c, repo, config.as_bytes());
    let ld = upload(c, repo, layer.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
        "config": { "mediaType": MEDIA_CONFIG, "digest": cd, "size": config.len() },
        "layers": [{ "mediaType": MEDIA_LAYER, "digest": ld, "size": layer.len() }],
    });
    let m = Manifest::new(MEDIA_MANIFEST, serde_json::to_vec(&manifest).expect("json"));
    c.manifest_put(repo, tag, &m).expect("put")
}

fn rfc3339(t: u64) -> String {
    let (days, secs) = ((t / 86_400) as i64, t % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `(verb, tag)` of every line `kiln retention` printed on stdout.
fn decisions(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let verb = w.next()?.to_string();
            Some((w.next()?.to_string(), verb))
        })
        .collect()
}

#[test]
fn retention_over_30_tags_dry_run_changes_nothing_then_leaves_exactly_the_kept_set() {
    let r = Remote::start(true);
    let h = habitat(
        "rmt-ret",
        &r,
        "  retention:\n    - { match: \"pr-*\", keep: 5 }\n    - { match: \"main-*\", keep: 3 }\n    - { match: \"cache-*\", older_than: 30d }\n",
    );
    let c = r.client();
    let path = path_of(&h);
    // pr-0..pr-11 created 0..11 days ago (pr-0 newest), main-0..main-7 the
    // same, cache-0..cache-9 every 7 days; `latest` shares main-7's manifest.
    let mut expect_kept = BTreeSet::from(["latest".to_string()]);
    for i in 0..12u64 {
        seed(&c, &path, &format!("pr-{i}"), Some(i));
        if i < 5 {
            expect_kept.insert(format!("pr-{i}"));
        }
    }
    for i in 0..8u64 {
        seed(&c, &path, &format!("main-{i}"), Some(i));
        if i < 3 {
            expect_kept.insert(format!("main-{i}"));
        }
    }
    for i in 0..10u64 {
        seed(&c, &path, &format!("cache-{i}"), Some(i * 7));
        if i * 7 <= 30 {
            expect_kept.insert(format!("cache-{i}"));
        }
    }
    let shared = c
        .manifest_get(&path, "main-7")
        .expect("get")
        .expect("main-7");
    c.manifest_put(&path, "latest", &shared).expect("latest");
    expect_kept.insert("main-7".to_string());
    let before = c.tags(&path).expect("tags");
    assert_eq!(before.len(), 31);

    let dry = kiln(&h, &r, &["retention", "--dry-run"]);
    dry.assert_code(0);
    assert_eq!(
        c.tags(&path).expect("tags"),
        before,
        "a dry run changes nothing"
    );
    let said = decisions(&dry.stdout);
    assert_eq!(said.len(), 31, "every tag is printed:\n{}", dry.stdout);
    let kept: BTreeSet<String> = said
        .iter()
        .filter(|(_, v)| *v == "keep")
        .map(|(t, _)| t.clone())
        .collect();
    assert_eq!(kept, expect_kept, "{}", dry.stdout);
    let line = |tag: &str| {
        dry.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(tag))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line("latest").ends_with("no rule matches"),
        "{}",
        line("latest")
    );
    assert!(
        line("pr-7").ends_with("rule 1 (pr-* keep 5): past the 5 newest"),
        "{}",
        line("pr-7")
    );
    assert!(
        line("pr-0").ends_with("among the 5 newest"),
        "{}",
        line("pr-0")
    );
    assert!(
        line("cache-9").ends_with("rule 3 (cache-* older_than 30d): older than 30d"),
        "{}",
        line("cache-9")
    );
    assert!(
        line("main-7").ends_with("but kept tag `latest` shares its manifest"),
        "{}",
        line("main-7")
    );
    assert!(dry.stderr.contains("nothing was changed"), "{}", dry.stderr);

    let real = kiln(&h, &r, &["retention"]);
    real.assert_code(0);
    assert_eq!(
        decisions(&real.stdout),
        said,
        "the real run decides the same"
    );
    let after: BTreeSet<String> = c.tags(&path).expect("tags").into_iter().collect();
    assert_eq!(after, expect_kept, "{}", real.stderr);
    assert_eq!(
        c.manifest_get(&path, "latest")
            .expect("get")
            .expect("latest")
            .digest,
        shared.digest,
        "the shared digest survives"
    );
    assert!(
        real.stderr.contains("deleted 16 manifest(s)"),
        "{}",
        real.stderr
    );
}

#[test]
fn retention_on_a_registry_without_deletes_exits_3_and_says_so() {
    let r = Remote::start(false);
    let h = habitat(
        "rmt-nodel",
        &r,
        "  retention:\n    - { match: \"pr-*\", keep: 1 }\n",
    );
    let c = r.client();
    let path = path_of(&h);
    for i in 0..3 {
        seed(&c, &path, &format!("pr-{i}"), Some(i));
    }
    let run = kiln(&h, &r, &["retention"]);
    run.assert_code(3);
    assert!(
        run.stderr.contains("does not allow deletes"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("storage.delete.enabled"),
        "{}",
        run.stderr
    );
    assert_eq!(c.tags(&path).expect("tags").len(), 3);
}

/// A service-shaped habitat configuring every phase (a user, env, dirs, a
/// copied file, a setup command, a local git repo, a checked tool, verify),
/// with `registry.cache: true` pointing at `r`.
fn cached_habitat(prefix: &str, r: &Remote) -> Habitat {
    let h = Habitat::new(prefix);
    let repo = h.root().join("repo");
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
  env: [APP_ENV=production, "PATH=/opt/app/bin:$PATH"]
  habitat:
    dirs: [/opt/app/bin, /var/lib/app]
    work_dir: /opt/app
  files:
    copies:
      - {{ source: files/app.conf, dest: /etc/app/app.conf, owner: app, mode: "0640" }}
  setup:
    commands:
      root: ["echo setup > /var/lib/app/marker"]
  repos:
    - {{ url: "@ROOT@/repo", path: /opt/app/src, ref: main, owner: app }}
  tools:
    - {{ name: hello, source: tools/hello.sh, sha256: "{sha}", dest: /opt/app/bin/hello }}
  verify:
    files: [/etc/app/app.conf, /opt/app/src/README]
    commands: ["hello"]
  final:
    user: app
    command: ["sh"]
registry:
  repository: {}
  tags: [latest]
  cache: true
"#,
        r.repository(&h)
    ));
    h
}

#[test]
fn an_empty_engine_builds_from_the_registry_with_no_phase_run_then_a_tools_edit_runs_tools_to_final()
 {
    let r = Remote::start(true);
    let h = cached_habitat("rmt-cache", &r);
    // Nothing in the registry yet: a cold build runs every phase.
    let cold = kiln(&h, &r, &["build", "--progress", "json"]);
    cold.assert_code(0);
    assert_eq!(cold.built().len(), 10, "{}", cold.stdout);
    let final_id = crate::support::image_id(&format!("habitat-{}:latest", h.name));
    let push = kiln(&h, &r, &["push", "--progress", "plain"]);
    push.assert_code(0);
    // Every configured phase is there as cache-KEY, and the final image under `latest`.
    let tags = r.client().tags(&path_of(&h)).expect("tags");
    assert_eq!(
        tags.iter().filter(|t| t.starts_with("cache-")).count(),
        10,
        "{tags:?}"
    );

    // An empty engine: every image of the habitat gone, the host cache too.
    crate::support::remove_habitat(&h.name);
    assert!(crate::support::images_of(&h.name).is_empty());
    let _ = std::fs::remove_dir_all(h.cache().join("made"));
    let plan = kiln(&h, &r, &["plan"]);
    plan.assert_code(0);
    assert!(plan.stdout.contains("10-final   pulled"), "{}", plan.stdout);
    let warm = kiln(&h, &r, &["build", "--progress", "json"]);
    warm.assert_code(0);
    assert_eq!(
        warm.built(),
        Vec::<String>::new(),
        "no phase runs:\n{}",
        warm.stdout
    );
    let ends = warm.phase_ends();
    let fin = warm.end("final");
    assert_eq!(fin.status, "pulled", "{fin:?}");
    assert!(fin.reason.contains("the registry holds it"), "{fin:?}");
    for e in &ends[..9] {
        assert!(
            e.status == "pulled" || e.reason == "not configured",
            "{e:?}"
        );
    }
    assert!(
        warm.events()
            .iter()
            .any(|e| e["event"] == "phase_pull" && e["phase"] == "final"),
        "{}",
        warm.stdout
    );
    // The very image that was pushed, tagged as kiln tags a final image.
    assert_eq!(
        crate::support::image_id(&format!("habitat-{}:latest", h.name)),
        final_id
    );
    let out = docker(&[
        "run",
        "--rm",
        "--label",
        &format!("dev.kiln.habitat={}", h.name),
        &format!("habitat-{}:latest", h.name),
        "sh",
        "-c",
        "hello && cat /opt/app/src/README && id -un",
    ]);
    assert_eq!(out, "hello\none\napp\n");
    // A second build is a no-op on what was pulled: nothing asked of the registry.
    let again = kiln(&h, &r, &["build", "--progress", "json"]);
    again.assert_code(0);
    assert!(
        again.phase_ends().iter().all(|e| e.status == "cached"),
        "{}",
        again.stdout
    );

    // A tools edit: the registry holds repos, so only tools..final run.
    let old = crate::support::sh(&h.dir(), "sha256sum tools/hello.sh | cut -d' ' -f1");
    h.write("tools/hello.sh", "#!/bin/sh\necho hello again\n");
    let sha = crate::support::sh(&h.dir(), "sha256sum tools/hello.sh | cut -d' ' -f1");
    h.edit(&old, &sha);
    let edit = kiln(&h, &r, &["build", "--progress", "json"]);
    edit.assert_code(0);
    assert_eq!(
        edit.built(),
        ["tools", "verify", "final"],
        "{}",
        edit.stdout
    );
    assert_eq!(
        edit.end("repos").status,
        "pulled",
        "{:?}",
        edit.end("repos")
    );
    assert_eq!(edit.end("setup").status, "pulled");
    assert_eq!(
        edit.end("setup").image,
        "",
        "within the pulled repos snapshot"
    );

    // --no-remote-cache builds locally what is not at hand locally.
    crate::support::remove_habitat(&h.name);
    let local = kiln(
        &h,
        &r,
        &["build", "--progress", "json", "--no-remote-cache"],
    );
    local.assert_code(0);
    assert_eq!(local.built().len(), 10, "{}", local.stdout);
}

#[test]
fn a_registry_that_is_down_during_a_build_is_said_and_the_build_runs_locally() {
    let r = Remote::start(true);
    let h = cached_habitat("rmt-down", &r);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let down = format!("127.0.0.1:{port}");
    h.edit(&r.repository(&h), &format!("{down}/team/app"));
    let run = kiln(&h, &r, &["build", "--progress", "plain"]);
    run.assert_code(0);
    assert!(
        run.stderr
            .contains(&format!("registry `{down}` does not answer")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("building locally"), "{}", run.stderr);
    assert!(run.stderr.contains("built  10-final"), "{}", run.stderr);
}

/// A busybox habitat with two members and `registry:` at `r`.
fn deployed_habitat(prefix: &str, r: &Remote) -> Habitat {
    let h = Habitat::new(prefix);
    h.config(&format!(
        "name: @NAME@\nbuild:\n  base: {{ image: kiln-test/busybox:latest }}\n  env: {{ VERSION: \"1\" }}\n  final: {{ command: [sh] }}\ninstances:\n  defaults:\n    command: [sleep, infinity]\n  members:\n    web: {{}}\n    worker: {{}}\nregistry:\n  repository: {}\n  tags: [\"pr-{{pr}}\"]\n  retention:\n    - {{ match: \"pr-*\", keep: 0 }}\n",
        r.repository(&h)
    ));
    h
}

/// The habitat's running members: member → the image reference it was made from.
fn member_images(name: &str) -> BTreeMap<String, String> {
    docker(&[
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
    .collect()
}

#[test]
fn up_image_runs_a_pushed_image_without_building_and_retention_keeps_what_runs() {
    let r = Remote::start(true);
    let h = deployed_habitat("rmt-up", &r);
    let _volumes = crate::instances::Volumes(h.name.clone());
    // Two pushes: pr-1 (VERSION 1), then pr-2 (VERSION 2).
    let first = h
        .kiln(&["push", "--progress", "plain"])
        .env(
            "DOCKER_CONFIG",
            &r.docker_config.path().display().to_string(),
        )
        .env("KILN_PR", "1")
        .run();
    first.assert_code(0);
    let digest1 = first
        .stdout
        .trim()
        .rsplit_once('@')
        .expect("REPO@DIGEST")
        .1
        .to_string();
    h.edit("VERSION: \"1\"", "VERSION: \"2\"");
    let second = h
        .kiln(&["push", "--progress", "plain"])
        .env(
            "DOCKER_CONFIG",
            &r.docker_config.path().display().to_string(),
        )
        .env("KILN_PR", "2")
        .run();
    second.assert_code(0);

    // A deploy machine: nothing of the habitat in the engine.
    crate::support::remove_habitat(&h.name);
    let up = kiln(&h, &r, &["up", "--image", &digest1, "--progress", "plain"]);
    up.assert_code(0);
    assert!(up.stderr.contains("pulled `"), "{}", up.stderr);
    assert!(!up.stderr.contains("built"), "no build: {}", up.stderr);
    let reference = format!("{}@{digest1}", r.repository(&h));
    let images = member_images(&h.name);
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(images.values().all(|i| *i == reference), "{images:?}");
    let version = docker(&[
        "exec",
        &format!("{}-web", h.name),
        "sh",
        "-c",
        "echo $VERSION",
    ]);
    assert_eq!(version.trim(), "1");
    // Nothing was built: no snapshot tag of the habitat exists.
    assert!(
        !crate::support::tags_of(&h.name)
            .iter()
            .any(|t| t.ends_with("-base")),
        "{:?}",
        crate::support::tags_of(&h.name)
    );

    // Retention keeps no pr-*, but pr-1 runs here: kept; pr-2 would go.
    let dry = kiln(&h, &r, &["retention", "--dry-run"]);
    dry.assert_code(0);
    let pr1 = dry
        .stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("pr-1"))
        .unwrap_or_default();
    assert!(
        pr1.starts_with("keep") && pr1.ends_with("but a local instance runs it"),
        "{}",
        dry.stdout
    );

    // By tag, to the newer image: the members move to it.
    let up2 = kiln(&h, &r, &["up", "--image", "pr-2"]);
    up2.assert_code(0);
    let version = docker(&[
        "exec",
        &format!("{}-web", h.name),
        "sh",
        "-c",
        "echo $VERSION",
    ]);
    assert_eq!(version.trim(), "2");
    // Now pr-2 runs and nothing runs pr-1: a real run deletes pr-1 only.
    let real = kiln(&h, &r, &["retention"]);
    real.assert_code(0);
    assert_eq!(
        r.client()
            .tags(&path_of(&h))
            .expect("tags")
            .iter()
            .filter(|t| t.starts_with("pr-"))
            .collect::<Vec<_>>(),
        ["pr-2"]
    );

    // Another habitat's image, or a tag that is not there, is refused.
    let missing = kiln(&h, &r, &["up", "--image", "pr-404"]);
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    assert!(missing.stderr.contains("pr-404"), "{}", missing.stderr);
    let foreign = kiln(&h, &r, &["up", "--image", "kiln-test/busybox:latest"]);
    foreign.assert_code(2);
    assert!(
        foreign.stderr.contains("not a final image kiln built"),
        "{}",
        foreign.stderr
    );
    kiln(&h, &r, &["down"]).assert_code(0);
}

/// Every `cache-KEY` tag of the habitat's repository holds the snapshot
/// with key KEY (verify's holds the tools snapshot before it); returns how
/// many there are.
fn cache_tags_hold_their_keys(r: &Remote, h: &Habitat) -> usize {
    let c = r.client();
    let path = path_of(h);
    let mut n = 0;
    for tag in c
        .tags(&path)
        .expect("tags")
        .iter()
        .filter(|t| t.starts_with("cache-"))
    {
        let m = c.manifest_get(&path, tag).expect("get").expect("the tag");
        let m: serde_json::Value = serde_json::from_slice(&m.bytes).expect("json");
        let mut config = Vec::new();
        c.blob_get(
            &path,
            m["config"]["digest"].as_str().expect("config"),
            &mut config,
        )
        .expect("config blob");
        let config: serde_json::Value = serde_json::from_slice(&config).expect("json");
        let labels = &config["config"]["Labels"];
        let key = labels["dev.kiln.key"].as_str().unwrap_or_default();
        let phase = labels["dev.kiln.phase"].as_str().unwrap_or_default();
        assert!(
            tag == &format!("cache-{key}") || phase == "8-tools",
            "`{tag}` holds the snapshot of {phase} with key {key}"
        );
        n += 1;
    }
    n
}

#[test]
fn regression_a_push_after_a_pull_never_sends_a_stale_phase_tag_under_a_new_key() {
    let r = Remote::start(true);
    let h = cached_habitat("rmt-stale", &r);
    // Config B built and pushed (as by CI elsewhere).
    h.edit("APP_ENV=production", "APP_ENV=staging");
    kiln(&h, &r, &["push", "--progress", "plain"]).assert_code(0);
    assert_eq!(cache_tags_hold_their_keys(&r, &h), 10);
    // This engine then holds config A's snapshots at every phase tag.
    crate::support::remove_habitat(&h.name);
    h.edit("APP_ENV=staging", "APP_ENV=production");
    kiln(
        &h,
        &r,
        &["build", "--progress", "json", "--no-remote-cache"],
    )
    .assert_code(0);
    // Back to B: base and users are here, final is pulled, env..verify are
    // within it and their tags still point at A's images.
    h.edit("APP_ENV=production", "APP_ENV=staging");
    let b = kiln(&h, &r, &["build", "--progress", "json"]);
    b.assert_code(0);
    assert_eq!(b.end("final").status, "pulled", "{}", b.stdout);
    assert_eq!(b.end("env").status, "pulled", "{}", b.stdout);
    let push = kiln(&h, &r, &["push", "--progress", "plain"]);
    push.assert_code(0);
    assert_eq!(cache_tags_hold_their_keys(&r, &h), 10, "{}", push.stderr);
}
