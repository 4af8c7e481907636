//! `LastUse`: when each snapshot of one habitat was last part of a build,
//! kept on the host (SPEC §11: kiln records when a snapshot was last used).
//! A build writes it once, after it ran; it asks the engine nothing, so a
//! no-op build costs one small file write and no engine call more.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Snapshot key → seconds since the Unix epoch of its last use.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LastUse {
    used: BTreeMap<String, u64>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

impl LastUse {
    /// Reads the record at `path`; an unreadable or corrupt one is empty
    /// (its snapshots read as never used, the oldest a prune can take).
    pub fn load(path: &Path) -> LastUse {
        let mut used: LastUse = super::json_file::load(path);
        used.path = Some(path.to_path_buf());
        used
    }

    /// When the snapshot with `key` was last used, if ever recorded.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.used.get(key).copied()
    }

    /// Records that the snapshots with `keys` were used at `now`.
    pub fn record<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>, now: u64) {
        for key in keys {
            let at = self.used.entry(key.to_string()).or_default();
            *at = (*at).max(now);
        }
    }

    /// Forgets the keys `keep` rejects (snapshots removed by a prune).
    pub fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.used.retain(|k, _| keep(k));
    }

    /// Writes the record atomically (a temp file renamed over it).
    pub fn save(&self) -> io::Result<()> {
        match &self.path {
            Some(path) => super::json_file::save(path, self),
            None => Ok(()),
        }
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_use_survives_a_save_keeps_the_latest_time_and_forgets_pruned_keys() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("used/h.json");
        let mut used = LastUse::load(&path);
        used.record(["ka", "kb"], 100);
        used.record(["ka"], 50);
        used.save().unwrap();
        let mut again = LastUse::load(&path);
        assert_eq!(again.get("ka"), Some(100), "an older time never wins");
        assert_eq!(again.get("kb"), Some(100));
        assert_eq!(again.get("kc"), None);
        again.record(["kb"], 200);
        again.retain(|k| k != "ka");
        again.save().unwrap();
        let last = LastUse::load(&path);
        assert_eq!((last.get("ka"), last.get("kb")), (None, Some(200)));
    }
}
