//! `kiln up`: build if needed, then make the running members match
//! `instances:`. Exit 1 when a member failed to start.

use std::path::{Path, PathBuf};

use kiln_core::executor::BuildOptions;
use kiln_core::instances::{self, UpOptions};

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render::{self, progress::Progress};

pub async fn run(
    args: Vec<String>,
    habitat: Option<PathBuf>,
    progress: Progress,
    opts: UpOptions,
) -> Outcome {
    let (path, members) = split_up_args(args, habitat);
    super::members_not_paths(&members)?;
    let (habitat, engine) = super::open(&path).await?;
    // Unknown members and taken host ports are found before anything is built.
    let known = instances::known_members(&habitat);
    instances::member::selection(&known, &members, &habitat.config.name)
        .map_err(Failure::Instance)?;
    instances::check_ports(&engine, &habitat, &members, opts.remove_orphans)
        .await
        .map_err(Failure::Instance)?;
    let built = super::build::built(&engine, &habitat, &BuildOptions::default(), progress).await?;
    let opts = UpOptions { members, ..opts };
    let key = built.final_key.as_str();
    let report = instances::up(&engine, &habitat, &built.image, key, &opts)
        .await
        .map_err(Failure::Instance)?;
    render::up::up(&report, &built.image);
    Ok(if report.failed() {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    })
}

/// `[PATH] MEMBER...`: the first word is the habitat when it names an existing path.
fn split_up_args(args: Vec<String>, habitat: Option<PathBuf>) -> (PathBuf, Vec<String>) {
    if let Some(h) = habitat {
        return (h, args);
    }
    match args.split_first() {
        Some((first, rest)) if Path::new(first).exists() => (PathBuf::from(first), rest.to_vec()),
        _ => (PathBuf::from("."), args),
    }
}
