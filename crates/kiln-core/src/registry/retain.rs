//! Carrying retention out (SPEC §10): lists the repository's tags with what
//! each manifest's config says (its creation time, kiln's key), finds the
//! manifests local instances run, and deletes what the pure
//! [`super::retention::decide`] says to. The caller prints.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::retention::{self, Decision, Listed, Rule};
use super::{Registry, RegistryError, RegistryResult};
use crate::engine::Engine;
use crate::engine::EngineResult;
use crate::image::labels::{LABEL_IMAGE_KEY, LABEL_INSTANCE, LABEL_KEY};

/// The label whose time `keep: N` orders tags by.
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";

/// How many manifests and configs are read at once.
const PARALLEL: usize = 8;

/// A tag as listed, with its config's kiln key (the final key of a pushed
/// image, the phase key of a `cache-KEY` snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub listed: Listed,
    pub key: Option<String>,
}

/// What one tag's manifest and config say.
fn inspect_tag(r: &dyn Registry, repo: &str, tag: &str) -> RegistryResult<Option<Inspected>> {
    // Deleted between the listing and here: nothing to decide.
    let Some(manifest) = r.manifest_get(repo, tag)? else {
        return Ok(None);
    };
    let config = serde_json::from_slice::<Value>(&manifest.bytes)
        .ok()
        .and_then(|m| m.pointer("/config/digest")?.as_str().map(str::to_string));
    let (created, key) = match config {
        Some(digest) => {
            let mut bytes = Vec::new();
            match r.blob_get(repo, &digest, &mut bytes) {
                Ok(_) => labels_of(&bytes),
                // A manifest whose config is gone is decided as unknown (oldest).
                Err(RegistryError::NotFound { .. }) => (None, None),
                Err(e) => return Err(e),
            }
        }
        None => (None, None),
    };
    Ok(Some(Inspected {
        listed: Listed {
            tag: tag.to_string(),
            digest: manifest.digest,
            created,
        },
        key,
    }))
}

/// `org.opencontainers.image.created` (unix seconds) and `dev.kiln.key` of
/// an image config blob.
fn labels_of(config: &[u8]) -> (Option<i64>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(config) else {
        return (None, None);
    };
    let label = |name: &str| {
        v.pointer("/config/Labels")
            .and_then(|l| l.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let created = label(LABEL_CREATED)
        .and_then(|t| crate::instances::status::unix_seconds(&t))
        .and_then(|s| i64::try_from(s).ok());
    (created, label(LABEL_KEY))
}

/// Every tag of `repo` with its manifest digest, creation time and key, in
/// tag order; [`PARALLEL`] requests at a time.
pub fn list(r: &dyn Registry, repo: &str) -> RegistryResult<Vec<Inspected>> {
    let tags = r.tags(repo)?;
    let mut out = Vec::with_capacity(tags.len());
    for batch in tags.chunks(PARALLEL) {
        let results: Vec<RegistryResult<Option<Inspected>>> = std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|t| s.spawn(move || inspect_tag(r, repo, t)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a tag inspection panicked"))
                .collect()
        });
        for result in results {
            out.extend(result?);
        }
    }
    Ok(out)
}

/// What local instances of a habitat run: the final keys their containers
/// record, and the registry digests the engine knows their images by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Running {
    pub keys: BTreeSet<String>,
    /// `sha256:…` of `repository@sha256:…` entries of the images' repo digests.
    pub digests: BTreeSet<String>,
}

impl Running {
    /// The manifest digests of `listed` that a local instance runs: by
    /// digest, or by the final key its config carries (a pushed image's
    /// config adds labels, so its digest is not the local image's id).
    pub fn digests_in(&self, listed: &[Inspected]) -> BTreeSet<String> {
        listed
            .iter()
            .filter(|i| {
                self.digests.contains(&i.listed.digest)
                    || i.key.as_ref().is_some_and(|k| self.keys.contains(k))
            })
            .map(|i| i.listed.digest.clone())
            .collect()
    }
}

/// The instances of `habitat` on this engine (running or stopped: a stopped
/// member is started again from its image) and what they run.
pub async fn running<E: Engine>(
    engine: &E,
    habitat: &str,
    repository: &str,
) -> EngineResult<Running> {
    let mut out = Running::default();
    let containers = engine
        .list_containers(crate::image::labels::LABEL_HABITAT, habitat)
        .await?;
    let mut images = BTreeSet::new();
    for c in containers
        .iter()
        .filter(|c| c.labels.contains_key(LABEL_INSTANCE))
    {
        if let Some(key) = c.labels.get(LABEL_IMAGE_KEY) {
            out.keys.insert(key.clone());
        }
        images.insert(c.image.clone());
    }
    let prefix = format!("{repository}@");
    for image in images {
        if let Some(info) = engine.image_inspect(&image).await? {
            out.digests.extend(
                info.repo_digests
                    .iter()
                    .filter_map(|d| d.strip_prefix(&prefix))
                    .map(str::to_string),
            );
        }
    }
    Ok(out)
}

/// Decides every listed tag (see [`retention::decide`]).
pub fn decide(rules: &[Rule], listed: &[Inspected], now: i64, running: &Running) -> Vec<Decision> {
    let plain: Vec<Listed> = listed.iter().map(|i| i.listed.clone()).collect();
    retention::decide(rules, &plain, now, &running.digests_in(listed))
}

/// Deletes the manifests `decisions` delete, in digest order; returns them.
/// A manifest already gone is not an error. Stops at the first refusal
/// (deletes disabled: nothing was deleted).
pub fn apply(r: &dyn Registry, repo: &str, decisions: &[Decision]) -> RegistryResult<Vec<String>> {
    let mut deleted = Vec::new();
    for digest in retention::deletions(decisions) {
        match r.manifest_delete(repo, &digest) {
            Ok(()) | Err(RegistryError::NotFound { .. }) => deleted.push(digest),
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// The tags of `decisions` by digest, for a report that names each
/// deleted manifest by its tags.
pub fn tags_by_digest(decisions: &[Decision]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in decisions {
        out.entry(d.digest.clone()).or_default().push(d.tag.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_gives_its_created_label_and_key() {
        let config = serde_json::json!({
            "created": "1999-01-01T00:00:00Z",
            "config": { "Labels": { LABEL_CREATED: "1970-01-02T00:00:00Z", LABEL_KEY: "k1" } }
        });
        let bytes = serde_json::to_vec(&config).unwrap();
        assert_eq!(labels_of(&bytes), (Some(86_400), Some("k1".to_string())));
        // The image's own `created` is a snapshot's base's time: not used.
        let bare = serde_json::json!({ "created": "1999-01-01T00:00:00Z", "config": {} });
        assert_eq!(labels_of(&serde_json::to_vec(&bare).unwrap()), (None, None));
        assert_eq!(labels_of(b"not json"), (None, None));
    }
}
