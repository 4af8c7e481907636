//! `Beneath`: host paths opened beneath a directory and never outside it. A
//! copy source or a local tool is named relative to the habitat directory;
//! it is looked up one component at a time from an open descriptor of that
//! directory, when it is read, so a symlink or a `..` that leads out of the
//! directory is refused then, not only when `check` looked. Swapping a
//! source for a symlink to a host file after the config loaded (while a base
//! habitat builds, or while the build waits for its lock) cannot make kiln
//! read that file and bake it into an image.
//!
//! Symlinks that stay inside are followed, as the load-time check allows
//! (an absolute one too, when it names a path under the directory); what lies
//! below an opened source is then opened without following any symlink
//! ([`open_below`]): below a copied directory, symlinks are copied as links.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};

/// How many symlinks one lookup may pass through, as the kernel's `ELOOP`.
const MAX_LINKS: usize = 40;

/// An open directory that lookups are confined to.
#[derive(Debug)]
pub struct Beneath {
    dir: OwnedFd,
    path: PathBuf,
}

/// Why a path beneath a directory could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// The path is absolute or climbs out with `..`.
    #[error("`{}` is outside `{}`", .rel.display(), .dir.display())]
    Outside { rel: PathBuf, dir: PathBuf },
    /// A symlink on the way (`link`, relative to the directory) points out of it.
    #[error(
        "`{}` leads out of `{}`: `{}` is a symlink to `{}`",
        .rel.display(), .dir.display(), .link.display(), .target.display()
    )]
    Link {
        rel: PathBuf,
        dir: PathBuf,
        link: PathBuf,
        target: PathBuf,
    },
    #[error("cannot open `{}`: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Beneath {
    /// Opens the directory `dir` (symlinks in `dir` itself are followed: the
    /// habitat directory is canonical already).
    pub fn open(dir: &Path) -> Result<Beneath, BeneathError> {
        let fd = rustix::fs::openat(
            CWD,
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| BeneathError::Io {
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Beneath {
            dir: fd,
            path: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` (a file or a directory) beneath the directory, following
    /// only symlinks that stay inside it. The descriptor is the entry that
    /// was checked: whatever replaces a path component afterwards, reads
    /// through it stay where the lookup ended.
    pub fn open_entry(&self, rel: &Path) -> Result<File, BeneathError> {
        let outside = || BeneathError::Outside {
            rel: rel.to_path_buf(),
            dir: self.path.clone(),
        };
        if rel.has_root() {
            return Err(outside());
        }
        let io_err = |at: &Path| {
            let path = self.path.join(at);
            move |e: rustix::io::Errno| BeneathError::Io {
                path,
                source: e.into(),
            }
        };
        // `parents` are the open directories from the root down; `at` is the
        // path of the current one, relative to the root, for messages.
        let mut parents: Vec<OwnedFd> = Vec::new();
        let mut current = self.dup().map_err(io_err(Path::new("")))?;
        let mut at = PathBuf::new();
        let mut pending: VecDeque<OsString> = components(rel).ok_or_else(outside)?;
        let mut links = 0usize;
        // The last symlink followed: a `..` above the root after it is that
        // link's doing.
        let mut via: Option<(PathBuf, PathBuf)> = None;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                current = match parents.pop() {
                    Some(p) => p,
                    None => {
                        return Err(match via {
                            Some((link, target)) => BeneathError::Link {
                                rel: rel.to_path_buf(),
                                dir: self.path.clone(),
                                link,
                                target,
                            },
                            None => outside(),
                        });
                    }
                };
                at.pop();
                continue;
            }
            let here = at.join(&name);
            let stat = rustix::fs::statat(&current, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(&here))?;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io_err(&here)(rustix::io::Errno::LOOP));
                }
                let target = rustix::fs::readlinkat(&current, name.as_os_str(), Vec::new())
                    .map_err(io_err(&here))?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                let escapes = || BeneathError::Link {
                    rel: rel.to_path_buf(),
                    dir: self.path.clone(),
                    link: here.clone(),
                    target: target.clone(),
                };
                let rest = if target.has_root() {
                    // An absolute link is followed only into the directory
                    // itself: the lookup starts again from its root.
                    let inside = target.strip_prefix(&self.path).map_err(|_| escapes())?;
                    parents.clear();
                    current = self.dup().map_err(io_err(Path::new("")))?;
                    at = PathBuf::new();
                    components(inside).ok_or_else(escapes)?
                } else {
                    components(&target).ok_or_else(escapes)?
                };
                via = Some((here, target));
                for c in rest.into_iter().rev() {
                    pending.push_front(c);
                }
                continue;
            }
            let fd = match open_nofollow(&current, &name) {
                Ok(fd) => fd,
                // Swapped for a symlink since the stat: look again.
                Err(rustix::io::Errno::LOOP) if links < MAX_LINKS => {
                    links += 1;
                    pending.push_front(name);
                    continue;
                }
                Err(e) => return Err(io_err(&here)(e)),
            };
            let kind =
                FileType::from_raw_mode(rustix::fs::fstat(&fd).map_err(io_err(&here))?.st_mode);
            if !pending.is_empty() {
                if kind != FileType::Directory {
                    return Err(io_err(&here)(rustix::io::Errno::NOTDIR));
                }
                parents.push(std::mem::replace(&mut current, fd));
                at = here;
                continue;
            }
            return Ok(File::from(fd));
        }
        // `rel` named the directory itself (``, `.`, `a/..`).
        Ok(File::from(current))
    }

    fn dup(&self) -> Result<OwnedFd, rustix::io::Errno> {
        rustix::fs::openat(
            &self.dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    }
}

/// Opens `rel` below the directory `dir` without following any symlink on
/// the way: each component must be what it was when the tree was walked, a
/// directory on the way and no link at the end.
pub fn open_below(dir: &File, rel: &Path) -> io::Result<File> {
    let parts = components(rel).filter(|p| p.iter().all(|c| c != ".."));
    let Some(mut parts) = parts.filter(|p| !p.is_empty()) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let last = parts.pop_back().unwrap_or_default();
    let mut current: Option<OwnedFd> = None;
    for name in parts {
        let fd = {
            let parent = current
                .as_ref()
                .map_or_else(|| dir_fd(dir), |f| std::os::fd::AsFd::as_fd(f));
            rustix::fs::openat(
                parent,
                name.as_os_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?
        };
        current = Some(fd);
    }
    let parent = current
        .as_ref()
        .map_or_else(|| dir_fd(dir), |f| std::os::fd::AsFd::as_fd(f));
    Ok(File::from(open_nofollow(parent, &last)?))
}

fn dir_fd(dir: &File) -> std::os::fd::BorrowedFd<'_> {
    std::os::fd::AsFd::as_fd(dir)
}

/// Opens the entry `name` of `dir` for reading, refusing a symlink (`ELOOP`).
/// Non-blocking, so a fifo put there cannot hang the build; a regular file
/// or a directory reads as usual.
fn open_nofollow<Fd: std::os::fd::AsFd>(dir: Fd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names of a relative path, `..` kept, `.` dropped; `None` when absolute.
fn components(path: &Path) -> Option<VecDeque<OsString>> {
    let mut out = VecDeque::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push_back(n.to_os_string()),
            Component::ParentDir => out.push_back(OsString::from("..")),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    fn read(b: &Beneath, rel: &str) -> Result<String, BeneathError> {
        let mut s = String::new();
        b.open_entry(Path::new(rel))?
            .read_to_string(&mut s)
            .expect("read");
        Ok(s)
    }

    #[test]
    fn links_inside_are_followed_and_links_out_are_refused() {
        let top = tempfile::tempdir().unwrap();
        let root = top.path().canonicalize().unwrap().join("hab");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "inside").unwrap();
        std::fs::write(top.path().join("host"), "host").unwrap();
        symlink("a/b", root.join("rel")).unwrap();
        symlink(root.join("a"), root.join("abs")).unwrap();
        symlink("../b/f", root.join("a/b/up")).unwrap();
        symlink("../host", root.join("out")).unwrap();
        symlink(top.path().join("host"), root.join("absout")).unwrap();
        symlink("a/../../host", root.join("climb")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let b = Beneath::open(&root).unwrap();
        for ok in [
            "a/b/f",
            "rel/f",
            "abs/b/f",
            "a/b/up",
            "./a/./b/f",
            "a/../a/b/f",
        ] {
            assert_eq!(read(&b, ok).unwrap(), "inside", "{ok}");
        }
        for bad in ["out", "absout", "climb", "out/x", "a/../out"] {
            let err = read(&b, bad).unwrap_err();
            assert!(matches!(err, BeneathError::Link { .. }), "{bad}: {err}");
        }
        for bad in ["../host", "/etc/passwd", "a/../../host"] {
            let err = read(&b, bad).unwrap_err();
            assert!(matches!(err, BeneathError::Outside { .. }), "{bad}: {err}");
        }
        assert!(matches!(
            read(&b, "loop").unwrap_err(),
            BeneathError::Io { .. }
        ));
        // Below an opened entry nothing is followed.
        let a = b.open_entry(Path::new("a")).unwrap();
        assert!(open_below(&a, Path::new("b/f")).is_ok());
        assert!(open_below(&a, Path::new("b/up")).is_err());
        let top_fd = b.open_entry(Path::new("")).unwrap();
        assert!(open_below(&top_fd, Path::new("rel/f")).is_err());
    }
}
