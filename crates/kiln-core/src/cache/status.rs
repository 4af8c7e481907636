//! `cache status` and `cache prune` (SPEC §11), the imperative half: reads
//! what each habitat holds (its snapshots, from the ids the host's
//! [`MadeIndex`] records, inspected in parallel, and the containers that use
//! them, in one listing) and the host cache by kind, hands them to the pure
//! policy in [`super::prune`], and carries a prune out under the habitat's
//! build lock. It reports; the CLI renders.
//!
//! Snapshots are found through the index, not a listing of the engine's
//! images: its cost follows the habitat's snapshots, not everything the
//! engine holds, and an id is a content address, so what kiln recorded as
//! its making stays so (an id the engine no longer holds is forgotten).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use futures_util::{StreamExt, stream};

use super::known::{CurrentChain, Known};
use super::prune::{self, Assessed, Holdings, Level, PrunePlan, Snapshot, StepOf};
use super::{BuildLock, CacheDir, LastUse, MadeIndex, lock};
use crate::engine::{Engine, EngineError, ImageInfo};
use crate::image::labels::{
    LABEL_DURATION, LABEL_HABITAT, LABEL_KEY, LABEL_PARENT, LABEL_PHASE, LABEL_STEP,
    LABEL_STEP_DURATION, LABEL_STEP_KEY, LABEL_VERIFIED,
};
use crate::keys::steps::parse_step_tag;
use crate::phase::Phase;

/// Inspections in flight at once: enough to hide the engine's latency,
/// few enough not to queue behind each other.
const INSPECTS_IN_FLIGHT: usize = 16;

/// What `cache status` shows of one habitat.
#[derive(Debug, Clone)]
pub struct HabitatStatus {
    pub holdings: Holdings,
    /// One per snapshot, in the order of `holdings.snapshots`.
    pub assessed: Vec<Assessed>,
    /// One per level, weakest first.
    pub levels: Vec<PrunePlan>,
    /// `cache.keep` as its last build recorded it (5 when none did).
    pub keep: usize,
    /// The habitat directory its last build recorded.
    pub dir: Option<PathBuf>,
    /// Where its current chain came from.
    pub current_from: CurrentFrom,
}

/// Where a habitat's current chain came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CurrentFrom {
    /// Its config as it is now, planned (SPEC §11).
    Config,
    /// The record of its last successful build, since its config could
    /// not be planned (why; `None` when nobody tried).
    LastBuild(Option<String>),
}

/// Habitat name → the chain its config plans now, or why it cannot be
/// planned. A habitat absent from it is judged by its recorded chain.
pub type Planned = BTreeMap<String, Result<CurrentChain, String>>;

/// A kind of host cache (SPEC §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostKind {
    Repos,
    Tools,
    Bootstrap,
    Digests,
    /// A habitat's push record (`cache::pushed`): the configs and creation
    /// times its pushes keep, so a re-push reads nothing and keeps its digest.
    Pushed,
}

impl HostKind {
    pub const ALL: [HostKind; 5] = [
        HostKind::Repos,
        HostKind::Tools,
        HostKind::Bootstrap,
        HostKind::Digests,
        HostKind::Pushed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostKind::Repos => "repos",
            HostKind::Tools => "tools",
            HostKind::Bootstrap => "bootstrap",
            HostKind::Digests => "digests",
            HostKind::Pushed => "pushed",
        }
    }
}

/// One entry of the host cache: a mirror, a tool, bootstrap scratch, a
/// habitat's digests or push record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub kind: HostKind,
    pub path: PathBuf,
    pub bytes: u64,
    /// The known habitats whose last build used it.
    pub used_by: Vec<String>,
}

/// Everything `cache status` shows.
#[derive(Debug, Clone)]
pub struct CacheStatus {
    pub habitats: Vec<HabitatStatus>,
    pub host: Vec<HostEntry>,
    /// Whether this covers every known habitat (`--all`).
    pub all: bool,
}

impl CacheStatus {
    /// The host entries a prune at `level` removes.
    pub fn host_removals(&self, level: Level) -> Vec<&HostEntry> {
        let scope: BTreeSet<&str> = self
            .habitats
            .iter()
            .map(|h| h.holdings.habitat.as_str())
            .collect();
        self.host
            .iter()
            .filter(|e| host_removed(e, level, &scope, self.all))
            .collect()
    }
}

/// Whether a prune at `level` of the habitats in `scope` (every known one
/// when `all`) removes host entry `e`: from `medium` on, mirrors and tools no
/// known habitat uses; at `nuke`, also those only `scope` uses and its
/// digests and push records, and with `all` everything (bootstrap scratch
/// only when its maker is gone: a running bootstrap works in it).
///
/// A push record goes at `nuke` only, like the digests: it is small, and
/// what it keeps (the creation time a pushed final image says) is what
/// makes a re-push of the same image keep its digest (SPEC §10), which a
/// `medium` or `hard` prune of snapshots must not change.
pub fn host_removed(e: &HostEntry, level: Level, scope: &BTreeSet<&str>, all: bool) -> bool {
    let unused = e.used_by.is_empty();
    let ours = e.used_by.iter().all(|h| scope.contains(h.as_str()));
    match (level, e.kind) {
        (Level::Soft, _) => false,
        (Level::Medium | Level::Hard, HostKind::Repos | HostKind::Tools) => unused,
        (Level::Medium | Level::Hard, _) => false,
        (Level::Nuke, HostKind::Bootstrap) => all,
        (Level::Nuke, _) => all || ours,
    }
}

/// The default of `cache.keep`.
pub const DEFAULT_KEEP: usize = 5;

/// Reads what `habitats` hold (every known one when `all`).
pub async fn status<E: Engine>(
    engine: &E,
    cache: &CacheDir,
    habitats: &[String],
    all: bool,
    planned: &Planned,
) -> Result<CacheStatus, EngineError> {
    let names: Vec<String> = if all {
        let mut n = cache.known_habitats();
        for h in habitats {
            if !n.contains(h) {
                n.push(h.clone());
            }
        }
        n
    } else {
        habitats.to_vec()
    };
    let containers = containers_by_image(engine).await?;
    let mut out = Vec::new();
    for name in &names {
        out.push(habitat_status(engine, cache, name, &containers, planned.get(name)).await?);
    }
    let host = tokio::task::spawn_blocking({
        let cache = cache.clone();
        move || host_entries(&cache)
    })
    .await
    .unwrap_or_default();
    Ok(CacheStatus {
        habitats: out,
        host,
        all,
    })
}

/// Image id → the names of the containers made from it.
async fn containers_by_image<E: Engine>(
    engine: &E,
) -> Result<BTreeMap<String, Vec<String>>, EngineError> {
    let mut by_image: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, image) in engine.container_images().await? {
        by_image.entry(image).or_default().push(name);
    }
    for names in by_image.values_mut() {
        names.sort();
    }
    Ok(by_image)
}

/// What one habitat holds, assessed at every level.
async fn habitat_status<E: Engine>(
    engine: &E,
    cache: &CacheDir,
    habitat: &str,
    containers: &BTreeMap<String, Vec<String>>,
    planned: Option<&Result<CurrentChain, String>>,
) -> Result<HabitatStatus, EngineError> {
    let (current, current_from) = current_of(planned);
    let (holdings, _) = holdings(engine, cache, habitat, containers, current).await?;
    let known = Known::load(&cache.known(habitat));
    let keep = known.keep.unwrap_or(DEFAULT_KEEP);
    let mut st = assessed(
        holdings,
        keep,
        Some(known.dir).filter(|d| !d.as_os_str().is_empty()),
    );
    st.current_from = current_from;
    Ok(st)
}

/// The chain to judge by: the planned one, else the record (and why).
fn current_of(
    planned: Option<&Result<CurrentChain, String>>,
) -> (Option<&CurrentChain>, CurrentFrom) {
    match planned {
        Some(Ok(chain)) => (Some(chain), CurrentFrom::Config),
        Some(Err(why)) => (None, CurrentFrom::LastBuild(Some(why.clone()))),
        None => (None, CurrentFrom::LastBuild(None)),
    }
}

fn assessed(holdings: Holdings, keep: usize, dir: Option<PathBuf>) -> HabitatStatus {
    let assessed = prune::assess(&holdings);
    let levels = Level::ALL
        .iter()
        .map(|l| prune::plan(&holdings, *l, keep))
        .collect();
    HabitatStatus {
        holdings,
        assessed,
        levels,
        keep,
        dir,
        current_from: CurrentFrom::LastBuild(None),
    }
}

/// The snapshots of `habitat` the index records and the engine holds, with
/// the facts the policy reads; and the index, with the ids the engine no
/// longer holds forgotten.
async fn holdings<E: Engine>(
    engine: &E,
    cache: &CacheDir,
    habitat: &str,
    containers: &BTreeMap<String, Vec<String>>,
    current: Option<&CurrentChain>,
) -> Result<(Holdings, MadeIndex), EngineError> {
    let mut index = MadeIndex::load(&cache.made(habitat));
    let known = Known::load(&cache.known(habitat));
    let used = LastUse::load(&cache.used(habitat));
    // Phase snapshots and step images; the last step's is both.
    let ids: BTreeSet<String> = index
        .made()
        .chain(index.steps())
        .map(|(id, _)| id.to_string())
        .collect();
    let base = known.base_image.clone();
    let mut infos: Vec<(String, Option<ImageInfo>)> = stream::iter(ids)
        .map(|id| async move {
            let info = engine.image_inspect(&id).await;
            info.map(|i| (id, i))
        })
        .buffer_unordered(INSPECTS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    infos.sort_by(|a, b| a.0.cmp(&b.0));
    let mut snapshots = Vec::new();
    let mut sized: Vec<(Vec<String>, u64)> = Vec::new();
    // A blanked label (an earlier step's image blanks its phase's) is absent.
    let label = |info: &ImageInfo, name: &str| -> Option<String> {
        info.config
            .labels
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    for (id, info) in infos {
        let Some(info) = info else {
            index.forget(&id);
            continue;
        };
        if label(&info, LABEL_HABITAT).as_deref() != Some(habitat) {
            continue;
        }
        let as_phase = label(&info, LABEL_PHASE)
            .and_then(|p| p.parse::<Phase>().ok())
            .zip(label(&info, LABEL_KEY))
            .filter(|(_, key)| index.key_of(&info.id) == Some(key.as_str()));
        let as_step = label(&info, LABEL_STEP)
            .and_then(|t| parse_step_tag(&t))
            .zip(label(&info, LABEL_STEP_KEY))
            .filter(|(_, key)| index.step_key_of(&info.id) == Some(key.as_str()));
        let step = as_step.as_ref().map(|((_, number), key)| StepOf {
            number: *number,
            key: key.clone(),
            ms: label(&info, LABEL_STEP_DURATION)
                .or_else(|| {
                    as_phase
                        .is_none()
                        .then(|| label(&info, LABEL_DURATION))
                        .flatten()
                })
                .and_then(|d| d.parse().ok()),
        });
        let (phase, key, parent) = match (&as_phase, &as_step) {
            (Some((phase, key)), _) => (*phase, key.clone(), label(&info, LABEL_PARENT)),
            // An earlier step's image: keyed by its step, built on the key
            // its step was chained from.
            (None, Some(((phase, _), key))) => (*phase, key.clone(), known.links.get(key).cloned()),
            (None, None) => continue,
        };
        sized.push((info.layers.clone(), info.size));
        snapshots.push(Snapshot {
            id: info.id.clone(),
            phase,
            parent: parent.unwrap_or_default(),
            verified: label(&info, LABEL_VERIFIED),
            layers: info.layers.clone(),
            tags: info.repo_tags.clone(),
            containers: containers.get(&info.id).cloned().unwrap_or_default(),
            created: index.made_at(&info.id),
            last_used: used.get(&key),
            build_ms: label(&info, LABEL_DURATION).and_then(|d| d.parse().ok()),
            key,
            step,
        });
    }
    let mut external_layers = BTreeSet::new();
    if let Some(base) = base.filter(|b| !snapshots.iter().any(|s| s.id == *b))
        && let Some(info) = engine.image_inspect(&base).await?
    {
        sized.push((info.layers.clone(), info.size));
        external_layers.extend(info.layers);
    }
    let input: Vec<(&[String], u64)> = sized.iter().map(|(l, s)| (&l[..], *s)).collect();
    let holdings = Holdings {
        habitat: habitat.to_string(),
        layer_sizes: prune::layer_sizes(&input),
        snapshots,
        current: current.map_or_else(|| known.current_chain(), |c| c.phases.clone()),
        current_steps: current.map_or_else(|| known.current_steps(), |c| c.steps.clone()),
        links: known.links,
        external_layers,
    };
    Ok((holdings, index))
}

/// The host cache, entry by entry, with the known habitats using each.
fn host_entries(cache: &CacheDir) -> Vec<HostEntry> {
    let known: Vec<(String, Known)> = cache
        .known_habitats()
        .into_iter()
        .map(|h| {
            let k = Known::load(&cache.known(&h));
            (h, k)
        })
        .collect();
    let users = |kind: HostKind, name: &str| -> Vec<String> {
        known
            .iter()
            .filter(|(_, k)| match kind {
                HostKind::Repos => k.repos.iter().any(|r| r == name),
                HostKind::Tools => k.tools.iter().any(|t| t == name),
                _ => false,
            })
            .map(|(h, _)| h.clone())
            .collect()
    };
    let mut out = Vec::new();
    let listed = |dir: &Path| -> Vec<(String, PathBuf)> {
        let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // A mirror's lock file (`MIRROR.lock`) goes with its mirror.
    for (name, path) in listed(&cache.repos())
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".lock"))
    {
        out.push(HostEntry {
            kind: HostKind::Repos,
            bytes: du(&path),
            used_by: users(HostKind::Repos, &name),
            path,
        });
    }
    for (name, path) in listed(&cache.tools().join("sha256")) {
        out.push(HostEntry {
            kind: HostKind::Tools,
            bytes: du(&path),
            used_by: users(HostKind::Tools, &name),
            path,
        });
    }
    for (_, path) in listed(&cache.bootstrap()) {
        out.push(HostEntry {
            kind: HostKind::Bootstrap,
            bytes: du(&path),
            used_by: Vec::new(),
            path,
        });
    }
    for (kind, dir) in [(HostKind::Digests, "digests"), (HostKind::Pushed, "pushed")] {
        for (name, path) in listed(&cache.root().join(dir)) {
            let habitat = name.strip_suffix(".json").unwrap_or(&name).to_string();
            out.push(HostEntry {
                kind,
                bytes: du(&path),
                used_by: vec![habitat],
                path,
            });
        }
    }
    out
}

/// The bytes of the files under `path`, not following symlinks.
fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.filter_map(Result::ok).map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

/// One thing a prune did, as it does it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneEvent {
    /// Another build of the habitat holds its lock; the prune waits.
    Waiting { habitat: String, holder: String },
    /// A snapshot was removed (or, in a dry run, would be).
    Removed {
        habitat: String,
        id: String,
        phase: Phase,
        /// `6-setup`, or a step's `6-setup.3`.
        tag: String,
        key: String,
        tags: Vec<String>,
        /// The bytes its layers added over its parent's.
        own_bytes: u64,
    },
    /// The engine would not remove it (a container made meanwhile, a child
    /// image another tool built on it): kept.
    Refused {
        habitat: String,
        id: String,
        message: String,
    },
    /// A snapshot the level would take is kept: containers use it.
    InUse {
        habitat: String,
        id: String,
        phase: Phase,
        tag: String,
        key: String,
        containers: Vec<String>,
    },
    /// A bootstrap base this cache made was removed (or would be).
    BootstrapRemoved {
        id: String,
        tags: Vec<String>,
        bytes: u64,
    },
    /// A bootstrap base this cache made is kept: containers use it, or the
    /// engine would not remove it (images built on it).
    BootstrapKept {
        id: String,
        tags: Vec<String>,
        why: String,
    },
    /// A host cache entry was removed (or would be).
    HostRemoved {
        kind: HostKind,
        path: PathBuf,
        bytes: u64,
    },
}

/// What a prune did, in sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneSummary {
    pub removed: usize,
    /// Bytes of layers no image left holds, plus the host entries removed.
    pub freed: u64,
    pub kept_in_use: usize,
    pub refused: usize,
}

/// Why a prune could not run.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot {what} `{}`: {source}", path.display())]
    Host {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// What to prune.
#[derive(Debug, Clone)]
pub struct PruneRequest {
    /// The habitats by name (with `all`, besides every known one).
    pub habitats: Vec<String>,
    pub all: bool,
    pub level: Level,
    /// Overrides each habitat's recorded `cache.keep`.
    pub keep: Option<usize>,
    /// Only say what would be removed.
    pub dry_run: bool,
    /// The chains the habitats' configs plan now.
    pub planned: Planned,
}

/// Carries `req` out, holding each habitat's build lock while it works on
/// it (not in a dry run, which changes nothing).
pub async fn prune<E: Engine>(
    engine: &E,
    cache: &CacheDir,
    req: &PruneRequest,
    on_event: &mut (dyn FnMut(PruneEvent) + Send),
) -> Result<PruneSummary, PruneError> {
    let PruneRequest {
        habitats,
        all,
        level,
        keep,
        dry_run,
        planned,
    } = req.clone();
    let names = if all {
        let mut n = cache.known_habitats();
        n.extend(
            habitats
                .iter()
                .filter(|h| !n.contains(h))
                .cloned()
                .collect::<Vec<_>>(),
        );
        n
    } else {
        habitats
    };
    let mut summary = PruneSummary::default();
    let locks = lock::lock_dir();
    for name in &names {
        let _lock = match dry_run {
            true => None,
            false => {
                let mut on_wait = |holder: &str| {
                    on_event(PruneEvent::Waiting {
                        habitat: name.clone(),
                        holder: holder.to_string(),
                    })
                };
                let l = BuildLock::acquire_async(&locks, &engine.identity(), name, &mut on_wait)
                    .await
                    .map_err(|source| PruneError::Host {
                        what: "take the build lock in",
                        path: locks.clone(),
                        source,
                    })?;
                Some(l)
            }
        };
        let keep =
            keep.unwrap_or_else(|| Known::load(&cache.known(name)).keep.unwrap_or(DEFAULT_KEEP));
        let current = match planned.get(name) {
            Some(Ok(chain)) => Some(chain),
            _ => None,
        };
        let what = LockedPrune {
            level,
            keep,
            dry_run,
            current,
        };
        let s = prune_locked(engine, cache, name, &what, on_event).await?;
        summary.removed += s.removed;
        summary.freed += s.freed;
        summary.kept_in_use += s.kept_in_use;
        summary.refused += s.refused;
    }
    // The host cache, once every habitat is done: what is unused is judged
    // over all known habitats.
    let scope: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    if level == Level::Nuke {
        let s = prune_bootstrap_bases(engine, cache, &scope, all, dry_run, on_event).await?;
        summary.removed += s.removed;
        summary.freed += s.freed;
        summary.kept_in_use += s.kept_in_use;
        summary.refused += s.refused;
    }
    let host = {
        let cache = cache.clone();
        tokio::task::spawn_blocking(move || host_entries(&cache))
            .await
            .unwrap_or_default()
    };
    for e in host.iter().filter(|e| host_removed(e, level, &scope, all)) {
        if e.kind == HostKind::Bootstrap && !dry_run && !scratch_is_stale(e) {
            continue;
        }
        if !dry_run {
            if e.kind == HostKind::Repos {
                // A build fetching into it holds its lock: leave it be.
                let Some(_held) = try_lock_mirror(&e.path) else {
                    continue;
                };
                remove_path(&e.path)?;
                let mut lock = e.path.clone().into_os_string();
                lock.push(".lock");
                remove_path(Path::new(&lock))?;
            } else {
                remove_path(&e.path)?;
            }
        }
        summary.freed += e.bytes;
        on_event(PruneEvent::HostRemoved {
            kind: e.kind,
            path: e.path.clone(),
            bytes: e.bytes,
        });
    }
    Ok(summary)
}

/// Removes the bootstrap bases this cache made (SPEC §11: nuke removes
/// everything kiln made) that no habitat outside `scope` was built on (with
/// `all`, every one), unless a container uses one. Only the recorded ids
/// go, and only while each is still the one-layer image kiln imported: a
/// base another cache made, or one found rather than made, is never
/// touched. Each is removed under its bootstrap lock, so a build making it
/// meanwhile finishes first.
async fn prune_bootstrap_bases<E: Engine>(
    engine: &E,
    cache: &CacheDir,
    scope: &BTreeSet<&str>,
    all: bool,
    dry_run: bool,
    on_event: &mut (dyn FnMut(PruneEvent) + Send),
) -> Result<PruneSummary, PruneError> {
    let mut index = MadeIndex::load(&cache.bootstrap_made());
    let made: Vec<(String, String)> = index
        .made()
        .map(|(i, k)| (i.to_string(), k.to_string()))
        .collect();
    let mut summary = PruneSummary::default();
    if made.is_empty() {
        return Ok(summary);
    }
    let containers = containers_by_image(engine).await?;
    let known: Vec<(String, Option<String>)> = cache
        .known_habitats()
        .into_iter()
        .map(|h| {
            let base = Known::load(&cache.known(&h)).base_image;
            (h, base)
        })
        .collect();
    let locks = lock::lock_dir();
    for (id, key) in made {
        let Some(info) = engine.image_inspect(&id).await? else {
            index.forget(&id);
            continue;
        };
        let ours = info.layers.len() == 1
            && info
                .config
                .labels
                .get(crate::image::labels::LABEL_BOOTSTRAP)
                == Some(&key);
        if !ours {
            continue;
        }
        let used_outside = known.iter().any(|(h, base)| {
            !scope.contains(h.as_str())
                && base
                    .as_ref()
                    .is_some_and(|b| *b == info.id || info.repo_tags.contains(b))
        });
        if used_outside && !all {
            continue;
        }
        if let Some(names) = containers.get(&info.id) {
            summary.kept_in_use += 1;
            on_event(PruneEvent::BootstrapKept {
                id: info.id.clone(),
                tags: info.repo_tags.clone(),
                why: format!("in use by container {}", names.join(", ")),
            });
            continue;
        }
        if !dry_run {
            let _lock = BuildLock::acquire_async(
                &locks,
                &engine.identity(),
                &format!("+bootstrap-{}", &key[..key.len().min(16)]),
                &mut |_: &str| {},
            )
            .await
            .map_err(|source| PruneError::Host {
                what: "take the bootstrap lock in",
                path: locks.clone(),
                source,
            })?;
            match engine.remove_image(&info.id).await {
                Ok(()) | Err(EngineError::NoSuchImage(_)) => {}
                Err(EngineError::Refused { message, .. }) => {
                    summary.refused += 1;
                    on_event(PruneEvent::BootstrapKept {
                        id: info.id.clone(),
                        tags: info.repo_tags.clone(),
                        why: format!("the engine refused: {message}"),
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            // A forced removal of an image others are built on only
            // untags it (a build finds it again by its label).
            if engine.image_inspect(&info.id).await?.is_some() {
                summary.refused += 1;
                on_event(PruneEvent::BootstrapKept {
                    id: info.id.clone(),
                    tags: info.repo_tags.clone(),
                    why: "images are built on it (only untagged)".to_string(),
                });
                continue;
            }
            index.forget(&info.id);
        }
        summary.removed += 1;
        summary.freed += info.size;
        on_event(PruneEvent::BootstrapRemoved {
            id: info.id.clone(),
            tags: info.repo_tags.clone(),
            bytes: info.size,
        });
    }
    if !dry_run {
        let _ = index.save();
    }
    Ok(summary)
}

/// The mirror's lock (`MIRROR.lock`, as `sources::repo` takes it), when no
/// build holds it; `Some` also when there is no lock file to take.
fn try_lock_mirror(mirror: &Path) -> Option<Option<std::fs::File>> {
    let mut lock = mirror.as_os_str().to_owned();
    lock.push(".lock");
    match std::fs::File::options().read(true).write(true).open(&lock) {
        Ok(f) => f.try_lock().ok().map(|()| Some(f)),
        Err(_) => Some(None),
    }
}

/// Whether bootstrap scratch `e` was left by a process that is gone.
fn scratch_is_stale(e: &HostEntry) -> bool {
    let Some(parent) = e.path.parent() else {
        return false;
    };
    super::scratch::stale(parent, "debootstrap-").contains(&e.path)
}

fn remove_path(path: &Path) -> Result<(), PruneError> {
    let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let r = if is_dir {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(PruneError::Host {
            what: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// What one habitat's prune does.
#[derive(Debug, Clone, Copy)]
pub struct LockedPrune<'a> {
    pub level: Level,
    pub keep: usize,
    pub dry_run: bool,
    /// The chain its config plans now; `None`: the recorded one.
    pub current: Option<&'a CurrentChain>,
}

/// Prunes one habitat's snapshots; the caller holds its lock (a build runs
/// the soft prune from inside its own).
pub async fn prune_locked<E: Engine>(
    engine: &E,
    cache: &CacheDir,
    habitat: &str,
    what: &LockedPrune<'_>,
    on_event: &mut (dyn FnMut(PruneEvent) + Send),
) -> Result<PruneSummary, PruneError> {
    let LockedPrune {
        level,
        keep,
        dry_run,
        current,
    } = *what;
    let containers = containers_by_image(engine).await?;
    let (holdings, mut index) = holdings(engine, cache, habitat, &containers, current).await?;
    let status = assessed(holdings, keep, None);
    let plan = &status.levels[Level::ALL.iter().position(|l| *l == level).unwrap_or(0)];
    let h = &status.holdings;
    let mut summary = PruneSummary {
        kept_in_use: plan.in_use.len(),
        ..PruneSummary::default()
    };
    for (i, names) in &plan.in_use {
        let s = &h.snapshots[*i];
        on_event(PruneEvent::InUse {
            habitat: habitat.to_string(),
            id: s.id.clone(),
            phase: s.phase,
            tag: s.tag(),
            key: s.key.clone(),
            containers: names.clone(),
        });
    }
    let mut gone = Vec::new();
    for &i in &plan.remove {
        let s = &h.snapshots[i];
        if !dry_run {
            match engine.remove_image(&s.id).await {
                Ok(()) | Err(EngineError::NoSuchImage(_)) => {}
                Err(EngineError::Refused { message, .. }) => {
                    summary.refused += 1;
                    on_event(PruneEvent::Refused {
                        habitat: habitat.to_string(),
                        id: s.id.clone(),
                        message,
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        index.forget(&s.id);
        gone.push(i);
        summary.removed += 1;
        on_event(PruneEvent::Removed {
            habitat: habitat.to_string(),
            id: s.id.clone(),
            phase: s.phase,
            tag: s.tag(),
            key: s.key.clone(),
            tags: s.tags.clone(),
            own_bytes: status.assessed[i].own_bytes,
        });
    }
    // What was freed, from what actually went.
    let done = PrunePlan {
        remove: gone,
        ..plan.clone()
    };
    summary.freed = prune::freed(h, &done.remove).0;
    if !dry_run {
        let _ = index.save();
        let held: BTreeSet<&str> = h
            .snapshots
            .iter()
            .enumerate()
            .filter(|(i, _)| !done.remove.contains(i))
            // A verify pass is recorded on the final image it led to.
            .flat_map(|(_, s)| s.keys().chain(s.verified.as_deref()))
            .collect();
        let mut used = LastUse::load(&cache.used(habitat));
        used.retain(|k| held.contains(k));
        let _ = used.save();
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_entries_go_at_the_levels_the_spec_names() {
        let e = |kind, used_by: &[&str]| HostEntry {
            kind,
            path: PathBuf::from("/x"),
            bytes: 1,
            used_by: used_by.iter().map(|s| s.to_string()).collect(),
        };
        let web: BTreeSet<&str> = BTreeSet::from(["web"]);
        use HostKind::*;
        use Level::*;
        // (entry, level, all) → removed
        let table = [
            (e(Repos, &[]), Soft, false, false),
            (e(Repos, &[]), Medium, false, true),
            (e(Tools, &[]), Hard, false, true),
            (e(Repos, &["web"]), Hard, false, false),
            (e(Repos, &["web"]), Nuke, false, true),
            (e(Repos, &["web", "api"]), Nuke, false, false),
            (e(Repos, &["web", "api"]), Nuke, true, true),
            (e(Digests, &["web"]), Medium, false, false),
            (e(Digests, &["web"]), Nuke, false, true),
            (e(Digests, &["api"]), Nuke, false, false),
            (e(Pushed, &["web"]), Soft, false, false),
            (e(Pushed, &["web"]), Medium, false, false),
            (e(Pushed, &["web"]), Hard, true, false),
            (e(Pushed, &["web"]), Nuke, false, true),
            (e(Pushed, &["api"]), Nuke, false, false),
            (e(Pushed, &["api"]), Nuke, true, true),
            (e(Bootstrap, &[]), Hard, true, false),
            (e(Bootstrap, &[]), Nuke, false, false),
            (e(Bootstrap, &[]), Nuke, true, true),
        ];
        for (entry, level, all, want) in table {
            assert_eq!(
                host_removed(&entry, level, &web, all),
                want,
                "{entry:?} at {level:?} all={all}"
            );
        }
    }
}
