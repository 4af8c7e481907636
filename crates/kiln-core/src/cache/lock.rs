//! `BuildLock`: one build of a habitat on an engine at a time. A second
//! build waits for the first (and says so) rather than racing it for tags.
//!
//! The lock is keyed by the engine (as [`crate::engine::Engine::identity`]
//! names it) and the habitat, in one directory for the whole machine
//! ([`lock_dir`]), never under the cache directory: builds with another
//! `KILN_CACHE_DIR`, `HOME` or `TMPDIR` still share the engine's tags and
//! containers, so they must still wait for each other. (Builds on one remote
//! engine from two machines cannot see each other's lock; their sweeps
//! leave each other's containers alone all the same, see `cache::owner`.)

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Held for the length of a build; released on drop.
#[derive(Debug)]
pub struct BuildLock {
    file: File,
    path: PathBuf,
}

/// Where build locks live: `/run/lock/kiln` (the FHS place for lock files,
/// world-writable and sticky), or `/tmp/kiln-locks` where `/run/lock` is
/// missing. Not read from the environment, for the reason above.
pub fn lock_dir() -> PathBuf {
    if Path::new("/run/lock").is_dir() {
        PathBuf::from("/run/lock/kiln")
    } else {
        PathBuf::from("/tmp/kiln-locks")
    }
}

/// The lock file's name: the habitat, and a hash of the engine's identity.
pub fn lock_file_name(engine: &str, habitat: &str) -> String {
    let hash = hex::encode(Sha256::digest(engine.as_bytes()));
    format!("{habitat}@{}.lock", &hash[..16])
}

impl BuildLock {
    /// Takes the lock of `habitat` on `engine` in [`lock_dir`]. When another
    /// process holds it, calls `on_wait` once with what the holder wrote,
    /// then blocks.
    pub fn acquire(
        engine: &str,
        habitat: &str,
        on_wait: impl FnOnce(&str),
    ) -> io::Result<BuildLock> {
        BuildLock::acquire_in(&lock_dir(), engine, habitat, on_wait)
    }

    /// [`BuildLock::acquire`] with the locks in `dir`.
    pub fn acquire_in(
        dir: &Path,
        engine: &str,
        habitat: &str,
        on_wait: impl FnOnce(&str),
    ) -> io::Result<BuildLock> {
        prepare_dir(dir)?;
        let path = dir.join(lock_file_name(engine, habitat));
        let (file, writable) = open_lock_file(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                on_wait(holder.trim());
                file.lock()?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        if writable {
            let mut f = &file;
            f.set_len(0)?;
            writeln!(f, "pid {}", std::process::id())?;
        }
        Ok(BuildLock { file, path })
    }

    /// [`BuildLock::acquire_in`] from async code: the wait blocks a thread
    /// of its own, and `on_wait` hears of it at once (not when it ends).
    pub async fn acquire_async(
        dir: &Path,
        engine: &str,
        name: &str,
        on_wait: &mut (dyn FnMut(&str) + Send),
    ) -> io::Result<BuildLock> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let (dir, engine, name) = (dir.to_path_buf(), engine.to_string(), name.to_string());
        let mut lock = tokio::task::spawn_blocking(move || {
            BuildLock::acquire_in(&dir, &engine, &name, |holder| {
                let _ = tx.send(holder.to_string());
            })
        });
        loop {
            tokio::select! {
                res = &mut lock => {
                    if let Ok(holder) = rx.try_recv() {
                        on_wait(&holder);
                    }
                    return res.map_err(io::Error::other)?;
                }
                Some(holder) = rx.recv() => on_wait(&holder),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BuildLock {
    fn drop(&mut self) {
        // Unlocking also happens when the file closes; this just makes it prompt.
        let _ = self.file.unlock();
    }
}

/// Makes the lock directory, shared by every user of the engine (`1777`),
/// and refuses one that another user could swap files in.
fn prepare_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, Permissions::from_mode(0o1777))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = fs::symlink_metadata(dir)?;
    let unsafe_dir = |why: String| {
        io::Error::other(format!(
            "the lock directory `{}` {why}; remove it and build again",
            dir.display()
        ))
    };
    if !meta.is_dir() {
        return Err(unsafe_dir("is not a directory".into()));
    }
    let sticky = meta.mode() & 0o1000 != 0;
    let me = fs::metadata("/proc/self").map_or(0, |m| m.uid());
    if !sticky && meta.mode() & 0o022 != 0 {
        return Err(unsafe_dir("is writable by others but not sticky".into()));
    }
    if !sticky && meta.uid() != 0 && meta.uid() != me {
        return Err(unsafe_dir(format!("belongs to uid {}", meta.uid())));
    }
    Ok(())
}

/// Opens (or creates, `0666`) the lock file at `path`, never through a
/// symlink; read-only where another user's file may not be written (a lock
/// needs only an open file). Returns it and whether it is writable.
fn open_lock_file(path: &Path) -> io::Result<(File, bool)> {
    loop {
        let opened = File::options().read(true).write(true).open(path);
        let (file, writable) = match opened {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => (File::open(path)?, false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // `create_new` (O_EXCL) never follows a symlink.
                match File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o666)
                    .open(path)
                {
                    Ok(f) => {
                        // The umask took bits off: other users must open it too.
                        let _ = f.set_permissions(Permissions::from_mode(0o666));
                        (f, true)
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        // What was opened must be the plain file at `path` itself, not a
        // symlink's target or a hard link to some other file.
        let (opened, at_path) = (file.metadata()?, fs::symlink_metadata(path)?);
        if !at_path.file_type().is_file()
            || (opened.dev(), opened.ino()) != (at_path.dev(), at_path.ino())
            || opened.nlink() != 1
        {
            return Err(io::Error::other(format!(
                "the lock file `{}` is not a plain file; remove it and build again",
                path.display()
            )));
        }
        return Ok((file, writable));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let first =
            BuildLock::acquire_in(&locks, "unix:///e", "h", |_| panic!("nobody holds it yet"))
                .unwrap();
        let (tx, rx) = mpsc::channel();
        let d = locks.clone();
        let t = std::thread::spawn(move || {
            let _second = BuildLock::acquire_in(&d, "unix:///e", "h", |holder| {
                tx.send(holder.to_string()).unwrap()
            })
            .unwrap();
        });
        let holder = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(holder, format!("pid {}", std::process::id()));
        drop(first);
        t.join().unwrap();
        let mode = fs::metadata(&locks).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o1777);
        let file = locks.join(lock_file_name("unix:///e", "h"));
        assert_eq!(fs::metadata(file).unwrap().mode() & 0o777, 0o666);
    }

    #[test]
    fn another_engine_or_habitat_is_another_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _a = BuildLock::acquire_in(dir.path(), "unix:///e", "h", |_| panic!()).unwrap();
        let _b = BuildLock::acquire_in(dir.path(), "tcp://other:2375", "h", |_| panic!()).unwrap();
        let _c = BuildLock::acquire_in(dir.path(), "unix:///e", "h2", |_| panic!()).unwrap();
    }

    #[test]
    fn a_symlinked_lock_file_or_an_open_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join(lock_file_name("e", "h"))).unwrap();
        let err = BuildLock::acquire_in(dir.path(), "e", "h", |_| {}).unwrap_err();
        assert!(err.to_string().contains("not a plain file"), "{err}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "keep");

        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, Permissions::from_mode(0o777)).unwrap();
        let err = BuildLock::acquire_in(&open, "e", "h", |_| {}).unwrap_err();
        assert!(err.to_string().contains("not sticky"), "{err}");
    }
}
