//! The plain data that crosses the engine seam: what kiln asks for (specs,
//! configs) and what the engine tells back (listings, inspections, errors).
//! No behaviour and no I/O, so the pure rooms may use these types without
//! depending on the [`super::Engine`] trait.

use std::collections::BTreeMap;

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
    /// Docker's `HEALTHCHECK`; kiln sets it on an image with `services:`.
    pub healthcheck: Option<Healthcheck>,
}

/// An image's `HEALTHCHECK`, as Docker keeps it: durations in nanoseconds,
/// 0 meaning Docker's default (Docker leaves a 0 out when it reports one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["CMD", argv...]`, `["CMD-SHELL", script]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    pub start_period_ns: u64,
    pub retries: u64,
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
    /// The bytes of all its layers (the engine's `Size`).
    pub size: u64,
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
    /// What a stop without a timeout of its own (`docker stop`) waits before
    /// SIGKILL; Docker's default (10 s) when `None`.
    pub stop_timeout: Option<std::time::Duration>,
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
    /// `starting`, `healthy` or `unhealthy` when its image has a healthcheck;
    /// `None` without one.
    pub health: Option<String>,
    /// The output of its last healthcheck run, when there was one.
    pub health_output: Option<String>,
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

/// A directory in a container, found by [`crate::engine::Engine::dir_stat`]:
/// where it is once symlinks are followed, and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirStat {
    /// Absolute, every symlink on the way (the last included) followed.
    pub path: String,
    /// Permission bits with setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

/// What to commit: the container, the image config to give the new image
/// (it replaces the container's config), and an optional comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitSpec {
    pub container: String,
    pub config: ImageConfig,
    pub comment: Option<String>,
}

/// Where one layer of a pull stands, as the engine tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LayerState {
    /// Named in the manifest, not begun (Docker: `Pulling fs layer`, `Waiting`).
    Queued,
    /// Coming down: `current` of `total` bytes.
    Downloading,
    /// All of it here, checked (Docker: `Verifying Checksum`, `Download complete`).
    Downloaded,
    /// Being unpacked: `current` of `total` bytes of the download read.
    Extracting,
    /// Pulled and unpacked (Docker: `Pull complete`).
    Done,
    /// The engine held it already: nothing came down (Docker: `Already exists`).
    Present,
}

impl LayerState {
    /// Its name in `--progress json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerState::Queued => "queued",
            LayerState::Downloading => "downloading",
            LayerState::Downloaded => "downloaded",
            LayerState::Extracting => "extracting",
            LayerState::Done => "done",
            LayerState::Present => "present",
        }
    }

    /// Whether the layer needs nothing more.
    pub fn finished(self) -> bool {
        matches!(self, LayerState::Done | LayerState::Present)
    }

    /// The state a Docker pull status line names; `None` for the lines
    /// about the image as a whole (`Pulling from …`, `Digest: …`, `Status: …`).
    pub fn from_docker_status(status: &str) -> Option<LayerState> {
        Some(match status {
            "Pulling fs layer" | "Waiting" => LayerState::Queued,
            "Downloading" => LayerState::Downloading,
            "Verifying Checksum" | "Download complete" => LayerState::Downloaded,
            "Extracting" => LayerState::Extracting,
            "Pull complete" => LayerState::Done,
            "Already exists" => LayerState::Present,
            // `Retrying in 5 seconds` and the like: the layer starts over.
            s if s.starts_with("Retrying") => LayerState::Queued,
            _ => return None,
        })
    }
}

/// One record of a pull's progress: a layer (Docker's short id of its
/// blob digest), where it stands, and byte counts when the engine gives
/// them (`0` of `0` when it does not). Carries no credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    pub layer: String,
    pub state: LayerState,
    pub current: u64,
    pub total: u64,
}

/// Credentials the engine passes to a registry for one pull. Held in
/// memory only; `Debug` shows no secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// `HOST[:PORT]` the credentials are for.
    pub server: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// An OAuth refresh token (`docker login` with a token helper).
    pub identity_token: Option<String>,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
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
    /// Worded here once, hint included, for every command that needs an
    /// engine. One line (SPEC §1): where kiln looked and how to start one.
    #[error(
        "cannot reach the container engine at `{endpoint}`: {reason}; hint: start the Docker Engine (`systemctl start docker`, or `dockerd &`), or set `DOCKER_HOST` to where it listens"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error("no such image `{0}`")]
    NoSuchImage(String),
    #[error("no such container `{0}`")]
    NoSuchContainer(String),
    #[error("the engine refused `{op}`: {message}")]
    Refused { op: String, message: String },
}

pub type EngineResult<T> = Result<T, EngineError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_names_where_and_hints_on_one_line() {
        let e = EngineError::Unreachable {
            endpoint: "unix:///nonexistent.sock".to_string(),
            reason: "No such file or directory".to_string(),
        };
        let text = e.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("`unix:///nonexistent.sock`"), "{text}");
        assert_eq!(text.matches("hint: ").count(), 1, "{text}");
        assert!(
            text.ends_with("or set `DOCKER_HOST` to where it listens"),
            "{text}"
        );
    }
}
