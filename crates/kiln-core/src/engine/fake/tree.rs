//! The fake's file trees: what an image or container holds, the tars the
//! archive API takes and gives, and the path rules Docker applies to both.

use std::collections::BTreeMap;
use std::io::Read;

/// One entry of a fake file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFile {
    pub kind: FakeFileKind,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Modification time, as the archive that put it there gave it.
    pub mtime: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeFileKind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

/// A file tree: absolute path (no trailing slash; `/` is the root) → entry.
pub type FakeTree = BTreeMap<String, FakeFile>;

pub(super) fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

pub(super) fn join(base: &str, rel: &str) -> String {
    clean_path(&format!("{base}/{rel}"))
}

pub(super) fn root_dir() -> FakeFile {
    FakeFile {
        kind: FakeFileKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
    }
}

/// Adds every entry of a tar archive to `tree` under `dest`.
pub(super) fn extract_into(
    tree: &mut FakeTree,
    dest: &str,
    archive: impl Read,
) -> Result<(), String> {
    let mut archive = tar::Archive::new(archive);
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?;
        let path = join(dest, &path.to_string_lossy());
        let header = entry.header();
        // Docker reads an empty numeric field as 0; so does the fake.
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let mtime = header.mtime().unwrap_or(0);
        let kind = match header.entry_type() {
            tar::EntryType::Directory => FakeFileKind::Dir,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| e.to_string())?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                FakeFileKind::Symlink(target)
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| e.to_string())?
                    .map(|t| join(dest, &t.to_string_lossy()))
                    .unwrap_or_default();
                match tree.get(&target) {
                    Some(f) => f.kind.clone(),
                    None => return Err(format!("hard link to missing `{target}`")),
                }
            }
            _ => {
                let mut content = Vec::new();
                entry.read_to_end(&mut content).map_err(|e| e.to_string())?;
                FakeFileKind::File(content)
            }
        };
        // A file replacing a directory drops what was under it, as in Docker.
        if !matches!(kind, FakeFileKind::Dir) {
            let prefix = format!("{path}/");
            tree.retain(|p, _| !p.starts_with(&prefix));
        }
        tree.insert(
            path,
            FakeFile {
                kind,
                mode,
                uid,
                gid,
                mtime,
            },
        );
    }
    Ok(())
}

/// A tar of `path` and everything under it, named from its basename, the way
/// Docker's archive API returns it.
pub(super) fn archive_of(tree: &FakeTree, path: &str) -> Result<Vec<u8>, String> {
    let base = path.rsplit('/').next().filter(|b| !b.is_empty());
    let prefix = if path == "/" {
        "/".to_string()
    } else {
        format!("{path}/")
    };
    let mut builder = tar::Builder::new(Vec::new());
    for (p, f) in tree.range(path.to_string()..) {
        if p != path && !p.starts_with(&prefix) {
            if p.as_str() > prefix.as_str() {
                break;
            }
            continue;
        }
        let rel = &p[path.len().min(p.len())..];
        let name = match base {
            Some(b) => format!("{b}{rel}"),
            None => rel.trim_start_matches('/').to_string(),
        };
        if name.is_empty() {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(f.mode);
        header.set_uid(f.uid);
        header.set_gid(f.gid);
        header.set_mtime(f.mtime);
        let result = match &f.kind {
            FakeFileKind::File(content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, &name, content.as_slice())
            }
            FakeFileKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, format!("{name}/"), std::io::empty())
            }
            FakeFileKind::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &name, target)
            }
        };
        result.map_err(|e| e.to_string())?;
    }
    builder.into_inner().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean_path("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(join("/tmp", "./x"), "/tmp/x");
    }
}
