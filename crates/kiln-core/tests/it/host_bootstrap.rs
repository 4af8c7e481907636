//! Bootstrap bases: the cache hit against the fake engine, and one real
//! debootstrap of bookworm minbase imported into the real Docker Engine
//! (a few minutes the first time on a machine, a label lookup after that).

use std::collections::BTreeMap;

use kiln_core::sources::bootstrap;

use kiln_core::config::Bootstrap;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::engine::fake::FakeEngine;
use kiln_core::engine::{ContainerSpec, Engine, ImageConfig};
use kiln_core::image::labels::LABEL_BOOTSTRAP;
use kiln_core::image::labels::{LABEL_HABITAT, LABEL_PHASE};

fn bookworm() -> Bootstrap {
    Bootstrap {
        distro: "debian".into(),
        suite: "bookworm".into(),
        variant: "minbase".into(),
        mirror: None,
        include: vec![],
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn the_tagged_image_is_reused_with_one_engine_call() {
    let engine = FakeEngine::new();
    let b = bookworm();
    let id = engine.seed_image(
        Some(&bootstrap::image_ref(&b)),
        bootstrap::image_config(&b),
        BTreeMap::new(),
    );
    let mut lines = Vec::new();
    let got = bootstrap::ensure_image(&engine, &b, &mut |l: &str| lines.push(l.to_string()))
        .await
        .expect("cached image");
    assert_eq!(got, id);
    assert_eq!(engine.counters().imports, 0);
    assert_eq!(engine.counters().tags, 0);
    assert!(lines.is_empty(), "{lines:?}");
}

/// Snapshots committed on a bootstrap image inherit its labels; only the
/// bootstrap image itself is a base. An untagged one is found by label and
/// tagged again.
#[tokio::test]
async fn an_untagged_base_is_found_by_label_and_snapshots_are_not_bases() {
    let engine = FakeEngine::new();
    let b = bookworm();
    let key = bootstrap::bootstrap_key(&b);
    let snapshot = ImageConfig {
        labels: labels(&[
            (LABEL_BOOTSTRAP, &key),
            (LABEL_HABITAT, "h"),
            (LABEL_PHASE, "4-habitat"),
        ]),
        ..ImageConfig::default()
    };
    let base = bootstrap::image_config(&b);
    let mut ids = vec![
        engine.seed_image(None, snapshot.clone(), BTreeMap::new()),
        engine.seed_image(None, snapshot, BTreeMap::new()),
    ];
    let base_id = engine.seed_image(None, base, BTreeMap::new());
    ids.push(base_id.clone());
    let got = bootstrap::ensure_image(&engine, &b, &mut |_: &str| {})
        .await
        .expect("found by label");
    assert_eq!(got, base_id, "of {ids:?}");
    assert_eq!(
        engine.tags().get(&bootstrap::image_ref(&b)),
        Some(&base_id),
        "not re-tagged"
    );
    assert_eq!(engine.counters().imports, 0);
}

/// Removes images by id when dropped, children first: a test's images made
/// outside kiln, also when it fails.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for id in self.0.iter().rev() {
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f", id])
                .output();
        }
    }
}

/// On the real engine: the image kiln's import makes is found by its tag;
/// one another tool made on top of it (a Dockerfile `FROM` it with an
/// `ENV`, carrying its labels), retagged as it, is not a bootstrap base.
#[tokio::test]
async fn regression_an_image_built_on_a_bootstrap_image_is_not_a_bootstrap_base() {
    let engine = DockerEngine::connect().await.expect("docker engine");
    let mut b = bookworm();
    // Parameters of this test alone, which debootstrap refuses at once.
    b.suite = "kiln-no-such-suite".into();
    b.include = vec![kiln_core::testing::unique("marker")];
    let work = tempfile::tempdir().expect("tempdir");
    let rootfs = work.path().join("rootfs.tar");
    kiln_core::testing::write_busybox_rootfs(&rootfs).expect("rootfs");
    let mut images = Images(Vec::new());
    // As `ensure_image` imports what debootstrap made.
    let made = engine
        .import(rootfs, &bootstrap::image_config(&b))
        .await
        .expect("import");
    images.0.push(made.clone());
    let reference = bootstrap::image_ref(&b);
    let (repo, tag) = reference.rsplit_once(':').expect("a tag");
    engine.tag(&made, repo, tag).await.expect("tag");
    let scratch = work.path().join("scratch");
    let found = bootstrap::ensure_image_in(&engine, &b, &scratch, &mut |_: &str| {})
        .await
        .expect("the imported image is the base");
    assert_eq!(found, made);

    let context = work.path().join("context");
    std::fs::create_dir_all(&context).expect("mkdir");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {reference}\nENV OTHER=1\n"),
    )
    .expect("write");
    let out = std::process::Command::new("docker")
        .args(["build", "-q", "-t", &reference])
        .arg(&context)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let derived = String::from_utf8_lossy(&out.stdout).trim().to_string();
    images.0.push(derived.clone());
    let result = bootstrap::ensure_image_in(&engine, &b, &scratch, &mut |_: &str| {}).await;
    assert!(
        result.as_ref().ok() != Some(&derived),
        "the derived image was taken as the bootstrap base"
    );
    drop(images);
}

#[tokio::test]
async fn bad_parameters_fail_before_any_work() {
    let engine = FakeEngine::new();
    let mut b = bookworm();
    b.distro = "arch".into();
    let err = bootstrap::ensure_image(&engine, &b, &mut |_: &str| {})
        .await
        .expect_err("unsupported distro");
    assert!(err.to_string().contains("`arch`"), "{err}");
    assert_eq!(engine.counters().imports, 0);
}

#[tokio::test]
async fn a_failed_debootstrap_reports_its_output_and_leaves_nothing_behind() {
    let engine = FakeEngine::new();
    let work = tempfile::tempdir().expect("tempdir");
    let mut b = bookworm();
    // No such suite: debootstrap fails at once, before any download.
    b.suite = "kiln-no-such-suite".into();
    let mut lines = Vec::new();
    let err = bootstrap::ensure_image_in(&engine, &b, work.path(), &mut |l: &str| {
        lines.push(l.to_string())
    })
    .await
    .expect_err("unknown suite");
    let msg = err.to_string();
    assert!(
        matches!(err, bootstrap::BootstrapError::Failed { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("`kiln-no-such-suite`") && msg.contains("exit code"),
        "{msg}"
    );
    eprintln!("{msg}");
    assert!(!lines.is_empty(), "debootstrap's output was not streamed");
    let left: Vec<_> = std::fs::read_dir(work.path()).expect("read_dir").collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    assert_eq!(engine.counters().imports, 0);
}

#[tokio::test]
async fn a_cancelled_bootstrap_kills_debootstrap_and_cleans_up() {
    let engine = FakeEngine::new();
    let work = tempfile::tempdir().expect("tempdir");
    let mut b = bookworm();
    // Parameters no image has, so the bootstrap really starts.
    b.include = vec!["kiln-cancel-test-marker".into()];
    let mut lines = 0usize;
    let mut on_line = |_: &str| lines += 1;
    let run = bootstrap::ensure_image_in(&engine, &b, work.path(), &mut on_line);
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(3), run).await;
    assert!(
        outcome.is_err(),
        "the bootstrap ended before it was cancelled: {outcome:?}"
    );
    let left: Vec<_> = std::fs::read_dir(work.path()).expect("read_dir").collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
    let procs = std::process::Command::new("pgrep")
        .args(["-f", "kiln-cancel-test-marker"])
        .output()
        .expect("pgrep");
    assert!(procs.stdout.is_empty(), "debootstrap still runs: {procs:?}");
}

/// Runs `script` in a throwaway container of `image` and returns its exit
/// code and output; the container is removed whatever happens.
async fn run_in(engine: &DockerEngine, image: &str, script: &str) -> (i64, String) {
    let mut labels = BTreeMap::new();
    labels.insert(
        LABEL_HABITAT.to_string(),
        "kiln-test-host-bootstrap".to_string(),
    );
    let spec = ContainerSpec {
        image: image.to_string(),
        cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
        labels,
        ..ContainerSpec::default()
    };
    let id = engine
        .create_container(&spec)
        .await
        .expect("create container");
    let mut out = String::new();
    let code = engine
        .run_container(&id, &mut |_, line| {
            out.push_str(line);
            out.push('\n');
        })
        .await;
    engine
        .remove_container(&id)
        .await
        .expect("remove container");
    (code.expect("run container"), out)
}

#[tokio::test]
async fn bookworm_minbase_is_bootstrapped_once_and_works() {
    let engine = DockerEngine::connect().await.expect("docker engine");
    let b = bookworm();
    let start = std::time::Instant::now();
    let mut lines = Vec::new();
    let result =
        bootstrap::ensure_image(&engine, &b, &mut |l: &str| lines.push(l.to_string())).await;
    let id = match result {
        Ok(id) => id,
        Err(e) => panic!(
            "bootstrap failed: {e}\n--- output ---\n{}",
            lines.join("\n")
        ),
    };
    eprintln!(
        "ensure_image (first call): {:?}, {} output lines",
        start.elapsed(),
        lines.len()
    );

    // The second call is one label lookup.
    let start = std::time::Instant::now();
    let mut again_lines = Vec::new();
    let again =
        bootstrap::ensure_image(&engine, &b, &mut |l: &str| again_lines.push(l.to_string()))
            .await
            .expect("cached");
    eprintln!("ensure_image (cached): {:?}", start.elapsed());
    assert_eq!(again, id);
    assert!(again_lines.is_empty(), "{again_lines:?}");

    let info = engine
        .image_inspect(&bootstrap::image_ref(&b))
        .await
        .expect("inspect")
        .expect("the image is tagged");
    assert_eq!(info.id, id);
    assert_eq!(info.config.cmd, Some(vec!["bash".to_string()]));
    assert!(
        info.config
            .env
            .iter()
            .any(|e| e.starts_with("PATH=/usr/local/sbin")),
        "{:?}",
        info.config.env
    );
    assert_eq!(
        info.config.labels.get(LABEL_BOOTSTRAP),
        Some(&bootstrap::bootstrap_key(&b))
    );

    let (code, out) = run_in(
        &engine,
        &id,
        "cat /etc/debian_version && /usr/sbin/policy-rc.d; echo policy=$?; \
         ls /var/lib/apt/lists | grep -c InRelease; \
         test -f /etc/apt/apt.conf.d/docker-clean && echo clean-config; \
         grep -c security /etc/apt/sources.list; \
         stat -c '%U %a' /usr/bin/passwd /etc/shadow",
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines().next().is_some_and(|l| l.starts_with("12.")),
        "{out}"
    );
    assert!(out.contains("policy=101"), "{out}");
    assert!(out.contains("\n0\n"), "apt lists were not cleared: {out}");
    assert!(out.contains("clean-config"), "{out}");
    // Owners and setuid bits survive the tar round trip.
    assert!(out.contains("root 4755"), "{out}");
    assert!(out.contains("root 640"), "{out}");

    // Nothing is left mounted in kiln's scratch space.
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    let scratch = kiln_core::cache::CacheDir::from_env().bootstrap();
    assert!(!mounts.contains(&*scratch.to_string_lossy()), "{mounts}");
}
