//! How a phase's image is made, cheapest first: a config-only load over the
//! parent's layers; a layer written on the host from the phase's tars; the
//! container's writable layer read on the host; `docker commit` where
//! nothing on the host can be read. Also what archive phases read of their
//! parent image (its accounts, `/etc/skel`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::cache::scratch;
use crate::engine::{CommitSpec, Engine, ImageConfig};
use crate::image::archive::{self, ParentImage};
use crate::image::layer::{Layer, Watched};
use crate::image::layer_from_tars as host_layer;
use crate::image::layer_from_upper;
use crate::image::rootfs::{self, RootFs};
use crate::image::tar::first_file;
use crate::phase::Phase;
use crate::report::Event;
use crate::sources::copies::CopyError;
use crate::sources::io::HostIo;

use super::context::{Executor, ImageState, PhaseCtx, Produced, snapshot_comment};
use super::error::{BuildError, fail, task_failed};
use super::phases::accounts::Accounts;

impl<E: Engine> Executor<'_, E> {
    /// A phase that changes only image config: one `docker load` of an archive
    /// reusing the parent's layers; no container, no commit.
    pub(super) async fn load_phase(&mut self, ctx: PhaseCtx) -> Result<Produced, BuildError> {
        let config = self.snapshot_config(ctx.phase, ctx.step.as_ref(), ctx.config);
        self.load_config_only(ctx.phase, &ctx.parent.layers, config, &ctx.tags)
            .await
    }

    async fn load_config_only(
        &self,
        phase: Phase,
        layers: &ParentImage,
        config: ImageConfig,
        tags: &[String],
    ) -> Result<Produced, BuildError> {
        let archive = archive::config_only(layers, &config, &snapshot_comment(phase), tags);
        self.engine.load(Bytes::from(archive.tar)).await?;
        let state = ImageState {
            id: archive.image_id,
            layers: layers.clone(),
            config,
            layer_dirs: None,
        };
        Ok(Produced::made(state, tags))
    }

    /// An archive phase (users, habitat, files, repos, tools): tars made on
    /// the host that become the phase's layer. Where the parent's layer
    /// directories can be read here, the layer is written on the host against
    /// them ([`host_layer`]); otherwise the tars are extracted into a created
    /// (never started) container of the parent, which becomes the snapshot.
    /// `make` gets what `needs` asks of the image (its accounts, to resolve
    /// owners; `/etc/skel`); it returns the tars and log lines.
    pub(super) async fn archive_phase<F>(
        &mut self,
        ctx: PhaseCtx,
        needs: Needs,
        make: F,
    ) -> Result<Produced, BuildError>
    where
        F: FnOnce(&ImageFacts) -> Result<Uploads, BuildError>,
    {
        self.archive_phase_probing(ctx, needs, &[], make).await
    }

    /// [`Self::archive_phase`], where `make` also learns which of `dirs`
    /// (absolute paths) the parent image already has as directories
    /// ([`ImageFacts::dirs`]), by the same reader on both ways of making the
    /// layer.
    pub(super) async fn archive_phase_probing<F>(
        &mut self,
        ctx: PhaseCtx,
        needs: Needs,
        dirs: &[String],
        make: F,
    ) -> Result<Produced, BuildError>
    where
        F: FnOnce(&ImageFacts) -> Result<Uploads, BuildError>,
    {
        self.archive_phase_statting(ctx, needs, dirs, &[], make)
            .await
    }

    /// [`Self::archive_phase_probing`], where `make` also gets the metadata
    /// of those of `stat` the image has as directories, symlinks followed
    /// ([`ImageFacts::dir_stats`]).
    pub(super) async fn archive_phase_statting<F>(
        &mut self,
        ctx: PhaseCtx,
        needs: Needs,
        dirs: &[String],
        stat: &[String],
        make: F,
    ) -> Result<Produced, BuildError>
    where
        F: FnOnce(&ImageFacts) -> Result<Uploads, BuildError>,
    {
        let phase = ctx.phase;
        if let Some(rootfs) = self.host_rootfs(&ctx.parent).await? {
            let mut facts = self.image_facts(FileSource::Host(&rootfs), needs).await?;
            for dir in stat {
                let found = rootfs.follow_to(dir).map_err(|e| {
                    write_failed(phase, &format!("cannot read `{dir}` in the image"), e)
                })?;
                if let Some((path, f)) = found.filter(|(_, f)| f.meta.is_dir()) {
                    use std::os::unix::fs::MetadataExt;
                    let stat = crate::engine::DirStat {
                        path,
                        mode: f.meta.mode() & 0o7777,
                        uid: u64::from(f.meta.uid()),
                        gid: u64::from(f.meta.gid()),
                        mtime: u64::try_from(f.meta.mtime()).unwrap_or(0),
                    };
                    facts.dir_stats.insert(dir.clone(), stat);
                }
            }
            facts.dirs = dirs
                .iter()
                .filter(|d| {
                    // A directory, a link to one, or any other entry (a
                    // dangling link above all): never made again.
                    matches!(rootfs.follow(d), Ok(Some(f)) if f.meta.is_dir())
                        || matches!(
                            rootfs.resolve_parents(d).and_then(|p| rootfs.lstat(&p)),
                            Ok(Some(_))
                        )
                })
                .cloned()
                .collect();
            let mut uploads = make(&facts)?;
            self.report_log(phase, std::mem::take(&mut uploads.log));
            return self.host_layer(ctx, rootfs, uploads).await;
        }
        let spec = self.container_spec(&ctx.parent.id);
        let id = self.engine.create_container(&spec).await?;
        let filled = async {
            let mut facts = self.image_facts(FileSource::Container(&id), needs).await?;
            for dir in dirs {
                if self.engine.is_dir(&id, dir).await? || self.engine.exists(&id, dir).await? {
                    facts.dirs.insert(dir.clone());
                }
            }
            for dir in stat {
                if let Some(stat) = self.engine.dir_stat(&id, dir).await? {
                    facts.dir_stats.insert(dir.clone(), stat);
                }
            }
            let mut uploads = make(&facts)?;
            self.report_log(phase, std::mem::take(&mut uploads.log));
            for tar in uploads.tars {
                self.engine.put_archive(&id, "/", tar).await?;
            }
            for file in &uploads.files {
                self.engine
                    .put_archive_file(&id, "/", file.to_path_buf())
                    .await?;
            }
            for produce in uploads.streams {
                let file = tokio::task::spawn_blocking(move || stream_to_file(produce))
                    .await
                    .map_err(|e| task_failed("archive", e))?
                    .map_err(|e| write_failed(phase, "cannot store the archive", e))?;
                self.engine
                    .put_archive_file(&id, "/", file.to_path_buf())
                    .await?;
            }
            Ok(())
        }
        .await;
        self.snapshot_or_discard(ctx, &id, filled).await
    }

    pub(super) fn report_log(&mut self, phase: Phase, lines: Vec<String>) {
        for line in lines {
            self.reporter.report(Event::PhaseLog {
                phase,
                stream: "stdout",
                line,
            });
        }
    }

    /// The parent's file system on the host, when its storage driver keeps
    /// layers as directories this process can read.
    pub(super) async fn host_rootfs(
        &self,
        image: &ImageState,
    ) -> Result<Option<RootFs>, BuildError> {
        if self.opts.archive_in_container {
            return Ok(None);
        }
        let dirs = match &image.layer_dirs {
            Some(dirs) => dirs.clone(),
            None => self
                .image_state(&image.id)
                .await?
                .layer_dirs
                .unwrap_or_default(),
        };
        let dirs: Vec<PathBuf> = dirs.into_iter().map(PathBuf::from).collect();
        if !dirs.iter().all(|d| rootfs::owners_are_real(d)) {
            return Ok(None);
        }
        Ok(RootFs::open(dirs))
    }

    /// Writes the layer of `uploads` over `rootfs` on the host and loads it
    /// as the phase's snapshot.
    async fn host_layer(
        &self,
        ctx: PhaseCtx,
        rootfs: RootFs,
        uploads: Uploads,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let config = self.snapshot_config(phase, ctx.step.as_ref(), ctx.config);
        let layers = ctx.parent.layers.clone();
        let image_config = config.clone();
        let comment = snapshot_comment(phase);
        let tags = ctx.tags.clone();
        let written = tokio::task::spawn_blocking(move || {
            let Uploads {
                tars,
                files,
                streams,
                ..
            } = uploads;
            let sources: Vec<host_layer::Source> = tars
                .iter()
                .map(|t| host_layer::Source::Bytes(t))
                .chain(files.iter().map(|f| host_layer::Source::File(f)))
                .chain(streams.into_iter().map(host_layer::Source::Stream))
                .collect();
            write_layer_archive(&layers, &image_config, &comment, &tags, |out| {
                host_layer::write_layer(&rootfs, sources, out)
            })
        })
        .await
        .map_err(|e| task_failed("layer", e))?
        .map_err(|e| write_failed(phase, "cannot write the layer", e))?;
        self.load_written(written, phase, (&ctx.parent.layers, &ctx.tags), config)
            .await
    }

    /// Loads a layer written on the host as the phase's snapshot (a
    /// config-only image when the layer came out empty).
    async fn load_written(
        &self,
        written: WrittenLayer,
        phase: Phase,
        (parent, tags): (&ParentImage, &[String]),
        config: ImageConfig,
    ) -> Result<Produced, BuildError> {
        match written {
            WrittenLayer::Layer {
                _dir,
                archive,
                image,
                layers,
            } => {
                self.engine.load_file(archive).await?;
                let state = ImageState {
                    id: image,
                    layers,
                    config,
                    layer_dirs: None,
                };
                Ok(Produced::made(state, tags))
            }
            WrittenLayer::Empty => self.load_config_only(phase, parent, config, tags).await,
        }
    }

    /// A phase whose layer is written on the host from what it holds alone
    /// (the final phase's init and services spec), reading nothing of the
    /// parent: works the same on any engine, and loads as the phase's snapshot.
    pub(super) async fn own_layer_phase<F>(
        &self,
        ctx: PhaseCtx,
        write: F,
    ) -> Result<Produced, BuildError>
    where
        F: FnOnce(&mut dyn crate::image::layer::LayerOut) -> std::io::Result<Layer>
            + Send
            + 'static,
    {
        let phase = ctx.phase;
        let config = self.snapshot_config(phase, ctx.step.as_ref(), ctx.config);
        let layers = ctx.parent.layers.clone();
        let image_config = config.clone();
        let comment = snapshot_comment(phase);
        let tags = ctx.tags.clone();
        let written = tokio::task::spawn_blocking(move || {
            write_layer_archive(&layers, &image_config, &comment, &tags, write)
        })
        .await
        .map_err(|e| task_failed("layer", e))?
        .map_err(|e| write_failed(phase, "cannot write the layer", e))?;
        self.load_written(written, phase, (&ctx.parent.layers, &ctx.tags), config)
            .await
    }

    /// Snapshots container `id` when `ready` (the phase's work in it
    /// succeeded); removes the container either way.
    async fn snapshot_or_discard(
        &self,
        ctx: PhaseCtx,
        id: &str,
        ready: Result<(), BuildError>,
    ) -> Result<Produced, BuildError> {
        match ready {
            Ok(()) => self.snapshot(ctx, id).await,
            Err(e) => {
                // The phase's own error says more than a failed clean-up would.
                let _ = self.engine.remove_container(id).await;
                Err(e)
            }
        }
    }

    /// Makes the snapshot image of a phase from its container, and removes the
    /// container: the container's writable layer read from the host as a new
    /// layer on the parent's, then one `docker load` (while the container is
    /// removed); or, when the engine's layer dir cannot be read (a remote
    /// engine, another storage driver), `docker commit`.
    pub(super) async fn snapshot(
        &self,
        ctx: PhaseCtx,
        container: &str,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let config = self.snapshot_config(phase, ctx.step.as_ref(), ctx.config);
        let comment = snapshot_comment(phase);
        let layered = match self
            .write_upper_dir(container, &ctx.parent, &config, &comment, &ctx.tags)
            .await
        {
            Ok(layered) => layered,
            Err(e) => {
                let _ = self.engine.remove_container(container).await;
                return Err(e);
            }
        };
        match layered {
            Some(WrittenLayer::Layer {
                _dir,
                archive,
                image,
                layers,
            }) => {
                // The layer is in the archive: the container is not needed
                // any more, and removing it costs the load nothing.
                let (loaded, removed) = tokio::join!(
                    self.engine.load_file(archive),
                    self.engine.remove_container(container)
                );
                loaded?;
                removed?;
                let state = ImageState {
                    id: image,
                    layers,
                    config,
                    layer_dirs: None,
                };
                Ok(Produced::made(state, &ctx.tags))
            }
            Some(WrittenLayer::Empty) => {
                // Nothing changed in the container: a config-only image, as
                // Docker makes for an instruction that changes no file.
                let (loaded, removed) = tokio::join!(
                    self.load_config_only(phase, &ctx.parent.layers, config, &ctx.tags),
                    self.engine.remove_container(container)
                );
                removed?;
                loaded
            }
            None => {
                let committed = self
                    .engine
                    .commit(&CommitSpec {
                        container: container.to_string(),
                        config: config.clone(),
                        comment: Some(comment),
                    })
                    .await;
                self.engine.remove_container(container).await?;
                // A commit's layers are the engine's to say: read when needed.
                Ok(Produced::listed(committed?))
            }
        }
    }

    /// The archive of the container's writable layer over the parent's
    /// layers; `Ok(None)` when the upper dir is not readable here (commit
    /// instead).
    async fn write_upper_dir(
        &self,
        container: &str,
        parent: &ImageState,
        config: &ImageConfig,
        comment: &str,
        tags: &[String],
    ) -> Result<Option<WrittenLayer>, BuildError> {
        let hint = self
            .upper_hint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .filter(|(id, _)| id == container);
        let upper = match hint {
            Some((_, upper)) => upper,
            None => self
                .engine
                .inspect_container(container)
                .await?
                .and_then(|c| c.upper_dir),
        };
        let Some(upper) = upper else {
            return Ok(None);
        };
        let upper = PathBuf::from(upper);
        let Ok(mut entries) = std::fs::read_dir(&upper) else {
            return Ok(None);
        };
        if !rootfs::owners_are_real(&upper) {
            return Ok(None);
        }
        // A step that changed no file (Docker's pivot_root scratch aside) is
        // a config-only image: no archive to write, no thread to wait for.
        if entries
            .all(|e| e.is_ok_and(|e| e.file_name().as_encoded_bytes().starts_with(b".pivot_root")))
        {
            return Ok(Some(WrittenLayer::Empty));
        }
        let layers = parent.layers.clone();
        let config = config.clone();
        let comment = comment.to_string();
        let tags = tags.to_vec();
        // Reading the upper dir and writing the archive is blocking file work.
        let written = tokio::task::spawn_blocking(move || {
            write_layer_archive(&layers, &config, &comment, &tags, |out| {
                layer_from_upper::write_layer(&upper, std::io::BufWriter::new(out))
            })
        })
        .await
        .map_err(|e| task_failed("layer", e))?;
        // An unreadable upper dir is not an error: commit does the same work.
        Ok(written.ok())
    }

    /// A regular file of the parent image and its mode.
    async fn image_file(
        &self,
        source: FileSource<'_>,
        path: &str,
    ) -> Result<Option<(Vec<u8>, u32)>, BuildError> {
        match source {
            FileSource::Host(rootfs) => Ok(rootfs
                .read_file(path)
                .map_err(image_read("cannot read the image's file", path))?),
            FileSource::Container(id) => Ok(self
                .engine
                .get_archive(id, path)
                .await?
                .and_then(|tar| first_file(&tar))),
        }
    }

    /// What an archive phase needs to know of its parent image.
    async fn image_facts(
        &self,
        source: FileSource<'_>,
        needs: Needs,
    ) -> Result<ImageFacts, BuildError> {
        let mut facts = ImageFacts::default();
        if needs.accounts {
            let mut files = BTreeMap::new();
            for path in ["/etc/passwd", "/etc/group", "/etc/shadow"] {
                if let Some((content, mode)) = self.image_file(source, path).await? {
                    files.insert(path, content);
                    facts.modes.insert(path.to_string(), mode);
                }
            }
            let text = |p: &str| {
                files
                    .get(p)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            facts.accounts = Accounts {
                passwd: text("/etc/passwd").unwrap_or_default(),
                group: text("/etc/group").unwrap_or_default(),
                shadow: text("/etc/shadow"),
            };
        }
        if needs.skel {
            facts.skel = match source {
                FileSource::Host(rootfs) => host_layer::archive_of(rootfs, "/etc/skel")
                    .map_err(image_read("cannot read the image's directory", "/etc/skel"))?,
                FileSource::Container(id) => self
                    .engine
                    .get_archive(id, "/etc/skel")
                    .await?
                    .map(|b| b.to_vec()),
            };
        }
        Ok(facts)
    }
}

/// The tar `produce` writes, stored in a temporary file (for a container:
/// the engine's archive upload takes a file). A failed write names the file.
fn stream_to_file(produce: host_layer::Producer) -> std::io::Result<tempfile::TempPath> {
    use std::io::Write;
    let file = scratch::tempfile(STREAM_PREFIX)?;
    let mut out = std::io::BufWriter::new(Watched::new(file.as_file()));
    match produce(&mut out).and_then(|()| out.flush()) {
        Err(e) if out.get_ref().failed() => Err(std::io::Error::new(
            e.kind(),
            format!("cannot write `{}`: {e}", file.path().display()),
        )),
        Err(e) => Err(e),
        Ok(()) => {
            drop(out);
            Ok(file.into_temp_path())
        }
    }
}

/// A phase failed writing a file on the host; a full disk says where to
/// make room, since the file is only a temporary one.
fn write_failed(phase: Phase, what: &str, e: std::io::Error) -> BuildError {
    // A copy that changed under kiln says so itself.
    if let Some(changed @ CopyError::Changed { .. }) =
        e.get_ref().and_then(|i| i.downcast_ref::<CopyError>())
    {
        return fail(phase, changed.to_string());
    }
    let hint = match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => format!(
            "\nhint: kiln writes layers in `{}` (TMPDIR); free space there, or set TMPDIR to a larger disk",
            std::env::temp_dir().display()
        ),
        _ => String::new(),
    };
    fail(phase, format!("{what}: {e}{hint}"))
}

/// Where temporary files of a build go in TMPDIR, named by their owner so a
/// later build sweeps what a killed one left (`cache::scratch`).
pub(super) const LAYER_PREFIX: &str = "kiln-layer-";
pub(super) const STREAM_PREFIX: &str = "kiln-stream-";

/// A path of the parent image, read through its layer directories on the
/// host, could not be read.
fn image_read(context: &'static str, path: &str) -> impl FnOnce(std::io::Error) -> HostIo {
    let path = Path::new(path).to_path_buf();
    move |source| HostIo {
        context,
        path,
        source,
    }
}

/// Where an archive phase reads its parent image's files.
#[derive(Clone, Copy)]
enum FileSource<'a> {
    /// The parent's layer directories, on the host.
    Host(&'a RootFs),
    /// A created (never started) container of the parent.
    Container(&'a str),
}

/// What an archive phase asks of its parent image.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Needs {
    /// `/etc/passwd`, `/etc/group` and `/etc/shadow`, to resolve owners.
    pub(super) accounts: bool,
    /// `/etc/skel`, for new users' homes.
    pub(super) skel: bool,
}

#[derive(Default)]
pub(super) struct ImageFacts {
    pub(super) accounts: Accounts,
    /// The modes of the accounts files.
    pub(super) modes: BTreeMap<String, u32>,
    /// `/etc/skel` as an archive of the engine's form.
    pub(super) skel: Option<Vec<u8>>,
    /// Of the directories the phase asked about, those the image has
    /// (symlinks followed, as `mkdir -p` finds them).
    pub(super) dirs: std::collections::BTreeSet<String>,
    /// Of the directories the phase asked to stat, those the image has,
    /// with where their symlinks lead and their metadata.
    pub(super) dir_stats: BTreeMap<String, crate::engine::DirStat>,
}

/// A phase's new layer, in a loadable archive over its parent's layers.
enum WrittenLayer {
    Layer {
        /// Holds `archive`; removed when dropped.
        _dir: tempfile::TempDir,
        archive: PathBuf,
        image: String,
        layers: ParentImage,
    },
    /// The layer would be empty: the phase changed no file.
    Empty,
}

/// Writes the archive of an image with `parent`'s layers plus the one
/// `write` makes, in a temporary directory. Blocking.
fn write_layer_archive<F>(
    parent: &ParentImage,
    config: &ImageConfig,
    comment: &str,
    tags: &[String],
    write: F,
) -> std::io::Result<WrittenLayer>
where
    F: FnOnce(&mut dyn crate::image::layer::LayerOut) -> std::io::Result<Layer>,
{
    let dir = scratch::tempdir(LAYER_PREFIX)?;
    let archive = dir.path().join("image.tar");
    let (image, layer) = archive::write_with_layer(parent, config, comment, tags, &archive, write)?;
    if layer.entries == 0 {
        return Ok(WrittenLayer::Empty);
    }
    let mut layers = parent.clone();
    layers.layers.push(layer.diff_id);
    Ok(WrittenLayer::Layer {
        _dir: dir,
        archive,
        image,
        layers,
    })
}

/// What an archive phase extracts into its container, and what it says.
#[derive(Default)]
pub(super) struct Uploads {
    pub(super) tars: Vec<Bytes>,
    /// Large tars, as files on the host (removed when dropped).
    pub(super) files: Vec<tempfile::TempPath>,
    /// Tars written on demand: streamed into a layer written on the host, or
    /// stored in a file first for a container.
    pub(super) streams: Vec<host_layer::Producer>,
    pub(super) log: Vec<String>,
}
