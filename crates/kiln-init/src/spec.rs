//! The services spec, `/.kiln/services.json`: what kiln's final phase writes and
//! the init reads. It is the one type kiln-core shares with the init, so it is
//! plain data (serde only) with durations already resolved to milliseconds and
//! signals to their names; kiln's `check` has validated it before it is written.

use serde::{Deserialize, Serialize};

/// The version of this format; the init refuses a spec of another version.
pub const SPEC_VERSION: u32 = 1;

/// Where the final phase puts the init binary in the image.
pub const INIT_PATH: &str = "/.kiln/init";
/// Where the final phase puts this spec in the image.
pub const SPEC_PATH: &str = "/.kiln/services.json";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub version: u32,
    /// In the order they were declared; the init starts them by `after`.
    pub services: Vec<Service>,
    /// How the main process (the image's command) runs.
    #[serde(default)]
    pub main: Main,
}

/// One entry of `services:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    /// argv; a config string is already `["/bin/sh", "-c", STRING]`.
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// `KEY=VALUE` pairs added to the init's environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    #[serde(default)]
    pub oneshot: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Probe>,
    #[serde(default)]
    pub stop: Stop,
    #[serde(default)]
    pub restart: Restart,
    /// Restarts allowed within [`RESTART_WINDOW_MS`]; one more fails the container.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
}

/// The window `max_restarts` counts in.
pub const RESTART_WINDOW_MS: u64 = 60_000;
/// `max_restarts` when the config gives none.
pub const DEFAULT_MAX_RESTARTS: u32 = 5;

fn default_max_restarts() -> u32 {
    DEFAULT_MAX_RESTARTS
}

/// A readiness probe: what to check, how often and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub check: Check,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

/// `interval` when the config gives none.
pub const DEFAULT_INTERVAL_MS: u64 = 100;
/// `timeout` when the config gives none.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

fn default_interval() -> u64 {
    DEFAULT_INTERVAL_MS
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Check {
    /// Passes when the command exits 0 (argv, as `Service::command`).
    Command(Vec<String>),
    /// Passes when 127.0.0.1:PORT accepts a connection.
    Tcp(u16),
    /// Passes when the Unix socket at PATH accepts a connection.
    Unix(String),
    /// Passes on a 2xx answer to a GET of this `http://` URL.
    Http(String),
    /// Passes when PATH exists.
    File(String),
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Command(argv) => match argv.as_slice() {
                [sh, c, script] if sh == "/bin/sh" && c == "-c" => write!(f, "command `{script}`"),
                _ => write!(f, "command `{}`", argv.join(" ")),
            },
            Check::Tcp(port) => write!(f, "tcp 127.0.0.1:{port}"),
            Check::Unix(path) => write!(f, "unix `{path}`"),
            Check::Http(url) => write!(f, "http `{url}`"),
            Check::File(path) => write!(f, "file `{path}`"),
        }
    }
}

/// How a service is stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    /// A signal name such as `SIGTERM`, as [`SIGNALS`] lists.
    #[serde(default = "default_signal")]
    pub signal: String,
    /// How long it may take before SIGKILL.
    #[serde(default = "default_grace")]
    pub grace_ms: u64,
}

/// The stop grace when the config gives none (Docker's own default).
pub const DEFAULT_GRACE_MS: u64 = 10_000;
/// What adopted orphans get between SIGTERM and SIGKILL.
pub const ORPHAN_GRACE_MS: u64 = 5_000;

fn default_signal() -> String {
    "SIGTERM".to_string()
}
fn default_grace() -> u64 {
    DEFAULT_GRACE_MS
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: default_signal(),
            grace_ms: default_grace(),
        }
    }
}

/// The signals a `stop.signal` may name, with their numbers on Linux.
pub const SIGNALS: &[(&str, i32)] = &[
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGUSR2", 12),
    ("SIGTERM", 15),
    ("SIGWINCH", 28),
    ("SIGPWR", 30),
];

/// The number of a signal name, with or without its `SIG` prefix, any case.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS
        .iter()
        .find(|(n, _)| *n == full)
        .map(|(_, num)| *num)
}

/// When a service is started again after it exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    #[default]
    No,
    OnFailure,
    Always,
}

/// The main process: the container's command, run after every service is
/// ready or done; its exit code is the container's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Main {
    /// `final.user`; root when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// How long the main process has after the forwarded signal.
    #[serde(default = "default_grace")]
    pub grace_ms: u64,
}

impl Default for Main {
    fn default() -> Self {
        Main {
            user: None,
            grace_ms: default_grace(),
        }
    }
}

impl Spec {
    /// Everything a stop can take: the main process's grace, each service's, and
    /// the orphans'. `kiln up` gives members a stop timeout at least this long.
    pub fn stop_budget_ms(&self) -> u64 {
        self.main.grace_ms
            + self.services.iter().map(|s| s.stop.grace_ms).sum::<u64>()
            + ORPHAN_GRACE_MS
    }
}

/// Why services cannot be ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderError {
    /// `service` names `missing` in its `after`, and no service has that name.
    Unknown { service: String, missing: String },
    /// These services wait for each other, in this order (the first again closes it).
    Cycle(Vec<String>),
}

impl std::fmt::Display for OrderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderError::Unknown { service, missing } => {
                write!(
                    f,
                    "`{service}` starts after `{missing}`, which is not a service"
                )
            }
            OrderError::Cycle(names) => {
                let mut path: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                path.push(format!("`{}`", names[0]));
                write!(f, "services wait for each other: {}", path.join(" -> "))
            }
        }
    }
}

/// The boot graph in stages: every service of a stage starts once the stages
/// before it are ready; within a stage, in declaration order.
pub fn boot_order(services: &[Service]) -> Result<Vec<Vec<usize>>, OrderError> {
    let index = |name: &str| services.iter().position(|s| s.name == name);
    let mut deps = Vec::with_capacity(services.len());
    for service in services {
        let mut mine = Vec::new();
        for name in &service.after {
            match index(name) {
                Some(i) => mine.push(i),
                None => {
                    return Err(OrderError::Unknown {
                        service: service.name.clone(),
                        missing: name.clone(),
                    });
                }
            }
        }
        deps.push(mine);
    }
    let mut stage_of: Vec<Option<usize>> = vec![None; services.len()];
    let mut stages: Vec<Vec<usize>> = Vec::new();
    while stage_of.iter().any(Option::is_none) {
        let stage: Vec<usize> = (0..services.len())
            .filter(|&i| {
                stage_of[i].is_none()
                    && deps[i]
                        .iter()
                        .all(|&d| stage_of[d].is_some_and(|st| st < stages.len()))
            })
            .collect();
        if stage.is_empty() {
            return Err(OrderError::Cycle(
                find_cycle(&deps, &stage_of)
                    .into_iter()
                    .map(|i| services[i].name.clone())
                    .collect(),
            ));
        }
        for &i in &stage {
            stage_of[i] = Some(stages.len());
        }
        stages.push(stage);
    }
    Ok(stages)
}

/// A cycle among the unplaced services: walk `after` edges until one repeats.
fn find_cycle(deps: &[Vec<usize>], placed: &[Option<usize>]) -> Vec<usize> {
    let Some(mut at) = (0..deps.len()).find(|&i| placed[i].is_none()) else {
        return Vec::new();
    };
    let mut path: Vec<usize> = Vec::new();
    loop {
        if let Some(pos) = path.iter().position(|&p| p == at) {
            let mut cycle = path.split_off(pos);
            // Named in start order: each waits for the one before it.
            cycle.reverse();
            // Beginning with the first declared, so the message is stable.
            let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
            cycle.rotate_left(first);
            return cycle;
        }
        path.push(at);
        // An unplaced service always waits for some unplaced one.
        match deps[at].iter().find(|&&d| placed[d].is_none()) {
            Some(&next) => at = next,
            None => return path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_resolve_with_or_without_the_prefix() {
        assert_eq!(signal_number("SIGINT"), Some(2));
        assert_eq!(signal_number("term"), Some(15));
        assert_eq!(signal_number("SIGFOO"), None);
    }

    #[test]
    fn a_minimal_service_reads_with_its_defaults() {
        let spec: Spec = serde_json::from_str(
            r#"{"version":1,"services":[{"name":"a","command":["true"],
                "ready":{"check":{"tcp":80}}}]}"#,
        )
        .unwrap();
        let a = &spec.services[0];
        assert_eq!(a.max_restarts, DEFAULT_MAX_RESTARTS);
        assert_eq!(a.stop, Stop::default());
        assert_eq!(a.restart, Restart::No);
        let probe = a.ready.as_ref().unwrap();
        assert_eq!(
            (probe.interval_ms, probe.timeout_ms),
            (DEFAULT_INTERVAL_MS, DEFAULT_TIMEOUT_MS)
        );
        let back: Spec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }
}
