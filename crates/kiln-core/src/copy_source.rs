//! `CopySource`: a `files.copies` source on the host: its content digest (what
//! the files phase's key reads) and the tar entries that place it in the image.
//! The digest covers every byte, mode and path, so a file changed without a
//! change of size or mtime still changes the key.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Version of the digest encoding below.
const DIGEST_VERSION: &[u8] = b"kiln-copy-v1\n";

#[derive(Debug, thiserror::Error)]
#[error("cannot read `{}`: {source}", path.display())]
pub struct CopyError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError {
        path: path.to_path_buf(),
        source,
    }
}

/// One file system entry under a copy source, relative to it ("" for the root).
#[derive(Debug)]
struct Entry {
    rel: String,
    path: PathBuf,
    meta: fs::Metadata,
}

/// Walks `root` (following `root` itself if it is a symlink, never links
/// below it), in sorted order so digests and archives are deterministic.
fn walk(root: &Path) -> Result<Vec<Entry>, CopyError> {
    let meta = fs::metadata(root).map_err(err(root))?;
    let mut out = vec![Entry {
        rel: String::new(),
        path: root.to_path_buf(),
        meta,
    }];
    let mut i = 0;
    while i < out.len() {
        if out[i].meta.is_dir() {
            let dir = out[i].path.clone();
            let prefix = out[i].rel.clone();
            let mut children: Vec<_> = fs::read_dir(&dir)
                .map_err(err(&dir))?
                .map(|e| e.map(|e| e.path()).map_err(err(&dir)))
                .collect::<Result<_, _>>()?;
            children.sort();
            for path in children {
                let meta = fs::symlink_metadata(&path).map_err(err(&path))?;
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                out.push(Entry { rel, path, meta });
            }
        }
        i += 1;
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// The content digest of a copy source: paths, kinds, modes, bytes and link
/// targets of everything under it.
pub fn digest(source: &Path) -> Result<String, CopyError> {
    digest_entries(&walk(source)?)
}

fn digest_entries(entries: &[Entry]) -> Result<String, CopyError> {
    let mut h = Sha256::new();
    h.update(DIGEST_VERSION);
    let mut buf = vec![0u8; 256 * 1024];
    for e in entries {
        let mode = e.meta.permissions().mode() & 0o7777;
        let ft = e.meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&e.path).map_err(err(&e.path))?;
            h.update(format!("l {} {mode:o} {}\n", e.rel, target.display()).as_bytes());
        } else if ft.is_dir() {
            h.update(format!("d {} {mode:o}\n", e.rel).as_bytes());
        } else if ft.is_file() {
            h.update(format!("f {} {mode:o} {}\n", e.rel, e.meta.len()).as_bytes());
            let mut f = fs::File::open(&e.path).map_err(err(&e.path))?;
            loop {
                let n = f.read(&mut buf).map_err(err(&e.path))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        // Sockets, fifos and devices are not copied and so not hashed.
    }
    Ok(hex::encode(h.finalize()))
}

/// A fingerprint of a tree's metadata: every entry's path, kind, mode, size,
/// inode, mtime and ctime. Content cannot change without changing the ctime
/// (which no user can set), so an equal fingerprint proves equal content.
fn fingerprint(entries: &[Entry]) -> (String, i128) {
    let mut h = Sha256::new();
    let mut newest: i128 = 0;
    for e in entries {
        let m = &e.meta;
        let ctime = i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec());
        let mtime = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
        newest = newest.max(ctime).max(mtime);
        h.update(
            format!(
                "{}\0{}\0{}\0{}\0{}\0{}\0{mtime}\0{ctime}\n",
                e.rel,
                m.mode(),
                m.len(),
                m.dev(),
                m.ino(),
                m.nlink()
            )
            .as_bytes(),
        );
    }
    (hex::encode(h.finalize()), newest)
}

/// Remembers copy digests by metadata fingerprint, so a build whose inputs
/// did not change reads no file content (a stat of each entry instead).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DigestCache {
    /// Source path → (fingerprint, digest).
    entries: std::collections::BTreeMap<String, (String, String)>,
    #[serde(skip)]
    dirty: bool,
}

/// A change within this long of the hashing could share its timestamp with
/// a later change (timestamps are coarse); such trees are hashed every time.
const RACY_NS: i128 = 2_000_000_000;

impl DigestCache {
    /// Reads the cache at `path`; an unreadable or corrupt cache is empty.
    pub fn load(path: &Path) -> DigestCache {
        fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the cache if it changed (atomically: a temp file renamed over it).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, serde_json::to_vec(self).map_err(io::Error::other)?)?;
        fs::rename(tmp, path)
    }

    /// The digest of `source`, from the cache when its fingerprint proves it.
    pub fn digest(&mut self, source: &Path) -> Result<String, CopyError> {
        let started = now_ns();
        let entries = walk(source)?;
        let (print, newest) = fingerprint(&entries);
        let key = source.display().to_string();
        if let Some((p, d)) = self.entries.get(&key)
            && *p == print
        {
            return Ok(d.clone());
        }
        let digest = digest_entries(&entries)?;
        if newest < started - RACY_NS {
            self.entries.insert(key, (print, digest.clone()));
            self.dirty = true;
        } else if self.entries.remove(&key).is_some() {
            self.dirty = true;
        }
        Ok(digest)
    }
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// How copied entries are owned and moded in the image.
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    /// Replaces the mode of regular files (directories keep theirs, so they stay
    /// traversable).
    pub file_mode: Option<u32>,
}

/// Appends `source` to `tar` at `dest` (absolute in the image). A file lands
/// at `dest`; a directory's contents land under `dest`.
pub fn append_to_tar<W: io::Write>(
    tar: &mut tar::Builder<W>,
    source: &Path,
    dest: &str,
    own: Ownership,
) -> Result<(), CopyError> {
    let base = dest.trim_start_matches('/').trim_end_matches('/');
    for e in walk(source)? {
        let name = if e.rel.is_empty() {
            base.to_string()
        } else {
            format!("{base}/{}", e.rel)
        };
        let ft = e.meta.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_uid(u64::from(own.uid));
        header.set_gid(u64::from(own.gid));
        header.set_mtime(e.meta.mtime().max(0) as u64);
        let mode = e.meta.permissions().mode() & 0o7777;
        let io_err = err(&e.path);
        if ft.is_symlink() {
            let target = fs::read_link(&e.path).map_err(err(&e.path))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, &name, &target)
                .map_err(io_err)?;
        } else if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(mode);
            header.set_size(0);
            tar.append_data(&mut header, format!("{name}/"), io::empty())
                .map_err(io_err)?;
        } else if ft.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(own.file_mode.unwrap_or(mode));
            header.set_size(e.meta.len());
            let f = fs::File::open(&e.path).map_err(err(&e.path))?;
            tar.append_data(&mut header, &name, f).map_err(io_err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn digest_sees_content_mode_and_names_but_not_mtime() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a");
        fs::write(&f, "hello").unwrap();
        let one = digest(d.path()).unwrap();
        assert_eq!(one, digest(d.path()).unwrap());
        // Same size, same mtime, other bytes.
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        fs::write(&f, "jello").unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let two = digest(d.path()).unwrap();
        assert_ne!(one, two);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(two, digest(d.path()).unwrap());
        fs::rename(&f, d.path().join("b")).unwrap();
        let renamed = digest(d.path()).unwrap();
        fs::File::options()
            .write(true)
            .open(d.path().join("b"))
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(renamed, digest(d.path()).unwrap(), "mtime is not content");
    }

    #[test]
    fn the_digest_cache_never_serves_a_changed_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a");
        fs::write(&f, "hello").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut cache = DigestCache::default();
        let first = cache.digest(d.path()).unwrap();
        // The file was just written, so its ctime is recent: not cached yet.
        assert!(cache.entries.is_empty(), "a racily new tree is not cached");
        assert_eq!(first, digest(d.path()).unwrap());
        // Pretend the cache was made long after the change.
        let (print, _) = fingerprint(&walk(d.path()).unwrap());
        cache
            .entries
            .insert(d.path().display().to_string(), (print, "cached".into()));
        assert_eq!(
            cache.digest(d.path()).unwrap(),
            "cached",
            "an unchanged tree is served from the cache"
        );
        // Same size, same mtime, other bytes: the ctime moves, so it is re-hashed.
        fs::write(&f, "jello").unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let after = cache.digest(d.path()).unwrap();
        assert_eq!(after, digest(d.path()).unwrap());
        assert_ne!(after, first);
    }

    #[test]
    fn archive_places_files_under_dest_with_owner_and_mode() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("sub")).unwrap();
        fs::write(d.path().join("sub/x"), "x").unwrap();
        symlink("sub/x", d.path().join("link")).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        append_to_tar(
            &mut tar,
            d.path(),
            "/opt/app",
            Ownership {
                uid: 1000,
                gid: 1000,
                file_mode: Some(0o640),
            },
        )
        .unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            seen.push((
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.mode().unwrap() & 0o7777,
            ));
        }
        assert!(
            seen.contains(&("opt/app/sub/x".to_string(), 1000, 0o640)),
            "{seen:?}"
        );
        assert!(seen.iter().any(|s| s.0 == "opt/app/link"));
        assert!(
            seen.iter()
                .any(|s| s.0.trim_end_matches('/') == "opt/app/sub")
        );
    }
}
