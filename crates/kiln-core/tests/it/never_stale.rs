//! SPEC §5's "a cache hit is never stale", on the real engine: a copied file
//! edited while a build reads it yields no snapshot; an image kiln did not
//! make (a `docker commit` of a snapshot, a `docker build` on one), whatever
//! labels it carries, is never taken as a snapshot nor as the final image;
//! a local tool file is checked on every build, not only when its phase runs.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_core::Phase;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::engine::{ContainerSpec, Engine};
use kiln_core::executor::{self, BuildError, BuildOptions};
use kiln_core::image::labels::{LABEL_HABITAT, LABEL_PHASE};
use kiln_core::report::{Event, Reporter};
use kiln_core::testing::{self, TestError};

/// Runs `on_start` when `phase` starts: after the keys were computed from
/// the inputs, before the phase reads them again.
struct AtPhaseStart<F: FnMut() + Send + Sync> {
    phase: Phase,
    on_start: F,
}

impl<F: FnMut() + Send + Sync> Reporter for AtPhaseStart<F> {
    fn report(&mut self, event: Event) {
        if let Event::PhaseStart { phase } = event
            && phase == self.phase
        {
            (self.on_start)();
        }
    }
}

struct Quiet;

impl Reporter for Quiet {
    fn report(&mut self, _event: Event) {}
}

fn write_habitat(dir: &Path, name: &str, extra: &str) {
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(
        dir.join("kiln.yaml"),
        format!(
            "name: {name}\nbuild:\n  base: {{ image: \"{}\" }}\n  files:\n    copies:\n\
             \x20     - {{ source: files/motd, dest: /etc/motd }}\n{extra}",
            testing::BUSYBOX_IMAGE
        ),
    )
    .unwrap();
}

/// The content of `path` in `image`, read through a created container.
async fn file_in(
    engine: &DockerEngine,
    image: &str,
    path: &str,
    scope: &str,
) -> Result<String, TestError> {
    let spec = ContainerSpec {
        image: image.to_string(),
        entrypoint: Some(vec!["/bin/sh".into()]),
        labels: BTreeMap::from([(LABEL_HABITAT.to_string(), scope.to_string())]),
        ..ContainerSpec::default()
    };
    let id = engine.create_container(&spec).await?;
    let tar = engine.get_archive(&id, path).await;
    engine.remove_container(&id).await?;
    let tar = tar?.ok_or_else(|| format!("no `{path}` in `{image}`"))?;
    let mut ar = tar::Archive::new(&tar[..]);
    let mut entry = ar.entries()?.next().ok_or("an empty archive")??;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut entry, &mut text)?;
    Ok(text)
}

/// The snapshots of `phase` the engine holds for `habitat`.
async fn snapshots_of(engine: &DockerEngine, habitat: &str, phase: Phase) -> Vec<String> {
    engine
        .images_with_labels(&[(LABEL_HABITAT, habitat), (LABEL_PHASE, &phase.tag())])
        .await
        .expect("listing")
}

#[tokio::test]
async fn regression_a_copy_edited_while_the_build_reads_it_makes_no_snapshot() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let engine = &engine;
    testing::scoped(engine, "kc-edit", |scope| async move {
        // Both ways the files phase makes its layer: on the host, and
        // extracted into a container.
        for in_container in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let name = scope.habitat.clone();
            let dir = tmp.path().join("h");
            write_habitat(&dir, &name, "");
            let motd = dir.join("files/motd");
            std::fs::write(&motd, "old\n").unwrap();
            let habitat = kiln_core::config::load(&dir).expect("config");
            let opts = BuildOptions {
                cache_root: Some(tmp.path().join("cache")),
                archive_in_container: in_container,
                ..BuildOptions::default()
            };
            // The edit lands after the key was computed from "old".
            let mut edit = AtPhaseStart {
                phase: Phase::Files,
                on_start: || std::fs::write(&motd, "new\n").unwrap(),
            };
            let err = executor::build(engine, &habitat, &opts, &mut edit)
                .await
                .expect_err("a copy changed under the build");
            let BuildError::Phase(failure) = &err else {
                panic!("not a phase failure: {err}");
            };
            assert_eq!(failure.phase, Phase::Files, "{err}");
            assert!(
                failure.message.contains(&format!("`{}`", motd.display()))
                    && failure.message.contains("changed while kiln read it"),
                "{err}"
            );
            assert!(
                snapshots_of(engine, &name, Phase::Files).await.is_empty(),
                "no snapshot of the files phase"
            );

            // Reverted, the build makes the snapshot of what it keys.
            std::fs::write(&motd, "old\n").unwrap();
            let built = executor::build(engine, &habitat, &opts, &mut Quiet)
                .await
                .expect("build");
            let motd_in_image = file_in(engine, &built.image, "/etc/motd", &scope.habitat)
                .await
                .unwrap();
            assert_eq!(motd_in_image, "old\n", "in_container: {in_container}");
            remove_images_of(engine, &name).await;
        }
    })
    .await;
}

/// `docker ARGS` (the CLI, as a user would run it); its stdout.
fn docker(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("`docker` runs");
    assert!(
        out.status.success(),
        "`docker {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the images (and containers) a test made outside kiln when it
/// ends, also when it fails: children of kiln's snapshots, which must go
/// before the scope can remove their parents.
struct Foreign(Vec<String>);

impl Drop for Foreign {
    fn drop(&mut self) {
        for id in self.0.iter().rev() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", id])
                .output();
            let _ = std::process::Command::new("docker")
                .args(["rmi", "-f", id])
                .output();
        }
    }
}

/// Points every tag kiln gives the final image of `habitat` at `image`.
fn retag_as_final(image: &str, built: &str, habitat: &str) {
    for reference in [
        built.to_string(),
        format!("habitat-{habitat}:latest"),
        format!("habitat-{habitat}:10-final"),
    ] {
        docker(&["tag", image, &reference], &[]);
    }
}

/// A habitat built once, whose final image another tool then replaces.
async fn built_habitat(
    engine: &DockerEngine,
    tmp: &Path,
    name: &str,
) -> (kiln_core::config::Habitat, BuildOptions, executor::Built) {
    let dir = tmp.join("h");
    write_habitat(&dir, name, "  final:\n    command: [\"sh\"]\n");
    std::fs::write(dir.join("files/motd"), "kiln\n").unwrap();
    let habitat = kiln_core::config::load(&dir).expect("config");
    let opts = BuildOptions {
        cache_root: Some(tmp.join("cache")),
        ..BuildOptions::default()
    };
    let built = executor::build(engine, &habitat, &opts, &mut Quiet)
        .await
        .expect("build");
    (habitat, opts, built)
}

#[tokio::test]
async fn regression_a_docker_commit_of_the_final_image_is_never_the_final_image() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let engine = &engine;
    testing::scoped(engine, "kc-commit", |scope| async move {
        let tmp = tempfile::tempdir().unwrap();
        let (habitat, opts, built) = built_habitat(engine, tmp.path(), &scope.habitat).await;
        let kiln_final = docker(&["inspect", "--format", "{{.Id}}", &built.image], &[]);
        let mut foreign = Foreign(Vec::new());
        let container = docker(
            &["create", &built.image, "sh", "-c", "echo other > /etc/motd"],
            &[],
        );
        foreign.0.push(container.clone());
        docker(&["start", "-a", &container], &[]);
        let committed = docker(&["commit", &container], &[]);
        foreign.0.push(committed.clone());
        retag_as_final(&committed, &built.image, &scope.habitat);

        let again = executor::build(engine, &habitat, &opts, &mut Quiet)
            .await
            .expect("build");
        assert_eq!(again.image, built.image);
        for reference in [
            built.image.clone(),
            format!("habitat-{}:latest", scope.habitat),
        ] {
            let id = docker(&["inspect", "--format", "{{.Id}}", &reference], &[]);
            assert_eq!(id, kiln_final, "`{reference}` is kiln's final image again");
        }
        let motd = file_in(engine, &built.image, "/etc/motd", &scope.habitat)
            .await
            .unwrap();
        assert_eq!(motd, "kiln\n");
        drop(foreign);
    })
    .await;
}

#[tokio::test]
async fn regression_a_dockerfile_from_the_final_image_is_never_the_final_image() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let engine = &engine;
    testing::scoped(engine, "kc-from", |scope| async move {
        let tmp = tempfile::tempdir().unwrap();
        let (habitat, opts, built) = built_habitat(engine, tmp.path(), &scope.habitat).await;
        let kiln_final = docker(&["inspect", "--format", "{{.Id}}", &built.image], &[]);
        // Only an `ENV`: the same layers, every label, another config.
        let context = tmp.path().join("context");
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(
            context.join("Dockerfile"),
            format!("FROM habitat-{}:latest\nENV OTHER=1\n", scope.habitat),
        )
        .unwrap();
        let mut foreign = Foreign(Vec::new());
        let derived = docker(
            &["build", "-q", &context.display().to_string()],
            &[("DOCKER_BUILDKIT", "0")],
        );
        foreign.0.push(derived.clone());
        retag_as_final(&derived, &built.image, &scope.habitat);

        let again = executor::build(engine, &habitat, &opts, &mut Quiet)
            .await
            .expect("build");
        let id = docker(&["inspect", "--format", "{{.Id}}", &again.image], &[]);
        assert_eq!(id, kiln_final);
        let env = docker(
            &["inspect", "--format", "{{json .Config.Env}}", &again.image],
            &[],
        );
        assert!(!env.contains("OTHER"), "{env}");

        // With kiln's own final image gone (and the derived one loaded back
        // without a parent, as from another machine), the final phase is
        // built again, and the plan says why.
        let saved = tmp.path().join("derived.tar");
        docker(&["save", "-o", &saved.display().to_string(), &derived], &[]);
        drop(foreign);
        let made_before = made_shape(&kiln_final);
        docker(&["rmi", "-f", &kiln_final], &[]);
        docker(&["load", "-q", "-i", &saved.display().to_string()], &[]);
        let foreign = Foreign(vec![derived.clone()]);
        retag_as_final(&derived, &built.image, &scope.habitat);
        let (plan, _, _) = executor::plan(engine, &habitat, &opts).await.expect("plan");
        let last = plan.get(Phase::Final);
        assert_eq!(last.action, kiln_core::plan::Action::Build, "{plan:?}");
        assert_eq!(
            last.reason,
            format!(
                "`habitat-{}:10-final` carries kiln's labels but is not an image kiln made",
                scope.habitat
            )
        );
        let again = executor::build(engine, &habitat, &opts, &mut Quiet)
            .await
            .expect("build");
        // Its id differs by the recorded build time alone.
        assert_eq!(
            made_shape(&again.image),
            made_before,
            "the same image, made again"
        );
        drop(foreign);
    })
    .await;
}

/// An image's layers and config, but for the build time it records
/// (`dev.kiln.duration-ms`, which differs from build to build).
fn made_shape(image: &str) -> (String, serde_json::Value) {
    let layers = docker(
        &["inspect", "--format", "{{json .RootFS.Layers}}", image],
        &[],
    );
    let config = docker(&["inspect", "--format", "{{json .Config}}", image], &[]);
    let mut config: serde_json::Value = serde_json::from_str(&config).expect("config json");
    let labels = config["Labels"].as_object_mut().expect("labels");
    assert!(
        labels.remove("dev.kiln.duration-ms").is_some(),
        "{labels:?}"
    );
    (layers, config)
}

async fn remove_images_of(engine: &DockerEngine, habitat: &str) {
    for id in engine
        .images_with_labels(&[(LABEL_HABITAT, habitat)])
        .await
        .unwrap_or_default()
    {
        let _ = engine.remove_image(&id).await;
    }
}
