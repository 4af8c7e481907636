//! Which listed images are snapshots: only images kiln made. An image another
//! tool makes from a snapshot (`docker commit`, a Dockerfile `FROM` one)
//! carries every `dev.kiln.*` label, so labels prove nothing. What kiln made
//! is known from the host's [`MadeIndex`] (the ids its builds made or checked
//! before), or proved once by rebuilding the image's config from its
//! inspection ([`archive::is_kiln_image`]); image ids are content addresses,
//! so either answer holds for good and a no-op build inspects nothing.

use futures_util::future::join_all;

use crate::cache::{CacheDir, MadeIndex};
use crate::engine::Engine;
use crate::image::archive;
use crate::image::labels::{LABEL_HABITAT, LABEL_KEY, LABEL_PHASE};
use crate::phase::Phase;
use crate::plan::Snapshots;

use super::context::snapshot_comment;
use super::error::BuildError;

/// The snapshots the engine holds for `habitat`: one listing, sorted into
/// images kiln made and foreign ones. Returns the index with what this
/// listing learnt, for a build to save.
pub(super) async fn list_snapshots<E: Engine>(
    engine: &E,
    habitat: &str,
    cache: &CacheDir,
) -> Result<(Snapshots, MadeIndex), BuildError> {
    let images = engine.list_images(&[(LABEL_HABITAT, habitat)]).await?;
    let mut index = MadeIndex::load(&cache.made(habitat));
    let listed: std::collections::BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
    index.retain(&listed);
    let (mut made, mut foreign, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    for img in &images {
        // Only what names a phase and a key can pose as a snapshot; anything
        // else with the habitat's label (a verify mark included) is ignored.
        let (Some(key), Some(phase)) = (
            img.labels.get(LABEL_KEY),
            img.labels
                .get(LABEL_PHASE)
                .and_then(|p| p.parse::<Phase>().ok()),
        ) else {
            continue;
        };
        if index.key_of(&img.id) == Some(key.as_str()) {
            made.push(img.clone());
        } else if index.is_foreign(&img.id) {
            foreign.push(img.clone());
        } else {
            unknown.push((img, key, phase));
        }
    }
    let checked = join_all(unknown.iter().map(|(img, _, phase)| async move {
        let info = engine.image_inspect(&img.id).await?;
        Ok::<_, BuildError>(info.map(|i| archive::is_kiln_image(&i, &snapshot_comment(*phase))))
    }))
    .await;
    for ((img, key, _), ours) in unknown.into_iter().zip(checked) {
        match ours? {
            Some(true) => {
                index.insert_made(&img.id, key);
                made.push(img.clone());
            }
            Some(false) => {
                index.insert_foreign(&img.id);
                foreign.push(img.clone());
            }
            // Removed since the listing: neither.
            None => {}
        }
    }
    Ok((Snapshots::from_listing(habitat, &made, &foreign), index))
}
