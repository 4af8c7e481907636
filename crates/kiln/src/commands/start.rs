//! `kiln start`: build, then run a container of the final image with the
//! build's volumes, attached to the terminal (or streaming to a pipe); exits
//! with the container's code.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use kiln_core::config::runtime;
use kiln_core::engine::{ContainerSpec, Engine, Mount, Stream};
use kiln_core::executor::BuildError;
use kiln_core::image::labels::LABEL_HABITAT;

use super::Outcome;
use crate::cli::BuildArgs;
use crate::exit::{ExitStatus, Failure};
use crate::render::progress::Progress;
use crate::render::stdout;

pub async fn run(args: &BuildArgs, cmd: Vec<String>) -> Outcome {
    let (habitat, engine) = super::open(&args.habitat()).await?;
    let built = super::build::built(&engine, &habitat, &args.options(), Progress::Auto).await?;
    let mounts = habitat
        .config
        .build
        .files
        .iter()
        .flat_map(|f| &f.volumes)
        .map(|v| Mount {
            source: runtime::volume_source(&habitat.dir, &v.source),
            target: v.dest.clone(),
            readonly: v.readonly,
        })
        .collect();
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_HABITAT.to_string(), habitat.config.name.clone());
    let spec = ContainerSpec {
        image: built.image.clone(),
        cmd: (!cmd.is_empty()).then_some(cmd),
        labels,
        mounts,
        // A terminal gets a tty; a pipe or /dev/null gets the output streamed
        // (a tty container attached to a non-terminal shows nothing).
        interactive: std::io::stdin().is_terminal(),
        ..Default::default()
    };
    let engine_failure = |e| Failure::Build(BuildError::Engine(e));
    let id = engine
        .create_container(&spec)
        .await
        .map_err(engine_failure)?;
    let code = if spec.interactive {
        engine.run_interactive(&id).await
    } else {
        let mut on_line = |stream: Stream, line: &str| stdout::stream_line(stream, line);
        engine.run_container(&id, &mut on_line).await
    };
    let _ = engine.remove_container(&id).await;
    code.map(ExitStatus::Child).map_err(engine_failure)
}
