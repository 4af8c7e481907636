//! The init's side effects: starting services and the main process as their
//! users, prefixing their output, keeping their last lines for a failure
//! report, running probe attempts, signalling, and the healthcheck's state file.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kiln_init::spec::{Check, SPEC_VERSION, Spec};
use kiln_init::supervise::{Event, Failure, Supervisor, Target};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// Lines of a service's output a failure report shows.
pub const TAIL_LINES: usize = 20;

/// One line on stderr, from the init itself.
pub fn say(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "kiln-init: {message}");
}

pub fn load_spec(path: &Path) -> Result<Spec, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // No spec: a plain init for the command alone.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Spec {
                version: SPEC_VERSION,
                services: Vec::new(),
                main: Default::default(),
            });
        }
        Err(err) => return Err(format!("cannot read `{}`: {err}", path.display())),
    };
    let spec: Spec = serde_json::from_str(&text)
        .map_err(|err| format!("cannot parse `{}`: {err}", path.display()))?;
    if spec.version != SPEC_VERSION {
        return Err(format!(
            "`{}` is version {}, this init reads version {SPEC_VERSION}",
            path.display(),
            spec.version
        ));
    }
    Ok(spec)
}

/// What a reaped pid was.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Service(usize),
    Main,
    Probe(usize),
}

/// The processes the init started, and their output.
pub struct Children {
    spec: Spec,
    pids: HashMap<i32, Kind>,
    service_pid: Vec<Option<i32>>,
    main_pid: Option<i32>,
    tails: Vec<Arc<Mutex<VecDeque<String>>>>,
    readers: Vec<Vec<JoinHandle<()>>>,
}

impl Children {
    pub fn new(spec: &Spec) -> Self {
        let n = spec.services.len();
        Children {
            spec: spec.clone(),
            pids: HashMap::new(),
            service_pid: vec![None; n],
            main_pid: None,
            tails: (0..n).map(|_| Arc::default()).collect(),
            readers: (0..n).map(|_| Vec::new()).collect(),
        }
    }

    /// Start service `i`; an event when it did not start (skipped, or failed).
    pub fn start(&mut self, i: usize) -> Option<Event> {
        let service = &self.spec.services[i];
        if service.oneshot
            && service
                .creates
                .as_ref()
                .is_some_and(|p| Path::new(p).exists())
        {
            return Some(Event::Skipped(i));
        }
        let mut cmd = match command(
            &service.command,
            service.user.as_deref(),
            service.workdir.as_deref(),
            &service.env,
        ) {
            Ok(cmd) => cmd,
            Err(error) => {
                return Some(Event::SpawnFailed {
                    target: Target::Service(i),
                    error,
                });
            }
        };
        // Its own process group, so a stop signal reaches a shell's children too.
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match cmd.spawn() {
            Ok(mut child) => {
                let pid = child.id() as i32;
                self.pids.insert(pid, Kind::Service(i));
                self.service_pid[i] = Some(pid);
                let prefix = format!("{} | ", service.name);
                let tail = &self.tails[i];
                let readers = &mut self.readers[i];
                readers.retain(|r| !r.is_finished());
                if let Some(out) = child.stdout.take() {
                    readers.push(pump(out, prefix.clone(), tail.clone(), false));
                }
                if let Some(err) = child.stderr.take() {
                    readers.push(pump(err, prefix, tail.clone(), true));
                }
                // Dropping `child` neither waits nor kills; the pid is reaped in `reap`.
                None
            }
            Err(err) => Some(Event::SpawnFailed {
                target: Target::Service(i),
                error: format!("`{}`: {err}", service.command.join(" ")),
            }),
        }
    }

    pub fn start_main(&mut self, argv: &[String], user: Option<&str>) -> Result<(), String> {
        let mut cmd = command(argv, user, None, &[])?;
        let child = cmd
            .spawn()
            .map_err(|err| format!("`{}`: {err}", argv.join(" ")))?;
        let pid = child.id() as i32;
        self.pids.insert(pid, Kind::Main);
        self.main_pid = Some(pid);
        Ok(())
    }

    /// One attempt of service `i`'s probe: an answer now, or none while a
    /// command probe runs (its exit answers).
    pub fn probe(&mut self, i: usize) -> Option<Event> {
        let service = &self.spec.services[i];
        let probe = service.ready.as_ref()?;
        // One attempt never takes longer than the interval, nor than a second.
        let limit = Duration::from_millis(probe.interval_ms.clamp(50, 1000));
        let passed = match &probe.check {
            Check::Command(argv) => {
                let started = command(
                    argv,
                    service.user.as_deref(),
                    service.workdir.as_deref(),
                    &service.env,
                )
                .and_then(|mut cmd| {
                    cmd.stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .map_err(|e| e.to_string())
                });
                match started {
                    Ok(child) => {
                        self.pids.insert(child.id() as i32, Kind::Probe(i));
                        return None;
                    }
                    Err(_) => false,
                }
            }
            Check::Tcp(port) => {
                TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], *port)), limit)
                    .is_ok()
            }
            Check::Unix(path) => UnixStream::connect(path).is_ok(),
            Check::Http(url) => http_ok(url, limit),
            Check::File(path) => Path::new(path).exists(),
        };
        Some(if passed {
            Event::ProbePassed(i)
        } else {
            Event::ProbeFailed(i)
        })
    }

    /// The reaped pid's kind, forgetting it.
    pub fn ended(&mut self, pid: i32) -> Option<Kind> {
        let kind = self.pids.remove(&pid)?;
        match kind {
            Kind::Service(i) => self.service_pid[i] = None,
            Kind::Main => self.main_pid = None,
            Kind::Probe(_) => {}
        }
        Some(kind)
    }

    pub fn signal(&self, target: Target, signal: i32) {
        let Ok(sig) = Signal::try_from(signal) else {
            return;
        };
        match target {
            Target::Service(i) => {
                if let Some(pid) = self.service_pid[i]
                    && killpg(Pid::from_raw(pid), sig).is_err()
                {
                    let _ = kill(Pid::from_raw(pid), sig);
                }
            }
            Target::Main => {
                if let Some(pid) = self.main_pid {
                    let _ = kill(Pid::from_raw(pid), sig);
                }
            }
        }
    }

    /// Signal every child process of the init (orphans are reparented to it).
    pub fn signal_all(&self, signal: i32) {
        let Ok(sig) = Signal::try_from(signal) else {
            return;
        };
        for pid in own_children() {
            let _ = kill(Pid::from_raw(pid), sig);
        }
    }

    /// Waits (a second at most) for the readers to hand on the services'
    /// last lines: the init exits right after the last one is reaped, which
    /// would cut off what it printed on its way out ("database system is shut
    /// down"). Every writer is gone by then, so the readers end at once.
    pub fn flush_output(&self) {
        let until = Instant::now() + Duration::from_secs(1);
        while self.readers.iter().flatten().any(|r| !r.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn report(&mut self, failure: &Failure) {
        let name = failure.service();
        let index = self.spec.services.iter().position(|s| s.name == name);
        say(&format!("error: {failure}"));
        let Some(i) = index else { return };
        // The reader threads may still hold the last lines; give them a moment.
        let until = Instant::now() + Duration::from_millis(500);
        while self.readers[i].iter().any(|r| !r.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let tail = self.tails[i].lock().map(|t| t.clone()).unwrap_or_default();
        if tail.is_empty() {
            say(&format!("`{name}` printed nothing"));
        } else {
            say(&format!("last {} lines of `{name}`:", tail.len()));
            let mut err = std::io::stderr().lock();
            for line in tail {
                let _ = writeln!(err, "  {name} | {line}");
            }
        }
    }
}

/// A command for `argv` as `user`, in `workdir`, with `env` added.
fn command(
    argv: &[String],
    user: Option<&str>,
    workdir: Option<&str>,
    env: &[(String, String)],
) -> Result<Command, String> {
    let (program, args) = argv.split_first().ok_or("an empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(user) = user {
        let account = lookup_user(user)?;
        // std drops supplementary groups when it changes uid as root.
        cmd.uid(account.uid)
            .gid(account.gid)
            .env("HOME", &account.home)
            .env("USER", &account.name)
            .env("LOGNAME", &account.name);
        if workdir.is_none() && Path::new(&account.home).is_dir() {
            cmd.current_dir(&account.home);
        }
    }
    if let Some(dir) = workdir {
        cmd.current_dir(dir);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    Ok(cmd)
}

struct Account {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// A user by name or number, from `/etc/passwd` (static glibc has no NSS).
fn lookup_user(user: &str) -> Result<Account, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let numeric: Option<u32> = user.parse().ok();
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(uid), Ok(gid)) = (f[2].parse(), f[3].parse()) else {
            continue;
        };
        if f[0] == user || numeric == Some(uid) {
            return Ok(Account {
                name: f[0].to_string(),
                uid,
                gid,
                home: f[5].to_string(),
            });
        }
    }
    match numeric {
        Some(uid) => Ok(Account {
            name: user.to_string(),
            uid,
            gid: uid,
            home: "/".to_string(),
        }),
        None => Err(format!("no user `{user}` in /etc/passwd")),
    }
}

/// Copy `from` line by line to stdout or stderr with `prefix`, keeping the last lines.
fn pump(
    from: impl Read + Send + 'static,
    prefix: String,
    tail: Arc<Mutex<VecDeque<String>>>,
    stderr: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            let text = format!("{prefix}{line}\n");
            // One write per line under the lock, so lines of services never mix.
            let _ = if stderr {
                std::io::stderr().lock().write_all(text.as_bytes())
            } else {
                std::io::stdout().lock().write_all(text.as_bytes())
            };
            if let Ok(mut t) = tail.lock() {
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(line.to_string());
            }
        }
    })
}

/// A 2xx answer to `GET` of an `http://host[:port]/path` URL.
fn http_ok(url: &str, limit: Duration) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let Ok(mut addrs) = std::net::ToSocketAddrs::to_socket_addrs(&addr) else {
        return false;
    };
    let Some(sock) = addrs.next() else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&sock, limit) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(limit));
    let _ = stream.set_write_timeout(Some(limit));
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: kiln-init\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut status = String::new();
    if BufReader::new(stream).read_line(&mut status).is_err() {
        return false;
    }
    // "HTTP/1.1 200 OK"
    status
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.len() == 3 && code.starts_with('2'))
}

/// The pids whose parent is this process, from /proc.
fn own_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // The name in parentheses may hold spaces: the fields start after its `)`.
                    let after = &stat[stat.rfind(')')? + 2..];
                    after.split(' ').nth(1)?.parse::<i32>().ok()
                })
                == Some(me)
        })
        .collect()
}

/// Write the healthcheck's state file when it changed (atomically: a rename).
pub fn write_state(path: &Path, supervisor: &Supervisor, last: &mut String) {
    let services: serde_json::Map<String, serde_json::Value> = supervisor
        .status()
        .into_iter()
        .map(|(name, word)| (name.to_string(), word.into()))
        .collect();
    let text =
        serde_json::json!({ "healthy": supervisor.healthy(), "services": services }).to_string();
    if *last == text {
        return;
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, &text).is_ok() && std::fs::rename(&tmp, path).is_ok() {
        *last = text;
    }
}

/// `kiln-init health`: 0 when the running init says every long-running service is ready.
pub fn health(path: &Path) -> i32 {
    let Ok(text) = std::fs::read_to_string(path) else {
        say(&format!("unhealthy: no state at `{}` yet", path.display()));
        return 1;
    };
    let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
        say(&format!(
            "unhealthy: unreadable state at `{}`",
            path.display()
        ));
        return 1;
    };
    if state["healthy"] == serde_json::Value::Bool(true) {
        0
    } else {
        let waiting: Vec<String> = state["services"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, w)| !matches!(w.as_str(), Some("ready" | "done")))
            .map(|(n, w)| format!("{n}: {}", w.as_str().unwrap_or("?")))
            .collect();
        say(&format!("unhealthy: {}", waiting.join(", ")));
        1
    }
}
