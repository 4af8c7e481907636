//! An in-memory engine for planner and executor tests. It keeps images (config,
//! labels, tags, a file tree) and containers, runs nothing, and can be scripted;
//! `tests/it/engine_contract.rs` runs the same suite against it and Docker so the
//! two cannot drift.
//!
//! `tree` holds the fake's file trees and their tars, `state` the store and
//! its Docker-like rules (references, merges, scripted runs), and `engine` how
//! the fake answers each [`Engine`](super::Engine) call. This file is what a
//! test sees: the engine, its scripts, and what it lets a test inspect.

mod engine;
mod state;
mod tree;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::semantics::normalize_config;
use super::{ImageConfig, Stream};
use state::{FakeImage, State, full_tag};
use tree::root_dir;

pub use tree::{FakeFile, FakeFileKind, FakeTree};

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
    /// Engine calls that only read: image inspections, image listings
    /// (`images_with_labels`, and `list_images` through it) and container
    /// listings of any kind.
    pub inspects: usize,
    pub image_listings: usize,
    pub container_listings: usize,
}

/// The in-memory engine. Cheap to clone; clones share state.
#[derive(Debug, Clone, Default)]
pub struct FakeEngine {
    state: Arc<Mutex<State>>,
}

impl FakeEngine {
    pub fn new() -> FakeEngine {
        FakeEngine::default()
    }

    /// This fake's [`super::Engine::identity`]: its shared state's address,
    /// with the pid (locks are machine-wide; an address is not).
    pub(super) fn engine_id(&self) -> String {
        format!(
            "fake://{}/{:p}",
            std::process::id(),
            Arc::as_ptr(&self.state)
        )
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
