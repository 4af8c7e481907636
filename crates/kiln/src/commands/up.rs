//! `kiln up`: build if needed (or, with `--image REF`, take a pushed image
//! instead), then make the running members match `instances:`. Exit 1 when
//! a member failed to start.

use std::path::{Path, PathBuf};

use kiln_core::config;
use kiln_core::executor::BuildOptions;
use kiln_core::instances::{self, UpOptions};

use super::Outcome;
use crate::exit::{ExitStatus, Failure};
use crate::render::stdout::err;
use crate::render::{self, progress::Progress};

pub async fn run(
    args: Vec<String>,
    habitat: Option<PathBuf>,
    progress: Progress,
    opts: UpOptions,
    image: Option<String>,
) -> Outcome {
    let (path, members) = split_up_args(args, habitat);
    super::members_not_paths(&members)?;
    // With `--image` nothing is built: a deploy machine holds the
    // `kiln.yaml` alone, so the build's inputs need not be there.
    let inputs = match image {
        Some(_) => config::Inputs::NotRequired,
        None => config::Inputs::Required,
    };
    let (habitat, engine) = super::open_with(&path, inputs).await?;
    // Unknown members and taken host ports are found before anything is built.
    let known = instances::known_members(&habitat);
    instances::member::selection(&known, &members, &habitat.config.name)
        .map_err(Failure::Instance)?;
    instances::check_ports(&engine, &habitat, &members, opts.remove_orphans)
        .await
        .map_err(Failure::Instance)?;
    let (image, key) = match image {
        Some(image) => {
            let repository = habitat
                .config
                .registry
                .as_ref()
                .map(|r| r.repository.as_str());
            let reference = instances::image::reference(&image, repository);
            let pushed = instances::image::ensure(&engine, &habitat.config.name, &reference)
                .await
                .map_err(Failure::Image)?;
            if pushed.pulled {
                err!("pulled `{reference}`");
            }
            (pushed.reference, pushed.final_key)
        }
        None => {
            let built =
                super::build::built(&engine, &habitat, &BuildOptions::default(), progress).await?;
            (built.image, built.final_key.to_string())
        }
    };
    let opts = UpOptions { members, ..opts };
    let report = instances::up(&engine, &habitat, &image, &key, &opts)
        .await
        .map_err(Failure::Instance)?;
    render::up::up(&report, &image);
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
