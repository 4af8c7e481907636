//! `PushedRecord`: what pushes of one habitat learned and must keep: by
//! local image id, its config's exact bytes (so pushing the same image again
//! asks the engine for nothing but an inspect) and the creation time a
//! snapshot's manifest says; by final key, the creation time the pushed
//! final config says (SPEC §10: when the final image was built), so a
//! re-push makes the same config, hence the same manifest digest, even when
//! the final image was removed and made again from the cache.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PushedRecord {
    /// Image id → its config (JSON text, the bytes whose digest is the id).
    #[serde(default)]
    configs: BTreeMap<String, String>,
    /// Image id → `org.opencontainers.image.created` of its first push
    /// (a snapshot's manifest annotation; and a final image's config label
    /// as records written before `built` said it).
    #[serde(default)]
    created: BTreeMap<String, String>,
    /// Final key → `org.opencontainers.image.created` its pushed config says.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    built: BTreeMap<String, String>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

impl PushedRecord {
    /// The record at `path`; unreadable or corrupt reads as empty (the next
    /// push reads the config from the engine again).
    pub fn load(path: &Path) -> PushedRecord {
        let mut r: PushedRecord = super::json_file::load(path);
        r.path = Some(path.to_path_buf());
        r
    }

    /// Raw configs by image id, as `registry::push` takes them.
    pub fn configs(&self) -> BTreeMap<String, Vec<u8>> {
        self.configs
            .iter()
            .map(|(id, c)| (id.clone(), c.as_bytes().to_vec()))
            .collect()
    }

    /// Keeps the configs a push learned (those that are text).
    pub fn set_configs(&mut self, configs: &BTreeMap<String, Vec<u8>>) {
        for (id, bytes) in configs {
            if let Ok(text) = std::str::from_utf8(bytes) {
                self.configs.insert(id.clone(), text.to_string());
            }
        }
    }

    /// The `org.opencontainers.image.created` the final image of `key`
    /// (local image `id`) says when pushed: what the first push of `key`
    /// recorded, the same on every later push of that key, whatever the
    /// image's id now; else what a push of image `id` recorded before final
    /// keys were kept; else `built`, when the image was built as kiln
    /// recorded it, recorded now.
    pub fn final_created(&mut self, key: &str, id: &str, built: impl FnOnce() -> String) -> String {
        if let Some(t) = self.built.get(key) {
            return t.clone();
        }
        let t = self.created.get(id).cloned().unwrap_or_else(built);
        self.built.insert(key.to_string(), t.clone());
        t
    }

    /// The recorded creation times by image id.
    pub fn dates(&self) -> BTreeMap<String, String> {
        self.created.clone()
    }

    /// Keeps creation times a push took (those not recorded yet).
    pub fn set_dates(&mut self, dates: &BTreeMap<String, String>) {
        for (id, t) in dates {
            self.created.entry(id.clone()).or_insert_with(|| t.clone());
        }
    }

    pub fn save(&self) -> io::Result<()> {
        match &self.path {
            Some(p) => super::json_file::save(p, self),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_final_key_keeps_its_creation_time_across_image_ids_and_saves() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pushed/web.json");
        let mut r = PushedRecord::load(&path);
        let t = |s: &'static str| move || s.to_string();
        assert_eq!(r.final_created("k1", "sha256:a", t("built-1")), "built-1");
        // The same key made again (a new id) keeps it; the build time asked
        // for is not taken.
        assert_eq!(r.final_created("k1", "sha256:b", t("built-2")), "built-1");
        // A changed config is a new key: its own build time.
        assert_eq!(r.final_created("k2", "sha256:c", t("built-3")), "built-3");
        r.save().unwrap();
        let mut again = PushedRecord::load(&path);
        assert_eq!(again.final_created("k1", "sha256:z", t("x")), "built-1");
        assert_eq!(again.final_created("k2", "sha256:z", t("x")), "built-3");
    }

    #[test]
    fn a_record_from_before_final_keys_keeps_the_time_its_image_was_pushed_with() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("web.json");
        std::fs::write(
            &path,
            r#"{"configs":{},"created":{"sha256:a":"2026-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        let mut r = PushedRecord::load(&path);
        let built = || "2026-02-02T00:00:00Z".to_string();
        assert_eq!(
            r.final_created("k", "sha256:a", built),
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            r.final_created("k2", "sha256:b", built),
            "2026-02-02T00:00:00Z"
        );
    }
}
