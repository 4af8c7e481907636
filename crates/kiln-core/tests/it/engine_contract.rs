//! One contract suite for every `Engine`: each check is written once, generic
//! over the engine, and run against both `FakeEngine` and the real Docker
//! Engine, so the fake cannot drift from what Docker does.
//!
//! Over 600 lines: one suite, one check per engine call; split, a new call's
//! check could be written for one engine and not the other.

use std::collections::BTreeMap;
use std::io::Read;

use bytes::Bytes;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::engine::fake::{FakeEngine, FakeRun};
use kiln_core::engine::{
    CommitSpec, ContainerSpec, Engine, EngineError, Healthcheck, ImageConfig, Stream,
};
use kiln_core::image::labels::{LABEL_HABITAT, LABEL_PHASE};
use kiln_core::testing::{BUSYBOX_PATH, TestScope, busybox_image, scoped, unique};

async fn docker() -> DockerEngine {
    match DockerEngine::connect().await {
        Ok(engine) => engine,
        Err(e) => panic!("the contract suite needs a Docker Engine: {e}"),
    }
}

/// The fake, scripted with what the suite's commands print on a real engine.
async fn fake() -> FakeEngine {
    let engine = FakeEngine::new();
    engine.script(
        "exit 3",
        FakeRun::exit(3)
            .line(Stream::Stdout, "out1")
            .line(Stream::Stderr, "err1")
            .line(Stream::Stdout, "out2")
            .line(Stream::Stdout, "tail"),
    );
    engine.script(SLOW_SCRIPT, FakeRun::exit(4).line(Stream::Stdout, "late"));
    engine.script(GONE_SCRIPT, FakeRun::exit(5).line(Stream::Stdout, "gone"));
    engine.script(
        LONG_LINE_SCRIPT,
        FakeRun::exit(0).line(Stream::Stdout, &"x".repeat(LONG_LINE)),
    );
    engine
}

/// Writes each contract check once and runs it against both engines.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod fake_engine {
            $(
                #[tokio::test]
                async fn $name() {
                    let engine = super::fake().await;
                    super::$name(&engine).await;
                }
            )*
        }
        mod docker_engine {
            $(
                #[tokio::test]
                async fn $name() {
                    let engine = super::docker().await;
                    super::$name(&engine).await;
                }
            )*
        }
    };
}

contract!(
    ping_answers,
    missing_image_inspects_as_none,
    archive_round_trip_keeps_mode_and_owner,
    get_archive_of_missing_path_is_none,
    copy_archive_moves_a_tree_between_containers,
    is_dir_follows_links_and_is_false_for_files_and_missing_paths,
    dir_stat_follows_links_to_the_directory_and_its_metadata,
    run_streams_lines_and_returns_exit_codes,
    run_gives_the_exit_code_of_a_slow_and_of_an_auto_removed_container,
    a_long_line_is_handed_on_in_pieces_of_the_cap,
    commit_gives_exactly_the_config,
    commit_does_not_leak_the_container_entrypoint,
    commit_refuses_to_leak_container_env,
    commit_keeps_the_files,
    tag_moves,
    images_are_found_by_label,
    remove_container_removes_and_is_idempotent,
    containers_are_found_by_label,
    import_applies_the_config,
    list_containers_describes_them,
    list_images_gives_tags_and_labels,
    put_archive_file_streams_a_host_tar,
    load_of_a_config_only_archive_reuses_the_parent_layers,
    start_stop_and_inspect_a_long_running_container,
    logs_give_the_last_lines,
    exec_runs_in_a_running_container,
    volumes_are_created_listed_and_removed,
);

fn spec(image: &str, scope: &TestScope, cmd: &[&str]) -> ContainerSpec {
    ContainerSpec {
        image: image.to_string(),
        cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
        labels: scope.labels(),
        network_host: true,
        ..ContainerSpec::default()
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn ping_answers<E: Engine>(engine: &E) {
    let info = engine.ping().await.expect("ping");
    assert!(!info.api_version.is_empty());
}

async fn missing_image_inspects_as_none<E: Engine>(engine: &E) {
    let missing = unique("kiln-test/missing");
    assert_eq!(engine.image_inspect(&missing).await.expect("inspect"), None);
}

/// A one-file tar with the given mode and owner.
fn one_file_tar(name: &str, content: &[u8], mode: u32, uid: u64, gid: u64) -> Bytes {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(content.len() as u64);
    h.set_mtime(0);
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut h, name, content).expect("tar");
    Bytes::from(b.into_inner().expect("tar"))
}

/// `(path, mode, uid, gid, content)` of every entry in a tar.
fn entries(tar_bytes: &[u8]) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let h = entry.header();
        let (mode, uid, gid) = (
            h.mode().expect("mode") & 0o7777,
            h.uid().expect("uid"),
            h.gid().expect("gid"),
        );
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        out.push((path, mode, uid, gid, content));
    }
    out
}

async fn archive_round_trip_keeps_mode_and_owner<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let tar = one_file_tar("kiln-probe.txt", b"hello\n", 0o640, 1000, 1001);
        engine.put_archive(&id, "/tmp", tar).await.expect("put");
        let got = engine
            .get_archive(&id, "/tmp/kiln-probe.txt")
            .await
            .expect("get")
            .expect("the file exists");
        assert_eq!(
            entries(&got),
            [(
                "kiln-probe.txt".to_string(),
                0o640,
                1000,
                1001,
                b"hello\n".to_vec()
            )]
        );
    })
    .await;
}

async fn copy_archive_moves_a_tree_between_containers<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let from = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let to = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let mut b = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o750);
        dir.set_size(0);
        b.append_data(&mut dir, "kiln-tree/", std::io::empty())
            .expect("tar");
        let mut file = tar::Header::new_gnu();
        file.set_entry_type(tar::EntryType::Regular);
        file.set_mode(0o600);
        file.set_uid(1000);
        file.set_gid(1001);
        file.set_size(6);
        b.append_data(&mut file, "kiln-tree/f.txt", &b"moved\n"[..])
            .expect("tar");
        let tar = Bytes::from(b.into_inner().expect("tar"));
        engine.put_archive(&from, "/tmp", tar).await.expect("put");
        engine
            .copy_archive(&from, "/tmp/kiln-tree", &to, "/tmp")
            .await
            .expect("copy");
        let got = engine
            .get_archive(&to, "/tmp/kiln-tree/f.txt")
            .await
            .expect("get")
            .expect("the file was copied");
        assert_eq!(
            entries(&got),
            [("f.txt".to_string(), 0o600, 1000, 1001, b"moved\n".to_vec())]
        );
        assert!(
            engine
                .copy_archive(&from, "/no/such", &to, "/tmp")
                .await
                .is_err(),
            "a missing source is an error"
        );
    })
    .await;
}

async fn get_archive_of_missing_path_is_none<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let got = engine.get_archive(&id, "/no/such/file").await.expect("get");
        assert_eq!(got, None);
    })
    .await;
}

async fn is_dir_follows_links_and_is_false_for_files_and_missing_paths<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let mut tar = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o750);
        dir.set_size(0);
        tar.append_data(&mut dir, "probe/d/", std::io::empty())
            .unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_entry_type(tar::EntryType::Regular);
        file.set_mode(0o644);
        file.set_size(1);
        tar.append_data(&mut file, "probe/f", &b"x"[..]).unwrap();
        for (name, target) in [
            ("probe/rel", "d"),
            ("probe/abs", "/probe/d"),
            ("probe/two", "rel"),
            ("probe/gone", "nope"),
        ] {
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_mode(0o777);
            link.set_size(0);
            tar.append_link(&mut link, name, target).unwrap();
        }
        let tar = bytes::Bytes::from(tar.into_inner().unwrap());
        engine.put_archive(&id, "/", tar).await.expect("put");
        let mut got = Vec::new();
        for path in [
            "/",
            "/bin",
            "/probe/d",
            "/probe/d/",
            "/probe/rel",
            "/probe/abs",
            "/probe/two",
            "/probe/f",
            "/probe/f/x",
            "/probe/gone",
            "/no/such",
        ] {
            got.push((path, engine.is_dir(&id, path).await.expect("is_dir")));
        }
        assert_eq!(
            got,
            [
                ("/", true),
                ("/bin", true),
                ("/probe/d", true),
                ("/probe/d/", true),
                ("/probe/rel", true),
                ("/probe/abs", true),
                ("/probe/two", true),
                ("/probe/f", false),
                ("/probe/f/x", false),
                ("/probe/gone", false),
                ("/no/such", false),
            ]
        );
    })
    .await;
}

/// `dir_stat` gives where a path's links lead and that directory's owner,
/// mode and time (what the habitat phase keeps of an existing directory);
/// `None` for a file, a dangling link or nothing. Docker stops reading the
/// archive at the first header, the default reads it all: the same answer.
async fn dir_stat_follows_links_to_the_directory_and_its_metadata<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let mut tar = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o2750);
        dir.set_uid(1000);
        dir.set_gid(50);
        dir.set_mtime(1_700_000_000);
        dir.set_size(0);
        tar.append_data(&mut dir, "stat/d/", std::io::empty())
            .unwrap();
        // Enough below it that reading it all would be more than a header.
        for i in 0..64 {
            let mut file = tar::Header::new_gnu();
            file.set_entry_type(tar::EntryType::Regular);
            file.set_mode(0o644);
            file.set_size(4096);
            tar.append_data(&mut file, format!("stat/d/f{i}"), &[b'x'; 4096][..])
                .unwrap();
        }
        for (name, target) in [
            ("stat/rel", "d"),
            ("stat/abs", "/stat/rel"),
            ("stat/gone", "nope"),
        ] {
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_mode(0o777);
            link.set_size(0);
            tar.append_link(&mut link, name, target).unwrap();
        }
        let tar = bytes::Bytes::from(tar.into_inner().unwrap());
        engine.put_archive(&id, "/", tar).await.expect("put");
        let want = kiln_core::engine::DirStat {
            path: "/stat/d".into(),
            mode: 0o2750,
            uid: 1000,
            gid: 50,
            mtime: 1_700_000_000,
        };
        for path in ["/stat/d", "/stat/rel", "/stat/abs"] {
            let got = engine.dir_stat(&id, path).await.expect("dir_stat");
            assert_eq!(got.as_ref(), Some(&want), "{path}");
        }
        for path in ["/stat/d/f0", "/stat/gone", "/no/such"] {
            let got = engine.dir_stat(&id, path).await.expect("dir_stat");
            assert_eq!(got, None, "{path}");
        }
        let tmp = engine.dir_stat(&id, "/tmp").await.expect("dir_stat");
        assert_eq!(tmp.map(|s| (s.mode, s.uid, s.gid)), Some((0o1777, 0, 0)));
    })
    .await;
}

async fn run_streams_lines_and_returns_exit_codes<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let script = "echo out1; echo err1 >&2; echo out2; printf tail; exit 3";
        let id = engine
            .create_container(&spec(&base, &scope, &["sh", "-c", script]))
            .await
            .expect("create");
        let mut lines = Vec::new();
        let code = engine
            .run_container(&id, &mut |s, l| lines.push((s, l.to_string())))
            .await
            .expect("run");
        assert_eq!(code, 3);
        let of = |stream: Stream| -> Vec<String> {
            lines
                .iter()
                .filter(|(s, _)| *s == stream)
                .map(|(_, l)| l.clone())
                .collect()
        };
        assert_eq!(of(Stream::Stdout), ["out1", "out2", "tail"]);
        assert_eq!(of(Stream::Stderr), ["err1"]);

        let ok = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let code = engine
            .run_container(&ok, &mut |_, _| {})
            .await
            .expect("run");
        assert_eq!(code, 0);
    })
    .await;
}

/// Prints after a pause: the exit status is asked for while it runs.
const SLOW_SCRIPT: &str = "sleep 1; echo late; exit 4";
const GONE_SCRIPT: &str = "echo gone; exit 5";

async fn run_gives_the_exit_code_of_a_slow_and_of_an_auto_removed_container<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "ksteps2-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["sh", "-c", SLOW_SCRIPT]))
            .await
            .expect("create");
        let mut lines = Vec::new();
        let code = engine
            .run_container(&id, &mut |_, l| lines.push(l.to_string()))
            .await
            .expect("run");
        assert_eq!((code, lines), (4, vec!["late".to_string()]));
        engine.remove_container(&id).await.expect("remove");

        let gone = ContainerSpec {
            auto_remove: true,
            ..spec(&base, &scope, &["sh", "-c", GONE_SCRIPT])
        };
        let id = engine.create_container(&gone).await.expect("create");
        let mut lines = Vec::new();
        let code = engine
            .run_container(&id, &mut |_, l| lines.push(l.to_string()))
            .await
            .expect("run");
        assert_eq!((code, lines), (5, vec!["gone".to_string()]));
    })
    .await;
}

/// A container another client made (here: another connection) is run as
/// its own spec says: auto-removed, its exit code still comes back.
#[tokio::test]
async fn docker_runs_an_auto_removed_container_another_connection_made() {
    let maker = &docker().await;
    let base = busybox_image(maker).await.expect("busybox image");
    scoped(maker, "ksteps2-contract", |scope| async move {
        let gone = ContainerSpec {
            auto_remove: true,
            ..spec(&base, &scope, &["sh", "-c", GONE_SCRIPT])
        };
        let id = maker.create_container(&gone).await.expect("create");
        let runner = docker().await;
        let code = runner
            .run_container(&id, &mut |_, _| {})
            .await
            .expect("run");
        assert_eq!(code, 5);
    })
    .await;
}

/// Prints `LONG_LINE` bytes and no newline.
const LONG_LINE_SCRIPT: &str = "head -c 200000 /dev/zero | tr '\\0' x";
const LONG_LINE: usize = 200_000;

async fn a_long_line_is_handed_on_in_pieces_of_the_cap<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["sh", "-c", LONG_LINE_SCRIPT]))
            .await
            .expect("create");
        let mut pieces = Vec::new();
        let code = engine
            .run_container(&id, &mut |_, l| pieces.push(l.len()))
            .await
            .expect("run");
        assert_eq!(code, 0);
        let cap = kiln_core::engine::lines::MAX_LINE;
        let whole = LONG_LINE / cap;
        let mut expected = vec![cap; whole];
        expected.push(LONG_LINE - whole * cap);
        assert_eq!(pieces, expected);
    })
    .await;
}

async fn commit_gives_exactly_the_config<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let mut labels = scope.labels();
        labels.insert(LABEL_PHASE.to_string(), "3-env".to_string());
        let config = ImageConfig {
            user: Some("nobody".to_string()),
            env: strings(&[&format!("PATH={BUSYBOX_PATH}"), "A=1", "B=two words"]),
            cmd: Some(strings(&["sh", "-c", "echo hi"])),
            entrypoint: None,
            working_dir: Some("/tmp".to_string()),
            exposed_ports: strings(&["3000/tcp", "53/udp"]),
            labels,
            // A zero (the start period) is Docker's default, and left out.
            healthcheck: Some(Healthcheck {
                test: strings(&["CMD", "/.kiln/init", "health"]),
                interval_ns: 2_000_000_000,
                timeout_ns: 5_000_000_000,
                start_period_ns: 0,
                retries: 3,
            }),
        };
        let image = engine
            .commit(&CommitSpec {
                container: id,
                config: config.clone(),
                comment: Some("contract".to_string()),
            })
            .await
            .expect("commit");
        assert!(image.starts_with("sha256:"), "{image}");
        let info = engine
            .image_inspect(&image)
            .await
            .expect("inspect")
            .expect("committed image exists");
        assert_eq!(info.id, image);
        let mut want = config;
        want.exposed_ports.sort();
        assert_eq!(info.config, want);
    })
    .await;
}

async fn commit_does_not_leak_the_container_entrypoint<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    let base_config = engine
        .image_inspect(&base)
        .await
        .expect("inspect")
        .expect("busybox exists")
        .config;
    assert_eq!(base_config.entrypoint, None);
    scoped(engine, "kiln-contract", |scope| async move {
        let mut container = spec(&base, &scope, &[]);
        container.cmd = None;
        container.entrypoint = Some(strings(&["/bin/sh", "-c", "echo hi"]));
        let id = engine.create_container(&container).await.expect("create");
        let mut config = base_config.clone();
        config.labels = scope.labels();
        let image = engine
            .commit(&CommitSpec {
                container: id,
                config,
                comment: None,
            })
            .await
            .expect("commit");
        let info = engine
            .image_inspect(&image)
            .await
            .expect("inspect")
            .expect("committed image exists");
        assert_eq!(info.config.entrypoint, None);
        assert_eq!(info.config.cmd, base_config.cmd);
    })
    .await;
}

async fn commit_refuses_to_leak_container_env<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let mut container = spec(&base, &scope, &["true"]);
        container.env = strings(&["SHARED=from-container", "KILN_TEST_TOKEN=s3cret"]);
        let id = engine.create_container(&container).await.expect("create");

        // A different value for a key the config has: the config's wins.
        let config = ImageConfig {
            env: strings(&[&format!("PATH={BUSYBOX_PATH}"), "SHARED=from-config"]),
            cmd: Some(strings(&["sh"])),
            labels: scope.labels(),
            ..ImageConfig::default()
        };
        let err = engine
            .commit(&CommitSpec {
                container: id.clone(),
                config: config.clone(),
                comment: None,
            })
            .await
            .expect_err("a container-only env key would leak");
        let text = err.to_string();
        assert!(text.contains("KILN_TEST_TOKEN"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert_eq!(
            engine
                .images_with_labels(&[(LABEL_HABITAT, &scope.habitat)])
                .await
                .expect("list"),
            Vec::<String>::new(),
            "a refused commit leaves no image behind"
        );

        // With every container key in the config, the config's values win.
        let mut full = config;
        full.env.push("KILN_TEST_TOKEN=".to_string());
        let image = engine
            .commit(&CommitSpec {
                container: id,
                config: full.clone(),
                comment: None,
            })
            .await
            .expect("commit");
        let info = engine.image_inspect(&image).await.expect("inspect");
        assert_eq!(info.expect("exists").config.env, full.env);
    })
    .await;
}

async fn commit_keeps_the_files<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let tar = one_file_tar("kept.txt", b"kept\n", 0o600, 0, 0);
        engine.put_archive(&id, "/root", tar).await.expect("put");
        let mut config = kiln_core::testing::busybox_config();
        config.labels = scope.labels();
        let image = engine
            .commit(&CommitSpec {
                container: id,
                config,
                comment: None,
            })
            .await
            .expect("commit");
        let next = engine
            .create_container(&spec(&image, &scope, &["true"]))
            .await
            .expect("create from the committed image");
        let got = engine
            .get_archive(&next, "/root/kept.txt")
            .await
            .expect("get")
            .expect("the file was committed");
        assert_eq!(entries(&got)[0].4, b"kept\n");
    })
    .await;
}

/// An image of its own for this scope (labelled, so the scope removes it).
async fn scoped_image<E: Engine>(engine: &E, base: &str, scope: &TestScope, phase: &str) -> String {
    let id = engine
        .create_container(&spec(base, scope, &["true"]))
        .await
        .expect("create");
    let mut config = kiln_core::testing::busybox_config();
    config.labels = scope.labels();
    config
        .labels
        .insert(LABEL_PHASE.to_string(), phase.to_string());
    engine
        .commit(&CommitSpec {
            container: id,
            config,
            comment: None,
        })
        .await
        .expect("commit")
}

async fn tag_moves<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let first = scoped_image(engine, &base, &scope, "1-base").await;
        let second = scoped_image(engine, &base, &scope, "2-users").await;
        let repo = format!("kiln-test/{}", scope.habitat);
        engine.tag(&first, &repo, "snap").await.expect("tag");
        let reference = format!("{repo}:snap");
        let info = engine.image_inspect(&reference).await.expect("inspect");
        assert_eq!(info.expect("tagged").id, first);
        engine.tag(&second, &repo, "snap").await.expect("retag");
        let info = engine.image_inspect(&reference).await.expect("inspect");
        let info = info.expect("tagged");
        assert_eq!(info.id, second);
        assert!(info.repo_tags.contains(&reference), "{:?}", info.repo_tags);
        let old = engine.image_inspect(&first).await.expect("inspect");
        assert!(!old.expect("still there").repo_tags.contains(&reference));
        let missing = engine.tag(&unique("kiln-test/none"), &repo, "x").await;
        assert!(
            matches!(missing, Err(EngineError::NoSuchImage(_))),
            "{missing:?}"
        );
        engine.remove_image(&reference).await.expect("untag");
    })
    .await;
}

async fn images_are_found_by_label<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let first = scoped_image(engine, &base, &scope, "1-base").await;
        let second = scoped_image(engine, &base, &scope, "2-users").await;
        let habitat = scope.habitat.as_str();
        let mut both = engine
            .images_with_labels(&[(LABEL_HABITAT, habitat)])
            .await
            .expect("list");
        both.sort();
        let mut want = vec![first.clone(), second];
        want.sort();
        assert_eq!(both, want);
        let one = engine
            .images_with_labels(&[(LABEL_HABITAT, habitat), (LABEL_PHASE, "1-base")])
            .await
            .expect("list");
        assert_eq!(one, [first]);
        let none = engine
            .images_with_labels(&[(LABEL_HABITAT, &unique("nobody"))])
            .await
            .expect("list");
        assert!(none.is_empty());
    })
    .await;
}

async fn remove_container_removes_and_is_idempotent<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        engine.remove_container(&id).await.expect("remove");
        let listed = engine
            .containers_with_label(LABEL_HABITAT, &scope.habitat)
            .await
            .expect("list");
        assert!(listed.is_empty(), "{listed:?}");
        let gone = engine.get_archive(&id, "/").await;
        assert!(
            matches!(gone, Err(EngineError::NoSuchContainer(_))),
            "{gone:?}"
        );
        engine.remove_container(&id).await.expect("second remove");
    })
    .await;
}

async fn containers_are_found_by_label<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let a = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let b = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let mut found = engine
            .containers_with_label(LABEL_HABITAT, &scope.habitat)
            .await
            .expect("list");
        found.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(found, want);
    })
    .await;
}

async fn import_applies_the_config<E: Engine>(engine: &E) {
    // The busybox image is itself an import; its config must be exactly the one given.
    let base = busybox_image(engine).await.expect("busybox image");
    let info = engine
        .image_inspect(kiln_core::testing::BUSYBOX_IMAGE)
        .await
        .expect("inspect")
        .expect("tagged");
    assert_eq!(info.id, base);
    assert_eq!(info.config, kiln_core::testing::busybox_config());
    let labels: BTreeMap<String, String> = BTreeMap::new();
    assert_eq!(info.config.labels, labels);
}

async fn list_containers_describes_them<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let name = unique("kiln-contract-c");
        let mut container = spec(&base, &scope, &["true"]);
        container.name = Some(name.clone());
        let id = engine.create_container(&container).await.expect("create");
        let listed = engine
            .list_containers(LABEL_HABITAT, &scope.habitat)
            .await
            .expect("list");
        assert_eq!(listed.len(), 1, "{listed:?}");
        let c = &listed[0];
        assert_eq!(
            (c.id.as_str(), c.name.as_str()),
            (id.as_str(), name.as_str())
        );
        assert_eq!(c.image, base);
        assert_eq!(c.state, "created");
        assert_eq!(c.labels, scope.labels());
        engine
            .run_container(&id, &mut |_, _| {})
            .await
            .expect("run");
        let listed = engine
            .list_containers(LABEL_HABITAT, &scope.habitat)
            .await
            .expect("list");
        assert_eq!(listed[0].state, "exited");
    })
    .await;
}

async fn list_images_gives_tags_and_labels<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let tagged = scoped_image(engine, &base, &scope, "1-base").await;
        let untagged = scoped_image(engine, &base, &scope, "2-users").await;
        let repo = format!("kiln-test/{}", scope.habitat);
        engine.tag(&tagged, &repo, "1-base").await.expect("tag");
        let mut listed = engine
            .list_images(&[(LABEL_HABITAT, &scope.habitat)])
            .await
            .expect("list");
        listed.sort_by(|a, b| a.labels[LABEL_PHASE].cmp(&b.labels[LABEL_PHASE]));
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[0].id, tagged);
        assert_eq!(listed[0].repo_tags, [format!("{repo}:1-base")]);
        assert_eq!(listed[1].id, untagged);
        assert_eq!(listed[1].repo_tags, Vec::<String>::new());
        let mut labels = scope.labels();
        labels.insert(LABEL_PHASE.to_string(), "2-users".to_string());
        assert_eq!(listed[1].labels, labels);
        engine
            .remove_image(&format!("{repo}:1-base"))
            .await
            .expect("untag");
    })
    .await;
}

async fn put_archive_file_streams_a_host_tar<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let id = engine
            .create_container(&spec(&base, &scope, &["true"]))
            .await
            .expect("create");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("probe.tar");
        let content = vec![7u8; 600 * 1024];
        let tar = one_file_tar("big.bin", &content, 0o600, 0, 0);
        std::fs::write(&path, &tar).expect("write tar");
        engine
            .put_archive_file(&id, "/tmp", path)
            .await
            .expect("put");
        let got = engine
            .get_archive(&id, "/tmp/big.bin")
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(entries(&got)[0].4, content);
    })
    .await;
}

/// Real engine only: with `DOCKER_HOST` at a socket nobody listens on,
/// `connect` says the engine is unreachable and where it looked. The variable
/// is set for a child run of this test binary (setting it here would race the
/// other tests' threads).
#[test]
fn connect_with_a_dead_docker_host_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nobody.sock");
    // A socket file with no listener: bound, then the listener is dropped.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    let endpoint = format!("unix://{}", socket.display());
    let exe = std::env::current_exe().expect("test binary");
    // The child's name as libtest knows it: this module's path without the crate.
    let child = match module_path!().split_once("::") {
        Some((_, module)) => format!("{module}::dead_docker_host_child"),
        None => "dead_docker_host_child".to_string(),
    };
    let output = std::process::Command::new(exe)
        .args(["--exact", &child, "--nocapture", "--test-threads=1"])
        .env("DOCKER_HOST", &endpoint)
        .env("KILN_CONTRACT_CHILD", "1")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run: {stdout}"
    );
}

#[tokio::test]
async fn dead_docker_host_child() {
    if std::env::var_os("KILN_CONTRACT_CHILD").is_none() {
        return;
    }
    let endpoint = std::env::var("DOCKER_HOST").expect("DOCKER_HOST");
    match DockerEngine::connect().await {
        Err(EngineError::Unreachable {
            endpoint: e,
            reason,
        }) => {
            assert_eq!(e, endpoint);
            assert!(!reason.is_empty());
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
}

/// kiln's config-only snapshots: an archive naming the parent's layers loads
/// as a new image with the new config and the parent's files, at the id the
/// archive predicts.
async fn load_of_a_config_only_archive_reuses_the_parent_layers<E: Engine>(engine: &E) {
    let base = busybox_image(engine).await.expect("busybox image");
    scoped(engine, "kiln-contract", |scope| async move {
        let parent = engine
            .image_inspect(&base)
            .await
            .expect("inspect")
            .expect("exists");
        let mut config = parent.config.clone();
        config.env.push("LOADED=yes".to_string());
        config.labels = scope.labels();
        // What the final phase of an image with services sets.
        config.healthcheck = Some(kiln_core::image::init::healthcheck(60_000));
        let archive = kiln_core::image::archive::config_only(
            &kiln_core::image::archive::ParentImage {
                layers: parent.layers.clone(),
                architecture: parent.architecture.clone(),
                os: parent.os.clone(),
                created: parent.created.clone(),
            },
            &config,
            "contract",
            &[],
        );
        engine.load(archive.tar.clone().into()).await.expect("load");
        let loaded = engine
            .image_inspect(&archive.image_id)
            .await
            .expect("inspect")
            .expect("the image has the predicted id");
        assert!(loaded.config.env.contains(&"LOADED=yes".to_string()));
        assert_eq!(loaded.layers, parent.layers);
        assert_eq!(loaded.config.healthcheck, config.healthcheck);
        // Read back, the config rebuilds the id: kiln knows the image as its own.
        assert!(kiln_core::image::archive::is_kiln_image(
            &loaded, "contract"
        ));
        let id = engine
            .create_container(&spec(&archive.image_id, &scope, &["true"]))
            .await
            .expect("create from the loaded image");
        assert!(
            engine
                .get_archive(&id, "/bin/busybox")
                .await
                .expect("get")
                .is_some(),
            "the parent's files are there"
        );
    })
    .await;
}

/// A host port nothing listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

const SCRIPTED: &str = "echo out1; echo err1 >&2; echo out2; echo tail; exit 3";

async fn start_stop_and_inspect_a_long_running_container<E: Engine>(engine: &E) {
    let image = busybox_image(engine).await.expect("busybox");
    scoped(engine, "kiln-test-start", |scope| async move {
        let port = kiln_core::engine::PortBinding {
            host_ip: "127.0.0.1".into(),
            host_port: free_port(),
            container_port: 3000,
            protocol: "tcp".into(),
        };
        let spec = ContainerSpec {
            ports: vec![port.clone()],
            network_host: false,
            init: true,
            restart: Some("no".into()),
            hostname: Some("member".into()),
            ..spec(&image, &scope, &["sleep", "30"])
        };
        let id = engine.create_container(&spec).await.expect("create");
        let info = engine
            .inspect_container(&id)
            .await
            .expect("inspect")
            .expect("exists");
        assert_eq!(info.state, "created");
        assert_eq!(info.started_at, None);
        assert_eq!(info.ports, std::slice::from_ref(&port));
        assert_eq!(info.labels.get(LABEL_HABITAT), Some(&scope.habitat));
        assert_eq!(info.image, image);
        engine.start_container(&id).await.expect("start");
        engine
            .start_container(&id)
            .await
            .expect("a second start is no error");
        let info = engine
            .inspect_container(&id)
            .await
            .expect("inspect")
            .expect("exists");
        assert_eq!(info.state, "running");
        assert!(info.started_at.is_some());
        assert_eq!(info.exit_code, None);
        engine
            .stop_container(&id, std::time::Duration::from_secs(5))
            .await
            .expect("stop");
        let info = engine
            .inspect_container(&id)
            .await
            .expect("inspect")
            .expect("exists");
        assert_eq!(info.state, "exited");
        assert!(info.exit_code.is_some());
        engine
            .stop_container(&id, std::time::Duration::from_secs(5))
            .await
            .expect("stopping a stopped container is no error");
        engine.remove_container(&id).await.expect("remove");
        assert_eq!(engine.inspect_container(&id).await.expect("inspect"), None);
    })
    .await;
}

async fn logs_give_the_last_lines<E: Engine>(engine: &E) {
    let image = busybox_image(engine).await.expect("busybox");
    scoped(engine, "kiln-test-logs", |scope| async move {
        let id = engine
            .create_container(&spec(&image, &scope, &["sh", "-c", SCRIPTED]))
            .await
            .expect("create");
        let code = engine
            .run_container(&id, &mut |_, _| {})
            .await
            .expect("run");
        assert_eq!(code, 3);
        let mut lines = Vec::new();
        engine
            .container_logs(&id, false, Some(2), &mut |s, l| {
                lines.push((s, l.to_string()))
            })
            .await
            .expect("logs");
        // Docker copies stdout and stderr into its log separately, so which
        // lines are last across the two streams is not fixed; the count is.
        assert_eq!(lines.len(), 2, "{lines:?}");
        for (_, l) in &lines {
            assert!(
                ["out1", "err1", "out2", "tail"].contains(&l.as_str()),
                "{l}"
            );
        }
        let mut all = Vec::new();
        engine
            .container_logs(&id, true, None, &mut |_, l| all.push(l.to_string()))
            .await
            .expect("following an exited container ends");
        all.sort();
        assert_eq!(all, strings(&["err1", "out1", "out2", "tail"]));
    })
    .await;
}

async fn exec_runs_in_a_running_container<E: Engine>(engine: &E) {
    let image = busybox_image(engine).await.expect("busybox");
    scoped(engine, "kiln-test-exec", |scope| async move {
        let id = engine
            .create_container(&spec(&image, &scope, &["sleep", "30"]))
            .await
            .expect("create");
        let cmd = strings(&["sh", "-c", SCRIPTED]);
        assert!(
            engine.exec(&id, &cmd, &mut |_, _| {}).await.is_err(),
            "exec needs a running container"
        );
        engine.start_container(&id).await.expect("start");
        let mut out = Vec::new();
        let code = engine
            .exec(&id, &cmd, &mut |s, l| {
                if s == Stream::Stdout {
                    out.push(l.to_string())
                }
            })
            .await
            .expect("exec");
        assert_eq!(code, 3);
        assert_eq!(out, strings(&["out1", "out2", "tail"]));
    })
    .await;
}

async fn volumes_are_created_listed_and_removed<E: Engine>(engine: &E) {
    let scope = TestScope::new("kiln-test-volume");
    let name = unique("kiln-test-vol");
    let mut labels = scope.labels();
    labels.insert("dev.kiln.persist".into(), "/data".into());
    engine.create_volume(&name, &labels).await.expect("create");
    engine
        .create_volume(&name, &labels)
        .await
        .expect("creating an existing volume is no error");
    let listed = engine
        .list_volumes(LABEL_HABITAT, &scope.habitat)
        .await
        .expect("list");
    let inspected = engine.inspect_volume(&name).await.expect("inspect");
    let result = std::panic::catch_unwind(|| {
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, name);
        assert_eq!(listed[0].labels, labels);
        assert_eq!(inspected.as_ref(), Some(&listed[0]));
    });
    engine.remove_volume(&name).await.expect("remove");
    engine
        .remove_volume(&name)
        .await
        .expect("removing a missing volume is no error");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    let listed = engine
        .list_volumes(LABEL_HABITAT, &scope.habitat)
        .await
        .expect("list");
    assert!(listed.is_empty());
    assert_eq!(
        engine.inspect_volume(&name).await.expect("inspect"),
        None,
        "a removed volume is not found by name"
    );
}

/// Pulls `reference` (which the engine does not hold) with its progress
/// read, and checks what every engine must tell: each layer of the pulled
/// image named and ending pulled or present, byte counts that never go
/// back nor past their total, and at least one layer that came down with
/// its size known. One check, two setups: the image is in a registry for
/// Docker and in the fake's remote store for the fake.
async fn pull_reports_every_layer<E: Engine>(engine: &E, reference: &str) {
    use kiln_core::engine::{LayerState, PullProgress};
    let mut records: Vec<PullProgress> = Vec::new();
    engine
        .pull_with_progress(reference, None, &mut |p| records.push(p))
        .await
        .expect("pull");
    let info = engine
        .image_inspect(reference)
        .await
        .expect("inspect")
        .expect("pulled");
    let mut last: BTreeMap<&str, &PullProgress> = BTreeMap::new();
    let mut down: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &records {
        assert!(!r.layer.is_empty(), "{records:?}");
        assert!(
            r.total == 0 || r.current <= r.total,
            "a count past its total: {r:?}"
        );
        if r.state == LayerState::Downloading {
            let before = down.insert(&r.layer, r.current).unwrap_or(0);
            assert!(r.current >= before, "a download went back: {records:?}");
        }
        if let Some(prev) = last.get(r.layer.as_str()) {
            assert!(!prev.state.finished(), "a record after done: {records:?}");
        }
        last.insert(&r.layer, r);
    }
    assert_eq!(
        last.len(),
        info.layers.len(),
        "one layer named per layer of the image: {records:?} {:?}",
        info.layers
    );
    assert!(
        last.values().all(|r| r.state.finished()),
        "every layer ends pulled or present: {records:?}"
    );
    let came_down = |layer: &str| {
        records
            .iter()
            .any(|r| r.layer == layer && r.total > 0 && r.state == LayerState::Downloading)
    };
    assert!(
        last.values()
            .any(|r| r.state == LayerState::Done && came_down(&r.layer)),
        "a layer came down with its size: {records:?}"
    );
}

/// Deterministic bytes that do not compress away, so a layer has a size.
fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut x: u64 = seed.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

mod pull_progress {
    use kiln_core::engine::fake::{FakeFile, FakeFileKind, FakeTree};
    use kiln_core::testing::{LocalRegistry, RegistryOptions};

    use super::*;

    #[tokio::test]
    async fn fake_engine() {
        let engine = super::fake().await;
        let reference = "127.0.0.1:5000/kpullp-contract/app:t";
        let mut files = FakeTree::new();
        files.insert(
            "/data".to_string(),
            FakeFile {
                kind: FakeFileKind::File(noise(reference, 70_000)),
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
        );
        engine.add_remote_image(reference, kiln_core::testing::busybox_config(), files);
        pull_reports_every_layer(&engine, reference).await;
    }

    /// Docker pulls from a real registry an image it pushed there: the base
    /// layer it still holds, and a layer of its own it no longer does.
    #[tokio::test]
    async fn docker_engine() {
        let engine = super::docker().await;
        let engine = &engine;
        let base = busybox_image(engine).await.expect("busybox image");
        let server = LocalRegistry::start(&RegistryOptions::default()).expect("docker-registry");
        let host = server.host.clone();
        scoped(engine, "kpullp-contract", |scope| async move {
            let id = engine
                .create_container(&spec(&base, &scope, &["true"]))
                .await
                .expect("create");
            let tar = one_file_tar("data", &noise(&scope.habitat, 300_000), 0o644, 0, 0);
            engine.put_archive(&id, "/", tar).await.expect("put");
            let mut config = kiln_core::testing::busybox_config();
            config.labels = scope.labels();
            let image = engine
                .commit(&CommitSpec {
                    container: id,
                    config,
                    comment: None,
                })
                .await
                .expect("commit");
            let repo = format!("{host}/kpullp-contract/{}", scope.habitat);
            engine.tag(&image, &repo, "t").await.expect("tag");
            let reference = format!("{repo}:t");
            let pushed = std::process::Command::new("docker")
                .args(["push", "--quiet", &reference])
                .output()
                .expect("docker push");
            assert!(
                pushed.status.success(),
                "docker push: {}",
                String::from_utf8_lossy(&pushed.stderr)
            );
            // Its only tag gone, the image goes too (or is removed here).
            engine.remove_image(&reference).await.expect("untag");
            let _ = engine.remove_image(&image).await;
            assert_eq!(engine.image_inspect(&image).await.expect("inspect"), None);
            pull_reports_every_layer(engine, &reference).await;
            engine
                .remove_image(&reference)
                .await
                .expect("remove pulled");
        })
        .await;
    }
}
