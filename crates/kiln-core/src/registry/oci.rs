//! [`OciRegistry`]: the only code that knows the OCI distribution HTTP API
//! (`/v2/…`: blob HEAD, monolithic and chunked uploads, cross-repository
//! mounts, manifest GET/PUT/DELETE, tag lists) and how registries
//! authenticate: a `401` names a Basic or Bearer challenge; Bearer means
//! asking the realm for a token for the challenge's scope, with the user's
//! credentials from Docker's `config.json` (`auths`, `credsStore`,
//! `credHelpers`, read by the `docker_credential` crate; `DOCKER_CONFIG`
//! honoured). Credentials live in memory only and never reach a message.
//!
//! Written on ureq rather than `oci-client`: that crate has no manifest
//! delete (retention needs it) and would bring a second HTTP stack (reqwest)
//! beside ureq, which kiln already uses for tools.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ureq::http::Response;
use ureq::{Agent, Body, SendBody};

use super::{
    MEDIA_DOCKER_MANIFEST, MEDIA_MANIFEST, Manifest, Registry, RegistryError, RegistryResult,
};

/// Blobs larger than this go up in PATCH chunks of this size.
pub const DEFAULT_CHUNK: u64 = 64 << 20;

/// Where a registry's credentials come from.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Docker's `config.json` in this directory (`DOCKER_CONFIG`, else `~/.docker`).
    DockerConfig(Option<PathBuf>),
    /// None: anonymous access only.
    Anonymous,
}

impl Credentials {
    /// Docker's own lookup: `DOCKER_CONFIG`, else `$HOME/.docker`.
    pub fn from_env() -> Credentials {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")));
        Credentials::DockerConfig(dir)
    }

    /// The credentials for `host`, as the engine takes them for a pull;
    /// `None` when there are none (an anonymous pull).
    pub fn engine_auth(&self, host: &str) -> Option<crate::engine::RegistryAuth> {
        use docker_credential::DockerCredential;
        let mut auth = crate::engine::RegistryAuth {
            server: host.to_string(),
            ..Default::default()
        };
        match self.lookup(host)? {
            DockerCredential::UsernamePassword(u, p) => {
                auth.username = Some(u);
                auth.password = Some(p);
            }
            DockerCredential::IdentityToken(t) => auth.identity_token = Some(t),
        }
        Some(auth)
    }

    fn lookup(&self, host: &str) -> Option<docker_credential::DockerCredential> {
        let Credentials::DockerConfig(Some(dir)) = self else {
            return None;
        };
        let file = std::fs::File::open(dir.join("config.json")).ok()?;
        docker_credential::get_credential_from_reader(std::io::BufReader::new(file), host).ok()
    }
}

/// A registry spoken to over HTTP(S). Loopback hosts (`localhost`,
/// `127.*`, `[::1]`) are plain HTTP, as Docker treats them; others HTTPS.
pub struct OciRegistry {
    host: String,
    base: String,
    agent: Agent,
    credentials: Credentials,
    /// The `Authorization` value that worked, per repository.
    auth: Mutex<BTreeMap<String, String>>,
    chunk: u64,
}

enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
}

impl OciRegistry {
    /// A client for `host` (`HOST[:PORT]`), with Docker's credentials.
    pub fn new(host: &str) -> OciRegistry {
        OciRegistry::with_credentials(host, Credentials::from_env())
    }

    pub fn with_credentials(host: &str, credentials: Credentials) -> OciRegistry {
        let plain =
            host.starts_with("localhost") || host.starts_with("127.") || host.starts_with("[::1]");
        let scheme = if plain { "http" } else { "https" };
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        OciRegistry {
            host: host.to_string(),
            base: format!("{scheme}://{host}"),
            agent,
            credentials,
            auth: Mutex::new(BTreeMap::new()),
            chunk: DEFAULT_CHUNK,
        }
    }

    /// Uploads blobs larger than `bytes` in chunks of that size.
    pub fn with_chunk_size(mut self, bytes: u64) -> OciRegistry {
        self.chunk = bytes.max(1);
        self
    }

    fn unreachable(&self, op: &str, e: impl std::fmt::Display) -> RegistryError {
        RegistryError::Unreachable {
            registry: self.host.clone(),
            op: op.to_string(),
            message: e.to_string(),
        }
    }

    fn refused(&self, op: &str, mut resp: Response<Body>) -> RegistryError {
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        let unsupported = body.contains("UNSUPPORTED");
        match status {
            401 | 403 => RegistryError::Unauthorized {
                registry: self.host.clone(),
                op: op.to_string(),
            },
            405 if op.contains("delete") => RegistryError::DeleteDisabled {
                registry: self.host.clone(),
                op: op.to_string(),
            },
            _ if unsupported && op.contains("delete") => RegistryError::DeleteDisabled {
                registry: self.host.clone(),
                op: op.to_string(),
            },
            _ => RegistryError::Refused {
                registry: self.host.clone(),
                op: op.to_string(),
                status,
                message: body.chars().take(300).collect(),
            },
        }
    }

    /// The response's body as JSON; a registry that answers otherwise is
    /// not one (a proxy's error page, say), hence `Unreachable`.
    fn json(
        &self,
        op: &str,
        resp: &mut Response<Body>,
        what: &str,
    ) -> RegistryResult<serde_json::Value> {
        resp.body_mut()
            .read_to_vec()
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| self.unreachable(op, format!("{what} is not JSON")))
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// One request with the repository's known authorization; on a `401`,
    /// answers the challenge once and retries.
    fn call(
        &self,
        op: &str,
        repo: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> RegistryResult<Response<Body>> {
        let mut answered = false;
        loop {
            let auth = self.auth.lock().expect("auth").get(repo).cloned();
            let resp = self.send(method, &self.url(path), headers, auth.as_deref(), &payload);
            let resp = resp.map_err(|e| self.unreachable(op, e))?;
            if resp.status().as_u16() != 401 || answered {
                return Ok(resp);
            }
            answered = true;
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let Some(value) = self.answer(op, repo, &challenge)? else {
                return Ok(resp);
            };
            self.auth
                .lock()
                .expect("auth")
                .insert(repo.to_string(), value);
        }
    }

    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        payload: &Payload<'_>,
    ) -> Result<Response<Body>, ureq::Error> {
        macro_rules! with_headers {
            ($req:expr) => {{
                let mut req = $req;
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                if let Some(a) = auth {
                    req = req.header("Authorization", a);
                }
                req
            }};
        }
        match (method, payload) {
            ("GET", _) => with_headers!(self.agent.get(url)).call(),
            ("HEAD", _) => with_headers!(self.agent.head(url)).call(),
            ("DELETE", _) => with_headers!(self.agent.delete(url)).call(),
            ("POST", Payload::Empty) => with_headers!(self.agent.post(url)).send_empty(),
            ("PUT", Payload::Empty) => with_headers!(self.agent.put(url)).send_empty(),
            ("PUT", Payload::Bytes(b)) => with_headers!(self.agent.put(url)).send(*b),
            (m, _) => unreachable!("kiln sends no {m} with this payload"),
        }
    }

    /// The `Authorization` value answering `challenge`, or `None` when there
    /// is nothing to answer it with (the caller reports the `401`).
    fn answer(&self, op: &str, repo: &str, challenge: &str) -> RegistryResult<Option<String>> {
        use docker_credential::DockerCredential;
        let credential = self.credentials.lookup(&self.host);
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let params = parse_params(params);
        if scheme.eq_ignore_ascii_case("basic") {
            return Ok(match credential {
                Some(DockerCredential::UsernamePassword(u, p)) => {
                    Some(format!("Basic {}", base64(format!("{u}:{p}").as_bytes())))
                }
                _ => None,
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let Some(realm) = params.get("realm") else {
            return Ok(None);
        };
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{repo}:pull,push"));
        let mut query = vec![("scope", scope.as_str())];
        if let Some(service) = params.get("service") {
            query.push(("service", service));
        }
        let resp = match &credential {
            Some(DockerCredential::IdentityToken(token)) => {
                let mut form = query.clone();
                form.extend([
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", "kiln"),
                ]);
                self.agent.post(realm).send_form(form)
            }
            other => {
                let mut req = self.agent.get(realm);
                for (k, v) in &query {
                    req = req.query(*k, *v);
                }
                if let Some(DockerCredential::UsernamePassword(u, p)) = other {
                    let basic = base64(format!("{u}:{p}").as_bytes());
                    req = req.header("Authorization", format!("Basic {basic}"));
                }
                req.call()
            }
        };
        let mut resp = resp.map_err(|e| self.unreachable(op, e))?;
        if !resp.status().is_success() {
            return Err(RegistryError::Unauthorized {
                registry: self.host.clone(),
                op: op.to_string(),
            });
        }
        let body = self.json(op, &mut resp, "the token answer")?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str());
        Ok(token.map(|t| format!("Bearer {t}")))
    }

    fn start_upload(&self, op: &str, repo: &str, query: &str) -> RegistryResult<Response<Body>> {
        let path = format!("/v2/{repo}/blobs/uploads/{query}");
        self.call(op, repo, "POST", &path, &[], Payload::Empty)
    }

    fn location(&self, op: &str, resp: &Response<Body>) -> RegistryResult<String> {
        resp.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Refused {
                registry: self.host.clone(),
                op: op.to_string(),
                status: resp.status().as_u16(),
                message: "no upload location".to_string(),
            })
    }

    /// Sends `len` bytes of `body` with `method` to an upload location,
    /// under the repository's authorization (settled by the POST before).
    fn send_part(
        &self,
        repo: &str,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &mut (dyn Read + Send),
        len: u64,
    ) -> RegistryResult<Response<Body>> {
        let op = "blob upload";
        let auth = self.auth.lock().expect("auth").get(repo).cloned();
        let url = self.url(url);
        let length = len.to_string();
        let mut part = body.take(len);
        let mut req = match method {
            "PATCH" => self.agent.patch(&url),
            _ => self.agent.put(&url),
        }
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", &length);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send(SendBody::from_reader(&mut part))
            .map_err(|e| self.unreachable(op, e))
    }
}

fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}

/// `realm="…",service="…",scope="…"` as a map.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            quoted.split_once('"').unwrap_or((quoted, ""))
        } else {
            after.split_once(',').unwrap_or((after, ""))
        };
        out.insert(key, value.to_string());
        rest = tail.trim_start_matches(',').trim();
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Registry for OciRegistry {
    fn host(&self) -> &str {
        &self.host
    }

    fn blob_size(&self, repo: &str, digest: &str) -> RegistryResult<Option<u64>> {
        let op = "blob exists";
        let path = format!("/v2/{repo}/blobs/{digest}");
        let resp = self.call(op, repo, "HEAD", &path, &[], Payload::Empty)?;
        match resp.status().as_u16() {
            200 => Ok(resp
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse().ok())),
            404 => Ok(None),
            _ => Err(self.refused(op, resp)),
        }
    }

    fn blob_upload(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: &mut (dyn Read + Send),
    ) -> RegistryResult<()> {
        let op = "blob upload";
        let resp = self.start_upload(op, repo, "")?;
        if resp.status().as_u16() != 202 {
            return Err(self.refused(op, resp));
        }
        let mut location = self.location(op, &resp)?;
        if size <= self.chunk {
            let url = with_query(&location, "digest", digest);
            let resp = self.send_part(repo, "PUT", &url, &[], body, size)?;
            return match resp.status().as_u16() {
                201 => Ok(()),
                _ => Err(self.refused(op, resp)),
            };
        }
        let mut sent = 0;
        while sent < size {
            let len = self.chunk.min(size - sent);
            let range = format!("{sent}-{}", sent + len - 1);
            let headers = [("Content-Range", range.as_str())];
            let resp = self.send_part(repo, "PATCH", &location, &headers, body, len)?;
            if resp.status().as_u16() != 202 {
                return Err(self.refused(op, resp));
            }
            location = self.location(op, &resp)?;
            sent += len;
        }
        let url = with_query(&location, "digest", digest);
        let resp = self.send_part(repo, "PUT", &url, &[], &mut std::io::empty(), 0)?;
        match resp.status().as_u16() {
            201 => Ok(()),
            _ => Err(self.refused(op, resp)),
        }
    }

    fn blob_mount(&self, repo: &str, digest: &str, from_repo: &str) -> RegistryResult<bool> {
        let op = "blob mount";
        let query = format!("?mount={digest}&from={from_repo}");
        let resp = self.start_upload(op, repo, &query)?;
        match resp.status().as_u16() {
            201 => Ok(true),
            // The registry opened an upload instead; leave it to expire.
            202 => Ok(false),
            _ => Err(self.refused(op, resp)),
        }
    }

    fn blob_get(&self, repo: &str, digest: &str, sink: &mut dyn Write) -> RegistryResult<u64> {
        let op = "blob pull";
        let path = format!("/v2/{repo}/blobs/{digest}");
        let mut resp = self.call(op, repo, "GET", &path, &[], Payload::Empty)?;
        match resp.status().as_u16() {
            200 => std::io::copy(&mut resp.body_mut().as_reader(), sink)
                .map_err(|e| self.unreachable(op, e)),
            404 => Err(RegistryError::NotFound {
                registry: self.host.clone(),
                op: op.to_string(),
                what: format!("blob `{digest}` in `{repo}`"),
            }),
            _ => Err(self.refused(op, resp)),
        }
    }

    fn manifest_get(&self, repo: &str, reference: &str) -> RegistryResult<Option<Manifest>> {
        let op = "manifest pull";
        let path = format!("/v2/{repo}/manifests/{reference}");
        let accept = format!("{MEDIA_MANIFEST}, {MEDIA_DOCKER_MANIFEST}");
        let headers = [("Accept", accept.as_str())];
        let mut resp = self.call(op, repo, "GET", &path, &headers, Payload::Empty)?;
        match resp.status().as_u16() {
            200 => {
                let media_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(MEDIA_MANIFEST)
                    .to_string();
                let bytes = resp
                    .body_mut()
                    .read_to_vec()
                    .map_err(|e| self.unreachable(op, e))?;
                Ok(Some(Manifest::new(&media_type, bytes)))
            }
            404 => Ok(None),
            _ => Err(self.refused(op, resp)),
        }
    }

    fn manifest_digest(&self, repo: &str, reference: &str) -> RegistryResult<Option<String>> {
        let op = "manifest lookup";
        let path = format!("/v2/{repo}/manifests/{reference}");
        let accept = format!("{MEDIA_MANIFEST}, {MEDIA_DOCKER_MANIFEST}");
        let headers = [("Accept", accept.as_str())];
        let resp = self.call(op, repo, "HEAD", &path, &headers, Payload::Empty)?;
        match resp.status().as_u16() {
            200 => match resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
            {
                Some(d) => Ok(Some(d.to_string())),
                // A registry that names no digest: read the manifest for it.
                None => Ok(self.manifest_get(repo, reference)?.map(|m| m.digest)),
            },
            404 => Ok(None),
            _ => Err(self.refused(op, resp)),
        }
    }

    fn manifest_put(
        &self,
        repo: &str,
        reference: &str,
        manifest: &Manifest,
    ) -> RegistryResult<String> {
        let op = "manifest push";
        let path = format!("/v2/{repo}/manifests/{reference}");
        let headers = [("Content-Type", manifest.media_type.as_str())];
        let payload = Payload::Bytes(&manifest.bytes);
        let resp = self.call(op, repo, "PUT", &path, &headers, payload)?;
        match resp.status().as_u16() {
            201 => Ok(manifest.digest.clone()),
            _ => Err(self.refused(op, resp)),
        }
    }

    fn manifest_delete(&self, repo: &str, digest: &str) -> RegistryResult<()> {
        let op = "manifest delete";
        let path = format!("/v2/{repo}/manifests/{digest}");
        let resp = self.call(op, repo, "DELETE", &path, &[], Payload::Empty)?;
        match resp.status().as_u16() {
            202 | 200 => Ok(()),
            404 => Err(RegistryError::NotFound {
                registry: self.host.clone(),
                op: op.to_string(),
                what: format!("manifest `{digest}` in `{repo}`"),
            }),
            _ => Err(self.refused(op, resp)),
        }
    }

    fn tags(&self, repo: &str) -> RegistryResult<Vec<String>> {
        let op = "tag list";
        let mut path = format!("/v2/{repo}/tags/list?n=1000");
        let mut out = Vec::new();
        loop {
            let mut resp = self.call(op, repo, "GET", &path, &[], Payload::Empty)?;
            match resp.status().as_u16() {
                200 => {}
                404 => return Ok(Vec::new()),
                _ => return Err(self.refused(op, resp)),
            }
            // `Link: </v2/…?last=…&n=…>; rel="next"` when there are more.
            let next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| Some(l.split_once('<')?.1.split_once('>')?.0.to_string()));
            let body = self.json(op, &mut resp, "the tag list")?;
            if let Some(tags) = body.get("tags").and_then(|t| t.as_array()) {
                out.extend(tags.iter().filter_map(|t| t.as_str().map(str::to_string)));
            }
            match next {
                Some(n) => path = n,
                None => break,
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params_parse_quoted_and_bare() {
        let p = parse_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
    }

    /// A registry that wants a Bearer token from its realm, and a realm that
    /// gives one for the right Basic credentials: the flow distribution's
    /// `token` auth (and Docker Hub, GHCR…) uses, which htpasswd does not.
    fn serve_token_flow(user: &str, password: &str) -> String {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let basic = format!("Basic {}", base64(format!("{user}:{password}").as_bytes()));
        let realm = format!("http://{host}/token");
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let (mut request, mut auth) = (String::new(), String::new());
                reader.read_line(&mut request).ok();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, v)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("authorization")
                    {
                        auth = v.trim().to_string();
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, extra, body) = if path.starts_with("/token") {
                    // However the client escapes it, the scope asked for is the challenge's.
                    let decoded = path
                        .replace("%3A", ":")
                        .replace("%2F", "/")
                        .replace("%3a", ":")
                        .replace("%2f", "/");
                    let scoped = decoded.contains("scope=repository:team/app:pull");
                    if auth == basic && scoped {
                        ("200 OK", String::new(), r#"{"token":"T0K3N"}"#.to_string())
                    } else {
                        ("401 Unauthorized", String::new(), String::new())
                    }
                } else if auth == "Bearer T0K3N" {
                    ("200 OK", String::new(), r#"{"tags":["b","a"]}"#.to_string())
                } else {
                    let challenge = format!(
                        "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"test\",scope=\"repository:team/app:pull\"\r\n"
                    );
                    ("401 Unauthorized", challenge, String::new())
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
        });
        host
    }

    fn docker_config(host: &str, user: &str, password: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = base64(format!("{user}:{password}").as_bytes());
        let json = serde_json::json!({ "auths": { host: { "auth": auth } } });
        std::fs::write(dir.path().join("config.json"), json.to_string()).expect("write");
        dir
    }

    #[test]
    fn a_bearer_challenge_is_answered_with_a_token_from_the_realm() {
        let host = serve_token_flow("kiln", "pw");
        let dir = docker_config(&host, "kiln", "pw");
        let creds = Credentials::DockerConfig(Some(dir.path().to_path_buf()));
        let r = OciRegistry::with_credentials(&host, creds);
        assert_eq!(r.tags("team/app").expect("tags"), ["a", "b"]);
    }

    #[test]
    fn a_realm_refusing_the_credentials_is_unauthorized() {
        let host = serve_token_flow("kiln", "pw");
        let dir = docker_config(&host, "kiln", "nope");
        let creds = Credentials::DockerConfig(Some(dir.path().to_path_buf()));
        let r = OciRegistry::with_credentials(&host, creds);
        let err = r.tags("team/app").expect_err("wrong password");
        assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    }

    #[test]
    fn base64_pads_like_the_standard() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("user:pw", "dXNlcjpwdw=="),
        ] {
            assert_eq!(base64(input.as_bytes()), want, "{input}");
        }
    }
}
