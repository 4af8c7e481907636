//! `HostIo`: a failed file operation on the host, with what kiln was doing
//! and the path it was doing it to (just's `filesystem.rs` idea). Every
//! source module's I/O error is this one type, worded once.

use std::io;
use std::path::{Path, PathBuf};

/// An I/O failure on the host: `{context} `{path}`: {source}`.
#[derive(Debug, thiserror::Error)]
#[error("{context} `{}`: {source}", .path.display())]
pub struct HostIo {
    /// What kiln was doing, as a verb phrase: "cannot read", "cannot create".
    pub context: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A `map_err` adapter: `fs::read(p).map_err(io_err("cannot read", p))?`.
pub fn io_err(context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> HostIo + use<> {
    let path = path.to_path_buf();
    move |source| HostIo {
        context,
        path,
        source,
    }
}
