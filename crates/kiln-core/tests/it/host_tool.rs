//! `fetch_tool` and `tool_archive`, with downloads served by a tiny HTTP
//! server on 127.0.0.1 started in the test (no outside network is assumed).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_core::config::Tool;
use kiln_core::sources::copies::DigestCache;
use kiln_core::sources::tool::{ToolError, check_local, fetch_tool, tool_archive};
use sha2::{Digest, Sha256};

const BODY: &[u8] = b"#!/bin/sh\necho jq\n";

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Serves `BODY` at `/jq` and 404 elsewhere; counts the requests.
struct Server {
    base: String,
    hits: Arc<AtomicUsize>,
}

fn serve() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request = String::new();
            let _ = reader.read_line(&mut request);
            // Drain the headers.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let response = if request.starts_with("GET /jq ") {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    BODY.len()
                )
                .into_bytes();
                r.extend_from_slice(BODY);
                r
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()
            };
            let _ = stream.write_all(&response);
        }
    });
    Server { base, hits }
}

fn tool(source: &str, sha256: &str) -> Tool {
    Tool {
        name: "jq".into(),
        source: source.into(),
        sha256: sha256.into(),
        dest: None,
        extract: false,
        path: None,
        root: None,
    }
}

#[test]
fn a_url_is_downloaded_once_and_checked() {
    let server = serve();
    let cache = tempfile::tempdir().expect("tempdir");
    let habitat = tempfile::tempdir().expect("tempdir");
    let t = tool(&format!("{}/jq", server.base), &sha(BODY));

    let fetched = fetch_tool(&t, habitat.path(), cache.path()).expect("fetch");
    assert_eq!(fetched.content, BODY);
    let path = fetched.path;
    assert_eq!(std::fs::read(&path).expect("read"), BODY);
    assert!(path.starts_with(cache.path()));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    let again = fetch_tool(&t, habitat.path(), cache.path()).expect("fetch again");
    assert_eq!((again.path, again.content), (path, BODY.to_vec()));
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "the second fetch downloaded"
    );
}

#[test]
fn a_checksum_mismatch_names_tool_expected_and_actual() {
    let server = serve();
    let cache = tempfile::tempdir().expect("tempdir");
    let habitat = tempfile::tempdir().expect("tempdir");
    let wrong = "0".repeat(64);
    let t = tool(&format!("{}/jq", server.base), &wrong);
    let err = fetch_tool(&t, habitat.path(), cache.path()).expect_err("mismatch");
    assert!(matches!(err, ToolError::Checksum { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("`jq`") && msg.contains(&wrong) && msg.contains(&sha(BODY)),
        "{msg}"
    );
    // Nothing unverified is left in the cache.
    let stored: Vec<_> = walk(cache.path());
    assert!(stored.is_empty(), "{stored:?}");
}

#[test]
fn a_damaged_cache_entry_is_fetched_again() {
    let server = serve();
    let cache = tempfile::tempdir().expect("tempdir");
    let habitat = tempfile::tempdir().expect("tempdir");
    let t = tool(&format!("{}/jq", server.base), &sha(BODY));
    let path = fetch_tool(&t, habitat.path(), cache.path())
        .expect("fetch")
        .path;
    std::fs::write(&path, b"tampered").expect("write");
    let again = fetch_tool(&t, habitat.path(), cache.path()).expect("refetch");
    assert_eq!(again.content, BODY);
    assert_eq!(std::fs::read(again.path).expect("read"), BODY);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

/// A tool URL's credential is for the download only: the errors that name
/// the source showed the URL as written.
#[test]
fn regression_credentials_in_a_tool_url_are_not_shown() {
    let server = serve();
    let cache = tempfile::tempdir().expect("tempdir");
    let habitat = tempfile::tempdir().expect("tempdir");
    let host = server.base.trim_start_matches("http://");
    let token = "tok-Zq9xW-tool";
    for (path, sha256) in [("jq", "0".repeat(64)), ("missing", sha(BODY))] {
        let t = tool(&format!("http://me:{token}@{host}/{path}"), &sha256);
        let err = fetch_tool(&t, habitat.path(), cache.path()).expect_err(path);
        let msg = err.to_string();
        assert!(!msg.contains(token), "{msg}");
        assert!(msg.contains(&format!("{}/{path}", server.base)), "{msg}");
    }
}

#[test]
fn an_http_error_is_a_download_error() {
    let server = serve();
    let cache = tempfile::tempdir().expect("tempdir");
    let habitat = tempfile::tempdir().expect("tempdir");
    let t = tool(&format!("{}/missing", server.base), &sha(BODY));
    let err = fetch_tool(&t, habitat.path(), cache.path()).expect_err("404");
    assert!(matches!(err, ToolError::Download { .. }), "{err:?}");
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn a_habitat_file_is_checked_and_used_in_place() {
    let cache = tempfile::tempdir().expect("tempdir");
    let habitat = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(habitat.path().join("bin")).expect("mkdir");
    std::fs::write(habitat.path().join("bin/jq"), BODY).expect("write");
    let fetched =
        fetch_tool(&tool("bin/jq", &sha(BODY)), habitat.path(), cache.path()).expect("fetch");
    assert_eq!(fetched.content, BODY);
    assert_eq!(fetched.path, habitat.path().join("bin/jq"));

    let err = fetch_tool(
        &tool("bin/jq", &"1".repeat(64)),
        habitat.path(),
        cache.path(),
    )
    .expect_err("mismatch");
    assert!(matches!(err, ToolError::Checksum { .. }), "{err:?}");
}

#[test]
fn a_habitat_path_must_stay_inside_the_habitat() {
    let cache = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("tempdir");
    let habitat = root.path().join("habitat");
    std::fs::create_dir(&habitat).expect("mkdir");
    std::fs::write(root.path().join("secret"), BODY).expect("write");
    std::os::unix::fs::symlink(root.path().join("secret"), habitat.join("link")).expect("symlink");
    for source in ["../secret", "link", "/etc/passwd"] {
        let err = fetch_tool(&tool(source, &sha(BODY)), &habitat, cache.path()).expect_err(source);
        assert!(
            matches!(err, ToolError::OutsideHabitat { .. }),
            "{source}: {err:?}"
        );
    }
}

/// The window between a local tool's check and its archive: the old code
/// checked the file at its path, then opened the path again to archive it,
/// so a file swapped (or a directory on its way relinked) in between went
/// into the image unchecked. Now the checked bytes are the archived bytes.
#[test]
fn regression_a_local_tool_changed_after_its_check_is_placed_as_checked() {
    let cache = tempfile::tempdir().expect("tempdir");
    let root = tempfile::tempdir().expect("tempdir");
    let habitat = root.path().join("habitat");
    std::fs::create_dir_all(habitat.join("bin")).expect("mkdir");
    std::fs::write(habitat.join("bin/jq"), BODY).expect("write");
    std::fs::create_dir_all(root.path().join("host")).expect("mkdir");
    std::fs::write(root.path().join("host/jq"), b"host file").expect("write");
    let fetched = fetch_tool(&tool("bin/jq", &sha(BODY)), &habitat, cache.path()).expect("fetch");
    // Swapped after the check: `bin` now leads to a host directory.
    std::fs::remove_dir_all(habitat.join("bin")).expect("rm");
    std::os::unix::fs::symlink(root.path().join("host"), habitat.join("bin")).expect("symlink");
    let bytes = tool_archive(&fetched.content, "/usr/local/bin/jq").expect("archive");
    let mut ar = tar::Archive::new(bytes.as_slice());
    let mut e = ar
        .entries()
        .expect("entries")
        .next()
        .expect("one")
        .expect("entry");
    let mut content = Vec::new();
    e.read_to_end(&mut content).expect("read");
    assert_eq!(content, BODY);
    // And a fetch now refuses the link out.
    let err = fetch_tool(&tool("bin/jq", &sha(BODY)), &habitat, cache.path()).expect_err("out");
    assert!(matches!(err, ToolError::OutsideHabitat { .. }), "{err:?}");
}

#[test]
fn bad_checksums_and_schemes_are_rejected() {
    let cache = tempfile::tempdir().expect("tempdir");
    let habitat = tempfile::tempdir().expect("tempdir");
    let err = fetch_tool(&tool("bin/jq", "abc"), habitat.path(), cache.path()).expect_err("short");
    assert!(matches!(err, ToolError::BadChecksum { .. }), "{err:?}");
    let err = fetch_tool(
        &tool("ftp://x/jq", &sha(BODY)),
        habitat.path(),
        cache.path(),
    )
    .expect_err("ftp");
    assert!(
        matches!(err, ToolError::UnsupportedScheme { .. }),
        "{err:?}"
    );
}

#[test]
fn tool_archive_holds_one_root_owned_executable() {
    let bytes = tool_archive(BODY, "/usr/local/bin/jq").expect("archive");
    let mut ar = tar::Archive::new(bytes.as_slice());
    let mut entries = ar.entries().expect("entries");
    let mut e = entries.next().expect("one entry").expect("entry");
    assert_eq!(
        e.path().expect("path").to_string_lossy(),
        "usr/local/bin/jq"
    );
    let h = e.header();
    assert_eq!(h.mode().expect("mode") & 0o7777, 0o755);
    assert_eq!((h.uid().expect("uid"), h.gid().expect("gid")), (0, 0));
    let mut content = Vec::new();
    e.read_to_end(&mut content).expect("read");
    assert_eq!(content, BODY);
    drop(e);
    assert!(entries.next().is_none());

    assert!(tool_archive(BODY, "usr/bin/jq").is_err());
    assert!(tool_archive(BODY, "/usr/../etc/jq").is_err());
}

/// The tools phase checks a tool, then packs it: a file changed in between
/// is never placed in the image (what is packed is the bytes checked).
#[test]
fn regression_a_tool_changed_after_its_check_is_never_packed() {
    let habitat = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(habitat.path().join("bin")).expect("mkdir");
    let file = habitat.path().join("bin/jq");
    std::fs::write(&file, BODY).expect("write");
    let t = tool("bin/jq", &sha(BODY));
    let fetched = fetch_tool(&t, habitat.path(), cache.path()).expect("checked");
    std::fs::write(&file, b"changed").expect("write");
    let bytes = tool_archive(&fetched.content, &t.dest()).expect("archive");
    let mut ar = tar::Archive::new(bytes.as_slice());
    let mut e = ar
        .entries()
        .expect("entries")
        .next()
        .expect("one")
        .expect("entry");
    let mut content = Vec::new();
    e.read_to_end(&mut content).expect("read");
    assert_eq!(content, BODY, "the bytes checked are the bytes packed");
}

/// Local tools are checked on every build through the stat cache: an
/// unchanged file is not read again, a changed one (even with its size and
/// mtime kept) is.
#[test]
fn a_local_tool_is_checked_through_the_stat_cache() {
    let habitat = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(habitat.path().join("bin")).expect("mkdir");
    let file = habitat.path().join("bin/jq");
    std::fs::write(&file, BODY).expect("write");
    let t = tool("bin/jq", &sha(BODY));
    let digests = cache.path().join("digests.json");
    let mut cache_now = DigestCache::load(&digests);
    check_local(&t, habitat.path(), &mut cache_now).expect("matches");
    let mtime = std::fs::metadata(&file)
        .expect("stat")
        .modified()
        .expect("mtime");
    let mut same_size = BODY.to_vec();
    same_size[0] ^= 1;
    std::fs::write(&file, &same_size).expect("write");
    std::fs::File::options()
        .write(true)
        .open(&file)
        .expect("open")
        .set_modified(mtime)
        .expect("set mtime");
    let err = check_local(&t, habitat.path(), &mut cache_now).expect_err("changed");
    assert!(matches!(err, ToolError::Checksum { .. }), "{err:?}");
    // A URL is checked when the tools phase downloads it, not here.
    let url = tool("https://example.invalid/jq", &sha(BODY));
    check_local(&url, habitat.path(), &mut cache_now).expect("not read");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
