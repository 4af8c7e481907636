//! `kiln ps`: the members of a habitat, and whether each runs the current image.

use std::path::Path;

use kiln_core::executor::{self, BuildOptions};
use kiln_core::instances;

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render;

pub async fn run(path: &Path, json: bool) -> Outcome {
    let (habitat, engine) = super::open_members(path).await?;
    // What a build would make now, so an edit shows as stale before any
    // build; when that cannot be told, only the members' own config is compared.
    let planned = executor::planned_final_key(&engine, &habitat, &BuildOptions::default()).await;
    let current = match &planned {
        Ok(key) => Some(key.as_str()),
        Err(e) => {
            render::ps::cannot_plan(e);
            None
        }
    };
    let rows = instances::status(&engine, &habitat, current)
        .await
        .map_err(Failure::Instance)?;
    render::ps::ps(&rows, json);
    Ok(ExitStatus::Success)
}
