//! `PushedRecord`: what pushes of one habitat learned and must keep: by
//! local image id, its config's exact bytes (so pushing the same image again
//! asks the engine for nothing but an inspect) and the creation time a
//! snapshot's manifest says; by final key, what the pushed final config
//! says of its build ([`FinalBuild`]: SPEC §10's `.created`, when the final
//! image was built, and `dev.kiln.duration-ms`), so a re-push makes the
//! same config, hence the same manifest digest, even when the final image
//! was removed and made again (whose own duration label differs).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// What the pushed config of a final image says of its build: the same on
/// every push of its final key from here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FinalBuild {
    /// `org.opencontainers.image.created` (RFC 3339).
    pub created: String,
    /// `dev.kiln.duration-ms` of the image first pushed, when it had one: a
    /// final image made again for the same key took another time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<String>,
}

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
    /// Final key → what its pushed config says of its build.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    built: BTreeMap<String, FinalBuild>,
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

    /// What the final image of `key` (local image `id`) says of its build
    /// when pushed: what the first push of `key` recorded, the same on every
    /// later push of that key, whatever the image's id now; else `built`
    /// (when the image was built as kiln recorded it, and its duration),
    /// recorded now, its date the one a push of image `id` recorded before
    /// final keys were kept, if one did.
    pub fn final_build(
        &mut self,
        key: &str,
        id: &str,
        built: impl FnOnce() -> FinalBuild,
    ) -> FinalBuild {
        if let Some(b) = self.built.get(key) {
            return b.clone();
        }
        let mut b = built();
        if let Some(t) = self.created.get(id) {
            b.created = t.clone();
        }
        self.built.insert(key.to_string(), b.clone());
        b
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

    fn b(created: &str, duration: &str) -> FinalBuild {
        FinalBuild {
            created: created.to_string(),
            duration_ms: Some(duration.to_string()),
        }
    }

    #[test]
    fn a_final_key_keeps_its_build_across_image_ids_and_saves() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("pushed/web.json");
        let mut r = PushedRecord::load(&path);
        assert_eq!(
            r.final_build("k1", "sha256:a", || b("t1", "7")),
            b("t1", "7")
        );
        // The same key made again (a new id, another duration) keeps it.
        assert_eq!(
            r.final_build("k1", "sha256:b", || b("t2", "9")),
            b("t1", "7")
        );
        // A changed config is a new key: its own build.
        assert_eq!(
            r.final_build("k2", "sha256:c", || b("t3", "5")),
            b("t3", "5")
        );
        r.save().unwrap();
        let mut again = PushedRecord::load(&path);
        assert_eq!(
            again.final_build("k1", "sha256:z", || b("x", "0")),
            b("t1", "7")
        );
        assert_eq!(
            again.final_build("k2", "sha256:z", || b("x", "0")),
            b("t3", "5")
        );
    }

    #[test]
    fn a_record_from_before_final_keys_keeps_the_date_its_image_was_pushed_with() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("web.json");
        std::fs::write(
            &path,
            r#"{"configs":{},"created":{"sha256:a":"2026-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        let mut r = PushedRecord::load(&path);
        let now = || b("2026-02-02T00:00:00Z", "3");
        assert_eq!(
            r.final_build("k", "sha256:a", now),
            b("2026-01-01T00:00:00Z", "3")
        );
        assert_eq!(r.final_build("k2", "sha256:b", now), now());
    }
}
