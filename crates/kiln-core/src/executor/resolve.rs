//! Everything outside the config that keys read, resolved before planning:
//! the base's identity (a habitat base is built first), the copies' digests
//! and the commits the repo refs name; and the local tools, checked against
//! their sha256 (the key names only that).

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{self, BaseSource, Habitat};
use crate::engine::Engine;
use crate::keys::{BaseFact, Facts, KeyChain};
use crate::phase::Phase;
use crate::report::{Event, Reporter};
use crate::sources::tool::{self, ToolError};
use crate::sources::{bootstrap, copies, repo};

use super::error::{BuildError, inputs};
use super::{BuildOptions, build_boxed};

/// The facts keys read, and what the phases that read the same inputs again
/// check they read the same: each copy's keyed content.
pub(super) struct Resolved {
    pub(super) facts: Facts,
    /// In config order, beside `facts.copies`.
    pub(super) copies: Vec<copies::Keyed>,
    /// What the copies left out, per copy root, for the files phase to
    /// leave out the same.
    pub(super) withheld: BTreeMap<String, copies::Withheld>,
}

/// Reads everything outside the config that keys depend on. With a reporter
/// (a build), a habitat base is built first; without (a plan), only planned.
/// `above` holds the directories of the habitats built on this one, which
/// wait for it: one of them as its base would be a cycle.
pub(super) async fn resolve_facts<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
    reporter: Option<&mut dyn Reporter>,
    above: &[PathBuf],
) -> Result<Resolved, BuildError> {
    let c = &habitat.config;
    let base = match c.build.base.source() {
        Some(BaseSource::Image(r)) => BaseFact::Image {
            reference: r.to_string(),
            id: engine.image_inspect(r).await?.map(|i| i.id),
        },
        Some(BaseSource::Bootstrap(b)) => BaseFact::Bootstrap {
            key: bootstrap::bootstrap_key(b),
        },
        Some(BaseSource::Habitat(path)) => {
            let other = load_base_habitat(habitat, path, above)?;
            let mut chain = above.to_vec();
            chain.push(habitat.dir.clone());
            let final_key = match reporter {
                Some(r) => {
                    r.report(Event::Note {
                        message: format!("building base habitat `{}`", other.config.name),
                    });
                    build_boxed(engine, &other, opts, r, chain).await?.final_key
                }
                None => {
                    let inner = Box::pin(resolve_facts(engine, &other, opts, None, &chain)).await?;
                    KeyChain::compute(&other.config, &inner.facts)
                        .final_key()
                        .clone()
                }
            };
            BaseFact::Habitat {
                final_key: final_key.to_string(),
            }
        }
        None => {
            return Err(BuildError::Usage(
                "`build.base` must set exactly one of `image`, `habitat`, `bootstrap`".into(),
            ));
        }
    };
    let digests_path = opts.cache().digests(&c.name);
    let mut digests = copies::DigestCache::load(&digests_path);
    let withheld = copies::Withheld::by_root(habitat).map_err(BuildError::Config)?;
    let mut keyed = Vec::new();
    for (i, copy) in c.build.files.iter().flat_map(|f| &f.copies).enumerate() {
        // A fragment's copy is read beneath the fragment's directory.
        let (root, below) = copy.in_root();
        keyed.push(
            digests
                .keyed(&habitat.root_dir(root), below, &withheld[root])
                .map_err(|e| copy_error(habitat, i, e))?,
        );
    }
    // Local tools are checked on every build and plan: their key is their
    // sha256, so a changed file would pass as cached otherwise.
    let tools = c.build.tools.iter().enumerate().try_for_each(|(i, t)| {
        tool::check_local(t, &habitat.dir, &mut digests).map_err(|e| tool_error(habitat, i, &e))
    });
    // A cache that cannot be written only costs time next build.
    let _ = digests.save(&digests_path);
    tools?;
    let repos_cache = repo::RepoCache::new(opts.cache().repos());
    let mut repos = Vec::new();
    for r in &c.build.repos {
        let commit = repos_cache
            .resolve(&r.url, r.git_ref.as_deref(), &habitat.dir)
            .map_err(|e| inputs(Phase::Repos, e.to_string()))?;
        repos.push(commit);
    }
    Ok(Resolved {
        facts: Facts {
            base,
            copies: keyed.iter().map(|k| k.digest.clone()).collect(),
            repos,
            init: if c.services.is_empty() {
                None
            } else {
                crate::image::init::digest().map(str::to_string)
            },
        },
        copies: keyed,
        withheld,
    })
}

/// Why `build.files.copies[i]` cannot be keyed: a source `.kilnignore`
/// leaves out or kiln never copies is the config's problem, located at the
/// source; anything else fails the files phase.
fn copy_error(habitat: &Habitat, i: usize, e: copies::CopyError) -> BuildError {
    use config::Seg::{Index, Key};
    if !matches!(
        e,
        copies::CopyError::Ignored { .. } | copies::CopyError::NeverCopied { .. }
    ) {
        return inputs(Phase::Files, e.to_string());
    }
    let text = e.to_string();
    let (message, hint) = match text.split_once("\nhint: ") {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (text, None),
    };
    BuildError::Config(config::diagnostic_at(
        habitat,
        &[
            Key("build"),
            Key("files"),
            Key("copies"),
            Index(i),
            Key("source"),
        ],
        message,
        hint,
    ))
}

/// A local tool's problem, located at the field of `build.tools[i]` it is about.
fn tool_error(habitat: &Habitat, i: usize, e: &ToolError) -> BuildError {
    use config::Seg::{Index, Key};
    let field = match e {
        ToolError::Checksum { .. } | ToolError::BadChecksum { .. } => "sha256",
        _ => "source",
    };
    let text = e.to_string();
    let (message, hint) = match text.split_once("\nhint: ") {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (text, None),
    };
    BuildError::Config(config::diagnostic_at(
        habitat,
        &[Key("build"), Key("tools"), Index(i), Key(field)],
        message,
        hint,
    ))
}

/// The base habitat at `path` of `habitat`, on which the habitats in
/// `above` (directories) are built. Loading checks the chain of bases for
/// cycles; this check again, against the builds actually waiting, keeps a
/// file edited during a build from making it wait for its own lock.
pub(super) fn load_base_habitat(
    habitat: &Habitat,
    path: &str,
    above: &[PathBuf],
) -> Result<Habitat, BuildError> {
    let other = config::load(&habitat.dir.join(path)).map_err(BuildError::Config)?;
    if other.dir == habitat.dir {
        return Err(BuildError::Usage(format!(
            "habitat `{}` names itself as its base",
            habitat.config.name
        )));
    }
    if above.contains(&other.dir) {
        return Err(BuildError::Usage(format!(
            "base habitats form a cycle: habitat `{}` is based on `{}`, which is built on it",
            habitat.config.name, other.config.name
        )));
    }
    Ok(other)
}
