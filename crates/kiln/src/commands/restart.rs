//! `kiln restart`: stop and start members' containers. Exit 1 when one did
//! not restart.

use std::path::Path;

use kiln_core::instances;

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render;

pub async fn run(path: &Path, members: &[String]) -> Outcome {
    let (habitat, engine) = super::open_members(path).await?;
    let results = instances::restart(&engine, &habitat, members)
        .await
        .map_err(Failure::Instance)?;
    Ok(if render::up::restart(&results) {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    })
}
