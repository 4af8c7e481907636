//! `kiln cache status` and `kiln cache prune` (SPEC §11): which habitats
//! (the one at PATH, or every known one with `--all`), then the library's
//! status or prune, rendered. `nuke` asks first unless `--yes`, and refuses
//! without a terminal to ask on.

use std::io::BufRead;

use kiln_core::cache::CacheDir;
use kiln_core::cache::prune::Level;
use kiln_core::cache::status;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor::BuildError;

use super::Outcome;
use crate::cli::CacheArgs;
use crate::exit::{CacheFailure, ExitStatus, Failure};
use crate::render;
use crate::render::stdout::err;

/// The habitats named, the `cache.keep` their config sets, and the engine.
async fn open(args: &CacheArgs) -> Result<(Vec<String>, Option<usize>, DockerEngine), Failure> {
    let (names, keep) = if args.all {
        (Vec::new(), None)
    } else {
        let habitat = super::load(&args.habitat())?;
        let keep = habitat.config.cache_keep();
        (vec![habitat.config.name], Some(keep))
    };
    let engine = DockerEngine::connect()
        .await
        .map_err(|e| Failure::Build(BuildError::Engine(e)))?;
    Ok((names, keep, engine))
}

pub async fn status(args: &CacheArgs, json: bool) -> Outcome {
    let (names, keep, engine) = open(args).await?;
    let cache = CacheDir::from_env();
    let mut st = status::status(&engine, &cache, &names, args.all)
        .await
        .map_err(|e| Failure::Build(BuildError::Engine(e)))?;
    // The config at PATH says `cache.keep`, whatever the last build recorded.
    if let (Some(keep), [h]) = (keep, &mut st.habitats[..])
        && h.keep != keep
    {
        h.keep = keep;
        h.levels = Level::ALL
            .iter()
            .map(|l| kiln_core::cache::prune::plan(&h.holdings, *l, keep))
            .collect();
    }
    render::cache::status(&st, cache.root(), json);
    Ok(ExitStatus::Success)
}

pub async fn prune(args: &CacheArgs, level: Level, dry_run: bool, yes: bool) -> Outcome {
    let (names, keep, engine) = open(args).await?;
    let cache = CacheDir::from_env();
    if level == Level::Nuke && !dry_run && !yes {
        confirm(&names, args.all)?;
    }
    let mut on_event = |e: status::PruneEvent| render::cache::prune_event(&e, dry_run);
    let req = status::PruneRequest {
        habitats: names,
        all: args.all,
        level,
        keep,
        dry_run,
    };
    let summary = status::prune(&engine, &cache, &req, &mut on_event)
        .await
        .map_err(|e| Failure::Cache(CacheFailure::Prune(e)))?;
    render::cache::prune_summary(&summary, level, dry_run);
    Ok(ExitStatus::Success)
}

/// Asks on the terminal whether to nuke; refuses where no terminal can answer.
fn confirm(names: &[String], all: bool) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if !rustix::termios::isatty(&stdin) {
        return Err(Failure::Cache(CacheFailure::NukeNeedsYes));
    }
    let what = if all {
        "every habitat".to_string()
    } else {
        format!("`{}`", names.join("`, `"))
    };
    err!(
        "nuke removes every snapshot kiln made of {what} (those in use stay) and its host cache: mirrors, tools, digests, push records. Continue? [y/N]"
    );
    let mut answer = String::new();
    let _ = stdin.lock().read_line(&mut answer);
    match answer.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ => Err(Failure::Cache(CacheFailure::Declined)),
    }
}
