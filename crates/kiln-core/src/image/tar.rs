//! Tar entries kiln writes itself: files and directories with an owner and
//! mode, an `/etc/skel` re-rooted at a new home, and the first file of an
//! archive the engine returned.

use std::io;

/// Appends a regular file with `content`, owned by `uid:gid`.
pub fn append_file<W: io::Write>(
    tar: &mut ::tar::Builder<W>,
    path: &str,
    content: &[u8],
    mode: u32,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    let mut h = ::tar::Header::new_gnu();
    h.set_entry_type(::tar::EntryType::Regular);
    h.set_size(content.len() as u64);
    h.set_mode(mode);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    tar.append_data(&mut h, path, content)
}

/// Appends a directory, owned by `uid:gid`.
pub fn append_dir<W: io::Write>(
    tar: &mut ::tar::Builder<W>,
    path: &str,
    mode: u32,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    let mut h = ::tar::Header::new_gnu();
    h.set_entry_type(::tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(mode);
    h.set_uid(u64::from(uid));
    h.set_gid(u64::from(gid));
    tar.append_data(
        &mut h,
        format!("{}/", path.trim_end_matches('/')),
        io::empty(),
    )
}

/// Appends a directory, owned by `uid:gid`, with modification time `mtime`
/// (an existing directory's, kept when only its owner or mode changes).
pub fn append_dir_at<W: io::Write>(
    tar: &mut ::tar::Builder<W>,
    path: &str,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
) -> io::Result<()> {
    let mut h = ::tar::Header::new_gnu();
    h.set_entry_type(::tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(mtime);
    tar.append_data(
        &mut h,
        format!("{}/", path.trim_end_matches('/')),
        io::empty(),
    )
}

/// Re-roots the entries of an `/etc/skel` archive at `home`, owned by the user.
pub fn append_skel<W: io::Write>(
    tar: &mut ::tar::Builder<W>,
    skel: &[u8],
    home: &str,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    let mut ar = ::tar::Archive::new(skel);
    for entry in ar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.display().to_string();
        // Entries are `skel`, `skel/.bashrc`, ...
        let Some(rest) = path
            .strip_prefix("skel")
            .map(|r| r.trim_start_matches('/').to_string())
        else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let mut h = entry.header().clone();
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        let mut data = Vec::new();
        io::Read::read_to_end(&mut entry, &mut data)?;
        let target = format!("{home}/{rest}");
        if h.entry_type().is_symlink() {
            let link = entry
                .link_name()?
                .map(|l| l.into_owned())
                .unwrap_or_default();
            tar.append_link(&mut h, &target, link)?;
        } else {
            tar.append_data(&mut h, &target, &data[..])?;
        }
    }
    Ok(())
}

/// The content and mode of the first regular file in a tar archive.
pub fn first_file(tar: &[u8]) -> Option<(Vec<u8>, u32)> {
    let mut ar = ::tar::Archive::new(tar);
    for entry in ar.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.header().entry_type().is_file() {
            let mode = entry.header().mode().ok()? & 0o7777;
            let mut data = Vec::new();
            io::Read::read_to_end(&mut entry, &mut data).ok()?;
            return Some((data, mode));
        }
    }
    None
}
