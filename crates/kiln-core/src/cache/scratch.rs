//! Temporary files and directories named after the process that made them
//! (`PREFIX` + its [`Owner`] token + `.` + random), so the ones a killed
//! build left (SIGKILL runs no destructor; a layer archive is as large as the
//! copy it holds) are found and removed by a later build. Only what a dead
//! process made is removed; names without a token (an older kiln's) are
//! left alone, since nothing says whose they are.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::{NamedTempFile, TempDir};

use super::owner::{Liveness, Owner};

/// A temporary directory `PREFIX…` in `parent`, after sweeping what dead
/// processes left there under `prefix`.
pub fn tempdir_in(parent: &Path, prefix: &str) -> io::Result<TempDir> {
    sweep_once(parent, prefix);
    tempfile::Builder::new()
        .prefix(&named(prefix))
        .tempdir_in(parent)
}

/// [`tempdir_in`] the system's temporary directory (`TMPDIR`).
pub fn tempdir(prefix: &str) -> io::Result<TempDir> {
    tempdir_in(&std::env::temp_dir(), prefix)
}

/// A temporary file `PREFIX…` in `parent`, after the same sweep.
pub fn tempfile_in(parent: &Path, prefix: &str) -> io::Result<NamedTempFile> {
    sweep_once(parent, prefix);
    tempfile::Builder::new()
        .prefix(&named(prefix))
        .tempfile_in(parent)
}

/// [`tempfile_in`] the system's temporary directory (`TMPDIR`).
pub fn tempfile(prefix: &str) -> io::Result<NamedTempFile> {
    tempfile_in(&std::env::temp_dir(), prefix)
}

/// `PREFIX` + this process's token + `.`: the random part follows. For a
/// maker that must sweep in its own way ([`stale`] lists what to sweep).
pub fn named(prefix: &str) -> String {
    format!("{prefix}{}.", Owner::current().token())
}

/// The entries of `parent` named `PREFIX`+token whose owner is dead.
pub fn stale(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
                return false;
            };
            let token = rest.split_once('.').map_or(rest, |(t, _)| t);
            Owner::parse(token).is_some_and(|o| o.liveness() == Liveness::Dead)
        })
        .map(|e| e.path())
        .collect()
}

/// Removes [`stale`] entries (directories with all they hold); what cannot
/// be removed (another user's) is left. Returns how many went.
pub fn sweep(parent: &Path, prefix: &str) -> usize {
    stale(parent, prefix)
        .into_iter()
        .filter(|p| {
            let is_dir = std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
            match is_dir {
                true => std::fs::remove_dir_all(p).is_ok(),
                false => std::fs::remove_file(p).is_ok(),
            }
        })
        .count()
}

/// [`sweep`], once per process for each `(parent, prefix)`: a build makes
/// many temporary files, and a process leaves nothing stale while it runs.
pub fn sweep_once(parent: &Path, prefix: &str) {
    static SWEPT: Mutex<Option<HashSet<(PathBuf, String)>>> = Mutex::new(None);
    let first = SWEPT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .insert((parent.to_path_buf(), prefix.to_string()));
    if first {
        sweep(parent, prefix);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name `prefix` + the token of a process that is gone: this one's
    /// pid with another start time (its pid reused).
    fn dead_name(prefix: &str) -> String {
        let me = Owner::current();
        let dead = Owner {
            start: me.start + 1,
            ..me
        };
        format!("{prefix}{}.abc123", dead.token())
    }

    #[test]
    fn only_what_dead_owners_left_is_swept() {
        let parent = tempfile::tempdir().unwrap();
        let p = parent.path();
        let dead_dir = p.join(dead_name("kiln-layer-"));
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join("image.tar"), "big").unwrap();
        let dead_file = p.join(dead_name("kiln-stream-"));
        std::fs::write(&dead_file, "big").unwrap();
        let mine = tempdir_in(p, "kiln-layer-").unwrap();
        let foreign = p.join(format!(
            "kiln-layer-{}.x",
            Owner {
                host: Owner::current().host ^ 1,
                ..Owner::current()
            }
            .token()
        ));
        std::fs::create_dir(&foreign).unwrap();
        let untokened = p.join("kiln-layer-Ab12Cd");
        std::fs::create_dir(&untokened).unwrap();
        let other_prefix = p.join(dead_name("other-"));
        std::fs::create_dir(&other_prefix).unwrap();

        // `tempdir_in` swept `kiln-layer-` once already: the dead one is gone.
        assert!(!dead_dir.exists());
        assert_eq!(sweep(p, "kiln-stream-"), 1);
        assert!(!dead_file.exists());
        assert_eq!(sweep(p, "kiln-layer-"), 0);
        for kept in [mine.path(), &foreign, &untokened, &other_prefix] {
            assert!(kept.exists(), "{} was swept", kept.display());
        }
    }
}
