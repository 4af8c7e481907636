//! Registry → engine: an image [`super::push`] put in a repository, pulled
//! by the engine itself (`docker pull HOST/PATH@sha256:…`), with the user's
//! credentials handed to it for that one pull. Loopback registries need no
//! TLS: Docker trusts `127.0.0.0/8` as an insecure registry by default.
//!
//! A snapshot pushed without added labels comes back with the id it had
//! where it was built (its config is the same bytes); the caller decides
//! whether to take it as a snapshot.

use super::oci::Credentials;
use crate::engine::{Engine, EngineError, EngineResult};

/// `HOST/PATH:TAG`, or `HOST/PATH@sha256:…` for a digest.
pub fn reference(host: &str, repo: &str, tag_or_digest: &str) -> String {
    if tag_or_digest.starts_with("sha256:") {
        format!("{host}/{repo}@{tag_or_digest}")
    } else {
        format!("{host}/{repo}:{tag_or_digest}")
    }
}

/// Pulls `tag_or_digest` of `repo` at `host` into the engine and returns the
/// local image id.
pub async fn pull<E: Engine>(
    engine: &E,
    credentials: &Credentials,
    host: &str,
    repo: &str,
    tag_or_digest: &str,
) -> EngineResult<String> {
    let reference = reference(host, repo, tag_or_digest);
    let auth = credentials.engine_auth(host);
    engine.pull_with(&reference, auth.as_ref()).await?;
    engine
        .image_inspect(&reference)
        .await?
        .map(|i| i.id)
        .ok_or(EngineError::NoSuchImage(reference))
}
