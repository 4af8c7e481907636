//! `kiln down`: stop and remove members; their persisted volumes too with
//! `--volumes`.

use std::path::Path;

use kiln_core::instances;

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render;

pub async fn run(path: &Path, members: &[String], volumes: bool) -> Outcome {
    let (habitat, engine) = super::open_members(path).await?;
    let report = instances::down(&engine, &habitat, members, volumes)
        .await
        .map_err(Failure::Instance)?;
    render::up::down(&report);
    Ok(ExitStatus::Success)
}
