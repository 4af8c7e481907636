//! The small JSON records kiln keeps on the host (the made index, last use):
//! read leniently (unreadable or corrupt reads as empty, which costs checks,
//! never correctness) and written atomically (a temp file renamed over it).

use std::io;
use std::path::Path;

/// The record at `path`, or the empty one.
pub(crate) fn load<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes `value` to `path` atomically, making its directory.
pub(crate) fn save<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    io::Write::write_all(
        &mut tmp,
        &serde_json::to_vec(value).map_err(io::Error::other)?,
    )?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
