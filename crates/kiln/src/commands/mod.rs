//! One file per subcommand. Each resolves its settings, calls the library and
//! hands what it returns to `render`; a failure comes back as a [`Failure`],
//! which [`run`] prints, once, and maps to the exit status.

mod build;
mod cache;
mod check;
mod completions;
mod down;
mod exec;
mod interrupt;
mod logs;
mod phases;
mod plan;
mod promote;
mod ps;
mod push;
mod restart;
mod retention;
mod schema;
mod services;
mod start;
mod up;

use std::path::Path;

use kiln_core::config::{self, Habitat};
use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor::BuildError;
use kiln_core::registry::oci::OciRegistry;

use crate::cli::{CacheCommand, Command, InstanceCommand};
use crate::exit::{ExitStatus, Failure};
use crate::render;

/// What a command returns: how it ended, or why it failed.
pub type Outcome = Result<ExitStatus, Failure>;

/// Runs `command`. Those that need no engine run without the async runtime.
pub fn run(command: Command) -> ExitStatus {
    match command {
        Command::Phases
        | Command::Build {
            show_phases: true, ..
        } => finish(phases::run()),
        Command::Schema => finish(schema::run()),
        Command::Check { path, dir } => {
            finish(check::run(&crate::cli::in_dir(dir.as_deref(), &path)))
        }
        Command::Services { path, dir } => {
            finish(services::run(&crate::cli::in_dir(dir.as_deref(), &path)))
        }
        Command::Completions { shell } => finish(completions::run(shell)),
        // A manifest read and write: no engine, no runtime.
        Command::Promote {
            src,
            dst,
            path,
            dir,
        } => finish(promote::run(
            &src,
            &dst,
            &crate::cli::in_dir(dir.as_deref(), &path),
        )),
        command => match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            // `finish` prints while the runtime is up: dropping it waits for
            // blocking tasks (a stdin read), which must not hold the message back.
            Ok(rt) => finish(rt.block_on(run_async(command))),
            Err(e) => finish(Err(Failure::Runtime(e))),
        },
    }
}

async fn run_async(command: Command) -> Outcome {
    match command {
        Command::Build { args, progress, .. } => build::run(&args, progress).await,
        Command::Plan { args, json } => plan::run(&args, json).await,
        Command::Start { args, cmd } => start::run(&args, cmd).await,
        Command::Retention { path, dir, dry_run } => {
            retention::run(&crate::cli::in_dir(dir.as_deref(), &path), dry_run).await
        }
        Command::Push {
            args,
            tags,
            progress,
        } => push::run(&args, &tags, progress).await,
        Command::Instances(c) => run_instances(c).await,
        Command::Cache { command } => match command {
            CacheCommand::Status { args, json } => cache::status(&args, json).await,
            CacheCommand::Prune {
                args,
                level,
                dry_run,
                yes,
            } => cache::prune(&args, level, dry_run, yes).await,
        },
        // Ran in `run`, without the runtime.
        Command::Promote { .. }
        | Command::Phases
        | Command::Schema
        | Command::Check { .. }
        | Command::Services { .. }
        | Command::Completions { .. } => Ok(ExitStatus::Success),
    }
}

async fn run_instances(command: InstanceCommand) -> Outcome {
    match command {
        InstanceCommand::Up {
            args,
            habitat,
            progress,
            remove_orphans,
            wait,
            wait_timeout,
            image,
        } => {
            let opts = kiln_core::instances::UpOptions {
                remove_orphans,
                wait: wait.then_some(wait_timeout),
                ..Default::default()
            };
            up::run(args, habitat, progress, opts, image).await
        }
        InstanceCommand::Down {
            members,
            habitat,
            volumes,
        } => {
            members_not_paths(&members)?;
            down::run(&habitat, &members, volumes).await
        }
        InstanceCommand::Ps { habitat, json } => ps::run(&habitat, json).await,
        InstanceCommand::Logs {
            member,
            habitat,
            follow,
            tail,
        } => {
            members_not_paths([&member])?;
            logs::run(&habitat, &member, follow, tail).await
        }
        InstanceCommand::Exec {
            member,
            habitat,
            cmd,
        } => {
            members_not_paths([&member])?;
            exec::run(&habitat, &member, &cmd).await
        }
        InstanceCommand::Shell { member, habitat } => {
            members_not_paths([&member])?;
            exec::shell(&habitat, &member).await
        }
        InstanceCommand::Restart {
            members,
            habitat,
            all: _,
        } => {
            members_not_paths(&members)?;
            restart::run(&habitat, &members).await
        }
    }
}

/// The one place a failure is printed.
fn finish(outcome: Outcome) -> ExitStatus {
    outcome.unwrap_or_else(|failure| {
        render::error::print(&failure);
        ExitStatus::from(&failure)
    })
}

/// Member names are `[a-z0-9][a-z0-9_.-]*`: an argument with a `/`, or one
/// that names a `kiln.yaml`, is a habitat path the user meant (or mistyped).
fn looks_like_path(arg: &str) -> bool {
    arg.contains('/')
        || arg.ends_with(".yaml")
        || arg.ends_with(".yml")
        || arg == "."
        || arg == ".."
}

/// Refuses member arguments that are paths, instead of reporting an unknown
/// member of the habitat in `.`: a path that does not exist gets the loader's
/// own "does not exist" error, one that exists a hint to pass it as `-C`.
fn members_not_paths<'a>(members: impl IntoIterator<Item = &'a String>) -> Result<(), Failure> {
    match members.into_iter().find(|m| looks_like_path(m)) {
        Some(arg) if !Path::new(arg).exists() => Err(load(Path::new(arg))
            .err()
            .unwrap_or(Failure::NotAMember { arg: arg.clone() })),
        Some(arg) => Err(Failure::NotAMember { arg: arg.clone() }),
        None => Ok(()),
    }
}

/// Loads the habitat at `path` (a directory or its kiln.yaml).
fn load(path: &Path) -> Result<Habitat, Failure> {
    config::load(path).map_err(Failure::Config)
}

/// Loads the habitat for a command that builds nothing (the instance
/// commands but `up`, `retention`, `promote`): a deploy machine (SPEC §10)
/// holds the `kiln.yaml`, not the build's inputs.
fn load_members(path: &Path) -> Result<Habitat, Failure> {
    config::load_with(path, config::Inputs::NotRequired).map_err(Failure::Config)
}

/// The habitat's registry: a client for its host (Docker's credentials),
/// the repository path inside it, and the whole `HOST/PATH` for messages.
struct Remote {
    registry: OciRegistry,
    path: String,
    repository: String,
}

/// The registry of `habitat`'s `registry:` section; `command` needs one.
fn remote_of(habitat: &Habitat, command: &'static str) -> Result<Remote, Failure> {
    let Some(config) = &habitat.config.registry else {
        return Err(Failure::NoRegistry {
            file: habitat.file.clone(),
            command,
        });
    };
    let (host, path) = config.host_and_path();
    Ok(Remote {
        registry: OciRegistry::new(host),
        path: path.to_string(),
        repository: config.repository.clone(),
    })
}

/// Loads the habitat, then connects to the engine.
async fn open(path: &Path) -> Result<(Habitat, DockerEngine), Failure> {
    open_with(path, config::Inputs::Required).await
}

/// [`open`] for the instance commands other than `up`, which build
/// nothing: on a deploy machine (SPEC §10) the build's inputs are not there.
async fn open_members(path: &Path) -> Result<(Habitat, DockerEngine), Failure> {
    open_with(path, config::Inputs::NotRequired).await
}

/// [`open`], checking the build's inputs as `inputs` says.
async fn open_with(
    path: &Path,
    inputs: config::Inputs,
) -> Result<(Habitat, DockerEngine), Failure> {
    let habitat = config::load_with(path, inputs).map_err(Failure::Config)?;
    let engine = DockerEngine::connect()
        .await
        .map_err(|e| Failure::Build(BuildError::Engine(e)))?;
    Ok((habitat, engine))
}
