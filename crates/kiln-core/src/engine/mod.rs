//! The one seam to the container engine. Everything kiln asks of Docker (or
//! Podman) goes through [`Engine`]; only `docker.rs` knows HTTP. Tests pass a
//! [`fake::FakeEngine`] explicitly where the engine is not what they test.

pub mod docker;
pub mod fake;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use bytes::Bytes;

/// One row of an image listing: enough to index snapshots without an inspect each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// One row of a container listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    /// `created`, `running`, `exited`, ...
    pub state: String,
    pub labels: BTreeMap<String, String>,
}

/// The runtime config of an image, as kiln reads and writes it.
/// `None` means "not set"; an empty vec means "set to empty".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub user: Option<String>,
    /// `KEY=VALUE` entries, in the image's order.
    pub env: Vec<String>,
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub working_dir: Option<String>,
    /// Docker's form, e.g. `3000/tcp`.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// What `image_inspect` tells kiln of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:…`
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub config: ImageConfig,
    /// Layer diff ids (`sha256:…`), bottom first.
    pub layers: Vec<String>,
    pub architecture: String,
    pub os: String,
    /// When the image was made, RFC 3339.
    pub created: String,
    /// Its layers' directories on the engine's host, top first, when the
    /// storage driver keeps layers as directories (overlay-style drivers).
    pub layer_dirs: Vec<String>,
}

/// A bind or named-volume mount for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// An absolute host path (bind) or a volume name.
    pub source: String,
    pub target: String,
    pub readonly: bool,
}

/// Everything needed to create a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    pub image: String,
    pub name: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub mounts: Vec<Mount>,
    /// Use the host's network (starts about twice as fast as the bridge).
    pub network_host: bool,
    /// Allocate a tty and keep stdin open (interactive `kiln start`).
    pub interactive: bool,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// Ports published on the host (needs the bridge network, not `network_host`).
    pub ports: Vec<PortBinding>,
    /// Docker's restart policy name: `no`, `on-failure`, `always`, `unless-stopped`.
    pub restart: Option<String>,
    pub hostname: Option<String>,
    /// Run an init process as PID 1 (it forwards signals, so a stop is prompt).
    pub init: bool,
}

/// One published port: `HOST_IP:HOST_PORT->CONTAINER_PORT/PROTOCOL`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortBinding {
    /// `0.0.0.0` for every interface.
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl PortBinding {
    /// Docker's key for the container side: `3000/tcp`.
    pub fn container_key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol)
    }
}

impl std::fmt::Display for PortBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip, self.host_port, self.container_port, self.protocol
        )
    }
}

/// What `inspect_container` tells kiln of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// `created`, `running`, `restarting`, `exited`, ...
    pub state: String,
    /// When it last started, RFC 3339; `None` when it never has.
    pub started_at: Option<String>,
    /// The id (`sha256:…`) of the image it runs.
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// The ports it publishes, sorted.
    pub ports: Vec<PortBinding>,
    pub restart_count: i64,
    /// The exit code of its last run, when it has exited.
    pub exit_code: Option<i64>,
    /// Its writable layer's directory on the engine's host, when the storage
    /// driver says (overlay-style drivers do).
    pub upper_dir: Option<String>,
}

/// One row of a volume listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSummary {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// Which stream a line of container output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// What to commit: the container, the image config to give the new image
/// (it replaces the container's config), and an optional comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitSpec {
    pub container: String,
    pub config: ImageConfig,
    pub comment: Option<String>,
}

/// Facts about the engine, from `ping`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
}

/// An engine failure. `Unreachable` maps to exit code 3 in the CLI.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the container engine at `{endpoint}`: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("no such image `{0}`")]
    NoSuchImage(String),
    #[error("no such container `{0}`")]
    NoSuchContainer(String),
    #[error("the engine refused `{op}`: {message}")]
    Refused { op: String, message: String },
}

pub type EngineResult<T> = Result<T, EngineError>;

/// The container engine, as kiln uses it. Methods are coarse on purpose: one
/// call per thing kiln needs, so the fake stays small and true to the real one.
pub trait Engine: Send + Sync {
    /// Connects and negotiates the API version; `Unreachable` when nothing answers.
    fn ping(&self) -> impl Future<Output = EngineResult<EngineInfo>> + Send;

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

    /// Pulls `reference` from its registry.
    fn pull(&self, reference: &str) -> impl Future<Output = EngineResult<()>> + Send;

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
}
