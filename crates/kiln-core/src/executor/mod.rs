//! ④ The executor: carries a [`Plan`] out on an [`Engine`], phase by phase,
//! making a labelled snapshot after each and tagging it. `build` takes the
//! habitat's lock, resolves the facts, plans and runs; what each phase runs
//! is decided by the pure modules beside the phases (`accounts`, `script`).
//!
//! Modules, top to bottom: `run` (the plan, phase by phase) → `phases/` (one
//! file each) → `snapshot` (how an image is made) → `context` (the state they
//! share); `resolve` (facts), `provenance` (which listed images kiln made),
//! `secrets` and `error` beside them.

mod context;
mod error;
pub mod phases;
mod provenance;
mod remote;
mod resolve;
mod run;
mod secrets;
mod snapshot;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Instant;

use crate::cache::known::Known;
use crate::cache::owner::{self, Liveness, Owner};
use crate::cache::prune::Level;
use crate::cache::status::{self, PruneEvent};
use crate::cache::{BuildLock, CacheDir, LastUse, lock, scratch, used};
use crate::config::{BaseSource, Habitat};
use crate::engine::{Engine, EngineError};
use crate::image::labels::LABEL_HABITAT;
use crate::image::names;
use crate::keys::BaseFact;
use crate::keys::{CacheKey, KeyChain};
use crate::phase::Phase;
use crate::plan::{Plan, PlanOptions, Snapshots};
use crate::report::{Event, Reporter};
use crate::sources::bootstrap;
use crate::sources::io::io_err;
use crate::sources::repo::RepoCache;
use remote::RemoteCache;

pub use context::BUILD_CONTAINER_PREFIX;
use context::{Executor, Maker};
pub use error::{BuildError, PhaseFailure};
use provenance::{Wanted, WantedSteps, find_snapshots, probe_tags};
pub use remote::cache_tag;
use resolve::resolve_facts;
use secrets::SECRETS_PREFIX;
use snapshot::{LAYER_PREFIX, STREAM_PREFIX};

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
    /// Where repos, tools, bootstrap and digests are cached; [`CacheDir::from_env`] by default.
    pub cache_root: Option<PathBuf>,
    /// Extract archive phases into a container even where the parent's
    /// layers can be read on the host (how an engine elsewhere is served; tests
    /// compare the two).
    pub archive_in_container: bool,
    /// `--no-remote-cache`: never look snapshots up in the registry, even
    /// with `registry.cache: true`.
    pub no_remote_cache: bool,
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
    let cache = opts.cache();
    let (facts, probe) = tokio::join!(
        resolve_facts(engine, habitat, opts, None, &[]),
        probe_tags(engine, &habitat.config.name, &cache)
    );
    let (resolved, probe) = (facts?, probe?);
    let chain = KeyChain::compute(&habitat.config, &resolved.facts);
    // A plan runs nothing and writes no index: only builds, under the
    // habitat's lock, record what they made or checked.
    let (snaps, _) = find_snapshots(engine, probe, &wanted(&chain)).await?;
    let plan = match RemoteCache::of(habitat, opts) {
        // A plan pulls nothing: it says what the build would pull. A
        // registry that does not answer leaves the local plan.
        Some(remote) => match plan_with_registry(&remote, (&chain, &snaps), opts.plan).await {
            Ok(plan) | Err((plan, _)) => plan,
        },
        None => Plan::new(&chain, &snaps, opts.plan),
    };
    Ok((plan, chain, snaps))
}

/// The plan of a habitat with `registry.cache`: what a pull left (a deep
/// snapshot, none before it) needs no registry; otherwise the registry is
/// asked for the planned phases' `cache-KEY`s at once. A registry that does
/// not answer gives the plan without it, and why.
async fn plan_with_registry(
    remote: &RemoteCache,
    (chain, snaps): (&KeyChain, &Snapshots),
    opts: PlanOptions,
) -> Result<Plan, (Plan, crate::registry::RegistryError)> {
    let local = Plan::with_remote(chain, snaps, opts, &Default::default());
    if local.all_cached() {
        return Ok(local);
    }
    match remote.lookup(&local.remote_candidates(opts)).await {
        Ok(hits) => Ok(Plan::with_remote(chain, snaps, opts, &hits)),
        Err(e) => Err((local, e)),
    }
}

/// The final key a build of `habitat` as it is now would make: its facts
/// resolved (a base habitat's planned, not built), no snapshot looked up and
/// nothing run. What `ps` compares running members with.
pub async fn planned_final_key<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
) -> Result<CacheKey, BuildError> {
    Ok(planned_chain(engine, habitat, opts)
        .await?
        .final_key()
        .clone())
}

/// The key chain a build of `habitat` as it is now would make (facts
/// resolved, nothing looked up or run): what `cache status` and `cache
/// prune` call the current chain (SPEC §11).
pub async fn planned_chain<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
) -> Result<KeyChain, BuildError> {
    let resolved = resolve_facts(engine, habitat, opts, None, &[]).await?;
    Ok(KeyChain::compute(&habitat.config, &resolved.facts))
}

/// The snapshot a build took from the registry: its image and how long
/// the pull took.
pub(crate) struct Pulled {
    image: String,
    duration: std::time::Duration,
}

/// With `registry.cache`, replaces `plan` by one that pulls the deepest
/// snapshot the registry holds, and pulls it. A registry that does not
/// answer, or a pull that fails or is not the snapshot its tag says, is
/// said (a note) and the build goes on locally; only an engine that is
/// gone stops it.
async fn pull_from_registry<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
    (chain, snaps): (&KeyChain, &Snapshots),
    plan: &mut Plan,
    made: &mut crate::cache::MadeIndex,
    reporter: &mut dyn Reporter,
) -> Result<Option<Pulled>, BuildError> {
    let Some(remote) = RemoteCache::of(habitat, opts) else {
        return Ok(None);
    };
    let with = match plan_with_registry(&remote, (chain, snaps), opts.plan).await {
        Ok(with) => with,
        Err((local, e)) => {
            *plan = local;
            let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
            reporter.report(Event::Note {
                message: format!("{e}; building locally{hint}"),
            });
            return Ok(None);
        }
    };
    let Some((phase, reference)) = with.pull() else {
        *plan = with;
        return Ok(None);
    };
    // Verify's snapshot is the image of the phase before it, with its labels.
    let image_phase = match phase {
        Phase::Verify => Phase::ALL[..phase.index()]
            .iter()
            .rev()
            .find(|p| chain.get(**p).present())
            .copied()
            .unwrap_or(phase),
        p => p,
    };
    let key = chain.get(image_phase).key.to_string();
    reporter.report(Event::Pulling {
        phase,
        reference: reference.to_string(),
    });
    let started = Instant::now();
    match remote::pull(
        engine,
        &remote,
        &habitat.config.name,
        (image_phase, &key),
        reference,
    )
    .await
    {
        Ok(info) => {
            made.insert_made(&info.id, &key);
            if let Some(v) = info.config.labels.get(crate::image::labels::LABEL_VERIFIED) {
                made.insert_verified(&info.id, v);
            }
            let _ = made.save();
            *plan = with;
            Ok(Some(Pulled {
                image: info.id,
                duration: started.elapsed(),
            }))
        }
        Err(e) if e.engine_unreachable() => match e {
            remote::PullError::Engine { source, .. } => Err(BuildError::Engine(source)),
            _ => unreachable!("engine_unreachable is only an engine error"),
        },
        Err(e) => {
            // The plan without the registry's snapshots.
            *plan = Plan::with_remote(chain, snaps, opts.plan, &Default::default());
            reporter.report(Event::Note {
                message: format!(
                    "cannot take {phase} from `{}`: {e}; building locally",
                    remote.host()
                ),
            });
            Ok(None)
        }
    }
}

/// The keys a plan of `chain` looks snapshots up by.
fn wanted(chain: &KeyChain) -> Wanted<'_> {
    let verify = chain.get(Phase::Verify);
    Wanted {
        keys: chain
            .0
            .iter()
            .filter(|pk| pk.present())
            .map(|pk| pk.key.as_str())
            .collect(),
        verify: verify.present().then(|| verify.key.as_str()),
        steps: chain
            .0
            .iter()
            .filter(|pk| !pk.steps.is_empty())
            .map(|pk| WantedSteps {
                phase: pk.phase,
                phase_key: pk.key.as_str(),
                keys: pk.steps.iter().map(|s| s.key.as_str()).collect(),
            })
            .collect(),
    }
}

/// Records what `cache status` and `cache prune` read of this build: the
/// habitat's directory, mirrors and tools, chain, base and `cache.keep`. A
/// record that cannot be written only makes its mirrors look unused.
fn record_known(habitat: &Habitat, cache: &CacheDir, chain: &KeyChain, base: &BaseFact) {
    let c = &habitat.config;
    let mut known = Known::load(&cache.known(&c.name));
    let before = known.clone();
    known.dir = habitat.dir.clone();
    let mirrors = RepoCache::new(cache.repos());
    known.repos = c
        .build
        .repos
        .iter()
        .filter_map(|r| {
            let m = mirrors.mirror_for(&r.url, &habitat.dir);
            Some(m.file_name()?.to_string_lossy().into_owned())
        })
        .collect();
    known.tools = c
        .build
        .tools
        .iter()
        .map(|t| t.sha256.trim().to_ascii_lowercase())
        .collect();
    known.record_chain(chain);
    known.base_image = match base {
        BaseFact::Image { id: Some(id), .. } => Some(id.clone()),
        BaseFact::Image { reference, .. } => Some(reference.clone()),
        BaseFact::Bootstrap { .. } => match c.build.base.source() {
            Some(BaseSource::Bootstrap(b)) => Some(bootstrap::image_ref(b)),
            _ => None,
        },
        // Its layers are the base habitat's snapshots', which that
        // habitat's own status counts.
        BaseFact::Habitat { .. } => None,
    };
    known.keep = Some(c.cache_keep());
    // A no-op build of an unchanged habitat writes nothing.
    if known != before {
        let _ = known.save();
    }
}

/// The `soft` prune after a build that made snapshots (`cache.keep`; 0 turns
/// it off), under the build's lock. A no-op build made no snapshot, so it
/// has nothing new to prune and skips it (and its engine calls). A prune
/// that fails costs disk space, not the build: it is reported as a note.
async fn auto_prune<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    cache: &CacheDir,
    reporter: &mut dyn Reporter,
) {
    let keep = habitat.config.cache_keep();
    if keep == 0 {
        return;
    }
    let name = &habitat.config.name;
    let mut removed = Vec::new();
    let mut on_event = |e: PruneEvent| {
        if let PruneEvent::Removed { tag, key, .. } = e {
            removed.push((tag, key));
        }
    };
    // The chain just built is the config's: the record says it.
    let what = status::LockedPrune {
        level: Level::Soft,
        keep,
        dry_run: false,
        current: None,
    };
    match status::prune_locked(engine, cache, name, &what, &mut on_event).await {
        Ok(summary) if !removed.is_empty() => reporter.report(Event::Pruned {
            habitat: name.clone(),
            removed,
            freed: summary.freed,
        }),
        Ok(_) => {}
        Err(e) => reporter.report(Event::Note {
            message: format!("the automatic soft prune of `{name}` did not run: {e}"),
        }),
    }
}

/// Removes the build containers of `habitat` that builds whose process is
/// gone left behind (killed, crashed). Those of running builds (this one, one
/// that waits for the lock, one of another cache directory) are kept, and so
/// are those a build on another machine made (a remote engine): nothing here
/// can tell whether it still runs.
async fn remove_stale_build_containers<E: Engine>(
    engine: &E,
    habitat: &str,
) -> Result<usize, EngineError> {
    let mut removed = 0;
    for c in engine.list_containers(LABEL_HABITAT, habitat).await? {
        let stale = match context::container_maker(habitat, &c.name) {
            Some(Maker::Owner(owner)) => owner.liveness() == Liveness::Dead,
            Some(Maker::Pid(pid)) => !owner::pid_runs(pid),
            None => false,
        };
        if stale {
            engine.remove_container(&c.id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes the build containers this process made, of every habitat it has
/// built (a base habitat's too): what an interrupted build leaves, once its
/// future is dropped. Never another process's.
pub async fn remove_own_build_containers<E: Engine>(engine: &E) -> Result<usize, EngineError> {
    let me = Maker::Owner(Owner::current());
    let mut removed = 0;
    for habitat in context::habitats_with_containers() {
        for c in engine.list_containers(LABEL_HABITAT, &habitat).await? {
            if context::container_maker(&habitat, &c.name).as_ref() == Some(&me) {
                engine.remove_container(&c.id).await?;
                removed += 1;
            }
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
    build_boxed(engine, habitat, opts, reporter, Vec::new()).await
}

/// Boxed so a habitat whose base is another habitat can build that one
/// first; `above` holds the directories of the habitats waiting for it.
fn build_boxed<'a, E: Engine>(
    engine: &'a E,
    habitat: &'a Habitat,
    opts: &'a BuildOptions,
    reporter: &'a mut dyn Reporter,
    above: Vec<PathBuf>,
) -> Pin<Box<dyn Future<Output = Result<Built, BuildError>> + Send + 'a>> {
    Box::pin(async move {
        let started = Instant::now();
        let name = habitat.config.name.clone();
        reporter.report(Event::BuildStart {
            habitat: name.clone(),
        });
        let result = build_locked(engine, habitat, opts, reporter, &above).await;
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
    above: &[PathBuf],
) -> Result<Built, BuildError> {
    let name = habitat.config.name.clone();
    // Keyed by the engine, not the cache directory: builds of one habitat on
    // one engine share its tags and containers whatever their environment.
    let locks = lock::lock_dir();
    let mut on_wait = |holder: &str| {
        reporter.report(Event::Waiting {
            habitat: name.clone(),
            holder: holder.to_string(),
        })
    };
    let _lock = BuildLock::acquire_async(&locks, &engine.identity(), &name, &mut on_wait)
        .await
        .map_err(io_err("cannot take the build lock in", &locks))?;

    // The facts and the habitat's tags are independent: one wait for both.
    let cache = opts.cache();
    let (facts, probe) = tokio::join!(
        resolve_facts(engine, habitat, opts, Some(&mut *reporter), above),
        probe_tags(engine, &name, &cache)
    );
    let (resolved, probe) = (facts?, probe?);
    let chain = KeyChain::compute(&habitat.config, &resolved.facts);
    let (snaps, mut made) = find_snapshots(engine, probe, &wanted(&chain)).await?;
    // What the lookup checked is kept, so it is checked once; an index
    // that cannot be written only costs those checks again.
    let _ = made.save();
    let mut plan = Plan::new(&chain, &snaps, opts.plan);
    let pulled = pull_from_registry(
        engine,
        habitat,
        opts,
        (&chain, &snaps),
        &mut plan,
        &mut made,
        reporter,
    )
    .await?;
    // Containers and temporary files a killed build left are removed while
    // this one builds (a no-op build skips the listing: it leaves nothing to
    // clean up after).
    let sweep = async {
        if plan.all_cached() {
            return Ok(0);
        }
        let tmp = tokio::task::spawn_blocking(|| {
            let dir = std::env::temp_dir();
            for prefix in [LAYER_PREFIX, STREAM_PREFIX, SECRETS_PREFIX] {
                scratch::sweep_once(&dir, prefix);
            }
        });
        let removed = remove_stale_build_containers(engine, &name).await;
        // A sweep that could not run costs disk space, not the build.
        let _ = tmp.await;
        removed
    };
    let mut exec = Executor {
        engine,
        habitat,
        opts,
        chain: &chain,
        snaps: &snaps,
        facts: &resolved.facts,
        copies: &resolved.copies,
        withheld: &resolved.withheld,
        made: &mut made,
        phase_started: Instant::now(),
        reporter,
        secrets: secrets::Redactor::default(),
        expanded: None,
        upper_hint: std::sync::Mutex::new(None),
        pulled,
    };
    // The links first, so what a failed build leaves is linked too; an
    // unchanged record is not written.
    if !plan.all_cached() {
        let mut known = Known::load(&cache.known(&name));
        let before = known.clone();
        known.dir = habitat.dir.clone();
        known.record_links(&chain);
        if known != before {
            let _ = known.save();
        }
    }
    let (ran, swept) = tokio::join!(exec.run(&plan), sweep);
    ran?;
    swept?;
    // Every snapshot on the chain was just used (built or reused), its
    // steps' too: a file write, no engine call. A record that cannot be
    // written only makes those snapshots look older to a prune.
    let mut used = LastUse::load(&cache.used(&name));
    let w = wanted(&chain);
    let steps = w.steps.iter().flat_map(|s| s.keys.iter().copied());
    used.record(w.keys.iter().copied().chain(steps), used::unix_now());
    let _ = used.save();
    record_known(habitat, &cache, &chain, &resolved.facts.base);
    if !plan.all_cached() {
        auto_prune(engine, habitat, &cache, reporter).await;
    }
    let final_key = chain.final_key().clone();
    Ok(Built {
        image: names::final_image(&name, final_key.as_str()),
        final_key,
        plan,
    })
}
