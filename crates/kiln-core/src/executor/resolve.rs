//! Everything outside the config that keys read, resolved before planning:
//! the base's identity (a habitat base is built first), the copies' digests
//! and the commits the repo refs name.

use crate::config::{self, BaseSource, Habitat};
use crate::engine::Engine;
use crate::keys::{BaseFact, Facts, KeyChain};
use crate::phase::Phase;
use crate::report::{Event, Reporter};
use crate::sources::{bootstrap, copies, repo};

use super::error::{BuildError, fail};
use super::{BuildOptions, build_boxed};

/// Reads everything outside the config that keys depend on. With a reporter
/// (a build), a habitat base is built first; without (a plan), only planned.
pub(super) async fn resolve_facts<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    opts: &BuildOptions,
    reporter: Option<&mut dyn Reporter>,
) -> Result<Facts, BuildError> {
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
            let other = load_base_habitat(habitat, path)?;
            let final_key = match reporter {
                Some(r) => {
                    r.report(Event::Note {
                        message: format!("building base habitat `{}`", other.config.name),
                    });
                    build_boxed(engine, &other, opts, r).await?.final_key
                }
                None => {
                    let inner = Box::pin(resolve_facts(engine, &other, opts, None)).await?;
                    KeyChain::compute(&other.config, &inner).final_key().clone()
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
    let withheld = copies::Withheld::secret_files(&habitat.dir, &c.secrets);
    let mut copies = Vec::new();
    for copy in c.build.files.iter().flat_map(|f| &f.copies) {
        copies.push(
            digests
                .digest(&habitat.dir, &copy.source, &withheld)
                .map_err(|e| fail(Phase::Files, e.to_string()))?,
        );
    }
    // A cache that cannot be written only costs time next build.
    let _ = digests.save(&digests_path);
    let repos_cache = repo::RepoCache::new(opts.cache().repos());
    let mut repos = Vec::new();
    for r in &c.build.repos {
        let commit = repos_cache
            .resolve(&r.url, r.git_ref.as_deref(), &habitat.dir)
            .map_err(|e| fail(Phase::Repos, e.to_string()))?;
        repos.push(commit);
    }
    Ok(Facts {
        base,
        copies,
        repos,
    })
}

pub(super) fn load_base_habitat(habitat: &Habitat, path: &str) -> Result<Habitat, BuildError> {
    let other = config::load(&habitat.dir.join(path)).map_err(BuildError::Config)?;
    if other.dir == habitat.dir {
        return Err(BuildError::Usage(format!(
            "habitat `{}` names itself as its base",
            habitat.config.name
        )));
    }
    Ok(other)
}
