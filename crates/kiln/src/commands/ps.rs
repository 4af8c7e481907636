//! `kiln ps`: the members of a habitat, and whether each runs the current image.

use std::path::Path;

use kiln_core::instances::{self, InstanceError};

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render;

pub async fn run(path: &Path, json: bool) -> Outcome {
    let (habitat, engine) = super::open(path).await?;
    let name = &habitat.config.name;
    let current = instances::current_image_key(&engine, name)
        .await
        .map_err(|e| Failure::Instance(InstanceError::Engine(e)))?;
    let rows = instances::status(&engine, &habitat, current.as_deref())
        .await
        .map_err(Failure::Instance)?;
    render::ps::ps(&rows, json);
    Ok(ExitStatus::Success)
}
