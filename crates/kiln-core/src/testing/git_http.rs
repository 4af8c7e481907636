//! A git server for tests that need a remote which wants credentials: git's
//! "dumb" HTTP protocol (plain files, after `git update-server-info`) served
//! on 127.0.0.1 to requests that carry the right Basic credentials, `401`
//! to the others. No outside network and no other program is needed.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running server; its thread lives as long as the test process.
#[derive(Debug)]
pub struct GitHttp {
    /// `http://127.0.0.1:PORT`, without credentials.
    pub base: String,
    /// Requests that came with the right credentials.
    pub authorized: Arc<AtomicUsize>,
}

/// Serves the files under `root` to requests authorized as `user:password`.
pub fn serve_git_http(root: &Path, user: &str, password: &str) -> std::io::Result<GitHttp> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let wanted = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
    let authorized = Arc::new(AtomicUsize::new(0));
    let count = authorized.clone();
    let root = root.to_path_buf();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (root, wanted, count) = (root.clone(), wanted.clone(), count.clone());
            std::thread::spawn(move || {
                let _ = answer(stream, &root, &wanted, &count);
            });
        }
    });
    Ok(GitHttp { base, authorized })
}

fn answer(
    mut stream: TcpStream,
    root: &Path,
    wanted: &str,
    count: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let (status, body): (&str, Vec<u8>) = if authorization.as_deref() != Some(wanted) {
        ("401 Unauthorized", Vec::new())
    } else {
        count.fetch_add(1, Ordering::SeqCst);
        match file_under(root, path).and_then(|p| std::fs::read(p).ok()) {
            Some(bytes) => ("200 OK", bytes),
            None => ("404 Not Found", Vec::new()),
        }
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("401") {
        head.push_str("WWW-Authenticate: Basic realm=\"kiln-test\"\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)
}

/// The file `path` (of a request) names under `root`; `None` for `..`.
fn file_under(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(rel))
        .filter(|p| p.is_file())
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(plain.as_bytes()), encoded);
        }
    }
}
