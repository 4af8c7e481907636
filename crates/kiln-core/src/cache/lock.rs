//! `BuildLock`: one build of a habitat at a time on this machine. A second
//! build waits for the first (and says so) rather than racing it for tags.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Held for the length of a build; released on drop.
#[derive(Debug)]
pub struct BuildLock {
    file: File,
    path: PathBuf,
}

impl BuildLock {
    /// Takes the lock of `habitat` under `dir`. When another process holds
    /// it, calls `on_wait` once with what the holder wrote, then blocks.
    pub fn acquire(dir: &Path, habitat: &str, on_wait: impl FnOnce(&str)) -> io::Result<BuildLock> {
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{habitat}.lock"));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&path).unwrap_or_default();
                on_wait(holder.trim());
                file.lock()?;
            }
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
        let mut f = &file;
        f.set_len(0)?;
        writeln!(f, "pid {}", std::process::id())?;
        Ok(BuildLock { file, path })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = BuildLock::acquire(dir.path(), "h", |_| panic!("nobody holds it yet")).unwrap();
        let (tx, rx) = mpsc::channel();
        let d = dir.path().to_path_buf();
        let t = std::thread::spawn(move || {
            let _second =
                BuildLock::acquire(&d, "h", |holder| tx.send(holder.to_string()).unwrap()).unwrap();
        });
        let holder = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(holder, format!("pid {}", std::process::id()));
        drop(first);
        t.join().unwrap();
    }
}
