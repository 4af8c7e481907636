//! The `kiln` command: parses arguments, calls the library, renders its
//! events, and maps outcomes to exit codes (SPEC §7). Each subcommand is a
//! short function; the work is in the `kiln` library.

// Output goes through `render::stdout`, which a closed pipe cannot panic.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod instances;
mod render;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use kiln_core::Phase;
use kiln_core::config::{self, Habitat};
use kiln_core::engine::docker::DockerEngine;
use kiln_core::engine::{ContainerSpec, Engine, Mount};
use kiln_core::executor::{self, BuildError};
use kiln_core::image::labels::LABEL_HABITAT;
use kiln_core::plan::Action;

use cli::{BuildArgs, Cli, Command};
use render::progress::Progress;
use render::stdout::{self as stdio, err, out};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Phases => phases(),
        Command::Build {
            show_phases: true, ..
        } => phases(),
        Command::Schema => schema(),
        Command::Check { path } => check(&path),
        command => match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run(command)),
            Err(e) => {
                err!("error: cannot start the async runtime: {e}");
                1
            }
        },
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

async fn run(command: Command) -> i32 {
    match command {
        Command::Build { args, progress, .. } => build_cmd(&args, progress).await,
        Command::Plan { args, json } => plan_cmd(&args, json).await,
        Command::Start { args, cmd } => start_cmd(&args, cmd).await,
        Command::Instances(c) => instances::run(c).await,
        Command::Phases | Command::Schema | Command::Check { .. } => 0,
    }
}

fn phases() -> i32 {
    for p in Phase::ALL {
        out!("{:>2}  {:<8} {}", p.id(), p.name(), p.description());
    }
    0
}

fn schema() -> i32 {
    match serde_json::to_string_pretty(&config::schema()) {
        Ok(s) => {
            out!("{s}");
            0
        }
        Err(e) => {
            err!("error: cannot render the schema: {e}");
            1
        }
    }
}

fn load(path: &Path) -> Result<Habitat, i32> {
    config::load(path).map_err(|d| {
        stdio::message(format_args!("{d}"));
        2
    })
}

fn check(path: &Path) -> i32 {
    match load(path) {
        Ok(h) => {
            err!(
                "ok: `{}` is a valid habitat `{}`",
                h.file.display(),
                h.config.name
            );
            0
        }
        Err(code) => code,
    }
}

async fn connect() -> Result<DockerEngine, i32> {
    DockerEngine::connect()
        .await
        .map_err(|e| report(&BuildError::Engine(e)))
}

fn report(e: &BuildError) -> i32 {
    err!("{e}");
    e.exit_code()
}

/// Runs `fut` until it ends or the user interrupts (SIGINT/SIGTERM). On an
/// interrupt the build future is dropped and its containers are removed, so
/// nothing half-made is left behind.
async fn interruptible<T>(
    engine: &DockerEngine,
    habitat: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, i32> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let code = tokio::select! {
        out = fut => return Ok(out),
        _ = tokio::signal::ctrl_c() => 130,
        _ = sigterm => 143,
    };
    // The build future is dropped by now; its phase container may remain.
    // A create request may still be in flight: the engine finishes it even
    // though the future that sent it is gone, so its container can appear
    // after a first sweep. Sweep until three listings in a row find nothing.
    let mut removed = 0;
    let mut quiet = 0;
    for _ in 0..20 {
        let n = executor::remove_build_containers(engine, habitat)
            .await
            .unwrap_or(0);
        removed += n;
        quiet = if n == 0 { quiet + 1 } else { 0 };
        if quiet == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    err!("interrupted: removed {removed} build container(s); snapshots so far are kept");
    Err(code)
}

async fn build_cmd(args: &BuildArgs, progress: Progress) -> i32 {
    let habitat = match load(&args.path) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let mut reporter = progress.reporter();
    let opts = args.options();
    let fut = executor::build(&engine, &habitat, &opts, reporter.as_mut());
    match interruptible(&engine, &habitat.config.name, fut).await {
        Ok(Ok(built)) => {
            if progress.resolve() != Progress::Json {
                out!("{}", built.image);
            }
            0
        }
        Ok(Err(e)) => report(&e),
        Err(code) => code,
    }
}

async fn plan_cmd(args: &BuildArgs, json: bool) -> i32 {
    let habitat = match load(&args.path) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let (plan, _, _) = match executor::plan(&engine, &habitat, &args.options()).await {
        Ok(p) => p,
        Err(e) => return report(&e),
    };
    for p in &plan.phases {
        let (action, image) = match &p.action {
            Action::Cached { image } => ("cached", image.clone()),
            Action::Build => ("build", String::new()),
            Action::Skip => ("skip", String::new()),
        };
        if json {
            out!(
                "{}",
                serde_json::json!({
                    "id": p.phase.id().to_string(), "phase": p.phase.name(), "action": action,
                    "key": p.key.key.as_str(), "reason": p.reason, "image": image,
                })
            );
        } else {
            let reason = if p.reason.is_empty() {
                String::new()
            } else {
                format!("  ({})", p.reason)
            };
            out!(
                "{:<10} {:<6} {}{reason}",
                p.phase.tag(),
                action,
                p.key.key.short()
            );
        }
    }
    0
}

async fn start_cmd(args: &BuildArgs, cmd: Vec<String>) -> i32 {
    let habitat = match load(&args.path) {
        Ok(h) => h,
        Err(code) => return code,
    };
    let engine = match connect().await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let mut reporter = Progress::Auto.reporter();
    let opts = args.options();
    let fut = executor::build(&engine, &habitat, &opts, reporter.as_mut());
    let built = match interruptible(&engine, &habitat.config.name, fut).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return report(&e),
        Err(code) => return code,
    };
    drop(reporter);
    let mounts = habitat
        .config
        .build
        .files
        .iter()
        .flat_map(|f| &f.volumes)
        .map(|v| Mount {
            source: volume_source(&habitat.dir, &v.source),
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
    let id = match engine.create_container(&spec).await {
        Ok(id) => id,
        Err(e) => return report(&BuildError::Engine(e)),
    };
    let code = if spec.interactive {
        engine.run_interactive(&id).await
    } else {
        let mut on_line =
            |stream: kiln_core::engine::Stream, line: &str| stdio::stream_line(stream, line);
        engine.run_container(&id, &mut on_line).await
    };
    let _ = engine.remove_container(&id).await;
    match code {
        Ok(c) => i32::try_from(c).unwrap_or(1),
        Err(e) => report(&BuildError::Engine(e)),
    }
}

/// A volume source that looks like a path is a bind mount of that host path
/// (relative to the habitat); anything else names a volume.
fn volume_source(dir: &Path, source: &str) -> String {
    if source.starts_with('/') {
        source.to_string()
    } else if source.starts_with('.') || source.contains('/') {
        dir.join(source).display().to_string()
    } else {
        source.to_string()
    }
}
