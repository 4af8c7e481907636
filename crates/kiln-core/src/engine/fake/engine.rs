//! How the fake answers each [`Engine`] call, the way Docker would: the same
//! errors for the same mistakes, the same merge and refusal on commit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use sha2::Digest;

use super::super::lines::LineSplitter;
use super::super::semantics::{commit_leaks, leak_error, normalize_config};
use super::super::{
    CommitSpec, ContainerInfo, ContainerSpec, ContainerSummary, Engine, EngineError, EngineInfo,
    EngineResult, ImageConfig, ImageInfo, LayerState, PullProgress, RegistryAuth, Stream,
    VolumeSummary,
};
use super::FakeEngine;
use super::state::{FAKE_TIME, FakeContainer, FakeImage, docker_merge, full_tag, refused};
use super::tree::{FakeFileKind, FakeTree, archive_of, clean_path, extract_into, root_dir};

impl Engine for FakeEngine {
    /// Each fake is an engine of its own; its clones share it.
    fn identity(&self) -> String {
        self.engine_id()
    }

    async fn ping(&self) -> EngineResult<EngineInfo> {
        Ok(EngineInfo {
            version: "fake".to_string(),
            api_version: "1.41".to_string(),
        })
    }

    async fn image_inspect(&self, reference: &str) -> EngineResult<Option<ImageInfo>> {
        let mut state = self.state();
        state.counters.inspects += 1;
        let state = state;
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
            size: 0,
            // The fake keeps files in memory: archive phases use a container.
            layer_dirs: Vec::new(),
        }))
    }

    async fn images_with_labels(&self, labels: &[(&str, &str)]) -> EngineResult<Vec<String>> {
        let mut state = self.state();
        state.counters.image_listings += 1;
        let state = state;
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

    /// Reports what Docker would: each layer queued, coming down in two
    /// reads, checked, unpacked and done; or, when a local image holds it
    /// already, present. A layer's size is its share of the image's file bytes.
    async fn pull_with_progress(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> EngineResult<()> {
        let _ = auth;
        let records = {
            let mut state = self.state();
            state.counters.pulls += 1;
            let tag = full_tag(reference);
            let image = state
                .remote
                .get(&tag)
                .cloned()
                .ok_or_else(|| EngineError::NoSuchImage(reference.to_string()))?;
            let held: std::collections::BTreeSet<String> = state
                .images
                .values()
                .flat_map(|i| i.layers.iter().cloned())
                .collect();
            let bytes: u64 = image
                .files
                .values()
                .map(|f| match &f.kind {
                    FakeFileKind::File(b) => b.len() as u64,
                    _ => 0,
                })
                .sum();
            let id = state.add_image(image);
            state.tags.insert(tag, id.clone());
            let layers = state.images[&id].layers.clone();
            let share = (bytes / layers.len().max(1) as u64).max(1);
            layers
                .iter()
                .flat_map(|l| fake_pull_records(l, share, held.contains(l)))
                .collect::<Vec<_>>()
        };
        records.into_iter().for_each(on_progress);
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
    /// fake already has (what kiln's config-only snapshots are), or those
    /// plus one new layer the archive holds.
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
            healthcheck: c["Healthcheck"].as_object().map(|h| {
                let n = |key: &str| h.get(key).and_then(serde_json::Value::as_u64).unwrap_or(0);
                crate::engine::Healthcheck {
                    test: h.get("Test").and_then(strings).unwrap_or_default(),
                    interval_ns: n("Interval"),
                    timeout_ns: n("Timeout"),
                    start_period_ns: n("StartPeriod"),
                    retries: n("Retries"),
                }
            }),
        };
        let mut state = self.state();
        let has = |layers: &[String]| state.images.values().find(|i| i.layers == layers).cloned();
        // Every layer the engine's already, or all but a new top one that the
        // archive holds (a layer kiln wrote on the host), as Docker takes them.
        let files = match has(&diff_ids) {
            Some(parent) => parent.files,
            None => {
                let new_layer = manifest[0]["Layers"]
                    .as_array()
                    .and_then(|l| l.last())
                    .and_then(|l| l.as_str())
                    .and_then(|path| files.get(path));
                match (diff_ids.split_last(), new_layer) {
                    (Some((_, below)), Some(layer)) if has(below).is_some() => {
                        let mut tree = has(below).map(|p| p.files).unwrap_or_default();
                        extract_into(&mut tree, "/", &layer[..]).map_err(|e| refused("load", e))?;
                        tree
                    }
                    _ => {
                        return Err(refused(
                            "load",
                            "the archive's layers are not in the engine".to_string(),
                        ));
                    }
                }
            }
        };
        let id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(config_bytes)));
        state.images.insert(
            id.clone(),
            FakeImage {
                config: normalize_config(&config),
                files,
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
            healthcheck: None,
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
        replay(&lines, on_line);
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

    async fn inspect_container(&self, id: &str) -> EngineResult<Option<ContainerInfo>> {
        let state = self.state();
        let Some(key) = state.resolve_container(id) else {
            return Ok(None);
        };
        let c = &state.containers[&key];
        Ok(Some(ContainerInfo {
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
            // The fake runs no healthchecks.
            health: None,
            health_output: None,
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
        replay(&logs[skip..], on_line);
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
        replay(&run.lines, on_line);
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

    async fn list_volumes(&self, label: &str, value: &str) -> EngineResult<Vec<VolumeSummary>> {
        Ok(self
            .state()
            .volumes
            .iter()
            .filter(|(_, l)| l.get(label).map(String::as_str) == Some(value))
            .map(|(name, labels)| VolumeSummary {
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

    async fn inspect_volume(&self, name: &str) -> EngineResult<Option<VolumeSummary>> {
        Ok(self.state().volumes.get(name).map(|labels| VolumeSummary {
            name: name.to_string(),
            labels: labels.clone(),
        }))
    }

    async fn containers_with_label(&self, label: &str, value: &str) -> EngineResult<Vec<String>> {
        let mut state = self.state();
        state.counters.container_listings += 1;
        let state = state;
        Ok(state
            .containers
            .iter()
            .filter(|(_, c)| c.config.labels.get(label).map(String::as_str) == Some(value))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn container_images(&self) -> EngineResult<Vec<(String, String)>> {
        let mut state = self.state();
        state.counters.container_listings += 1;
        let state = state;
        Ok(state
            .containers
            .iter()
            .map(|(id, c)| {
                let image = state
                    .resolve_image(&c.image)
                    .unwrap_or_else(|| c.image.clone());
                (c.name.clone().unwrap_or_else(|| id.clone()), image)
            })
            .collect())
    }

    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> EngineResult<Vec<ContainerSummary>> {
        let mut state = self.state();
        state.counters.container_listings += 1;
        let state = state;
        Ok(state
            .containers
            .iter()
            .filter(|(_, c)| c.config.labels.get(label).map(String::as_str) == Some(value))
            .map(|(id, c)| ContainerSummary {
                id: id.clone(),
                name: c.name.clone().unwrap_or_default(),
                image: c.image.clone(),
                state: c.state.to_string(),
                labels: c.config.labels.clone(),
            })
            .collect())
    }
}

/// Hands scripted output on as the Docker engine would: through the same
/// splitter, so a scripted line over [`super::super::lines::MAX_LINE`] is cut
/// the same way.
fn replay(lines: &[(Stream, String)], on_line: &mut (dyn FnMut(Stream, &str) + Send)) {
    let mut splitter = LineSplitter::default();
    for (stream, line) in lines {
        splitter.push(*stream, line.as_bytes(), on_line);
        splitter.push(*stream, b"\n", on_line);
    }
    splitter.finish(on_line);
}

/// The records a pull of one layer of `size` bytes gives, in Docker's order.
fn fake_pull_records(layer: &str, size: u64, held: bool) -> Vec<PullProgress> {
    let hex = layer.strip_prefix("sha256:").unwrap_or(layer);
    let short = hex.get(..12).unwrap_or(hex);
    let record = |state, current, total| PullProgress {
        layer: short.to_string(),
        state,
        current,
        total,
    };
    if held {
        return vec![record(LayerState::Present, 0, 0)];
    }
    vec![
        record(LayerState::Queued, 0, 0),
        record(LayerState::Downloading, size / 2, size),
        record(LayerState::Downloading, size, size),
        record(LayerState::Downloaded, 0, 0),
        record(LayerState::Extracting, size, size),
        record(LayerState::Done, 0, 0),
    ]
}
