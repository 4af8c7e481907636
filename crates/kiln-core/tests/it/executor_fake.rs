//! Builds on the fake engine, driven through `executor::build` as the CLI
//! drives it: the events a build reports, the tags and labels it leaves, a
//! second build that is all cached and does no work, and edits that rebuild
//! from one phase; and what must never pass as cached (a foreign image in
//! place of the final one, a base moved during the build). The fake runs no
//! command: the setup step is scripted with what it would print and write.
//!
//! Over 600 lines: one build scenario per test, sharing the `Fixture`; each
//! test stands alone.

use std::collections::{BTreeMap, BTreeSet};

use kiln_core::Phase;
use kiln_core::config::{self, Habitat};
use kiln_core::engine::fake::{FakeEngine, FakeFileKind, FakeRun};
use kiln_core::engine::{Engine, Stream};
use kiln_core::executor::{self, BuildError, BuildOptions, Built};
use kiln_core::image::labels::{
    LABEL_INPUTS, LABEL_KEY, LABEL_PARENT, LABEL_PHASE, LABEL_VERIFIED,
};
use kiln_core::image::names;
use kiln_core::report::{Event, Recorder};
use kiln_core::testing;
use sha2::{Digest, Sha256};

const NAME: &str = "fake";
const REPO: &str = "habitat-fake";

/// Every phase but repos (it would need a git repository on the host).
const YAML: &str = r#"name: fake
build:
  base: { image: "kiln-test/busybox:latest" }
  users:
    - { name: dev, uid: 1000 }
  env: [GREETING=hello]
  habitat:
    dirs: [/habitat/tools]
    work_dir: /work
  files:
    copies:
      - { source: files/motd, dest: /etc/motd, mode: "0644" }
  setup:
    commands:
      root: ["echo one > /setup-marker"]
  tools:
    - { name: hello, source: tools/hello.sh, sha256: "@SHA@" }
  verify:
    files: [/etc/motd, /setup-marker]
  final:
    command: ["sh"]
"#;

const TOOL: &str = "#!/bin/sh\necho hello\n";

/// A habitat in a temp dir (its kiln cache beside it) and a fake engine that
/// holds the busybox base image and knows the setup steps the tests use.
struct Fixture {
    root: tempfile::TempDir,
    engine: FakeEngine,
}

impl Fixture {
    async fn new() -> Fixture {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("h");
        std::fs::create_dir_all(dir.join("files")).expect("mkdir");
        std::fs::create_dir_all(dir.join("tools")).expect("mkdir");
        std::fs::write(dir.join("files/motd"), "welcome\n").expect("write");
        std::fs::write(dir.join("tools/hello.sh"), TOOL).expect("write");
        let sha = hex::encode(Sha256::digest(TOOL.as_bytes()));
        std::fs::write(dir.join("kiln.yaml"), YAML.replace("@SHA@", &sha)).expect("write");
        let engine = FakeEngine::new();
        testing::busybox_image(&engine)
            .await
            .expect("the busybox base image in the fake");
        for word in ["one", "two"] {
            engine.script(
                &format!("echo {word} > /setup-marker"),
                FakeRun::exit(0)
                    .line(Stream::Stdout, &format!("wrote {word}"))
                    .writes("/setup-marker", format!("{word}\n").as_bytes()),
            );
        }
        engine.script(
            "exit 3",
            FakeRun::exit(3)
                .line(Stream::Stdout, "first-line")
                .line(Stream::Stderr, "last-line"),
        );
        Fixture { root, engine }
    }

    fn dir(&self) -> std::path::PathBuf {
        self.root.path().join("h")
    }

    fn habitat(&self) -> Habitat {
        config::load(&self.dir()).unwrap_or_else(|d| panic!("{d}"))
    }

    fn options(&self) -> BuildOptions {
        BuildOptions {
            cache_root: Some(self.root.path().join("cache")),
            ..BuildOptions::default()
        }
    }

    /// Replaces `from` with `to` in `kiln.yaml`, which must contain it.
    fn edit(&self, from: &str, to: &str) {
        let path = self.dir().join("kiln.yaml");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(from), "kiln.yaml has no `{from}`:\n{text}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("write");
    }

    async fn build_with(&self, opts: &BuildOptions) -> (Result<Built, BuildError>, Vec<Event>) {
        let mut reporter = Recorder::default();
        let result = executor::build(&self.engine, &self.habitat(), opts, &mut reporter).await;
        (result, reporter.events)
    }

    /// A build that must succeed: what it built, and its events as lines.
    async fn build_ok(&self) -> (Built, Vec<String>) {
        let (result, events) = self.build_with(&self.options()).await;
        let built = result.unwrap_or_else(|e| panic!("{e}\n{:#?}", lines(&events)));
        check_keys(&built, &events);
        (built, lines(&events))
    }

    /// `tag` → image id, for every tag of `habitat-fake`.
    fn tags(&self) -> BTreeMap<String, String> {
        self.engine
            .tags()
            .into_iter()
            .filter_map(|(t, id)| Some((t.strip_prefix(&format!("{REPO}:"))?.to_string(), id)))
            .collect()
    }

    /// The content of a file in an image, by reference.
    fn file(&self, image: &str, path: &str) -> Option<String> {
        match self.engine.image_files(image)?.get(path)?.kind.clone() {
            FakeFileKind::File(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            other => panic!("`{path}` of `{image}` is not a file: {other:?}"),
        }
    }
}

/// The events without durations and keys (`check_keys` checks those), one
/// line each: `end 6-setup built (no snapshot yet) -> habitat-fake:6-setup`.
fn lines(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::BuildStart { habitat } => format!("build_start {habitat}"),
            Event::Waiting { habitat, holder } => format!("waiting {habitat} {holder}"),
            Event::Note { message } => format!("note {message}"),
            Event::Pruned {
                habitat, removed, ..
            } => format!("pruned {habitat} {}", removed.len()),
            Event::PhaseStart { phase } => format!("start {}", phase.tag()),
            Event::Pulling { phase, reference } => format!("pull {} {reference}", phase.tag()),
            Event::PhaseLog {
                phase,
                stream,
                line,
            } => format!("log {} {stream}: {line}", phase.tag()),
            Event::PhaseEnd {
                phase,
                status,
                image,
                reason,
                ..
            } => format!(
                "end {} {} ({reason}) -> {image}",
                phase.tag(),
                status.as_str()
            ),
            Event::StepEnd {
                step,
                name,
                status,
                image,
                reason,
                ..
            } => format!(
                "step {step} {name} {} ({reason}) -> {image}",
                status.as_str()
            ),
            Event::BuildEnd { ok, image, .. } => {
                format!("build_end ok={ok} {}", image.as_deref().unwrap_or("-"))
            }
            // A build reports no push.
            other => format!("unexpected {other:?}"),
        })
        .collect()
}

/// Each `phase_end` carries the key the plan gave its phase.
fn check_keys(built: &Built, events: &[Event]) {
    for e in events {
        if let Event::PhaseEnd { phase, key, .. } = e {
            assert_eq!(*key, built.plan.get(*phase).key.key.to_string(), "{phase}");
        }
    }
}

fn snapshot(phase: Phase) -> String {
    names::snapshot(NAME, phase)
}

/// The `end` lines of a build where `phases` built with `reasons` and every
/// other phase was cached (or skipped: repos).
fn ends(built: &[(Phase, &str)]) -> Vec<String> {
    Phase::ALL
        .iter()
        .map(|&p| {
            let (status, reason) = match built.iter().find(|(b, _)| *b == p) {
                Some((_, reason)) => ("built", *reason),
                None if p == Phase::Repos => ("cached", "not configured"),
                None => ("cached", ""),
            };
            format!("end {} {status} ({reason}) -> {}", p.tag(), snapshot(p))
        })
        .collect()
}

fn only_ends(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.starts_with("end "))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_cold_build_then_a_cached_one_then_an_edit_rebuilds_from_its_phase() {
    let f = Fixture::new().await;

    // Cold: every configured phase builds, each reported start to end.
    let (built, events) = f.build_ok().await;
    let final_image = names::final_image(NAME, built.final_key.as_str());
    assert_eq!(built.image, final_image);
    let expected = [
        "build_start fake",
        "start 1-base",
        "end 1-base built (no snapshot yet) -> habitat-fake:1-base",
        "start 2-users",
        "end 2-users built (no snapshot yet) -> habitat-fake:2-users",
        "start 3-env",
        "end 3-env built (no snapshot yet) -> habitat-fake:3-env",
        "start 4-habitat",
        "end 4-habitat built (no snapshot yet) -> habitat-fake:4-habitat",
        "start 5-files",
        "end 5-files built (no snapshot yet) -> habitat-fake:5-files",
        "start 6-setup",
        "log 6-setup stdout: wrote one",
        "end 6-setup built (no snapshot yet) -> habitat-fake:6-setup",
        "end 7-repos cached (not configured) -> habitat-fake:7-repos",
        "start 8-tools",
        "log 8-tools stdout: hello -> /usr/local/bin/hello",
        "end 8-tools built (no snapshot yet) -> habitat-fake:8-tools",
        "start 9-verify",
        "end 9-verify built (no snapshot yet) -> habitat-fake:9-verify",
        "start 10-final",
        "end 10-final built (no snapshot yet) -> habitat-fake:10-final",
        &format!("build_end ok=true {final_image}"),
    ];
    assert_eq!(events, expected);

    // The tags: one per phase, a skipped phase's (and verify's) on the image
    // before it, and the final ones on the final image.
    let tags = f.tags();
    let mut wanted: BTreeSet<String> = Phase::ALL.iter().map(|p| p.tag()).collect();
    wanted.insert(names::final_tag(built.final_key.as_str()));
    wanted.insert("latest".into());
    // Setup's one command is run whole: no step tags (SPEC §5).
    assert_eq!(tags.keys().cloned().collect::<BTreeSet<_>>(), wanted);
    assert_eq!(tags["7-repos"], tags["6-setup"]);
    assert_eq!(tags["9-verify"], tags["8-tools"]);
    assert_eq!(tags["latest"], tags["10-final"]);
    assert_eq!(
        tags[&names::final_tag(built.final_key.as_str())],
        tags["10-final"]
    );
    let distinct: BTreeSet<&String> = tags.values().collect();
    assert_eq!(distinct.len(), 8, "{tags:#?}");

    // The snapshot labels (SPEC §4) and what the phases put in the image.
    let setup = f
        .engine
        .image_inspect(&snapshot(Phase::Setup))
        .await
        .expect("inspect")
        .expect("the setup snapshot");
    let labels = &setup.config.labels;
    assert_eq!(labels[LABEL_PHASE], "6-setup");
    assert_eq!(
        labels[LABEL_KEY],
        built.plan.get(Phase::Setup).key.key.to_string()
    );
    assert_eq!(
        labels[LABEL_PARENT],
        built.plan.get(Phase::Files).key.key.to_string()
    );
    assert!(
        labels[LABEL_INPUTS].contains("echo one > /setup-marker"),
        "{labels:?}"
    );
    assert!(!labels.contains_key(LABEL_VERIFIED), "{labels:?}");
    let last = f
        .engine
        .image_inspect("habitat-fake:latest")
        .await
        .expect("inspect")
        .expect("the final image");
    assert_eq!(
        last.config.labels[LABEL_VERIFIED],
        built.plan.get(Phase::Verify).key.key.to_string()
    );
    assert!(
        last.config.env.contains(&"GREETING=hello".to_string()),
        "{:?}",
        last.config
    );
    assert_eq!(last.config.working_dir.as_deref(), Some("/work"));
    assert_eq!(last.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(
        f.file(&final_image, "/setup-marker").as_deref(),
        Some("one\n")
    );
    assert_eq!(
        f.file(&final_image, "/etc/motd").as_deref(),
        Some("welcome\n")
    );
    assert_eq!(
        f.file(&final_image, "/usr/local/bin/hello").as_deref(),
        Some(TOOL)
    );
    assert!(
        f.file(&final_image, "/etc/passwd")
            .is_some_and(|p| p.contains("dev:x:1000:")),
        "no user `dev`"
    );
    assert!(f.engine.container_ids().is_empty(), "no container is left");

    // Again: all cached, no work done, the same tags and final image.
    let before = f.engine.counters();
    let (again, events) = f.build_ok().await;
    assert_eq!(again.image, final_image);
    let mut expected = vec![format!("build_start {NAME}")];
    expected.extend(ends(&[]));
    expected.push(format!("build_end ok=true {final_image}"));
    assert_eq!(events, expected);
    let after = f.engine.counters();
    assert_eq!(after.containers_created, before.containers_created);
    assert_eq!(after.containers_run, before.containers_run);
    assert_eq!(after.commits, before.commits);
    assert_eq!(after.imports, before.imports);
    assert_eq!(after.tags, before.tags, "every tag already pointed right");
    assert_eq!(f.tags(), tags);

    // An edited root command rebuilds from setup; what is before it is reused.
    f.edit("echo one > /setup-marker", "echo two > /setup-marker");
    let (edited, events) = f.build_ok().await;
    assert_eq!(
        only_ends(&events),
        ends(&[
            (Phase::Setup, "config changed: setup.commands.root[0]"),
            (Phase::Tools, "after setup rebuilt"),
            (Phase::Verify, "after setup rebuilt"),
            (Phase::Final, "after setup rebuilt"),
        ])
    );
    assert!(
        events.contains(&"log 6-setup stdout: wrote two".to_string()),
        "{events:#?}"
    );
    let now = f.tags();
    for p in ["1-base", "2-users", "3-env", "4-habitat", "5-files"] {
        assert_eq!(now[p], tags[p], "{p} is reused");
    }
    for p in [
        "6-setup", "7-repos", "8-tools", "9-verify", "10-final", "latest",
    ] {
        assert_ne!(now[p], tags[p], "{p} moved");
    }
    let final_two = names::final_image(NAME, edited.final_key.as_str());
    assert_eq!(
        f.file(&final_two, "/setup-marker").as_deref(),
        Some("two\n")
    );
    // The old final image is still there, by its own tag.
    assert_eq!(
        f.file(&final_image, "/setup-marker").as_deref(),
        Some("one\n")
    );

    // Back to the first command: the older, untagged snapshots are hits.
    f.edit("echo two > /setup-marker", "echo one > /setup-marker");
    let (back, events) = f.build_ok().await;
    assert_eq!(back.image, final_image);
    assert_eq!(only_ends(&events), ends(&[]));
    assert_eq!(f.tags()["latest"], tags["latest"]);
}

/// The verify half of `plan_cases`'
/// `regression_verify_reason_is_not_no_snapshot_yet_on_a_rebuild`, on the
/// labels the executor really writes: verify has no snapshot of its own, and
/// a changed verify alone rebuilds it (and final) with its own reason.
#[tokio::test]
async fn verify_is_cached_by_the_final_images_label_and_rebuilt_when_it_changes() {
    let f = Fixture::new().await;
    f.build_ok().await;
    f.edit("GREETING=hello", "GREETING=hi");
    let (_, events) = f.build_ok().await;
    let after_env = "after env rebuilt";
    assert_eq!(
        only_ends(&events),
        ends(&[
            (Phase::Env, "config changed: env.GREETING"),
            (Phase::Habitat, after_env),
            (Phase::Files, after_env),
            (Phase::Setup, after_env),
            (Phase::Tools, after_env),
            (Phase::Verify, after_env),
            (Phase::Final, after_env),
        ])
    );
    f.edit(
        "files: [/etc/motd, /setup-marker]",
        "files: [/etc/motd, /setup-marker, /bin/sh]",
    );
    let (_, events) = f.build_ok().await;
    assert_eq!(
        only_ends(&events),
        ends(&[
            (Phase::Verify, "its inputs changed since it last passed"),
            (Phase::Final, "after verify rebuilt"),
        ])
    );
}

/// A failing phase: its `phase_end` says `failed`, the build ends not ok, the
/// snapshots before it keep their tags, no container is left, and the next
/// build resumes at the failed phase.
#[tokio::test]
async fn a_failing_phase_keeps_earlier_snapshots_and_the_next_build_resumes_there() {
    let f = Fixture::new().await;
    f.edit("echo one > /setup-marker", "echo one; exit 3");
    let (result, events) = f.build_with(&f.options()).await;
    let Err(BuildError::Phase(failure)) = result else {
        panic!("expected a phase failure: {:#?}", lines(&events));
    };
    assert_eq!(failure.phase, Phase::Setup);
    assert_eq!(failure.exit_code, Some(3));
    assert_eq!(failure.output, ["first-line", "last-line"]);
    let events = lines(&events);
    assert_eq!(
        events[events.len() - 2..],
        [
            "end 6-setup failed (no snapshot yet) -> ",
            "build_end ok=false -"
        ]
    );
    let kept: BTreeSet<String> = f.tags().into_keys().collect();
    assert_eq!(
        kept,
        ["1-base", "2-users", "3-env", "4-habitat", "5-files"]
            .map(String::from)
            .into()
    );
    assert!(f.engine.container_ids().is_empty(), "no container is left");

    f.edit("echo one; exit 3", "echo one > /setup-marker");
    let (_, events) = f.build_ok().await;
    assert_eq!(
        only_ends(&events),
        ends(&[
            (Phase::Setup, "no snapshot yet"),
            (Phase::Tools, "no snapshot yet"),
            (Phase::Verify, "no snapshot yet"),
            (Phase::Final, "no snapshot yet"),
        ])
    );
}

/// An image another tool made in place of the final one (it copied every
/// label, the verify mark included) is neither the final image nor proof
/// that verify passed: both run again, and the reason names it.
#[tokio::test]
async fn regression_a_foreign_image_with_the_verify_mark_neither_passes_verify_nor_is_final() {
    let f = Fixture::new().await;
    let (built, _) = f.build_ok().await;
    let kiln_final = f.tags()["latest"].clone();
    let info = f
        .engine
        .image_inspect(&kiln_final)
        .await
        .unwrap()
        .expect("the final image");
    assert!(info.config.labels.contains_key(LABEL_VERIFIED));
    let mut files = f.engine.image_files(&kiln_final).expect("its files");
    files.get_mut("/etc/motd").expect("/etc/motd").kind = FakeFileKind::File(b"other\n".to_vec());
    f.engine.remove_image(&kiln_final).await.unwrap();
    let foreign = f
        .engine
        .seed_image(Some(&format!("{REPO}:latest")), info.config.clone(), files);
    for reference in [snapshot(Phase::Final), built.image.clone()] {
        let (repo, tag) = reference.rsplit_once(':').unwrap();
        f.engine.tag(&foreign, repo, tag).await.unwrap();
    }

    let (again, events) = f.build_ok().await;
    let foreign_named = format!(
        "`{}` carries kiln's labels but is not an image kiln made",
        snapshot(Phase::Final)
    );
    assert_eq!(
        only_ends(&events)[8..],
        [
            format!("end 9-verify built ({foreign_named}) -> habitat-fake:9-verify"),
            format!("end 10-final built ({foreign_named}) -> habitat-fake:10-final"),
        ]
    );
    assert_ne!(f.tags()["latest"], foreign);
    assert_eq!(
        f.file(&again.image, "/etc/motd").as_deref(),
        Some("welcome\n")
    );
}

/// Calls `on` with each event, after keeping it.
struct Hook<F: FnMut(&Event) + Send + Sync> {
    events: Vec<Event>,
    on: F,
}

impl<F: FnMut(&Event) + Send + Sync> kiln_core::report::Reporter for Hook<F> {
    fn report(&mut self, event: Event) {
        (self.on)(&event);
        self.events.push(event);
    }
}

/// The base's reference is read once, for the key; a reference moved to
/// another image before the base phase runs does not put that image under
/// a key computed from the first.
#[tokio::test]
async fn regression_a_base_reference_moved_during_the_build_is_not_built_on() {
    let f = Fixture::new().await;
    let engine = f.engine.clone();
    let mut moved = false;
    let mut hook = Hook {
        events: Vec::new(),
        on: |e: &Event| {
            if matches!(e, Event::PhaseStart { phase: Phase::Base }) && !moved {
                moved = true;
                let mut files = engine.image_files(testing::BUSYBOX_IMAGE).expect("busybox");
                let mut marker = files["/etc/passwd"].clone();
                marker.kind = FakeFileKind::File(b"moved\n".to_vec());
                files.insert("/moved".to_string(), marker);
                engine.seed_image(
                    Some(testing::BUSYBOX_IMAGE),
                    testing::busybox_config(),
                    files,
                );
            }
        },
    };
    let built = executor::build(&f.engine, &f.habitat(), &f.options(), &mut hook)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        f.file(&built.image, "/moved"),
        None,
        "built on the moved reference"
    );
    // The next build keys the image the reference names now, and rebuilds.
    let (_, events) = f.build_ok().await;
    assert!(
        events
            .iter()
            .any(|l| l.starts_with("end 1-base built (the base moved")),
        "{events:#?}"
    );
}

/// A habitat built on another habitat builds on the final image kiln made
/// for it, by key: a final tag moved to another image (after the base
/// habitat's build set it) is not followed.
#[tokio::test]
async fn regression_a_base_habitats_final_tag_moved_during_the_build_is_not_built_on() {
    let root = tempfile::tempdir().expect("temp dir");
    for (dir, base) in [
        ("base", format!("image: \"{}\"", testing::BUSYBOX_IMAGE)),
        ("top", "habitat: ../base".to_string()),
    ] {
        let d = root.path().join(dir);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(
            d.join("kiln.yaml"),
            format!("name: fake-{dir}\nbuild:\n  base: {{ {base} }}\n  env: [AT={dir}]\n"),
        )
        .expect("write");
    }
    let engine = FakeEngine::new();
    testing::busybox_image(&engine).await.expect("busybox");
    let top = config::load(&root.path().join("top")).expect("config");
    let opts = BuildOptions {
        cache_root: Some(root.path().join("cache")),
        ..BuildOptions::default()
    };
    let other = engine.clone();
    let mut moved = false;
    let mut hook = Hook {
        events: Vec::new(),
        on: |e: &Event| {
            // The base habitat's build has just tagged its final image.
            if let Event::BuildEnd {
                image: Some(image), ..
            } = e
                && !moved
            {
                moved = true;
                let mut files = other.image_files(testing::BUSYBOX_IMAGE).expect("busybox");
                let mut marker = files["/etc/passwd"].clone();
                marker.kind = FakeFileKind::File(b"moved\n".to_vec());
                files.insert("/moved".to_string(), marker);
                other.seed_image(Some(image), testing::busybox_config(), files);
            }
        },
    };
    let built = executor::build(&engine, &top, &opts, &mut hook)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(moved, "the base habitat was built first");
    assert!(
        !engine
            .image_files(&built.image)
            .expect("built")
            .contains_key("/moved"),
        "built on the moved tag"
    );
}

/// A cycle of base habitats made after the habitat was loaded (its base
/// edited meanwhile) ends `plan` and `build` with an error: neither recurses
/// for ever nor waits for a lock this build holds.
#[tokio::test]
async fn a_cycle_of_bases_made_after_loading_ends_plan_and_build() {
    let f = Fixture::new().await;
    let b = f.root.path().join("b");
    std::fs::create_dir(&b).expect("mkdir b");
    std::fs::write(
        b.join("kiln.yaml"),
        "name: fake-b\nbuild:\n  base: { image: \"kiln-test/busybox:latest\" }\n",
    )
    .expect("write b");
    f.edit(
        "base: { image: \"kiln-test/busybox:latest\" }",
        "base: { habitat: ../b }",
    );
    let a = f.habitat();
    std::fs::write(
        b.join("kiln.yaml"),
        "name: fake-b\nbuild:\n  base: { habitat: ../h }\n",
    )
    .expect("write b");
    let plan = executor::plan(&f.engine, &a, &f.options()).await;
    let Err(err) = plan else {
        panic!("plan of a cycle succeeded")
    };
    let err = err.to_string();
    assert!(err.contains("base habitats form a cycle"), "{err}");
    let mut reporter = Recorder::default();
    let built = executor::build(&f.engine, &a, &f.options(), &mut reporter).await;
    let Err(err) = built else {
        panic!("build of a cycle succeeded")
    };
    let err = err.to_string();
    assert!(err.contains("base habitats form a cycle"), "{err}");
}

/// Switching a config back to an older one finds that one's snapshots,
/// untagged by now, without a listing of the engine's images (through the
/// host's index of what kiln made), and every build records the chain's
/// keys as used, on the host.
#[tokio::test]
async fn a_config_switched_back_finds_its_untagged_snapshots_and_last_use_is_recorded() {
    let f = Fixture::new().await;
    let (first, _) = f.build_ok().await;
    let yaml = std::fs::read_to_string(f.dir().join("kiln.yaml")).unwrap();
    let edit = |from: &str, to: &str| {
        std::fs::write(f.dir().join("kiln.yaml"), yaml.replace(from, to)).unwrap()
    };
    edit("echo one > /setup-marker", "echo two > /setup-marker");
    let (second, events) = f.build_ok().await;
    assert!(
        events.iter().any(|e| e.starts_with("end 6-setup built")),
        "{events:#?}"
    );
    // Each snapshot records its phase's build time (SPEC §11).
    let setup = f
        .engine
        .image_inspect(&snapshot(Phase::Setup))
        .await
        .unwrap()
        .unwrap();
    let ms = &setup.config.labels[kiln_core::image::labels::LABEL_DURATION];
    assert!(ms.parse::<u64>().is_ok(), "{ms:?}");
    let used_path = f.root.path().join("cache/used/fake.json");
    let used = kiln_core::cache::LastUse::load(&used_path);
    for p in &second.plan.phases {
        if p.key.present() {
            assert!(
                used.get(p.key.key.as_str()).is_some(),
                "{:?} not recorded",
                p.phase
            );
        }
    }

    edit("", "");
    let (again, events) = f.build_ok().await;
    assert_eq!(again.image, first.image);
    let built: Vec<&String> = events.iter().filter(|e| e.contains(" built ")).collect();
    assert!(built.is_empty(), "the older snapshots are hits: {built:#?}");
    assert_eq!(
        f.tags()["latest"],
        f.tags()[&names::final_tag(first.final_key.as_str())]
    );
    // The second config's snapshots are kept, recorded as used no later than now.
    let used = kiln_core::cache::LastUse::load(&used_path);
    let setup_two = second.plan.get(Phase::Setup).key.key.as_str();
    assert!(used.get(setup_two).is_some());
}

/// With `services:` the final phase adds the init kiln carries (the bytes
/// whose digest its key holds) and the spec in a layer of its own, and sets
/// the entrypoint, user, healthcheck and stop budget; editing a service
/// rebuilds `final` and nothing before it.
#[tokio::test]
async fn services_put_the_init_and_its_spec_in_final_and_rebuild_only_final() {
    use kiln_core::engine::fake::FakeFileKind;
    use kiln_core::image::init;
    use kiln_core::image::labels::LABEL_STOP_BUDGET;

    let f = Fixture::new().await;
    let path = f.dir().join("kiln.yaml");
    let mut yaml = std::fs::read_to_string(&path).expect("read");
    yaml.push_str(
        "services:\n  web:\n    command: \"httpd -f -p 8080\"\n    ready: { tcp: 8080, timeout: 30s }\n    stop: { grace: 20s }\n",
    );
    std::fs::write(&path, yaml).expect("write");
    f.build_ok().await;
    let latest = format!("{REPO}:latest");
    let info = f
        .engine
        .image_inspect(&latest)
        .await
        .expect("inspect")
        .expect("the final image");
    let c = &info.config;
    assert_eq!(
        c.entrypoint.as_deref(),
        Some(&["/.kiln/init".to_string(), "--".to_string()][..])
    );
    assert_eq!(c.cmd.as_deref(), Some(&["sh".to_string()][..]));
    assert_eq!(c.user, None, "the init runs as root");
    assert_eq!(c.healthcheck, Some(init::healthcheck(30_000)));
    // The main process's 10 s, the service's 20 s, the orphans' 5 s.
    assert_eq!(c.labels[LABEL_STOP_BUDGET], "35000");
    let digest = init::digest().expect("an init on Linux");
    assert!(
        c.labels[LABEL_INPUTS].contains(digest),
        "{}",
        c.labels[LABEL_INPUTS]
    );
    let files = f.engine.image_files(&latest).expect("files");
    match &files["/.kiln/init"].kind {
        FakeFileKind::File(bytes) => assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
            digest
        ),
        other => panic!("the init is {other:?}"),
    }
    let spec: kiln_init::spec::Spec =
        serde_json::from_str(&f.file(&latest, "/.kiln/services.json").expect("the spec"))
            .expect("the spec parses");
    assert_eq!(spec.services.len(), 1);
    assert_eq!(spec.services[0].name, "web");
    assert_eq!(spec.services[0].stop.grace_ms, 20_000);

    f.edit("grace: 20s", "grace: 25s");
    let (_, events) = f.build_ok().await;
    assert_eq!(
        only_ends(&events),
        ends(&[(Phase::Final, "config changed: final.services.web")])
    );
}
