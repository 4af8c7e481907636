//! `Plan`: what a build will do, phase by phase, and why. Pure: the key chain
//! plus the snapshots the engine already holds in, a plan out.

use serde_json::Value;

use crate::inputs::changed_fields;
use crate::key_chain::{KeyChain, PhaseKey};
use crate::phase::Phase;
use crate::snapshots::Snapshots;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A snapshot with this key exists: reuse this image.
    Cached { image: String },
    /// Run the phase and commit a new snapshot.
    Build,
    /// The phase is not configured: its tag points at the previous image.
    Skip,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPhase {
    pub phase: Phase,
    pub key: PhaseKey,
    pub action: Action,
    /// Why the phase builds (or why it is skipped); empty when cached.
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
        let mut phases = Vec::with_capacity(chain.0.len());
        // The first phase that builds: every later phase builds after it.
        let mut first_built: Option<Phase> = None;
        for pk in &chain.0 {
            let phase = pk.phase;
            let (action, reason) = if !pk.present() {
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
                            if phase == Phase::Verify {
                                "its inputs changed since it last passed".to_string()
                            } else {
                                "its previous phase returned to an older config".to_string()
                            }
                        }),
                    ),
                }
            };
            if action == Action::Build && first_built.is_none() {
                first_built = Some(phase);
            }
            phases.push(PlannedPhase {
                phase,
                key: pk.clone(),
                action,
                reason,
            });
        }
        Plan { phases }
    }

    pub fn get(&self, phase: Phase) -> &PlannedPhase {
        &self.phases[phase.index()]
    }

    /// True when nothing needs building.
    pub fn all_cached(&self) -> bool {
        self.phases.iter().all(|p| p.action != Action::Build)
    }
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

/// Why this phase's inputs differ from the snapshot its tag points at; `None`
/// when its own inputs are unchanged (so only an earlier phase changed).
fn why_changed(pk: &PhaseKey, snaps: &Snapshots) -> Option<String> {
    let Some(tagged) = snaps.tagged(pk.phase) else {
        // Verify commits no image of its own (its tag points at the previous
        // phase's image), so no tag ever carries verify's inputs. Once a final
        // image exists verify has run before; only its key records that.
        if pk.phase == Phase::Verify && snaps.tagged(Phase::Final).is_some() {
            return None;
        }
        return Some("no snapshot yet".to_string());
    };
    if tagged.inputs == pk.inputs {
        return None;
    }
    Some(describe_change(pk.phase, &tagged.inputs, &pk.inputs))
}

fn describe_change(phase: Phase, old: &Value, new: &Value) -> String {
    let fields = changed_fields(old, new);
    let mut parts: Vec<String> = Vec::new();
    let mut config_fields: Vec<String> = Vec::new();
    for f in &fields {
        match (phase, f.as_str()) {
            (Phase::Base, _) => {
                parts.push(format!(
                    "the base moved ({} -> {})",
                    short_base(old),
                    short_base(new)
                ));
                break;
            }
            (Phase::Files, f) if f.ends_with(".content") => {
                let source = element(new, f)
                    .and_then(|e| e.get("source"))
                    .and_then(Value::as_str);
                parts.push(format!("input file changed: {}", source.unwrap_or(f)));
            }
            (Phase::Repos, f) if f.ends_with(".commit") => {
                let (o, n) = (element(old, f), element(new, f));
                let url = n
                    .and_then(|e| e.get("url"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let commit = |e: Option<&Value>| {
                    e.and_then(|e| e.get("commit"))
                        .and_then(Value::as_str)
                        .map(|c| c[..c.len().min(12)].to_string())
                        .unwrap_or_else(|| "?".to_string())
                };
                parts.push(format!(
                    "repo {url} moved from {} to {}",
                    commit(o),
                    commit(n)
                ));
            }
            (_, f) => config_fields.push(config_path(phase, f)),
        }
    }
    if !config_fields.is_empty() {
        parts.insert(0, format!("config changed: {}", config_fields.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!("config changed: {}", phase.name()));
    }
    parts.join("; ")
}

/// The list element a `[i].field` path points into.
fn element<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let idx: usize = path.strip_prefix('[')?.split(']').next()?.parse().ok()?;
    v.get(idx)
}

fn short_base(v: &Value) -> String {
    let s = v
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_str)
        .unwrap_or("none");
    let s = s.strip_prefix("sha256:").unwrap_or(s);
    s[..s.len().min(12)].to_string()
}

/// The `kiln.yaml` path of a changed input field, e.g. `setup.packages.apt`.
fn config_path(phase: Phase, field: &str) -> String {
    let field = match (phase, field) {
        // Fields may carry an index (`root[0]`): match on the name before it.
        (Phase::Setup, f) if matches!(f.split(['[', '.']).next(), Some("apt" | "npm" | "pip")) => {
            format!("packages.{f}")
        }
        (Phase::Setup, f)
            if matches!(
                f.split(['[', '.']).next(),
                Some("root" | "scripts" | "user")
            ) =>
        {
            format!("commands.{f}")
        }
        (Phase::Files, f) => format!("copies{f}"),
        (Phase::Env | Phase::Users | Phase::Repos | Phase::Tools, "(all)") => String::new(),
        (Phase::Env, f) => f.to_string(),
        (_, f) => f.to_string(),
    };
    let name = phase.name();
    match field.as_str() {
        "" | "(all)" => name.to_string(),
        f if f.starts_with('[') => format!("{name}{f}"),
        f => format!("{name}.{f}"),
    }
}
