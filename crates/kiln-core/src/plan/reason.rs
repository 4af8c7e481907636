//! Why a phase rebuilds: the difference between the inputs its snapshot
//! recorded and its inputs now, worded for the user (SPEC §8 `reason`).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::config::url::without_credentials;
use crate::keys::{PhaseKey, StepKey};
use crate::phase::Phase;
use crate::plan::snapshots::Snapshots;

/// Why this phase's inputs differ from the snapshot its tag points at; `None`
/// when its own inputs are unchanged (so only an earlier phase changed).
pub(crate) fn why_changed(pk: &PhaseKey, snaps: &Snapshots) -> Option<String> {
    let Some(tagged) = snaps.tagged(pk.phase) else {
        if let Some(name) = snaps.foreign(pk.phase, pk.key.as_str()) {
            return Some(format!(
                "`{name}` carries kiln's labels but is not an image kiln made"
            ));
        }
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

/// Why the first step that builds in a resumed phase does: how its input
/// differs from the step snapshot its tag points at, or that it has none
/// (it never ran, or it failed last time).
pub(crate) fn why_step_changed(phase: Phase, step: &StepKey, snaps: &Snapshots) -> String {
    let name = match (phase, step.name.as_str()) {
        (Phase::Setup, n) => format!("setup.{n}"),
        (_, n) => n.to_string(),
    };
    match snaps.tagged_step(phase, step.number) {
        Some(t) if t.inputs != step.inputs => format!("config changed: {name}"),
        Some(_) => format!("`{name}` runs after a step that changed"),
        None if step.number > 1 => {
            format!(
                "no snapshot of step {} (`{name}`) yet: it failed or never ran",
                step.number
            )
        }
        None => "no snapshot yet".to_string(),
    }
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
                // Labels written before credentials were stripped may still
                // carry some; the reason never shows them.
                let url = n
                    .and_then(|e| e.get("url"))
                    .and_then(Value::as_str)
                    .map_or("?".into(), without_credentials);
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

/// Top-level fields of two inputs that differ, for "why did this rebuild".
/// Lists are compared by index (`[2].dest`), objects by key.
pub fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff("", old, new, &mut out, 0);
    out
}

fn diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>, depth: usize) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) if depth < 2 => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff(
                    &sub,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                    depth + 1,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if depth < 2 && a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(&format!("{path}[{i}]"), x, y, out, depth + 1);
            }
        }
        _ => out.push(if path.is_empty() {
            "(all)".to_string()
        } else {
            path.to_string()
        }),
    }
}
