//! An in-memory engine for planner and executor tests. It keeps images (config,
//! labels, tags, a file tree) and containers, runs nothing, and can be scripted;
//! `tests/engine_contract.rs` runs the same suite against it and Docker so the
//! two cannot drift.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::semantics::{commit_leaks, env_key, leak_error, normalize_config};
use super::{
    CommitSpec, ContainerSpec, Engine, EngineError, EngineInfo, EngineResult, ImageConfig,
    ImageInfo, Stream,
};

/// One entry of a fake file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFile {
    pub kind: FakeFileKind,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFileKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

/// A file tree: absolute path (no trailing slash; `/` is the root) → entry.
pub type FakeTree = BTreeMap<String, FakeFile>;

/// What a scripted run does: output lines, exit code, and files it writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeRun {
    pub exit_code: i64,
    pub lines: Vec<(Stream, String)>,
    pub writes: Vec<(String, Vec<u8>)>,
}

impl FakeRun {
    pub fn exit(code: i64) -> FakeRun {
        FakeRun {
            exit_code: code,
            ..FakeRun::default()
        }
    }

    pub fn line(mut self, stream: Stream, line: &str) -> FakeRun {
        self.lines.push((stream, line.to_string()));
        self
    }

    /// The run leaves a file (mode 0644, root) at `path` in the container.
    pub fn writes(mut self, path: &str, content: &[u8]) -> FakeRun {
        self.writes.push((path.to_string(), content.to_vec()));
        self
    }
}

/// How many times each kind of work was done, so tests can check that a
/// cached build creates and commits nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeCounters {
    pub containers_created: usize,
    pub containers_run: usize,
    pub commits: usize,
    pub imports: usize,
    pub pulls: usize,
    pub tags: usize,
}

#[derive(Debug, Clone)]
struct FakeImage {
    config: ImageConfig,
    files: FakeTree,
    /// Synthetic diff ids: one per image unless loaded onto another's layers.
    layers: Vec<String>,
}

#[derive(Debug, Clone)]
struct FakeContainer {
    name: Option<String>,
    /// The container's own config, merged with its image's the way Docker does.
    config: ImageConfig,
    auto_remove: bool,
    files: FakeTree,
    /// The argv the container runs (entrypoint + cmd).
    argv: Vec<String>,
    /// The image reference it was created from, as given.
    image: String,
    /// `created` until it has run or started, then `running` or `exited`.
    state: &'static str,
    /// The id of the image it was created from.
    image_id: String,
    mounts: Vec<super::Mount>,
    ports: Vec<super::PortBinding>,
    started_at: Option<String>,
    exit_code: Option<i64>,
    /// Everything it printed, for `container_logs`.
    logs: Vec<(Stream, String)>,
}

#[derive(Debug, Default)]
struct State {
    images: BTreeMap<String, FakeImage>,
    /// `repo:tag` → image id.
    tags: BTreeMap<String, String>,
    containers: BTreeMap<String, FakeContainer>,
    /// Images `pull` can fetch: reference → image.
    remote: BTreeMap<String, FakeImage>,
    scripts: Vec<(String, FakeRun)>,
    /// Named volumes: name → labels.
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    counters: FakeCounters,
    serial: u64,
}

/// The in-memory engine. Cheap to clone; clones share state.
#[derive(Debug, Clone, Default)]
pub struct FakeEngine {
    state: Arc<Mutex<State>>,
}

fn full_tag(reference: &str) -> String {
    let name_start = reference.rfind('/').map_or(0, |i| i + 1);
    if reference[name_start..].contains(':') || reference.contains('@') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// Docker's `merge(userConf, imageConf)` (daemon/commit.go), used both when a
/// container is created from an image and when a container is committed.
fn docker_merge(user: &ImageConfig, base: &ImageConfig) -> ImageConfig {
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
    out
}

fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn join(base: &str, rel: &str) -> String {
    clean_path(&format!("{base}/{rel}"))
}

fn root_dir() -> FakeFile {
    FakeFile {
        kind: FakeFileKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
    }
}

/// Adds every entry of a tar archive to `tree` under `dest`.
fn extract_into(tree: &mut FakeTree, dest: &str, archive: impl Read) -> Result<(), String> {
    let mut archive = tar::Archive::new(archive);
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?;
        let path = join(dest, &path.to_string_lossy());
        let header = entry.header();
        // Docker reads an empty numeric field as 0; so does the fake.
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let kind = match header.entry_type() {
            tar::EntryType::Directory => FakeFileKind::Dir,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| e.to_string())?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                FakeFileKind::Symlink(target)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| e.to_string())?
                    .map(|t| join(dest, &t.to_string_lossy()))
                    .unwrap_or_default();
                match tree.get(&target) {
                    Some(f) => f.kind.clone(),
                    None => return Err(format!("hard link to missing `{target}`")),
                }
            }
            _ => {
                let mut content = Vec::new();
                entry.read_to_end(&mut content).map_err(|e| e.to_string())?;
                FakeFileKind::File(content)
            }
        };
        // A file replacing a directory drops what was under it, as in Docker.
        if !matches!(kind, FakeFileKind::Dir) {
            let prefix = format!("{path}/");
            tree.retain(|p, _| !p.starts_with(&prefix));
        }
        tree.insert(
            path,
            FakeFile {
                kind,
                mode,
                uid,
                gid,
            },
        );
    }
    Ok(())
}

/// A tar of `path` and everything under it, named from its basename, the way
/// Docker's archive API returns it.
fn archive_of(tree: &FakeTree, path: &str) -> Result<Vec<u8>, String> {
    let base = path.rsplit('/').next().filter(|b| !b.is_empty());
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let mut builder = tar::Builder::new(Vec::new());
    for (p, f) in tree.range(path.to_string()..) {
        if p != path && !p.starts_with(&prefix) {
            if p.as_str() > prefix.as_str() {
                break;
            }
            continue;
        }
        let rel = &p[path.len().min(p.len())..];
        let name = match base {
            Some(b) => format!("{b}{rel}"),
            None => rel.trim_start_matches('/').to_string(),
        };
        if name.is_empty() {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(f.mode);
        header.set_uid(f.uid);
        header.set_gid(f.gid);
        header.set_mtime(0);
        let result = match &f.kind {
            FakeFileKind::File(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, &name, content.as_slice())
            }
            FakeFileKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{name}/"), std::io::empty())
            }
            FakeFileKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &name, target)
            }
        };
        result.map_err(|e| e.to_string())?;
    }
    builder.into_inner().map_err(|e| e.to_string())
}

/// The time every fake event happens at.
const FAKE_TIME: &str = "2026-01-01T00:00:00Z";

fn refused(op: &str, message: impl Into<String>) -> EngineError {
    EngineError::Refused {
        op: op.to_string(),
        message: message.into(),
    }
}

impl State {
    fn next_hex(&mut self, what: &str) -> String {
        self.serial += 1;
        hex::encode(Sha256::digest(format!("{what}-{}", self.serial)))
    }

    /// Resolves an id (with or without `sha256:`, or a unique prefix) or a tag.
    fn resolve_image(&self, reference: &str) -> Option<String> {
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

    fn resolve_container(&self, reference: &str) -> Option<String> {
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

    fn add_image(&mut self, image: FakeImage) -> String {
        let hex = self.next_hex("image");
        let id = format!("sha256:{hex}");
        let mut image = image;
        if image.layers.is_empty() {
            image.layers = vec![format!("sha256:layer{hex}")];
        }
        self.images.insert(id.clone(), image);
        id
    }

    fn container_mut(&mut self, id: &str) -> EngineResult<&mut FakeContainer> {
        let key = self
            .resolve_container(id)
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
        self.containers
            .get_mut(&key)
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))
    }

    /// Runs a container: the first script whose needle occurs in its argv decides.
    fn run(&mut self, id: &str) -> EngineResult<(i64, Vec<(Stream, String)>)> {
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
                },
            );
        }
        if container.auto_remove {
            self.containers.remove(&key);
        }
        Ok((run.exit_code, run.lines))
    }
}

impl FakeEngine {
    pub fn new() -> FakeEngine {
        FakeEngine::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves usable state behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A container whose entrypoint + cmd contain `needle` does `run` (the
    /// first matching script wins; the default is exit 0 with no output).
    pub fn script(&self, needle: &str, run: FakeRun) {
        self.state().scripts.push((needle.to_string(), run));
    }

    /// Puts an image straight into the local store (tagged `reference` when
    /// given) and returns its id.
    pub fn seed_image(
        &self,
        reference: Option<&str>,
        config: ImageConfig,
        files: FakeTree,
    ) -> String {
        let mut state = self.state();
        let mut files = files;
        files.entry("/".to_string()).or_insert_with(root_dir);
        let id = state.add_image(FakeImage {
            config: normalize_config(&config),
            files,
            layers: Vec::new(),
        });
        if let Some(reference) = reference {
            state.tags.insert(full_tag(reference), id.clone());
        }
        id
    }

    /// Makes `reference` available to `pull`, as if a registry had it.
    pub fn add_remote_image(&self, reference: &str, config: ImageConfig, files: FakeTree) {
        let mut files = files;
        files.entry("/".to_string()).or_insert_with(root_dir);
        self.state().remote.insert(
            full_tag(reference),
            FakeImage {
                config: normalize_config(&config),
                files,
                layers: Vec::new(),
            },
        );
    }

    pub fn counters(&self) -> FakeCounters {
        self.state().counters
    }

    /// Ids of all containers that exist now.
    pub fn container_ids(&self) -> Vec<String> {
        self.state().containers.keys().cloned().collect()
    }

    /// Ids of all local images.
    pub fn image_ids(&self) -> Vec<String> {
        self.state().images.keys().cloned().collect()
    }

    /// `repo:tag` → image id, for every tag.
    pub fn tags(&self) -> BTreeMap<String, String> {
        self.state().tags.clone()
    }

    /// The file tree of an image, by id or tag.
    pub fn image_files(&self, reference: &str) -> Option<FakeTree> {
        let state = self.state();
        let id = state.resolve_image(reference)?;
        state.images.get(&id).map(|i| i.files.clone())
    }

    /// The file tree of a container.
    pub fn container_files(&self, id: &str) -> Option<FakeTree> {
        let state = self.state();
        let key = state.resolve_container(id)?;
        state.containers.get(&key).map(|c| c.files.clone())
    }

    /// The argv a container runs (entrypoint + cmd), to check what was asked.
    pub fn container_argv(&self, id: &str) -> Option<Vec<String>> {
        let state = self.state();
        let key = state.resolve_container(id)?;
        state.containers.get(&key).map(|c| c.argv.clone())
    }
}

impl Engine for FakeEngine {
    async fn ping(&self) -> EngineResult<EngineInfo> {
        Ok(EngineInfo {
            version: "fake".to_string(),
            api_version: "1.41".to_string(),
        })
    }

    async fn image_inspect(&self, reference: &str) -> EngineResult<Option<ImageInfo>> {
        let state = self.state();
        let Some(id) = state.resolve_image(reference) else {
            return Ok(None);
        };
        let image = &state.images[&id];
        let repo_tags = state
            .tags
            .iter()
            .filter(|(_, i)| **i == id)
            .map(|(t, _)| t.clone())
            .collect();
        Ok(Some(ImageInfo {
            id: id.clone(),
            repo_tags,
            repo_digests: Vec::new(),
            config: image.config.clone(),
            layers: image.layers.clone(),
            architecture: "amd64".to_string(),
            os: "linux".to_string(),
            created: "2026-01-01T00:00:00Z".to_string(),
            // The fake keeps files in memory: archive phases use a container.
            layer_dirs: Vec::new(),
        }))
    }

    async fn images_with_labels(&self, labels: &[(&str, &str)]) -> EngineResult<Vec<String>> {
        let state = self.state();
        Ok(state
            .images
            .iter()
            .filter(|(_, image)| {
                labels
                    .iter()
                    .all(|(k, v)| image.config.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn pull(&self, reference: &str) -> EngineResult<()> {
        let mut state = self.state();
        state.counters.pulls += 1;
        let tag = full_tag(reference);
        let image = state
            .remote
            .get(&tag)
            .cloned()
            .ok_or_else(|| EngineError::NoSuchImage(reference.to_string()))?;
        let id = state.add_image(image);
        state.tags.insert(tag, id);
        Ok(())
    }

    async fn import(&self, rootfs_tar: PathBuf, config: &ImageConfig) -> EngineResult<String> {
        let file = std::fs::File::open(&rootfs_tar).map_err(|e| {
            refused(
                "import",
                format!("cannot open `{}`: {e}", rootfs_tar.display()),
            )
        })?;
        let mut files = FakeTree::new();
        files.insert("/".to_string(), root_dir());
        extract_into(&mut files, "/", std::io::BufReader::new(file))
            .map_err(|e| refused("import", e))?;
        let mut state = self.state();
        state.counters.imports += 1;
        Ok(state.add_image(FakeImage {
            config: normalize_config(config),
            files,
            layers: Vec::new(),
        }))
    }

    /// Loads a `docker save` archive whose layers are those of an image the
    /// fake already has (what kiln's config-only snapshots are).
    async fn load(&self, tar: Bytes) -> EngineResult<()> {
        let mut files = BTreeMap::new();
        let mut ar = tar::Archive::new(&tar[..]);
        for entry in ar.entries().map_err(|e| refused("load", e.to_string()))? {
            let mut entry = entry.map_err(|e| refused("load", e.to_string()))?;
            let name = entry
                .path()
                .map_err(|e| refused("load", e.to_string()))?
                .display()
                .to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data)
                .map_err(|e| refused("load", e.to_string()))?;
            files.insert(name, data);
        }
        let manifest: serde_json::Value = files
            .get("manifest.json")
            .and_then(|m| serde_json::from_slice(m).ok())
            .ok_or_else(|| refused("load", "no manifest.json".to_string()))?;
        let config_name = manifest[0]["Config"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let config_bytes = files
            .get(&config_name)
            .ok_or_else(|| refused("load", format!("no `{config_name}`")))?;
        let image: serde_json::Value =
            serde_json::from_slice(config_bytes).map_err(|e| refused("load", e.to_string()))?;
        let diff_ids: Vec<String> = image["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let c = &image["config"];
        let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
            v.as_array().map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
        };
        let config = ImageConfig {
            user: c["User"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            env: strings(&c["Env"]).unwrap_or_default(),
            cmd: strings(&c["Cmd"]),
            entrypoint: strings(&c["Entrypoint"]),
            working_dir: c["WorkingDir"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            exposed_ports: c["ExposedPorts"]
                .as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default(),
            labels: c["Labels"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut state = self.state();
        let parent = state
            .images
            .values()
            .find(|i| i.layers == diff_ids)
            .cloned()
            .ok_or_else(|| {
                refused(
                    "load",
                    "the archive's layers are not in the engine".to_string(),
                )
            })?;
        let id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(config_bytes)));
        state.images.insert(
            id.clone(),
            FakeImage {
                config: normalize_config(&config),
                files: parent.files,
                layers: diff_ids,
            },
        );
        for t in manifest[0]["RepoTags"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str() {
                state.tags.insert(full_tag(t), id.clone());
            }
        }
        state.counters.imports += 1;
        Ok(())
    }

    async fn tag(&self, image: &str, repo: &str, tag: &str) -> EngineResult<()> {
        let mut state = self.state();
        let id = state
            .resolve_image(image)
            .ok_or_else(|| EngineError::NoSuchImage(image.to_string()))?;
        state.counters.tags += 1;
        state.tags.insert(format!("{repo}:{tag}"), id);
        Ok(())
    }

    async fn remove_image(&self, reference: &str) -> EngineResult<()> {
        let mut state = self.state();
        let tag = full_tag(reference);
        if let Some(id) = state.tags.remove(&tag) {
            // Removing the last tag removes the image, as `docker rmi TAG` does.
            if !state.tags.values().any(|i| *i == id) {
                state.images.remove(&id);
            }
            return Ok(());
        }
        let id = state
            .resolve_image(reference)
            .ok_or_else(|| EngineError::NoSuchImage(reference.to_string()))?;
        state.images.remove(&id);
        state.tags.retain(|_, i| *i != id);
        Ok(())
    }

    async fn create_container(&self, spec: &ContainerSpec) -> EngineResult<String> {
        let mut state = self.state();
        let image_id = state
            .resolve_image(&spec.image)
            .ok_or_else(|| EngineError::NoSuchImage(spec.image.clone()))?;
        if let Some(name) = &spec.name
            && state
                .containers
                .values()
                .any(|c| c.name.as_deref() == Some(name))
        {
            return Err(refused(
                "create container",
                format!("Conflict. The container name \"/{name}\" is already in use"),
            ));
        }
        let image = state.images[&image_id].clone();
        let own = ImageConfig {
            user: spec.user.clone(),
            env: spec.env.clone(),
            cmd: spec.cmd.clone(),
            entrypoint: spec.entrypoint.clone(),
            working_dir: spec.working_dir.clone(),
            exposed_ports: Vec::new(),
            labels: spec.labels.clone(),
        };
        let config = docker_merge(&own, &image.config);
        let mut argv = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        let id = state.next_hex("container");
        state.counters.containers_created += 1;
        state.containers.insert(
            id.clone(),
            FakeContainer {
                name: spec.name.clone(),
                config,
                auto_remove: spec.auto_remove,
                files: image.files,
                argv,
                image: spec.image.clone(),
                state: "created",
                image_id,
                mounts: spec.mounts.clone(),
                ports: if spec.network_host {
                    Vec::new()
                } else {
                    let mut ports = spec.ports.clone();
                    ports.sort();
                    ports
                },
                started_at: None,
                exit_code: None,
                logs: Vec::new(),
            },
        );
        Ok(id)
    }

    async fn run_container(
        &self,
        id: &str,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> EngineResult<i64> {
        let (code, lines) = self.state().run(id)?;
        for (stream, line) in &lines {
            on_line(*stream, line);
        }
        Ok(code)
    }

    async fn run_interactive(&self, id: &str) -> EngineResult<i64> {
        let (code, _) = self.state().run(id)?;
        Ok(code)
    }

    async fn put_archive(&self, id: &str, path: &str, tar: Bytes) -> EngineResult<()> {
        let mut state = self.state();
        let container = state.container_mut(id)?;
        let dest = clean_path(path);
        // Docker extracts only into a directory that already exists.
        match container.files.get(&dest).map(|f| &f.kind) {
            Some(FakeFileKind::Dir) => {}
            _ => {
                return Err(refused(
                    "put archive",
                    format!("Could not find the file {path} in container {id}"),
                ));
            }
        }
        extract_into(&mut container.files, &dest, tar.as_ref())
            .map_err(|e| refused("put archive", e))
    }

    async fn get_archive(&self, id: &str, path: &str) -> EngineResult<Option<Bytes>> {
        let mut state = self.state();
        let container = state.container_mut(id)?;
        let path = clean_path(path);
        if !container.files.contains_key(&path) {
            return Ok(None);
        }
        archive_of(&container.files, &path)
            .map(|bytes| Some(Bytes::from(bytes)))
            .map_err(|e| refused("get archive", e))
    }

    async fn commit(&self, spec: &CommitSpec) -> EngineResult<String> {
        let mut state = self.state();
        let container = state.container_mut(&spec.container)?.clone();
        // Same merge and the same refusal as the Docker engine (see its `commit`).
        let mut sent = normalize_config(&spec.config);
        sent.entrypoint = Some(sent.entrypoint.unwrap_or_default());
        let merged = normalize_config(&docker_merge(&sent, &container.config));
        let leaks = commit_leaks(&spec.config, &merged);
        if !leaks.is_empty() {
            return Err(leak_error(&spec.container, &leaks));
        }
        state.counters.commits += 1;
        Ok(state.add_image(FakeImage {
            config: merged,
            files: container.files,
            layers: Vec::new(),
        }))
    }

    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        let mut state = self.state();
        if let Some(key) = state.resolve_container(id) {
            state.containers.remove(&key);
        }
        Ok(())
    }

    /// A container whose argv matches a script runs it and exits; any other
    /// keeps running, as a long-running instance does.
    async fn start_container(&self, id: &str) -> EngineResult<()> {
        let mut state = self.state();
        let key = state
            .resolve_container(id)
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
        let container = &state.containers[&key];
        if container.state == "running" {
            return Ok(());
        }
        let wanted = container.ports.clone();
        let busy = state.containers.iter().any(|(k, c)| {
            *k != key && c.state == "running" && c.ports.iter().any(|p| wanted.contains(p))
        });
        if busy {
            return Err(refused(
                "start container",
                "driver failed programming external connectivity: port is already allocated",
            ));
        }
        let command = container.argv.join(" ");
        let scripted = state
            .scripts
            .iter()
            .any(|(needle, _)| command.contains(needle.as_str()));
        if scripted {
            state.run(&key)?;
            return Ok(());
        }
        let container = state.container_mut(&key)?;
        container.state = "running";
        container.started_at = Some(FAKE_TIME.to_string());
        container.exit_code = None;
        Ok(())
    }

    async fn stop_container(&self, id: &str, _timeout: std::time::Duration) -> EngineResult<()> {
        let mut state = self.state();
        let container = state.container_mut(id)?;
        if container.state == "running" {
            container.state = "exited";
            container.exit_code = Some(137);
        }
        Ok(())
    }

    async fn inspect_container(&self, id: &str) -> EngineResult<Option<super::ContainerInfo>> {
        let state = self.state();
        let Some(key) = state.resolve_container(id) else {
            return Ok(None);
        };
        let c = &state.containers[&key];
        Ok(Some(super::ContainerInfo {
            id: key.clone(),
            name: c.name.clone().unwrap_or_default(),
            state: c.state.to_string(),
            started_at: c.started_at.clone(),
            image: c.image_id.clone(),
            labels: c.config.labels.clone(),
            ports: c.ports.clone(),
            restart_count: 0,
            exit_code: if c.state == "exited" {
                c.exit_code
            } else {
                None
            },
            // The fake keeps no layers on disk: kiln commits through it instead.
            upper_dir: None,
        }))
    }

    async fn container_logs(
        &self,
        id: &str,
        _follow: bool,
        tail: Option<usize>,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> EngineResult<()> {
        let logs = {
            let mut state = self.state();
            state.container_mut(id)?.logs.clone()
        };
        let skip = tail.map_or(0, |n| logs.len().saturating_sub(n));
        for (stream, line) in &logs[skip..] {
            on_line(*stream, line);
        }
        Ok(())
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> EngineResult<i64> {
        let run = {
            let mut state = self.state();
            let container = state.container_mut(id)?;
            if container.state != "running" {
                return Err(refused("exec", format!("Container {id} is not running")));
            }
            let command = cmd.join(" ");
            state
                .scripts
                .iter()
                .find(|(needle, _)| command.contains(needle.as_str()))
                .map(|(_, run)| run.clone())
                .unwrap_or_default()
        };
        for (stream, line) in &run.lines {
            on_line(*stream, line);
        }
        Ok(run.exit_code)
    }

    async fn exec_interactive(&self, id: &str, cmd: &[String]) -> EngineResult<i64> {
        self.exec(id, cmd, &mut |_, _| {}).await
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> EngineResult<()> {
        self.state()
            .volumes
            .entry(name.to_string())
            .or_insert_with(|| labels.clone());
        Ok(())
    }

    async fn list_volumes(
        &self,
        label: &str,
        value: &str,
    ) -> EngineResult<Vec<super::VolumeSummary>> {
        Ok(self
            .state()
            .volumes
            .iter()
            .filter(|(_, l)| l.get(label).map(String::as_str) == Some(value))
            .map(|(name, labels)| super::VolumeSummary {
                name: name.clone(),
                labels: labels.clone(),
            })
            .collect())
    }

    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        let mut state = self.state();
        if let Some(user) = state
            .containers
            .keys()
            .find(|k| state.containers[*k].mounts.iter().any(|m| m.source == name))
        {
            return Err(refused(
                "remove volume",
                format!("remove {name}: volume is in use - [{user}]"),
            ));
        }
        state.volumes.remove(name);
        Ok(())
    }

    async fn containers_with_label(&self, label: &str, value: &str) -> EngineResult<Vec<String>> {
        let state = self.state();
        Ok(state
            .containers
            .iter()
            .filter(|(_, c)| c.config.labels.get(label).map(String::as_str) == Some(value))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> EngineResult<Vec<super::ContainerSummary>> {
        let state = self.state();
        Ok(state
            .containers
            .iter()
            .filter(|(_, c)| c.config.labels.get(label).map(String::as_str) == Some(value))
            .map(|(id, c)| super::ContainerSummary {
                id: id.clone(),
                name: c.name.clone().unwrap_or_default(),
                image: c.image.clone(),
                state: c.state.to_string(),
                labels: c.config.labels.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean_path("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(join("/tmp", "./x"), "/tmp/x");
    }

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
