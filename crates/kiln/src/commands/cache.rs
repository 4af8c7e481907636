//! `kiln cache status` and `kiln cache prune` (SPEC §11): which habitats
//! (the one at PATH, or every known one with `--all`), each one's current
//! chain as its config plans it now, then the library's status or prune,
//! rendered. `nuke` asks first unless `--yes`, and refuses without a
//! terminal to ask on.

use std::io::BufRead;

use kiln_core::cache::CacheDir;
use kiln_core::cache::known::{CurrentChain, Known};
use kiln_core::cache::prune::Level;
use kiln_core::cache::status;
use kiln_core::config::Habitat;
use kiln_core::engine::docker::DockerEngine;
use kiln_core::executor::{self, BuildError, BuildOptions};

use super::Outcome;
use crate::cli::CacheArgs;
use crate::exit::{CacheFailure, ExitStatus, Failure};
use crate::render;
use crate::render::stdout::err;

/// What a cache command works on.
struct Opened {
    /// The habitats named (none with `--all`: the library takes every known one).
    names: Vec<String>,
    /// The `cache.keep` the config at PATH sets.
    keep: Option<usize>,
    engine: DockerEngine,
    /// Each habitat's current chain as its config plans it now.
    planned: status::Planned,
}

/// The habitats named, the `cache.keep` their config sets, the engine, and
/// each habitat's chain as planned from its config.
async fn open(args: &CacheArgs, cache: &CacheDir) -> Result<Opened, Failure> {
    let engine = DockerEngine::connect()
        .await
        .map_err(|e| Failure::Build(BuildError::Engine(e)))?;
    let mut planned = status::Planned::new();
    let (names, keep) = if args.all {
        for name in cache.known_habitats() {
            let chain = plan_known(&engine, cache, &name).await;
            planned.insert(name, chain);
        }
        (Vec::new(), None)
    } else {
        let habitat = super::load(&args.habitat())?;
        let keep = habitat.config.cache_keep();
        let name = habitat.config.name.clone();
        planned.insert(name.clone(), plan(&engine, &habitat).await);
        (vec![name], Some(keep))
    };
    Ok(Opened {
        names,
        keep,
        engine,
        planned,
    })
}

/// The chain `habitat`'s config plans now, or why it cannot be planned.
async fn plan(engine: &DockerEngine, habitat: &Habitat) -> Result<CurrentChain, String> {
    executor::planned_chain(engine, habitat, &BuildOptions::default())
        .await
        .map(|chain| CurrentChain::from(&chain))
        .map_err(|e| format!("cannot plan its config: {e}"))
}

/// The chain a known habitat's config (in the directory its last build
/// recorded) plans now, or why not: the config is gone, does not load, or
/// now names another habitat.
async fn plan_known(
    engine: &DockerEngine,
    cache: &CacheDir,
    name: &str,
) -> Result<CurrentChain, String> {
    let dir = Known::load(&cache.known(name)).dir;
    if dir.as_os_str().is_empty() {
        return Err("no habitat directory is recorded".to_string());
    }
    let habitat = kiln_core::config::load(&dir).map_err(|d| {
        format!(
            "its config in `{}` does not load ({} problem{})",
            dir.display(),
            d.len(),
            if d.len() == 1 { "" } else { "s" }
        )
    })?;
    if habitat.config.name != name {
        return Err(format!(
            "the config in `{}` now names habitat `{}`",
            dir.display(),
            habitat.config.name
        ));
    }
    plan(engine, &habitat).await
}

pub async fn status(args: &CacheArgs, json: bool) -> Outcome {
    let cache = CacheDir::from_env();
    let Opened {
        names,
        keep,
        engine,
        planned,
    } = open(args, &cache).await?;
    let mut st = status::status(&engine, &cache, &names, args.all, &planned)
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
    let cache = CacheDir::from_env();
    let Opened {
        names,
        keep,
        engine,
        planned,
    } = open(args, &cache).await?;
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
        planned,
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
