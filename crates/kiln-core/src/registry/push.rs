//! Engine → registry (SPEC §10): images the engine holds become manifests
//! in a repository, each blob sent once.
//!
//! Layers go up uncompressed (`application/vnd.oci.image.layer.v1.tar`), so
//! a layer's digest is its diff id, which `image_inspect` already gives: the
//! registry is asked (HEAD, several at a time) for every blob before the
//! engine is asked for a byte, a push with nothing new reads no layer, and
//! the digests are the same on every push and every machine (no compressor
//! whose output could drift). A config goes as the engine holds it unless
//! the target adds labels (the final image's OCI labels), so a snapshot
//! pulled back has the id it had here.
//!
//! What the registry lacks comes from one `docker save` of the images that
//! need it, written to a file and indexed with seeks (not read): a layer's
//! bytes are a section of that file, and which section holds which diff id
//! is read off `manifest.json` against each config's `rootfs.diff_ids`.
//! The registry checks every digest on upload, so a wrong section could
//! never be stored under a diff id. Blobs finished before an interruption
//! stay in the registry, and the next push skips them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

use serde_json::{Value, json};

use super::{MEDIA_CONFIG, MEDIA_LAYER, MEDIA_MANIFEST, Manifest, Registry, RegistryError};
use crate::engine::{Engine, EngineError};
use crate::image::names;
use crate::plan::Plan;
use crate::report::{BlobState, Event, Reporter};

/// How many blobs go up (or are asked about) at once.
pub const PARALLEL: usize = 4;
/// Progress is reported every this many bytes of a blob.
const PROGRESS_STEP: u64 = 4 << 20;

/// One image to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushTarget {
    /// What progress calls it: `6-setup`, `final`.
    pub name: String,
    /// The local image: its id or a reference.
    pub image: String,
    /// The tags its manifest goes under; none: pushed by digest only.
    pub tags: Vec<String>,
    /// Labels the pushed config adds to (or sets over) the image's own.
    /// Empty: the config goes byte for byte as the engine holds it.
    pub labels: BTreeMap<String, String>,
    /// Whether its manifest is annotated `org.opencontainers.image.created`
    /// (a snapshot, whose config must stay byte for byte, is dated there,
    /// so retention can tell its age).
    pub dated: bool,
}

/// What a push did for one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedImage {
    pub name: String,
    pub tags: Vec<String>,
    /// `sha256:…` of the manifest.
    pub digest: String,
    /// The local image's id.
    pub image_id: String,
    /// Of its blobs (layers and config) not counted for an earlier target:
    /// uploaded by this push, and found in the registry.
    pub uploaded: usize,
    pub present: usize,
    pub bytes_uploaded: u64,
}

/// Why a push stopped.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("no such image `{0}` to push")]
    NoSuchImage(String),
    /// The engine's `docker save` archive did not hold what it should.
    #[error("cannot read the engine's archive of `{image}`: {message}")]
    Archive { image: String, message: String },
}

/// The local configs a push learned, by image id: the bytes whose digest is
/// the id. A caller keeps them on the host so that pushing the same final
/// image again asks the engine for nothing but an inspect.
pub type KnownConfigs = BTreeMap<String, Vec<u8>>;

/// An image as inspected, with what its pushed config will be once known.
struct Image {
    target: PushTarget,
    id: String,
    layers: Vec<String>,
    /// The config as pushed, when known.
    config: Option<Vec<u8>>,
}

/// A blob and where its bytes are.
#[derive(Debug, Clone)]
enum Body {
    Memory(Vec<u8>),
    /// A section of the save archive.
    Section {
        offset: u64,
        size: u64,
    },
}

/// The prefix of the save archive's temporary file, which a later run
/// sweeps when the push that made it was killed.
pub const ARCHIVE_PREFIX: &str = "kiln-push-";

/// Pushes `targets` into `repo` of `registry`, in order, reporting progress
/// to `reporter`. `known` gives (and gets) raw configs by image id;
/// `created` gives the RFC 3339 time a dated target's manifest says, by
/// image id (the same on every push of that image, so its digest stays).
pub async fn push<E: Engine>(
    engine: &E,
    registry: &dyn Registry,
    repo: &str,
    targets: &[PushTarget],
    known: &mut KnownConfigs,
    created: &mut dyn FnMut(&str) -> String,
    reporter: &mut dyn Reporter,
) -> Result<Vec<PushedImage>, PushError> {
    let started = Instant::now();
    let repository = format!("{}/{repo}", registry.host());
    reporter.report(Event::PushStart {
        repository: repository.clone(),
        images: targets.iter().map(|t| t.name.clone()).collect(),
    });
    let result = push_inner(engine, registry, repo, targets, known, created, reporter).await;
    let (bytes, uploaded, present) = result.as_ref().map_or((0, 0, 0), |images| {
        images.iter().fold((0, 0, 0), |(b, u, p), i| {
            (b + i.bytes_uploaded, u + i.uploaded, p + i.present)
        })
    });
    reporter.report(Event::PushEnd {
        repository,
        ok: result.is_ok(),
        duration: started.elapsed(),
        bytes_uploaded: bytes,
        blobs_uploaded: uploaded,
        blobs_present: present,
    });
    result
}

async fn push_inner<E: Engine>(
    engine: &E,
    registry: &dyn Registry,
    repo: &str,
    targets: &[PushTarget],
    known: &mut KnownConfigs,
    created: &mut dyn FnMut(&str) -> String,
    reporter: &mut dyn Reporter,
) -> Result<Vec<PushedImage>, PushError> {
    let mut images = Vec::with_capacity(targets.len());
    for t in targets {
        let info = engine
            .image_inspect(&t.image)
            .await?
            .ok_or_else(|| PushError::NoSuchImage(t.image.clone()))?;
        images.push(Image {
            target: t.clone(),
            id: info.id,
            layers: info.layers,
            config: None,
        });
    }

    // Every layer and every unlabelled config is named before anything is
    // read: ask the registry about all of them at once.
    let mut asked: BTreeSet<String> = BTreeSet::new();
    for img in &images {
        asked.extend(img.layers.iter().cloned());
        asked.insert(img.id.clone());
    }
    let asked: Vec<String> = asked.into_iter().collect();
    let sizes: BTreeMap<String, Option<u64>> = blocking(|| {
        parallel(&asked, |d| {
            registry.blob_size(repo, d).map(|s| (d.clone(), s))
        })
        .into_iter()
        .collect::<Result<_, _>>()
    })?;
    let present = |d: &str| sizes.get(d).copied().flatten();

    // Raw configs: remembered, else from the registry (a snapshot pushed
    // before, or pulled here), else from the archive below.
    let mut raw: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for img in &images {
        if let Some(bytes) = known.get(&img.id).filter(|b| super::digest_of(b) == img.id) {
            raw.insert(img.id.clone(), bytes.clone());
        }
    }
    let fetch: Vec<String> = images
        .iter()
        .filter(|i| !i.target.labels.is_empty() && !raw.contains_key(&i.id))
        .filter(|i| present(&i.id).is_some())
        .map(|i| i.id.clone())
        .collect();
    for id in fetch {
        let mut bytes = Vec::new();
        blocking(|| registry.blob_get(repo, &id, &mut bytes))?;
        if super::digest_of(&bytes) == id {
            raw.insert(id, bytes);
        }
    }

    // Which images the engine must save: one lacking a layer or a config.
    let needs_save = |img: &Image| {
        img.layers.iter().any(|l| present(l).is_none())
            || (present(&img.id).is_none() || !img.target.labels.is_empty())
                && !raw.contains_key(&img.id)
    };
    let save: Vec<String> = images
        .iter()
        .filter(|i| needs_save(i))
        .map(|i| i.id.clone())
        .collect();
    let mut bodies: BTreeMap<String, Body> = BTreeMap::new();
    let archive = if save.is_empty() {
        None
    } else {
        let file = crate::cache::scratch::tempfile(ARCHIVE_PREFIX)
            .map_err(|e| archive_error(&save[0], format!("cannot make a temporary file: {e}")))?;
        let path = file.path().to_path_buf();
        engine.save(&save, path.clone()).await?;
        let index = index_archive(&path).map_err(|m| archive_error(&save[0], m))?;
        for (id, bytes) in index.configs {
            raw.entry(id).or_insert(bytes);
        }
        for (diff_id, section) in index.layers {
            bodies.insert(diff_id, section);
        }
        Some((file, path))
    };

    // The pushed configs.
    for img in &mut images {
        let Some(bytes) = raw.get(&img.id) else {
            // Neither labelled nor missing: the registry has it by its id.
            continue;
        };
        known.insert(img.id.clone(), bytes.clone());
        img.config = Some(if img.target.labels.is_empty() {
            bytes.clone()
        } else {
            labelled(bytes, &img.target.labels).map_err(|m| archive_error(&img.id, m))?
        });
    }
    // A labelled config has a digest of its own: is it there already?
    let labelled_digests: Vec<String> = images
        .iter()
        .filter(|i| !i.target.labels.is_empty())
        .filter_map(|i| i.config.as_deref().map(super::digest_of))
        .collect();
    let more: BTreeMap<String, Option<u64>> = blocking(|| {
        parallel(&labelled_digests, |d| {
            registry.blob_size(repo, d).map(|s| (d.clone(), s))
        })
        .into_iter()
        .collect::<Result<_, _>>()
    })?;
    let size_of = |d: &str| present(d).or_else(|| more.get(d).copied().flatten());

    // What goes up, each blob once, counted for the first image naming it.
    let mut uploads: Vec<Upload> = Vec::new();
    let mut counted: BTreeSet<String> = BTreeSet::new();
    let mut results: Vec<PushedImage> = Vec::new();
    for (n, img) in images.iter().enumerate() {
        let mut r = PushedImage {
            name: img.target.name.clone(),
            tags: img.target.tags.clone(),
            digest: String::new(),
            image_id: img.id.clone(),
            uploaded: 0,
            present: 0,
            bytes_uploaded: 0,
        };
        let config_digest = img
            .config
            .as_deref()
            .map_or_else(|| img.id.clone(), super::digest_of);
        let blobs = img.layers.iter().cloned().chain([config_digest.clone()]);
        for digest in blobs {
            if !counted.insert(digest.clone()) {
                continue;
            }
            if let Some(size) = size_of(&digest) {
                r.present += 1;
                reporter.report(Event::PushBlob {
                    image: img.target.name.clone(),
                    digest,
                    size,
                    sent: size,
                    state: BlobState::Present,
                });
                continue;
            }
            let body = if digest == config_digest {
                img.config.clone().map(Body::Memory)
            } else {
                bodies.get(&digest).cloned()
            };
            let body =
                body.ok_or_else(|| archive_error(&img.id, format!("it holds no blob `{digest}`")))?;
            uploads.push(Upload {
                image: n,
                digest,
                body,
            });
        }
        results.push(r);
    }

    let path = archive.as_ref().map(|(_, p)| p.as_path());
    let done = blocking(|| upload_all(registry, repo, path, &images, &uploads, reporter))?;
    for (n, bytes) in done {
        results[n].uploaded += 1;
        results[n].bytes_uploaded += bytes;
    }
    drop(archive);

    // Manifests last, once every blob they name is there; several at once.
    let mut puts: Vec<(String, Manifest)> = Vec::new();
    for (img, r) in images.iter().zip(&mut results) {
        let config_digest = img
            .config
            .as_deref()
            .map_or_else(|| img.id.clone(), super::digest_of);
        let size = |d: &str| -> Result<u64, PushError> {
            if let Some(c) = img.config.as_deref().filter(|_| d == config_digest) {
                return Ok(c.len() as u64);
            }
            size_of(d)
                .or_else(|| match bodies.get(d) {
                    Some(Body::Section { size, .. }) => Some(*size),
                    Some(Body::Memory(b)) => Some(b.len() as u64),
                    None => None,
                })
                .ok_or_else(|| archive_error(&img.id, format!("no size for blob `{d}`")))
        };
        let layers: Vec<(String, u64)> = img
            .layers
            .iter()
            .map(|l| size(l).map(|s| (l.clone(), s)))
            .collect::<Result<_, _>>()?;
        let annotations = if img.target.dated {
            BTreeMap::from([(super::vars::LABEL_CREATED.to_string(), created(&img.id))])
        } else {
            BTreeMap::new()
        };
        let manifest = manifest(&config_digest, size(&config_digest)?, &layers, &annotations);
        r.digest = manifest.digest.clone();
        if img.target.tags.is_empty() {
            puts.push((manifest.digest.clone(), manifest));
        } else {
            for tag in &img.target.tags {
                puts.push((tag.clone(), manifest.clone()));
            }
        }
    }
    blocking(|| {
        parallel(&puts, |(reference, m)| {
            registry.manifest_put(repo, reference, m)
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
    })?;
    for r in &results {
        reporter.report(Event::PushImage {
            image: r.name.clone(),
            tags: r.tags.clone(),
            digest: r.digest.clone(),
            uploaded: r.uploaded,
            present: r.present,
            bytes_uploaded: r.bytes_uploaded,
        });
    }
    Ok(results)
}

/// What `kiln push` sends for a habitat whose build `plan` describes: with
/// `cache`, every configured phase's snapshot under `cache-KEY` (the full
/// phase key; the config as the engine holds it), then the final image
/// `final_image` under `tags` with `labels` added to its config.
pub fn habitat_targets(
    habitat: &str,
    plan: &Plan,
    final_image: &str,
    tags: &[String],
    labels: &BTreeMap<String, String>,
    cache: bool,
) -> Vec<PushTarget> {
    let mut out: Vec<PushTarget> = Vec::new();
    if cache {
        // A phase within a pulled (or deeper local) snapshot made no image
        // of its own: its tag may still point at an older one, which must
        // never go up under this key.
        let made = |p: &&crate::plan::PlannedPhase| {
            p.key.present() && !matches!(p.action, crate::plan::Action::Within { .. })
        };
        for p in plan.phases.iter().filter(made) {
            out.push(PushTarget {
                name: p.phase.tag(),
                image: names::snapshot(habitat, p.phase),
                tags: vec![format!("{CACHE_TAG_PREFIX}{}", p.key.key.as_str())],
                labels: BTreeMap::new(),
                dated: true,
            });
        }
    }
    out.push(PushTarget {
        name: "final".to_string(),
        image: final_image.to_string(),
        tags: tags.to_vec(),
        labels: labels.clone(),
        dated: false,
    });
    out
}

/// Snapshot tags are this plus the full phase key (SPEC §10).
pub const CACHE_TAG_PREFIX: &str = "cache-";

/// The date the registry's snapshot of the final image says, when it holds
/// one: the `org.opencontainers.image.created` annotation of
/// `cache-FINAL_KEY`, when that manifest's config is image `id` (so it is
/// this very image, pushed from here or from the machine that built it and
/// pulled here). A push dates the final image by it, so every machine that
/// pushes the same final image pushes the same config, hence the same
/// digest. `None` when there is none, or the registry cannot say: the
/// caller falls back to what it recorded.
pub fn snapshot_date(
    registry: &dyn Registry,
    repo: &str,
    final_key: &str,
    id: &str,
) -> Option<String> {
    let m = registry
        .manifest_get(repo, &format!("{CACHE_TAG_PREFIX}{final_key}"))
        .ok()??;
    let m: Value = serde_json::from_slice(&m.bytes).ok()?;
    if m.pointer("/config/digest")?.as_str()? != id {
        return None;
    }
    let t = m
        .get("annotations")?
        .get(super::vars::LABEL_CREATED)?
        .as_str()?;
    Some(t.to_string())
}

fn archive_error(image: &str, message: String) -> PushError {
    PushError::Archive {
        image: image.to_string(),
        message,
    }
}

/// The OCI image manifest of a config and layers (digest, size), with
/// `annotations` when there are any, in fixed key order: the same image
/// always has the same manifest digest.
pub fn manifest(
    config: &str,
    config_size: u64,
    layers: &[(String, u64)],
    annotations: &BTreeMap<String, String>,
) -> Manifest {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, s)| json!({"mediaType": MEDIA_LAYER, "digest": d, "size": s}))
        .collect();
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config, "size": config_size},
        "layers": layers,
    });
    if !annotations.is_empty() {
        m["annotations"] = json!(annotations);
    }
    Manifest::new(MEDIA_MANIFEST, serde_json::to_vec(&m).unwrap_or_default())
}

/// `raw` (an image config) with `labels` set in `config.Labels`; every
/// other byte of meaning kept, key order kept, so the same inputs always
/// give the same bytes.
pub fn labelled(raw: &[u8], labels: &BTreeMap<String, String>) -> Result<Vec<u8>, String> {
    let mut image: Value =
        serde_json::from_slice(raw).map_err(|e| format!("its config is not JSON: {e}"))?;
    let Some(top) = image.as_object_mut() else {
        return Err("its config is not a JSON object".to_string());
    };
    let config = top.entry("config").or_insert_with(|| json!({}));
    if !config.is_object() {
        *config = json!({});
    }
    let Some(config) = config.as_object_mut() else {
        return Err("its config is not a JSON object".to_string());
    };
    let slot = config.entry("Labels").or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    if let Some(map) = slot.as_object_mut() {
        for (k, v) in labels {
            map.insert(k.clone(), Value::String(v.clone()));
        }
    }
    serde_json::to_vec(&image).map_err(|e| e.to_string())
}

/// What a save archive holds, found by seeking past every entry's data.
struct ArchiveIndex {
    /// Image id → its config's bytes.
    configs: BTreeMap<String, Vec<u8>>,
    /// Diff id → the section of the archive holding the layer.
    layers: BTreeMap<String, Body>,
}

fn index_archive(path: &Path) -> Result<ArchiveIndex, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut ar = tar::Archive::new(file);
    // name → (offset, size) of regular files; name → target of symlinks.
    let mut files: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in ar.entries_with_seek().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let name = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .ok()
                .flatten()
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            links.insert(name, target);
        } else if kind.is_file() {
            let size = entry.size();
            // Configs and the manifest are small and read now; layers are not.
            if !name.contains('/') && name.ends_with(".json") {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
                small.insert(name.clone(), bytes);
            }
            files.insert(name, (entry.raw_file_position(), size));
        }
    }
    let manifest: Value = small
        .get("manifest.json")
        .and_then(|b| serde_json::from_slice(b).ok())
        .ok_or("it has no manifest.json")?;
    let mut out = ArchiveIndex {
        configs: BTreeMap::new(),
        layers: BTreeMap::new(),
    };
    for image in manifest.as_array().into_iter().flatten() {
        let config_name = image["Config"].as_str().unwrap_or_default();
        let bytes = small
            .get(config_name)
            .ok_or_else(|| format!("it has no `{config_name}`"))?;
        let config: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("`{config_name}` is not JSON: {e}"))?;
        let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let paths: Vec<&str> = image["Layers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if paths.len() != diff_ids.len() {
            return Err(format!(
                "`{config_name}` names {} layers, the manifest {}",
                diff_ids.len(),
                paths.len()
            ));
        }
        for (p, d) in paths.iter().zip(diff_ids) {
            let path = resolve_link(p, &links);
            let &(offset, size) = files
                .get(&path)
                .ok_or_else(|| format!("it has no layer `{p}`"))?;
            out.layers
                .entry(d.to_string())
                .or_insert(Body::Section { offset, size });
        }
        out.configs.insert(super::digest_of(bytes), bytes.clone());
    }
    Ok(out)
}

/// `a/layer.tar` followed through `../b/layer.tar` links to the file.
fn resolve_link(path: &str, links: &BTreeMap<String, String>) -> String {
    let mut path = path.to_string();
    for _ in 0..8 {
        let Some(target) = links.get(&path) else {
            break;
        };
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for part in target.split('/') {
            match part {
                ".." => {
                    parts.pop();
                }
                "." | "" => {}
                p => parts.push(p),
            }
        }
        path = parts.join("/");
    }
    path
}

struct Upload {
    /// Index of the image it is counted for.
    image: usize,
    digest: String,
    body: Body,
}

enum Progress {
    Sent(usize, u64),
    Done(usize),
}

/// Uploads every blob, `PARALLEL` at a time, reporting from this thread;
/// returns (image index, bytes) per finished upload.
fn upload_all(
    registry: &dyn Registry,
    repo: &str,
    archive: Option<&Path>,
    images: &[Image],
    uploads: &[Upload],
    reporter: &mut dyn Reporter,
) -> Result<Vec<(usize, u64)>, PushError> {
    let size = |u: &Upload| match &u.body {
        Body::Memory(b) => b.len() as u64,
        Body::Section { size, .. } => *size,
    };
    for u in uploads {
        reporter.report(Event::PushBlob {
            image: images[u.image].target.name.clone(),
            digest: u.digest.clone(),
            size: size(u),
            sent: 0,
            state: BlobState::Uploading,
        });
    }
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..uploads.len()).collect());
    let failed: Mutex<Option<RegistryError>> = Mutex::new(None);
    let (tx, rx) = mpsc::channel::<Progress>();
    let mut done = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(uploads.len()) {
            let tx = tx.clone();
            let (queue, failed) = (&queue, &failed);
            s.spawn(move || {
                loop {
                    if failed.lock().expect("failed").is_some() {
                        return;
                    }
                    let Some(i) = queue.lock().expect("queue").pop_front() else {
                        return;
                    };
                    let u = &uploads[i];
                    let sent = upload_one(registry, repo, archive, u, size(u), |n| {
                        let _ = tx.send(Progress::Sent(i, n));
                    });
                    match sent {
                        Ok(()) => {
                            let _ = tx.send(Progress::Done(i));
                        }
                        Err(e) => {
                            failed.lock().expect("failed").get_or_insert(e);
                            return;
                        }
                    }
                }
            });
        }
        drop(tx);
        for msg in rx {
            let (i, sent, state) = match msg {
                Progress::Sent(i, n) => (i, n, BlobState::Uploading),
                Progress::Done(i) => {
                    done.push((uploads[i].image, size(&uploads[i])));
                    (i, size(&uploads[i]), BlobState::Uploaded)
                }
            };
            let u = &uploads[i];
            reporter.report(Event::PushBlob {
                image: images[u.image].target.name.clone(),
                digest: u.digest.clone(),
                size: size(u),
                sent,
                state,
            });
        }
    });
    match failed.into_inner().expect("failed") {
        Some(e) => Err(e.into()),
        None => Ok(done),
    }
}

fn upload_one(
    registry: &dyn Registry,
    repo: &str,
    archive: Option<&Path>,
    u: &Upload,
    size: u64,
    on_sent: impl FnMut(u64) + Send,
) -> Result<(), RegistryError> {
    let io = |e: std::io::Error| RegistryError::Io {
        op: "blob upload".to_string(),
        message: format!("cannot read the engine's archive: {e}"),
    };
    match &u.body {
        Body::Memory(bytes) => {
            let mut body = Counting::new(&bytes[..], on_sent);
            registry.blob_upload(repo, &u.digest, size, &mut body)
        }
        Body::Section { offset, size } => {
            let path = archive.ok_or_else(|| io(std::io::Error::other("no archive")))?;
            let mut file = std::fs::File::open(path).map_err(io)?;
            file.seek(SeekFrom::Start(*offset)).map_err(io)?;
            let reader = std::io::BufReader::with_capacity(1 << 20, file.take(*size));
            let mut body = Counting::new(reader, on_sent);
            registry.blob_upload(repo, &u.digest, *size, &mut body)
        }
    }
}

/// A reader that tells how much has been read, every [`PROGRESS_STEP`].
struct Counting<R, F> {
    inner: R,
    read: u64,
    told: u64,
    on_sent: F,
}

impl<R, F: FnMut(u64)> Counting<R, F> {
    fn new(inner: R, on_sent: F) -> Self {
        Counting {
            inner,
            read: 0,
            told: 0,
            on_sent,
        }
    }
}

impl<R: Read, F: FnMut(u64)> Read for Counting<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.told >= PROGRESS_STEP {
            self.told = self.read;
            (self.on_sent)(self.read);
        }
        Ok(n)
    }
}

/// Runs `f`, a run of blocking registry calls, without stalling the async
/// runtime's other tasks where the runtime allows it.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// `f` over `items`, [`PARALLEL`] at a time, results in item order.
pub fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = Mutex::new(0usize);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(items.len()) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().expect("next");
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(item) = items.get(i) else {
                        return;
                    };
                    let r = f(item);
                    out.lock().expect("out")[i] = Some(r);
                }
            });
        }
    });
    out.into_inner()
        .expect("out")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_images_snapshot_in_the_registry_dates_it_when_it_is_that_image() {
        let r = crate::registry::fake::FakeRegistry::new();
        // A config blob (the image id is its digest) and a manifest naming it.
        let put = |tag: &str, config: &[u8], created: Option<&str>| -> String {
            let id = crate::registry::digest_of(config);
            let len = config.len() as u64;
            r.blob_upload(
                "team/app",
                &id,
                len,
                &mut std::io::Cursor::new(config.to_vec()),
            )
            .unwrap();
            let annotations: BTreeMap<String, String> = created
                .map(|c| (super::super::vars::LABEL_CREATED.to_string(), c.to_string()))
                .into_iter()
                .collect();
            let m = manifest(&id, len, &[], &annotations);
            r.manifest_put("team/app", tag, &m).unwrap();
            id
        };
        let final_id = put("cache-kf", b"{\"final\":1}", Some("2026-01-02T03:04:05Z"));
        put("cache-ko", b"{\"other\":1}", Some("2026-01-01T00:00:00Z"));
        let undated = put("cache-kn", b"{\"undated\":1}", None);
        assert_eq!(
            snapshot_date(&r, "team/app", "kf", &final_id).as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        // Another image under that key (made again here), no snapshot, no
        // date, or a registry that is down: nothing to go by.
        assert_eq!(snapshot_date(&r, "team/app", "ko", &final_id), None);
        assert_eq!(snapshot_date(&r, "team/app", "kx", &final_id), None);
        assert_eq!(snapshot_date(&r, "team/app", "kn", &undated), None);
        let down = crate::registry::fake::FakeRegistry::new().down();
        assert_eq!(snapshot_date(&down, "team/app", "kf", &final_id), None);
    }

    #[test]
    fn labels_are_added_and_nothing_else_moves() {
        let raw = br#"{"architecture":"amd64","config":{"Env":["A=1"],"Labels":{"dev.kiln.key":"k"}},"created":"2026-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let labels = BTreeMap::from([(
            "org.opencontainers.image.created".to_string(),
            "t".to_string(),
        )]);
        let out = labelled(raw, &labels).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"architecture":"amd64","config":{"Env":["A=1"],"Labels":{"dev.kiln.key":"k","org.opencontainers.image.created":"t"}},"created":"2026-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#
        );
        // The same inputs, the same bytes; no labels at all makes the map.
        assert_eq!(labelled(raw, &labels).unwrap(), out);
        let bare = labelled(br#"{"config":{"Labels":null}}"#, &labels).unwrap();
        assert_eq!(
            bare,
            br#"{"config":{"Labels":{"org.opencontainers.image.created":"t"}}}"#
        );
        assert!(labelled(b"[1]", &labels).is_err());
    }

    #[test]
    fn a_manifest_names_its_blobs_in_order_and_is_stable() {
        let layers = vec![("sha256:aa".to_string(), 10), ("sha256:bb".to_string(), 20)];
        let none = BTreeMap::new();
        let m = manifest("sha256:cc", 5, &layers, &none);
        assert_eq!(m, manifest("sha256:cc", 5, &layers, &none));
        assert!(v_has_no_annotations(&m));
        let dated = BTreeMap::from([(
            "org.opencontainers.image.created".to_string(),
            "t".to_string(),
        )]);
        let d = manifest("sha256:cc", 5, &layers, &dated);
        let dv: Value = serde_json::from_slice(&d.bytes).unwrap();
        assert_eq!(dv["annotations"]["org.opencontainers.image.created"], "t");
        assert_ne!(d.digest, m.digest);
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(v["config"]["digest"], "sha256:cc");
        assert_eq!(v["layers"][1]["digest"], "sha256:bb");
        assert_eq!(v["layers"][1]["size"], 20);
        assert_eq!(m.digest, super::super::digest_of(&m.bytes));
    }

    fn v_has_no_annotations(m: &Manifest) -> bool {
        let v: Value = serde_json::from_slice(&m.bytes).unwrap();
        v.get("annotations").is_none()
    }

    #[test]
    fn layer_links_resolve_to_the_file_they_name() {
        let links = BTreeMap::from([
            ("a/layer.tar".to_string(), "../b/layer.tar".to_string()),
            ("c/layer.tar".to_string(), "../a/layer.tar".to_string()),
        ]);
        assert_eq!(resolve_link("a/layer.tar", &links), "b/layer.tar");
        assert_eq!(resolve_link("c/layer.tar", &links), "b/layer.tar");
        assert_eq!(resolve_link("b/layer.tar", &links), "b/layer.tar");
    }

    #[test]
    fn parallel_keeps_item_order() {
        let items: Vec<u32> = (0..37).collect();
        assert_eq!(
            parallel(&items, |i| i * 2),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        assert_eq!(parallel(&[] as &[u32], |i| *i), Vec::<u32>::new());
    }
}
