//! `PushedRecord`: what pushes of one habitat learned and must keep, by
//! local image id: its config's exact bytes (so pushing the same image again
//! asks the engine for nothing but an inspect) and the creation time its
//! pushed config says (so a re-push makes the same config, hence the same
//! manifest digest).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PushedRecord {
    /// Image id → its config (JSON text, the bytes whose digest is the id).
    #[serde(default)]
    configs: BTreeMap<String, String>,
    /// Image id → `org.opencontainers.image.created` of its first push.
    #[serde(default)]
    created: BTreeMap<String, String>,
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

    /// The creation time recorded for `id`, recording `now` first if none.
    pub fn created(&mut self, id: &str, now: impl FnOnce() -> String) -> String {
        self.created
            .entry(id.to_string())
            .or_insert_with(now)
            .clone()
    }

    pub fn save(&self) -> io::Result<()> {
        match &self.path {
            Some(p) => super::json_file::save(p, self),
            None => Ok(()),
        }
    }
}
