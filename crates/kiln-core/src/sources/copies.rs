//! Copies: a `files.copies` source on the host: its content digest (what the
//! files phase's key reads), the stat cache that keeps a no-op build cheap,
//! and the tar entries that place it in the image. The digest covers every
//! byte, mode and path, so a file changed without a change of size or mtime
//! still changes the key; and what is streamed into the image is hashed as
//! it goes and checked against the key, so a file changed between the two
//! reads fails the phase instead of being baked in under its old key.
//!
//! Over 1,000 lines with its tests: the walk, the digest, the cache that
//! must never serve a changed file and the stream that must write what was
//! keyed are one correctness argument, read together.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::sources::beneath::{self, Beneath, BeneathError};
use crate::sources::kiln_ignore::{self, KilnIgnore};

/// Version of the digest encoding below.
const DIGEST_VERSION: &[u8] = b"kiln-copy-v2\n";

/// A copy source that cannot be read, or that leads out of the habitat directory.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "copy source {0}\nhint: copy the file into the habitat directory instead of linking to it"
    )]
    Outside(BeneathError),
    #[error("copy source `{}` is neither a file nor a directory", path.display())]
    NotCopyable { path: PathBuf },
    #[error(
        "copy source `{}` is a build secret's file, and secrets never enter an image\nhint: copy something else, or read it from `/run/secrets` in a setup command",
        path.display()
    )]
    Secret { path: PathBuf },
    #[error("`{}` changed while kiln read it: {what}\nhint: build again once it stops changing", path.display())]
    Changed { path: PathBuf, what: &'static str },
    #[error(
        "copy source `{}` is left out by line {line} of `.kilnignore`\nhint: add an exception (`!{rel}`) to `.kilnignore`, or copy something else",
        path.display()
    )]
    Ignored {
        path: PathBuf,
        rel: String,
        line: usize,
    },
    #[error("copy source `{}` is never copied: kiln reads it, the image does not need it", path.display())]
    NeverCopied { path: PathBuf },
}

impl From<BeneathError> for CopyError {
    fn from(e: BeneathError) -> CopyError {
        match e {
            BeneathError::Io { path, source } => CopyError::Io { path, source },
            e => CopyError::Outside(e),
        }
    }
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file system entry under a copy source, relative to it ("" for the root).
#[derive(Debug)]
struct Entry {
    rel: String,
    /// The host path, as the config names it (a key of the digest cache, and
    /// what messages show); never opened by this path.
    path: PathBuf,
    meta: Stat,
    /// A symlink's target, read when the tree was walked.
    link: Option<PathBuf>,
    /// A directory `.kilnignore` leaves out, walked only for the exceptions
    /// beneath it: kept as their parent, dropped when none matched.
    parent_only: bool,
}

/// What kiln keeps of an entry's metadata: a tenth of `fs::Metadata`'s
/// size, which matters when a walk sorts ten thousand entries.
#[derive(Debug, Clone, Copy)]
struct Stat {
    /// Type and permission bits, as `st_mode`.
    mode: u32,
    len: u64,
    dev: u64,
    ino: u64,
    nlink: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Stat {
    fn of(m: &fs::Metadata) -> Stat {
        Stat {
            mode: m.mode(),
            len: m.len(),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        }
    }

    /// The same fields from an `fstatat`, whose C types differ by platform
    /// (hence the casts, some of which are no-ops here).
    #[allow(clippy::unnecessary_cast)]
    fn of_raw(m: &rustix::fs::Stat) -> Stat {
        Stat {
            mode: m.st_mode as u32,
            len: m.st_size as u64,
            dev: m.st_dev as u64,
            ino: m.st_ino as u64,
            nlink: m.st_nlink as u64,
            mtime: m.st_mtime as i64,
            mtime_nsec: m.st_mtime_nsec as i64,
            ctime: m.st_ctime as i64,
            ctime_nsec: m.st_ctime_nsec as i64,
        }
    }

    fn kind(&self) -> u32 {
        self.mode & 0o170000
    }

    fn is_dir(&self) -> bool {
        self.kind() == 0o040000
    }

    fn is_file(&self) -> bool {
        self.kind() == 0o100000
    }

    fn is_symlink(&self) -> bool {
        self.kind() == 0o120000
    }

    /// The permission bits.
    fn perm(&self) -> u32 {
        self.mode & 0o7777
    }
}

/// Host files a copy from one root never takes: the build's secret files
/// (SPEC §6: a secret never enters a layer), known by device and inode, so
/// that a copy of the directory holding one, a hard link or a second path
/// to it leaves it out too; the files kiln reads itself (the config, the
/// ignore file, an include's fragments), by path under the root; and what
/// the root's `.kilnignore` leaves out (SPEC §2.1).
#[derive(Debug, Default, Clone)]
pub struct Withheld {
    files: BTreeSet<(u64, u64)>,
    /// Paths under the root, `/`-separated, never copied.
    never: BTreeSet<String>,
    ignore: KilnIgnore,
}

impl Withheld {
    /// The files of `secrets` (relative to the habitat directory `dir`)
    /// that exist; a missing one is the secrets' own error, later.
    pub fn secret_files(dir: &Path, secrets: &[crate::config::Secret]) -> Withheld {
        let files = secrets
            .iter()
            .filter_map(|s| s.file.as_ref())
            .filter_map(|f| fs::metadata(dir.join(f)).ok())
            .filter(|m| m.is_file())
            .map(|m| (m.dev(), m.ino()))
            .collect();
        Withheld {
            files,
            ..Withheld::default()
        }
    }

    /// What copies from the habitat directory leave out: the secrets' files,
    /// the config file and `.kilnignore` themselves, and what `.kilnignore`
    /// excludes. A `.kilnignore` with bad lines is the config's error (every
    /// line located); a missing one leaves nothing out.
    pub fn for_habitat(
        habitat: &crate::config::Habitat,
    ) -> Result<Withheld, crate::config::Diagnostics> {
        Withheld::for_root(habitat, &habitat.dir)
    }

    /// What copies read beneath the copy root `root` (the habitat directory
    /// or a fragment's directory, SPEC §2.1) leave out: the secrets' files
    /// wherever they are, `root`'s own `.kilnignore` and what it excludes,
    /// and the config file and every fragment lying beneath `root`.
    pub fn for_root(
        habitat: &crate::config::Habitat,
        root: &Path,
    ) -> Result<Withheld, crate::config::Diagnostics> {
        let file = root.join(kiln_ignore::FILE_NAME);
        let shown = file.display().to_string();
        let ignore = match fs::read(&file) {
            Ok(bytes) => {
                let Ok(text) = String::from_utf8(bytes) else {
                    return Err(kiln_ignore::unreadable(&shown, "it is not UTF-8"));
                };
                KilnIgnore::parse(&text)
                    .map_err(|problems| kiln_ignore::diagnostics(&shown, &text, &problems))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => KilnIgnore::default(),
            Err(e) => return Err(kiln_ignore::unreadable(&shown, &e.to_string())),
        };
        let mut out = Withheld::secret_files(&habitat.dir, &habitat.config.secrets)
            .ignoring(ignore)
            .never_copying(kiln_ignore::FILE_NAME);
        for own in std::iter::once(&habitat.file).chain(&habitat.fragments) {
            if let Ok(rel) = own.strip_prefix(root) {
                out = out.never_copying(&rel.to_string_lossy());
            }
        }
        Ok(out)
    }

    /// One [`Withheld`] per copy root that `habitat`'s copies read from,
    /// keyed by the root as [`crate::config::Copy::in_root`] names it.
    pub fn by_root(
        habitat: &crate::config::Habitat,
    ) -> Result<BTreeMap<String, Withheld>, crate::config::Diagnostics> {
        let mut out = BTreeMap::new();
        out.insert(String::new(), Withheld::for_habitat(habitat)?);
        for copy in habitat.config.build.files.iter().flat_map(|f| &f.copies) {
            let (root, _) = copy.in_root();
            if !out.contains_key(root) {
                let w = Withheld::for_root(habitat, &habitat.root_dir(root))?;
                out.insert(root.to_string(), w);
            }
        }
        Ok(out)
    }

    /// Also leaves out what `ignore` (the root's `.kilnignore`) excludes.
    pub fn ignoring(self, ignore: KilnIgnore) -> Withheld {
        Withheld { ignore, ..self }
    }

    /// Also never copies `rel` (a path under the root): a file kiln reads
    /// itself. A list, so an include's fragments can join the config file.
    pub fn never_copying(mut self, rel: &str) -> Withheld {
        self.never.insert(kiln_ignore::root_relative(rel));
        self
    }

    fn holds(&self, m: &Stat) -> bool {
        m.is_file() && self.files.contains(&(m.dev, m.ino))
    }

    /// What becomes of the entry at `rel` under the root.
    fn verdict(&self, rel: &str, m: &Stat) -> Verdict {
        if self.holds(m) || self.never.contains(rel) {
            return Verdict::Out;
        }
        if self.ignore.is_empty() || !self.ignore.excludes(rel) {
            return Verdict::In;
        }
        match m.is_dir() && self.ignore.may_let_back_below(rel) {
            true => Verdict::ParentOnly,
            false => Verdict::Out,
        }
    }
}

/// Whether a walked entry is copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    In,
    Out,
    /// An excluded directory an exception may reach into.
    ParentOnly,
}

/// `rel` (under a source) as a path under the root, the source being
/// `base` under it.
fn under_root(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => base.to_string(),
        (false, false) => format!("{base}/{rel}"),
    }
}

/// A walked copy source: the source opened beneath the habitat directory,
/// and everything under it.
struct Tree {
    /// The source itself, as opened when the walk began: every file is read
    /// through it, so what is read is what was checked.
    root: fs::File,
    entries: Vec<Entry>,
}

/// Opens `source` beneath the habitat directory `dir` (following a symlink
/// there only while it stays inside) and walks it, never following a link
/// below it, in sorted order so digests and archives are deterministic. The
/// subtrees under the source are walked on several threads: a no-op build
/// of a large tree is mostly this walk (a stat per entry).
fn walk(dir: &Path, source: &str, withheld: &Withheld) -> Result<Tree, CopyError> {
    let path = host_path(dir, source);
    let root = Beneath::open(dir)?.open_entry(Path::new(source))?;
    let meta = Stat::of(&root.metadata().map_err(err(&path))?);
    if !meta.is_dir() && !meta.is_file() {
        return Err(CopyError::NotCopyable { path });
    }
    if withheld.holds(&meta) {
        return Err(CopyError::Secret { path });
    }
    let base = kiln_ignore::root_relative(source);
    let verdict = match base.is_empty() {
        true => Verdict::In,
        false => withheld.verdict(&base, &meta),
    };
    if verdict == Verdict::Out {
        return Err(left_out(withheld, path, base));
    }
    let mut out = vec![Entry {
        rel: String::new(),
        path,
        meta,
        link: None,
        parent_only: false,
    }];
    if !meta.is_dir() {
        return Ok(Tree { root, entries: out });
    }
    let at = Under {
        withheld,
        base: &base,
    };
    let top = children(&root, &out[0].path, "", &at)?;
    let subdirs: Vec<&Entry> = top.iter().filter(|e| e.meta.is_dir()).collect();
    let below = on_threads(&subdirs, |e| {
        let mut entries = Vec::new();
        let sub = open_dir(&root, e)?;
        walk_below(&sub, e, &at, &mut entries).map(|()| entries)
    });
    let mut below = below.into_iter();
    for e in top {
        if e.meta.is_dir() {
            let entries = below.next().unwrap_or_else(|| Ok(Vec::new()))?;
            let nothing_below = entries.is_empty();
            out.extend(entries);
            if e.parent_only && nothing_below {
                continue;
            }
        }
        out.push(e);
    }
    if verdict == Verdict::ParentOnly && out.len() == 1 {
        // An excluded source no exception let anything of back in.
        let path = out.swap_remove(0).path;
        return Err(left_out(withheld, path, base));
    }
    out.sort_unstable_by(|a, b| a.rel.cmp(&b.rel));
    Ok(Tree { root, entries: out })
}

/// Why the source `path` (at `rel` under the root) is not copied.
fn left_out(withheld: &Withheld, path: PathBuf, rel: String) -> CopyError {
    match withheld.ignore.excluded_by(&rel) {
        Some(line) if !withheld.never.contains(&rel) => CopyError::Ignored { path, rel, line },
        _ => CopyError::NeverCopied { path },
    }
}

/// What the walk of one source filters by: the root's [`Withheld`], and
/// where the source is under the root.
struct Under<'a> {
    withheld: &'a Withheld,
    base: &'a str,
}

/// Everything below the directory `e`, open as `dir` (not `e` itself), in
/// any order. One descriptor is open per level of depth.
fn walk_below(
    dir: &fs::File,
    e: &Entry,
    at: &Under<'_>,
    out: &mut Vec<Entry>,
) -> Result<(), CopyError> {
    for child in children(dir, &e.path, &e.rel, at)? {
        if child.meta.is_dir() {
            let before = out.len();
            let sub = open_dir(dir, &child)?;
            walk_below(&sub, &child, at, out)?;
            if child.parent_only && out.len() == before {
                continue;
            }
        }
        out.push(child);
    }
    Ok(())
}

/// The subdirectory `e` of the open directory `parent`, opened without
/// following a symlink (one put there since the walk saw a directory fails).
fn open_dir(parent: &fs::File, e: &Entry) -> Result<fs::File, CopyError> {
    let name = e.path.file_name().unwrap_or_default();
    beneath::open_below(parent, Path::new(name))
        .and_then(|f| match f.metadata()?.is_dir() {
            true => Ok(f),
            false => Err(io::Error::from(io::ErrorKind::NotADirectory)),
        })
        .map_err(err(&e.path))
}

/// Where `source` is on the host, for messages and cache keys: `dir`
/// joined with it, `.` components dropped (`./a` and `a` are one source).
fn host_path(dir: &Path, source: &str) -> PathBuf {
    let mut path = dir.to_path_buf();
    path.extend(
        Path::new(source)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir)),
    );
    path
}

/// The entries of the open directory `dir` (at `dir_path` on the host),
/// whose path under the root is `prefix`, less the withheld files. Each is
/// stat'ed relative to the open directory, so no path on the way is looked
/// up again.
fn children(
    dir: &fs::File,
    dir_path: &Path,
    prefix: &str,
    at: &Under<'_>,
) -> Result<Vec<Entry>, CopyError> {
    let raw = |e: rustix::io::Errno| io::Error::from(e);
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(|e| err(dir_path)(raw(e)))? {
        let entry = entry.map_err(|e| err(dir_path)(raw(e)))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name == "." || name == ".." {
            continue;
        }
        let path = dir_path.join(name);
        let stat = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| err(&path)(raw(e)))?;
        let meta = Stat::of_raw(&stat);
        if at.withheld.holds(&meta) {
            continue;
        }
        let name_str = name.to_string_lossy();
        let rel = if prefix.is_empty() {
            name_str.into_owned()
        } else {
            format!("{prefix}/{name_str}")
        };
        let verdict = match at.withheld.never.is_empty() && at.withheld.ignore.is_empty() {
            true => Verdict::In,
            false => at.withheld.verdict(&under_root(at.base, &rel), &meta),
        };
        if verdict == Verdict::Out {
            continue;
        }
        let link = match meta.is_symlink() {
            true => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new())
                    .map_err(|e| err(&path)(raw(e)))?;
                Some(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
            }
            false => None,
        };
        out.push(Entry {
            rel,
            path,
            meta,
            link,
            parent_only: verdict == Verdict::ParentOnly,
        });
    }
    Ok(out)
}

impl Tree {
    /// The regular file `e` of this tree, opened through the source without
    /// following a symlink, and its length now.
    fn open_file(&self, e: &Entry) -> Result<(ReadAt, u64), CopyError> {
        let file = match e.path.strip_prefix(&self.entries[0].path) {
            Ok(rel) if !rel.as_os_str().is_empty() => {
                beneath::open_below(&self.root, rel).map_err(err(&e.path))?
            }
            _ => self.root.try_clone().map_err(err(&e.path))?,
        };
        let meta = file.metadata().map_err(err(&e.path))?;
        if !meta.is_file() {
            return Err(CopyError::Changed {
                path: e.path.clone(),
                what: "it is no longer a regular file",
            });
        }
        Ok((ReadAt { file, pos: 0 }, meta.len()))
    }
}

/// Reads a file from its start by offset (`pread`), so a descriptor shared
/// with the walk has no position to lose.
struct ReadAt {
    file: fs::File,
    pos: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = rustix::io::pread(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Exactly `len` bytes of `file`: one that shrank while it was read is an
/// error, not a short archive entry or a digest of less than was stated.
fn read_exactly(
    file: ReadAt,
    len: u64,
    path: &Path,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), CopyError> {
    let mut f = file.take(len);
    let mut buf = vec![0u8; 256 * 1024];
    let mut read = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err(path))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        each(&buf[..n]).map_err(err(path))?;
    }
    if read != len {
        return Err(CopyError::Changed {
            path: path.to_path_buf(),
            what: "it shrank",
        });
    }
    Ok(())
}

/// The content digest of a copy source: paths, kinds, modes, bytes and link
/// targets of everything under it.
pub fn digest(dir: &Path, source: &str, withheld: &Withheld) -> Result<String, CopyError> {
    keyed(dir, source, withheld).map(|k| k.digest)
}

/// [`digest`], with the lines it hashed: what [`append_to_tar`] checks what
/// it streams against.
pub fn keyed(dir: &Path, source: &str, withheld: &Withheld) -> Result<Keyed, CopyError> {
    let tree = walk(dir, source, withheld)?;
    let files: Vec<&Entry> = tree.entries.iter().filter(|e| e.meta.is_file()).collect();
    let lines = entry_lines(&tree.entries, hash_files(&tree, &files)?);
    Ok(Keyed {
        digest: digest_lines(&lines),
        lines: Some(lines),
        files_cache: None,
    })
}

/// What a copy's key was computed from: its digest and, when this run read
/// the tree (the stat cache did not prove it), the line of each entry the
/// digest hashed, so that a mismatch found while streaming names the entry
/// that changed. A tree the stat cache served names it from the cache's
/// per-file digests instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    pub digest: String,
    /// (path under the source, its line), in walk order.
    lines: Option<Vec<(String, String)>>,
    /// The stat cache's per-file digests (`DIGESTS.files`).
    files_cache: Option<PathBuf>,
}

/// The content digests of `files`, in order, read on several threads (hashing
/// a large tree is bound by one core's sha256 otherwise).
fn hash_files(tree: &Tree, files: &[&Entry]) -> Result<Vec<String>, CopyError> {
    on_threads(files, |e| file_digest(tree, e))
        .into_iter()
        .collect()
}

/// `work` applied to every item, on as many threads as there are cores (at
/// most eight), each taking the next item when it is done; results in order.
fn on_threads<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .min(8);
    if threads <= 1 {
        return items.iter().map(work).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return mine;
                        };
                        mine.push((i, work(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// The sha256 of a file's bytes.
fn file_digest(tree: &Tree, e: &Entry) -> Result<String, CopyError> {
    let mut h = Sha256::new();
    let (f, len) = tree.open_file(e)?;
    read_exactly(f, len, &e.path, |bytes| {
        h.update(bytes);
        Ok(())
    })?;
    Ok(hex::encode(h.finalize()))
}

/// The line of each entry in a tree's digest, with its path under the root;
/// `contents` holds the content digest of each regular file, in the order
/// of `entries`.
fn entry_lines(entries: &[Entry], contents: Vec<String>) -> Vec<(String, String)> {
    let mut contents = contents.into_iter();
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let line = if let Some(target) = &e.link {
            link_line(e, target)
        } else if e.meta.is_dir() {
            dir_line(e)
        } else if e.meta.is_file() {
            file_line(e, &contents.next().unwrap_or_default())
        } else {
            // Sockets, fifos and devices are not copied and so not hashed.
            continue;
        };
        out.push((e.rel.clone(), line));
    }
    out
}

fn link_line(e: &Entry, target: &Path) -> String {
    format!("l {} {:o} {}\n", e.rel, e.meta.perm(), target.display())
}

fn dir_line(e: &Entry) -> String {
    format!("d {} {:o}\n", e.rel, e.meta.perm())
}

fn file_line(e: &Entry, sha: &str) -> String {
    format!("f {} {:o} {} {sha}\n", e.rel, e.meta.perm(), e.meta.len)
}

/// The tree's digest: the hash of its entries' lines.
fn digest_lines(lines: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    h.update(DIGEST_VERSION);
    for (_, line) in lines {
        h.update(line.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A fingerprint of a tree's metadata: every entry's path, kind, mode, size,
/// inode, mtime and ctime. Content cannot change without changing the ctime
/// (which no user can set), so an equal fingerprint proves equal content.
fn fingerprint(entries: &[Entry]) -> (String, i128) {
    let mut h = Sha256::new();
    let mut newest: i128 = 0;
    for e in entries {
        let m = &e.meta;
        let ctime = i128::from(m.ctime) * 1_000_000_000 + i128::from(m.ctime_nsec);
        let mtime = i128::from(m.mtime) * 1_000_000_000 + i128::from(m.mtime_nsec);
        newest = newest.max(ctime).max(mtime);
        // Fixed-width fields after a NUL-terminated path: unambiguous, and no
        // formatting in the loop.
        h.update(e.rel.as_bytes());
        h.update([0]);
        for field in [u64::from(m.mode), m.len, m.dev, m.ino, m.nlink] {
            h.update(field.to_le_bytes());
        }
        h.update(mtime.to_le_bytes());
        h.update(ctime.to_le_bytes());
    }
    (hex::encode(h.finalize()), newest)
}

/// A file's metadata fingerprint (what `fingerprint` covers, for one file),
/// and its newest timestamp.
fn file_print(m: &Stat) -> (String, i128) {
    let ctime = i128::from(m.ctime) * 1_000_000_000 + i128::from(m.ctime_nsec);
    let mtime = i128::from(m.mtime) * 1_000_000_000 + i128::from(m.mtime_nsec);
    (
        format!(
            "{}:{}:{}:{}:{}:{mtime}:{ctime}",
            m.mode, m.len, m.dev, m.ino, m.nlink
        ),
        ctime.max(mtime),
    )
}

/// Remembers copy digests by metadata fingerprint, so a build whose inputs
/// did not change reads no file content (a stat of each entry instead), and
/// one whose tree changed reads only the files that did.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct DigestCache {
    /// Source path → (fingerprint, digest).
    entries: BTreeMap<String, (String, String)>,
    /// Single files hashed whole (local tools): path → (file fingerprint,
    /// the sha256 of its bytes). Few, so kept in the file every build reads.
    #[serde(default)]
    singles: BTreeMap<String, (String, String)>,
    #[serde(skip)]
    dirty: bool,
    /// Per-file digests, in a file of their own (`PATH.files`): read only
    /// when a tree's fingerprint misses.
    #[serde(skip)]
    files: Option<FileDigests>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

/// Host file path → (file fingerprint, content digest).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FileDigests {
    files: BTreeMap<String, (String, String)>,
    #[serde(skip)]
    dirty: bool,
}

/// A change within this long of the hashing could share its timestamp with
/// a later change (timestamps are coarse); such trees are hashed every time.
const RACY_NS: i128 = 2_000_000_000;

impl DigestCache {
    /// Reads the cache at `path`; an unreadable or corrupt cache is empty.
    pub fn load(path: &Path) -> DigestCache {
        let mut cache: DigestCache = fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        cache.path = Some(path.to_path_buf());
        cache
    }

    fn files_path(path: &Path) -> PathBuf {
        let mut p = path.as_os_str().to_owned();
        p.push(".files");
        PathBuf::from(p)
    }

    /// Writes the cache if it changed (atomically: a temp file renamed over it).
    pub fn save(&self, path: &Path) -> io::Result<()> {
        if let Some(files) = self.files.as_ref().filter(|f| f.dirty) {
            write_atomically(
                &Self::files_path(path),
                &serde_json::to_vec(files).map_err(io::Error::other)?,
            )?;
        }
        if !self.dirty {
            return Ok(());
        }
        write_atomically(path, &serde_json::to_vec(self).map_err(io::Error::other)?)
    }

    /// The digest of `source`, from the cache when its fingerprint proves it.
    pub fn digest(
        &mut self,
        dir: &Path,
        source: &str,
        withheld: &Withheld,
    ) -> Result<String, CopyError> {
        self.keyed(dir, source, withheld).map(|k| k.digest)
    }

    /// Forgets everything the cache holds of `source` (its tree and its
    /// files), so the next build reads it all again: after a stream found
    /// it did not match its key, what the cache served is suspect too.
    pub fn forget(&mut self, dir: &Path, source: &str) {
        let key = host_path(dir, source).display().to_string();
        let prefix = format!("{}/", key.trim_end_matches('/'));
        let under = |k: &String| *k == key || k.starts_with(&prefix);
        let path = self.path.clone();
        let files = self.files.get_or_insert_with(|| {
            path.and_then(|p| fs::read(Self::files_path(&p)).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        });
        let before = files.files.len();
        files.files.retain(|k, _| !under(k));
        files.dirty |= files.files.len() != before;
        let before = self.entries.len() + self.singles.len();
        self.entries.retain(|k, _| !under(k));
        self.singles.retain(|k, _| !under(k));
        self.dirty |= self.entries.len() + self.singles.len() != before;
    }

    /// The sha256 of the bytes of `file` (open already, at `path` on the
    /// host, which names it in the cache), from the cache when the file's
    /// fingerprint proves it; else read through `file` itself.
    pub fn file_sha256(&mut self, path: &Path, file: &fs::File) -> Result<String, CopyError> {
        let started = now_ns();
        let meta = Stat::of(&file.metadata().map_err(err(path))?);
        let (print, newest) = file_print(&meta);
        let key = path.display().to_string();
        if let Some((p, d)) = self.singles.get(&key)
            && *p == print
        {
            return Ok(d.clone());
        }
        // Fingerprinted before the read: a change during it moves the
        // ctime, so the next build reads the file again.
        let mut h = Sha256::new();
        let read = ReadAt {
            file: file.try_clone().map_err(err(path))?,
            pos: 0,
        };
        read_exactly(read, meta.len, path, |bytes| {
            h.update(bytes);
            Ok(())
        })?;
        let sha = hex::encode(h.finalize());
        if newest < started - RACY_NS {
            self.singles.insert(key, (print, sha.clone()));
            self.dirty = true;
        } else if self.singles.remove(&key).is_some() {
            self.dirty = true;
        }
        Ok(sha)
    }

    /// [`DigestCache::digest`], with what [`append_to_tar`] needs to check
    /// that it streams what was keyed.
    pub fn keyed(
        &mut self,
        dir: &Path,
        source: &str,
        withheld: &Withheld,
    ) -> Result<Keyed, CopyError> {
        let started = now_ns();
        let tree = walk(dir, source, withheld)?;
        let entries = &tree.entries;
        let (print, newest) = fingerprint(entries);
        let key = host_path(dir, source).display().to_string();
        if let Some((p, d)) = self.entries.get(&key)
            && *p == print
        {
            return Ok(Keyed {
                digest: d.clone(),
                lines: None,
                files_cache: self.path.as_deref().map(Self::files_path),
            });
        }
        let path = self.path.clone();
        let files = self.files.get_or_insert_with(|| {
            path.and_then(|p| fs::read(Self::files_path(&p)).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        });
        // Files whose fingerprint the cache does not prove are read, all at once.
        let files_here: Vec<&Entry> = entries.iter().filter(|e| e.meta.is_file()).collect();
        let prints: Vec<(String, String, i128)> = files_here
            .iter()
            .map(|e| {
                let (fp, newest) = file_print(&e.meta);
                (e.path.display().to_string(), fp, newest)
            })
            .collect();
        let known: Vec<Option<String>> = prints
            .iter()
            .map(|(name, fp, _)| {
                let cached = files.files.get(name).filter(|(p, _)| p == fp);
                cached.map(|(_, d)| d.clone())
            })
            .collect();
        let misses: Vec<&Entry> = files_here
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(e, _)| *e)
            .collect();
        let mut hashed = hash_files(&tree, &misses)?.into_iter();
        let mut contents = Vec::with_capacity(prints.len());
        for ((name, fp, newest), known) in prints.iter().zip(known) {
            if let Some(d) = known {
                contents.push(d);
                continue;
            }
            let d = hashed.next().unwrap_or_default();
            if *newest < started - RACY_NS {
                files.files.insert(name.clone(), (fp.clone(), d.clone()));
            } else {
                files.files.remove(name);
            }
            files.dirty = true;
            contents.push(d);
        }
        let lines = entry_lines(entries, contents);
        let digest = digest_lines(&lines);
        let seen: std::collections::BTreeSet<&String> = prints.iter().map(|p| &p.0).collect();
        // Files no longer under this source are forgotten.
        let prefix = format!("{}/", key.trim_end_matches('/'));
        let before = files.files.len();
        files
            .files
            .retain(|k, _| !(k.starts_with(&prefix) || *k == key) || seen.contains(k));
        files.dirty |= files.files.len() != before;
        if newest < started - RACY_NS {
            self.entries.insert(key, (print, digest.clone()));
            self.dirty = true;
        } else if self.entries.remove(&key).is_some() {
            self.dirty = true;
        }
        Ok(Keyed {
            digest,
            lines: Some(lines),
            files_cache: None,
        })
    }
}

fn write_atomically(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    // Named by its owner: one a killed build left is swept by the next.
    let mut tmp = crate::cache::scratch::tempfile_in(dir, ".write-")?;
    tmp.write_all(data)?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
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

/// Appends `source` (relative to the habitat directory `dir`) to `tar` at
/// `dest` (absolute in the image). A file lands at `dest`; a directory's
/// contents land under `dest`. The source is opened beneath `dir` now, not
/// trusted from an earlier check.
///
/// The key was computed from an earlier read of `source` (`keyed`); what is
/// streamed here (read through the opened source) is hashed as it goes and
/// checked against it, so a snapshot never holds content its key does not
/// name. A file that changed since it was keyed, or while it is read, is
/// [`CopyError::Changed`]: the caller throws the archive away.
pub fn append_to_tar<W: io::Write>(
    tar: &mut tar::Builder<W>,
    dir: &Path,
    source: &str,
    dest: &str,
    own: Ownership,
    withheld: &Withheld,
    keyed: &Keyed,
) -> Result<(), CopyError> {
    let base = dest.trim_start_matches('/').trim_end_matches('/');
    let tree = walk(dir, source, withheld)?;
    let mut lines = Vec::with_capacity(tree.entries.len());
    let mut shas = BTreeMap::new();
    for e in &tree.entries {
        let name = if e.rel.is_empty() {
            base.to_string()
        } else {
            format!("{base}/{}", e.rel)
        };
        let mut header = tar::Header::new_gnu();
        header.set_uid(u64::from(own.uid));
        header.set_gid(u64::from(own.gid));
        header.set_mtime(e.meta.mtime.max(0) as u64);
        let mode = e.meta.perm();
        let io_err = err(&e.path);
        let line = if let Some(target) = &e.link {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            tar.append_link(&mut header, &name, target)
                .map_err(io_err)?;
            link_line(e, target)
        } else if e.meta.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(mode);
            header.set_size(0);
            tar.append_data(&mut header, format!("{name}/"), io::empty())
                .map_err(io_err)?;
            dir_line(e)
        } else if e.meta.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(own.file_mode.unwrap_or(mode));
            header.set_size(e.meta.len);
            let sha = stream_file(tar, &mut header, &name, &tree, e)?;
            let line = file_line(e, &sha);
            shas.insert(e.rel.clone(), sha);
            line
        } else {
            continue;
        };
        lines.push((e.rel.clone(), line));
    }
    if digest_lines(&lines) != keyed.digest {
        return Err(CopyError::Changed {
            path: changed_entry(&host_path(dir, source), keyed, &lines, &shas),
            what: "it is not what the build's key was computed from",
        });
    }
    Ok(())
}

/// Appends the regular file `e` of `tree` (opened through the source,
/// never following a symlink) as exactly the `e.meta.len` bytes its header
/// says, and returns the sha256 of the bytes appended. The file opened must
/// be the one walked (a link or another file put in its place is not
/// followed into the image), and must not change while it is read.
fn stream_file<W: io::Write>(
    tar: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &str,
    tree: &Tree,
    e: &Entry,
) -> Result<String, CopyError> {
    let changed = |what| CopyError::Changed {
        path: e.path.clone(),
        what,
    };
    let (mut f, _) = tree.open_file(e)?;
    let before = Stat::of(&f.file.metadata().map_err(err(&e.path))?);
    if (before.dev, before.ino, before.len) != (e.meta.dev, e.meta.ino, e.meta.len) {
        return Err(changed("it is not the file that was walked"));
    }
    let len = e.meta.len;
    let mut reader = HashingReader {
        inner: Exact {
            inner: (&mut f).take(len),
            left: len,
        },
        hash: Sha256::new(),
        read: 0,
    };
    tar.append_data(header, name, &mut reader)
        .map_err(|source| match reader.inner.left {
            0 => CopyError::Io {
                path: e.path.clone(),
                source,
            },
            _ => changed("it shrank"),
        })?;
    let (read, sha) = (reader.read, hex::encode(reader.hash.finalize()));
    let after = Stat::of(&f.file.metadata().map_err(err(&e.path))?);
    let grew = f.read(&mut [0u8; 1]).map_err(err(&e.path))? != 0;
    let times = |s: &Stat| (s.len, s.mtime, s.mtime_nsec, s.ctime, s.ctime_nsec);
    if read != len || grew || times(&after) != times(&before) {
        return Err(changed("it changed while it was read"));
    }
    Ok(sha)
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hash: Sha256,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A reader of exactly `left` more bytes: ending early is an error, since
/// the tar header already promised them.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The path of the first entry whose streamed line differs from the keyed
/// one (or, for a tree the stat cache served, the first file whose content
/// differs from the cache's record); `source` itself when nothing narrower
/// can be named.
fn changed_entry(
    source: &Path,
    keyed: &Keyed,
    streamed: &[(String, String)],
    shas: &BTreeMap<String, String>,
) -> PathBuf {
    let at = |rel: &str| match rel {
        "" => source.to_path_buf(),
        rel => source.join(rel),
    };
    if let Some(lines) = &keyed.lines {
        let old: BTreeMap<&str, &str> = lines
            .iter()
            .map(|(r, l)| (r.as_str(), l.as_str()))
            .collect();
        let new: BTreeMap<&str, &str> = streamed
            .iter()
            .map(|(r, l)| (r.as_str(), l.as_str()))
            .collect();
        let rels: std::collections::BTreeSet<&str> =
            old.keys().chain(new.keys()).copied().collect();
        if let Some(rel) = rels.into_iter().find(|r| old.get(r) != new.get(r)) {
            return at(rel);
        }
    } else if let Some(files) = keyed
        .files_cache
        .as_ref()
        .and_then(|p| fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<FileDigests>(&b).ok())
    {
        let differs = |(rel, sha): &(&String, &String)| {
            let path = at(rel).display().to_string();
            files.files.get(&path).map(|(_, d)| d) != Some(*sha)
        };
        if let Some((rel, _)) = shas.iter().find(differs) {
            return at(rel);
        }
    }
    source.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn digest_sees_content_mode_and_names_but_not_mtime() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a");
        fs::write(&f, "hello").unwrap();
        let one = digest(d.path(), ".", &Withheld::default()).unwrap();
        assert_eq!(one, digest(d.path(), ".", &Withheld::default()).unwrap());
        // Same size, same mtime, other bytes.
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        fs::write(&f, "jello").unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let two = digest(d.path(), ".", &Withheld::default()).unwrap();
        assert_ne!(one, two);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_ne!(two, digest(d.path(), ".", &Withheld::default()).unwrap());
        fs::rename(&f, d.path().join("b")).unwrap();
        let renamed = digest(d.path(), ".", &Withheld::default()).unwrap();
        fs::File::options()
            .write(true)
            .open(d.path().join("b"))
            .unwrap()
            .set_modified(std::time::SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(
            renamed,
            digest(d.path(), ".", &Withheld::default()).unwrap(),
            "mtime is not content"
        );
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
        let first = cache.digest(d.path(), ".", &Withheld::default()).unwrap();
        // The file was just written, so its ctime is recent: not cached yet.
        assert!(cache.entries.is_empty(), "a racily new tree is not cached");
        assert_eq!(first, digest(d.path(), ".", &Withheld::default()).unwrap());
        // Pretend the cache was made long after the change.
        let (print, _) = fingerprint(&walk(d.path(), ".", &Withheld::default()).unwrap().entries);
        cache
            .entries
            .insert(d.path().display().to_string(), (print, "cached".into()));
        assert_eq!(
            cache.digest(d.path(), ".", &Withheld::default()).unwrap(),
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
        let after = cache.digest(d.path(), ".", &Withheld::default()).unwrap();
        assert_eq!(after, digest(d.path(), ".", &Withheld::default()).unwrap());
        assert_ne!(after, first);
    }

    #[test]
    fn a_changed_tree_rereads_only_its_changed_files() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, "aaa").unwrap();
        fs::write(&b, "bbb").unwrap();
        let stat = |p: &Path| Stat::of(&fs::symlink_metadata(p).unwrap());
        // Pretend `a` was hashed long after its last change, to a marker.
        let mut cache = DigestCache::default();
        let mut files = FileDigests::default();
        files.files.insert(
            a.display().to_string(),
            (file_print(&stat(&a)).0, "cached-a".into()),
        );
        cache.files = Some(files);
        fs::write(&b, "BBB").unwrap();
        let served = cache.digest(d.path(), ".", &Withheld::default()).unwrap();
        assert_ne!(
            served,
            digest(d.path(), ".", &Withheld::default()).unwrap(),
            "the unchanged `a` is served from the per-file cache"
        );
        // `a` changes, even keeping its size: its fingerprint no longer matches.
        fs::write(&a, "AAA").unwrap();
        assert_eq!(
            cache.digest(d.path(), ".", &Withheld::default()).unwrap(),
            digest(d.path(), ".", &Withheld::default()).unwrap()
        );
        let files = cache.files.as_ref().unwrap();
        assert!(
            files.files.is_empty(),
            "racily new files are not remembered: {files:?}"
        );
    }

    #[test]
    fn the_per_file_cache_survives_a_save_and_forgets_removed_files() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("keep"), "k").unwrap();
        fs::write(src.join("gone"), "g").unwrap();
        let path = d.path().join("cache/digests.json");
        let mut cache = DigestCache::load(&path);
        let mut files = FileDigests::default();
        for name in ["keep", "gone"] {
            let p = src.join(name);
            let print = file_print(&Stat::of(&fs::symlink_metadata(&p).unwrap())).0;
            files
                .files
                .insert(p.display().to_string(), (print, format!("cached-{name}")));
        }
        cache.files = Some(files);
        fs::remove_file(src.join("gone")).unwrap();
        cache.digest(d.path(), "src", &Withheld::default()).unwrap();
        cache.save(&path).unwrap();
        let mut again = DigestCache::load(&path);
        fs::write(src.join("new"), "n").unwrap();
        again.digest(d.path(), "src", &Withheld::default()).unwrap();
        let files = again.files.as_ref().unwrap();
        let names: Vec<&String> = files.files.keys().collect();
        assert_eq!(names, [&src.join("keep").display().to_string()]);
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
            ".",
            "/opt/app",
            Ownership {
                uid: 1000,
                gid: 1000,
                file_mode: Some(0o640),
            },
            &Withheld::default(),
            &keyed(d.path(), ".", &Withheld::default()).unwrap(),
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

    const W: Withheld = Withheld {
        files: BTreeSet::new(),
        never: BTreeSet::new(),
        ignore: KilnIgnore::EMPTY,
    };

    const ROOT: Ownership = Ownership {
        uid: 0,
        gid: 0,
        file_mode: None,
    };

    /// Streams `source` into a tar as the files phase does, against `keyed`.
    fn stream(dir: &Path, source: &str, keyed: &Keyed) -> Result<Vec<u8>, CopyError> {
        let mut tar = tar::Builder::new(Vec::new());
        let none = Withheld::default();
        append_to_tar(&mut tar, dir, source, "/dest", ROOT, &none, keyed)?;
        Ok(tar.into_inner().unwrap())
    }

    fn changed_path(r: Result<Vec<u8>, CopyError>) -> PathBuf {
        match r {
            Err(CopyError::Changed { path, .. }) => path,
            other => panic!("expected a change, got {other:?}"),
        }
    }

    /// Sets the mtime of `f` back to `t`, so only content (and ctime) differ.
    fn set_mtime(f: &Path, t: std::time::SystemTime) {
        fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn regression_a_file_edited_after_it_was_keyed_is_never_streamed_under_the_old_key() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("motd");
        fs::write(&f, "old\n").unwrap();
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        let mut cache = DigestCache::default();
        let keyed = cache.keyed(d.path(), "motd", &W).unwrap();
        // The edit lands between the key and the stream: same size, same mtime.
        fs::write(&f, "new\n").unwrap();
        set_mtime(&f, mtime);
        assert_eq!(changed_path(stream(d.path(), "motd", &keyed)), f);
        // Reverted, the stream is what was keyed again.
        fs::write(&f, "old\n").unwrap();
        let tar = stream(d.path(), "motd", &keyed).expect("the keyed content streams");
        assert!(tar.windows(4).any(|w| w == b"old\n"));
    }

    #[test]
    fn a_change_in_a_keyed_tree_names_the_entry_that_changed() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("sub")).unwrap();
        fs::write(d.path().join("a"), "a").unwrap();
        fs::write(d.path().join("sub/b"), "b").unwrap();
        let keyed = keyed(d.path(), ".", &W).unwrap();
        stream(d.path(), ".", &keyed).expect("unchanged");

        fs::write(d.path().join("sub/b"), "B").unwrap();
        assert_eq!(
            changed_path(stream(d.path(), ".", &keyed)),
            d.path().join("sub/b")
        );
        fs::write(d.path().join("sub/b"), "b").unwrap();

        fs::write(d.path().join("sub/new"), "n").unwrap();
        assert_eq!(
            changed_path(stream(d.path(), ".", &keyed)),
            d.path().join("sub/new")
        );
        fs::remove_file(d.path().join("sub/new")).unwrap();

        fs::set_permissions(d.path().join("a"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            changed_path(stream(d.path(), ".", &keyed)),
            d.path().join("a")
        );
    }

    #[test]
    fn a_file_swapped_for_a_link_is_not_followed_into_the_stream() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("a"), "a").unwrap();
        fs::write(d.path().join("host-secret"), "s").unwrap();
        let keyed = keyed(d.path(), "src", &W).unwrap();
        fs::remove_file(src.join("a")).unwrap();
        symlink(d.path().join("host-secret"), src.join("a")).unwrap();
        assert_eq!(changed_path(stream(d.path(), "src", &keyed)), src.join("a"));
    }

    #[test]
    fn a_change_in_a_tree_the_stat_cache_served_names_the_changed_file() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("a"), "a").unwrap();
        fs::write(src.join("b"), "b").unwrap();
        let path = d.path().join("cache/digests.json");
        // A cache made long after the tree last changed: every record stands.
        let tree = walk(d.path(), "src", &W).unwrap();
        let entries = &tree.entries;
        let mut files = FileDigests::default();
        for e in entries.iter().filter(|e| e.meta.is_file()) {
            let sha = file_digest(&tree, e).unwrap();
            files
                .files
                .insert(e.path.display().to_string(), (file_print(&e.meta).0, sha));
        }
        files.dirty = true;
        let mut cache = DigestCache::load(&path);
        cache.entries.insert(
            src.display().to_string(),
            (fingerprint(entries).0, digest(d.path(), "src", &W).unwrap()),
        );
        cache.dirty = true;
        cache.files = Some(files);
        cache.save(&path).unwrap();

        let mut cache = DigestCache::load(&path);
        let keyed = cache.keyed(d.path(), "src", &W).unwrap();
        assert!(keyed.lines.is_none(), "served by the stat cache");
        fs::write(src.join("b"), "B").unwrap();
        assert_eq!(changed_path(stream(d.path(), "src", &keyed)), src.join("b"));

        // After such a failure the cache is not trusted with the source again.
        let mut cache = DigestCache::load(&path);
        cache.forget(d.path(), "src");
        cache.save(&path).unwrap();
        let mut cache = DigestCache::load(&path);
        cache.entries.insert(
            src.display().to_string(),
            (
                fingerprint(&walk(d.path(), "src", &W).unwrap().entries).0,
                "stale".into(),
            ),
        );
        cache.forget(d.path(), "src");
        assert_eq!(
            cache.keyed(d.path(), "src", &W).unwrap().digest,
            digest(d.path(), "src", &W).unwrap()
        );
        assert!(
            cache.files.as_ref().unwrap().files.is_empty(),
            "{:?}",
            cache.files
        );
    }
}

#[cfg(test)]
mod ignore_tests {
    //! `.kilnignore` and the files kiln reads itself, as the walk applies them.

    use super::*;

    /// A tree of `files` (a trailing `/` makes a directory) under a temp dir.
    fn tree(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f.trim_end_matches('/'));
            match f.ends_with('/') {
                true => fs::create_dir_all(&p).unwrap(),
                false => {
                    fs::create_dir_all(p.parent().unwrap()).unwrap();
                    fs::write(&p, f).unwrap();
                }
            }
        }
        d
    }

    fn left(ignore: &str) -> Withheld {
        Withheld::default()
            .ignoring(KilnIgnore::parse(ignore).unwrap())
            .never_copying("kiln.yaml")
            .never_copying(".kilnignore")
    }

    /// The paths a copy of `source` takes, under the source.
    fn walked(dir: &Path, source: &str, w: &Withheld) -> Vec<String> {
        let keyed = keyed(dir, source, w).unwrap();
        keyed
            .lines
            .unwrap()
            .into_iter()
            .map(|(rel, _)| rel)
            .filter(|r| !r.is_empty())
            .collect()
    }

    /// (tree, .kilnignore, source, what the copy takes).
    #[test]
    fn copies_leave_out_what_kilnignore_names() {
        let files = [
            "kiln.yaml",
            ".kilnignore",
            "a/keep",
            "a/other",
            "a/b/keep",
            "node_modules/x/index.js",
            "src/main.rs",
            "src/target/debug/out",
            "target/out",
            "x.log",
            "src/y.log",
            "d/sub/f",
            "e/",
        ];
        let rows: &[(&str, &str, &[&str])] = &[
            (
                "",
                ".",
                &[
                    "a",
                    "a/b",
                    "a/b/keep",
                    "a/keep",
                    "a/other",
                    "d",
                    "d/sub",
                    "d/sub/f",
                    "e",
                    "node_modules",
                    "node_modules/x",
                    "node_modules/x/index.js",
                    "src",
                    "src/main.rs",
                    "src/target",
                    "src/target/debug",
                    "src/target/debug/out",
                    "src/y.log",
                    "target",
                    "target/out",
                    "x.log",
                ],
            ),
            (
                "node_modules\ntarget\n*.log\na\nd\ne",
                ".",
                &[
                    "src",
                    "src/main.rs",
                    "src/target",
                    "src/target/debug",
                    "src/target/debug/out",
                    "src/y.log",
                ],
            ),
            (
                "**/target\n**/*.log\na\nd\ne\nnode_modules",
                ".",
                &["src", "src/main.rs"],
            ),
            (
                "*\n!src\n",
                ".",
                &[
                    "src",
                    "src/main.rs",
                    "src/target",
                    "src/target/debug",
                    "src/target/debug/out",
                    "src/y.log",
                ],
            ),
            // An exception under an excluded directory brings back its file
            // and the directory as its parent; `a/b` stays out (Docker does
            // not walk into it for `!a/**/keep`), as does `d`, whose
            // exception names nothing that exists.
            (
                "a\n!a/keep\n!a/**/keep\nd\n!d/missing\nsrc/*\n!src/main.rs\nnode_modules\ntarget\ne\nx.log",
                ".",
                &["a", "a/keep", "src", "src/main.rs"],
            ),
            // Paths are the root's, also when the copy is of a subdirectory.
            ("src/target\n*.log", "src", &["main.rs", "y.log"]),
            (
                "src/*.log",
                "src",
                &["main.rs", "target", "target/debug", "target/debug/out"],
            ),
        ];
        let d = tree(&files);
        for (ignore, source, want) in rows {
            assert_eq!(
                walked(d.path(), source, &left(ignore)),
                *want,
                "{ignore:?} copying {source:?}"
            );
        }
    }

    #[test]
    fn a_source_left_out_is_an_error_naming_the_line() {
        let d = tree(&["a/f", "b/keep", "kiln.yaml", "c"]);
        let w = left("# comment\na\nb\n!b/keep\nc\n");
        match keyed(d.path(), "a/f", &w) {
            Err(CopyError::Ignored { line: 2, rel, .. }) => assert_eq!(rel, "a/f"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            keyed(d.path(), "c", &w),
            Err(CopyError::Ignored { line: 5, .. })
        ));
        assert!(matches!(
            keyed(d.path(), "./kiln.yaml", &w),
            Err(CopyError::NeverCopied { .. })
        ));
        // An excluded directory whose exception lets something back is copied.
        assert_eq!(walked(d.path(), "b", &w), ["keep"]);
        let message = keyed(d.path(), "a", &w).unwrap_err().to_string();
        assert!(
            message.contains("line 2 of `.kilnignore`")
                && message.contains("hint: add an exception (`!a`)"),
            "{message}"
        );
    }

    #[test]
    fn an_ignored_file_is_neither_keyed_nor_streamed() {
        let d = tree(&["app/main", "app/secret.env", "app/cache/blob"]);
        let w = left("app/*.env\napp/cache\n");
        let k = keyed(d.path(), "app", &w).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let own = Ownership {
            uid: 0,
            gid: 0,
            file_mode: None,
        };
        append_to_tar(&mut tar, d.path(), "app", "/x", own, &w, &k).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut names = Vec::new();
        for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
            names.push(e.unwrap().path().unwrap().display().to_string());
        }
        let names: Vec<&str> = names.iter().map(|n| n.trim_end_matches('/')).collect();
        assert_eq!(names, ["x", "x/main"]);
        // Editing an ignored file changes no key.
        fs::write(d.path().join("app/secret.env"), "TOKEN=other").unwrap();
        fs::write(d.path().join("app/cache/blob"), "new").unwrap();
        assert_eq!(keyed(d.path(), "app", &w).unwrap().digest, k.digest);
        assert_ne!(
            keyed(d.path(), "app", &Withheld::default()).unwrap().digest,
            k.digest
        );
    }

    /// The digest caches key by path: a tree or file they know must still
    /// be read again when `.kilnignore` changes what the copy takes, and a
    /// file left out is never served into a digest.
    #[test]
    fn the_digest_caches_follow_kilnignore_edits() {
        let d = tree(&["src/a", "src/b"]);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for f in ["src/a", "src/b"] {
            let p = d.path().join(f);
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let path = d.path().join("cache/digests.json");
        let mut cache = DigestCache::load(&path);
        // Pretend every record was made long after the files last changed.
        let tree_all = walk(d.path(), "src", &Withheld::default()).unwrap();
        let mut files = FileDigests::default();
        for e in tree_all.entries.iter().filter(|e| e.meta.is_file()) {
            let sha = file_digest(&tree_all, e).unwrap();
            files
                .files
                .insert(e.path.display().to_string(), (file_print(&e.meta).0, sha));
        }
        cache.entries.insert(
            d.path().join("src").display().to_string(),
            (fingerprint(&tree_all.entries).0, "cached".into()),
        );
        cache.files = Some(files);
        let none = Withheld::default();
        assert_eq!(
            cache.digest(d.path(), "src", &none).unwrap(),
            "cached",
            "served from the cache"
        );
        let no_b = left("src/b");
        let fresh = digest(d.path(), "src", &no_b).unwrap();
        assert_eq!(
            cache.digest(d.path(), "src", &no_b).unwrap(),
            fresh,
            "the tree cache does not serve the set it recorded for another"
        );
        let b = d.path().join("src/b").display().to_string();
        let files = &cache.files.as_ref().unwrap().files;
        assert!(
            !files.contains_key(&b),
            "a file left out keeps no record: {files:?}"
        );
        // `b` changes while it is left out: no digest sees it, and lifting
        // the pattern reads its new bytes, not the per-file record of it.
        fs::write(d.path().join("src/b"), "B").unwrap();
        assert_eq!(cache.digest(d.path(), "src", &no_b).unwrap(), fresh);
        let all = digest(d.path(), "src", &none).unwrap();
        assert_eq!(cache.digest(d.path(), "src", &none).unwrap(), all);
        assert_ne!(all, fresh);
    }
}
