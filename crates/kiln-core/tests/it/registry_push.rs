//! Engine → registry → engine, on the real engine and a real registry
//! (Debian's `docker-registry` on loopback): a built habitat pushed with
//! its snapshots, pushed again (nothing goes up, the digests stay), and
//! pulled back by the engine: the snapshots come back with their own ids,
//! the final image with the OCI labels added and its files unchanged.
//! Seeded habitats (`KILN_PUSH_SEED`) vary files, sizes and phases.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_core::config::Habitat;
use kiln_core::engine::Engine;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor::{self, BuildOptions, Built};
use kiln_core::registry::Registry;
use kiln_core::registry::oci::{Credentials, OciRegistry};
use kiln_core::registry::push::{self, KnownConfigs, PushTarget, PushedImage};
use kiln_core::registry::{pull, vars};
use kiln_core::report::{BlobState, Event, Recorder};
use kiln_core::testing::{self, LocalRegistry, RegistryOptions};

use crate::support::{Quiet, Rng, seed_from_env, tree_diff, tree_of, with_habitats};

/// Writes a habitat of `rng`'s making: a users phase or not, copies of
/// several sizes (one large enough to go up in more than one read), maybe
/// an env phase (config only) and a final command.
fn write_habitat(dir: &Path, name: &str, rng: &mut Rng) {
    std::fs::create_dir_all(dir.join("files")).unwrap();
    let mut yaml = format!(
        "name: {name}\nbuild:\n  base: {{ image: \"{}\" }}\n",
        testing::BUSYBOX_IMAGE
    );
    if rng.chance(50) {
        yaml.push_str("  users:\n    - { name: dev, uid: 1000 }\n");
    }
    if rng.chance(50) {
        yaml.push_str("  env:\n    - STAGE=push\n");
    }
    yaml.push_str("  files:\n    copies:\n");
    for i in 0..rng.range(1, 4) {
        let size = *rng.pick(&[0usize, 17, 70_000, 5_000_000]);
        let bytes: Vec<u8> = (0..size).map(|j| (j * 31 + i * 7) as u8).collect();
        std::fs::write(dir.join(format!("files/f{i}")), bytes).unwrap();
        yaml.push_str(&format!(
            "      - {{ source: files/f{i}, dest: /data/f{i} }}\n"
        ));
    }
    yaml.push_str("  final:\n    command: [\"sh\"]\n");
    std::fs::write(dir.join("kiln.yaml"), yaml).unwrap();
}

async fn build(engine: &DockerEngine, dir: &Path, cache: &Path) -> (Habitat, Built) {
    let habitat = kiln_core::config::load(dir).expect("config");
    let opts = BuildOptions {
        cache_root: Some(cache.to_path_buf()),
        ..BuildOptions::default()
    };
    let built = executor::build(engine, &habitat, &opts, &mut Quiet)
        .await
        .expect("build");
    (habitat, built)
}

fn labels() -> BTreeMap<String, String> {
    vars::oci_labels(
        "2026-12-03T08:00:00Z",
        Some("0123456789abcdef0123456789abcdef01234567"),
        Some("https://example.org/team/app"),
    )
}

async fn push_all(
    engine: &DockerEngine,
    registry: &OciRegistry,
    repo: &str,
    targets: &[PushTarget],
    known: &mut KnownConfigs,
) -> (Vec<PushedImage>, Vec<Event>) {
    let mut rec = Recorder::default();
    let pushed = push::push(engine, registry, repo, targets, known, &mut rec)
        .await
        .unwrap_or_else(|e| panic!("push: {e}"));
    (pushed, rec.events)
}

fn uploaded(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::PushBlob {
                    state: BlobState::Uploaded,
                    ..
                }
            )
        })
        .count()
}

#[tokio::test]
async fn a_pushed_habitat_pushes_again_as_nothing_and_pulls_back_the_same() {
    let engine = DockerEngine::connect().await.expect("engine");
    testing::busybox_image(&engine).await.expect("busybox");
    let server = LocalRegistry::start(&RegistryOptions::default()).expect("docker-registry");
    let registry = OciRegistry::with_credentials(&server.host, Credentials::Anonymous);
    let seed = seed_from_env("KILN_PUSH_SEED");
    eprintln!("registry_push: KILN_PUSH_SEED={seed}");
    let engine = &engine;
    let registry = &registry;
    with_habitats(engine, "pushc", |names| async move {
        let mut rng = Rng::new(seed);
        for round in 0..2 {
            let tmp = tempfile::tempdir().unwrap();
            let name = names.name(&format!("r{round}"));
            let dir = tmp.path().join("h");
            write_habitat(&dir, &name, &mut rng);
            let (habitat, built) = build(engine, &dir, &tmp.path().join("cache")).await;
            let repo = format!("pushc/{name}");
            let targets = push::habitat_targets(
                &habitat.config.name,
                &built.plan,
                &built.image,
                &["main-0123456".to_string(), "latest".to_string()],
                &labels(),
                true,
            );
            let mut known = KnownConfigs::new();
            let (first, events) = push_all(engine, registry, &repo, &targets, &mut known).await;
            assert!(
                uploaded(&events) > 0,
                "round {round}: the first push uploads"
            );
            assert!(
                events
                    .iter()
                    .all(|e| !matches!(e, Event::PushEnd { ok: false, .. }))
            );

            // Again, knowing nothing: every blob is found, nothing is saved or sent.
            let mut fresh = KnownConfigs::new();
            let (second, events) = push_all(engine, registry, &repo, &targets, &mut fresh).await;
            assert_eq!(uploaded(&events), 0, "round {round}: {events:#?}");
            let digests =
                |p: &[PushedImage]| p.iter().map(|i| i.digest.clone()).collect::<Vec<_>>();
            assert_eq!(digests(&first), digests(&second), "round {round}");
            assert!(
                second
                    .iter()
                    .all(|i| i.uploaded == 0 && i.bytes_uploaded == 0)
            );

            // The tags name the final manifest; its config carries the labels.
            let final_ = first.last().unwrap();
            let manifest = registry.manifest_get(&repo, "latest").unwrap().unwrap();
            assert_eq!(manifest.digest, final_.digest);
            let json: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
            let mut config = Vec::new();
            registry
                .blob_get(
                    &repo,
                    json["config"]["digest"].as_str().unwrap(),
                    &mut config,
                )
                .unwrap();
            let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
            for (k, v) in labels() {
                assert_eq!(config["config"]["Labels"][&k], v.as_str(), "{k}");
            }
            assert!(
                json["layers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|l| { l["mediaType"] == "application/vnd.oci.image.layer.v1.tar" })
            );

            // The engine pulls both back: a snapshot with its own id, the
            // final image with the same files.
            let local = engine.image_inspect(&built.image).await.unwrap().unwrap();
            let snapshot = &first[first.len() - 2];
            let snapshot_local = engine
                .image_inspect(&targets[targets.len() - 2].image)
                .await
                .unwrap()
                .unwrap();
            let back = pull::pull(
                engine,
                &Credentials::Anonymous,
                &server.host,
                &repo,
                &snapshot.digest,
            )
            .await
            .expect("pull snapshot");
            assert_eq!(
                back, snapshot_local.id,
                "round {round}: a snapshot keeps its id"
            );
            let pulled = pull::pull(
                engine,
                &Credentials::Anonymous,
                &server.host,
                &repo,
                "latest",
            )
            .await
            .expect("pull final");
            let pulled_info = engine.image_inspect(&pulled).await.unwrap().unwrap();
            assert_eq!(pulled_info.layers, local.layers);
            assert_eq!(
                pulled_info
                    .config
                    .labels
                    .get(vars::LABEL_CREATED)
                    .map(String::as_str),
                Some("2026-12-03T08:00:00Z")
            );
            let reference = pull::reference(&server.host, &repo, "latest");
            let (a, b) = (
                tree_of(engine, &built.image, &name).await.unwrap(),
                tree_of(engine, &reference, &name).await.unwrap(),
            );
            assert_eq!(tree_diff(&a, &b, |_| false), Vec::<String>::new());

            // A repository that has nothing: the final image alone, its
            // config known from the first push, its layers from a save.
            let other = format!("{repo}-alone");
            let alone = &targets[targets.len() - 1..];
            let (pushed, events) = push_all(engine, registry, &other, alone, &mut known).await;
            assert_eq!(
                pushed[0].digest, final_.digest,
                "the same manifest anywhere"
            );
            let distinct: std::collections::BTreeSet<&String> = local.layers.iter().collect();
            assert_eq!(uploaded(&events), distinct.len() + 1);
        }
    })
    .await;
}
