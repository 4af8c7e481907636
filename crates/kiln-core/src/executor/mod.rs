//! ④ The executor: carries a [`Plan`] out on an [`Engine`], phase by phase,
//! making a labelled snapshot after each and tagging it. `build` takes the
//! habitat's lock, resolves the facts, plans and runs; what each phase runs
//! is decided by the pure modules beside the phases (`accounts`, `script`).
//!
//! Modules, top to bottom: `run` (the plan, phase by phase) → `phases/` (one
//! file each) → `snapshot` (how an image is made) → `context` (the state they
//! share); `resolve` (facts), `secrets` and `error` beside them.

mod context;
mod error;
pub mod phases;
mod resolve;
mod run;
mod secrets;
mod snapshot;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::cache::{BuildLock, CacheDir};
use crate::config::Habitat;
use crate::engine::{Engine, EngineError};
use crate::image::labels::LABEL_HABITAT;
use crate::image::names;
use crate::keys::{CacheKey, KeyChain};
use crate::plan::{Plan, PlanOptions, Snapshots};
use crate::report::{Event, Reporter};
use crate::sources::io::io_err;

pub use context::BUILD_CONTAINER_PREFIX;
use context::Executor;
use error::task_failed;
pub use error::{BuildError, PhaseFailure};
use resolve::resolve_facts;

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    /// `habitat-NAME:final-KEY12`
    pub image: String,
    pub final_key: CacheKey,
    pub plan: Plan,
}

/// Options of one build.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub plan: PlanOptions,
    /// Where repos, tools, bootstrap and locks are cached; [`CacheDir::from_env`] by default.
    pub cache_root: Option<PathBuf>,
    /// Extract archive phases into a container even where the parent's
    /// layers can be read on the host (how an engine elsewhere is served; tests
    /// compare the two).
    pub archive_in_container: bool,
}

impl BuildOptions {
    fn cache(&self) -> CacheDir {
        match &self.cache_root {
            Some(root) => CacheDir::new(root),
            None => CacheDir::from_env(),
        }
    }
}

/// Resolves the facts of `habitat` and plans its build, running nothing.
pub async fn plan<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
) -> Result<(Plan, KeyChain, Snapshots), BuildError> {
    let (facts, snaps) = tokio::join!(
        resolve_facts(engine, habitat, opts, None),
        list_snapshots(engine, &habitat.config.name)
    );
    let (facts, snaps) = (facts?, snaps?);
    let chain = KeyChain::compute(&habitat.config, &facts);
    let plan = Plan::new(&chain, &snaps, opts.plan);
    Ok((plan, chain, snaps))
}

async fn list_snapshots<E: Engine>(engine: &E, habitat: &str) -> Result<Snapshots, BuildError> {
    let images = engine.list_images(&[(LABEL_HABITAT, habitat)]).await?;
    Ok(Snapshots::from_images(habitat, &images))
}

/// Removes the containers an earlier build of `habitat` left (crashed or
/// interrupted). Safe only while holding the habitat's build lock.
pub async fn remove_build_containers<E: Engine>(
    engine: &E,
    habitat: &str,
) -> Result<usize, EngineError> {
    remove_build_containers_but(engine, habitat, None).await
}

/// Like [`remove_build_containers`], sparing those of process `spare` (this
/// build's own, which may be created while the sweep runs).
async fn remove_build_containers_but<E: Engine>(
    engine: &E,
    habitat: &str,
    spare: Option<u32>,
) -> Result<usize, EngineError> {
    let prefix = format!("{BUILD_CONTAINER_PREFIX}{habitat}-");
    let own = spare.map(|pid| format!("{prefix}{pid}-"));
    let mut removed = 0;
    for c in engine.list_containers(LABEL_HABITAT, habitat).await? {
        let name = c.name.trim_start_matches('/');
        if name.starts_with(&prefix) && !own.as_ref().is_some_and(|o| name.starts_with(o)) {
            engine.remove_container(&c.id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Builds `habitat`: resolves facts, plans, and runs every phase that is not cached.
pub async fn build<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
    reporter: &mut dyn Reporter,
) -> Result<Built, BuildError> {
    build_boxed(engine, habitat, opts, reporter).await
}

/// Boxed so a habitat whose base is another habitat can build that one first.
fn build_boxed<'a, E: Engine>(
    engine: &'a E,
    habitat: &'a Habitat,
    opts: &'a BuildOptions,
    reporter: &'a mut dyn Reporter,
) -> Pin<Box<dyn Future<Output = Result<Built, BuildError>> + Send + 'a>> {
    Box::pin(async move {
        let started = Instant::now();
        let name = habitat.config.name.clone();
        reporter.report(Event::BuildStart {
            habitat: name.clone(),
        });
        let result = build_locked(engine, habitat, opts, reporter).await;
        reporter.report(Event::BuildEnd {
            ok: result.is_ok(),
            duration: started.elapsed(),
            image: result.as_ref().ok().map(|b| b.image.clone()),
        });
        result
    })
}

async fn build_locked<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
    reporter: &mut dyn Reporter,
) -> Result<Built, BuildError> {
    let name = habitat.config.name.clone();
    let locks = opts.cache().locks();
    let lock_dir = locks.clone();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let lock_name = name.clone();
    let lock = tokio::task::spawn_blocking(move || {
        BuildLock::acquire(&lock_dir, &lock_name, |holder| {
            let _ = tx.send(holder.to_string());
        })
    });
    // The waiting notice must reach the user while the lock blocks.
    let mut lock = lock;
    let lock = loop {
        tokio::select! {
            res = &mut lock => break res,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if let Ok(holder) = rx.try_recv() {
                    reporter.report(Event::Waiting { habitat: name.clone(), holder });
                }
            }
        }
    };
    let _lock = lock
        .map_err(|e| task_failed("build lock", e))?
        .map_err(io_err("cannot take the build lock in", &locks))?;
    if let Ok(holder) = rx.try_recv() {
        reporter.report(Event::Waiting {
            habitat: name.clone(),
            holder,
        });
    }

    // The facts and the snapshot listing are independent: one wait for both.
    let (facts, snaps) = tokio::join!(
        resolve_facts(engine, habitat, opts, Some(&mut *reporter)),
        list_snapshots(engine, &name)
    );
    let (facts, snaps) = (facts?, snaps?);
    let chain = KeyChain::compute(&habitat.config, &facts);
    let plan = Plan::new(&chain, &snaps, opts.plan);
    // Containers a crashed build left are removed while this one builds (a
    // no-op build skips the listing: it leaves nothing to clean up after).
    let sweep = async {
        match plan.all_cached() {
            true => Ok(0),
            false => remove_build_containers_but(engine, &name, Some(std::process::id())).await,
        }
    };
    let mut exec = Executor {
        engine,
        habitat,
        opts,
        chain: &chain,
        snaps: &snaps,
        facts: &facts,
        reporter,
        secrets: secrets::Redactor::default(),
    };
    let (ran, swept) = tokio::join!(exec.run(&plan), sweep);
    ran?;
    swept?;
    let final_key = chain.final_key().clone();
    Ok(Built {
        image: names::final_image(&name, final_key.as_str()),
        final_key,
        plan,
    })
}
