//! The registry's snapshot cache in a build (SPEC §10, `registry.cache`):
//! which of the phases a plan builds the registry holds as `cache-KEY` (one
//! manifest `HEAD` each, all at once), and the pull of the deepest one
//! through the engine, checked to be the snapshot its tag says before the
//! build takes it.
//!
//! A snapshot pulled from the habitat's own registry under `cache-KEY` is
//! taken as one kiln made: that tag is only written by `kiln push` of this
//! habitat, and kiln's provenance check ([`crate::image::archive::is_kiln_image`])
//! cannot rebuild the config of a committed phase (nor one whose pushed
//! config gained the OCI labels), so the labels are what is checked: the
//! habitat, the phase and the full key.

use std::sync::Arc;

use crate::config::Habitat;
use crate::engine::{Engine, EngineError, ImageInfo};
use crate::image::labels::{LABEL_HABITAT, LABEL_KEY, LABEL_PHASE};
use crate::phase::Phase;
use crate::plan::RemoteHits;
use crate::registry::oci::{Credentials, OciRegistry};
use crate::registry::pull::pull_reported;
use crate::registry::{Registry, RegistryError};
use crate::report::Reporter;

use super::BuildOptions;

/// The tag a phase snapshot with `key` has in the registry.
pub fn cache_tag(key: &str) -> String {
    format!("cache-{key}")
}

/// The registry a build looks snapshots up in.
#[derive(Clone)]
pub(super) struct RemoteCache {
    registry: Arc<dyn Registry>,
    /// The repository path inside the registry.
    path: String,
    /// `HOST[:PORT]/PATH`, what the engine pulls from.
    repository: String,
    /// Handed to the engine for a pull.
    credentials: Credentials,
}

/// Why a pulled snapshot was not taken.
#[derive(Debug, thiserror::Error)]
pub(super) enum PullError {
    #[error("the engine could not pull `{reference}`: {source}")]
    Engine {
        reference: String,
        source: EngineError,
    },
    #[error("`{reference}` is labelled {label} `{found}`, not `{wanted}`")]
    Mislabelled {
        reference: String,
        label: &'static str,
        found: String,
        wanted: String,
    },
}

impl RemoteCache {
    /// The habitat's registry when `registry.cache` is on and the build
    /// was not told `--no-remote-cache`.
    pub(super) fn of(habitat: &Habitat, opts: &BuildOptions) -> Option<RemoteCache> {
        let config = habitat.config.registry.as_ref()?;
        if !config.cache || opts.no_remote_cache {
            return None;
        }
        let (host, path) = config.host_and_path();
        if host.is_empty() {
            return None;
        }
        let credentials = Credentials::from_env();
        Some(RemoteCache {
            registry: Arc::new(OciRegistry::with_credentials(host, credentials.clone())),
            path: path.to_string(),
            repository: config.repository.clone(),
            credentials,
        })
    }

    /// The registry's host, for messages.
    pub(super) fn host(&self) -> &str {
        self.registry.host()
    }

    /// Which of `candidates` (phase, key) the registry holds as `cache-KEY`,
    /// each with the reference the engine pulls it by. Every lookup runs at
    /// once, on threads: the client blocks.
    pub(super) async fn lookup(
        &self,
        candidates: &[(Phase, String)],
    ) -> Result<RemoteHits, RegistryError> {
        if candidates.is_empty() {
            return Ok(RemoteHits::new());
        }
        let this = self.clone();
        let keys: Vec<String> = candidates.iter().map(|(_, k)| k.clone()).collect();
        let found = tokio::task::spawn_blocking(move || {
            std::thread::scope(|s| {
                let handles: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        let this = &this;
                        s.spawn(move || this.registry.manifest_digest(&this.path, &cache_tag(k)))
                    })
                    .collect();
                keys.iter()
                    .zip(handles)
                    .map(|(k, h)| {
                        let digest = h.join().unwrap_or_else(|_| {
                            Err(RegistryError::Io {
                                op: "manifest lookup".into(),
                                message: "a lookup thread panicked".into(),
                            })
                        })?;
                        Ok(digest.map(|d| (k.clone(), d)))
                    })
                    .collect::<Result<Vec<_>, RegistryError>>()
            })
        })
        .await
        .map_err(|e| RegistryError::Io {
            op: "manifest lookup".into(),
            message: e.to_string(),
        })??;
        Ok(found
            .into_iter()
            .flatten()
            .map(|(k, d)| (k, format!("{}@{d}", self.repository)))
            .collect())
    }
}

/// Pulls `reference` through the engine and checks that it is the snapshot
/// of `phase` with `key` of `habitat` (for verify, which makes no image of
/// its own, the previous phase's snapshot: the caller names that phase and
/// key); returns its inspection. Its progress is reported as the pull of
/// `pulled` (the phase the plan pulls, which for verify is not `phase`).
pub(super) async fn pull<E: Engine>(
    engine: &E,
    remote: &RemoteCache,
    habitat: &str,
    (phase, key): (Phase, &str),
    (pulled, reference): (Phase, &str),
    reporter: &mut dyn Reporter,
) -> Result<ImageInfo, PullError> {
    let engine_err = |source| PullError::Engine {
        reference: reference.to_string(),
        source,
    };
    // The user's credentials for this registry, for this one pull.
    let auth = remote.credentials.engine_auth(remote.host());
    pull_reported(engine, reference, auth.as_ref(), &pulled.tag(), reporter)
        .await
        .map_err(engine_err)?;
    let info = engine
        .image_inspect(reference)
        .await
        .map_err(engine_err)?
        .ok_or_else(|| engine_err(EngineError::NoSuchImage(reference.to_string())))?;
    let phase_tag = phase.tag();
    for (label, wanted) in [
        (LABEL_HABITAT, habitat),
        (LABEL_PHASE, phase_tag.as_str()),
        (LABEL_KEY, key),
    ] {
        let found = info.config.labels.get(label).cloned().unwrap_or_default();
        if found != wanted {
            return Err(PullError::Mislabelled {
                reference: reference.to_string(),
                label,
                found,
                wanted: wanted.to_string(),
            });
        }
    }
    Ok(info)
}

impl PullError {
    /// Whether the engine itself is gone (the build cannot go on either).
    pub(super) fn engine_unreachable(&self) -> bool {
        matches!(
            self,
            PullError::Engine {
                source: EngineError::Unreachable { .. },
                ..
            }
        )
    }
}
