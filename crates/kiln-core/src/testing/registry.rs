//! A real OCI registry for tests: Debian's `docker-registry` (distribution
//! 2.8) started on a free loopback port with its own config and storage in a
//! temporary directory, deletes enabled or not, optionally behind htpasswd
//! auth. Stopped (its process killed, its storage removed) when dropped.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TestError, apt_install};

const BINARY: &str = "/usr/bin/docker-registry";

/// A running registry; `host` is `127.0.0.1:PORT`.
pub struct LocalRegistry {
    pub host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// How to start one.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// `storage.delete.enabled`.
    pub deletes: bool,
    /// htpasswd auth with this user and password.
    pub user: Option<(String, String)>,
}

impl LocalRegistry {
    pub fn start(options: &RegistryOptions) -> Result<LocalRegistry, TestError> {
        if !Path::new(BINARY).is_file() {
            apt_install("docker-registry", BINARY)?;
        }
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let host = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        if let Some((user, password)) = &options.user {
            if !Path::new("/usr/bin/htpasswd").is_file() {
                apt_install("apache2-utils", "/usr/bin/htpasswd")?;
            }
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()?;
            if !out.status.success() {
                return Err("htpasswd failed".into());
            }
            std::fs::write(dir.path().join("htpasswd"), &out.stdout)?;
            auth = format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {}\n\
             http:\n  addr: {host}\n{auth}",
            dir.path().join("storage").display(),
            options.deletes
        );
        let config_path = dir.path().join("config.yml");
        std::fs::File::create(&config_path)?.write_all(config.as_bytes())?;
        let child = Command::new(BINARY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut registry = LocalRegistry {
            host,
            child,
            _dir: dir,
        };
        registry.wait_until_up()?;
        Ok(registry)
    }

    fn wait_until_up(&mut self) -> Result<(), TestError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("docker-registry exited with {status}").into());
            }
            if std::net::TcpStream::connect(&self.host).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("docker-registry did not listen on {} within 30s", self.host).into())
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a Docker `config.json` with `auths` for `host` into `dir`.
pub fn write_docker_config(
    dir: &Path,
    host: &str,
    user: &str,
    password: &str,
) -> std::io::Result<()> {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let json = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::write(dir.join("config.json"), json.to_string())
}
