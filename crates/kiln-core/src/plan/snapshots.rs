//! `Snapshots`: what the engine already holds for one habitat, read in a
//! single listing, so a whole build's cache check costs one engine call.
//! Only images kiln made are snapshots; the executor sorts the listing into
//! those and the foreign ones (which carry kiln's labels all the same, as a
//! `docker commit` or a `docker build` on a snapshot does), and the foreign
//! ones are only named, in the reason a phase rebuilds.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::engine::ImageSummary;

use crate::image::labels::{
    LABEL_INPUTS, LABEL_KEY, LABEL_PHASE, LABEL_STEP, LABEL_STEP_INPUTS, LABEL_STEP_KEY,
    LABEL_VERIFIED,
};
use crate::keys::steps::parse_step_tag;
use crate::phase::Phase;

/// The snapshot a phase tag currently points at, with the inputs it was built from.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggedSnapshot {
    pub key: String,
    pub inputs: Value,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshots {
    by_key: HashMap<String, String>,
    tagged: BTreeMap<Phase, TaggedSnapshot>,
    verified: HashSet<String>,
    /// Step key → the image kiln made as that step (SPEC §5).
    steps: HashMap<String, String>,
    /// The step snapshot each step tag (`6-setup.3`) points at now.
    tagged_steps: BTreeMap<(Phase, usize), TaggedSnapshot>,
    tags: HashMap<String, String>,
    /// Listed images that carry kiln's labels but are not images kiln made.
    foreign: Vec<ImageSummary>,
    /// `habitat-NAME`, the repository of the habitat's tags.
    repo: String,
}

impl Snapshots {
    /// Indexes the images carrying `dev.kiln.habitat=habitat`, all of them
    /// images kiln made.
    pub fn from_images(habitat: &str, images: &[ImageSummary]) -> Snapshots {
        let repo = crate::image::names::repository(habitat);
        let mut s = Snapshots {
            repo: repo.clone(),
            ..Snapshots::default()
        };
        for img in images {
            let labels = &img.labels;
            for t in &img.repo_tags {
                s.tags.insert(t.clone(), img.id.clone());
            }
            // A blanked label (SPEC §5 step images blank their parent's) is absent.
            if let Some(v) = labels.get(LABEL_VERIFIED).filter(|v| !v.is_empty()) {
                s.verified.insert(v.clone());
            }
            if let (Some(key), Some((phase, n))) = (
                labels.get(LABEL_STEP_KEY).filter(|k| !k.is_empty()),
                labels.get(LABEL_STEP).and_then(|t| parse_step_tag(t)),
            ) {
                let tag = crate::keys::steps::step_tag(phase, n);
                let is_tagged = img.repo_tags.iter().any(|t| *t == format!("{repo}:{tag}"));
                if is_tagged || !s.steps.contains_key(key) {
                    s.steps.insert(key.clone(), img.id.clone());
                }
                if is_tagged {
                    let inputs = labels
                        .get(LABEL_STEP_INPUTS)
                        .and_then(|i| serde_json::from_str(i).ok())
                        .unwrap_or(Value::Null);
                    s.tagged_steps.insert(
                        (phase, n),
                        TaggedSnapshot {
                            key: key.clone(),
                            inputs,
                        },
                    );
                }
            }
            let (Some(key), Some(tag)) = (labels.get(LABEL_KEY), labels.get(LABEL_PHASE)) else {
                continue;
            };
            let Ok(phase) = tag.parse::<Phase>() else {
                continue;
            };
            // Prefer the tagged image when several carry one key (a forced rebuild).
            let is_tagged = img
                .repo_tags
                .iter()
                .any(|t| *t == format!("{repo}:{}", phase.tag()));
            if is_tagged || !s.by_key.contains_key(key) {
                s.by_key.insert(key.clone(), img.id.clone());
            }
            if is_tagged {
                let inputs = labels
                    .get(LABEL_INPUTS)
                    .and_then(|i| serde_json::from_str(i).ok())
                    .unwrap_or(Value::Null);
                s.tagged.insert(
                    phase,
                    TaggedSnapshot {
                        key: key.clone(),
                        inputs,
                    },
                );
            }
        }
        s
    }

    /// Indexes `made`, the images kiln made of `habitat`, beside `foreign`,
    /// listed images with kiln's labels that kiln did not make: never a
    /// snapshot, never verified, only named when a phase rebuilds.
    pub fn from_listing(
        habitat: &str,
        made: &[ImageSummary],
        foreign: &[ImageSummary],
    ) -> Snapshots {
        let mut s = Snapshots::from_images(habitat, made);
        for img in foreign {
            for t in &img.repo_tags {
                s.tags.insert(t.clone(), img.id.clone());
            }
        }
        s.foreign = foreign.to_vec();
        s
    }

    /// How to name a foreign image that stands where `phase`'s snapshot
    /// with `key` would: one holding the phase's tag, carrying the key, or
    /// (for verify, which is recorded on the final image) the verify mark.
    /// Named by the phase's tag, else its first tag, else its id.
    pub fn foreign(&self, phase: Phase, key: &str) -> Option<String> {
        let tag = format!("{}:{}", self.repo, phase.tag());
        if self.foreign.iter().any(|i| i.repo_tags.contains(&tag)) {
            return Some(tag);
        }
        let label = |i: &ImageSummary, l: &str| i.labels.get(l).map(String::as_str) == Some(key);
        self.foreign
            .iter()
            .find(|i| label(i, LABEL_KEY) || (phase == Phase::Verify && label(i, LABEL_VERIFIED)))
            .map(|i| i.repo_tags.first().unwrap_or(&i.id).clone())
    }

    /// The image holding the snapshot with this key, if any.
    pub fn image_for(&self, key: &str) -> Option<&str> {
        self.by_key.get(key).map(String::as_str)
    }

    /// The image holding the step snapshot with this step key, if any.
    pub fn step_image(&self, step_key: &str) -> Option<&str> {
        self.steps.get(step_key).map(String::as_str)
    }

    /// The step snapshot step tag `phase`.`number` points at now.
    pub fn tagged_step(&self, phase: Phase, number: usize) -> Option<&TaggedSnapshot> {
        self.tagged_steps.get(&(phase, number))
    }

    /// The snapshot the phase's tag points at now.
    pub fn tagged(&self, phase: Phase) -> Option<&TaggedSnapshot> {
        self.tagged.get(&phase)
    }

    /// The image `repo:tag` points at now, as listed.
    pub fn tag_target(&self, reference: &str) -> Option<&str> {
        self.tags.get(reference).map(String::as_str)
    }

    pub fn verified(&self, verify_key: &str) -> bool {
        self.verified.contains(verify_key)
    }
}
