//! `FakeRegistry`: an in-memory [`Registry`] for tests that do not test the
//! wire. It checks what a distribution registry checks (digests of uploaded
//! blobs, blobs a manifest names, deletes allowed) and counts uploaded bytes,
//! so a test can say "the second push uploaded nothing". The contract suite
//! runs the same checks against it and a real registry.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::sync::Mutex;

use super::{Manifest, Registry, RegistryError, RegistryResult, digest_of};

#[derive(Default)]
struct State {
    /// Blob digest → bytes (the store is shared by every repository).
    blobs: BTreeMap<String, Vec<u8>>,
    /// Repository → blobs linked into it.
    links: BTreeMap<String, BTreeSet<String>>,
    /// (repository, digest) → manifest.
    manifests: BTreeMap<(String, String), Manifest>,
    /// (repository, tag) → manifest digest.
    tags: BTreeMap<(String, String), String>,
    uploaded_bytes: u64,
    uploads: u64,
}

pub struct FakeRegistry {
    host: String,
    deletes: bool,
    down: bool,
    state: Mutex<State>,
}

impl Default for FakeRegistry {
    fn default() -> Self {
        FakeRegistry::new()
    }
}

impl FakeRegistry {
    pub fn new() -> FakeRegistry {
        FakeRegistry {
            host: "fake.registry".to_string(),
            deletes: true,
            down: false,
            state: Mutex::new(State::default()),
        }
    }

    /// A registry that refuses deletes, as distribution does by default.
    pub fn without_deletes(mut self) -> FakeRegistry {
        self.deletes = false;
        self
    }

    /// A registry that does not answer.
    pub fn down(mut self) -> FakeRegistry {
        self.down = true;
        self
    }

    /// Bytes and blobs uploaded so far (mounts and skips upload nothing).
    pub fn uploaded(&self) -> (u64, u64) {
        let s = self.state.lock().expect("fake registry");
        (s.uploaded_bytes, s.uploads)
    }

    fn up(&self, op: &str) -> RegistryResult<std::sync::MutexGuard<'_, State>> {
        if self.down {
            return Err(RegistryError::Unreachable {
                registry: self.host.clone(),
                op: op.to_string(),
                message: "connection refused".to_string(),
            });
        }
        Ok(self.state.lock().expect("fake registry"))
    }

    fn not_found(&self, op: &str, what: String) -> RegistryError {
        RegistryError::NotFound {
            registry: self.host.clone(),
            op: op.to_string(),
            what,
        }
    }

    fn refused(&self, op: &str, status: u16, message: &str) -> RegistryError {
        RegistryError::Refused {
            registry: self.host.clone(),
            op: op.to_string(),
            status,
            message: message.to_string(),
        }
    }
}

/// The digests a manifest names: its config and its layers.
fn referenced(manifest: &Manifest) -> Vec<String> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&manifest.bytes) else {
        return Vec::new();
    };
    let config = v.pointer("/config/digest").and_then(|d| d.as_str());
    let layers = v
        .get("layers")
        .and_then(|l| l.as_array())
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("digest")?.as_str());
    config
        .into_iter()
        .chain(layers)
        .map(str::to_string)
        .collect()
}

impl Registry for FakeRegistry {
    fn host(&self) -> &str {
        &self.host
    }

    fn blob_size(&self, repo: &str, digest: &str) -> RegistryResult<Option<u64>> {
        let s = self.up("blob exists")?;
        let linked = s.links.get(repo).is_some_and(|l| l.contains(digest));
        Ok(linked
            .then(|| s.blobs.get(digest).map(|b| b.len() as u64))
            .flatten())
    }

    fn blob_upload(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: &mut (dyn Read + Send),
    ) -> RegistryResult<()> {
        let op = "blob upload";
        drop(self.up(op)?);
        let mut bytes = Vec::new();
        body.take(size)
            .read_to_end(&mut bytes)
            .map_err(|e| RegistryError::Io {
                op: op.to_string(),
                message: e.to_string(),
            })?;
        if bytes.len() as u64 != size || digest_of(&bytes) != digest {
            return Err(self.refused(op, 400, "DIGEST_INVALID"));
        }
        let mut s = self.up(op)?;
        s.uploaded_bytes += size;
        s.uploads += 1;
        s.blobs.insert(digest.to_string(), bytes);
        s.links
            .entry(repo.to_string())
            .or_default()
            .insert(digest.to_string());
        Ok(())
    }

    fn blob_mount(&self, repo: &str, digest: &str, from_repo: &str) -> RegistryResult<bool> {
        let mut s = self.up("blob mount")?;
        let there = s.links.get(from_repo).is_some_and(|l| l.contains(digest));
        if there {
            s.links
                .entry(repo.to_string())
                .or_default()
                .insert(digest.to_string());
        }
        Ok(there)
    }

    fn blob_get(&self, repo: &str, digest: &str, sink: &mut dyn Write) -> RegistryResult<u64> {
        let op = "blob pull";
        let s = self.up(op)?;
        let linked = s.links.get(repo).is_some_and(|l| l.contains(digest));
        let Some(bytes) = s.blobs.get(digest).filter(|_| linked) else {
            return Err(self.not_found(op, format!("blob `{digest}` in `{repo}`")));
        };
        sink.write_all(bytes).map_err(|e| RegistryError::Io {
            op: op.to_string(),
            message: e.to_string(),
        })?;
        Ok(bytes.len() as u64)
    }

    fn manifest_get(&self, repo: &str, reference: &str) -> RegistryResult<Option<Manifest>> {
        let s = self.up("manifest pull")?;
        let key = (repo.to_string(), reference.to_string());
        let digest = s.tags.get(&key).cloned().unwrap_or(reference.to_string());
        Ok(s.manifests.get(&(repo.to_string(), digest)).cloned())
    }

    fn manifest_put(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> RegistryResult<String> {
        let op = "manifest push";
        let mut s = self.up(op)?;
        let linked = s.links.get(repo);
        if let Some(missing) = referenced(manifest)
            .into_iter()
            .find(|d| !linked.is_some_and(|l| l.contains(d)))
        {
            return Err(self.refused(op, 400, &format!("MANIFEST_BLOB_UNKNOWN {missing}")));
        }
        if reference.starts_with("sha256:") && reference != manifest.digest {
            return Err(self.refused(op, 400, "DIGEST_INVALID"));
        }
        let digest = manifest.digest.clone();
        s.manifests
            .insert((repo.to_string(), digest.clone()), manifest.clone());
        if !reference.starts_with("sha256:") {
            s.tags
                .insert((repo.to_string(), reference.to_string()), digest.clone());
        }
        Ok(digest)
    }

    fn manifest_delete(&self, repo: &str, digest: &str) -> RegistryResult<()> {
        let op = "manifest delete";
        let mut s = self.up(op)?;
        if !self.deletes {
            return Err(RegistryError::DeleteDisabled {
                registry: self.host.clone(),
                op: op.to_string(),
            });
        }
        if s.manifests
            .remove(&(repo.to_string(), digest.to_string()))
            .is_none()
        {
            return Err(self.not_found(op, format!("manifest `{digest}` in `{repo}`")));
        }
        s.tags.retain(|(r, _), d| !(r == repo && d == digest));
        Ok(())
    }

    fn tags(&self, repo: &str) -> RegistryResult<Vec<String>> {
        let s = self.up("tag list")?;
        Ok(s.tags
            .keys()
            .filter(|(r, _)| r == repo)
            .map(|(_, t)| t.clone())
            .collect())
    }
}
