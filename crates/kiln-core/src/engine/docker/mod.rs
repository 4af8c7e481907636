//! The Docker Engine implementation of [`super::Engine`], over bollard: the only
//! place in kiln that knows the engine speaks HTTP.

mod convert;
mod interactive;
mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CommitContainerOptions, CreateContainerOptions, CreateImageOptions,
    DownloadFromContainerOptions, InspectContainerOptions, ListContainersOptions,
    ListImagesOptions, RemoveContainerOptions, RemoveImageOptions, StartContainerOptions,
    TagImageOptions, UploadToContainerOptions, WaitContainerOptions,
};
use bollard::{ClientVersion, Docker};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::semantics::{commit_leaks, leak_error, normalize_port};
use super::{
    CommitSpec, ContainerSpec, Engine, EngineError, EngineInfo, EngineResult, ImageConfig,
    ImageInfo, ImageSummary, Stream,
};
use convert::{
    image_config_from_docker, layer_dirs, ports_from_docker, restart_policy, split_reference,
};
use stream::{file_chunks, pump_output};

pub use convert::import_changes;

/// Where bollard looks when `DOCKER_HOST` is unset.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// How long `connect` waits for the engine to answer before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// bollard's default of 2 minutes is measured until the response headers arrive;
/// committing or importing a multi-gigabyte filesystem can take longer than that.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// A connection to a Docker (or Podman) engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
}

impl DockerEngine {
    /// Connects at `DOCKER_HOST` or the default socket and negotiates the API
    /// version (so Docker 20.10, API 1.41, works). `Unreachable` when nothing answers.
    pub async fn connect() -> Result<DockerEngine, EngineError> {
        let endpoint = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        Self::connect_to(&endpoint).await
    }

    /// Connects at an explicit endpoint (`unix://…`, `tcp://…`, `http://…`).
    pub async fn connect_to(endpoint: &str) -> Result<DockerEngine, EngineError> {
        let unreachable = |reason: String| EngineError::Unreachable {
            endpoint: endpoint.to_string(),
            reason,
        };
        let timed_out = || unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()));
        let mut docker = match endpoint.strip_prefix("unix://") {
            // The engine states its API version in every response's headers;
            // reading it off `/_ping` costs a fraction of the `/version` call
            // bollard negotiates with (0.3 ms against 4 ms here), which a
            // no-op build would otherwise spend most of its time on.
            Some(path) => match tokio::time::timeout(CONNECT_TIMEOUT, ping_api_version(path)).await
            {
                Ok(Ok(server)) => {
                    let version = if server < *bollard::API_DEFAULT_VERSION {
                        server
                    } else {
                        *bollard::API_DEFAULT_VERSION
                    };
                    Docker::connect_with_unix(endpoint, REQUEST_TIMEOUT.as_secs(), &version)
                        .map_err(|e| unreachable(e.to_string()))?
                }
                Ok(Err(reason)) => return Err(unreachable(reason)),
                Err(_) => return Err(timed_out()),
            },
            None => {
                let docker =
                    Docker::connect_with_host(endpoint).map_err(|e| unreachable(e.to_string()))?;
                match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
                    Ok(Ok(docker)) => docker,
                    Ok(Err(e)) => return Err(unreachable(describe(&e))),
                    Err(_) => return Err(timed_out()),
                }
            }
        };
        docker.set_timeout(REQUEST_TIMEOUT);
        Ok(DockerEngine {
            docker,
            endpoint: endpoint.to_string(),
        })
    }

    /// The endpoint this engine was reached at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bollard client, for the rare caller that needs an API kiln's trait lacks.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Maps a bollard error: transport failures become `Unreachable`, 404s the
    /// matching `NoSuch*` (decided by `not_found`), everything else `Refused`.
    fn error(
        &self,
        op: &str,
        e: BollardError,
        not_found: impl FnOnce(&str) -> Option<EngineError>,
    ) -> EngineError {
        match e {
            BollardError::DockerResponseServerError {
                status_code: 404,
                ref message,
            } => not_found(message).unwrap_or_else(|| refused(op, message.clone())),
            BollardError::DockerResponseServerError { message, .. } => refused(op, message),
            e if is_transport(&e) => EngineError::Unreachable {
                endpoint: self.endpoint.clone(),
                reason: describe(&e),
            },
            e => refused(op, e.to_string()),
        }
    }

    async fn inspect_auto_remove(&self, id: &str) -> EngineResult<bool> {
        let info = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.error("inspect container", e, no_such_container(id)))?;
        Ok(info
            .host_config
            .and_then(|h| h.auto_remove)
            .unwrap_or(false))
    }

    /// The exit code of a container that has exited (or `Refused`).
    async fn exit_code(&self, id: &str) -> EngineResult<i64> {
        let options = WaitContainerOptions {
            condition: "not-running".to_string(),
        };
        let mut wait = self.docker.wait_container(id, Some(options));
        match wait.next().await {
            Some(Ok(r)) => Ok(r.status_code),
            // bollard turns a non-zero exit into an error; to kiln it is a result.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(self.error("wait container", e, no_such_container(id))),
            None => Err(refused("wait container", "no exit status".to_string())),
        }
    }
}

/// The API version an engine on a unix socket speaks, from the `Api-Version`
/// header of `GET /_ping` (how the docker CLI negotiates). `Err` says why the
/// engine is unreachable.
async fn ping_api_version(path: &str) -> Result<ClientVersion, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| e.to_string())?;
    sock.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    // HTTP/1.0: the engine closes the connection after the short body. A
    // head that never ends is not an engine's.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_api_version(&String::from_utf8_lossy(&head))
}

/// The `Api-Version` of a response head, when its status is 200.
fn parse_api_version(head: &str) -> Result<ClientVersion, String> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("`/_ping` answered `{}`", status.trim()));
    }
    let value = lines
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("api-version")
                .then(|| v.trim())
        })
        .ok_or("`/_ping` names no API version")?;
    let (major, minor) = value
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| format!("the engine's API version `{value}` is not MAJOR.MINOR"))?;
    Ok(ClientVersion {
        major_version: major,
        minor_version: minor,
    })
}

fn refused(op: &str, message: String) -> EngineError {
    EngineError::Refused {
        op: op.to_string(),
        message,
    }
}

fn no_such_container(id: &str) -> impl FnOnce(&str) -> Option<EngineError> + '_ {
    move |message: &str| {
        message
            .contains("No such container")
            .then(|| EngineError::NoSuchContainer(id.to_string()))
    }
}

fn no_such_image(reference: &str) -> impl FnOnce(&str) -> Option<EngineError> + '_ {
    move |_| Some(EngineError::NoSuchImage(reference.to_string()))
}

/// Errors that mean "nothing (sane) answered", as opposed to an answer that said no.
fn is_transport(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
            | BollardError::HttpClientError { .. }
            | BollardError::UnsupportedURISchemeError { .. }
    )
}

/// A one-line description of a bollard error including its source chain, so
/// "connection refused" or "No such file or directory" reaches the user.
fn describe(e: &BollardError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

impl Engine for DockerEngine {
    async fn ping(&self) -> EngineResult<EngineInfo> {
        let v = self
            .docker
            .version()
            .await
            .map_err(|e| self.error("version", e, |_| None))?;
        Ok(EngineInfo {
            version: v.version.unwrap_or_default(),
            api_version: v.api_version.unwrap_or_default(),
        })
    }

    async fn image_inspect(&self, reference: &str) -> EngineResult<Option<ImageInfo>> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => Ok(Some(ImageInfo {
                layer_dirs: i.graph_driver.as_ref().map(layer_dirs).unwrap_or_default(),
                id: i.id.unwrap_or_default(),
                repo_tags: i.repo_tags.unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
                config: image_config_from_docker(i.config),
                layers: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
                architecture: i.architecture.unwrap_or_default(),
                os: i.os.unwrap_or_default(),
                created: i.created.map(|c| c.to_string()).unwrap_or_default(),
            })),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.error("inspect image", e, |_| None)),
        }
    }

    async fn images_with_labels(&self, labels: &[(&str, &str)]) -> EngineResult<Vec<String>> {
        let filters = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|e| self.error("list images", e, |_| None))?;
        let mut ids: Vec<String> = images.into_iter().map(|i| i.id).collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// One listing call (the default would inspect every image).
    async fn list_images(&self, labels: &[(&str, &str)]) -> EngineResult<Vec<ImageSummary>> {
        let filters = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListImagesOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|e| self.error("list images", e, |_| None))?;
        let mut out: Vec<ImageSummary> = images
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                // Docker lists an untagged image as `<none>:<none>`.
                repo_tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                labels: i.labels.into_iter().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }

    async fn pull(&self, reference: &str) -> EngineResult<()> {
        let (from_image, tag) = split_reference(reference);
        let options = CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        };
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(item) = progress.next().await {
            item.map_err(|e| self.error("pull", e, no_such_image(reference)))?;
        }
        Ok(())
    }

    async fn import(&self, rootfs_tar: PathBuf, config: &ImageConfig) -> EngineResult<String> {
        let file = tokio::fs::File::open(&rootfs_tar).await.map_err(|e| {
            refused(
                "import",
                format!("cannot open `{}`: {e}", rootfs_tar.display()),
            )
        })?;
        // Stream the file: a bootstrapped root filesystem is hundreds of megabytes.
        let chunks = file_chunks(file);
        let options = CreateImageOptions {
            from_src: Some("-".to_string()),
            changes: import_changes(config),
            ..Default::default()
        };
        let mut progress =
            self.docker
                .create_image(Some(options), Some(bollard::body_try_stream(chunks)), None);
        let mut id = None;
        while let Some(item) = progress.next().await {
            let info = item.map_err(|e| self.error("import", e, |_| None))?;
            // The last status of an import is the new image's id.
            if let Some(status) = info.status.filter(|s| s.starts_with("sha256:")) {
                id = Some(status);
            }
        }
        id.ok_or_else(|| refused("import", "the engine returned no image id".to_string()))
    }

    async fn load(&self, tar: Bytes) -> EngineResult<()> {
        let options = bollard::query_parameters::ImportImageOptions {
            quiet: true,
            ..Default::default()
        };
        let mut progress = self
            .docker
            .import_image(options, bollard::body_full(tar), None);
        while let Some(item) = progress.next().await {
            item.map_err(|e| self.error("load", e, |_| None))?;
        }
        Ok(())
    }

    async fn load_file(&self, tar: PathBuf) -> EngineResult<()> {
        let file = tokio::fs::File::open(&tar)
            .await
            .map_err(|e| refused("load", format!("cannot open `{}`: {e}", tar.display())))?;
        let options = bollard::query_parameters::ImportImageOptions {
            quiet: true,
            ..Default::default()
        };
        let mut progress = self
            .docker
            .import_image_stream(options, file_chunks(file), None);
        while let Some(item) = progress.next().await {
            item.map_err(|e| self.error("load", e, |_| None))?;
        }
        Ok(())
    }

    async fn tag(&self, image: &str, repo: &str, tag: &str) -> EngineResult<()> {
        let options = TagImageOptions {
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
        };
        self.docker
            .tag_image(image, Some(options))
            .await
            .map_err(|e| self.error("tag", e, no_such_image(image)))
    }

    /// Forced: a tag is removed even when other tags point at the same image,
    /// and an id is removed with all its tags (running containers still block it).
    async fn remove_image(&self, reference: &str) -> EngineResult<()> {
        let options = RemoveImageOptions {
            force: true,
            ..Default::default()
        };
        self.docker
            .remove_image(reference, Some(options), None)
            .await
            .map(|_| ())
            .map_err(|e| self.error("remove image", e, no_such_image(reference)))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> EngineResult<String> {
        // Bind strings take both absolute host paths and volume names
        // (`name:/dst`), so one form serves both kinds of mount.
        let binds: Vec<String> = spec
            .mounts
            .iter()
            .map(|m| {
                let mut bind = format!("{}:{}", m.source, m.target);
                if m.readonly {
                    bind.push_str(":ro");
                }
                bind
            })
            .collect();
        let mut port_bindings: HashMap<String, Option<Vec<bollard::models::PortBinding>>> =
            HashMap::new();
        for p in &spec.ports {
            port_bindings
                .entry(p.container_key())
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(bollard::models::PortBinding {
                    host_ip: Some(p.host_ip.clone()),
                    host_port: Some(p.host_port.to_string()),
                });
        }
        let exposed: Vec<String> = port_bindings.keys().cloned().collect();
        let host_config = HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            network_mode: spec.network_host.then(|| "host".to_string()),
            auto_remove: Some(spec.auto_remove),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            restart_policy: spec.restart.as_deref().map(restart_policy),
            init: spec.init.then_some(true),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: spec.cmd.clone(),
            entrypoint: spec.entrypoint.clone(),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            user: spec.user.clone(),
            working_dir: spec.working_dir.clone(),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            tty: Some(spec.interactive),
            open_stdin: Some(spec.interactive),
            stdin_once: Some(spec.interactive),
            attach_stdin: Some(spec.interactive),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(host_config),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            hostname: spec.hostname.clone(),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: spec.name.clone(),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.error("create container", e, no_such_image(&spec.image)))?;
        Ok(created.id)
    }

    async fn run_container(
        &self,
        id: &str,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> EngineResult<i64> {
        let auto_remove = self.inspect_auto_remove(id).await?;
        // Attach before start, so not a byte of output is lost.
        let options = AttachContainerOptions {
            stdout: true,
            stderr: true,
            stream: true,
            ..Default::default()
        };
        let attached = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(|e| self.error("attach container", e, no_such_container(id)))?;
        // An auto-removed container is gone by the time its output ends, so its
        // exit code can only come from a wait registered before it starts.
        let removed_wait = auto_remove.then(|| {
            let docker = self.docker.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                let options = WaitContainerOptions {
                    condition: "removed".to_string(),
                };
                docker.wait_container(&id, Some(options)).next().await
            })
        });
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| self.error("start container", e, no_such_container(id)))?;
        pump_output(attached.output, on_line)
            .await
            .map_err(|e| self.error("attach container", e, no_such_container(id)))?;
        match removed_wait {
            None => self.exit_code(id).await,
            Some(handle) => match handle.await {
                Ok(Some(Ok(r))) => Ok(r.status_code),
                Ok(Some(Err(BollardError::DockerContainerWaitError { code, .. }))) => Ok(code),
                Ok(Some(Err(e))) => Err(self.error("wait container", e, no_such_container(id))),
                Ok(None) | Err(_) => Err(refused("wait container", "no exit status".into())),
            },
        }
    }

    async fn run_interactive(&self, id: &str) -> EngineResult<i64> {
        self.run_on_terminal(id).await
    }

    async fn put_archive(&self, id: &str, path: &str, tar: Bytes) -> EngineResult<()> {
        let options = UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(id, Some(options), bollard::body_full(tar))
            .await
            .map_err(|e| self.error("put archive", e, no_such_container(id)))
    }

    /// Streams the file instead of reading it into memory first.
    async fn put_archive_file(&self, id: &str, path: &str, tar: PathBuf) -> EngineResult<()> {
        let file = tokio::fs::File::open(&tar).await.map_err(|e| {
            refused(
                "put archive",
                format!("cannot open `{}`: {e}", tar.display()),
            )
        })?;
        let options = UploadToContainerOptions {
            path: path.to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(
                id,
                Some(options),
                bollard::body_try_stream(file_chunks(file)),
            )
            .await
            .map_err(|e| self.error("put archive", e, no_such_container(id)))
    }

    async fn get_archive(&self, id: &str, path: &str) -> EngineResult<Option<Bytes>> {
        let options = DownloadFromContainerOptions {
            path: path.to_string(),
        };
        let result: Result<Vec<Bytes>, BollardError> = self
            .docker
            .download_from_container(id, Some(options))
            .try_collect()
            .await;
        match result {
            Ok(chunks) => Ok(Some(chunks.concat().into())),
            Err(BollardError::DockerResponseServerError {
                status_code: 404,
                message,
            }) if !message.contains("No such container") => Ok(None),
            Err(e) => Err(self.error("get archive", e, no_such_container(id))),
        }
    }

    /// Docker's commit API MERGES: every field left empty in the config sent is
    /// filled from the container's own config (env entries whose key is missing
    /// are appended, labels added, cmd/entrypoint/user/working dir filled when
    /// empty). So every field of `spec.config` is sent explicitly, with
    /// `Entrypoint: []` (empty, not null) when there is none, so a container's
    /// entrypoint never leaks into the image. What cannot be prevented that way
    /// (env keys, labels, user, working dir or cmd the container has and the
    /// config lacks) is checked after the commit: such an image is removed and
    /// the commit refused, since a leaked env entry may be a secret.
    async fn commit(&self, spec: &CommitSpec) -> EngineResult<String> {
        let c = &spec.config;
        let config = ContainerConfig {
            user: Some(c.user.clone().unwrap_or_default()),
            env: Some(c.env.clone()),
            cmd: Some(c.cmd.clone().unwrap_or_default()),
            entrypoint: Some(c.entrypoint.clone().unwrap_or_default()),
            working_dir: Some(c.working_dir.clone().unwrap_or_default()),
            exposed_ports: Some(c.exposed_ports.iter().map(|p| normalize_port(p)).collect()),
            labels: Some(
                c.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            ..Default::default()
        };
        let options = CommitContainerOptions {
            container: Some(spec.container.clone()),
            comment: spec.comment.clone(),
            pause: true,
            ..Default::default()
        };
        let committed = self
            .docker
            .commit_container(options, config)
            .await
            .map_err(|e| self.error("commit", e, no_such_container(&spec.container)))?;
        let id = committed.id;
        let got = self
            .image_inspect(&id)
            .await?
            .ok_or_else(|| refused("commit", format!("committed image `{id}` vanished")))?;
        let leaks = commit_leaks(c, &got.config);
        if !leaks.is_empty() {
            let _ = self.remove_image(&id).await;
            return Err(leak_error(&spec.container, &leaks));
        }
        Ok(id)
    }

    async fn remove_container(&self, id: &str) -> EngineResult<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: false,
            ..Default::default()
        };
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            // An auto-removed container may already be on its way out.
            Err(BollardError::DockerResponseServerError {
                status_code: 409,
                message,
            }) if message.contains("already in progress") => Ok(()),
            Err(e) => Err(self.error("remove container", e, |_| None)),
        }
    }

    async fn start_container(&self, id: &str) -> EngineResult<()> {
        match self
            .docker
            .start_container(id, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => Ok(()),
            // 304: already started.
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.error("start container", e, no_such_container(id))),
        }
    }

    async fn stop_container(&self, id: &str, timeout: Duration) -> EngineResult<()> {
        let options = bollard::query_parameters::StopContainerOptions {
            t: Some(i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX)),
            signal: None,
        };
        match self.docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(self.error("stop container", e, no_such_container(id))),
        }
    }

    async fn inspect_container(&self, id: &str) -> EngineResult<Option<super::ContainerInfo>> {
        let info = match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => info,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(self.error("inspect container", e, |_| None)),
        };
        let state = info.state.unwrap_or_default();
        let status = state.status.map(|s| s.to_string()).unwrap_or_default();
        let started_at = state
            .started_at
            .filter(|t| !t.is_empty() && !t.starts_with("0001-"));
        let exit_code = (status == "exited" || status == "dead")
            .then_some(state.exit_code)
            .flatten();
        Ok(Some(super::ContainerInfo {
            id: info.id.unwrap_or_default(),
            name: info
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            state: status,
            started_at,
            image: info.image.unwrap_or_default(),
            labels: info
                .config
                .and_then(|c| c.labels)
                .map(|l| l.into_iter().collect())
                .unwrap_or_default(),
            ports: ports_from_docker(info.host_config.and_then(|h| h.port_bindings)),
            restart_count: info.restart_count.unwrap_or(0),
            exit_code,
            upper_dir: info
                .graph_driver
                .and_then(|g| g.data.get("UpperDir").cloned())
                .filter(|d| !d.is_empty()),
        }))
    }

    async fn container_logs(
        &self,
        id: &str,
        follow: bool,
        tail: Option<usize>,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> EngineResult<()> {
        let options = bollard::query_parameters::LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        pump_output(self.docker.logs(id, Some(options)), on_line)
            .await
            .map_err(|e| self.error("container logs", e, no_such_container(id)))
    }

    async fn exec(
        &self,
        id: &str,
        cmd: &[String],
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> EngineResult<i64> {
        let config = bollard::exec::CreateExecOptions::<String> {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, config)
            .await
            .map_err(|e| self.error("exec", e, no_such_container(id)))?;
        let started = self
            .docker
            .start_exec(&created.id, None::<bollard::exec::StartExecOptions>)
            .await
            .map_err(|e| self.error("exec", e, no_such_container(id)))?;
        if let bollard::exec::StartExecResults::Attached { output, .. } = started {
            pump_output(output, on_line)
                .await
                .map_err(|e| self.error("exec", e, no_such_container(id)))?;
        }
        let inspected = self
            .docker
            .inspect_exec(&created.id)
            .await
            .map_err(|e| self.error("exec", e, no_such_container(id)))?;
        Ok(inspected.exit_code.unwrap_or(-1))
    }

    async fn exec_interactive(&self, id: &str, cmd: &[String]) -> EngineResult<i64> {
        self.exec_on_terminal(id, cmd).await
    }

    async fn create_volume(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> EngineResult<()> {
        let request = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker
            .create_volume(request)
            .await
            .map(|_| ())
            .map_err(|e| self.error("create volume", e, |_| None))
    }

    async fn list_volumes(
        &self,
        label: &str,
        value: &str,
    ) -> EngineResult<Vec<super::VolumeSummary>> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
        let options = bollard::query_parameters::ListVolumesOptions {
            filters: Some(filters),
        };
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| self.error("list volumes", e, |_| None))?;
        let mut out: Vec<super::VolumeSummary> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| super::VolumeSummary {
                name: v.name,
                labels: v.labels.into_iter().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn remove_volume(&self, name: &str) -> EngineResult<()> {
        let options = bollard::query_parameters::RemoveVolumeOptions { force: false };
        match self.docker.remove_volume(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.error("remove volume", e, |_| None)),
        }
    }

    async fn containers_with_label(&self, label: &str, value: &str) -> EngineResult<Vec<String>> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error("list containers", e, |_| None))?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> EngineResult<Vec<super::ContainerSummary>> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{label}={value}")])]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error("list containers", e, |_| None))?;
        Ok(containers
            .into_iter()
            .filter_map(|c| {
                Some(super::ContainerSummary {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    labels: c
                        .labels
                        .map(|l| l.into_iter().collect())
                        .unwrap_or_default(),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_is_read_off_the_ping_headers() {
        let head = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\n\r\nOK";
        let v = parse_api_version(head).unwrap();
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        let lower = "HTTP/1.1 200 OK\r\napi-version:1.40\r\n\r\n";
        assert_eq!(parse_api_version(lower).unwrap().minor_version, 40);
        assert!(parse_api_version("HTTP/1.1 500 Internal\r\n\r\n").is_err());
        assert!(parse_api_version("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n").is_err());
        assert!(parse_api_version("HTTP/1.1 200 OK\r\nApi-Version: v2\r\n\r\n").is_err());
    }
}
