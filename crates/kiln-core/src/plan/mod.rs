//! `Plan`: what a build will do, phase by phase, and why. Pure: the key chain
//! plus the snapshots the engine already holds (and, with `registry.cache`,
//! the `cache-KEY` snapshots the registry holds) in, a plan out.

use std::collections::BTreeMap;

use crate::keys::{KeyChain, PhaseKey, StepKey};
use crate::phase::Phase;

pub mod reason;
pub mod snapshots;

use reason::why_changed;
pub use snapshots::Snapshots;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A snapshot with this key exists: reuse this image.
    Cached { image: String },
    /// Run the phase and commit a new snapshot.
    Build,
    /// The phase is not configured: its tag points at the previous image.
    Skip,
    /// The registry holds this phase's snapshot (`cache-KEY`), the deepest
    /// the build would otherwise run: pull `reference` instead of running it
    /// and the phases before it.
    Pull { reference: String },
    /// Would build, but the snapshot of a later `phase` (pulled, or at hand
    /// locally) holds what this one makes: nothing runs, no snapshot of this
    /// phase is made.
    Within { phase: Phase, pulled: bool },
}

/// The `cache-KEY` snapshots a registry holds: phase key → the reference an
/// engine pulls it by (`HOST/PATH@sha256:…`).
pub type RemoteHits = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPhase {
    pub phase: Phase,
    pub key: PhaseKey,
    pub action: Action,
    /// Why the phase builds (or why it is skipped); empty when cached.
    pub reason: String,
    /// For a phase that builds in steps (SPEC §5), what each step does:
    /// those before the first changed or failed one are cached. Empty when
    /// the phase is cached, skipped, or not run in steps.
    pub steps: Vec<PlannedStep>,
}

/// One step of a phase that builds in steps.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedStep {
    pub key: StepKey,
    /// `Cached` or `Build`; never `Skip`.
    pub action: Action,
    /// Why the step builds; empty when cached.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// `--rebuild PHASE`: build from this phase on, whatever the cache says.
    pub rebuild_from: Option<Phase>,
    /// `--no-cache`: build every phase.
    pub no_cache: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub phases: Vec<PlannedPhase>,
}

impl Plan {
    pub fn new(chain: &KeyChain, snaps: &Snapshots, opts: PlanOptions) -> Plan {
        Plan {
            phases: plan_from(&chain.0, snaps, chain, opts, None),
        }
    }

    /// The phases a registry lookup may replace: those the plan builds that
    /// are configured and not forced (`--rebuild`, `--no-cache` build
    /// locally, whatever a registry holds), deepest first, with their keys.
    pub fn remote_candidates(&self, opts: PlanOptions) -> Vec<(Phase, String)> {
        self.phases
            .iter()
            .rev()
            .filter(|p| p.action == Action::Build && pullable(p.phase, opts))
            .map(|p| (p.phase, p.key.key.to_string()))
            .collect()
    }

    /// The plan of a habitat with `registry.cache`, when the registry holds
    /// `hits`: the deepest phase the local plan builds whose snapshot is at
    /// hand (locally, or in the registry: then it is pulled) is taken, the
    /// phases before it that would build are within it, and the phases
    /// after it are planned as after a cached phase. Without such a phase,
    /// the local plan. (With no hits this finds a deeper local snapshot
    /// than the local plan uses: what a build that pulled one leaves.)
    pub fn with_remote(
        chain: &KeyChain,
        snaps: &Snapshots,
        opts: PlanOptions,
        hits: &RemoteHits,
    ) -> Plan {
        let local = Plan::new(chain, snaps, opts);
        let at_hand = |p: &PlannedPhase| cached_image(&p.key, snaps, chain);
        let Some(deepest) = local.phases.iter().rposition(|p| {
            p.action == Action::Build
                && pullable(p.phase, opts)
                && (hits.contains_key(p.key.key.as_str()) || at_hand(p).is_some())
        }) else {
            return local;
        };
        let d = &local.phases[deepest];
        let here = at_hand(d);
        let (phase, pulled) = (d.phase, here.is_none());
        let mut phases = Vec::with_capacity(local.phases.len());
        // Whether the phases so far leave an image a skipped phase's tag can point at.
        let mut image = false;
        for p in &local.phases[..deepest] {
            let action = match &p.action {
                Action::Cached { .. } => {
                    image = true;
                    p.action.clone()
                }
                Action::Skip if image => Action::Skip,
                _ => {
                    image = false;
                    Action::Within { phase, pulled }
                }
            };
            let reason = match action {
                Action::Within { .. } => format!("within {}'s snapshot", phase.tag()),
                _ => p.reason.clone(),
            };
            // A phase within the taken snapshot builds no step of its own.
            let steps = match action {
                Action::Within { .. } => Vec::new(),
                _ => p.steps.clone(),
            };
            phases.push(PlannedPhase {
                action,
                reason,
                steps,
                ..p.clone()
            });
        }
        phases.push(match here {
            Some(image) => PlannedPhase {
                action: Action::Cached { image },
                reason: String::new(),
                steps: Vec::new(),
                ..d.clone()
            },
            None => {
                // Why it is not at hand (not "after X rebuilt": nothing before it runs).
                let local_reason =
                    why_changed(&d.key, snaps).unwrap_or_else(|| "no snapshot here".into());
                PlannedPhase {
                    action: Action::Pull {
                        reference: hits[d.key.key.as_str()].clone(),
                    },
                    reason: format!("{local_reason}; the registry holds it"),
                    steps: Vec::new(),
                    ..d.clone()
                }
            }
        });
        phases.extend(plan_from(
            &chain.0[deepest + 1..],
            snaps,
            chain,
            opts,
            pulled.then_some(phase),
        ));
        Plan { phases }
    }

    pub fn get(&self, phase: Phase) -> &PlannedPhase {
        &self.phases[phase.index()]
    }

    /// True when nothing needs building or pulling.
    pub fn all_cached(&self) -> bool {
        self.phases.iter().all(|p| {
            matches!(
                p.action,
                Action::Cached { .. } | Action::Skip | Action::Within { pulled: false, .. }
            )
        })
    }

    /// The phase to pull from the registry, and its reference, if any.
    pub fn pull(&self) -> Option<(Phase, &str)> {
        self.phases.iter().find_map(|p| match &p.action {
            Action::Pull { reference } => Some((p.phase, reference.as_str())),
            _ => None,
        })
    }
}

/// Whether a phase may come from the registry: not forced to build.
fn pullable(phase: Phase, opts: PlanOptions) -> bool {
    !opts.no_cache && opts.rebuild_from.is_none_or(|from| phase < from)
}

/// Plans `keys` (a tail of `chain`, after an image that is at hand; after
/// the phase `pulled` from the registry when given) in order.
fn plan_from(
    keys: &[PhaseKey],
    snaps: &Snapshots,
    chain: &KeyChain,
    opts: PlanOptions,
    pulled: Option<Phase>,
) -> Vec<PlannedPhase> {
    let mut phases = Vec::with_capacity(keys.len());
    // The first phase that builds: every later phase builds after it.
    let mut first_built: Option<Phase> = None;
    for pk in keys {
        let phase = pk.phase;
        // Steps resume only where nothing before them builds: a forced
        // or earlier rebuild makes every step again.
        let resumable = first_built.is_none() && forced(phase, opts, first_built).is_none();
        let (action, mut reason) = if !pk.present() {
            (Action::Skip, "not configured".to_string())
        } else if let Some(reason) = forced(phase, opts, first_built) {
            (Action::Build, reason)
        } else if let Some(after) = first_built {
            let own = why_changed(pk, snaps);
            (
                Action::Build,
                own.unwrap_or_else(|| format!("after {after} rebuilt")),
            )
        } else {
            match cached_image(pk, snaps, chain) {
                Some(image) => (Action::Cached { image }, String::new()),
                None => (
                    Action::Build,
                    why_changed(pk, snaps).unwrap_or_else(|| {
                        if let Some(p) = pulled {
                            format!("after {p} pulled")
                        } else if phase == Phase::Verify {
                            "its inputs changed since it last passed".to_string()
                        } else {
                            "its previous phase returned to an older config".to_string()
                        }
                    }),
                ),
            }
        };
        let steps = match action {
            Action::Build if !pk.steps.is_empty() => {
                let steps = plan_steps(pk, snaps, resumable, &reason);
                if let Some(note) = resume_note(&steps) {
                    reason = format!("{reason}; {note}");
                }
                steps
            }
            _ => Vec::new(),
        };
        if action == Action::Build && first_built.is_none() {
            first_built = Some(phase);
        }
        phases.push(PlannedPhase {
            phase,
            key: pk.clone(),
            action,
            reason,
            steps,
        });
    }
    phases
}

fn forced(phase: Phase, opts: PlanOptions, first_built: Option<Phase>) -> Option<String> {
    if opts.no_cache {
        return Some("forced by --no-cache".to_string());
    }
    match opts.rebuild_from {
        // Only the first phase built says it was forced; later ones say after which.
        Some(from) if phase >= from && first_built.is_none() => {
            Some(format!("forced by --rebuild {from}"))
        }
        _ => None,
    }
}

fn cached_image(pk: &PhaseKey, snaps: &Snapshots, chain: &KeyChain) -> Option<String> {
    if pk.phase == Phase::Verify {
        // Verify commits no image of its own: a passed verify is recorded on the
        // final image it led to. Its snapshot is the previous phase's image.
        if !snaps.verified(pk.key.as_str()) {
            return None;
        }
        let prev = Phase::ALL[..pk.phase.index()]
            .iter()
            .rev()
            .find(|p| chain.get(**p).present())?;
        return snaps
            .image_for(chain.get(*prev).key.as_str())
            .map(str::to_string);
    }
    snaps.image_for(pk.key.as_str()).map(str::to_string)
}

/// The steps of a phase that builds: with `resumable`, those up to the
/// deepest step whose snapshot exists are cached (step keys chain, so that
/// step's snapshot proves every one before it); the rest build.
fn plan_steps(
    pk: &PhaseKey,
    snaps: &Snapshots,
    resumable: bool,
    phase_reason: &str,
) -> Vec<PlannedStep> {
    let hits = if resumable {
        pk.steps
            .iter()
            .rposition(|s| snaps.step_image(s.key.as_str()).is_some())
            .map_or(0, |i| i + 1)
    } else {
        0
    };
    let mut out = Vec::with_capacity(pk.steps.len());
    for (i, step) in pk.steps.iter().enumerate() {
        let (action, reason) = if i < hits {
            let image = snaps.step_image(step.key.as_str()).unwrap_or_default();
            (
                Action::Cached {
                    image: image.to_string(),
                },
                String::new(),
            )
        } else if i == hits {
            let reason = if resumable {
                reason::why_step_changed(pk.phase, step, snaps)
            } else {
                phase_reason.to_string()
            };
            (Action::Build, reason)
        } else {
            (Action::Build, format!("after step {} rebuilt", hits + 1))
        };
        out.push(PlannedStep {
            key: step.clone(),
            action,
            reason,
        });
    }
    out
}

/// What the phase's reason adds when some of its steps are cached.
fn resume_note(steps: &[PlannedStep]) -> Option<String> {
    let cached = steps
        .iter()
        .take_while(|s| matches!(s.action, Action::Cached { .. }))
        .count();
    if cached == 0 {
        return None;
    }
    Some(match steps.get(cached) {
        Some(s) => format!(
            "resumes at step {} of {} (`{}`), steps 1-{cached} cached",
            s.key.number,
            steps.len(),
            s.key.name
        ),
        None => format!("all {cached} steps cached"),
    })
}
