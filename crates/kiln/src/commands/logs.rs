//! `kiln logs`: a member's output, each line on the stream it was written to.

use std::path::Path;

use kiln_core::engine::{Engine, Stream};
use kiln_core::instances::{self, InstanceError};

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render::stdout;

pub async fn run(path: &Path, member: &str, follow: bool, tail: Option<usize>) -> Outcome {
    let (habitat, engine) = super::open_members(path).await?;
    let c = instances::container_of(&engine, &habitat, member)
        .await
        .map_err(Failure::Instance)?;
    let mut print = |stream: Stream, line: &str| stdout::stream_line(stream, line);
    engine
        .container_logs(&c.id, follow, tail, &mut print)
        .await
        .map_err(|e| Failure::Instance(InstanceError::Engine(e)))?;
    Ok(ExitStatus::Success)
}
