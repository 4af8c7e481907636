//! Containers attached to this process's terminal (interactive `kiln start`
//! and `kiln exec`): the only place in kiln that touches the terminal, through
//! the `docker` CLI when it is installed and the attach API otherwise.

use bollard::container::LogOutput;
use bollard::query_parameters::{AttachContainerOptions, StartContainerOptions};
use futures_util::StreamExt;

use super::super::{Engine, EngineResult, Stream};
use super::{DockerEngine, no_such_container, refused};

impl DockerEngine {
    /// Uses the `docker` CLI (`docker start -ai`) when it is installed, which
    /// handles raw mode and resizes; otherwise attaches through the API with the
    /// terminal left in line mode.
    pub(super) async fn run_on_terminal(&self, id: &str) -> EngineResult<i64> {
        if docker_cli_on_path() {
            self.run_interactive_cli(id).await
        } else {
            self.run_interactive_api(id).await
        }
    }

    /// `docker exec -i[t]` when the CLI is installed (raw mode, resizes);
    /// otherwise a non-interactive exec whose output is copied to ours.
    pub(super) async fn exec_on_terminal(&self, id: &str, cmd: &[String]) -> EngineResult<i64> {
        if !docker_cli_on_path() {
            // Straight to this process's own streams: this is the terminal
            // attach, the one place below the CLI that may write to them.
            let mut print = |stream: Stream, line: &str| {
                use std::io::Write;
                let _ = match stream {
                    Stream::Stdout => writeln!(std::io::stdout(), "{line}"),
                    Stream::Stderr => writeln!(std::io::stderr(), "{line}"),
                };
            };
            return self.exec(id, cmd, &mut print).await;
        }
        let mut args = vec!["exec".to_string(), "-i".to_string()];
        if stdin_is_tty() {
            args.push("-t".to_string());
        }
        args.push(id.to_string());
        args.extend(cmd.iter().cloned());
        let status = tokio::process::Command::new("docker")
            .args(&args)
            .env("DOCKER_HOST", &self.endpoint)
            .status()
            .await
            .map_err(|e| refused("exec", format!("cannot run `docker`: {e}")))?;
        Ok(status.code().map_or(-1, i64::from))
    }

    /// The interactive fallback used when the `docker` CLI is on PATH: it
    /// already knows raw mode, window resizes and detach keys, so kiln reuses it.
    async fn run_interactive_cli(&self, id: &str) -> EngineResult<i64> {
        let status = tokio::process::Command::new("docker")
            .args(["start", "--attach", "--interactive", id])
            .env("DOCKER_HOST", &self.endpoint)
            .status()
            .await
            .map_err(|e| refused("start container", format!("cannot run `docker`: {e}")))?;
        Ok(status.code().map_or(-1, i64::from))
    }

    /// Without the CLI: attach (no raw mode, so line-buffered input), pipe
    /// stdin → container and container → stdout, wait for the exit code.
    async fn run_interactive_api(&self, id: &str) -> EngineResult<i64> {
        use tokio::io::AsyncWriteExt;
        let options = AttachContainerOptions {
            stdin: true,
            stdout: true,
            stderr: true,
            stream: true,
            ..Default::default()
        };
        let attached = self
            .docker
            .attach_container(id, Some(options))
            .await
            .map_err(|e| self.error("attach container", e, no_such_container(id)))?;
        self.docker
            .start_container(id, None::<StartContainerOptions>)
            .await
            .map_err(|e| self.error("start container", e, no_such_container(id)))?;
        // Read stdin on a plain thread (a blocking read cannot be cancelled; the
        // thread ends with the process) and forward it through a channel.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut input = attached.input;
        let pump = tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if input.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = input.shutdown().await;
        });
        let mut output = attached.output;
        while let Some(chunk) = output.next().await {
            use std::io::Write;
            match chunk {
                Ok(LogOutput::StdErr { message }) => {
                    let mut stderr = std::io::stderr();
                    let _ = stderr.write_all(&message);
                    let _ = stderr.flush();
                }
                Ok(other) => {
                    let mut stdout = std::io::stdout();
                    let _ = stdout.write_all(other.as_ref());
                    let _ = stdout.flush();
                }
                Err(_) => break,
            }
        }
        pump.abort();
        self.exit_code(id).await
    }
}

/// Whether this process's stdin is a terminal (`docker exec -t` needs one).
fn stdin_is_tty() -> bool {
    std::fs::read_link("/proc/self/fd/0").is_ok_and(|p| {
        let p = p.to_string_lossy();
        p.starts_with("/dev/pts/") || p.starts_with("/dev/tty")
    })
}

/// Whether the `docker` CLI is on `PATH` (then it gets the terminal).
fn docker_cli_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("docker").is_file()))
}
