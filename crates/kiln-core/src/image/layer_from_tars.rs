//! `layer_from_tars`: an archive phase's tars (users, habitat, files, repos,
//! tools) turned into an image layer on the host, against the parent's file
//! system as [`RootFs`] shows it. This is what extracting the tars into a
//! container and reading back its writable layer would give, without the
//! container: every entry lands where extraction would put it (symlinked
//! parents followed, `/bin/x` becomes `/usr/bin/x`, also through the
//! directories and symlinks the phase's own earlier entries made), and each
//! directory it lands in is in the layer with the parent's own metadata, or
//! as root's `0755` when the parent lacks it (a layer that omits a parent
//! directory would get one with mode `0600`, hiding the parent's).
//!
//! A layer names each path once (`docker load` refuses one that names a path
//! twice), and the later of two entries for a path wins, as in extraction.
//! Directories are written once each, after everything else, with the
//! metadata extraction would leave them with: the last entry the tars give
//! for one, else the parent's (a tar may name a directory after something
//! was already put inside it: a file copied to `/opt/x/f`, then a directory
//! to `/opt/x`). Anything else named again is replaced, a directory with
//! everything the layer put below it. The layer is streamed straight into
//! its file; only when an entry replaced an earlier one is that file
//! compacted in place afterwards.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::image::layer::{Hashing, Layer, LayerOut, Watched};
use crate::image::rootfs::{Over, RootFs};

/// Writes a tar to the writer it is given: a phase's copies, streamed into
/// the layer through a pipe instead of stored first.
pub type Producer = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// One tar the phase extracts at `/`.
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    Stream(Producer),
}

/// The marker that makes a directory of a layer hide what lower layers have in it.
const OPAQUE: &str = ".wh..wh..opq";

/// Writes the layer of `sources` (extracted in order) over `rootfs` to `out`,
/// from its current position; on return `out` is positioned at the layer's end.
pub fn write_layer<O: LayerOut + ?Sized>(
    rootfs: &RootFs,
    sources: Vec<Source<'_>>,
    out: &mut O,
) -> io::Result<Layer> {
    let start = out.stream_position()?;
    let (layer, records, needs_compacting) = {
        let mut layer = LayerWriter {
            rootfs,
            tar: tar::Builder::new(Hashing::new(io::BufWriter::with_capacity(
                256 * 1024,
                &mut *out,
            ))),
            written: BTreeMap::new(),
            records: Vec::new(),
            opaque: HashSet::new(),
            compact: false,
        };
        for source in sources {
            match source {
                Source::Bytes(b) => layer.extract(b)?,
                Source::File(p) => layer.extract(io::BufReader::new(File::open(p)?))?,
                Source::Stream(produce) => layer.extract_stream(produce)?,
            }
        }
        layer.write_dirs()?;
        let entries = layer.records.iter().filter(|r| r.live).count();
        let written = layer.tar.into_inner()?.finish(entries)?;
        (written, layer.records, layer.compact)
    };
    if !needs_compacting {
        return Ok(layer);
    }
    compact(out, start, layer.size, &records, layer.entries)
}

/// What the layer holds at a path so far.
#[derive(Debug, Clone)]
enum Written {
    /// A directory, written at the end with this header.
    Dir(Box<tar::Header>),
    /// A symlink to this target, written as `record`.
    Symlink(String, usize),
    /// Anything else, written as `record`.
    Other(usize),
}

impl Written {
    fn record(&self) -> Option<usize> {
        match self {
            Written::Dir(_) => None,
            Written::Symlink(_, r) | Written::Other(r) => Some(*r),
        }
    }
}

/// One entry's bytes in the layer, from its first header to its data's end
/// (offsets from the layer's start).
#[derive(Debug)]
struct Record {
    start: u64,
    end: u64,
    /// False once a later entry replaced it.
    live: bool,
}

struct LayerWriter<'r, W: Write> {
    rootfs: &'r RootFs,
    tar: tar::Builder<Hashing<W>>,
    /// Every path in the layer (absolute, no trailing slash).
    written: BTreeMap<String, Written>,
    records: Vec<Record>,
    /// Directories this layer made opaque: the image's entries below are gone.
    opaque: HashSet<String>,
    /// Whether a record was replaced, so the file needs compacting.
    compact: bool,
}

impl<W: Write> LayerWriter<'_, W> {
    /// Extracts the tar `produce` writes, as it writes it.
    fn extract_stream(&mut self, produce: Producer) -> io::Result<()> {
        let (reader, writer) = io::pipe()?;
        std::thread::scope(|scope| {
            let producer = scope.spawn(move || {
                let mut pipe = Watched::new(writer);
                let produced = produce(&mut pipe);
                (produced, pipe.failed())
            });
            let extracted = {
                let mut reader = io::BufReader::with_capacity(256 * 1024, reader);
                // Read to the end after the archive's end marker too, so the
                // pipe breaks only when extraction failed.
                self.extract(&mut reader)
                    .and_then(|()| io::copy(&mut reader, &mut io::sink()).map(drop))
            };
            let (produced, pipe_broke) = producer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            match (produced, extracted) {
                // The pipe broke because extraction stopped (the layer could
                // not be written: a full disk; a bad entry): its error is the
                // cause, whatever the producer made of the broken pipe.
                (Err(_), Err(e)) if pipe_broke => Err(e),
                // Otherwise the producer's failure is the cause; a cut-off
                // archive its effect.
                (Err(e), _) => Err(e),
                (Ok(()), Err(e)) => Err(e),
                (Ok(()), Ok(())) => Ok(()),
            }
        })
    }

    fn extract<R: Read>(&mut self, source: R) -> io::Result<()> {
        let mut archive = tar::Archive::new(source);
        for entry in archive.entries()? {
            let mut entry = entry?;
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            // Archive metadata (a pax global header, as `git archive` writes),
            // not a file: extraction ignores it, and so does the layer.
            if kind == tar::EntryType::XGlobalHeader {
                continue;
            }
            let name = entry.path()?.to_string_lossy().into_owned();
            let Some(path) = self.place(&name)? else {
                continue;
            };
            self.parents(&path, header.mtime().unwrap_or(0))?;
            let rel = path.trim_start_matches('/').to_string();
            if kind.is_dir() {
                let mut opaque = false;
                match self.written.get(&path) {
                    // Extraction keeps the directory and sets this entry's
                    // metadata on it: the last entry for it wins.
                    Some(Written::Dir(_)) | None => {}
                    Some(_) => {
                        // A file of this layer replaced the image's directory
                        // here: that directory's entries stay gone.
                        self.replace(&path);
                        opaque = self.image_has_dir(&path)?;
                    }
                }
                header.set_size(0);
                self.written
                    .insert(path.clone(), Written::Dir(Box::new(header)));
                if opaque {
                    self.opaque.insert(path);
                }
                continue;
            }
            if self.written.contains_key(&path) {
                self.replace(&path);
            }
            let written = if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()?
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let target = match kind.is_hard_link() {
                    // A hard link names a path in the image: it moves as its target did.
                    true => self
                        .place(&target)?
                        .map(|t| t.trim_start_matches('/').to_string())
                        .unwrap_or(target),
                    false => target,
                };
                let record = self.append(|tar| tar.append_link(&mut header, &rel, &target))?;
                match kind.is_symlink() {
                    true => Written::Symlink(target, record),
                    false => Written::Other(record),
                }
            } else {
                let record = self.append(|tar| tar.append_data(&mut header, &rel, &mut entry))?;
                Written::Other(record)
            };
            self.written.insert(path, written);
        }
        Ok(())
    }

    /// Appends one entry with `write` and records where its bytes are.
    fn append(
        &mut self,
        write: impl FnOnce(&mut tar::Builder<Hashing<W>>) -> io::Result<()>,
    ) -> io::Result<usize> {
        let start = self.tar.get_ref().written();
        write(&mut self.tar)?;
        self.records.push(Record {
            start,
            end: self.tar.get_ref().written(),
            live: true,
        });
        Ok(self.records.len() - 1)
    }

    /// Drops what the layer holds at `path` and, for a directory, below it:
    /// a later entry takes its place.
    fn replace(&mut self, path: &str) {
        // `/a/b` sorts between `/a` and `/a-b`, so the entries below `/a`
        // are the range from `/a/` to `/a0` (`0` follows `/`).
        let below = self
            .written
            .range(format!("{path}/")..format!("{path}0"))
            .map(|(p, _)| p.clone());
        let gone: Vec<String> = std::iter::once(path.to_string()).chain(below).collect();
        for p in gone {
            if let Some(record) = self.written.remove(&p).and_then(|w| w.record()) {
                self.records[record].live = false;
                self.compact = true;
            }
            self.opaque.remove(&p);
        }
    }

    /// Whether the image below the layer has a directory at `path`.
    fn image_has_dir(&self, path: &str) -> io::Result<bool> {
        if self.hidden(path) {
            return Ok(false);
        }
        Ok(self.rootfs.lstat(path)?.is_some_and(|f| f.meta.is_dir()))
    }

    /// Whether `path` is below a directory this layer made opaque.
    fn hidden(&self, path: &str) -> bool {
        if self.opaque.is_empty() {
            return false;
        }
        let mut at = path;
        while let Some((parent, _)) = at.rsplit_once('/') {
            if parent.is_empty() {
                return false;
            }
            if self.opaque.contains(parent) {
                return true;
            }
            at = parent;
        }
        false
    }

    /// What the layer itself holds at `path`, for resolving later entries.
    fn over(&self, path: &str) -> Option<Over> {
        match self.written.get(path) {
            Some(Written::Dir(_)) => Some(Over::Dir),
            Some(Written::Symlink(t, _)) => Some(Over::Link(t.clone())),
            Some(Written::Other(_)) => Some(Over::NotDir),
            None if self.hidden(path) => Some(Over::Gone),
            None => None,
        }
    }

    /// Where an entry named `name` lands: absolute, parents resolved; `None`
    /// for the root itself.
    fn place(&self, name: &str) -> io::Result<Option<String>> {
        let trimmed = name.trim_start_matches("./").trim_matches('/');
        if trimmed.is_empty() || trimmed == "." {
            return Ok(None);
        }
        if trimmed.split('/').any(|p| p == "..") {
            return Err(io::Error::other(format!(
                "archive entry `{name}` climbs out of the image"
            )));
        }
        self.rootfs
            .place(&format!("/{trimmed}"), &|p| self.over(p))
            .map(Some)
    }

    /// Writes the layer's directories, once each, in path order (parents
    /// first), each an opaque one with its marker.
    fn write_dirs(&mut self) -> io::Result<()> {
        let dirs: Vec<(String, tar::Header)> = self
            .written
            .iter()
            .filter_map(|(p, w)| match w {
                Written::Dir(h) => Some((p.clone(), (**h).clone())),
                _ => None,
            })
            .collect();
        for (dir, mut header) in dirs {
            let rel = dir.trim_start_matches('/').to_string();
            self.append(|tar| tar.append_data(&mut header, format!("{rel}/"), io::empty()))?;
            if self.opaque.contains(&dir) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(0);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(header.mtime().unwrap_or(0));
                self.append(|tar| tar.append_data(&mut h, format!("{rel}/{OPAQUE}"), io::empty()))?;
            }
        }
        Ok(())
    }

    /// Puts every directory above `path` into the layer, once each.
    fn parents(&mut self, path: &str, mtime: u64) -> io::Result<()> {
        let mut dir = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            dir.push('/');
            dir.push_str(part);
            if self.written.contains_key(&dir) {
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            let image = match self.hidden(&dir) {
                true => None,
                false => self.rootfs.lstat(&dir)?,
            };
            match image {
                Some(found) if found.meta.is_dir() => {
                    let m = &found.meta;
                    h.set_mode(m.mode() & 0o7777);
                    h.set_uid(u64::from(m.uid()));
                    h.set_gid(u64::from(m.gid()));
                    h.set_mtime(m.mtime().max(0) as u64);
                }
                // Missing (or replaced by this layer): made as extraction makes it.
                _ => {
                    h.set_mode(0o755);
                    h.set_uid(0);
                    h.set_gid(0);
                    h.set_mtime(mtime);
                }
            }
            self.written.insert(dir.clone(), Written::Dir(Box::new(h)));
        }
        Ok(())
    }
}

/// Rewrites the layer in `file` (at `start`, `size` bytes) without its
/// replaced records, rehashing it; leaves `file` positioned at the new end.
/// Records only ever move towards the start, so the copy can run in place.
fn compact<O: LayerOut + ?Sized>(
    file: &mut O,
    start: u64,
    size: u64,
    records: &[Record],
    entries: usize,
) -> io::Result<Layer> {
    let mut hash = Sha256::new();
    let mut to = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let tail = records.last().map_or(0, |r| r.end);
    let spans = records
        .iter()
        .filter(|r| r.live)
        .map(|r| (r.start, r.end))
        // The end-of-archive blocks.
        .chain(std::iter::once((tail, size)));
    for (from, end) in spans {
        let mut pos = from;
        while pos < end {
            let n = buf.len().min((end - pos) as usize);
            file.read_exact_at(&mut buf[..n], start + pos)?;
            file.write_all_at(&buf[..n], start + to)?;
            hash.update(&buf[..n]);
            pos += n as u64;
            to += n as u64;
        }
    }
    file.set_len(start + to)?;
    file.seek(io::SeekFrom::Start(start + to))?;
    Ok(Layer {
        diff_id: format!("sha256:{}", hex::encode(hash.finalize())),
        size: to,
        entries,
    })
}

/// A tar of `path` in `rootfs` in the form the engine's archive endpoint
/// gives (entries named from the path's last component: `skel`,
/// `skel/.bashrc`); `None` when nothing is there.
pub fn archive_of(rootfs: &RootFs, path: &str) -> io::Result<Option<Vec<u8>>> {
    let Some(found) = rootfs.follow(path)? else {
        return Ok(None);
    };
    let base = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string();
    let resolved = rootfs.resolve_parents(path)?;
    let mut tar = tar::Builder::new(Vec::new());
    let mut stack = vec![(resolved, base, found)];
    while let Some((abs, name, found)) = stack.pop() {
        let m = &found.meta;
        let mut h = tar::Header::new_gnu();
        h.set_mode(m.mode() & 0o7777);
        h.set_uid(u64::from(m.uid()));
        h.set_gid(u64::from(m.gid()));
        h.set_mtime(m.mtime().max(0) as u64);
        let ft = m.file_type();
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            tar.append_data(&mut h, format!("{name}/"), io::empty())?;
            let children = rootfs.read_dir(&abs)?.unwrap_or_default();
            for child in children.into_iter().rev() {
                let child_abs = format!("{}/{child}", abs.trim_end_matches('/'));
                if let Some(f) = rootfs.lstat(&child_abs)? {
                    stack.push((child_abs, format!("{name}/{child}"), f));
                }
            }
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            let target = std::fs::read_link(&found.host)?;
            tar.append_link(&mut h, &name, target)?;
        } else if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(m.len());
            tar.append_data(&mut h, &name, std::fs::File::open(&found.host)?)?;
        }
    }
    tar.into_inner().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    struct Stack {
        _dir: tempfile::TempDir,
        layers: Vec<PathBuf>,
    }

    fn stack() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let layers: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("l{i}"))).collect();
        for l in &layers {
            fs::create_dir(l).unwrap();
        }
        Stack { _dir: dir, layers }
    }

    fn tar_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, content) in entries {
            let mut h = tar::Header::new_gnu();
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    h.set_uid(1000);
                    h.set_gid(1000);
                    tar.append_data(&mut h, name, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o750);
                    h.set_uid(0);
                    h.set_gid(0);
                    tar.append_data(&mut h, format!("{name}/"), io::empty())
                        .unwrap();
                }
            }
        }
        tar.into_inner().unwrap()
    }

    /// The layer of `sources` over `rootfs` and its bytes, written after a
    /// 512-byte prefix as in an image archive (which must stay untouched).
    fn write(rootfs: &RootFs, sources: Vec<Source<'_>>) -> io::Result<(Layer, Vec<u8>)> {
        let mut file = tempfile::tempfile()?;
        file.write_all(&[7u8; 512])?;
        let layer = write_layer(rootfs, sources, &mut file)?;
        assert_eq!(file.stream_position()?, 512 + layer.size);
        let mut bytes = Vec::new();
        file.seek(io::SeekFrom::Start(0))?;
        file.read_to_end(&mut bytes)?;
        assert_eq!(&bytes[..512], &[7u8; 512][..]);
        let bytes = bytes.split_off(512);
        assert_eq!(bytes.len() as u64, layer.size);
        assert_eq!(
            layer.diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
        );
        Ok((layer, bytes))
    }

    /// (name, mode, uid) of every entry.
    fn listing(layer: &[u8]) -> Vec<(String, u32, u64)> {
        let mut ar = tar::Archive::new(layer);
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap() & 0o7777,
                    h.uid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn parents_come_once_with_the_images_metadata_or_as_root_0755() {
        let s = stack();
        fs::create_dir_all(s.layers[1].join("work")).unwrap();
        fs::set_permissions(s.layers[1].join("work"), fs::Permissions::from_mode(0o1777)).unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_of(&[("work/app/a.txt", Some("a")), ("work/app/b.txt", Some("b"))]);
        let (layer, out) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        assert_eq!(
            listing(&out),
            [
                ("work/app/a.txt".to_string(), 0o644, 1000),
                ("work/app/b.txt".to_string(), 0o644, 1000),
                ("work/".to_string(), 0o1777, 0),
                ("work/app/".to_string(), 0o755, 0),
            ]
        );
        assert_eq!(layer.entries, 4);
        assert_eq!(layer.size, out.len() as u64);
    }

    #[test]
    fn entries_follow_symlinked_parents_and_keep_their_own_directories() {
        let s = stack();
        fs::create_dir_all(s.layers[1].join("usr/bin")).unwrap();
        symlink("usr/bin", s.layers[1].join("bin")).unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_of(&[
            ("opt/tools", None),
            ("bin/jq", Some("#!")),
            ("opt/tools/x", Some("x")),
        ]);
        let (_, out) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        let names: Vec<String> = listing(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                "usr/bin/jq",
                "opt/tools/x",
                "opt/",
                "opt/tools/",
                "usr/",
                "usr/bin/",
            ]
        );
        let tools = listing(&out)
            .into_iter()
            .find(|e| e.0 == "opt/tools/")
            .unwrap();
        assert_eq!(
            tools.1, 0o750,
            "a directory of the phase keeps its own mode"
        );
    }

    /// Bug: a directory named after something was put inside it (a file
    /// copied to `/opt/x/f`, then a directory to `/opt/x`) was in the layer
    /// twice, which the engine refuses: "duplicates of file paths not
    /// supported".
    #[test]
    fn regression_a_directory_named_twice_is_in_the_layer_once_as_named_last() {
        let s = stack();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let first = tar_of(&[("opt/x/f", Some("f"))]);
        let second = tar_of(&[("opt/x", None), ("opt/x", None)]);
        let sources = vec![Source::Bytes(&first), Source::Bytes(&second)];
        let (layer, out) = write(&rootfs, sources).unwrap();
        assert_eq!(
            listing(&out),
            [
                ("opt/x/f".to_string(), 0o644, 1000),
                ("opt/".to_string(), 0o755, 0),
                ("opt/x/".to_string(), 0o750, 0),
            ]
        );
        assert_eq!(layer.entries, 3);
    }

    #[test]
    fn a_streamed_tar_gives_the_same_layer_and_its_errors() {
        let s = stack();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_of(&[("opt/a", Some("a")), ("opt/b", Some("bb"))]);
        let (_, direct) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        let copy = tar.clone();
        let produce: Producer = Box::new(move |w| w.write_all(&copy));
        let (_, streamed) = write(&rootfs, vec![Source::Stream(produce)]).unwrap();
        assert_eq!(direct, streamed);
        let failing: Producer = Box::new(|w| {
            w.write_all(&[0u8; 100])?;
            Err(io::Error::other("source vanished"))
        });
        let err = write(&rootfs, vec![Source::Stream(failing)]).unwrap_err();
        assert_eq!(err.to_string(), "source vanished");
    }

    /// A disk that holds `room` bytes, then fails as a full one does.
    struct FullDisk {
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(28));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Seek for FullDisk {
        fn seek(&mut self, _: io::SeekFrom) -> io::Result<u64> {
            Ok(0)
        }
    }

    impl LayerOut for FullDisk {
        fn read_exact_at(&mut self, _: &mut [u8], _: u64) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(28))
        }

        fn write_all_at(&mut self, _: &[u8], _: u64) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(28))
        }

        fn set_len(&mut self, _: u64) -> io::Result<()> {
            Err(io::Error::from_raw_os_error(28))
        }
    }

    /// Bug: a full disk under a streamed copy was reported as "Broken pipe":
    /// the layer's writer failed with "no space left", the reader stopped,
    /// and the producer's write into the closed pipe (wrapped in its own
    /// error, as the files phase wraps it) was taken for the cause.
    #[test]
    fn regression_a_full_disk_under_a_streamed_copy_is_reported_as_such() {
        let s = stack();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let big = vec![7u8; 4 << 20];
        let produce: Producer = Box::new(move |out| {
            let mut tar = tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, out));
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(big.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, "opt/big", &big[..])
                .map_err(|e| io::Error::other(format!("cannot read `/src/big`: {e}")))?;
            tar.into_inner()?.flush()
        });
        let mut disk = FullDisk { room: 64 << 10 };
        let err = write_layer(&rootfs, vec![Source::Stream(produce)], &mut disk).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28), "{err}");
        assert!(!err.to_string().contains("Broken pipe"), "{err}");
    }

    #[test]
    fn an_entry_that_climbs_out_is_refused() {
        let s = stack();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(1);
        // `append_data` refuses `..`; write the name into the header directly.
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_cksum();
        tar.append(&h, &b"x"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        assert!(write(&rootfs, vec![Source::Bytes(&tar)]).is_err());
    }

    /// A tar of `entries`: `(name, what)` where `what` is `file:CONTENT`,
    /// `dir:MODE` or `link:TARGET`; owned by uid 1000 unless `dir` names
    /// `MODE:UID`.
    fn tar_from(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, what) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(1000);
            h.set_gid(1000);
            let (kind, arg) = what.split_once(':').unwrap();
            match kind {
                "file" => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(arg.len() as u64);
                    h.set_mode(0o644);
                    tar.append_data(&mut h, name, arg.as_bytes()).unwrap();
                }
                "dir" => {
                    let (mode, uid) = arg.split_once(':').unwrap_or((arg, "1000"));
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(u32::from_str_radix(mode, 8).unwrap());
                    h.set_uid(uid.parse().unwrap());
                    tar.append_data(&mut h, format!("{name}/"), io::empty())
                        .unwrap();
                }
                _ => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    tar.append_link(&mut h, name, arg).unwrap();
                }
            }
        }
        tar.into_inner().unwrap()
    }

    /// Every entry as `name mode uid [content or target]`.
    fn entries(layer: &[u8]) -> Vec<String> {
        let mut ar = tar::Archive::new(layer);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut data = String::new();
                e.read_to_string(&mut data).unwrap();
                let link = e.link_name().unwrap().map(|l| l.display().to_string());
                format!(
                    "{} {:o} {} {}",
                    e.path().unwrap().display(),
                    h.mode().unwrap() & 0o7777,
                    h.uid().unwrap(),
                    link.unwrap_or(data)
                )
                .trim_end()
                .to_string()
            })
            .collect()
    }

    #[test]
    fn a_path_is_named_once_and_the_later_entry_wins() {
        let s = stack();
        fs::create_dir_all(s.layers[1].join("work")).unwrap();
        fs::set_permissions(s.layers[1].join("work"), fs::Permissions::from_mode(0o700)).unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let first = tar_from(&[
            ("work/a/b", "dir:755:0"),
            ("work", "dir:755:0"),
            ("opt/app", "dir:755"),
            ("opt/app/same", "file:one"),
            ("opt/app/dir", "dir:700"),
            ("opt/app/dir/x", "file:x"),
        ]);
        let second = tar_from(&[
            ("work/a", "dir:750:0"),
            ("opt/app/same", "file:two"),
            ("opt/app/dir", "file:now a file"),
            ("opt/app", "dir:755"),
        ]);
        let (layer, out) =
            write(&rootfs, vec![Source::Bytes(&first), Source::Bytes(&second)]).unwrap();
        assert_eq!(
            entries(&out),
            [
                "opt/app/same 644 1000 two",
                "opt/app/dir 644 1000 now a file",
                "opt/ 755 0",
                "opt/app/ 755 1000",
                "work/ 755 0",
                "work/a/ 750 0",
                "work/a/b/ 755 0",
            ]
        );
        assert_eq!(layer.entries, 7);
    }

    #[test]
    fn replacing_a_directory_drops_what_is_below_it_and_nothing_beside_it() {
        let s = stack();
        fs::create_dir_all(s.layers[1].join("opt/d")).unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_from(&[
            ("opt/a", "dir:755"),
            ("opt/a/inner", "file:i"),
            ("opt/a-b", "file:beside"),
            ("opt/a0", "file:beside too"),
            ("opt/a", "file:now a file"),
            // Opaque (a file replaced the image's directory), then replaced:
            // its marker goes with it.
            ("opt/d", "file:f"),
            ("opt/d", "dir:755"),
            ("opt/d", "file:g"),
        ]);
        let (_, out) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        assert_eq!(
            entries(&out),
            [
                "opt/a-b 644 1000 beside",
                "opt/a0 644 1000 beside too",
                "opt/a 644 1000 now a file",
                "opt/d 644 1000 g",
                "opt/ 755 0",
            ]
        );
    }

    #[test]
    fn a_layer_without_repeats_is_written_once_and_never_rewritten() {
        let s = stack();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_from(&[
            ("opt/a", "dir:755"),
            ("opt/a", "dir:755"),
            ("opt/a/f", "file:f"),
        ]);
        let (_, out) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        // The same directory twice with the same metadata is one entry.
        assert_eq!(
            entries(&out),
            ["opt/a/f 644 1000 f", "opt/ 755 0", "opt/a/ 755 1000"]
        );
    }

    #[test]
    fn entries_go_through_the_links_and_directories_the_layer_made() {
        let s = stack();
        fs::create_dir_all(s.layers[1].join("srv/data")).unwrap();
        fs::write(s.layers[1].join("srv/data/kept"), "k").unwrap();
        symlink("/srv/data", s.layers[1].join("data-link")).unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_from(&[
            // A directory replaces the image's symlink: its files go in it.
            ("data-link", "dir:755"),
            ("data-link/a", "file:a"),
            // A symlink of this layer leads the entries after it.
            ("opt/to-srv", "link:/srv"),
            ("opt/to-srv/through", "file:t"),
        ]);
        let (_, out) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        assert_eq!(
            entries(&out),
            [
                "data-link/a 644 1000 a",
                "opt/to-srv 777 1000 /srv",
                "srv/through 644 1000 t",
                "data-link/ 755 1000",
                "opt/ 755 0",
                "srv/ 755 0",
            ]
        );
    }

    #[test]
    fn a_file_under_a_dangling_symlink_is_refused_naming_the_link() {
        let s = stack();
        symlink("/gone/away", s.layers[1].join("nowhere")).unwrap();
        fs::create_dir_all(s.layers[1].join("srv")).unwrap();
        symlink("/srv", s.layers[1].join("srv-link")).unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_from(&[("nowhere/f", "file:f")]);
        let err = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`/nowhere` in the image is a symlink to `/gone/away`, which does not exist"
        );
        // Missing directories below a link that leads somewhere are made.
        let tar = tar_from(&[("srv-link/new/f", "file:f")]);
        let (_, out) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        assert_eq!(
            entries(&out),
            ["srv/new/f 644 1000 f", "srv/ 755 0", "srv/new/ 755 0"]
        );
    }

    #[test]
    fn a_directory_made_again_where_a_file_replaced_the_images_is_opaque() {
        let s = stack();
        fs::create_dir_all(s.layers[1].join("opt/d")).unwrap();
        fs::write(s.layers[1].join("opt/d/old"), "old").unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_from(&[
            ("opt/d", "file:f"),
            ("opt/d", "dir:755"),
            ("opt/d/new", "file:n"),
        ]);
        let (_, out) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        assert_eq!(
            entries(&out),
            [
                "opt/d/new 644 1000 n",
                "opt/ 755 0",
                "opt/d/ 755 1000",
                "opt/d/.wh..wh..opq 644 0",
            ]
        );
    }

    #[test]
    fn archive_of_a_merged_directory_names_entries_from_its_base() {
        let s = stack();
        fs::create_dir_all(s.layers[1].join("etc/skel")).unwrap();
        fs::write(s.layers[1].join("etc/skel/.bashrc"), "lower").unwrap();
        fs::create_dir_all(s.layers[0].join("etc/skel")).unwrap();
        fs::write(s.layers[0].join("etc/skel/.profile"), "upper").unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = archive_of(&rootfs, "/etc/skel").unwrap().unwrap();
        let names: Vec<String> = listing(&tar).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["skel/", "skel/.bashrc", "skel/.profile"]);
        assert!(archive_of(&rootfs, "/etc/none").unwrap().is_none());
    }
}
