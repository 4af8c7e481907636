//! `kiln plan`: what `build` would do, phase by phase, and why; runs nothing.

use kiln_core::executor;

use super::Outcome;
use crate::cli::BuildArgs;
use crate::exit::{ExitStatus, Failure};
use crate::render;

pub async fn run(args: &BuildArgs, json: bool) -> Outcome {
    let (habitat, engine) = super::open(&args.habitat()).await?;
    let (plan, _, _) = executor::plan(&engine, &habitat, &args.options())
        .await
        .map_err(Failure::Build)?;
    render::plan::plan(&habitat.config.name, &plan, json);
    Ok(ExitStatus::Success)
}
