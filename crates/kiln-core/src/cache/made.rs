//! `MadeIndex`: which images of one habitat kiln made, kept on the host so a
//! build can trust its snapshot listing without inspecting every image. An
//! image id is the digest of the image's config, which names its layers, so
//! an id that was made by kiln (or checked once to be of kiln's making) stays
//! so, and one that was not, never becomes so.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

/// Image id → the key of the snapshot kiln made as it, and the ids found not
/// to be kiln's (kept so a foreign image is inspected once, not every build).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct MadeIndex {
    made: BTreeMap<String, String>,
    #[serde(default)]
    foreign: BTreeSet<String>,
    /// Image id → the verify key a final image kiln made records as passed.
    #[serde(default)]
    verified: BTreeMap<String, String>,
    /// Image id → the key of the step snapshot kiln made as it (SPEC §5): a
    /// phase's last step's image is in `made` too, by the phase's key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    steps: BTreeMap<String, String>,
    /// Image id → when kiln first made or checked it (seconds since the
    /// epoch): snapshots carry their base's creation time, not their own.
    #[serde(default)]
    made_at: BTreeMap<String, u64>,
    #[serde(skip)]
    dirty: bool,
    #[serde(skip)]
    path: Option<PathBuf>,
}

impl MadeIndex {
    /// Reads the index at `path`; an unreadable or corrupt index is empty
    /// (its images are checked again, which costs an inspect each).
    pub fn load(path: &Path) -> MadeIndex {
        let mut index: MadeIndex = super::json_file::load(path);
        index.path = Some(path.to_path_buf());
        index
    }

    /// The key of the snapshot kiln made as image `id`, if it made one.
    pub fn key_of(&self, id: &str) -> Option<&str> {
        self.made.get(id).map(String::as_str)
    }

    /// Whether `id` was found not to be an image kiln made.
    pub fn is_foreign(&self, id: &str) -> bool {
        self.foreign.contains(id)
    }

    /// Records that kiln made (or checked) image `id` as the snapshot with `key`.
    pub fn insert_made(&mut self, id: &str, key: &str) {
        if self.key_of(id) != Some(key) {
            self.made.insert(id.to_string(), key.to_string());
            self.made_at
                .entry(id.to_string())
                .or_insert_with(super::used::unix_now);
            self.foreign.remove(id);
            self.dirty = true;
        }
    }

    /// The images kiln made as the snapshot with `key` (several after a
    /// forced rebuild), so a build finds an untagged older snapshot by
    /// inspecting its id rather than listing every image.
    pub fn ids_of<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.made
            .iter()
            .filter(move |(_, k)| k.as_str() == key)
            .map(|(id, _)| id.as_str())
    }

    /// The step key kiln made image `id` as, if it made it as a step.
    pub fn step_key_of(&self, id: &str) -> Option<&str> {
        self.steps.get(id).map(String::as_str)
    }

    /// Records that kiln made (or checked) image `id` as the step with `key`.
    pub fn insert_step(&mut self, id: &str, key: &str) {
        if self.step_key_of(id) != Some(key) {
            self.steps.insert(id.to_string(), key.to_string());
            self.made_at
                .entry(id.to_string())
                .or_insert_with(super::used::unix_now);
            self.foreign.remove(id);
            self.dirty = true;
        }
    }

    /// The images kiln made as the step with `key`.
    pub fn ids_of_step<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.steps
            .iter()
            .filter(move |(_, k)| k.as_str() == key)
            .map(|(id, _)| id.as_str())
    }

    /// The final images kiln made that record `verify_key` as passed.
    pub fn ids_verified<'a>(&'a self, verify_key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.verified
            .iter()
            .filter(move |(_, k)| k.as_str() == verify_key)
            .map(|(id, _)| id.as_str())
    }

    /// Records that image `id`, which kiln made, records `verify_key` as passed.
    pub fn insert_verified(&mut self, id: &str, verify_key: &str) {
        if self.verified.get(id).map(String::as_str) != Some(verify_key) {
            self.verified.insert(id.to_string(), verify_key.to_string());
            self.dirty = true;
        }
    }

    /// Forgets image `id`: the engine no longer holds it.
    pub fn forget(&mut self, id: &str) {
        self.made_at.remove(id);
        let had = self.made.remove(id).is_some()
            | self.steps.remove(id).is_some()
            | self.foreign.remove(id)
            | self.verified.remove(id).is_some();
        self.dirty |= had;
    }

    /// When kiln first made or checked image `id`.
    pub fn made_at(&self, id: &str) -> Option<u64> {
        self.made_at.get(id).copied()
    }

    /// Every image id the index names as made, with its key.
    pub fn made(&self) -> impl Iterator<Item = (&str, &str)> {
        self.made.iter().map(|(i, k)| (i.as_str(), k.as_str()))
    }

    /// Every image id the index names as a step's, with its step key.
    pub fn steps(&self) -> impl Iterator<Item = (&str, &str)> {
        self.steps.iter().map(|(i, k)| (i.as_str(), k.as_str()))
    }

    /// Records that image `id` is not one kiln made.
    pub fn insert_foreign(&mut self, id: &str) {
        if self.made.contains_key(id) || self.steps.contains_key(id) {
            return;
        }
        self.dirty |= self.foreign.insert(id.to_string());
    }

    /// Forgets images the engine no longer holds (`listed` are those it does).
    pub fn retain(&mut self, listed: &BTreeSet<&str>) {
        let count =
            |i: &MadeIndex| i.made.len() + i.steps.len() + i.foreign.len() + i.verified.len();
        let before = count(self);
        self.made.retain(|id, _| listed.contains(id.as_str()));
        self.steps.retain(|id, _| listed.contains(id.as_str()));
        self.made_at.retain(|id, _| listed.contains(id.as_str()));
        self.foreign.retain(|id| listed.contains(id.as_str()));
        self.verified.retain(|id, _| listed.contains(id.as_str()));
        self.dirty |= count(self) != before;
    }

    /// Writes the index if it changed, atomically (a temp file renamed over it).
    pub fn save(&mut self) -> io::Result<()> {
        let Some(path) = self.path.clone().filter(|_| self.dirty) else {
            return Ok(());
        };
        super::json_file::save(&path, self)?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_survives_a_save_and_forgets_images_no_longer_listed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("made/h.json");
        let mut index = MadeIndex::load(&path);
        index.insert_made("sha256:a", "ka");
        index.insert_made("sha256:b", "kb");
        index.insert_foreign("sha256:f");
        index.insert_foreign("sha256:a");
        index.save().unwrap();
        let mut again = MadeIndex::load(&path);
        assert_eq!(again.key_of("sha256:a"), Some("ka"));
        assert!(again.is_foreign("sha256:f"));
        assert!(!again.is_foreign("sha256:a"), "made wins");
        again.retain(&BTreeSet::from(["sha256:b", "sha256:f"]));
        again.save().unwrap();
        let mut last = MadeIndex::load(&path);
        assert_eq!(last.key_of("sha256:a"), None);
        assert_eq!(last.key_of("sha256:b"), Some("kb"));
        last.insert_made("sha256:c", "kb");
        last.insert_verified("sha256:c", "vk");
        let mut ids: Vec<&str> = last.ids_of("kb").collect();
        ids.sort();
        assert_eq!(ids, ["sha256:b", "sha256:c"]);
        assert_eq!(last.ids_verified("vk").collect::<Vec<_>>(), ["sha256:c"]);
        last.insert_step("sha256:s", "step1");
        last.insert_foreign("sha256:s");
        assert!(
            !last.is_foreign("sha256:s"),
            "a step kiln made is never foreign"
        );
        assert_eq!(last.ids_of_step("step1").collect::<Vec<_>>(), ["sha256:s"]);
        last.save().unwrap();
        let mut last = MadeIndex::load(&path);
        assert_eq!(last.step_key_of("sha256:s"), Some("step1"));
        last.forget("sha256:s");
        assert_eq!(last.ids_of_step("step1").count(), 0);
        last.forget("sha256:c");
        assert_eq!(last.ids_of("kb").collect::<Vec<_>>(), ["sha256:b"]);
        assert_eq!(last.ids_verified("vk").count(), 0);
    }
}
