//! `layer_from_tars`: an archive phase's tars (users, habitat, files, repos,
//! tools) turned into an image layer on the host, against the parent's file
//! system as [`RootFs`] shows it. This is what extracting the tars into a
//! container and reading back its writable layer would give, without the
//! container: every entry lands where extraction would put it (symlinked
//! parents followed, `/bin/x` becomes `/usr/bin/x`), and each directory it
//! lands in is in the layer with the parent's own metadata, or as root's
//! `0755` when the parent lacks it (a layer that omits a parent directory
//! would get one with mode `0600`, hiding the parent's).
//!
//! Directories are written once each, after everything else, with the
//! metadata extraction would leave them with: the last entry the tars give
//! for one, else the parent's. A tar may name a directory after something
//! was already put inside it (a file copied to `/opt/x/f`, then a directory
//! to `/opt/x`); extraction then sets its metadata, and the engine refuses
//! a layer that names a path twice.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::image::layer::{Hashing, Layer, Watched};
use crate::image::rootfs::RootFs;

/// Writes a tar to the writer it is given: a phase's copies, streamed into
/// the layer through a pipe instead of stored first.
pub type Producer = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// One tar the phase extracts at `/`.
pub enum Source<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
    Stream(Producer),
}

/// Writes the layer of `sources` (extracted in order) over `rootfs` to `out`.
pub fn write_layer(
    rootfs: &RootFs,
    sources: Vec<Source<'_>>,
    out: &mut dyn Write,
) -> io::Result<Layer> {
    let mut hashing = Hashing::new(out);
    let mut entries = 0;
    {
        let mut layer = LayerWriter {
            rootfs,
            tar: tar::Builder::new(&mut hashing),
            dirs: BTreeMap::new(),
            entries: 0,
        };
        for source in sources {
            match source {
                Source::Bytes(b) => layer.extract(b)?,
                Source::File(p) => layer.extract(io::BufReader::new(std::fs::File::open(p)?))?,
                Source::Stream(produce) => layer.extract_stream(produce)?,
            }
        }
        layer.write_dirs()?;
        entries += layer.entries;
        layer.tar.finish()?;
    }
    hashing.finish(entries)
}

struct LayerWriter<'r, W: Write> {
    rootfs: &'r RootFs,
    tar: tar::Builder<W>,
    /// The layer's directories (absolute, no trailing slash) and the header
    /// each gets, written at the end: in path order, so parents first.
    dirs: BTreeMap<String, tar::Header>,
    entries: usize,
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
                // Extraction sets an existing directory's metadata: the last
                // entry for it wins.
                header.set_size(0);
                self.dirs.insert(path, header);
                continue;
            } else if kind.is_symlink() || kind.is_hard_link() {
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
                self.tar.append_link(&mut header, &rel, target)?;
            } else {
                self.tar.append_data(&mut header, &rel, &mut entry)?;
            }
            self.entries += 1;
        }
        Ok(())
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
            .resolve_parents(&format!("/{trimmed}"))
            .map(Some)
    }

    /// Writes the layer's directories, once each.
    fn write_dirs(&mut self) -> io::Result<()> {
        for (dir, mut header) in std::mem::take(&mut self.dirs) {
            let rel = format!("{}/", dir.trim_start_matches('/'));
            self.tar.append_data(&mut header, rel, io::empty())?;
            self.entries += 1;
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
            if self.dirs.contains_key(&dir) {
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            match self.rootfs.lstat(&dir)? {
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
            self.dirs.insert(dir.clone(), h);
        }
        Ok(())
    }
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
        let mut out = Vec::new();
        let layer = write_layer(&rootfs, vec![Source::Bytes(&tar)], &mut out).unwrap();
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
        let mut out = Vec::new();
        write_layer(&rootfs, vec![Source::Bytes(&tar)], &mut out).unwrap();
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
        let mut out = Vec::new();
        let sources = vec![Source::Bytes(&first), Source::Bytes(&second)];
        let layer = write_layer(&rootfs, sources, &mut out).unwrap();
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
        let mut direct = Vec::new();
        write_layer(&rootfs, vec![Source::Bytes(&tar)], &mut direct).unwrap();
        let copy = tar.clone();
        let produce: Producer = Box::new(move |w| w.write_all(&copy));
        let mut streamed = Vec::new();
        write_layer(&rootfs, vec![Source::Stream(produce)], &mut streamed).unwrap();
        assert_eq!(direct, streamed);
        let failing: Producer = Box::new(|w| {
            w.write_all(&[0u8; 100])?;
            Err(io::Error::other("source vanished"))
        });
        let err = write_layer(&rootfs, vec![Source::Stream(failing)], &mut Vec::new()).unwrap_err();
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
        let mut out = Vec::new();
        assert!(write_layer(&rootfs, vec![Source::Bytes(&tar)], &mut out).is_err());
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
