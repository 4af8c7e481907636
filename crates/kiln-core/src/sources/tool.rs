//! Tools named under `tools:` are single files fetched on the host (a URL,
//! downloaded once into the cache keyed by its expected sha256, or a file in
//! the habitat) and checked against that sha256 before anything uses them.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::Tool;
use crate::sources::io::{HostIo, io_err};

/// A tool failure; every variant names the tool.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "checksum mismatch for tool `{tool}` from `{source_}`: expected sha256 `{expected}`, got `{actual}`\nhint: if the new file is the one you want, set `sha256: {actual}`"
    )]
    Checksum {
        tool: String,
        source_: String,
        expected: String,
        actual: String,
    },
    #[error("tool `{tool}` has an invalid sha256 `{sha256}`: it must be 64 hex digits")]
    BadChecksum { tool: String, sha256: String },
    #[error("cannot download tool `{tool}` from `{url}`: {reason}")]
    Download {
        tool: String,
        url: String,
        reason: String,
    },
    #[error(
        "tool `{tool}` source `{source_}` is outside the habitat directory\nhint: use a path relative to the habitat directory, or an `https://` URL"
    )]
    OutsideHabitat { tool: String, source_: String },
    #[error("tool `{tool}` source `{source_}` is not a file in the habitat directory: {reason}")]
    NotAFile {
        tool: String,
        source_: String,
        reason: String,
    },
    #[error(
        "tool `{tool}` has an unsupported source `{source_}`\nhint: use an `http://` or `https://` URL, or a path relative to the habitat directory"
    )]
    UnsupportedScheme { tool: String, source_: String },
    #[error("tool destination `{dest}` must be an absolute file path without `..`")]
    BadDest { dest: String },
    #[error(transparent)]
    Io(#[from] HostIo),
}

/// Returns a host path holding the tool's file, its sha256 already checked.
///
/// A URL is downloaded into `cache` under its expected sha256 (so a second
/// build downloads nothing); a habitat path is used in place and must not
/// leave the habitat directory (symlinks included).
pub fn fetch_tool(tool: &Tool, habitat_dir: &Path, cache: &Path) -> Result<PathBuf, ToolError> {
    let expected = tool.sha256.trim().to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ToolError::BadChecksum {
            tool: tool.name.clone(),
            sha256: tool.sha256.clone(),
        });
    }
    let source = tool.source.as_str();
    let lower = source.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return download(tool, &expected, cache);
    }
    if source.contains("://") {
        return Err(ToolError::UnsupportedScheme {
            tool: tool.name.clone(),
            source_: source.to_string(),
        });
    }
    let path = habitat_file(tool, habitat_dir)?;
    check(tool, &path, &expected)?;
    Ok(path)
}

/// A tar holding the file at `path` as `dest` (relative entry path), mode
/// 0755, owned by root. Parent directories are not included; the engine
/// creates them.
pub fn tool_archive(path: &Path, dest: &str) -> Result<Vec<u8>, ToolError> {
    let bad_dest = || ToolError::BadDest {
        dest: dest.to_string(),
    };
    if !dest.starts_with('/') || dest.ends_with('/') {
        return Err(bad_dest());
    }
    let mut entry = PathBuf::new();
    for c in Path::new(dest).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => entry.push(p),
            Component::ParentDir | Component::Prefix(_) => return Err(bad_dest()),
        }
    }
    if entry.as_os_str().is_empty() {
        return Err(bad_dest());
    }
    let file = File::open(path).map_err(io_err("cannot read", path))?;
    let len = file.metadata().map_err(io_err("cannot read", path))?.len();
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(len);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header
        .set_username("root")
        .and_then(|()| header.set_groupname("root"))
        .map_err(io_err("cannot archive", path))?;
    header.set_mtime(0);
    let mut builder = tar::Builder::new(Vec::with_capacity(len as usize + 2048));
    builder
        .append_data(&mut header, &entry, file)
        .map_err(io_err("cannot archive", path))?;
    Ok(builder
        .into_inner()
        .map_err(io_err("cannot archive", path))?)
}

/// The hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn check(tool: &Tool, path: &Path, expected: &str) -> Result<(), ToolError> {
    let actual = sha256_file(path).map_err(io_err("cannot read", path))?;
    if actual != expected {
        return Err(ToolError::Checksum {
            tool: tool.name.clone(),
            source_: tool.source.clone(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

fn habitat_file(tool: &Tool, habitat_dir: &Path) -> Result<PathBuf, ToolError> {
    let outside = || ToolError::OutsideHabitat {
        tool: tool.name.clone(),
        source_: tool.source.clone(),
    };
    let rel = Path::new(&tool.source);
    if rel.is_absolute() {
        return Err(outside());
    }
    let not_a_file = |reason: String| ToolError::NotAFile {
        tool: tool.name.clone(),
        source_: tool.source.clone(),
        reason,
    };
    let root = habitat_dir
        .canonicalize()
        .map_err(io_err("cannot open the habitat directory", habitat_dir))?;
    // Canonical paths resolve symlinks and `..`, so a link pointing out of
    // the habitat is caught as well as a literal `../`.
    let path = root
        .join(rel)
        .canonicalize()
        .map_err(|e| not_a_file(e.to_string()))?;
    if !path.starts_with(&root) {
        return Err(outside());
    }
    if !path.is_file() {
        return Err(not_a_file("it is not a regular file".to_string()));
    }
    Ok(path)
}

fn download(tool: &Tool, expected: &str, cache: &Path) -> Result<PathBuf, ToolError> {
    let dir = cache.join("sha256");
    let dest = dir.join(expected);
    if dest.is_file() {
        // Only verified files are ever renamed into place, but the cache is
        // just a directory: a damaged entry is fetched again, never trusted.
        match check(tool, &dest, expected) {
            Ok(()) => return Ok(dest),
            Err(_) => {
                let _ = std::fs::remove_file(&dest);
            }
        }
    }
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create the tool cache", &dir))?;
    let download_err = |reason: String| ToolError::Download {
        tool: tool.name.clone(),
        url: tool.source.clone(),
        reason,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        // No cap on the body: a large tool on a slow link is not an error.
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .build()
        .into();
    let response = agent
        .get(&tool.source)
        .call()
        .map_err(|e| download_err(e.to_string()))?;
    let mut body = response.into_body().into_reader();

    // Named by its owner: a download a killed build left is swept by the next.
    let mut tmp = crate::cache::scratch::tempfile_in(&dir, ".download-")
        .map_err(io_err("cannot create a file in", &dir))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| download_err(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(io_err("cannot write", &dir))?;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        return Err(ToolError::Checksum {
            tool: tool.name.clone(),
            source_: tool.source.clone(),
            expected: expected.to_string(),
            actual,
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(io_err("cannot write", &dir))?;
    tmp.persist(&dest)
        .map_err(|e| io_err("cannot store the download as", &dest)(e.error))?;
    Ok(dest)
}
