//! The one seam to an OCI registry, shaped like the engine's: everything kiln
//! asks of a registry (blobs, manifests, tags) goes through [`Registry`];
//! only [`oci`] knows the distribution HTTP API, its token flow and Docker's
//! credentials. Tests pass a `fake::FakeRegistry` (feature `testing`), and
//! one contract suite (`tests/it/registry_contract.rs`) runs against both.
//!
//! Unlike [`crate::engine::Engine`] the trait is blocking: every call is one
//! request/response (ureq, already a dependency for tools), and a push runs
//! several uploads at once on plain threads, which a blocking trait makes
//! simple (`std::thread::scope`).

#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod oci;
pub mod promote;
pub mod pull;
pub mod push;
pub mod retain;
pub mod retention;
pub mod tags;
pub mod vars;

use std::io::{Read, Write};

use sha2::{Digest as _, Sha256};

/// The media types kiln writes and reads.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// `sha256:` + 64 hex of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A manifest as stored: its exact bytes (the digest is of these), its media
/// type and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Manifest {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Manifest {
        Manifest {
            media_type: media_type.to_string(),
            digest: digest_of(&bytes),
            bytes,
        }
    }
}

/// What a registry call failed with. Every variant names the registry and
/// the operation, so the CLI can word it once and exit 3.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry `{registry}` does not answer ({op}): {message}")]
    Unreachable {
        registry: String,
        op: String,
        message: String,
    },
    #[error("registry `{registry}` refused the credentials ({op})")]
    Unauthorized { registry: String, op: String },
    #[error("registry `{registry}` does not allow deletes ({op})")]
    DeleteDisabled { registry: String, op: String },
    #[error("registry `{registry}` has no {what} ({op})")]
    NotFound {
        registry: String,
        op: String,
        what: String,
    },
    #[error("registry `{registry}` refused {op}: {status} {message}")]
    Refused {
        registry: String,
        op: String,
        status: u16,
        message: String,
    },
    #[error("{op}: {message}")]
    Io { op: String, message: String },
}

impl RegistryError {
    /// The hint the CLI shows under the error, when the user can act.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Unauthorized { registry, .. } => {
                Some(format!("log in with `docker login {registry}`"))
            }
            RegistryError::Unreachable { registry, .. } => Some(format!(
                "check that `{registry}` is up and reachable, then `docker login {registry}` if it wants credentials"
            )),
            RegistryError::DeleteDisabled { .. } => Some(
                "enable deletes on the registry (distribution: `storage.delete.enabled: true`)"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

pub type RegistryResult<T> = Result<T, RegistryError>;

/// An OCI registry, as kiln uses it. `repo` is the repository path inside
/// the registry (`team/app`); `digest` is `sha256:…`.
pub trait Registry: Send + Sync {
    /// `HOST[:PORT]`, for messages.
    fn host(&self) -> &str;

    /// The blob's size when the registry has it in `repo`.
    fn blob_size(&self, repo: &str, digest: &str) -> RegistryResult<Option<u64>>;

    /// Uploads `size` bytes read from `body` as the blob `digest`; the
    /// registry checks the digest. Large blobs may go in chunks.
    fn blob_upload(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: &mut (dyn Read + Send),
    ) -> RegistryResult<()>;

    /// Asks the registry to link blob `digest` from `from_repo` into `repo`
    /// without moving bytes; `Ok(false)` when it did not (the caller uploads).
    fn blob_mount(&self, repo: &str, digest: &str, from_repo: &str) -> RegistryResult<bool>;

    /// Writes the blob to `sink`, returning its size; `NotFound` when missing.
    fn blob_get(&self, repo: &str, digest: &str, sink: &mut dyn Write) -> RegistryResult<u64>;

    /// The manifest `reference` (a tag or a digest) points at; `Ok(None)` when none.
    fn manifest_get(&self, repo: &str, reference: &str) -> RegistryResult<Option<Manifest>>;

    /// The digest of the manifest `reference` points at, without its body
    /// (a `HEAD` where the wire has one); `Ok(None)` when none.
    fn manifest_digest(&self, repo: &str, reference: &str) -> RegistryResult<Option<String>> {
        Ok(self.manifest_get(repo, reference)?.map(|m| m.digest))
    }

    /// Stores `manifest` under `reference` (a tag, or its own digest); every
    /// blob it names must be in `repo` already. Returns the manifest's digest.
    fn manifest_put(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> RegistryResult<String>;

    /// Deletes the manifest `digest` and so every tag pointing at it;
    /// `DeleteDisabled` when the registry does not allow deletes.
    fn manifest_delete(&self, repo: &str, digest: &str) -> RegistryResult<()>;

    /// Every tag of `repo`, sorted; empty when the repository does not exist.
    fn tags(&self, repo: &str) -> RegistryResult<Vec<String>>;
}

/// A `HOST[:PORT]/PATH` repository split into its registry and its path.
pub fn split_repository(repository: &str) -> Option<(&str, &str)> {
    let (host, path) = repository.split_once('/')?;
    let host_like = host.contains('.') || host.contains(':') || host == "localhost";
    (host_like && !path.is_empty() && !path.ends_with('/')).then_some((host, path))
}
