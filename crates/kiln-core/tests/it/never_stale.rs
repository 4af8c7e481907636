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

async fn remove_images_of(engine: &DockerEngine, habitat: &str) {
    for id in engine
        .images_with_labels(&[(LABEL_HABITAT, habitat)])
        .await
        .unwrap_or_default()
    {
        let _ = engine.remove_image(&id).await;
    }
}
