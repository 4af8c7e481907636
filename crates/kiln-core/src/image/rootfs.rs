//! `RootFs`: an image's file system read straight from its layer directories
//! on the host (overlay-style storage drivers keep each layer as a plain
//! directory), without a container. Archive phases use it to read the
//! parent's accounts and to learn the metadata and symlinks of the
//! directories their files land in, so they can write their layer on the
//! host: no container to create, mount, fill and remove.
//!
//! Layers are merged as overlay does: the topmost layer holding a path wins;
//! a whiteout (a `0/0` character device or a `.wh.NAME` file) deletes the
//! path below it; an opaque directory (an overlay xattr, or a `.wh..wh..opq`
//! marker) hides everything below it in lower layers.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
/// Opaque-directory markers in layer form (and fuse-overlayfs's own).
const OPAQUE_MARKERS: [&str; 2] = [".wh..wh..opq", ".wh..opq"];
/// Where overlay implementations mark a directory opaque.
const OPAQUE_XATTRS: [&str; 3] = [
    "trusted.overlay.opaque",
    "user.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];
/// As in the kernel: a chain of more links than this is a loop.
const MAX_LINKS: usize = 40;

/// One path of the merged view: where it is on the host, and its metadata.
#[derive(Debug)]
pub struct Found {
    pub host: PathBuf,
    pub meta: Metadata,
}

/// What a layer being written holds at a path, which hides what the image
/// below it has there (see [`RootFs::place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Over {
    Dir,
    /// A regular file (or a hard link to one, or a device).
    NotDir,
    /// A symlink, with its target.
    Link(String),
    /// Nothing: the layer removed what the image had there.
    Gone,
}

/// How a path is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Where an entry would land; missing directories kept as named.
    Parents,
    /// The same, but a symlink that leads nowhere is an error.
    Place,
    /// What is there: nothing past a missing directory or a file.
    Lookup,
}

/// The merged view of an image's layer directories.
#[derive(Debug, Clone)]
pub struct RootFs {
    /// Top layer first.
    layers: Vec<PathBuf>,
}

impl RootFs {
    /// `layers` top first, as `docker image inspect` lists them (`UpperDir`,
    /// then `LowerDir`). `None` unless every one is a readable directory.
    pub fn open(layers: Vec<PathBuf>) -> Option<RootFs> {
        if layers.is_empty() || layers.iter().any(|l| fs::read_dir(l).is_err()) {
            return None;
        }
        Some(RootFs { layers })
    }

    /// The entry at `path` (absolute in the image, already free of symlinked
    /// ancestors: see [`RootFs::resolve_parents`]), not following a symlink at
    /// the last component. `None` when the merged view has nothing there.
    pub fn lstat(&self, path: &str) -> io::Result<Option<Found>> {
        let parts = components(path);
        if parts.is_empty() {
            let host = self.layers[0].clone();
            let meta = fs::symlink_metadata(&host)?;
            return Ok(Some(Found { host, meta }));
        }
        'layers: for layer in &self.layers {
            let mut dir = layer.clone();
            let mut opaque = false;
            for (i, part) in parts.iter().enumerate() {
                if dir.join(format!("{WHITEOUT_PREFIX}{part}")).exists() {
                    return Ok(None);
                }
                let host = dir.join(part);
                let meta = match fs::symlink_metadata(&host) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if opaque {
                            return Ok(None);
                        }
                        continue 'layers;
                    }
                    Err(e) => return Err(e),
                };
                if is_whiteout(&meta) {
                    return Ok(None);
                }
                if i + 1 == parts.len() {
                    return Ok(Some(Found { host, meta }));
                }
                if !meta.is_dir() {
                    // A file here hides whatever lower layers have below it.
                    return Ok(None);
                }
                opaque |= is_opaque(&host);
                dir = host;
            }
        }
        Ok(None)
    }

    /// `path` with every symlink among its ancestors followed (within the
    /// image's root), as extracting an archive into the image would: `/bin/x`
    /// becomes `/usr/bin/x` on a merged-`/usr` system. The last component is
    /// kept as it is; missing directories are kept as named. Fails when an
    /// ancestor is not a directory.
    pub fn resolve_parents(&self, path: &str) -> io::Result<String> {
        self.resolve(path, &|_| None, Walk::Parents)
            .map(|p| p.unwrap_or_default())
    }

    /// Where extracting an entry named `path` puts it, in this file system
    /// with `over` (what the layer being written already holds) on top: as
    /// [`RootFs::resolve_parents`], except that a symlink among the ancestors
    /// whose target does not exist is an error, as it is to extraction (which
    /// creates missing directories, but not through a link that leads nowhere).
    pub fn place(&self, path: &str, over: &dyn Fn(&str) -> Option<Over>) -> io::Result<String> {
        self.resolve(path, over, Walk::Place)
            .map(|p| p.unwrap_or_default())
    }

    /// `None` only in [`Walk::Lookup`], when a directory on the way is missing.
    fn resolve(
        &self,
        path: &str,
        over: &dyn Fn(&str) -> Option<Over>,
        walk: Walk,
    ) -> io::Result<Option<String>> {
        let parts = components(path);
        let Some((last, parents)) = parts.split_last() else {
            return Ok(Some("/".to_string()));
        };
        let Some(mut resolved) = self.resolve_dir(parents, over, walk)? else {
            return Ok(None);
        };
        resolved.push(last.to_string());
        Ok(Some(join(&resolved)))
    }

    /// Resolves a directory path given as components. Missing directories
    /// are kept as named (extracting creates them), except in
    /// [`Walk::Place`] where a symlink's target is what is missing, and in
    /// [`Walk::Lookup`], which gives `None` for any missing directory and
    /// for a file on the way.
    fn resolve_dir(
        &self,
        parts: &[&str],
        over: &dyn Fn(&str) -> Option<Over>,
        walk: Walk,
    ) -> io::Result<Option<Vec<String>>> {
        /// A symlink being followed: its path and target.
        type Via = std::rc::Rc<(String, String)>;
        let mut out: Vec<String> = Vec::new();
        // Components still to walk, last first, each with the link whose
        // target it comes from.
        let mut rest: Vec<(String, Option<Via>)> =
            parts.iter().rev().map(|s| (s.to_string(), None)).collect();
        let mut links = 0;
        let mut missing = false;
        while let Some((part, via)) = rest.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    out.pop();
                    continue;
                }
                _ => {}
            }
            let mut candidate = out.clone();
            candidate.push(part.clone());
            let at = join(&candidate);
            let kind = match missing {
                true => Over::Gone,
                false => match over(&at) {
                    Some(kind) => kind,
                    None => match self.lstat(&at)? {
                        None => Over::Gone,
                        Some(f) if f.meta.file_type().is_symlink() => {
                            Over::Link(fs::read_link(&f.host)?.to_string_lossy().into_owned())
                        }
                        Some(f) if f.meta.is_dir() => Over::Dir,
                        Some(_) => Over::NotDir,
                    },
                },
            };
            match kind {
                Over::Gone if walk == Walk::Lookup => return Ok(None),
                Over::NotDir if walk == Walk::Lookup => return Ok(None),
                Over::Gone => {
                    if let (Walk::Place, Some(via)) = (walk, &via) {
                        return Err(io::Error::other(format!(
                            "`{}` in the image is a symlink to `{}`, which does not exist",
                            via.0, via.1
                        )));
                    }
                    missing = true;
                    out.push(part);
                }
                Over::Link(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(io::Error::other(format!(
                            "too many levels of symbolic links at `{at}`"
                        )));
                    }
                    if target.starts_with('/') {
                        out.clear();
                    }
                    // The link's target replaces it; what followed it comes after.
                    let via: Via = std::rc::Rc::new((at, target.clone()));
                    rest.extend(
                        target
                            .split('/')
                            .rev()
                            .map(|p| (p.to_string(), Some(via.clone()))),
                    );
                }
                Over::Dir => out.push(part),
                Over::NotDir => {
                    return Err(io::Error::other(format!(
                        "`{at}` in the image is not a directory"
                    )));
                }
            }
        }
        Ok(Some(out))
    }

    /// The content and permission bits of the regular file at `path`
    /// (symlinks followed); `None` when there is none.
    pub fn read_file(&self, path: &str) -> io::Result<Option<(Vec<u8>, u32)>> {
        let Some(found) = self.follow(path)? else {
            return Ok(None);
        };
        if !found.meta.is_file() {
            return Ok(None);
        }
        let data = fs::read(&found.host)?;
        Ok(Some((data, found.meta.mode() & 0o7777)))
    }

    /// The entry at `path` with symlinks followed everywhere, the last
    /// component included.
    /// Like `test -e` (or `stat`) in the image: a missing directory or a
    /// file on the way means nothing is there (also before a `..`), and a
    /// path ending in `/`, `/.` or `/..` names a directory.
    pub fn follow(&self, path: &str) -> io::Result<Option<Found>> {
        Ok(self.follow_to(path)?.map(|(_, found)| found))
    }

    /// [`RootFs::follow`], with the path it leads to (absolute, free of
    /// symlinks): where a change to what is there must be made.
    pub fn follow_to(&self, path: &str) -> io::Result<Option<(String, Found)>> {
        let last = path.rsplit('/').next().unwrap_or("");
        if path.ends_with('/') || last == "." || last == ".." {
            let parts: Vec<&str> = path.split('/').collect();
            let Some(dir) = self.resolve_dir(&parts, &|_| None, Walk::Lookup)? else {
                return Ok(None);
            };
            let dir = join(&dir);
            return Ok(self
                .lstat(&dir)?
                .filter(|f| f.meta.is_dir())
                .map(|f| (dir, f)));
        }
        let lookup = |p: &str| self.resolve(p, &|_| None, Walk::Lookup);
        let Some(mut path) = lookup(path)? else {
            return Ok(None);
        };
        for _ in 0..MAX_LINKS {
            let Some(found) = self.lstat(&path)? else {
                return Ok(None);
            };
            if !found.meta.file_type().is_symlink() {
                return Ok(Some((path, found)));
            }
            let target = fs::read_link(&found.host)?.to_string_lossy().into_owned();
            let next = if target.starts_with('/') {
                target
            } else {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                format!("{dir}/{target}")
            };
            let Some(next) = lookup(&next)? else {
                return Ok(None);
            };
            path = next;
        }
        Err(io::Error::other(format!(
            "too many levels of symbolic links at `{path}`"
        )))
    }

    /// The names in the merged directory at `path` (no symlinks followed),
    /// sorted; `None` when it is not a directory.
    pub fn read_dir(&self, path: &str) -> io::Result<Option<Vec<String>>> {
        let parts = components(path);
        let mut names = std::collections::BTreeSet::new();
        let mut hidden = std::collections::BTreeSet::new();
        let mut any = false;
        for layer in &self.layers {
            let dir = parts.iter().fold(layer.clone(), |d, p| d.join(p));
            // Whether this layer has the directory (as a directory) at all.
            let meta = match fs::symlink_metadata(&dir) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if hides_below(layer, &parts) {
                        break;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !meta.is_dir() {
                break;
            }
            any = true;
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if OPAQUE_MARKERS.contains(&name.as_str()) {
                    continue;
                }
                if let Some(gone) = name.strip_prefix(WHITEOUT_PREFIX) {
                    hidden.insert(gone.to_string());
                    continue;
                }
                if hidden.contains(&name) || names.contains(&name) {
                    continue;
                }
                if is_whiteout(&entry.metadata()?) {
                    hidden.insert(name);
                    continue;
                }
                names.insert(name);
            }
            if is_opaque(&dir) || hides_below(layer, &parts) {
                break;
            }
        }
        if !any || self.lstat(path)?.is_none_or(|f| !f.meta.is_dir()) {
            return Ok(None);
        }
        Ok(Some(names.into_iter().collect()))
    }
}

/// Whether the engine keeps the files under its layer directory `dir` with
/// the image's own owners: the directory belongs to root. Under user
/// namespace remapping, or with a rootless engine, it belongs to a shifted
/// uid, and owners read there are not the image's.
pub fn owners_are_real(dir: &Path) -> bool {
    fs::metadata(dir).is_ok_and(|m| m.uid() == 0)
}

/// Whether `layer` hides the lower layers' `parts` (a directory's path)
/// through one of its ancestors: a whiteout of it, something other than a
/// directory in its place, or an opaque directory.
fn hides_below(layer: &Path, parts: &[&str]) -> bool {
    let mut dir = layer.to_path_buf();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if dir.join(format!("{WHITEOUT_PREFIX}{part}")).exists() {
            return true;
        }
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Err(_) => return false,
            Ok(m) if is_whiteout(&m) || !m.is_dir() => return true,
            Ok(_) if is_opaque(&dir) => return true,
            Ok(_) => {}
        }
    }
    false
}

/// A path's components, without empty ones and `.`.
fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect()
}

fn join(parts: &[String]) -> String {
    format!("/{}", parts.join("/"))
}

fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    OPAQUE_MARKERS.iter().any(|m| dir.join(m).exists())
        || OPAQUE_XATTRS
            .iter()
            .any(|x| xattr::get(dir, x).ok().flatten().is_some_and(|v| v == b"y"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// Layers as directories under one temp dir; `layers[0]` is the top.
    struct Stack {
        _dir: tempfile::TempDir,
        layers: Vec<PathBuf>,
    }

    fn stack(n: usize) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let layers: Vec<PathBuf> = (0..n).map(|i| dir.path().join(format!("l{i}"))).collect();
        for l in &layers {
            fs::create_dir(l).unwrap();
        }
        Stack { _dir: dir, layers }
    }

    fn write(layer: &Path, path: &str, content: &str) {
        let p = layer.join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn rootfs(s: &Stack) -> RootFs {
        RootFs::open(s.layers.clone()).unwrap()
    }

    fn content(fs: &RootFs, path: &str) -> Option<String> {
        fs.read_file(path)
            .unwrap()
            .map(|(d, _)| String::from_utf8(d).unwrap())
    }

    #[test]
    fn the_top_layer_wins_and_lower_layers_show_through() {
        let s = stack(2);
        write(&s.layers[1], "/etc/passwd", "old");
        write(&s.layers[1], "/etc/group", "lower");
        write(&s.layers[0], "/etc/passwd", "new");
        let r = rootfs(&s);
        assert_eq!(content(&r, "/etc/passwd").as_deref(), Some("new"));
        assert_eq!(content(&r, "/etc/group").as_deref(), Some("lower"));
        assert_eq!(content(&r, "/etc/shadow"), None);
        assert_eq!(
            r.read_dir("/etc").unwrap(),
            Some(vec!["group".to_string(), "passwd".to_string()])
        );
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_what_is_below() {
        let s = stack(2);
        write(&s.layers[1], "/a/gone", "x");
        write(&s.layers[1], "/a/kept", "x");
        write(&s.layers[1], "/o/hidden", "x");
        write(&s.layers[0], "/a/.wh.gone", "");
        write(&s.layers[0], "/o/.wh..wh..opq", "");
        write(&s.layers[0], "/o/new", "y");
        let r = rootfs(&s);
        assert!(r.lstat("/a/gone").unwrap().is_none());
        assert!(r.lstat("/a/kept").unwrap().is_some());
        assert!(r.lstat("/o/hidden").unwrap().is_none());
        assert_eq!(content(&r, "/o/new").as_deref(), Some("y"));
        assert_eq!(r.read_dir("/a").unwrap(), Some(vec!["kept".to_string()]));
        assert_eq!(r.read_dir("/o").unwrap(), Some(vec!["new".to_string()]));
    }

    #[test]
    fn an_opaque_parent_hides_a_lower_layers_directory_below_it() {
        let s = stack(2);
        write(&s.layers[1], "/etc/skel/.old", "x");
        write(&s.layers[0], "/etc/.wh..wh..opq", "");
        write(&s.layers[0], "/etc/skel/.new", "y");
        let r = rootfs(&s);
        assert_eq!(
            r.read_dir("/etc/skel").unwrap(),
            Some(vec![".new".to_string()])
        );
    }

    #[test]
    fn a_file_in_an_upper_layer_hides_a_lower_directory() {
        let s = stack(2);
        write(&s.layers[1], "/d/inner", "x");
        write(&s.layers[0], "/d", "now a file");
        let r = rootfs(&s);
        assert!(r.lstat("/d/inner").unwrap().is_none());
        assert_eq!(r.read_dir("/d").unwrap(), None);
    }

    #[test]
    fn symlinked_parents_are_followed_within_the_root() {
        let s = stack(2);
        fs::create_dir_all(s.layers[1].join("usr/bin")).unwrap();
        symlink("usr/bin", s.layers[1].join("bin")).unwrap();
        fs::create_dir_all(s.layers[0].join("var")).unwrap();
        symlink("/run", s.layers[0].join("var/run")).unwrap();
        symlink("../../..", s.layers[0].join("var/up")).unwrap();
        let r = rootfs(&s);
        assert_eq!(r.resolve_parents("/bin/tool").unwrap(), "/usr/bin/tool");
        assert_eq!(r.resolve_parents("/var/run/x/y").unwrap(), "/run/x/y");
        assert_eq!(
            r.resolve_parents("/var/up/etc/f").unwrap(),
            "/etc/f",
            "`..` never climbs out of the root"
        );
        assert_eq!(
            r.resolve_parents("/bin").unwrap(),
            "/bin",
            "the last component is not followed"
        );
        assert_eq!(r.resolve_parents("/new/dir/f").unwrap(), "/new/dir/f");
    }

    #[test]
    fn a_file_among_the_parents_is_an_error_and_loops_end() {
        let s = stack(1);
        write(&s.layers[0], "/f", "x");
        symlink("loop", s.layers[0].join("loop")).unwrap();
        let r = rootfs(&s);
        assert!(r.resolve_parents("/f/x").is_err());
        assert!(r.resolve_parents("/loop/x").is_err());
    }

    #[test]
    fn follow_finds_what_test_e_finds() {
        let s = stack(1);
        write(&s.layers[0], "/etc/passwd", "root");
        fs::create_dir_all(s.layers[0].join("usr/local")).unwrap();
        symlink("usr/local", s.layers[0].join("local")).unwrap();
        let r = rootfs(&s);
        let found = |p: &str| r.follow(p).unwrap().map(|f| f.meta.is_dir());
        assert_eq!(found("/etc/passwd"), Some(false));
        assert_eq!(
            found("/etc/passwd/"),
            None,
            "a trailing slash asks for a directory"
        );
        assert_eq!(found("/etc/passwd/."), None);
        assert_eq!(found("/etc/passwd/x"), None, "a file on the way");
        assert_eq!(
            found("/usr/missing/../local"),
            None,
            "a missing directory before `..`"
        );
        assert_eq!(found("/usr/local/.."), Some(true));
        assert_eq!(
            found("/local/"),
            Some(true),
            "through a symlink to a directory"
        );
        assert_eq!(
            found("/local/../local"),
            Some(true),
            "`..` of the link's target"
        );
    }

    #[test]
    fn an_unreadable_layer_gives_no_view() {
        assert!(RootFs::open(vec![PathBuf::from("/nonexistent/kiln/layer")]).is_none());
        assert!(RootFs::open(Vec::new()).is_none());
    }
}
