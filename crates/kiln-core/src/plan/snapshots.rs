//! `Snapshots`: what the engine already holds for one habitat, read in a
//! single listing, so a whole build's cache check costs one engine call.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::engine::ImageSummary;

use crate::image::labels::{LABEL_INPUTS, LABEL_KEY, LABEL_PHASE, LABEL_VERIFIED};
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
    tags: HashMap<String, String>,
}

impl Snapshots {
    /// Indexes the images carrying `dev.kiln.habitat=habitat`.
    pub fn from_images(habitat: &str, images: &[ImageSummary]) -> Snapshots {
        let repo = crate::image::names::repository(habitat);
        let mut s = Snapshots::default();
        for img in images {
            let labels = &img.labels;
            for t in &img.repo_tags {
                s.tags.insert(t.clone(), img.id.clone());
            }
            if let Some(v) = labels.get(LABEL_VERIFIED) {
                s.verified.insert(v.clone());
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

    /// The image holding the snapshot with this key, if any.
    pub fn image_for(&self, key: &str) -> Option<&str> {
        self.by_key.get(key).map(String::as_str)
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
