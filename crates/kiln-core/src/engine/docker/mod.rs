//! The Docker Engine implementation of [`super::Engine`], over bollard: the only
//! place in kiln that knows the engine speaks HTTP. Here, the calls; beside them
//! `connect`, `error`, `convert`, `stream` and `interactive` (terminal attach).

mod connect;
mod convert;
mod error;
mod interactive;
mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    AttachContainerOptions, CommitContainerOptions, ContainerArchiveInfoOptions,
    CreateContainerOptions, CreateImageOptions, DownloadFromContainerOptions,
    InspectContainerOptions, ListContainersOptions, ListImagesOptions, RemoveContainerOptions,
    RemoveImageOptions, StartContainerOptions, TagImageOptions, UploadToContainerOptions,
    WaitContainerOptions,
};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::semantics::{commit_leaks, leak_error};
use super::{
    CommitSpec, ContainerInfo, ContainerSpec, ContainerSummary, Engine, EngineInfo, EngineResult,
    ImageConfig, ImageInfo, ImageSummary, PullProgress, RegistryAuth, Stream, VolumeSummary,
};
use convert::{
    commit_config, container_body, container_info_from_docker, container_summary_from_docker,
    image_info_from_docker, image_summary_from_docker, label_filters, pull_progress_from_docker,
    split_reference,
};
use error::{no_such_container, no_such_image, refused};
use stream::{file_chunks, pump_output};

pub use connect::DEFAULT_ENDPOINT;
pub use convert::import_changes;

/// A connection to a Docker (or Podman) engine.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
    /// Whether each container this engine created and has not run yet is
    /// auto-removed, as its spec said: running one then needs no inspect
    /// first (a round trip on every build step's path, SPEC §5).
    created: Arc<Mutex<HashMap<String, bool>>>,
}

impl DockerEngine {
    /// The endpoint this engine was reached at.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The bollard client, for the rare caller that needs an API kiln's trait lacks.
    pub fn client(&self) -> &Docker {
        &self.docker
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

    /// The exit code of a container once it is not running (or `Refused`).
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

impl Engine for DockerEngine {
    fn identity(&self) -> String {
        connect::endpoint_identity(&self.endpoint)
    }

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
            Ok(i) => Ok(Some(image_info_from_docker(i))),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.error("inspect image", e, |_| None)),
        }
    }

    async fn images_with_labels(&self, labels: &[(&str, &str)]) -> EngineResult<Vec<String>> {
        // The same one listing call, sorted and deduplicated by id.
        let images = self.list_images(labels).await?;
        Ok(images.into_iter().map(|i| i.id).collect())
    }

    /// One listing call (the default would inspect every image).
    async fn list_images(&self, labels: &[(&str, &str)]) -> EngineResult<Vec<ImageSummary>> {
        let options = ListImagesOptions {
            filters: Some(label_filters(labels)),
            ..Default::default()
        };
        let images = self
            .docker
            .list_images(Some(options))
            .await
            .map_err(|e| self.error("list images", e, |_| None))?;
        let mut out: Vec<ImageSummary> =
            images.into_iter().map(image_summary_from_docker).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }

    async fn pull_with_progress(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        on_progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> EngineResult<()> {
        let (from_image, tag) = split_reference(reference);
        let options = CreateImageOptions {
            from_image: Some(from_image),
            tag,
            ..Default::default()
        };
        let credentials = auth.map(|a| bollard::auth::DockerCredentials {
            username: a.username.clone(),
            password: a.password.clone(),
            identitytoken: a.identity_token.clone(),
            serveraddress: Some(a.server.clone()),
            ..Default::default()
        });
        let mut progress = self.docker.create_image(Some(options), None, credentials);
        while let Some(item) = progress.next().await {
            let info = item.map_err(|e| self.error("pull", e, no_such_image(reference)))?;
            if let Some(p) = pull_progress_from_docker(&info) {
                on_progress(p);
            }
        }
        Ok(())
    }

    /// Streamed to the file: an image's layers are hundreds of megabytes.
    async fn save(&self, references: &[String], out: PathBuf) -> EngineResult<()> {
        use tokio::io::AsyncWriteExt;
        let names: Vec<&str> = references.iter().map(String::as_str).collect();
        let cannot =
            |e: std::io::Error| refused("save", format!("cannot write `{}`: {e}", out.display()));
        let mut file = tokio::fs::File::create(&out).await.map_err(cannot)?;
        let mut stream = self.docker.export_images(&names);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error("save", e, |_| None))?;
            file.write_all(&chunk).await.map_err(cannot)?;
        }
        file.flush().await.map_err(cannot)?;
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
        let options = CreateContainerOptions {
            name: spec.name.clone(),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(Some(options), container_body(spec))
            .await
            .map_err(|e| self.error("create container", e, no_such_image(&spec.image)))?;
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(created.id.clone(), spec.auto_remove);
        Ok(created.id)
    }

    async fn run_container(
        &self,
        id: &str,
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) -> EngineResult<i64> {
        let known = self
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        let auto_remove = match known {
            Some(auto_remove) => auto_remove,
            None => self.inspect_auto_remove(id).await?,
        };
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
        let Some(handle) = removed_wait else {
            // The wait is sent while the output streams, so the exit code is
            // in hand when the output ends, not one more round trip later.
            let wait = self.exit_code(id);
            tokio::pin!(wait);
            let pump = pump_output(attached.output, on_line);
            tokio::pin!(pump);
            let mut code = None;
            let pumped = loop {
                tokio::select! {
                    pumped = &mut pump => break pumped,
                    c = &mut wait, if code.is_none() => code = Some(c),
                }
            };
            pumped.map_err(|e| self.error("attach container", e, no_such_container(id)))?;
            return match code {
                Some(code) => code,
                None => wait.await,
            };
        };
        pump_output(attached.output, on_line)
            .await
            .map_err(|e| self.error("attach container", e, no_such_container(id)))?;
        match handle.await {
            Ok(Some(Ok(r))) => Ok(r.status_code),
            Ok(Some(Err(BollardError::DockerContainerWaitError { code, .. }))) => Ok(code),
            Ok(Some(Err(e))) => Err(self.error("wait container", e, no_such_container(id))),
            Ok(None) | Err(_) => Err(refused("wait container", "no exit status".into())),
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

    /// One `HEAD` of the archive endpoint per link: Docker stats the path
    /// (parents resolved, the last component not) and reads nothing below it.
    async fn exists(&self, id: &str, path: &str) -> EngineResult<bool> {
        let options = ContainerArchiveInfoOptions {
            path: path.to_string(),
        };
        match self
            .docker
            .get_container_archive_info(id, Some(options))
            .await
        {
            Ok(_) => Ok(true),
            // Nothing there (404), or a file on the way (500; see `is_dir`).
            Err(BollardError::DockerResponseServerError {
                status_code: 404 | 500,
                ..
            }) => Ok(false),
            Err(e) => Err(self.error("stat path", e, no_such_container(id))),
        }
    }

    /// Links followed by `HEAD`s, as `is_dir` does; then only the start of
    /// the directory's archive is read, to its first header (Docker sends
    /// everything below it after that, which may be the whole image).
    async fn dir_stat(&self, id: &str, path: &str) -> EngineResult<Option<super::DirStat>> {
        const MODE_DIR: u32 = 1 << 31;
        const MODE_SYMLINK: u32 = 1 << 27;
        // Enough for a header with a long name's extension before it.
        const PREFIX: usize = 64 * 1024;
        let mut path = path.to_string();
        let mut found = false;
        for _ in 0..40 {
            let options = ContainerArchiveInfoOptions { path: path.clone() };
            match self
                .docker
                .get_container_archive_info(id, Some(options))
                .await
            {
                Ok(stat) if stat.file_mode & MODE_SYMLINK != 0 && !stat.link_target.is_empty() => {
                    path = stat.link_target;
                }
                Ok(stat) if stat.file_mode & MODE_DIR != 0 => {
                    found = true;
                    break;
                }
                Ok(_) => return Ok(None),
                Err(BollardError::DockerResponseServerError {
                    status_code: 404 | 500,
                    ..
                }) => return Ok(None),
                Err(e) => return Err(self.error("stat path", e, no_such_container(id))),
            }
        }
        if !found {
            return Ok(None);
        }
        let options = DownloadFromContainerOptions { path: path.clone() };
        let mut stream = self.docker.download_from_container(id, Some(options));
        let mut prefix = Vec::new();
        while prefix.len() < PREFIX {
            match stream.next().await {
                Some(Ok(chunk)) => prefix.extend_from_slice(&chunk),
                Some(Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                })) => return Ok(None),
                Some(Err(e)) => return Err(self.error("get archive", e, no_such_container(id))),
                None => break,
            }
        }
        drop(stream);
        Ok(match super::first_entry(&prefix) {
            Some(super::FirstEntry::Dir(mut stat)) => {
                stat.path = path;
                Some(stat)
            }
            _ => None,
        })
    }

    async fn is_dir(&self, id: &str, path: &str) -> EngineResult<bool> {
        // Go's `os.FileMode`: the type bits sit above the permission bits.
        const MODE_DIR: u32 = 1 << 31;
        const MODE_SYMLINK: u32 = 1 << 27;
        let mut path = path.to_string();
        for _ in 0..40 {
            let options = ContainerArchiveInfoOptions { path: path.clone() };
            match self
                .docker
                .get_container_archive_info(id, Some(options))
                .await
            {
                Ok(stat) if stat.file_mode & MODE_SYMLINK != 0 && !stat.link_target.is_empty() => {
                    // The target comes resolved, as an absolute path.
                    path = stat.link_target;
                }
                Ok(stat) => return Ok(stat.file_mode & MODE_DIR != 0),
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) => return Ok(false),
                // A path through a file (`lstat …: not a directory`; a HEAD
                // answer carries no message to tell it by): no directory there,
                // and what is made there fails with a better error.
                Err(BollardError::DockerResponseServerError {
                    status_code: 500, ..
                }) => return Ok(false),
                Err(e) => return Err(self.error("stat path", e, no_such_container(id))),
            }
        }
        Ok(false)
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
        let config = commit_config(c);
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
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
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

    async fn inspect_container(&self, id: &str) -> EngineResult<Option<ContainerInfo>> {
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
        Ok(Some(container_info_from_docker(info)))
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

    async fn list_volumes(&self, label: &str, value: &str) -> EngineResult<Vec<VolumeSummary>> {
        let options = bollard::query_parameters::ListVolumesOptions {
            filters: Some(label_filters(&[(label, value)])),
        };
        let listed = self
            .docker
            .list_volumes(Some(options))
            .await
            .map_err(|e| self.error("list volumes", e, |_| None))?;
        let mut out: Vec<VolumeSummary> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeSummary {
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

    async fn inspect_volume(&self, name: &str) -> EngineResult<Option<VolumeSummary>> {
        match self.docker.inspect_volume(name).await {
            Ok(v) => Ok(Some(VolumeSummary {
                name: v.name,
                labels: v.labels.into_iter().collect(),
            })),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(self.error("inspect volume", e, |_| None)),
        }
    }

    /// Streams the archive from one container into the other, so a large
    /// volume never sits in memory.
    async fn copy_archive(
        &self,
        from: &str,
        from_path: &str,
        to: &str,
        to_dir: &str,
    ) -> EngineResult<()> {
        let download = self
            .docker
            .download_from_container(
                from,
                Some(DownloadFromContainerOptions {
                    path: from_path.to_string(),
                }),
            )
            .map_err(std::io::Error::other);
        let options = UploadToContainerOptions {
            path: to_dir.to_string(),
            ..Default::default()
        };
        self.docker
            .upload_to_container(to, Some(options), bollard::body_try_stream(download))
            .await
            .map_err(|e| self.error("copy archive", e, no_such_container(to)))
    }

    async fn containers_with_label(&self, label: &str, value: &str) -> EngineResult<Vec<String>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filters(&[(label, value)])),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error("list containers", e, |_| None))?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    async fn container_images(&self) -> EngineResult<Vec<(String, String)>> {
        let options = ListContainersOptions {
            all: true,
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
                let name = c.names?.into_iter().next()?;
                Some((name.trim_start_matches('/').to_string(), c.image_id?))
            })
            .collect())
    }

    async fn list_containers(
        &self,
        label: &str,
        value: &str,
    ) -> EngineResult<Vec<ContainerSummary>> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filters(&[(label, value)])),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.error("list containers", e, |_| None))?;
        Ok(containers
            .into_iter()
            .filter_map(container_summary_from_docker)
            .collect())
    }
}
