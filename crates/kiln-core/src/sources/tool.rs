//! Tools named under `tools:` are single files fetched on the host (a URL,
//! downloaded once into the cache keyed by its expected sha256, or a file in
//! the habitat) and checked against that sha256 before anything uses them:
//! a file in the habitat on every build and plan (the key names only the
//! sha256, so a changed file would otherwise pass as cached). The bytes
//! checked are the bytes placed: a file is read once, so nothing put at its
//! path after the check reaches the image.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::sources::beneath::{Beneath, BeneathError};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::config::Tool;
use crate::config::url::{credentials_hidden, without_credentials};
use crate::sources::copies::DigestCache;
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
    #[error("tool `{tool}` cannot be unpacked: {reason}")]
    Archive { tool: String, reason: String },
    #[error(
        "tool `{tool}`: the archive member `{member}` would land outside `dest`\nhint: kiln refuses absolute paths, `..` and symlinks that lead out of the archive"
    )]
    Escapes { tool: String, member: String },
    #[error(
        "tool `{tool}`: the archive has no file `{path}`\nhint: `path` names a file inside the archive, e.g. `jq-1.7/bin/jq`"
    )]
    NotInArchive { tool: String, path: String },
    #[error("tool destination `{dest}` must be an absolute file path without `..`")]
    BadDest { dest: String },
    #[error(transparent)]
    Io(#[from] HostIo),
}

/// A tool's file, its sha256 checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedTool {
    /// Where it is on the host: in the cache, or in the habitat.
    pub path: PathBuf,
    /// The bytes whose sha256 was checked: what [`tool_archive`] places.
    pub content: Vec<u8>,
}

/// The tool's file, its sha256 already checked.
///
/// A URL is downloaded into `cache` under its expected sha256 (so a second
/// build downloads nothing); a habitat path is read in place, opened beneath
/// the habitat directory so that neither it nor a directory on its way may
/// be a symlink leading out.
pub fn fetch_tool(tool: &Tool, habitat_dir: &Path, cache: &Path) -> Result<FetchedTool, ToolError> {
    let expected = expected_sha256(tool)?;
    if is_url(tool)? {
        return download(tool, &expected, cache);
    }
    let fetched = habitat_file(tool, habitat_dir)?;
    check(tool, &fetched.content, &expected)?;
    Ok(fetched)
}

/// Checks a tool whose source is a file in the habitat against its sha256,
/// through the stat cache (so an unchanged file is not read again); a URL
/// is checked when the tools phase downloads it. Every build and plan runs
/// this: the key holds the sha256, not the file, so nothing else would see
/// the file change while the phase is cached. The file is opened beneath the
/// habitat directory, as [`fetch_tool`] opens it.
pub fn check_local(
    tool: &Tool,
    habitat_dir: &Path,
    digests: &mut DigestCache,
) -> Result<(), ToolError> {
    let expected = expected_sha256(tool)?;
    if is_url(tool)? {
        return Ok(());
    }
    let (file, path) = open_habitat_file(tool, habitat_dir)?;
    let actual = digests
        .file_sha256(&path, &file)
        .map_err(|e| ToolError::NotAFile {
            tool: tool.name.clone(),
            source_: shown(&tool.source),
            reason: e.to_string(),
        })?;
    mismatch(tool, &expected, actual)
}

fn expected_sha256(tool: &Tool) -> Result<String, ToolError> {
    let expected = tool.sha256.trim().to_ascii_lowercase();
    if expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ToolError::BadChecksum {
            tool: tool.name.clone(),
            sha256: tool.sha256.clone(),
        });
    }
    Ok(expected)
}

/// Whether the tool is fetched from a URL (else it is a habitat path).
fn is_url(tool: &Tool) -> Result<bool, ToolError> {
    let source = tool.source.as_str();
    let lower = source.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(true);
    }
    if source.contains("://") {
        return Err(ToolError::UnsupportedScheme {
            tool: tool.name.clone(),
            source_: shown(source),
        });
    }
    Ok(false)
}

fn mismatch(tool: &Tool, expected: &str, actual: String) -> Result<(), ToolError> {
    if actual != expected {
        return Err(ToolError::Checksum {
            tool: tool.name.clone(),
            source_: shown(&tool.source),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// A tar holding `content` as `dest` (relative entry path), mode 0755,
/// owned by root. Parent directories are not included; the engine creates
/// them. `content` is [`FetchedTool::content`]: the bytes whose sha256 was
/// checked, so a file changed since never reaches the image.
pub fn tool_archive(content: &[u8], dest: &str) -> Result<Vec<u8>, ToolError> {
    let bad_dest = || ToolError::BadDest {
        dest: dest.to_string(),
    };
    if !dest.starts_with('/') || dest.ends_with('/') {
        return Err(bad_dest());
    }
    let mut entry = PathBuf::new();
    for c in Path::new(&dest).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => entry.push(p),
            Component::ParentDir | Component::Prefix(_) => return Err(bad_dest()),
        }
    }
    if entry.as_os_str().is_empty() {
        return Err(bad_dest());
    }
    let path = Path::new(dest);
    let len = content.len() as u64;
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
        .append_data(&mut header, &entry, content)
        .map_err(io_err("cannot archive", path))?;
    Ok(builder
        .into_inner()
        .map_err(io_err("cannot archive", path))?)
}

fn check(tool: &Tool, content: &[u8], expected: &str) -> Result<(), ToolError> {
    mismatch(tool, expected, hex::encode(Sha256::digest(content)))
}

/// A tool's source as messages show it: a URL's credentials are for the
/// download only.
fn shown(source: &str) -> String {
    without_credentials(source).into_owned()
}

/// The tool's file in the habitat, opened beneath the habitat directory
/// (no symlink on the way leads out), and its path on the host.
fn open_habitat_file(tool: &Tool, habitat_dir: &Path) -> Result<(File, PathBuf), ToolError> {
    let outside = || ToolError::OutsideHabitat {
        tool: tool.name.clone(),
        source_: shown(&tool.source),
    };
    let not_a_file = |reason: String| ToolError::NotAFile {
        tool: tool.name.clone(),
        source_: shown(&tool.source),
        reason,
    };
    // A fragment's tool is read beneath the fragment's directory.
    let (root, below) = tool.in_root();
    let rel = Path::new(below);
    let base = crate::config::root_dir(habitat_dir, root);
    let opened = Beneath::open(&base).and_then(|b| b.open_entry(rel));
    let file = match opened {
        Ok(f) => f,
        Err(BeneathError::Io { path, source }) if path == base => {
            return Err(io_err("cannot open the habitat directory", &path)(source).into());
        }
        Err(BeneathError::Io { source, .. }) => return Err(not_a_file(source.to_string())),
        Err(BeneathError::Outside { .. } | BeneathError::Link { .. }) => return Err(outside()),
    };
    let path = base.join(rel);
    let meta = file.metadata().map_err(io_err("cannot read", &path))?;
    if !meta.is_file() {
        return Err(not_a_file("it is not a regular file".to_string()));
    }
    Ok((file, path))
}

fn habitat_file(tool: &Tool, habitat_dir: &Path) -> Result<FetchedTool, ToolError> {
    let (mut file, path) = open_habitat_file(tool, habitat_dir)?;
    let len = file.metadata().map_or(0, |m| m.len());
    let mut content = Vec::with_capacity(len as usize);
    file.read_to_end(&mut content)
        .map_err(io_err("cannot read", &path))?;
    Ok(FetchedTool { path, content })
}

fn download(tool: &Tool, expected: &str, cache: &Path) -> Result<FetchedTool, ToolError> {
    let dir = cache.join("sha256");
    let dest = dir.join(expected);
    if let Ok(content) = std::fs::read(&dest) {
        // Only verified files are ever renamed into place, but the cache is
        // just a directory: a damaged entry is fetched again, never trusted.
        match check(tool, &content, expected) {
            Ok(()) => {
                return Ok(FetchedTool {
                    path: dest,
                    content,
                });
            }
            Err(_) => {
                let _ = std::fs::remove_file(&dest);
            }
        }
    }
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create the tool cache", &dir))?;
    let download_err = |reason: String| ToolError::Download {
        tool: tool.name.clone(),
        url: shown(&tool.source),
        reason: credentials_hidden(&reason).into_owned(),
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
    let mut content = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| download_err(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        content.extend_from_slice(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(io_err("cannot write", &dir))?;
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        return Err(ToolError::Checksum {
            tool: tool.name.clone(),
            source_: shown(&tool.source),
            expected: expected.to_string(),
            actual,
        });
    }
    tmp.as_file()
        .sync_all()
        .map_err(io_err("cannot write", &dir))?;
    tmp.persist(&dest)
        .map_err(|e| io_err("cannot store the download as", &dest)(e.error))?;
    Ok(FetchedTool {
        path: dest,
        content,
    })
}
