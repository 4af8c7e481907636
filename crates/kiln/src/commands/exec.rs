//! `kiln exec` and `kiln shell`: a command (or a login shell) in a running
//! member's container, attached to the terminal; exits with its code.

use std::path::Path;

use kiln_core::engine::Engine;
use kiln_core::instances::{self, InstanceError};

use super::Outcome;
use crate::exit::{ExitStatus, Failure};

pub async fn run(path: &Path, member: &str, cmd: &[String]) -> Outcome {
    let (habitat, engine) = super::open_members(path).await?;
    let c = instances::container_of(&engine, &habitat, member)
        .await
        .map_err(Failure::Instance)?;
    if c.state != "running" {
        return Err(Failure::Instance(InstanceError::NotRunning {
            habitat: habitat.config.name.clone(),
            member: member.to_string(),
            state: c.state,
        }));
    }
    engine
        .exec_interactive(&c.id, cmd)
        .await
        .map(ExitStatus::Child)
        .map_err(|e| Failure::Instance(InstanceError::Engine(e)))
}

/// bash when the image has it, else sh; a login shell either way.
pub async fn shell(path: &Path, member: &str) -> Outcome {
    let cmd = [
        "/bin/sh",
        "-c",
        "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi",
    ]
    .map(String::from);
    run(path, member, &cmd).await
}
