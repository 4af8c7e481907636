//! The fake's store (images, tags, containers, volumes, scripts) and the
//! Docker behaviour it mimics: how references resolve, how configs merge, and
//! what a scripted run does to a container.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::super::semantics::env_key;
use super::super::{EngineError, EngineResult, ImageConfig, Mount, PortBinding, Stream};
use super::tree::{FakeFile, FakeFileKind, FakeTree, clean_path};
use super::{FakeCounters, FakeRun};

#[derive(Debug, Clone)]
pub(super) struct FakeImage {
    pub(super) config: ImageConfig,
    pub(super) files: FakeTree,
    /// Synthetic diff ids: one per image unless loaded onto another's layers.
    pub(super) layers: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct FakeContainer {
    pub(super) name: Option<String>,
    /// The container's own config, merged with its image's the way Docker does.
    pub(super) config: ImageConfig,
    pub(super) auto_remove: bool,
    pub(super) files: FakeTree,
    /// The argv the container runs (entrypoint + cmd).
    pub(super) argv: Vec<String>,
    /// The image reference it was created from, as given.
    pub(super) image: String,
    /// `created` until it has run or started, then `running` or `exited`.
    pub(super) state: &'static str,
    /// The id of the image it was created from.
    pub(super) image_id: String,
    pub(super) mounts: Vec<Mount>,
    pub(super) ports: Vec<PortBinding>,
    pub(super) started_at: Option<String>,
    pub(super) exit_code: Option<i64>,
    /// Everything it printed, for `container_logs`.
    pub(super) logs: Vec<(Stream, String)>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) images: BTreeMap<String, FakeImage>,
    /// `repo:tag` → image id.
    pub(super) tags: BTreeMap<String, String>,
    pub(super) containers: BTreeMap<String, FakeContainer>,
    /// Images `pull` can fetch: reference → image.
    pub(super) remote: BTreeMap<String, FakeImage>,
    pub(super) scripts: Vec<(String, FakeRun)>,
    /// Named volumes: name → labels.
    pub(super) volumes: BTreeMap<String, BTreeMap<String, String>>,
    pub(super) counters: FakeCounters,
    pub(super) serial: u64,
}

pub(super) fn full_tag(reference: &str) -> String {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    if reference[name_start..].contains(':') || reference.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// Docker's `merge(userConf, imageConf)` (daemon/commit.go), used both when a
/// container is created from an image and when a container is committed.
pub(super) fn docker_merge(user: &ImageConfig, base: &ImageConfig) -> ImageConfig {
    let mut out = user.clone();
    if out.user.as_deref().unwrap_or("").is_empty() {
        out.user = base.user.clone();
    }
    for port in &base.exposed_ports {
        if !out.exposed_ports.contains(port) {
            out.exposed_ports.push(port.clone());
        }
    }
    for entry in &base.env {
        if !out.env.iter().any(|e| env_key(e) == env_key(entry)) {
            out.env.push(entry.clone());
        }
    }
    for (k, v) in &base.labels {
        out.labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if out.entrypoint.as_ref().is_none_or(|e| e.is_empty()) {
        if out.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            out.cmd = base.cmd.clone();
        }
        if out.entrypoint.is_none() {
            out.entrypoint = base.entrypoint.clone();
        }
    }
    if out.working_dir.as_deref().unwrap_or("").is_empty() {
        out.working_dir = base.working_dir.clone();
    }
    if out.healthcheck.is_none() {
        out.healthcheck = base.healthcheck.clone();
    }
    out
}

/// The time every fake event happens at.
pub(super) const FAKE_TIME: &str = "2026-01-01T00:00:00Z";

pub(super) fn refused(op: &str, message: impl Into<String>) -> EngineError {
    EngineError::Refused {
        op: op.to_string(),
        message: message.into(),
    }
}

impl State {
    pub(super) fn next_hex(&mut self, what: &str) -> String {
        self.serial += 1;
        hex::encode(Sha256::digest(format!("{what}-{}", self.serial)))
    }

    /// Resolves an id (with or without `sha256:`, or a unique prefix) or a tag.
    pub(super) fn resolve_image(&self, reference: &str) -> Option<String> {
        if let Some(id) = self.tags.get(&full_tag(reference)) {
            return Some(id.clone());
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let mut found = self
            .images
            .keys()
            .filter(|id| id.trim_start_matches("sha256:").starts_with(hex));
        match (found.next(), found.next()) {
            (Some(id), None) => Some(id.clone()),
            _ => None,
        }
    }

    pub(super) fn resolve_container(&self, reference: &str) -> Option<String> {
        if self.containers.contains_key(reference) {
            return Some(reference.to_string());
        }
        if let Some((id, _)) = self
            .containers
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(reference.trim_start_matches('/')))
        {
            return Some(id.clone());
        }
        let mut found = self
            .containers
            .keys()
            .filter(|id| !reference.is_empty() && id.starts_with(reference));
        match (found.next(), found.next()) {
            (Some(id), None) => Some(id.clone()),
            _ => None,
        }
    }

    pub(super) fn add_image(&mut self, image: FakeImage) -> String {
        let hex = self.next_hex("image");
        let id = format!("sha256:{hex}");
        let mut image = image;
        if image.layers.is_empty() {
            image.layers = vec![format!("sha256:layer{hex}")];
        }
        self.images.insert(id.clone(), image);
        id
    }

    pub(super) fn container_mut(&mut self, id: &str) -> EngineResult<&mut FakeContainer> {
        let key = self
            .resolve_container(id)
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
        self.containers
            .get_mut(&key)
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))
    }

    /// Runs a container: the first script whose needle occurs in its argv decides.
    pub(super) fn run(&mut self, id: &str) -> EngineResult<(i64, Vec<(Stream, String)>)> {
        let key = self
            .resolve_container(id)
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
        let command = self.containers[&key].argv.join(" ");
        let run = self
            .scripts
            .iter()
            .find(|(needle, _)| command.contains(needle.as_str()))
            .map(|(_, run)| run.clone())
            .unwrap_or_default();
        self.counters.containers_run += 1;
        let container = self.container_mut(&key)?;
        container.state = "exited";
        container.started_at = Some(FAKE_TIME.to_string());
        container.exit_code = Some(run.exit_code);
        container.logs.extend(run.lines.iter().cloned());
        for (path, content) in &run.writes {
            container.files.insert(
                clean_path(path),
                FakeFile {
                    kind: FakeFileKind::File(content.clone()),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                    mtime: 0,
                },
            );
        }
        if container.auto_remove {
            self.containers.remove(&key);
        }
        Ok((run.exit_code, run.lines))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_follows_docker() {
        let user = ImageConfig {
            env: vec!["A=1".into()],
            entrypoint: Some(vec![]),
            ..Default::default()
        };
        let base = ImageConfig {
            env: vec!["A=0".into(), "B=2".into()],
            cmd: Some(vec!["sh".into()]),
            entrypoint: Some(vec!["/init".into()]),
            user: Some("dev".into()),
            ..Default::default()
        };
        let merged = docker_merge(&user, &base);
        assert_eq!(merged.env, ["A=1", "B=2"]);
        assert_eq!(merged.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(merged.entrypoint, Some(vec![]));
        assert_eq!(merged.user.as_deref(), Some("dev"));
    }
}
