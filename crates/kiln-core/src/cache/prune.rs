//! The prune policy (SPEC §11), pure: given the snapshots one habitat holds
//! (phase, key, parent, layers, tags, the containers using each, when each
//! was last used and how long it took to build) and its current chain, which
//! snapshots each level removes, what that frees, and what the next build
//! would then cost. No engine, clock or file here: `cache::status` gathers
//! the facts and carries a plan out; this decides.
//!
//! The roots that keep a snapshot alive are the current chain, a tag the
//! user gave it, and a container that uses it. A root also keeps every
//! ancestor (by the `dev.kiln.parent` links): removing an image a kept one
//! is built on frees nothing (the layers stay) and the engine refuses it
//! (a committed image's children depend on it).
//!
//! Levels, each removing all the one before removes and more:
//! - `soft`: `old` snapshots (no root), except those of the `keep` most
//!   recently used chains besides the current one;
//! - `medium`: every snapshot off the current chain (tagged ones too);
//! - `hard`: the current chain as well, but for its base snapshot;
//! - `nuke`: everything.
//!
//! At every level a snapshot in use by a container, and its ancestors, stay.

use std::collections::{BTreeMap, BTreeSet};

use crate::phase::Phase;

/// One snapshot image kiln made, as the engine and the host records tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The image id, `sha256:…`.
    pub id: String,
    pub phase: Phase,
    /// Its key (`dev.kiln.key`).
    pub key: String,
    /// The key of the phase before it (`dev.kiln.parent`); that phase may be
    /// unconfigured or verify, which hold no image: see [`Holdings::links`].
    pub parent: String,
    /// The verify key a final image records as passed (`dev.kiln.verified`).
    pub verified: Option<String>,
    /// Layer diff ids, bottom first.
    pub layers: Vec<String>,
    /// Every tag pointing at it (kiln's own and the user's).
    pub tags: Vec<String>,
    /// Names of the containers created from it.
    pub containers: Vec<String>,
    /// Seconds since the epoch.
    pub created: Option<u64>,
    pub last_used: Option<u64>,
    /// How long its phase took to build (`dev.kiln.duration-ms`); for a
    /// step's image that is not its phase's last, how long the step took.
    pub build_ms: Option<u64>,
    /// Set on the image of a step of a phase run in steps (SPEC §5). An
    /// image that is not its phase's last step is no phase snapshot: its
    /// `key` is the step's key and its `parent` the key it was chained from.
    pub step: Option<StepOf>,
}

/// Which step of its phase an image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOf {
    /// 1-based: the `3` of `6-setup.3`.
    pub number: usize,
    /// The step's key (`dev.kiln.step-key`).
    pub key: String,
    /// How long the step itself took (`dev.kiln.step-duration-ms`; on an
    /// earlier step's image, `dev.kiln.duration-ms` says the same).
    pub ms: Option<u64>,
}

impl Snapshot {
    /// `6-setup`, or for a step's image that is not its phase's snapshot,
    /// `6-setup.3`.
    pub fn tag(&self) -> String {
        match &self.step {
            Some(st) if !self.is_phase_snapshot() => {
                crate::keys::steps::step_tag(self.phase, st.number)
            }
            _ => self.phase.tag(),
        }
    }

    /// Whether it is its phase's snapshot (for a phase in steps, the last
    /// step's image), not only an earlier step's.
    pub fn is_phase_snapshot(&self) -> bool {
        self.step.as_ref().is_none_or(|st| st.key != self.key)
    }

    /// The keys it holds: its phase's (or step's) and its step's.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.key.as_str()).chain(
            self.step
                .as_ref()
                .map(|st| st.key.as_str())
                .filter(|k| *k != self.key),
        )
    }
}

/// What one habitat holds, and the facts the policy reads beside it.
#[derive(Debug, Clone, Default)]
pub struct Holdings {
    pub habitat: String,
    pub snapshots: Vec<Snapshot>,
    /// The current chain: every phase's key in order, and whether the phase
    /// is configured (empty when the habitat was never built here).
    pub current: Vec<(Phase, String, bool)>,
    /// The step keys of the current chain's phases run in steps, in order:
    /// phase, step number, key. Part of the current chain.
    pub current_steps: Vec<(Phase, usize, String)>,
    /// Key → the key of the phase before it, for every chain builds here
    /// recorded, so a parent key held by no image (an unconfigured phase,
    /// verify) leads on to the image it was built on. A step's key links to
    /// the key it was chained from (the step before, or for the first step
    /// the phase before), so the last step's image, its phase's snapshot,
    /// is a child of the step before it.
    pub links: BTreeMap<String, String>,
    /// Layer diff id → its size in bytes (see [`layer_sizes`]).
    pub layer_sizes: BTreeMap<String, u64>,
    /// Layers images outside `snapshots` hold (a base image): never freed.
    pub external_layers: BTreeSet<String>,
}

/// A prune level, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Soft,
    Medium,
    Hard,
    Nuke,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Soft, Level::Medium, Level::Hard, Level::Nuke];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Soft => "soft",
            Level::Medium => "medium",
            Level::Hard => "hard",
            Level::Nuke => "nuke",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| format!("no prune level `{s}`; the levels are soft, medium, hard, nuke"))
    }
}

/// Why a snapshot is held, strongest last: a prune at a level removes the
/// states below that level's protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// No root: what `soft` takes (beyond the `keep` chains).
    Old,
    /// Tagged by the user (or built on by a tagged one).
    Tagged,
    /// On the current config's chain.
    Current,
    /// A container uses it (or one built on it): never removed.
    InUse,
}

impl State {
    pub const ALL: [State; 4] = [State::Current, State::Tagged, State::InUse, State::Old];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Old => "old",
            State::Tagged => "tagged",
            State::Current => "current",
            State::InUse => "in use",
        }
    }
}

/// What keeps a snapshot alive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Root {
    /// On the current chain.
    Current,
    /// A tag the user gave it.
    Tag(String),
    /// A container made from it.
    Container(String),
}

impl Root {
    fn state(&self) -> State {
        match self {
            Root::Current => State::Current,
            Root::Tag(_) => State::Tagged,
            Root::Container(_) => State::InUse,
        }
    }
}

/// A root, held directly or through a snapshot built on this one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held {
    pub root: Root,
    /// The id of the descendant that holds the root; `None` when it is this
    /// snapshot's own.
    pub via: Option<String>,
}

/// One snapshot as `cache status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessed {
    /// Index into [`Holdings::snapshots`].
    pub index: usize,
    pub state: State,
    pub roots: Vec<Held>,
    /// The bytes its layers add over its parent's.
    pub own_bytes: u64,
}

/// What a prune at one level removes, frees and costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunePlan {
    pub level: Level,
    /// Indices into [`Holdings::snapshots`], in removal order (descendants
    /// before their ancestors, so the engine never sees a parent go first).
    pub remove: Vec<usize>,
    /// Snapshots the level would take but a container uses (directly or by
    /// a descendant): index and the containers.
    pub in_use: Vec<(usize, Vec<String>)>,
    /// Bytes of layers no image left holds.
    pub frees: u64,
    /// Bytes of the removed snapshots' layers that a kept image still holds.
    pub shared: u64,
    /// The phases of the current chain the next build would run again.
    pub rerun: Vec<Phase>,
    /// Of those run in steps, the steps it would run (phase, number): a
    /// phase resumes after its deepest step an image still holds.
    pub rerun_steps: Vec<(Phase, usize)>,
    /// Their recorded build times, summed.
    pub rerun_ms: u64,
    /// Those of them with no recorded time.
    pub rerun_unknown: Vec<Phase>,
}

/// Whether `tag` is one kiln writes for `habitat` (a phase tag, `latest`,
/// `final-KEY12`), as against one the user gave.
pub fn is_kiln_tag(habitat: &str, tag: &str) -> bool {
    let Some(t) = tag
        .strip_prefix("habitat-")
        .and_then(|r| r.strip_prefix(habitat))
        .and_then(|r| r.strip_prefix(':'))
    else {
        return false;
    };
    t == "latest"
        || t.strip_prefix("final-")
            .is_some_and(|k| k.len() == 12 && k.bytes().all(|b| b.is_ascii_hexdigit()))
        || Phase::ALL.iter().any(|p| {
            // `6-setup`, and a step of it, `6-setup.2`.
            t.strip_prefix(p.tag().as_str()).is_some_and(|rest| {
                rest.is_empty()
                    || rest
                        .strip_prefix('.')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
        })
}

/// The size of every layer, from the images' layer lists and total sizes
/// (what the engine's listing gives): a layer's size is what an image
/// weighs over the longest other image whose layers are a prefix of its
/// own. Layers the prefixes cannot tell apart are counted on the topmost.
pub fn layer_sizes(images: &[(&[String], u64)]) -> BTreeMap<String, u64> {
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_by_key(|&i| images[i].0.len());
    let mut prefix_size: std::collections::HashMap<&[String], u64> = Default::default();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for i in order {
        let (layers, size) = images[i];
        let (p, below) = (0..layers.len())
            .rev()
            .find_map(|n| prefix_size.get(&layers[..n]).map(|s| (n, *s)))
            .unwrap_or((0, 0));
        let mut rest = size.saturating_sub(below);
        let fresh: Vec<&String> = layers[p..]
            .iter()
            .filter(|l| match sizes.get(*l) {
                Some(s) => {
                    rest = rest.saturating_sub(*s);
                    false
                }
                None => true,
            })
            .collect();
        if let Some((top, others)) = fresh.split_last() {
            for l in others {
                sizes.insert((*l).clone(), 0);
            }
            sizes.insert((*top).clone(), rest);
        }
        prefix_size.entry(layers).or_insert(size);
    }
    sizes
}

/// The graph of one habitat's snapshots: each one's parents (the images
/// holding the key it was built on) and children.
struct Graph {
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
}

impl Graph {
    fn new(h: &Holdings) -> Graph {
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, s) in h.snapshots.iter().enumerate() {
            for k in s.keys() {
                by_key.entry(k).or_default().push(i);
            }
        }
        let n = h.snapshots.len();
        let (mut parents, mut children) = (vec![Vec::new(); n], vec![Vec::new(); n]);
        for (i, s) in h.snapshots.iter().enumerate() {
            // A step's image is built on the step before it (or, the first,
            // on the phase before), whatever phase its labels name.
            let mut key = s
                .step
                .as_ref()
                .and_then(|st| h.links.get(&st.key))
                .unwrap_or(&s.parent)
                .as_str();
            // Through unconfigured phases and verify, which hold no image;
            // a chain has ten phases, so ten steps reach its base.
            for _ in 0..Phase::ALL.len() {
                if key.is_empty() || s.keys().any(|k| k == key) {
                    break;
                }
                if let Some(ps) = by_key.get(key) {
                    parents[i] = ps.iter().copied().filter(|&p| p != i).collect();
                    break;
                }
                match h.links.get(key) {
                    Some(k) => key = k.as_str(),
                    None => break,
                }
            }
            for &p in &parents[i] {
                children[p].push(i);
            }
        }
        Graph { parents, children }
    }

    /// `start` and every ancestor of it.
    fn ancestors(&self, start: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = start.into_iter().collect();
        while let Some(i) = todo.pop() {
            if seen.insert(i) {
                todo.extend(&self.parents[i]);
            }
        }
        seen
    }

    /// Each snapshot's depth: the longest run of parents below it.
    fn depths(&self) -> Vec<usize> {
        fn depth(
            g: &Graph,
            i: usize,
            memo: &mut [Option<usize>],
            on: &mut BTreeSet<usize>,
        ) -> usize {
            if let Some(d) = memo[i] {
                return d;
            }
            // A cycle (links recorded by different configs) ends the walk.
            if !on.insert(i) {
                return 0;
            }
            let d = g.parents[i]
                .iter()
                .map(|&p| depth(g, p, memo, on) + 1)
                .max()
                .unwrap_or(0);
            on.remove(&i);
            memo[i] = Some(d);
            d
        }
        let mut memo = vec![None; self.parents.len()];
        (0..self.parents.len())
            .map(|i| depth(self, i, &mut memo, &mut BTreeSet::new()))
            .collect()
    }
}

/// The keys of the current chain's configured phases.
fn current_keys(h: &Holdings) -> BTreeSet<&str> {
    h.current
        .iter()
        .filter(|(_, _, present)| *present)
        .map(|(_, k, _)| k.as_str())
        .chain(h.current_steps.iter().map(|(_, _, k)| k.as_str()))
        .collect()
}

/// Whether `s` holds a key of the current chain (a phase's or a step's).
fn on_current(s: &Snapshot, current: &BTreeSet<&str>) -> bool {
    s.keys().any(|k| current.contains(k))
}

/// Every snapshot's state, roots and own size, in the order of
/// [`Holdings::snapshots`].
pub fn assess(h: &Holdings) -> Vec<Assessed> {
    let g = Graph::new(h);
    let current = current_keys(h);
    let mut roots: Vec<BTreeSet<Held>> = vec![BTreeSet::new(); h.snapshots.len()];
    for (i, s) in h.snapshots.iter().enumerate() {
        let mut own = Vec::new();
        if on_current(s, &current) {
            own.push(Root::Current);
        }
        own.extend(
            s.tags
                .iter()
                .filter(|t| !is_kiln_tag(&h.habitat, t))
                .map(|t| Root::Tag(t.clone())),
        );
        own.extend(s.containers.iter().map(|c| Root::Container(c.clone())));
        for root in own {
            for a in g.ancestors([i]) {
                let via = (a != i).then(|| s.id.clone());
                roots[a].insert(Held {
                    root: root.clone(),
                    via,
                });
            }
        }
    }
    h.snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            // One entry per root: the snapshot's own, else the first holder.
            let mut by_root: BTreeMap<&Root, Option<&String>> = BTreeMap::new();
            for r in &roots[i] {
                let via = by_root.entry(&r.root).or_insert(r.via.as_ref());
                if r.via.is_none() {
                    *via = None;
                }
            }
            let named: Vec<Held> = by_root
                .into_iter()
                .map(|(root, via)| Held {
                    root: root.clone(),
                    via: via.cloned(),
                })
                .collect();
            let state = named
                .iter()
                .map(|r| r.root.state())
                .max()
                .unwrap_or(State::Old);
            let below: BTreeSet<&str> = g.parents[i]
                .iter()
                .flat_map(|&p| h.snapshots[p].layers.iter().map(String::as_str))
                .collect();
            let own_bytes = s
                .layers
                .iter()
                .filter(|l| !below.contains(l.as_str()))
                .map(|l| h.layer_sizes.get(l).copied().unwrap_or(0))
                .sum();
            Assessed {
                index: i,
                state,
                roots: named,
                own_bytes,
            }
        })
        .collect()
}

/// What a prune at `level` would do, keeping the `keep` most recently used
/// chains besides the current one at `soft`.
pub fn plan(h: &Holdings, level: Level, keep: usize) -> PrunePlan {
    let g = Graph::new(h);
    let assessed = assess(h);
    let current = current_keys(h);
    let n = h.snapshots.len();
    let candidate: Vec<bool> = (0..n)
        .map(|i| {
            let s = &h.snapshots[i];
            let on_current = on_current(s, &current);
            match level {
                Level::Soft => assessed[i].state == State::Old,
                Level::Medium => !on_current && assessed[i].state < State::InUse,
                Level::Hard => {
                    !(on_current && s.phase == Phase::Base) && assessed[i].state < State::InUse
                }
                Level::Nuke => assessed[i].state < State::InUse,
            }
        })
        .collect();
    let mut kept: BTreeSet<usize> = (0..n).filter(|&i| !candidate[i]).collect();
    if level == Level::Soft {
        kept.extend(g.ancestors(kept_chains(h, &g, &current, keep)));
    }
    // Whatever a kept snapshot is built on stays too.
    let kept = g.ancestors(kept);
    let mut remove: Vec<usize> = (0..n).filter(|i| !kept.contains(i)).collect();
    // Children first: deepest phase, then deepest in the graph (steps of
    // one phase are built on each other), then the later step, then the
    // order given.
    let depth = g.depths();
    remove.sort_by_key(|&i| {
        let s = &h.snapshots[i];
        (
            std::cmp::Reverse(s.phase),
            std::cmp::Reverse(depth[i]),
            std::cmp::Reverse(s.step.as_ref().map_or(0, |st| st.number)),
            i,
        )
    });
    let in_use = (0..n)
        .filter(|&i| {
            assessed[i].state == State::InUse && would_take(h, &current, &assessed[i], level)
        })
        .map(|i| {
            let mut names: Vec<String> = assessed[i]
                .roots
                .iter()
                .filter_map(|r| match &r.root {
                    Root::Container(c) => Some(c.clone()),
                    _ => None,
                })
                .collect();
            names.dedup();
            (i, names)
        })
        .collect();
    let (frees, shared) = freed(h, &remove);
    let Rerun {
        phases: rerun,
        steps: rerun_steps,
        ms: rerun_ms,
        unknown: rerun_unknown,
    } = next_build(h, &remove);
    PrunePlan {
        level,
        remove,
        in_use,
        frees,
        shared,
        rerun,
        rerun_steps,
        rerun_ms,
        rerun_unknown,
    }
}

/// Whether `level` would take this snapshot were no container using it.
fn would_take(h: &Holdings, current: &BTreeSet<&str>, a: &Assessed, level: Level) -> bool {
    let s = &h.snapshots[a.index];
    let on_current = on_current(s, current);
    match level {
        Level::Soft => a.roots.iter().all(|r| matches!(r.root, Root::Container(_))),
        Level::Medium => !on_current,
        Level::Hard => !(on_current && s.phase == Phase::Base),
        Level::Nuke => true,
    }
}

/// The leaves of the `keep` most recently used chains besides the current
/// one: a chain is a snapshot nothing is built on, with its ancestors, and
/// was last used when its leaf was (or, never recorded, made).
fn kept_chains(h: &Holdings, g: &Graph, current: &BTreeSet<&str>, keep: usize) -> Vec<usize> {
    let mut leaves: Vec<usize> = (0..h.snapshots.len())
        .filter(|&i| g.children[i].is_empty() && !on_current(&h.snapshots[i], current))
        .collect();
    let when = |i: usize| {
        let s = &h.snapshots[i];
        s.last_used.or(s.created).unwrap_or(0)
    };
    leaves.sort_by_key(|&i| (std::cmp::Reverse(when(i)), h.snapshots[i].id.clone()));
    leaves.truncate(keep);
    leaves
}

/// Bytes freed by removing `remove` (layers no other image holds), and
/// bytes of their layers other images still hold.
pub fn freed(h: &Holdings, remove: &[usize]) -> (u64, u64) {
    let gone: BTreeSet<usize> = remove.iter().copied().collect();
    let mut held: BTreeSet<&str> = h.external_layers.iter().map(String::as_str).collect();
    for (i, s) in h.snapshots.iter().enumerate() {
        if !gone.contains(&i) {
            held.extend(s.layers.iter().map(String::as_str));
        }
    }
    let removed: BTreeSet<&str> = remove
        .iter()
        .flat_map(|&i| h.snapshots[i].layers.iter().map(String::as_str))
        .collect();
    let size = |l: &&str| h.layer_sizes.get(*l).copied().unwrap_or(0);
    let frees = removed
        .iter()
        .filter(|l| !held.contains(*l))
        .map(size)
        .sum();
    let shared = removed.iter().filter(|l| held.contains(*l)).map(size).sum();
    (frees, shared)
}

/// What the next build of the current chain runs again.
struct Rerun {
    phases: Vec<Phase>,
    steps: Vec<(Phase, usize)>,
    ms: u64,
    unknown: Vec<Phase>,
}

/// The phases the next build of the current chain runs again once `remove`
/// is gone (the planner's rule: the first configured phase no image holds,
/// and every configured phase after it; the first of them, when run in
/// steps, resumes after the deepest step an image holds), and their
/// recorded build times (a phase in steps: its steps' times).
fn next_build(h: &Holdings, remove: &[usize]) -> Rerun {
    let gone: BTreeSet<usize> = remove.iter().copied().collect();
    let left = || {
        h.snapshots
            .iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, s)| s)
    };
    let held = |phase: Phase, key: &str| {
        if phase == Phase::Verify {
            left().any(|s| s.verified.as_deref() == Some(key))
        } else {
            left().any(|s| s.key == key && s.is_phase_snapshot())
        }
    };
    let step_held = |key: &str| left().any(|s| s.step.as_ref().is_some_and(|st| st.key == key));
    let mut out = Rerun {
        phases: Vec::new(),
        steps: Vec::new(),
        ms: 0,
        unknown: Vec::new(),
    };
    for (phase, key, present) in &h.current {
        let first = out.phases.is_empty();
        if !*present || (first && held(*phase, key)) {
            continue;
        }
        out.phases.push(*phase);
        let steps: Vec<(usize, &str)> = h
            .current_steps
            .iter()
            .filter(|(p, _, _)| p == phase)
            .map(|(_, n, k)| (*n, k.as_str()))
            .collect();
        if steps.is_empty() {
            let time = h
                .snapshots
                .iter()
                .filter(|s| s.key == *key && s.phase == *phase)
                .find_map(|s| s.build_ms);
            match time {
                Some(t) => out.ms += t,
                None => out.unknown.push(*phase),
            }
            continue;
        }
        // Step keys chain, so the deepest step held proves those before
        // it; with every step held only a config-only image is made.
        let from = match first {
            true => steps
                .iter()
                .rposition(|(_, k)| step_held(k))
                .map_or(0, |i| i + 1),
            false => 0,
        };
        for (n, k) in &steps[from..] {
            out.steps.push((*phase, *n));
            // The longest: an image made over a cached last step (all
            // steps cached) records the moment that took.
            let time = h
                .snapshots
                .iter()
                .filter_map(|s| s.step.as_ref())
                .filter(|st| st.key == *k)
                .filter_map(|st| st.ms)
                .max();
            match time {
                Some(t) => out.ms += t,
                None if out.unknown.last() != Some(phase) => out.unknown.push(*phase),
                None => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kiln_tags_are_told_from_the_users() {
        for t in [
            "habitat-web:latest",
            "habitat-web:6-setup",
            "habitat-web:6-setup.2",
            "habitat-web:final-0123456789ab",
        ] {
            assert!(is_kiln_tag("web", t), "{t}");
        }
        for t in [
            "habitat-web:v1",
            "habitat-webx:latest",
            "habitat-web:final-xyz",
            "habitat-web:6-setup.x",
            "habitat-web:6-setupx",
            "web:latest",
            "registry.local/habitat-web:latest",
        ] {
            assert!(!is_kiln_tag("web", t), "{t}");
        }
    }

    #[test]
    fn layer_sizes_come_from_prefix_differences() {
        let l = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (a, ab, abc, abd) = (
            l(&["a"]),
            l(&["a", "b"]),
            l(&["a", "b", "c"]),
            l(&["a", "b", "d"]),
        );
        let sizes = layer_sizes(&[(&abc, 60), (&a, 10), (&ab, 30), (&abd, 100), (&ab, 30)]);
        let want: BTreeMap<String, u64> = [("a", 10), ("b", 20), ("c", 30), ("d", 70)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(sizes, want);
        // No prefix known: the whole image on its top layer.
        let xy = l(&["x", "y"]);
        let sizes = layer_sizes(&[(&xy, 5)]);
        assert_eq!((sizes["x"], sizes["y"]), (0, 5));
    }
}
