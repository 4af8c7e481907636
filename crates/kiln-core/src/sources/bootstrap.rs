//! A `bootstrap:` base is a Debian root filesystem made on the host with
//! `debootstrap` and imported as an image, so a habitat can be built with no
//! registry at all. The image is cached by its parameters: it is made once.
//!
//! Over 600 lines with its tests: the debootstrap run, its clean-up of
//! mounts and processes, and the trimming of the root filesystem belong to
//! one careful sequence that is read top to bottom.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::cache::{BuildLock, lock, scratch};
use crate::config::Bootstrap;
use crate::config::url::{credentials_hidden, without_credentials};
use crate::engine::{Engine, EngineError, ImageConfig, ImageInfo};
use crate::image::labels::{LABEL_BOOTSTRAP, LABEL_BOOTSTRAP_PARAMS};
use crate::sources::io::{HostIo, io_err};

/// The mirror used when `mirror:` is absent (not the host's: keys must not
/// depend on the machine).
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
/// Bump when what kiln does to the root filesystem changes, so older
/// bootstrap images stop matching.
const RECIPE: u32 = 1;
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Lines of debootstrap output kept for an error message.
const TAIL: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("bootstrap distro `{0}` is not supported\nhint: use `distro: debian`")]
    UnsupportedDistro(String),
    #[error("bootstrap {what} `{value}` is not valid: {why}")]
    BadParam {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(
        "`debootstrap` is not installed on this host; a `bootstrap:` base needs it\nhint: install it with `apt-get install debootstrap` (kiln installs nothing on the host), or use `base: image:`"
    )]
    DebootstrapMissing,
    #[error("`debootstrap` must run as root\nhint: run kiln as root, or use `base: image:`")]
    NotRoot,
    #[error("`debootstrap` failed for `{suite}` ({status}):\n{tail}")]
    Failed {
        suite: String,
        status: String,
        tail: String,
    },
    #[error("cannot pack the bootstrap root filesystem with `tar`: {0}")]
    Tar(String),
    #[error("file systems are still mounted under `{}` after debootstrap: {}\nhint: unmount them and remove the directory; kiln left it in place rather than delete through a mount", .dir.display(), .mounts.join(", "))]
    Mounted { dir: PathBuf, mounts: Vec<String> },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Io(#[from] HostIo),
}

/// The canonical parameters of a bootstrap, as JSON with sorted keys: what
/// [`bootstrap_key`] hashes and what the image's params label shows.
pub fn canonical_params(b: &Bootstrap) -> String {
    let mut include: Vec<&str> = b.include.iter().map(|s| s.trim()).collect();
    include.sort_unstable();
    include.dedup();
    // A credential in the mirror's URL is for debootstrap only: not an
    // input, and never in the params label.
    let mirror = without_credentials(b.mirror.as_deref().unwrap_or(DEFAULT_MIRROR));
    let mirror = mirror.trim_end_matches('/');
    let mut params: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    params.insert("distro", b.distro.as_str().into());
    params.insert("include", include.into());
    params.insert("mirror", mirror.into());
    params.insert("recipe", RECIPE.into());
    params.insert("suite", b.suite.as_str().into());
    params.insert("variant", b.variant.as_str().into());
    // A BTreeMap of JSON values always serialises.
    serde_json::to_string(&params).unwrap_or_default()
}

/// Hex sha256 of [`canonical_params`].
pub fn bootstrap_key(b: &Bootstrap) -> String {
    hex::encode(Sha256::digest(canonical_params(b).as_bytes()))
}

/// `kiln-bootstrap/debian-SUITE`.
pub fn image_repo(b: &Bootstrap) -> String {
    format!("kiln-bootstrap/{}-{}", b.distro, b.suite)
}

/// `kiln-bootstrap/debian-SUITE:KEY12`, the tag a made bootstrap image gets.
pub fn image_ref(b: &Bootstrap) -> String {
    format!("{}:{}", image_repo(b), &bootstrap_key(b)[..12])
}

/// Checks what goes onto debootstrap's command line and into the image name.
pub fn validate(b: &Bootstrap) -> Result<(), BootstrapError> {
    if b.distro != "debian" {
        return Err(BootstrapError::UnsupportedDistro(b.distro.clone()));
    }
    let bad = |what, value: &str, why| BootstrapError::BadParam {
        what,
        value: credentials_hidden(value).into_owned(),
        why,
    };
    let name_like = |s: &str, extra: &str| {
        s.bytes()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.bytes().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || extra.as_bytes().contains(&c)
            })
    };
    // Also a component of the image name, so no `.` or `_` runs to worry about.
    if !name_like(&b.suite, "-") {
        return Err(bad(
            "suite",
            &b.suite,
            "use a Debian release name such as `bookworm`",
        ));
    }
    if !name_like(&b.variant, "-") {
        return Err(bad(
            "variant",
            &b.variant,
            "use a debootstrap variant such as `minbase`",
        ));
    }
    for pkg in &b.include {
        if !name_like(pkg.trim(), "+.-:") {
            return Err(bad("package", pkg, "use Debian package names"));
        }
    }
    if let Some(m) = &b.mirror
        && !(m.starts_with("http://") || m.starts_with("https://") || m.starts_with("file:///"))
    {
        return Err(bad(
            "mirror",
            m,
            "use an `http://`, `https://` or `file:///` URL",
        ));
    }
    Ok(())
}

/// Returns a local image for `b`, making it with debootstrap when none
/// carries its key yet (scratch space under [`crate::cache::CacheDir::bootstrap`]).
/// The result is the image id. `on_line` gets debootstrap's output.
pub async fn ensure_image<E: Engine>(
    engine: &E,
    b: &Bootstrap,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, BootstrapError> {
    ensure_image_in(
        engine,
        b,
        &crate::cache::CacheDir::from_env().bootstrap(),
        on_line,
    )
    .await
}

/// [`ensure_image`] with the scratch directory given.
pub async fn ensure_image_in<E: Engine>(
    engine: &E,
    b: &Bootstrap,
    work_root: &Path,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<String, BootstrapError> {
    validate(b)?;
    let key = bootstrap_key(b);
    if let Some(id) = find_image(engine, b, &key).await? {
        return Ok(id);
    }
    let debootstrap = find_debootstrap().ok_or(BootstrapError::DebootstrapMissing)?;
    if !is_root() {
        return Err(BootstrapError::NotRoot);
    }
    // Habitats on one bootstrap base, built at once, make it once: the
    // first makes it, the others wait and find it. (`+` is in no habitat's
    // name, so this lock is no habitat's.)
    let locks = lock::lock_dir();
    let mut on_wait = |holder: &str| {
        on_line(&format!(
            "kiln: waiting for another build making this base ({holder})"
        ))
    };
    let _lock = BuildLock::acquire_async(
        &locks,
        &engine.identity(),
        &format!("+bootstrap-{}", &key[..16]),
        &mut on_wait,
    )
    .await
    .map_err(io_err("cannot take the bootstrap lock in", &locks))?;
    if let Some(id) = find_image(engine, b, &key).await? {
        return Ok(id);
    }
    std::fs::create_dir_all(work_root).map_err(io_err("cannot create", work_root))?;
    let scratch = Scratch::new(work_root)?;
    let rootfs = scratch.dir.join("rootfs");
    run_debootstrap(&debootstrap, b, &rootfs, on_line).await?;
    scratch.unmount_all()?;

    on_line("kiln: trimming the root filesystem");
    trim(&rootfs, b)?;

    on_line("kiln: packing the root filesystem");
    let tar = scratch.dir.join("rootfs.tar");
    pack(&rootfs, &tar).await?;

    on_line("kiln: importing the root filesystem as an image");
    let id = engine.import(tar.clone(), &image_config(b)).await?;
    engine.tag(&id, &image_repo(b), &key[..12]).await?;
    record_made(work_root, &id, &key);
    on_line(&format!("kiln: made {}", image_ref(b)));
    Ok(id)
}

/// Records that kiln made bootstrap base `id` (with `key`) in the cache
/// whose scratch is `work_root` (`CacheDir::bootstrap`), so `nuke` removes
/// what this cache made and never a base it only found. A record that
/// cannot be written leaves the base to be removed by hand.
fn record_made(work_root: &Path, id: &str, key: &str) {
    let Some(root) = work_root.parent() else {
        return;
    };
    let mut index =
        crate::cache::MadeIndex::load(&crate::cache::CacheDir::new(root).bootstrap_made());
    index.insert_made(id, key);
    let _ = index.save();
}

/// The config kiln imports the bootstrap image of `b` with: its labels
/// name the parameters' key.
pub fn image_config(b: &Bootstrap) -> ImageConfig {
    let mut labels = BTreeMap::new();
    labels.insert(LABEL_BOOTSTRAP.to_string(), bootstrap_key(b));
    labels.insert(LABEL_BOOTSTRAP_PARAMS.to_string(), canonical_params(b));
    ImageConfig {
        cmd: Some(vec!["bash".to_string()]),
        env: vec![PATH.to_string()],
        labels,
        ..ImageConfig::default()
    }
}

/// The bootstrap image for `key`: by its tag (one engine call, the usual
/// case), else by label, re-tagging what it finds.
///
/// Labels alone prove nothing: images made on top of a bootstrap image
/// inherit them (habitat snapshots, a `docker build` or `docker commit` on
/// it). The bootstrap image is the one an import makes: one layer, and
/// exactly the config kiln imported it with.
async fn find_image<E: Engine>(
    engine: &E,
    b: &Bootstrap,
    key: &str,
) -> Result<Option<String>, BootstrapError> {
    let expected = image_config(b);
    let is_base = |info: &ImageInfo| {
        info.config.labels.get(LABEL_BOOTSTRAP).map(String::as_str) == Some(key)
            && info.layers.len() == 1
            && info.config == expected
    };
    if let Some(info) = engine.image_inspect(&image_ref(b)).await?
        && is_base(&info)
    {
        return Ok(Some(info.id));
    }
    for id in engine.images_with_labels(&[(LABEL_BOOTSTRAP, key)]).await? {
        if let Some(info) = engine.image_inspect(&id).await?
            && is_base(&info)
        {
            engine.tag(&info.id, &image_repo(b), &key[..12]).await?;
            return Ok(Some(info.id));
        }
    }
    Ok(None)
}

fn find_debootstrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("debootstrap"))
        .find(|p| p.is_file())
}

/// The effective uid is 0, read from `/proc` (kiln forbids `unsafe`, so no
/// `geteuid`). When `/proc` cannot tell, let debootstrap decide.
fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .is_none_or(|euid| euid == "0")
}

/// How scratch directories are named in the bootstrap cache (then the
/// owner's token: see `cache::scratch`).
const SCRATCH_PREFIX: &str = "debootstrap-";

/// A scratch directory that is unmounted and removed however the bootstrap
/// ends, and never removed while anything is still mounted under it: a
/// recursive delete through a leftover bind mount would delete host files.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(root: &Path) -> Result<Self, BootstrapError> {
        // A scratch directory a killed build left (a whole root file system,
        // perhaps with `/proc` still mounted in it) goes the way every
        // scratch directory goes: unmounted first, removed only if nothing
        // is mounted under it any more. Never `remove_dir_all` through a mount.
        for stale in scratch::stale(root, SCRATCH_PREFIX) {
            if let Ok(dir) = stale.canonicalize() {
                drop(Scratch { dir });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix(&scratch::named(SCRATCH_PREFIX))
            .tempdir_in(root)
            .map_err(io_err("cannot create a directory in", root))?
            .keep();
        // Canonical, to compare with the mount table.
        let dir = dir.canonicalize().map_err(io_err("cannot open", &dir))?;
        Ok(Scratch { dir })
    }

    /// Unmounts whatever debootstrap left mounted; `Mounted` if any remain.
    fn unmount_all(&self) -> Result<(), BootstrapError> {
        for m in mounts_under(&self.dir) {
            let ok = std::process::Command::new("umount")
                .arg(&m)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&m)
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let left = mounts_under(&self.dir);
        if left.is_empty() {
            Ok(())
        } else {
            Err(BootstrapError::Mounted {
                dir: self.dir.clone(),
                mounts: left.iter().map(|p| p.display().to_string()).collect(),
            })
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.unmount_all().is_ok() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Mount points at or below `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(table) = std::fs::read_to_string("/proc/self/mounts") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| PathBuf::from(unescape_mount(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// `/proc/self/mounts` writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Kills debootstrap's whole process group if the bootstrap is abandoned
/// (the build was cancelled), so nothing keeps writing into the scratch
/// directory while it is cleaned up.
struct GroupKiller {
    pgid: Option<u32>,
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn run_debootstrap(
    debootstrap: &Path,
    b: &Bootstrap,
    rootfs: &Path,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<(), BootstrapError> {
    let mut cmd = tokio::process::Command::new(debootstrap);
    cmd.arg(format!("--variant={}", b.variant));
    let mut include: Vec<&str> = b.include.iter().map(|s| s.trim()).collect();
    include.sort_unstable();
    include.dedup();
    if !include.is_empty() {
        cmd.arg(format!("--include={}", include.join(",")));
    }
    let mirror = b.mirror.as_deref().unwrap_or(DEFAULT_MIRROR);
    cmd.arg(&b.suite).arg(rootfs).arg(mirror);
    // debootstrap calls `chroot`, `mount` and friends from the sbin dirs.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    let path = std::env::join_paths(dirs).unwrap_or(path);
    cmd.env("PATH", path)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(io_err("cannot run", debootstrap))?;
    let mut killer = GroupKiller { pgid: child.id() };

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err, tx.clone()));
    }
    drop(tx);
    let mut tail = VecDeque::with_capacity(TAIL);
    while let Some(line) = rx.recv().await {
        let line = credentials_hidden(&line).into_owned();
        on_line(&line);
        if tail.len() == TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child
        .wait()
        .await
        .map_err(io_err("cannot wait for", debootstrap))?;
    killer.pgid = None;
    if status.success() {
        return Ok(());
    }
    let mut tail: Vec<String> = tail.into();
    // debootstrap's own log says what failed inside the chroot.
    let log = rootfs.join("debootstrap/debootstrap.log");
    if let Ok(text) = std::fs::read_to_string(&log) {
        let lines: Vec<&str> = text.lines().collect();
        tail.push(format!("--- last lines of {} ---", log.display()));
        tail.extend(
            lines[lines.len().saturating_sub(20)..]
                .iter()
                .map(|l| l.to_string()),
        );
    }
    Err(BootstrapError::Failed {
        suite: b.suite.clone(),
        status: status.code().map_or_else(
            || "killed by a signal".to_string(),
            |c| format!("exit code {c}"),
        ),
        tail: credentials_hidden(&tail.join("\n")).into_owned(),
    })
}

async fn forward_lines(
    stream: impl AsyncRead + Unpin,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
) {
    use tokio::io::AsyncReadExt;
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // A line without end is handed on in pieces of the engine's cap, as
        // container output is, rather than held whole.
        let mut line = (&mut reader).take(crate::engine::lines::MAX_LINE as u64);
        match line.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                if tx.send(line.to_string()).is_err() {
                    break;
                }
            }
        }
    }
}

/// `rel` inside `rootfs`, or `None` when a component of it is a symlink
/// (an absolute link in the new root would point into the host).
fn inside(rootfs: &Path, rel: &str) -> Option<PathBuf> {
    let mut path = rootfs.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        path.push(part);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return None;
        }
    }
    Some(path)
}

/// Removes the regular files in `dir` (not below) whose names `keep` rejects.
fn clear_files(
    rootfs: &Path,
    dir: &str,
    remove: impl Fn(&str) -> bool,
) -> Result<(), BootstrapError> {
    let Some(dir) = inside(rootfs, dir) else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && remove(&name) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
        }
    }
    Ok(())
}

fn write_file(rootfs: &Path, rel: &str, content: &str, mode: u32) -> Result<(), BootstrapError> {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = inside(rootfs, rel) else {
        return Err(BootstrapError::Io(HostIo {
            context: "refusing to write through a symlink at",
            path: rootfs.join(rel),
            source: io::Error::other("symlink in path"),
        }));
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err("cannot create", parent))?;
    }
    std::fs::write(&path, content).map_err(io_err("cannot write", &path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(io_err("cannot set the mode of", &path))
        .map_err(BootstrapError::from)
}

/// Trims the new root the way Debian's official container images are
/// trimmed (debuerreotype's minimizing config): no apt lists or caches,
/// apt configured to keep it that way, and services kept from starting
/// during package installs.
fn trim(rootfs: &Path, b: &Bootstrap) -> Result<(), BootstrapError> {
    clear_files(rootfs, "var/lib/apt/lists", |n| n != "lock")?;
    clear_files(rootfs, "var/lib/apt/lists/partial", |_| true)?;
    clear_files(rootfs, "var/cache/apt/archives", |n| n.ends_with(".deb"))?;
    clear_files(rootfs, "var/cache/apt/archives/partial", |_| true)?;
    clear_files(rootfs, "var/cache/apt", |n| n.ends_with(".bin"))?;

    write_file(
        rootfs,
        "usr/sbin/policy-rc.d",
        "#!/bin/sh\n# kiln: no services start during image builds\nexit 101\n",
        0o755,
    )?;
    write_file(
        rootfs,
        "etc/apt/apt.conf.d/docker-clean",
        concat!(
            "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n",
            "APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n",
            "Dir::Cache::pkgcache \"\";\n",
            "Dir::Cache::srcpkgcache \"\";\n",
        ),
        0o644,
    )?;
    write_file(
        rootfs,
        "etc/apt/apt.conf.d/docker-autoremove-suggests",
        "Apt::AutoRemove::SuggestsImportant \"false\";\n",
        0o644,
    )?;
    write_file(
        rootfs,
        "etc/apt/apt.conf.d/docker-no-languages",
        "Acquire::Languages \"none\";\n",
        0o644,
    )?;
    write_file(
        rootfs,
        "etc/dpkg/dpkg.cfg.d/docker-apt-speedup",
        "force-unsafe-io\n",
        0o644,
    )?;
    // debootstrap copies the host's resolver config and hostname in; the
    // engine provides both at run time, and the host's must not be baked.
    for (rel, content) in [("etc/resolv.conf", ""), ("etc/hostname", "localhost\n")] {
        if inside(rootfs, rel).is_some_and(|p| p.is_file()) {
            write_file(rootfs, rel, content, 0o644)?;
        }
    }

    // Like the official images: security fixes and point updates, for the
    // default mirror (a custom mirror's security counterpart is unknown).
    if b.mirror.is_none() && has_security_suite(&b.suite) {
        let sources = format!(
            "deb {DEFAULT_MIRROR} {s} main\ndeb {DEFAULT_MIRROR} {s}-updates main\ndeb http://deb.debian.org/debian-security {s}-security main\n",
            s = b.suite
        );
        write_file(rootfs, "etc/apt/sources.list", &sources, 0o644)?;
    } else if let Some(m) = &b.mirror
        && without_credentials(m) != m.as_str()
    {
        // debootstrap wrote the mirror as given, credential and all; the
        // image's apt gets the URL without it (a private mirror needs its
        // credential given again, as a secret, by whoever uses it).
        let sources = format!("deb {} {} main\n", without_credentials(m), b.suite);
        write_file(rootfs, "etc/apt/sources.list", &sources, 0o644)?;
    }
    Ok(())
}

/// Suites with `-updates` and `-security` archives named that way.
fn has_security_suite(suite: &str) -> bool {
    !matches!(
        suite,
        "sid" | "unstable" | "experimental" | "rc-buggy" | "jessie" | "stretch" | "buster"
    )
}

/// `tar` keeps what the tar crate would not: hardlinks, device nodes,
/// numeric owners and file capabilities.
async fn pack(rootfs: &Path, tar: &Path) -> Result<(), BootstrapError> {
    let out = tokio::process::Command::new("tar")
        .args([
            "--numeric-owner",
            "--one-file-system",
            "--xattrs",
            "--xattrs-include=security.capability",
            "-C",
        ])
        .arg(rootfs)
        .arg("-cf")
        .arg(tar)
        .arg(".")
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| BootstrapError::Tar(e.to_string()))?;
    if !out.status.success() {
        return Err(BootstrapError::Tar(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_made_base_is_recorded_in_the_cache_its_scratch_is_in() {
        let d = tempfile::tempdir().unwrap();
        let cache = crate::cache::CacheDir::new(d.path());
        super::record_made(&cache.bootstrap(), "sha256:b1", "k1");
        let index = crate::cache::MadeIndex::load(&cache.bootstrap_made());
        assert_eq!(index.key_of("sha256:b1"), Some("k1"));
        assert_eq!(index.made().count(), 1);
    }

    use super::*;

    fn b(suite: &str) -> Bootstrap {
        Bootstrap {
            distro: "debian".into(),
            suite: suite.into(),
            variant: "minbase".into(),
            mirror: None,
            include: vec![],
        }
    }

    #[test]
    fn key_ignores_include_order_and_default_mirror_spelling() {
        let mut x = b("bookworm");
        x.include = vec!["curl".into(), "git".into()];
        let mut y = b("bookworm");
        y.include = vec!["git".into(), "curl".into(), "git".into()];
        assert_eq!(bootstrap_key(&x), bootstrap_key(&y));
        let mut z = b("bookworm");
        z.mirror = Some(format!("{DEFAULT_MIRROR}/"));
        assert_eq!(bootstrap_key(&b("bookworm")), bootstrap_key(&z));
    }

    #[test]
    fn key_changes_with_every_parameter() {
        let base = bootstrap_key(&b("bookworm"));
        assert_ne!(base, bootstrap_key(&b("trixie")));
        let mut v = b("bookworm");
        v.variant = "buildd".into();
        assert_ne!(base, bootstrap_key(&v));
        let mut m = b("bookworm");
        m.mirror = Some("http://ftp.de.debian.org/debian".into());
        assert_ne!(base, bootstrap_key(&m));
        let mut i = b("bookworm");
        i.include = vec!["ca-certificates".into()];
        assert_ne!(base, bootstrap_key(&i));
    }

    #[test]
    fn canonical_params_are_stable() {
        assert_eq!(
            canonical_params(&b("bookworm")),
            r#"{"distro":"debian","include":[],"mirror":"http://deb.debian.org/debian","recipe":1,"suite":"bookworm","variant":"minbase"}"#
        );
        let r = image_ref(&b("bookworm"));
        assert!(r.starts_with("kiln-bootstrap/debian-bookworm:"), "{r}");
        assert_eq!(r.len(), "kiln-bootstrap/debian-bookworm:".len() + 12);
    }

    #[test]
    fn validate_rejects_what_would_break_the_command_or_name() {
        assert!(validate(&b("bookworm")).is_ok());
        assert!(validate(&b("Bookworm")).is_err());
        assert!(validate(&b("--foo")).is_err());
        let mut d = b("bookworm");
        d.distro = "ubuntu".into();
        assert!(matches!(
            validate(&d),
            Err(BootstrapError::UnsupportedDistro(_))
        ));
        let mut i = b("bookworm");
        i.include = vec!["a,b".into()];
        assert!(validate(&i).is_err());
        let mut m = b("bookworm");
        m.mirror = Some("-x".into());
        assert!(validate(&m).is_err());
    }

    #[test]
    fn mount_table_escapes_are_decoded() {
        assert_eq!(unescape_mount(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape_mount("/plain"), "/plain");
    }

    #[test]
    fn trim_writes_the_container_config_and_clears_caches() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for d in [
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "etc",
        ] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        for f in [
            "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
            "var/lib/apt/lists/lock",
            "var/cache/apt/archives/x.deb",
            "var/cache/apt/pkgcache.bin",
        ] {
            std::fs::write(root.join(f), "x").expect("write");
        }
        trim(root, &b("bookworm")).expect("trim");
        assert!(
            !root
                .join("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease")
                .exists()
        );
        assert!(root.join("var/lib/apt/lists/lock").exists());
        assert!(!root.join("var/cache/apt/archives/x.deb").exists());
        assert!(!root.join("var/cache/apt/pkgcache.bin").exists());
        let policy = std::fs::read_to_string(root.join("usr/sbin/policy-rc.d")).expect("policy");
        assert!(policy.contains("exit 101"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("usr/sbin/policy-rc.d"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(root.join("etc/apt/apt.conf.d/docker-clean").exists());
        let sources = std::fs::read_to_string(root.join("etc/apt/sources.list")).expect("sources");
        assert!(sources.contains("bookworm-security"), "{sources}");
    }

    /// A credential in `mirror:` reached the params label (and the key)
    /// and, through debootstrap, the image's `/etc/apt/sources.list`.
    #[test]
    fn regression_a_mirror_credential_reaches_no_label_key_or_sources_list() {
        let mut m = b("bookworm");
        m.mirror = Some("https://me:tok-s3cr3t@mirror.example/debian".into());
        let params = canonical_params(&m);
        assert!(!params.contains("tok-s3cr3t"), "{params}");
        assert!(params.contains("https://mirror.example/debian"), "{params}");
        let mut plain = b("bookworm");
        plain.mirror = Some("https://mirror.example/debian".into());
        assert_eq!(bootstrap_key(&m), bootstrap_key(&plain));
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("etc/apt")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/apt/sources.list"),
            "deb https://me:tok-s3cr3t@mirror.example/debian bookworm main\n",
        )
        .expect("write");
        trim(dir.path(), &m).expect("trim");
        let sources =
            std::fs::read_to_string(dir.path().join("etc/apt/sources.list")).expect("read");
        assert_eq!(sources, "deb https://mirror.example/debian bookworm main\n");
    }

    #[test]
    fn trim_never_writes_through_a_symlink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(outside.path(), dir.path().join("usr")).expect("symlink");
        assert!(trim(dir.path(), &b("bookworm")).is_err());
        assert!(!outside.path().join("sbin/policy-rc.d").exists());
    }

    /// A scratch directory a killed bootstrap left is unmounted, then
    /// removed, by the next one; one of a running process stays.
    #[test]
    fn a_killed_bootstraps_scratch_is_unmounted_then_removed() {
        use crate::cache::owner::Owner;
        let root = tempfile::tempdir().expect("tempdir");
        let me = Owner::current();
        let dead = Owner {
            start: me.start + 1,
            ..me
        };
        let stale = root
            .path()
            .join(format!("{SCRATCH_PREFIX}{}.AbCdEf", dead.token()));
        let proc_dir = stale.join("rootfs/proc");
        std::fs::create_dir_all(&proc_dir).expect("mkdir");
        std::fs::write(stale.join("rootfs/etc-file"), "x").expect("write");
        // Where this test may mount (root), a mount stands in for debootstrap's `/proc`.
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&proc_dir)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            std::fs::write(proc_dir.join("inside-the-mount"), "x").expect("write");
        }
        let running = Scratch::new(root.path()).expect("scratch");
        assert!(!stale.exists(), "the stale scratch was left");
        assert!(mounts_under(root.path()).is_empty());
        assert!(running.dir.exists());
        drop(running);
    }
}
