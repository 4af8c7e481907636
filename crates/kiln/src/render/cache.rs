//! `kiln cache status` and `kiln cache prune` output: per habitat a table of
//! its snapshots (phase, key, state, own size, created, last used, build
//! time, what keeps it), totals per state, what each prune level frees and
//! what the next build would then cost; then the host cache by kind. With
//! `--json`, the same as one object. A prune prints each removal as it goes.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_core::cache::prune::{Held, Level, PrunePlan, Root, State};
use kiln_core::cache::status::{
    CacheStatus, CurrentFrom, HabitatStatus, HostKind, PruneEvent, PruneSummary, host_removed,
};
use serde_json::{Value, json};

use super::{bytes, millis};
use crate::render::stdout::{err, out};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `3m ago`, `2h ago`, `5d ago`; `-` when not recorded.
fn ago(at: Option<u64>, now: u64) -> String {
    let Some(at) = at else {
        return "-".to_string();
    };
    let s = now.saturating_sub(at);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

fn root_text(h: &Held, phase_of: &BTreeMap<&str, String>) -> String {
    let what = match &h.root {
        Root::Current => "current chain".to_string(),
        Root::Tag(t) => format!("tag {t}"),
        Root::Container(c) => format!("container {c}"),
    };
    match &h.via {
        Some(id) => format!(
            "{what} (via {})",
            phase_of
                .get(id.as_str())
                .cloned()
                .unwrap_or_else(|| short(id))
        ),
        None => what,
    }
}

fn short(key: &str) -> String {
    let k = key.strip_prefix("sha256:").unwrap_or(key);
    k[..k.len().min(12)].to_string()
}

/// What the next build runs after a level: `nothing runs again`, or the
/// phases and their recorded times.
fn next_build(p: &PrunePlan) -> String {
    if p.rerun.is_empty() {
        return "no phase runs again".to_string();
    }
    let first = p.rerun[0].tag();
    let last = p.rerun[p.rerun.len() - 1].tag();
    let span = if p.rerun.len() == 1 {
        first
    } else {
        format!("{first}..{last}")
    };
    let unknown = if p.rerun_unknown.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = p.rerun_unknown.iter().map(|p| p.name()).collect();
        format!("; {} not timed", names.join(", "))
    };
    // A phase in steps that resumes after its steps an image still holds.
    let resumes = p
        .rerun_steps
        .first()
        .filter(|(ph, n)| *ph == p.rerun[0] && *n > 1)
        .map(|(ph, n)| format!("; {} from step {n}", ph.name()))
        .unwrap_or_default();
    format!(
        "{} phase{} run again ({span}{resumes}), ~{}{unknown}",
        p.rerun.len(),
        if p.rerun.len() == 1 { "" } else { "s" },
        millis(p.rerun_ms)
    )
}

pub fn status(st: &CacheStatus, root: &Path, json: bool) {
    if json {
        out!("{}", status_json(st, root));
        return;
    }
    let now = now();
    for h in &st.habitats {
        habitat(h, now);
        out!("");
    }
    if st.habitats.is_empty() {
        out!(
            "no habitat has been built with this cache ({})",
            root.display()
        );
        out!("");
    }
    out!("host cache {}", root.display());
    out!(
        "{:<10} {:>7} {:>9} {:>7}",
        "KIND",
        "ENTRIES",
        "SIZE",
        "UNUSED"
    );
    for kind in HostKind::ALL {
        let entries: Vec<_> = st.host.iter().filter(|e| e.kind == kind).collect();
        let unused = match kind {
            HostKind::Repos | HostKind::Tools => entries
                .iter()
                .filter(|e| e.used_by.is_empty())
                .count()
                .to_string(),
            _ => "-".to_string(),
        };
        out!(
            "{:<10} {:>7} {:>9} {:>7}",
            kind.as_str(),
            entries.len(),
            bytes(entries.iter().map(|e| e.bytes).sum()),
            unused
        );
    }
    let frees: Vec<String> = Level::ALL
        .iter()
        .map(|l| {
            let n: u64 = st.host_removals(*l).iter().map(|e| e.bytes).sum();
            format!("{} {}", l.as_str(), bytes(n))
        })
        .collect();
    out!("prune frees on the host: {}", frees.join(", "));
}

fn habitat(h: &HabitatStatus, now: u64) {
    let hs = &h.holdings;
    let dir = h
        .dir
        .as_ref()
        .map(|d| format!(" ({})", d.display()))
        .unwrap_or_default();
    out!(
        "habitat `{}`{dir}: {} snapshot{}, cache.keep {}",
        hs.habitat,
        hs.snapshots.len(),
        if hs.snapshots.len() == 1 { "" } else { "s" },
        h.keep
    );
    if hs.current.is_empty() {
        out!("  (never built with this cache: no current chain)");
    } else if let CurrentFrom::LastBuild(Some(why)) = &h.current_from {
        out!("  (current chain: the last build's; {why})");
    }
    let phase_of: BTreeMap<&str, String> = hs
        .snapshots
        .iter()
        .map(|s| (s.id.as_str(), s.tag()))
        .collect();
    out!(
        "  {:<10} {:<12} {:<8} {:>9} {:>9} {:>9} {:>8}  KEPT BY",
        "PHASE",
        "KEY",
        "STATE",
        "SIZE",
        "CREATED",
        "LAST USED",
        "BUILD"
    );
    let mut rows: Vec<usize> = (0..hs.snapshots.len()).collect();
    // Current chain first, then by state, then newest first; phases in order.
    rows.sort_by_key(|&i| {
        let s = &hs.snapshots[i];
        (
            std::cmp::Reverse(h.assessed[i].state),
            std::cmp::Reverse(s.last_used.or(s.created)),
            s.phase,
            s.id.clone(),
        )
    });
    for i in rows {
        let s = &hs.snapshots[i];
        let a = &h.assessed[i];
        let kept: Vec<String> = a.roots.iter().map(|r| root_text(r, &phase_of)).collect();
        out!(
            "  {:<10} {:<12} {:<8} {:>9} {:>9} {:>9} {:>8}  {}",
            s.tag(),
            short(&s.key),
            a.state.as_str(),
            bytes(a.own_bytes),
            ago(s.created, now),
            ago(s.last_used, now),
            s.build_ms.map_or("-".to_string(), millis),
            if kept.is_empty() {
                "-".to_string()
            } else {
                kept.join(", ")
            }
        );
    }
    let totals: Vec<String> = State::ALL
        .iter()
        .map(|state| {
            let of: Vec<&kiln_core::cache::prune::Assessed> =
                h.assessed.iter().filter(|a| a.state == *state).collect();
            format!(
                "{} {} ({})",
                state.as_str(),
                of.len(),
                bytes(of.iter().map(|a| a.own_bytes).sum())
            )
        })
        .collect();
    out!("  totals: {}", totals.join(", "));
    out!(
        "  {:<8} {:>7} {:>9} {:>6}  NEXT BUILD",
        "LEVEL",
        "REMOVES",
        "FREES",
        "IN USE"
    );
    for p in &h.levels {
        out!(
            "  {:<8} {:>7} {:>9} {:>6}  {}",
            p.level.as_str(),
            p.remove.len(),
            bytes(p.frees),
            p.in_use.len(),
            next_build(p)
        );
    }
}

fn status_json(st: &CacheStatus, root: &Path) -> Value {
    let habitats: Vec<Value> = st
        .habitats
        .iter()
        .map(|h| {
            let hs = &h.holdings;
            let snapshots: Vec<Value> = hs
                .snapshots
                .iter()
                .zip(&h.assessed)
                .map(|(s, a)| {
                    let roots: Vec<Value> = a
                        .roots
                        .iter()
                        .map(|r| {
                            let (kind, name) = match &r.root {
                                Root::Current => ("current", None),
                                Root::Tag(t) => ("tag", Some(t)),
                                Root::Container(c) => ("container", Some(c)),
                            };
                            json!({"kind": kind, "name": name, "via": r.via})
                        })
                        .collect();
                    json!({
                        "id": s.id, "phase": s.phase.tag(), "tag": s.tag(), "key": s.key, "key12": short(&s.key),
                        "step": s.step.as_ref().map(|st| json!({"number": st.number, "key": st.key, "ms": st.ms})),
                        "state": a.state.as_str(), "roots": roots, "own_bytes": a.own_bytes,
                        "created": s.created, "last_used": s.last_used, "build_ms": s.build_ms,
                        "tags": s.tags, "containers": s.containers,
                    })
                })
                .collect();
            let totals: serde_json::Map<String, Value> = State::ALL
                .iter()
                .map(|state| {
                    let of: Vec<_> = h.assessed.iter().filter(|a| a.state == *state).collect();
                    (
                        state.as_str().to_string(),
                        json!({"count": of.len(), "bytes": of.iter().map(|a| a.own_bytes).sum::<u64>()}),
                    )
                })
                .collect();
            let levels: Vec<Value> = h
                .levels
                .iter()
                .map(|p| {
                    json!({
                        "level": p.level.as_str(),
                        "removes": p.remove.iter().map(|&i| &hs.snapshots[i].id).collect::<Vec<_>>(),
                        "frees_bytes": p.frees, "shared_bytes": p.shared,
                        "in_use": p.in_use.iter().map(|(i, c)| json!({"id": hs.snapshots[*i].id, "containers": c})).collect::<Vec<_>>(),
                        "rerun": p.rerun.iter().map(|p| p.tag()).collect::<Vec<_>>(),
                        "rerun_steps": p.rerun_steps.iter().map(|(p, n)| kiln_core::keys::steps::step_tag(*p, *n)).collect::<Vec<_>>(),
                        "rerun_ms": p.rerun_ms,
                        "rerun_untimed": p.rerun_unknown.iter().map(|p| p.tag()).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let (current_from, current_note) = match &h.current_from {
                CurrentFrom::Config => ("config", None),
                CurrentFrom::LastBuild(why) => ("last_build", why.as_deref()),
            };
            json!({
                "habitat": hs.habitat, "dir": h.dir, "keep": h.keep,
                "current_from": current_from, "current_note": current_note,
                "current_steps": hs.current_steps.iter().map(|(p, n, k)| json!({"step": kiln_core::keys::steps::step_tag(*p, *n), "key": k})).collect::<Vec<_>>(),
                "current": hs.current.iter().filter(|c| c.2).map(|c| json!({"phase": c.0.tag(), "key": c.1})).collect::<Vec<_>>(),
                "snapshots": snapshots, "totals": totals, "levels": levels,
            })
        })
        .collect();
    let scope: std::collections::BTreeSet<&str> = st
        .habitats
        .iter()
        .map(|h| h.holdings.habitat.as_str())
        .collect();
    let host: Vec<Value> = st
        .host
        .iter()
        .map(|e| {
            let levels: Vec<&str> = Level::ALL
                .iter()
                .filter(|l| host_removed(e, **l, &scope, st.all))
                .map(|l| l.as_str())
                .collect();
            json!({"kind": e.kind.as_str(), "path": e.path, "bytes": e.bytes, "used_by": e.used_by, "removed_at": levels})
        })
        .collect();
    json!({"root": root, "all": st.all, "habitats": habitats, "host": host})
}

pub fn prune_event(e: &PruneEvent, dry_run: bool) {
    let verb = if dry_run { "would remove" } else { "removed" };
    match e {
        PruneEvent::Waiting { habitat, holder } => {
            err!("waiting: a build of `{habitat}` is running ({holder})")
        }
        PruneEvent::Removed {
            habitat,
            id,
            tag,
            key,
            tags,
            own_bytes,
            ..
        } => {
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", tags.join(", "))
            };
            out!(
                "{verb} `{habitat}` {tag} {} ({}) {}{tags}",
                short(key),
                bytes(*own_bytes),
                short(id)
            )
        }
        PruneEvent::Refused {
            habitat,
            id,
            message,
        } => err!(
            "kept `{habitat}` {}: the engine refused: {message}",
            short(id)
        ),
        PruneEvent::InUse {
            habitat,
            id,
            tag,
            key,
            containers,
            ..
        } => err!(
            "kept `{habitat}` {tag} {} {}: in use by container {}",
            short(key),
            short(id),
            containers.join(", ")
        ),
        PruneEvent::BootstrapRemoved { id, tags, bytes: n } => out!(
            "{verb} bootstrap base {} ({}) [{}]",
            short(id),
            bytes(*n),
            tags.join(", ")
        ),
        PruneEvent::BootstrapKept { id, tags, why } => err!(
            "kept bootstrap base {} [{}]: {why}",
            short(id),
            tags.join(", ")
        ),
        PruneEvent::HostRemoved {
            kind,
            path,
            bytes: n,
        } => {
            out!(
                "{verb} {} {} ({})",
                kind.as_str(),
                path.display(),
                bytes(*n)
            )
        }
    }
}

pub fn prune_summary(s: &PruneSummary, level: Level, dry_run: bool) {
    let verb = if dry_run { "would free" } else { "freed" };
    out!(
        "{} {}: {} snapshot{} {}, {verb} {}{}",
        if dry_run { "dry run" } else { "pruned" },
        level.as_str(),
        s.removed,
        if s.removed == 1 { "" } else { "s" },
        if dry_run { "to remove" } else { "removed" },
        bytes(s.freed),
        match s.kept_in_use {
            0 => String::new(),
            n => format!(", {n} kept in use"),
        }
    );
}
