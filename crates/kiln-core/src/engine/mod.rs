//! The one seam to the container engine. Everything kiln asks of Docker (or
//! Podman) goes through [`Engine`]; only `docker/` knows HTTP. Tests pass a
//! `fake::FakeEngine` (feature `testing`) explicitly where the engine is not
//! what they test. The data that crosses the seam lives in [`types`],
//! re-exported here; what Docker does to configs, which the fake mimics, in
//! `semantics`.

pub mod docker;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod lines;
mod semantics;
pub mod types;

pub use types::*;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;

/// The container engine, as kiln uses it. Methods are coarse on purpose: one
/// call per thing kiln needs, so the fake stays small and true to the real one.
pub trait Engine: Send + Sync {
    /// Connects and negotiates the API version; `Unreachable` when nothing answers.
    fn ping(&self) -> impl Future<Output = EngineResult<EngineInfo>> + Send;

    /// Which engine this is, as one string for every way this machine can
    /// name it (a symlinked socket, `tcp://` or `http://`), so builds on one
    /// engine take one lock whatever their environment. Asks the engine nothing.
    fn identity(&self) -> String;

    /// `Ok(None)` when no such image exists locally.
    fn image_inspect(
        &self,
        reference: &str,
    ) -> impl Future<Output = EngineResult<Option<ImageInfo>>> + Send;

    /// Ids of local images carrying every given `label=value`.
    fn images_with_labels(
        &self,
        labels: &[(&str, &str)],
    ) -> impl Future<Output = EngineResult<Vec<String>>> + Send;

    /// Pulls `reference` from its registry, anonymously, its progress unread.
    fn pull(&self, reference: &str) -> impl Future<Output = EngineResult<()>> + Send {
        self.pull_with(reference, None)
    }

    /// Pulls `reference` from its registry with `auth` (anonymous when
    /// `None`), handing each layer's progress to `on_progress` as the
    /// engine tells it: every layer of the image ends `Done` or `Present`.
    fn pull_with_progress(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> impl Future<Output = EngineResult<()>> + Send;

    /// Pulls `reference` from its registry with `auth` (anonymous when
    /// `None`), its progress unread.
    fn pull_with(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
    ) -> impl Future<Output = EngineResult<()>> + Send {
        async move { self.pull_with_progress(reference, auth, &mut |_| {}).await }
    }

    /// Writes `references` to the file `out` as one `docker save` archive:
    /// each image's config as `<ID>.json` (the exact bytes the engine holds,
    /// whose digest is the id), each layer as an uncompressed tar whose
    /// digest is its diff id (a layer already written is a symlink to it),
    /// and `manifest.json`. An engine that cannot save refuses.
    fn save(
        &self,
        references: &[String],
        out: PathBuf,
    ) -> impl Future<Output = EngineResult<()>> + Send {
        let _ = (references, out);
        async {
            Err(EngineError::Refused {
                op: "save".to_string(),
                message: "this engine cannot save images".to_string(),
            })
        }
    }

    /// Imports a root filesystem tarball (a file on the host) as an image with
    /// `config`, returning its id.
    fn import(
        &self,
        rootfs_tar: PathBuf,
        config: &ImageConfig,
    ) -> impl Future<Output = EngineResult<String>> + Send;

    /// Loads an image archive in `docker save` form (tags in its manifest are applied).
    fn load(&self, tar: Bytes) -> impl Future<Output = EngineResult<()>> + Send;

    /// Like `load`, from an archive file on the host (archives with layers are large).
    fn load_file(&self, tar: PathBuf) -> impl Future<Output = EngineResult<()>> + Send {
        async move {
            let bytes = std::fs::read(&tar).map_err(|e| EngineError::Refused {
                op: "load".to_string(),
                message: format!("cannot read `{}`: {e}", tar.display()),
            })?;
            self.load(Bytes::from(bytes)).await
        }
    }

    /// Points `repo:tag` at `image`.
    fn tag(
        &self,
        image: &str,
        repo: &str,
        tag: &str,
    ) -> impl Future<Output = EngineResult<()>> + Send;

    fn remove_image(&self, reference: &str) -> impl Future<Output = EngineResult<()>> + Send;

    /// Creates (does not start) a container; returns its id.
    fn create_container(
        &self,
        spec: &ContainerSpec,
    ) -> impl Future<Output = EngineResult<String>> + Send;

    /// Starts the container, streams its output line by line to `on_line`
    /// until it exits, and returns its exit code.
    fn run_container(
        &self,
        id: &str,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> impl Future<Output = EngineResult<i64>> + Send;

    /// Starts a container attached to this process's terminal (interactive
    /// `kiln start`) and returns its exit code.
    fn run_interactive(&self, id: &str) -> impl Future<Output = EngineResult<i64>> + Send;

    /// Extracts a tar archive into the container's filesystem at `path`.
    fn put_archive(
        &self,
        id: &str,
        path: &str,
        tar: Bytes,
    ) -> impl Future<Output = EngineResult<()>> + Send;

    /// A tar archive of `path` in the container; `Ok(None)` when it does not exist.
    fn get_archive(
        &self,
        id: &str,
        path: &str,
    ) -> impl Future<Output = EngineResult<Option<Bytes>>> + Send;

    /// Commits the container as a new image with exactly `spec.config`; returns its id.
    fn commit(&self, spec: &CommitSpec) -> impl Future<Output = EngineResult<String>> + Send;

    /// Removes a container, killing it first; no error when it is already gone.
    fn remove_container(&self, id: &str) -> impl Future<Output = EngineResult<()>> + Send;

    /// Ids of containers (running or not) carrying `label=value`.
    fn containers_with_label(
        &self,
        label: &str,
        value: &str,
    ) -> impl Future<Output = EngineResult<Vec<String>>> + Send;

    /// Every container (running or not) carrying `label=value`.
    fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> impl Future<Output = EngineResult<Vec<ContainerSummary>>> + Send;

    /// Every container (running or not) whatever its labels, as its name and
    /// the id of the image it was made from: what holds an image in use.
    fn container_images(&self) -> impl Future<Output = EngineResult<Vec<(String, String)>>> + Send;

    /// Starts a created or stopped container, detached; no error when it already runs.
    fn start_container(&self, id: &str) -> impl Future<Output = EngineResult<()>> + Send;

    /// Stops a running container (SIGTERM, then SIGKILL after `timeout`); no
    /// error when it is not running.
    fn stop_container(
        &self,
        id: &str,
        timeout: std::time::Duration,
    ) -> impl Future<Output = EngineResult<()>> + Send;

    /// `Ok(None)` when no such container exists (by id or name).
    fn inspect_container(
        &self,
        id: &str,
    ) -> impl Future<Output = EngineResult<Option<ContainerInfo>>> + Send;

    /// The container's output: the last `tail` lines (all when `None`), then,
    /// with `follow`, new lines until it stops.
    fn container_logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> impl Future<Output = EngineResult<()>> + Send;

    /// Runs `cmd` in a running container, streams its output, returns its exit code.
    fn exec(
        &self,
        id: &str,
        cmd: &[String],
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> impl Future<Output = EngineResult<i64>> + Send;

    /// Runs `cmd` in a running container attached to this process's terminal.
    fn exec_interactive(
        &self,
        id: &str,
        cmd: &[String],
    ) -> impl Future<Output = EngineResult<i64>> + Send;

    /// Creates a named volume with `labels`; an existing volume of that name is kept.
    fn create_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> impl Future<Output = EngineResult<()>> + Send;

    /// Every volume carrying `label=value`.
    fn list_volumes(
        &self,
        label: &str,
        value: &str,
    ) -> impl Future<Output = EngineResult<Vec<VolumeSummary>>> + Send;

    /// Removes a volume; no error when it is already gone, `Refused` while in use.
    fn remove_volume(&self, name: &str) -> impl Future<Output = EngineResult<()>> + Send;

    /// The volume called `name`, whatever its labels; `Ok(None)` when there is none.
    fn inspect_volume(
        &self,
        name: &str,
    ) -> impl Future<Output = EngineResult<Option<VolumeSummary>>> + Send;

    /// Copies `from_path` of container `from` into `to_dir` of container `to`
    /// (`get_archive` then `put_archive`: the tar's top entry is `from_path`'s
    /// last component). Both may be created and never started; volumes mounted
    /// there are read and written. Implementations may stream instead of
    /// holding the archive in memory.
    fn copy_archive(
        &self,
        from: &str,
        from_path: &str,
        to: &str,
        to_dir: &str,
    ) -> impl Future<Output = EngineResult<()>> + Send {
        async move {
            let tar =
                self.get_archive(from, from_path)
                    .await?
                    .ok_or_else(|| EngineError::Refused {
                        op: "copy archive".to_string(),
                        message: format!("`{from_path}` does not exist in container `{from}`"),
                    })?;
            self.put_archive(to, to_dir, tar).await
        }
    }

    /// Every local image carrying all the given `label=value`s, with its tags
    /// and labels, in one listing (the whole-build cache check is this one call).
    fn list_images(
        &self,
        labels: &[(&str, &str)],
    ) -> impl Future<Output = EngineResult<Vec<ImageSummary>>> + Send {
        async move {
            let mut out = Vec::new();
            for id in self.images_with_labels(labels).await? {
                if let Some(info) = self.image_inspect(&id).await? {
                    out.push(ImageSummary {
                        id: info.id,
                        repo_tags: info.repo_tags,
                        labels: info.config.labels,
                    });
                }
            }
            Ok(out)
        }
    }

    /// Like `put_archive`, from a tar file on the host (large archives: repos, copies).
    fn put_archive_file(
        &self,
        id: &str,
        path: &str,
        tar: PathBuf,
    ) -> impl Future<Output = EngineResult<()>> + Send {
        async move {
            let bytes = std::fs::read(&tar).map_err(|e| EngineError::Refused {
                op: "put_archive".to_string(),
                message: format!("cannot read `{}`: {e}", tar.display()),
            })?;
            self.put_archive(id, path, Bytes::from(bytes)).await
        }
    }

    /// Whether anything is at `path` in the container, its last component
    /// not followed (as `lstat` finds it): a dangling symlink is there.
    /// By default read from `get_archive`.
    fn exists(&self, id: &str, path: &str) -> impl Future<Output = EngineResult<bool>> + Send {
        async move { Ok(self.get_archive(id, path).await?.is_some()) }
    }

    /// The directory at `path` in the container, symlinks followed (as
    /// `mkdir -p` and `chmod` find it); `None` when nothing, or no
    /// directory, is there. By default read from the first entry of
    /// `get_archive`, which an engine that can stop reading there does better.
    fn dir_stat(
        &self,
        id: &str,
        path: &str,
    ) -> impl Future<Output = EngineResult<Option<DirStat>>> + Send {
        async move {
            let mut path = path.to_string();
            for _ in 0..40 {
                let Some(tar) = self.get_archive(id, &path).await? else {
                    return Ok(None);
                };
                match first_entry(&tar) {
                    Some(FirstEntry::Link(target)) => path = link_target(&path, &target),
                    Some(FirstEntry::Dir(mut stat)) => {
                        stat.path = path;
                        return Ok(Some(stat));
                    }
                    Some(FirstEntry::Other) | None => return Ok(None),
                }
            }
            Ok(None)
        }
    }

    /// Whether `path` in the container is a directory, a symlink to one
    /// followed (as `mkdir -p` finds it); `false` when nothing is there.
    /// By default read from `get_archive`, which an engine that can stat a
    /// path without reading everything under it does better.
    fn is_dir(&self, id: &str, path: &str) -> impl Future<Output = EngineResult<bool>> + Send {
        async move {
            let mut path = path.to_string();
            // As in the kernel: a chain of more links than this is a loop.
            for _ in 0..40 {
                let Some(tar) = self.get_archive(id, &path).await? else {
                    return Ok(false);
                };
                let mut archive = tar::Archive::new(&tar[..]);
                let first = archive.entries().ok().and_then(|mut e| e.next()?.ok());
                let Some(entry) = first else {
                    return Ok(false);
                };
                let kind = entry.header().entry_type();
                if !kind.is_symlink() {
                    return Ok(kind.is_dir());
                }
                let target = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                path = if target.starts_with('/') {
                    target
                } else {
                    let parent = path
                        .trim_end_matches('/')
                        .rsplit_once('/')
                        .map_or("", |p| p.0);
                    format!("{parent}/{target}")
                };
            }
            Ok(false)
        }
    }
}

/// What the first entry of a container's archive of a path is.
pub(crate) enum FirstEntry {
    /// A directory, its `path` left empty for the caller.
    Dir(DirStat),
    /// A symlink, with its target.
    Link(String),
    Other,
}

/// The first entry of `tar`, which may be cut short after it.
pub(crate) fn first_entry(tar: &[u8]) -> Option<FirstEntry> {
    let mut archive = tar::Archive::new(tar);
    let entry = archive.entries().ok()?.next()?.ok()?;
    let h = entry.header();
    let kind = h.entry_type();
    if kind.is_symlink() {
        let target = entry.link_name().ok().flatten()?;
        return Some(FirstEntry::Link(target.to_string_lossy().into_owned()));
    }
    if !kind.is_dir() {
        return Some(FirstEntry::Other);
    }
    Some(FirstEntry::Dir(DirStat {
        path: String::new(),
        mode: h.mode().ok()? & 0o7777,
        uid: h.uid().ok()?,
        gid: h.gid().ok()?,
        mtime: h.mtime().ok()?,
    }))
}

/// Where a symlink at `path` whose target is `target` leads.
fn link_target(path: &str, target: &str) -> String {
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        let parent = path
            .trim_end_matches('/')
            .rsplit_once('/')
            .map_or("", |p| p.0);
        format!("{parent}/{target}")
    };
    // Lexically, which is right unless a `..` follows another link; the
    // next lookup follows that one anyway.
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
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
