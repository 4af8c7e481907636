//! Reaching an engine: where it listens (`DOCKER_HOST` or the default
//! socket), the API version it speaks (read off `/_ping`, so a no-op build
//! does not spend its time negotiating), and how long kiln waits.

use std::time::Duration;

use bollard::{ClientVersion, Docker};

use super::super::EngineError;
use super::DockerEngine;
use super::error::describe;

/// Where bollard looks when `DOCKER_HOST` is unset.
pub const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

/// How long `connect` waits for the engine to answer before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// bollard's default of 2 minutes is measured until the response headers arrive;
/// committing or importing a multi-gigabyte filesystem can take longer than that.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60 * 60);

impl DockerEngine {
    /// Connects at `DOCKER_HOST` or the default socket and negotiates the API
    /// version (so Docker 20.10, API 1.41, works). `Unreachable` when nothing answers.
    pub async fn connect() -> Result<DockerEngine, EngineError> {
        let endpoint = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        Self::connect_to(&endpoint).await
    }

    /// Connects at an explicit endpoint (`unix://…`, `tcp://…`, `http://…`).
    pub async fn connect_to(endpoint: &str) -> Result<DockerEngine, EngineError> {
        let unreachable = |reason: String| EngineError::Unreachable {
            endpoint: endpoint.to_string(),
            reason,
        };
        let timed_out = || unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()));
        let mut docker = match endpoint.strip_prefix("unix://") {
            // The engine states its API version in every response's headers;
            // reading it off `/_ping` costs a fraction of the `/version` call
            // bollard negotiates with (0.3 ms against 4 ms here), which a
            // no-op build would otherwise spend most of its time on.
            Some(path) => match tokio::time::timeout(CONNECT_TIMEOUT, ping_api_version(path)).await
            {
                Ok(Ok(server)) => {
                    let version = if server < *bollard::API_DEFAULT_VERSION {
                        server
                    } else {
                        *bollard::API_DEFAULT_VERSION
                    };
                    Docker::connect_with_unix(endpoint, REQUEST_TIMEOUT.as_secs(), &version)
                        .map_err(|e| unreachable(e.to_string()))?
                }
                Ok(Err(reason)) => return Err(unreachable(reason)),
                Err(_) => return Err(timed_out()),
            },
            None => {
                let docker =
                    Docker::connect_with_host(endpoint).map_err(|e| unreachable(e.to_string()))?;
                match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
                    Ok(Ok(docker)) => docker,
                    Ok(Err(e)) => return Err(unreachable(describe(&e))),
                    Err(_) => return Err(timed_out()),
                }
            }
        };
        docker.set_timeout(REQUEST_TIMEOUT);
        Ok(DockerEngine {
            docker,
            endpoint: endpoint.to_string(),
            created: Default::default(),
        })
    }
}

/// One name for every way `DOCKER_HOST` can point at one engine: a unix
/// socket by its canonical path (`/var/run` is often a link to `/run`), a TCP
/// endpoint with `http://` read as `tcp://`, lowercased, without a trailing `/`.
pub(super) fn endpoint_identity(endpoint: &str) -> String {
    if let Some(path) = endpoint.strip_prefix("unix://") {
        let path = std::path::Path::new(path);
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        return format!("unix://{}", canonical.display());
    }
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("tcp", endpoint));
    let scheme = match scheme {
        "http" => "tcp",
        other => other,
    };
    format!(
        "{scheme}://{}",
        rest.trim_end_matches('/').to_ascii_lowercase()
    )
}

/// The API version an engine on a unix socket speaks, from the `Api-Version`
/// header of `GET /_ping` (how the docker CLI negotiates). `Err` says why the
/// engine is unreachable.
async fn ping_api_version(path: &str) -> Result<ClientVersion, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| e.to_string())?;
    sock.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    // HTTP/1.0: the engine closes the connection after the short body. A
    // head that never ends is not an engine's.
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = sock.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_api_version(&String::from_utf8_lossy(&head))
}

/// The `Api-Version` of a response head, when its status is 200.
fn parse_api_version(head: &str) -> Result<ClientVersion, String> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("`/_ping` answered `{}`", status.trim()));
    }
    let value = lines
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("api-version")
                .then(|| v.trim())
        })
        .ok_or("`/_ping` names no API version")?;
    let (major, minor) = value
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| format!("the engine's API version `{value}` is not MAJOR.MINOR"))?;
    Ok(ClientVersion {
        major_version: major,
        minor_version: minor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_engine_has_one_identity_however_it_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        std::fs::write(&sock, "").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let direct = endpoint_identity(&format!("unix://{}", sock.display()));
        let linked = endpoint_identity(&format!("unix://{}/docker.sock", link.display()));
        assert_eq!(direct, linked);
        assert_eq!(
            endpoint_identity("http://Host:2375/"),
            endpoint_identity("tcp://host:2375")
        );
        assert_ne!(
            endpoint_identity("tcp://host:2375"),
            endpoint_identity("tcp://host:2376")
        );
    }

    #[test]
    fn the_api_version_is_read_off_the_ping_headers() {
        let head = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\n\r\nOK";
        let v = parse_api_version(head).unwrap();
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        let lower = "HTTP/1.1 200 OK\r\napi-version:1.40\r\n\r\n";
        assert_eq!(parse_api_version(lower).unwrap().minor_version, 40);
        assert!(parse_api_version("HTTP/1.1 500 Internal\r\n\r\n").is_err());
        assert!(parse_api_version("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n").is_err());
        assert!(parse_api_version("HTTP/1.1 200 OK\r\nApi-Version: v2\r\n\r\n").is_err());
    }
}
