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
  cache: true
"#,
        r.repository(&h)
    ));
    h
}

/// Seeds the registry with every configured phase's snapshot as
/// `cache-KEY`, pushed by the engine (`kiln push` does this for real).
fn seed_cache(h: &Habitat, r: &Remote) -> BTreeMap<String, String> {
    let plan = kiln(h, r, &["plan", "--json"]);
    plan.assert_code(0);
    let mut keys = BTreeMap::new();
    for line in plan.stdout.lines() {
        let p: serde_json::Value = serde_json::from_str(line).expect("json");
        assert_eq!(p["action"], "cached", "{line}");
        let (phase, key, image) = (
            p["phase"].as_str().unwrap_or_default(),
            p["key"].as_str().unwrap_or_default(),
            p["image"].as_str().unwrap_or_default(),
        );
        let target = format!("{}:cache-{key}", r.repository(h));
        docker(&["tag", image, &target]);
        docker(&["push", &target]);
        docker(&["rmi", &target]);
        keys.insert(phase.to_string(), key.to_string());
    }
    keys
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
    seed_cache(&h, &r);

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
