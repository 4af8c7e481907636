//! `kiln build`: build the habitat and print its final image (with
//! `--progress json` the events on stdout are the data, so no image line).

use kiln_core::config::Habitat;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor::{self, BuildOptions, Built};
use kiln_core::report::Reporter;

use super::Outcome;
use super::interrupt::interruptible;
use crate::cli::BuildArgs;
use crate::exit::{ExitStatus, Failure};
use crate::render::progress::Progress;
use crate::render::stdout::out;

pub async fn run(args: &BuildArgs, progress: Progress) -> Outcome {
    let (habitat, engine) = super::open(&args.habitat()).await?;
    let built = built(&engine, &habitat, &args.options(), progress).await?;
    if progress.resolve() != Progress::Json {
        out!("{}", built.image);
    }
    Ok(ExitStatus::Success)
}

/// Builds with `progress` rendering the events, until done or interrupted;
/// `build`, `start` and `up` all build this way.
pub async fn built(
    engine: &DockerEngine,
    habitat: &Habitat,
    opts: &BuildOptions,
    progress: Progress,
) -> Result<Built, Failure> {
    let mut reporter = progress.reporter();
    built_reporting(engine, habitat, opts, reporter.as_mut()).await
}

/// [`built`] into a reporter the caller keeps (`push` reports on after it).
pub async fn built_reporting(
    engine: &DockerEngine,
    habitat: &Habitat,
    opts: &BuildOptions,
    reporter: &mut dyn Reporter,
) -> Result<Built, Failure> {
    let fut = executor::build(engine, habitat, opts, reporter);
    interruptible(engine, fut).await?.map_err(Failure::Build)
}
