//! Tools with `extract: true`: the archive whose sha256 was checked, read in
//! memory and turned into the tar that places one member at `dest` (with
//! `path`) or every member under `dest`. No member lands outside `dest`:
//! absolute paths, `..`, symlinks that point out, and members reached
//! through a symlink member are all refused, before anything is written.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use crate::config::Tool;
use crate::config::archive::{ArchiveKind, member_path};

use super::tool::{ToolError, tool_archive};

/// One member of an archive, its path made relative and clean.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Member {
    File { mode: u32, data: Vec<u8> },
    Dir { mode: u32 },
    Link { target: String },
}

/// The tar that installs `tool` from the checked `content` of its source:
/// the file itself, or with `extract` what the archive holds.
pub fn tool_layer(tool: &Tool, content: &[u8]) -> Result<Vec<u8>, ToolError> {
    if !tool.extract {
        return tool_archive(content, &tool.dest());
    }
    let bad = |reason: String| ToolError::Archive {
        tool: tool.name.clone(),
        reason,
    };
    let kind = ArchiveKind::of(&tool.source).ok_or_else(|| {
        bad("its name is not `.tar`, `.tar.gz`, `.tgz`, `.tar.xz` or `.zip`".into())
    })?;
    let members = read_members(kind, content).map_err(|e| match e {
        Refused::Escapes(member) => ToolError::Escapes {
            tool: tool.name.clone(),
            member,
        },
        Refused::Unreadable(reason) => bad(reason),
    })?;
    match &tool.path {
        Some(path) => {
            let wanted = member_path(path).ok_or_else(|| ToolError::Escapes {
                tool: tool.name.clone(),
                member: path.clone(),
            })?;
            let data = find_file(&members, &wanted).ok_or_else(|| ToolError::NotInArchive {
                tool: tool.name.clone(),
                path: path.clone(),
            })?;
            tool_archive(data, &tool.dest())
        }
        None => unpack_into(&members, &tool.dest()).map_err(|e| bad(e.to_string())),
    }
}

#[derive(Debug)]
enum Refused {
    Escapes(String),
    Unreadable(String),
}

fn unreadable(e: impl std::fmt::Display) -> Refused {
    Refused::Unreadable(e.to_string())
}

/// Every member, by clean path (a later one of the same path wins, as an
/// unpacking tar would leave it), checked to stay inside.
fn read_members(kind: ArchiveKind, content: &[u8]) -> Result<BTreeMap<String, Member>, Refused> {
    let raw = match kind {
        ArchiveKind::Zip => zip_members(content)?,
        ArchiveKind::Tar => tar_members(content)?,
        ArchiveKind::TarGz => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(content)
                .read_to_end(&mut out)
                .map_err(unreadable)?;
            tar_members(&out)?
        }
        ArchiveKind::TarXz => {
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut Cursor::new(content), &mut out).map_err(unreadable)?;
            tar_members(&out)?
        }
    };
    let mut members = BTreeMap::new();
    for (name, member) in raw {
        let path = member_path(&name).ok_or_else(|| Refused::Escapes(name.clone()))?;
        if let Member::Link { target } = &member
            && link_target(&path, target).is_none()
        {
            return Err(Refused::Escapes(format!("{name} -> {target}")));
        }
        members.insert(path, member);
    }
    // A member below a symlink member would be written through the link.
    for path in members.keys() {
        let mut at = path.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            if matches!(members.get(parent), Some(Member::Link { .. })) {
                return Err(Refused::Escapes(path.clone()));
            }
            at = parent;
        }
    }
    Ok(members)
}

/// Where the symlink at `path` points, inside the archive; `None` when it
/// is absolute or climbs out.
fn link_target(path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// The bytes of the regular file at `path`, following symlinks inside the
/// archive (a few hops at most).
fn find_file<'a>(members: &'a BTreeMap<String, Member>, path: &str) -> Option<&'a [u8]> {
    let mut at = path.to_string();
    for _ in 0..8 {
        match members.get(&at)? {
            Member::File { data, .. } => return Some(data),
            Member::Link { target } => at = link_target(&at, target)?,
            Member::Dir { .. } => return None,
        }
    }
    None
}

fn tar_members(bytes: &[u8]) -> Result<Vec<(String, Member)>, Refused> {
    let mut out: Vec<(String, Member)> = Vec::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mode = entry.header().mode().map_err(unreadable)? & 0o7777;
        let kind = entry.header().entry_type();
        let link = entry
            .link_name_bytes()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .unwrap_or_default();
        let member = if kind.is_file() {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(unreadable)?;
            Member::File { mode, data }
        } else if kind.is_dir() {
            Member::Dir { mode }
        } else if kind.is_symlink() {
            Member::Link { target: link }
        } else if kind.is_hard_link() {
            // A hard link is a second name of an earlier file: its bytes.
            let target = link;
            let clean = member_path(&target).ok_or_else(|| Refused::Escapes(target.clone()))?;
            out.iter()
                .rev()
                .find(|(n, m)| {
                    member_path(n).as_deref() == Some(&clean) && matches!(m, Member::File { .. })
                })
                .map(|(_, m)| m.clone())
                .ok_or_else(|| {
                    unreadable(format!(
                        "hard link `{name}` to `{target}`, which is not a file before it"
                    ))
                })?
        } else {
            // Pax headers and the like are read by `tar` itself; devices
            // and fifos are no part of a tool.
            continue;
        };
        out.push((name, member));
    }
    Ok(out)
}

fn zip_members(bytes: &[u8]) -> Result<Vec<(String, Member)>, Refused> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(unreadable)?;
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).map_err(unreadable)?;
        let name = f.name().map_err(unreadable)?.into_owned();
        let mode = f.unix_mode();
        let member = if f.is_dir() {
            Member::Dir {
                mode: mode.map_or(0o755, |m| m & 0o7777),
            }
        } else {
            let mut data = Vec::new();
            f.read_to_end(&mut data).map_err(unreadable)?;
            if f.is_symlink() {
                Member::Link {
                    target: String::from_utf8_lossy(&data).into_owned(),
                }
            } else {
                Member::File {
                    mode: mode.map_or(0o644, |m| m & 0o7777),
                    data,
                }
            }
        };
        out.push((name, member));
    }
    Ok(out)
}

/// Every member under the directory `dest`, owned by root with its own mode.
fn unpack_into(members: &BTreeMap<String, Member>, dest: &str) -> std::io::Result<Vec<u8>> {
    let base = dest.trim_matches('/');
    let mut tar = tar::Builder::new(Vec::new());
    for (path, member) in members {
        let name = format!("{base}/{path}");
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match member {
            Member::File { mode, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, &name, &data[..])?;
            }
            Member::Dir { mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                tar.append_data(&mut h, format!("{name}/"), std::io::empty())?;
            }
            Member::Link { target } => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, &name, target)?;
            }
        }
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tool(source: &str, path: Option<&str>, dest: &str) -> Tool {
        Tool {
            name: "t".into(),
            source: source.into(),
            sha256: "0".repeat(64),
            dest: Some(dest.into()),
            extract: true,
            path: path.map(str::to_string),
            root: None,
        }
    }

    /// A tar of raw entries: names are written into the header as given,
    /// `..` and absolute ones too, as a hostile archive would have them.
    fn raw_tar(entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn xz(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut Cursor::new(bytes), &mut out).unwrap();
        out
    }

    fn zip_of(files: &[(&str, &[u8])], links: &[(&str, &str)]) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        for (name, data) in files {
            z.start_file(*name, opts).unwrap();
            z.write_all(data).unwrap();
        }
        for (name, target) in links {
            z.add_symlink(*name, *target, opts).unwrap();
        }
        z.finish().unwrap().into_inner()
    }

    /// (path, mode, content) of each entry of a tar.
    fn listed(tar_bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let mode = e.header().mode().unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, mode, data)
            })
            .collect()
    }

    const F: tar::EntryType = tar::EntryType::Regular;
    const D: tar::EntryType = tar::EntryType::Directory;
    const L: tar::EntryType = tar::EntryType::Symlink;

    #[test]
    fn every_format_gives_the_named_file_at_dest() {
        let tar = raw_tar(&[("jq-1.7/", D, b"", ""), ("jq-1.7/bin/jq", F, b"JQ", "")]);
        let sources = [
            ("jq.tar", tar.clone()),
            ("jq.tar.gz", gz(&tar)),
            ("jq.tgz", gz(&tar)),
            ("jq.tar.xz", xz(&tar)),
            ("jq.zip", zip_of(&[("jq-1.7/bin/jq", b"JQ")], &[])),
        ];
        for (name, bytes) in sources {
            let t = tool(name, Some("./jq-1.7/bin/jq"), "/usr/local/bin/jq");
            let layer = tool_layer(&t, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                listed(&layer),
                [("usr/local/bin/jq".to_string(), 0o755, b"JQ".to_vec())],
                "{name}"
            );
            let missing = tool(name, Some("jq-1.7/jq"), "/usr/local/bin/jq");
            assert!(matches!(
                tool_layer(&missing, &bytes),
                Err(ToolError::NotInArchive { .. })
            ));
        }
    }

    #[test]
    fn without_path_the_whole_archive_lands_under_dest() {
        let tar = raw_tar(&[
            ("node/", D, b"", ""),
            ("node/bin/node", F, b"N", ""),
            ("node/bin/npm", L, b"", "../lib/npm-cli.js"),
            ("node/lib/npm-cli.js", F, b"JS", ""),
        ]);
        let layer = tool_layer(&tool("n.tar.gz", None, "/opt/"), &gz(&tar)).unwrap();
        let paths: Vec<String> = listed(&layer).into_iter().map(|e| e.0).collect();
        assert_eq!(
            paths,
            [
                "opt/node/",
                "opt/node/bin/node",
                "opt/node/bin/npm",
                "opt/node/lib/npm-cli.js"
            ]
        );
        // A symlink inside the archive is followed to find `path`.
        let t = tool("n.tar", Some("node/bin/npm"), "/usr/local/bin/npm");
        assert_eq!(listed(&tool_layer(&t, &tar).unwrap())[0].2, b"JS");
    }

    /// Archives that try to write outside `dest`: every one is refused.
    #[test]
    fn members_never_escape_dest() {
        let hostile: Vec<(&str, Vec<u8>)> = vec![
            ("dotdot", raw_tar(&[("../etc/passwd", F, b"x", "")])),
            (
                "deep dotdot",
                raw_tar(&[("a/../../etc/passwd", F, b"x", "")]),
            ),
            ("absolute", raw_tar(&[("/etc/passwd", F, b"x", "")])),
            ("absolute link", raw_tar(&[("etc", L, b"", "/etc")])),
            ("climbing link", raw_tar(&[("up", L, b"", "../..")])),
            (
                "through a link",
                raw_tar(&[("a", L, b"", "."), ("a/b", F, b"x", "")]),
            ),
            (
                "hard link out",
                raw_tar(&[("h", tar::EntryType::Link, b"", "../../etc/shadow")]),
            ),
        ];
        for (what, tar) in hostile {
            for t in [
                tool("a.tar", None, "/opt/t"),
                tool("a.tar", Some("a/b"), "/bin/t"),
            ] {
                let got = tool_layer(&t, &tar);
                assert!(
                    matches!(got, Err(ToolError::Escapes { .. })),
                    "{what}: {got:?}"
                );
            }
        }
        let zips = [
            zip_of(&[("../x", b"x")], &[]),
            zip_of(&[], &[("l", "/etc/passwd")]),
        ];
        for z in zips {
            let got = tool_layer(&tool("a.zip", None, "/opt/t"), &z);
            assert!(matches!(got, Err(ToolError::Escapes { .. })), "{got:?}");
        }
    }

    /// Generated: random member paths from a small alphabet with `..`, `.`
    /// and `/` in it. A member is refused exactly when its path is absolute
    /// or holds `..`, and what is accepted is written under `dest`.
    #[test]
    fn generated_paths_land_under_dest_or_are_refused() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let parts = ["a", "b", "..", ".", ""];
        for _ in 0..400 {
            let n = 1 + next(4);
            let mut name = (0..n)
                .map(|_| parts[next(5) as usize])
                .collect::<Vec<_>>()
                .join("/");
            if next(4) == 0 {
                name.insert(0, '/');
            }
            let clean: Vec<&str> = name
                .split('/')
                .filter(|p| !matches!(*p, "" | "."))
                .collect();
            let refused = name.starts_with('/') || clean.contains(&"..") || clean.is_empty();
            let tar = raw_tar(&[(name.as_str(), F, b"x", "")]);
            match tool_layer(&tool("a.tar", None, "/opt/t"), &tar) {
                Ok(layer) => {
                    assert!(!refused, "`{name}` was accepted");
                    let want = format!("opt/t/{}", clean.join("/"));
                    assert_eq!(listed(&layer)[0].0, want, "`{name}`");
                }
                Err(ToolError::Escapes { .. }) => assert!(refused, "`{name}` was refused"),
                Err(e) => panic!("`{name}`: {e}"),
            }
        }
    }
}
