//! `kiln retention [PATH] [--dry-run]`: decide every tag of the habitat's
//! repository by `registry.retention`, print each decision, and (unless a
//! dry run) delete the manifests the decisions expire.

use std::path::Path;

use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor::BuildError;
use kiln_core::registry::retain;

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render;

pub async fn run(path: &Path, dry_run: bool) -> Outcome {
    // Registry work only: the build's inputs need not be here.
    let habitat = super::load_members(path)?;
    let remote = super::remote_of(&habitat, "retention")?;
    let rules = habitat
        .config
        .registry
        .as_ref()
        .map(|r| r.retention_rules())
        .unwrap_or_default();
    // What local instances run is never deleted: find it before deciding.
    let engine = DockerEngine::connect()
        .await
        .map_err(|e| Failure::Build(BuildError::Engine(e)))?;
    let running = retain::running(&engine, &habitat.config.name, &remote.repository)
        .await
        .map_err(|e| Failure::Build(BuildError::Engine(e)))?;
    // The registry client blocks; this worker may.
    let listed = tokio::task::block_in_place(|| retain::list(&remote.registry, &remote.path))
        .map_err(Failure::Registry)?;
    let now = now();
    let decisions = retain::decide(&rules, &listed, now, &running);
    render::registry::undated(listed.iter().filter(|i| i.listed.created.is_none()).count());
    render::registry::retention(&decisions, &rules, dry_run);
    if dry_run {
        return Ok(ExitStatus::Success);
    }
    let deleted =
        tokio::task::block_in_place(|| retain::apply(&remote.registry, &remote.path, &decisions))
            .map_err(Failure::Registry)?;
    render::registry::deleted(&deleted, &decisions, &remote.repository);
    Ok(ExitStatus::Success)
}

/// Unix seconds now.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
