//! `layer_from_upper`: a container's changes as an image layer, read from its
//! writable layer's directory on the host (the overlay "upper" dir) instead of
//! through `docker commit`. On drivers whose commit walks the whole image to
//! find what changed (fuse-overlayfs: seconds per snapshot), reading the upper
//! dir costs only the size of the change. Whiteouts and opaque directories are
//! converted from overlay's on-disk form to the image layer form (`.wh.`).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::image::layer::{Hashing, Layer};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Where overlay implementations mark a directory opaque.
const OPAQUE_XATTRS: [&str; 3] = [
    "trusted.overlay.opaque",
    "user.overlay.opaque",
    "user.fuseoverlayfs.opaque",
];

/// Writes the contents of `upper` as a layer tar to `out`.
pub fn write_layer<W: Write>(upper: &Path, out: W) -> io::Result<Layer> {
    let mut hashing = Hashing::new(out);
    let mut tar = tar::Builder::new(&mut hashing);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    // Overlays may mark a directory opaque twice (an xattr and a marker file).
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut entries = 0;
    let mut stack: Vec<(PathBuf, String)> = vec![(upper.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut children: Vec<_> = fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
        children.sort_by_key(|e| e.file_name());
        // Directories are pushed in reverse so they are walked in name order.
        let mut subdirs = Vec::new();
        for child in children {
            let name = child.file_name().to_string_lossy().into_owned();
            // Docker leaves a whiteout of its pivot_root scratch dir at the top.
            if rel.is_empty() && name.starts_with(".pivot_root") {
                continue;
            }
            let path = child.path();
            let meta = fs::symlink_metadata(&path)?;
            let name_in_layer = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            entries += append(
                &mut tar,
                &path,
                &meta,
                &name_in_layer,
                &mut links,
                &mut seen,
            )?;
            if meta.is_dir() {
                subdirs.push((path, name_in_layer));
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    tar.finish()?;
    drop(tar);
    hashing.finish(entries)
}

fn header(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(u64::from(meta.uid()));
    h.set_gid(u64::from(meta.gid()));
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// The header of a whiteout or opaque marker: an empty regular file.
fn marker() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_size(0);
    h
}

/// Appends one entry; returns how many tar entries it wrote.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    meta: &fs::Metadata,
    name: &str,
    links: &mut HashMap<(u64, u64), String>,
    seen: &mut std::collections::HashSet<String>,
) -> io::Result<usize> {
    let ft = meta.file_type();
    let is_marker = name
        .rsplit('/')
        .next()
        .is_some_and(|b| b.starts_with(WHITEOUT_PREFIX));
    if (ft.is_char_device() && meta.rdev() == 0) || is_marker {
        // An overlay whiteout (the file is deleted in this layer), or a marker
        // already in layer form.
        let wh = if is_marker {
            name.to_string()
        } else {
            match name.rsplit_once('/') {
                Some((d, b)) => format!("{d}/{WHITEOUT_PREFIX}{b}"),
                None => format!("{WHITEOUT_PREFIX}{name}"),
            }
        };
        if seen.insert(wh.clone()) {
            tar.append_data(&mut marker(), &wh, io::empty())?;
            return Ok(1);
        }
        return Ok(0);
    }
    if ft.is_dir() {
        let mut h = header(meta, tar::EntryType::Directory);
        tar.append_data(&mut h, format!("{name}/"), io::empty())?;
        let opaque = OPAQUE_XATTRS.iter().any(|x| {
            xattr::get(path, x)
                .ok()
                .flatten()
                .is_some_and(|v| v == b"y")
        });
        let opq = format!("{name}/{OPAQUE_MARKER}");
        if opaque && seen.insert(opq.clone()) {
            tar.append_data(&mut marker(), &opq, io::empty())?;
            return Ok(2);
        }
        return Ok(1);
    }
    if ft.is_symlink() {
        let target = fs::read_link(path)?;
        let mut h = header(meta, tar::EntryType::Symlink);
        tar.append_link(&mut h, name, target)?;
        return Ok(1);
    }
    if ft.is_file() {
        if meta.nlink() > 1 {
            let id = (meta.dev(), meta.ino());
            if let Some(first) = links.get(&id) {
                let mut h = header(meta, tar::EntryType::Link);
                tar.append_link(&mut h, name, first)?;
                return Ok(1);
            }
            links.insert(id, name.to_string());
        }
        let mut h = header(meta, tar::EntryType::Regular);
        h.set_size(meta.len());
        tar.append_data(&mut h, name, fs::File::open(path)?)?;
        return Ok(1);
    }
    let kind = if ft.is_fifo() {
        tar::EntryType::Fifo
    } else if ft.is_char_device() {
        tar::EntryType::Char
    } else if ft.is_block_device() {
        tar::EntryType::Block
    } else {
        // Sockets do not survive in images.
        return Ok(0);
    };
    let mut h = header(meta, kind);
    if ft.is_char_device() || ft.is_block_device() {
        let rdev = meta.rdev();
        h.set_device_major(((rdev >> 8) & 0xfff) as u32 | ((rdev >> 32) & !0xfff) as u32)?;
        h.set_device_minor(((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32)?;
    }
    tar.append_data(&mut h, name, io::empty())?;
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut ar = tar::Archive::new(tar_bytes);
        ar.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn an_upper_dir_becomes_a_layer_in_name_order() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("home/dev")).unwrap();
        fs::write(d.path().join("home/dev/a"), "a").unwrap();
        fs::hard_link(d.path().join("home/dev/a"), d.path().join("home/dev/b")).unwrap();
        symlink("a", d.path().join("home/dev/c")).unwrap();
        fs::write(d.path().join("etc"), "file").unwrap();
        let mut out = Vec::new();
        let layer = write_layer(d.path(), &mut out).unwrap();
        assert_eq!(
            names(&out),
            [
                "etc",
                "home/",
                "home/dev/",
                "home/dev/a",
                "home/dev/b",
                "home/dev/c"
            ]
        );
        assert_eq!(
            layer.diff_id,
            format!(
                "sha256:{}",
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out))
            )
        );
        assert_eq!(layer.size, out.len() as u64);
        let mut ar = tar::Archive::new(&out[..]);
        let b = ar.entries().unwrap().nth(4).unwrap().unwrap();
        assert_eq!(
            b.header().entry_type(),
            tar::EntryType::Link,
            "hardlinks stay links"
        );
    }
}
