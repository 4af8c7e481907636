//! The canonical inputs of each phase: what its key hashes and what its
//! snapshot's `dev.kiln.inputs` label records, so `plan` can say what changed.
//! Pure: the config plus the facts already resolved on the host and engine.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::config::url::without_credentials;
use crate::config::{Config, DEFAULT_SHELL, HabitatDir, NpmPackage, canonical_mode};
use crate::keys::facts::{BaseFact, Facts};
use crate::phase::Phase;

/// The canonical inputs of `phase`; `Value::Null` when the phase is absent
/// from the config (it does nothing, and its tag points at the previous image).
pub fn phase_inputs(config: &Config, facts: &Facts, phase: Phase) -> Value {
    let b = &config.build;
    match phase {
        Phase::Base => match &facts.base {
            // Only the id: two names for the same image are the same base.
            BaseFact::Image { id: Some(id), .. } => json!({"image_id": id}),
            BaseFact::Image {
                reference,
                id: None,
            } => json!({"image_ref": reference}),
            BaseFact::Habitat { final_key } => json!({"habitat_final_key": final_key}),
            BaseFact::Bootstrap { key } => json!({"bootstrap": key}),
        },
        Phase::Users if b.users.is_empty() => Value::Null,
        Phase::Users => json!(
            b.users
                .iter()
                .map(|u| json!({
                    "name": u.name, "uid": u.uid, "gid": u.gid,
                    "groups": sorted(u.groups.iter().cloned()),
                    "shell": u.shell, "home": u.home,
                }))
                .collect::<Vec<_>>()
        ),
        Phase::Env if b.env.is_empty() => Value::Null,
        // Values as they expand, with the base's variables left as
        // references: `PATH=/opt/bin:$PATH` and `PATH=/opt/bin:${PATH}` are
        // one key, and a reordering that changes what a value sees is not.
        Phase::Env => {
            let (entries, simultaneous) = b.env.entries();
            json!(crate::config::expand::canonical_env(&entries, simultaneous))
        }
        Phase::Habitat => match &b.habitat {
            Some(h) if !h.dirs.is_empty() || h.work_dir.is_some() => {
                json!({"dirs": dir_inputs(&h.dirs), "work_dir": h.work_dir})
            }
            _ => Value::Null,
        },
        // Early copies only: a late one is the tools phase's input.
        Phase::Files => match copy_inputs(config, facts, false) {
            copies if copies.is_empty() => Value::Null,
            copies => json!(copies),
        },
        Phase::Setup => {
            let Some(s) = &b.setup else {
                return Value::Null;
            };
            let p = s.packages.clone().unwrap_or_default();
            let c = s.commands.clone().unwrap_or_default();
            if p.apt.is_empty()
                && p.npm.is_empty()
                && p.pip.is_empty()
                && c.root.is_empty()
                && c.scripts.is_empty()
            {
                return Value::Null;
            }
            let npm: BTreeSet<(String, bool)> = p
                .npm
                .iter()
                .map(|n: &NpmPackage| (n.spec(), n.global()))
                .collect();
            let mut inputs = json!({
                "apt": sorted(p.apt.iter().cloned()),
                "npm": npm.into_iter().map(|(spec, global)| json!({"spec": spec, "global": global})).collect::<Vec<_>>(),
                "pip": sorted(p.pip.iter().cloned()),
                "root": c.root,
                "user": c.user,
                "scripts": c.scripts,
            });
            with_shell(&mut inputs, config);
            inputs
        }
        Phase::Repos if b.repos.is_empty() => Value::Null,
        // A credential in the URL is for the fetch only: it is no input (a
        // changed token is the same repository) and this lands in a label.
        Phase::Repos => {
            let shell = config.shell();
            json!(
                b.repos
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let mut v = json!({
                            "url": without_credentials(&r.url), "path": r.path, "ref": r.git_ref, "owner": r.owner,
                            "commit": facts.repos.get(i),
                        });
                        // Only when set, so the keys of repos without them stay as they were.
                        if !r.commands.is_empty() {
                            v["commands"] = json!(r.commands);
                            if shell != DEFAULT_SHELL {
                                v["shell"] = json!(shell);
                            }
                        }
                        // `depth` changes the image's history.
                        if let Some(depth) = r.depth {
                            v["depth"] = json!(depth);
                        }
                        v
                    })
                    .collect::<Vec<_>>()
            )
        }
        Phase::Tools => {
            let late = copy_inputs(config, facts, true);
            match (tool_inputs(config), late.is_empty()) {
                (tools, true) if tools.is_empty() => Value::Null,
                // The shape of a phase without late copies is as it was.
                (tools, true) => json!(tools),
                (tools, false) => json!({"tools": tools, "late_copies": late}),
            }
        }
        Phase::Verify => match &b.verify {
            Some(v) if !v.files.is_empty() || !v.commands.is_empty() => {
                let mut inputs =
                    json!({"files": sorted(v.files.iter().cloned()), "commands": v.commands});
                // Added only where they change what runs, so the keys of
                // configs without them stay as they were.
                if !v.commands.is_empty() {
                    if let Some(user) = v.user.as_deref().filter(|u| *u != "root" && *u != "0") {
                        inputs["user"] = json!(user);
                    }
                    with_shell(&mut inputs, config);
                }
                inputs
            }
            _ => Value::Null,
        },
        // The final phase always makes an image: it carries the labels the
        // final image is found by, even with no `final:` section.
        Phase::Final => {
            let f = b.final_.clone().unwrap_or_default();
            let mut inputs = json!({
                "user": f.user, "workdir": f.workdir, "command": f.command,
                "entrypoint": f.entrypoint,
                "expose": sorted(f.expose.iter().map(|p| p.docker())),
                "labels": f.labels,
            });
            // Each service as the init reads it (durations resolved: `30s`
            // and `30000ms` are one key), by name, so `plan` names the one
            // that changed; and the init itself. Added only with services, so
            // the keys of configs without them stay as they were.
            if let Some(spec) = crate::config::services::init_spec(config) {
                let services: serde_json::Map<String, Value> = spec
                    .services
                    .iter()
                    .map(|s| {
                        let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
                        if let Some(fields) = v.as_object_mut() {
                            fields.remove("name");
                        }
                        (s.name.clone(), v)
                    })
                    .collect();
                inputs["services"] = Value::Object(services);
                inputs["init"] = json!(facts.init);
            }
            inputs
        }
    }
}

/// The inputs of the early (`late` false) or late copies: each with its
/// content digest, found by its place among all copies.
fn copy_inputs(config: &Config, facts: &Facts, late: bool) -> Vec<Value> {
    let Some(f) = &config.build.files else {
        return Vec::new();
    };
    f.copies
        .iter()
        .enumerate()
        .filter(|(_, c)| c.late == late)
        .map(|(i, c)| {
            json!({
                "source": c.source, "dest": c.dest, "owner": c.owner,
                "group": c.group, "mode": c.mode.as_deref().map(canonical_mode),
                "content": facts.copies.get(i),
            })
        })
        .collect()
}

/// The tools' inputs. The checksum pins the bytes, so where they are
/// fetched from is not an input.
fn tool_inputs(config: &Config) -> Vec<Value> {
    config
        .build
        .tools
        .iter()
        .map(|t| {
            let mut v =
                json!({"name": t.name, "sha256": t.sha256.to_ascii_lowercase(), "dest": t.dest()});
            // Only when set, so the keys of plain tools stay as they were.
            if t.extract {
                v["extract"] = json!(true);
            }
            if let Some(p) = &t.path {
                v["path"] = json!(p);
            }
            v
        })
        .collect()
}

/// Adds `setup.shell` to a phase's inputs when it is not the default (the
/// default written out is the same build as none, and leaves the key as it
/// was before the field existed).
fn with_shell(inputs: &mut Value, config: &Config) {
    let shell = config.shell();
    if shell != DEFAULT_SHELL {
        inputs["shell"] = json!(shell);
    }
}

/// `habitat.dirs`, each directory once: a plain path (or an entry naming
/// nothing but its path) as a string, exactly as before entries could name
/// more, so those keys stay as they were; an entry naming an owner, group
/// or mode as an object of what it names (the mode in one spelling).
fn dir_inputs(dirs: &[HabitatDir]) -> Vec<Value> {
    let entries: BTreeMap<String, Value> = dirs
        .iter()
        .map(|d| match d.attributes() {
            (None, None, None) => (d.path().to_string(), json!(d.path())),
            (owner, group, mode) => {
                let mut v = json!({"path": d.path()});
                if let Some(o) = owner {
                    v["owner"] = json!(o);
                }
                if let Some(g) = group {
                    v["group"] = json!(g);
                }
                if let Some(m) = mode {
                    v["mode"] = json!(canonical_mode(m));
                }
                // After the plain entry of the same path, and in one order
                // however the fields were written.
                (format!("{}\0{v}", d.path()), v)
            }
        })
        .collect();
    entries.into_values().collect()
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    items.collect::<BTreeSet<_>>().into_iter().collect()
}
