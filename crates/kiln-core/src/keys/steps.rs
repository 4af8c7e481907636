//! Step keys (SPEC §5): inside setup, and inside repos when a repo has
//! `commands`, each step is cached on its own, chained like the phases:
//! step 1's key hashes the previous phase's key and its own canonical input,
//! step N's hashes step N−1's. An edit then invalidates exactly from the step
//! it touches, and a failed step leaves the steps before it reusable. The
//! phase's own key is computed as before (from the whole phase's inputs), so
//! snapshots made before steps existed stay hits. Pure.

use serde_json::{Value, json};

use crate::config::url::without_credentials;
use crate::config::{Config, DEFAULT_SHELL, NpmPackage};
use crate::keys::cache_key::CacheKey;
use crate::keys::facts::Facts;
use crate::phase::Phase;

/// One step's key and the canonical input it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct StepKey {
    /// 1-based position in its phase: the `3` of `6-setup.3`.
    pub number: usize,
    /// What the step is, as the config names it: `packages`,
    /// `commands.root[2]`, `commands.scripts[0]`, `checkout`,
    /// `repos[1].commands[0]`.
    pub name: String,
    pub key: CacheKey,
    pub inputs: Value,
}

impl StepKey {
    /// `6-setup.3`: the step's tag (and `dev.kiln.step` label).
    pub fn tag(&self, phase: Phase) -> String {
        step_tag(phase, self.number)
    }
}

/// `6-setup.3`
pub fn step_tag(phase: Phase, number: usize) -> String {
    format!("{}.{number}", phase.tag())
}

/// Parses a step tag (`6-setup.3`) into its phase and number.
pub fn parse_step_tag(tag: &str) -> Option<(Phase, usize)> {
    let (phase, number) = tag.rsplit_once('.')?;
    let number: usize = number.parse().ok().filter(|n| *n > 0)?;
    Some((phase.parse().ok()?, number))
}

/// The steps of `phase` with their canonical inputs, in order; empty when
/// the phase is not run in steps (only setup, and repos with commands, are).
pub fn step_inputs(config: &Config, facts: &Facts, phase: Phase) -> Vec<(String, Value)> {
    let b = &config.build;
    let shell = config.shell();
    // Added only when not the default, as in the phase's inputs.
    let with_shell = |mut v: Value| {
        if shell != DEFAULT_SHELL {
            v["shell"] = json!(shell);
        }
        v
    };
    let mut out = Vec::new();
    match phase {
        Phase::Setup => {
            let Some(s) = &b.setup else { return out };
            let p = s.packages.clone().unwrap_or_default();
            let c = s.commands.clone().unwrap_or_default();
            if !(p.apt.is_empty() && p.npm.is_empty() && p.pip.is_empty()) {
                let npm: std::collections::BTreeSet<(String, bool)> = p
                    .npm
                    .iter()
                    .map(|n: &NpmPackage| (n.spec(), n.global()))
                    .collect();
                out.push((
                    "packages".to_string(),
                    with_shell(json!({"packages": {
                        "apt": sorted(p.apt.iter().cloned()),
                        "npm": npm.into_iter().map(|(spec, global)| json!({"spec": spec, "global": global})).collect::<Vec<_>>(),
                        "pip": sorted(p.pip.iter().cloned()),
                    }})),
                ));
            }
            for (i, cmd) in c.root.iter().enumerate() {
                out.push((
                    format!("commands.root[{i}]"),
                    with_shell(json!({"root": cmd})),
                ));
            }
            // Root and `0` run the same way: as root, no `su`.
            let user = c.user.as_deref().filter(|u| *u != "root" && *u != "0");
            for (i, cmd) in c.scripts.iter().enumerate() {
                out.push((
                    format!("commands.scripts[{i}]"),
                    with_shell(json!({"script": cmd, "user": user})),
                ));
            }
        }
        Phase::Repos if b.repos.iter().any(|r| !r.commands.is_empty()) => {
            // The checkouts are one step (one layer, as without commands);
            // every command after them is keyed on the commits through it.
            let checkouts: Vec<Value> = b
                .repos
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    json!({
                        "url": without_credentials(&r.url), "path": r.path, "ref": r.git_ref,
                        "owner": r.owner, "commit": facts.repos.get(i),
                    })
                })
                .collect();
            out.push(("checkout".to_string(), json!({"checkout": checkouts})));
            for (i, r) in b.repos.iter().enumerate() {
                for (j, cmd) in r.commands.iter().enumerate() {
                    out.push((
                        format!("repos[{i}].commands[{j}]"),
                        with_shell(json!({"path": r.path, "owner": r.owner, "command": cmd})),
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

/// The chained step keys of `phase`, the first chained from `parent` (the
/// previous phase's key).
pub fn step_keys(
    parent: Option<&CacheKey>,
    phase: Phase,
    config: &Config,
    facts: &Facts,
) -> Vec<StepKey> {
    let mut out: Vec<StepKey> = Vec::new();
    for (i, (name, inputs)) in step_inputs(config, facts, phase).into_iter().enumerate() {
        let prev = out.last().map(|s| &s.key).or(parent);
        let key = CacheKey::step(prev, phase, &inputs);
        out.push(StepKey {
            number: i + 1,
            name,
            key,
            inputs,
        });
    }
    out
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    items
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_tags_round_trip() {
        assert_eq!(step_tag(Phase::Setup, 3), "6-setup.3");
        assert_eq!(parse_step_tag("6-setup.3"), Some((Phase::Setup, 3)));
        assert_eq!(parse_step_tag("7-repos.12"), Some((Phase::Repos, 12)));
        assert_eq!(parse_step_tag("6-setup"), None);
        assert_eq!(parse_step_tag("6-setup.0"), None);
        assert_eq!(parse_step_tag("6-setup.x"), None);
    }
}
