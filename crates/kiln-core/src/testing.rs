//! Helpers shared by tests across the repository: a tiny busybox base image
//! that needs no registry, unique names, a scope that removes every
//! container and image a test made, even when the test fails, and a git
//! server that wants credentials ([`git_http`]), and a real OCI registry on
//! loopback ([`LocalRegistry`]).
//!
//! Only in tests: behind the `testing` feature, which the dev-dependencies
//! turn on.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;

use crate::engine::{Engine, ImageConfig};

use crate::image::labels::LABEL_HABITAT;

mod git_http;
mod registry;
pub use git_http::{GitHttp, serve_git_http};
pub use registry::{LocalRegistry, RegistryOptions, write_docker_config};

/// The error type of these helpers: they serve tests, which only report it.
pub type TestError = Box<dyn std::error::Error + Send + Sync>;

/// Where the busybox image lives, in both the real and the fake engine.
pub const BUSYBOX_REPO: &str = "kiln-test/busybox";
pub const BUSYBOX_TAG: &str = "latest";
pub const BUSYBOX_IMAGE: &str = "kiln-test/busybox:latest";

/// The busybox binary the base image is made from (Debian's `busybox-static`).
pub const BUSYBOX_BINARY: &str = "/bin/busybox";

/// The `PATH` of the busybox image.
pub const BUSYBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The config the busybox image is imported with.
pub fn busybox_config() -> ImageConfig {
    ImageConfig {
        env: vec![format!("PATH={BUSYBOX_PATH}")],
        cmd: Some(vec!["sh".to_string()]),
        ..ImageConfig::default()
    }
}

/// A name no other test (thread or process) uses: `prefix-PID-N-NANOS`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// `/bin/busybox`, installing Debian's `busybox-static` first when it is
/// missing and this process may (runs as root).
pub fn busybox_binary() -> Result<PathBuf, TestError> {
    let path = Path::new(BUSYBOX_BINARY);
    if !path.is_file() {
        apt_install("busybox-static", BUSYBOX_BINARY)?;
    }
    Ok(path.to_path_buf())
}

/// Installs Debian's `package` so that `path` exists, when this process may
/// (runs as root); `apt-get update` first only when the install fails.
pub(crate) fn apt_install(package: &str, path: &str) -> Result<(), TestError> {
    if !is_root() {
        return Err(format!(
            "`{path}` is missing\nhint: install it with `apt-get install -y {package}`"
        )
        .into());
    }
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !install()?.success() || !Path::new(path).is_file() {
        let update = std::process::Command::new("apt-get")
            .args(["update", "-qq"])
            .status()?;
        if !update.success() || !install()?.success() || !Path::new(path).is_file() {
            return Err(format!("`apt-get install -y {package}` did not provide `{path}`").into());
        }
    }
    Ok(())
}

fn append_dir(b: &mut tar::Builder<std::fs::File>, path: &str, mode: u32) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h.set_mtime(0);
    b.append_data(&mut h, format!("{path}/"), std::io::empty())
}

fn append_file(
    b: &mut tar::Builder<std::fs::File>,
    path: &str,
    mode: u32,
    content: &[u8],
) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(content.len() as u64);
    h.set_mtime(0);
    b.append_data(&mut h, path, content)
}

/// Writes a root filesystem tarball: busybox with a symlink per applet, root
/// in `/etc/passwd` and `/etc/group`, and the usual directories.
pub fn write_busybox_rootfs(dest: &Path) -> Result<(), TestError> {
    let busybox = busybox_binary()?;
    let list = std::process::Command::new(&busybox)
        .arg("--list")
        .output()?;
    if !list.status.success() {
        return Err(format!("`{} --list` failed", busybox.display()).into());
    }
    let applets = String::from_utf8(list.stdout)?;
    let mut b = tar::Builder::new(std::fs::File::create(dest)?);
    for (dir, mode) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("root", 0o700),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/local", 0o755),
        ("usr/local/bin", 0o755),
        ("home", 0o755),
    ] {
        append_dir(&mut b, dir, mode)?;
    }
    append_file(&mut b, "bin/busybox", 0o755, &std::fs::read(&busybox)?)?;
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    append_file(
        &mut b,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    append_file(&mut b, "etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    b.into_inner()?.sync_all()?;
    Ok(())
}

/// The id of the busybox test image, importing it (once) when the engine does
/// not have `kiln-test/busybox:latest` yet.
pub async fn busybox_image(engine: &impl Engine) -> Result<String, TestError> {
    // One import at a time within a test binary; parallel binaries may both
    // import, and the later tag simply wins.
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = LOCK.lock().await;
    if let Some(info) = engine.image_inspect(BUSYBOX_IMAGE).await? {
        return Ok(info.id);
    }
    let dir = tempfile::tempdir()?;
    let tar = dir.path().join("busybox-rootfs.tar");
    write_busybox_rootfs(&tar)?;
    let id = engine.import(tar, &busybox_config()).await?;
    engine.tag(&id, BUSYBOX_REPO, BUSYBOX_TAG).await?;
    Ok(id)
}

/// What a scoped test labels its containers and images with, so the scope can
/// find and remove them afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestScope {
    /// The value of `dev.kiln.habitat` on everything this test makes.
    pub habitat: String,
}

impl TestScope {
    pub fn new(prefix: &str) -> TestScope {
        TestScope {
            habitat: unique(prefix),
        }
    }

    /// `{dev.kiln.habitat: <this scope>}`, to put on every container and image.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(LABEL_HABITAT.to_string(), self.habitat.clone())])
    }

    /// Removes every container and image labelled with this scope.
    pub async fn cleanup(&self, engine: &impl Engine) -> Result<(), TestError> {
        for id in engine
            .containers_with_label(LABEL_HABITAT, &self.habitat)
            .await?
        {
            engine.remove_container(&id).await?;
        }
        for id in engine
            .images_with_labels(&[(LABEL_HABITAT, &self.habitat)])
            .await?
        {
            // Already gone (removed with a tag, or by the test) is fine.
            let _ = engine.remove_image(&id).await;
        }
        Ok(())
    }
}

/// Runs `body` with a fresh [`TestScope`], then removes everything labelled
/// with it, also when `body` panics (the panic is resumed afterwards).
pub async fn scoped<E, F, Fut, T>(engine: &E, prefix: &str, body: F) -> T
where
    E: Engine,
    F: FnOnce(TestScope) -> Fut,
    Fut: Future<Output = T>,
{
    let scope = TestScope::new(prefix);
    let result = std::panic::AssertUnwindSafe(body(scope.clone()))
        .catch_unwind()
        .await;
    let cleaned = scope.cleanup(engine).await;
    match result {
        Ok(value) => {
            if let Err(e) = cleaned {
                panic!("cleaning up test scope `{}` failed: {e}", scope.habitat);
            }
            value
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
