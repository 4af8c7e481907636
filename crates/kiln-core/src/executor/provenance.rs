//! Which images are a habitat's snapshots, found without listing the engine's
//! images: a listing costs time in proportion to every image the engine
//! holds (150 ms at 370 images, even filtered by label), so a no-op build
//! would slow down as the machine fills. Instead kiln inspects the tags the
//! habitat's build writes (one inspect each, in parallel, while the facts
//! resolve), then, for the keys of the chain no tag holds, the image ids the
//! host's [`MadeIndex`] records for those keys (an older snapshot a config
//! returns to). The cost depends on the chain, not on the engine.
//!
//! Only images kiln made are snapshots. An image another tool makes from a
//! snapshot (`docker commit`, a Dockerfile `FROM` one) carries every
//! `dev.kiln.*` label, so labels prove nothing. What kiln made is known from
//! the index (the ids its builds made or checked before), or proved once by
//! rebuilding the image's config from its inspection
//! ([`archive::is_kiln_image`]); image ids are content addresses, so either
//! answer holds for good, and an id in the index that the engine no longer
//! holds is forgotten.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use crate::cache::{CacheDir, MadeIndex};
use crate::engine::{Engine, ImageInfo, ImageSummary};
use crate::image::archive;
use crate::image::labels::{LABEL_KEY, LABEL_PHASE, LABEL_STEP, LABEL_STEP_KEY, LABEL_VERIFIED};
use crate::image::names;
use crate::keys::steps::{parse_step_tag, step_tag};
use crate::phase::Phase;
use crate::plan::Snapshots;

use super::context::snapshot_comment;
use super::error::BuildError;

/// What the first half found: the images the habitat's tags point at, and
/// the index that tells which of them kiln made.
pub(super) struct Probe {
    habitat: String,
    index: MadeIndex,
    /// By image id: every image inspected so far.
    found: BTreeMap<String, ImageInfo>,
}

/// The keys the plan will look up: each phase's key, and the verify key
/// (whose pass a final image records).
pub(super) struct Wanted<'a> {
    pub keys: Vec<&'a str>,
    pub verify: Option<&'a str>,
    /// The phases run in steps: looked up step by step only when no
    /// snapshot holds the phase's own key (the phase will build).
    pub steps: Vec<WantedSteps<'a>>,
}

/// The step keys of one phase run in steps, in order.
pub(super) struct WantedSteps<'a> {
    pub phase: Phase,
    pub phase_key: &'a str,
    pub keys: Vec<&'a str>,
}

/// Inspects every tag a build of `habitat` writes (the ten phase tags and
/// `latest`; a final image's inspection lists its `final-KEY12` tag too).
pub(super) async fn probe_tags<E: Engine>(
    engine: &E,
    habitat: &str,
    cache: &CacheDir,
) -> Result<Probe, BuildError> {
    let repo = names::repository(habitat);
    let refs: Vec<String> = Phase::ALL
        .iter()
        .map(|p| names::snapshot(habitat, *p))
        .chain([format!("{repo}:latest")])
        .collect();
    let mut probe = Probe {
        habitat: habitat.to_string(),
        index: MadeIndex::load(&cache.made(habitat)),
        found: BTreeMap::new(),
    };
    for info in join_all(refs.iter().map(|r| engine.image_inspect(r))).await {
        if let Some(info) = info? {
            probe.found.insert(info.id.clone(), info);
        }
    }
    Ok(probe)
}

/// Completes `probe` for the keys the plan wants: inspects the indexed
/// images of the keys no tag holds, then sorts everything found into images
/// kiln made and foreign ones. Returns the index with what it learnt, for a
/// build to save.
pub(super) async fn find_snapshots<E: Engine>(
    engine: &E,
    mut probe: Probe,
    wanted: &Wanted<'_>,
) -> Result<(Snapshots, MadeIndex), BuildError> {
    // Only an image kiln made holds a key or a verify pass: a foreign one
    // at a tag (a `docker commit` retagged) must not hide kiln's own, untagged.
    let (mut made, mut foreign) = sort_found(&mut probe.index, probe.found.values());
    let held = |made: &[ImageSummary], label: &str, value: &str| {
        made.iter()
            .any(|i| i.labels.get(label).map(String::as_str) == Some(value))
    };
    let mut ids: Vec<String> = Vec::new();
    for key in &wanted.keys {
        if !held(&made, LABEL_KEY, key) {
            ids.extend(probe.index.ids_of(key).map(str::to_string));
        }
    }
    if let Some(v) = wanted.verify.filter(|v| !held(&made, LABEL_VERIFIED, v)) {
        ids.extend(probe.index.ids_verified(v).map(str::to_string));
    }
    ids.sort();
    ids.dedup();
    ids.retain(|id| !probe.found.contains_key(id));
    let inspected = join_all(ids.iter().map(|id| engine.image_inspect(id))).await;
    let mut more = Vec::new();
    for (id, info) in ids.iter().zip(inspected) {
        match info? {
            Some(info) => more.push(info),
            // Removed since kiln made it (`docker rmi`, a prune).
            None => probe.index.forget(id),
        }
    }
    let (m, f) = sort_found(&mut probe.index, more.iter());
    made.extend(m);
    foreign.extend(f);
    for info in more {
        probe.found.insert(info.id.clone(), info);
    }
    // A phase that will build: the images of its steps, by the step tags
    // the last build wrote and by the ids the index records for the keys.
    let mut refs: Vec<String> = Vec::new();
    for w in &wanted.steps {
        if held(&made, LABEL_KEY, w.phase_key) {
            continue;
        }
        let repo = names::repository(&probe.habitat);
        refs.extend((1..=w.keys.len()).map(|n| format!("{repo}:{}", step_tag(w.phase, n))));
        for key in &w.keys {
            refs.extend(probe.index.ids_of_step(key).map(str::to_string));
        }
    }
    refs.sort();
    refs.dedup();
    refs.retain(|r| !probe.found.contains_key(r));
    if !refs.is_empty() {
        let inspected = join_all(refs.iter().map(|r| engine.image_inspect(r))).await;
        let mut steps: BTreeMap<String, ImageInfo> = BTreeMap::new();
        for (r, info) in refs.iter().zip(inspected) {
            match info? {
                Some(info) if !probe.found.contains_key(&info.id) => {
                    steps.insert(info.id.clone(), info);
                }
                Some(_) => {}
                // An indexed id the engine no longer holds (a tag is not an id).
                None if r.starts_with("sha256:") => probe.index.forget(r),
                None => {}
            }
        }
        let (m, f) = sort_found(&mut probe.index, steps.values());
        made.extend(m);
        foreign.extend(f);
    }
    Ok((
        Snapshots::from_listing(&probe.habitat, &made, &foreign),
        probe.index,
    ))
}

/// Sorts inspected images into those kiln made and foreign ones that pose
/// as snapshots, recording in `index` what it had not known.
pub(crate) fn sort_found<'a>(
    index: &mut MadeIndex,
    found: impl Iterator<Item = &'a ImageInfo>,
) -> (Vec<ImageSummary>, Vec<ImageSummary>) {
    let (mut made, mut foreign) = (Vec::new(), Vec::new());
    for info in found {
        // Only what names a phase and a key can pose as a snapshot; anything
        // else (a base image, a verify mark alone) is ignored.
        let labels = &info.config.labels;
        // A blanked label (a step's image blanks its parent's) is absent.
        let key = labels.get(LABEL_KEY).filter(|k| !k.is_empty()).zip(
            labels
                .get(LABEL_PHASE)
                .and_then(|p| p.parse::<Phase>().ok()),
        );
        // A step snapshot (SPEC §5); the last step's is the phase's too.
        let step = labels.get(LABEL_STEP_KEY).filter(|k| !k.is_empty()).zip(
            labels
                .get(LABEL_STEP)
                .and_then(|t| parse_step_tag(t))
                .map(|(p, _)| p),
        );
        let Some(phase) = key.map(|(_, p)| p).or(step.map(|(_, p)| p)) else {
            continue;
        };
        let known = key.is_some_and(|(k, _)| index.key_of(&info.id) == Some(k.as_str()))
            || step.is_some_and(|(k, _)| index.step_key_of(&info.id) == Some(k.as_str()));
        let ours = if known {
            true
        } else if index.is_foreign(&info.id) {
            false
        } else if archive::is_kiln_image(info, &snapshot_comment(phase)) {
            true
        } else {
            index.insert_foreign(&info.id);
            false
        };
        let summary = ImageSummary {
            id: info.id.clone(),
            repo_tags: info.repo_tags.clone(),
            labels: labels.clone(),
        };
        if ours {
            if let Some((k, _)) = key {
                index.insert_made(&info.id, k);
            }
            if let Some((k, _)) = step {
                index.insert_step(&info.id, k);
            }
            if let Some(v) = labels.get(LABEL_VERIFIED).filter(|v| !v.is_empty()) {
                index.insert_verified(&info.id, v);
            }
            made.push(summary);
        } else {
            foreign.push(summary);
        }
    }
    (made, foreign)
}
