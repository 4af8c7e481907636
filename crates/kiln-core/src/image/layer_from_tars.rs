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
//! twice), and the later of two entries for a path wins, as in extraction: a
//! directory named again takes the later entry's mode and owner; anything
//! else is replaced, a directory with everything the layer put below it. The
//! layer is streamed straight into its file; only when an entry replaced an
//! earlier one is that file compacted in place afterwards.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::image::layer::{Hashing, Layer};
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
pub fn write_layer(rootfs: &RootFs, sources: Vec<Source<'_>>, out: &mut File) -> io::Result<Layer> {
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
        let entries = layer.records.iter().filter(|r| r.live).count();
        let written = layer.tar.into_inner()?.finish(entries)?;
        (written, layer.records, layer.compact)
    };
    if !needs_compacting {
        return Ok(layer);
    }
    compact(out, start, layer.size, &records, layer.entries)
}

/// The mode, owner and modification time of a directory entry.
#[derive(Debug, Clone, Copy)]
struct DirMeta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl DirMeta {
    fn of(h: &tar::Header) -> DirMeta {
        DirMeta {
            mode: h.mode().unwrap_or(0o755) & 0o7777,
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mtime: h.mtime().unwrap_or(0),
        }
    }

    /// Times aside: extraction dates a directory by its last change anyway.
    fn same(&self, other: &DirMeta) -> bool {
        (self.mode, self.uid, self.gid) == (other.mode, other.uid, other.gid)
    }
}

/// What the layer holds at a path so far, and which record wrote it.
#[derive(Debug, Clone)]
struct Written {
    kind: Kind,
    record: usize,
}

#[derive(Debug, Clone)]
enum Kind {
    Dir(DirMeta),
    Symlink(String),
    Other,
}

/// One entry's bytes in the layer, from its first header to its data's end
/// (offsets from the layer's start).
#[derive(Debug)]
struct Record {
    start: u64,
    end: u64,
    /// False once a later entry replaced it.
    live: bool,
    /// A directory named again: the metadata its header ends up with.
    patch: Option<DirMeta>,
}

struct LayerWriter<'r, W: Write> {
    rootfs: &'r RootFs,
    tar: tar::Builder<Hashing<W>>,
    /// Every path in the layer (absolute, no trailing slash).
    written: BTreeMap<String, Written>,
    records: Vec<Record>,
    /// Directories this layer made opaque: the image's entries below are gone.
    opaque: HashSet<String>,
    /// Whether a record was replaced or patched, so the file needs compacting.
    compact: bool,
}

impl<W: Write> LayerWriter<'_, W> {
    /// Extracts the tar `produce` writes, as it writes it.
    fn extract_stream(&mut self, produce: Producer) -> io::Result<()> {
        let (reader, mut writer) = io::pipe()?;
        std::thread::scope(|scope| {
            let producer = scope.spawn(move || produce(&mut writer));
            let extracted = self.extract(io::BufReader::with_capacity(256 * 1024, reader));
            let produced = producer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            match (produced, extracted) {
                // The producer's failure is the cause; a cut-off archive its effect.
                (Err(e), _) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
                (_, Err(e)) => Err(e),
                (Err(e), Ok(())) => Err(e),
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
                let meta = DirMeta::of(&header);
                let mut opaque = false;
                match self.written.get(&path) {
                    Some(Written {
                        kind: Kind::Dir(had),
                        record,
                    }) => {
                        // Extraction keeps the directory and applies this
                        // entry's metadata to it.
                        let record = *record;
                        if !had.same(&meta) {
                            self.records[record].patch = Some(meta);
                            self.compact = true;
                            self.written.insert(
                                path,
                                Written {
                                    kind: Kind::Dir(meta),
                                    record,
                                },
                            );
                        }
                        continue;
                    }
                    Some(_) => {
                        // A file of this layer replaced the image's directory
                        // here: that directory's entries stay gone.
                        self.replace(&path);
                        opaque = self.image_has_dir(&path)?;
                    }
                    None => {}
                }
                let record = self
                    .append(|tar| tar.append_data(&mut header, format!("{rel}/"), io::empty()))?;
                self.written.insert(
                    path.clone(),
                    Written {
                        kind: Kind::Dir(meta),
                        record,
                    },
                );
                if opaque {
                    let mut h = tar::Header::new_gnu();
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(0);
                    h.set_mode(0o644);
                    h.set_uid(0);
                    h.set_gid(0);
                    h.set_mtime(meta.mtime);
                    let record = self.append(|tar| {
                        tar.append_data(&mut h, format!("{rel}/{OPAQUE}"), io::empty())
                    })?;
                    // Recorded like any entry, so replacing the directory drops it too.
                    let marker = Written {
                        kind: Kind::Other,
                        record,
                    };
                    self.written.insert(format!("{path}/{OPAQUE}"), marker);
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
                let kind = match kind.is_symlink() {
                    true => Kind::Symlink(target),
                    false => Kind::Other,
                };
                Written { kind, record }
            } else {
                let record = self.append(|tar| tar.append_data(&mut header, &rel, &mut entry))?;
                Written {
                    kind: Kind::Other,
                    record,
                }
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
            patch: None,
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
            if let Some(w) = self.written.remove(&p) {
                self.records[w.record].live = false;
            }
            self.opaque.remove(&p);
        }
        self.compact = true;
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
            Some(Written {
                kind: Kind::Dir(_), ..
            }) => Some(Over::Dir),
            Some(Written {
                kind: Kind::Symlink(t),
                ..
            }) => Some(Over::Link(t.clone())),
            Some(_) => Some(Over::NotDir),
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
            let meta = DirMeta::of(&h);
            let rel = format!("{}/", dir.trim_start_matches('/'));
            let record = self.append(|tar| tar.append_data(&mut h, rel, io::empty()))?;
            self.written.insert(
                dir.clone(),
                Written {
                    kind: Kind::Dir(meta),
                    record,
                },
            );
        }
        Ok(())
    }
}

/// Rewrites the layer in `file` (at `start`, `size` bytes) without its
/// replaced records and with its patched directory headers, rehashing it;
/// leaves `file` positioned at the new end. Records only ever move towards
/// the start, so the copy can run in place.
fn compact(
    file: &mut File,
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
        .map(|r| (r.start, r.end, r.patch))
        // The end-of-archive blocks.
        .chain(std::iter::once((tail, size, None)));
    for (from, end, patch) in spans {
        if let Some(meta) = patch {
            // A directory's record is its header (after any long-name
            // entries): small, and patched whole.
            let mut record = vec![0u8; (end - from) as usize];
            file.read_exact_at(&mut record, start + from)?;
            let at = record.len() - 512;
            let mut h = tar::Header::new_old();
            h.as_mut_bytes().copy_from_slice(&record[at..]);
            h.set_mode(meta.mode);
            h.set_uid(meta.uid);
            h.set_gid(meta.gid);
            h.set_mtime(meta.mtime);
            h.set_cksum();
            record[at..].copy_from_slice(h.as_bytes());
            file.write_all_at(&record, start + to)?;
            hash.update(&record);
            to += record.len() as u64;
            continue;
        }
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
    fn parents_come_first_with_the_images_metadata_or_as_root_0755() {
        let s = stack();
        fs::create_dir_all(s.layers[1].join("work")).unwrap();
        fs::set_permissions(s.layers[1].join("work"), fs::Permissions::from_mode(0o1777)).unwrap();
        let rootfs = RootFs::open(s.layers.clone()).unwrap();
        let tar = tar_of(&[("work/app/a.txt", Some("a")), ("work/app/b.txt", Some("b"))]);
        let (layer, out) = write(&rootfs, vec![Source::Bytes(&tar)]).unwrap();
        assert_eq!(
            listing(&out),
            [
                ("work/".to_string(), 0o1777, 0),
                ("work/app/".to_string(), 0o755, 0),
                ("work/app/a.txt".to_string(), 0o644, 1000),
                ("work/app/b.txt".to_string(), 0o644, 1000),
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
                "opt/",
                "opt/tools/",
                "usr/",
                "usr/bin/",
                "usr/bin/jq",
                "opt/tools/x"
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
                "work/ 755 0",
                "work/a/ 750 0",
                "work/a/b/ 755 0",
                "opt/ 755 0",
                "opt/app/ 755 1000",
                "opt/app/same 644 1000 two",
                "opt/app/dir 644 1000 now a file",
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
                "opt/ 755 0",
                "opt/a-b 644 1000 beside",
                "opt/a0 644 1000 beside too",
                "opt/a 644 1000 now a file",
                "opt/d 644 1000 g",
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
            ["opt/ 755 0", "opt/a/ 755 1000", "opt/a/f 644 1000 f"]
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
                "data-link/ 755 1000",
                "data-link/a 644 1000 a",
                "opt/ 755 0",
                "opt/to-srv 777 1000 /srv",
                "srv/ 755 0",
                "srv/through 644 1000 t",
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
            ["srv/ 755 0", "srv/new/ 755 0", "srv/new/f 644 1000 f"]
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
                "opt/ 755 0",
                "opt/d/ 755 1000",
                "opt/d/.wh..wh..opq 644 0",
                "opt/d/new 644 1000 n",
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
