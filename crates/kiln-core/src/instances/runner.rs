//! The imperative side of instances: checks the host and the engine, then
//! carries out what `reconcile` decided, all members at once. Also `down`,
//! the status behind `ps`, and `restart`. Returns data; never prints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use futures_util::future::join_all;

use super::member::{Member, member_names};
use super::reconcile::{self, Action, Desired, Step, instance_containers, is_foreign};
use crate::config::Habitat;
use crate::config::runtime::ports_clash;
use crate::engine::{ContainerSummary, Engine, EngineError, PortBinding};
use crate::image::labels::{
    LABEL_HABITAT, LABEL_IMAGE_KEY, LABEL_INSTANCE, LABEL_KEY, LABEL_PERSIST,
};
use crate::image::names;

/// How long a stopping container gets before it is killed. Members run under
/// an init process, so a stop is usually prompt.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many lines of a failed member's log are reported.
pub const FAILURE_LOG_LINES: usize = 20;

/// Why an instance command changed nothing.
#[derive(Debug)]
pub enum InstanceError {
    /// Unknown member, no `instances:` section, and the like. Exit 2.
    Usage(String),
    /// `up` found clashes (ports, names, bind sources) and changed nothing. Exit 2.
    Clash(Vec<String>),
    /// The engine is unreachable or refused. Exit 3.
    Engine(EngineError),
}

impl InstanceError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InstanceError::Usage(_) | InstanceError::Clash(_) => 2,
            InstanceError::Engine(_) => 3,
        }
    }
}

impl fmt::Display for InstanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceError::Usage(m) => write!(f, "error: {m}"),
            InstanceError::Clash(clashes) => {
                writeln!(
                    f,
                    "error: `up` changed nothing: {} clash(es)",
                    clashes.len()
                )?;
                for c in clashes {
                    writeln!(f, "  - {c}")?;
                }
                write!(
                    f,
                    "hint: free the ports or paths named above, or change them in `instances:`"
                )
            }
            InstanceError::Engine(e) => {
                write!(f, "error: {e}")?;
                if matches!(e, EngineError::Unreachable { .. }) {
                    write!(
                        f,
                        "\nhint: start Docker (`sudo systemctl start docker`) or point `DOCKER_HOST` at a running engine"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for InstanceError {}

impl From<EngineError> for InstanceError {
    fn from(e: EngineError) -> Self {
        InstanceError::Engine(e)
    }
}

/// Options of `up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The members to bring up; all when empty.
    pub members: Vec<String>,
    /// How long started members are given before kiln checks they still run.
    pub settle: Duration,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            members: Vec::new(),
            settle: Duration::from_millis(500),
        }
    }
}

/// What happened to one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already current and running: untouched.
    Kept,
    /// Current but stopped: started.
    Started,
    Created,
    Recreated {
        reason: String,
    },
    /// It did not start, or stopped right after; with its last log lines.
    Failed {
        message: String,
        logs: Vec<String>,
    },
}

impl Outcome {
    /// One word for tables and JSON.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Kept => "unchanged",
            Outcome::Started => "started",
            Outcome::Created => "created",
            Outcome::Recreated { .. } => "recreated",
            Outcome::Failed { .. } => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberOutcome {
    pub member: String,
    /// `HABITAT-MEMBER`
    pub container: String,
    pub outcome: Outcome,
}

/// What `up` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpReport {
    pub members: Vec<MemberOutcome>,
    /// Members with a container that are no longer in the config (left alone).
    pub orphans: Vec<String>,
}

impl UpReport {
    pub fn failed(&self) -> bool {
        self.members
            .iter()
            .any(|m| matches!(m.outcome, Outcome::Failed { .. }))
    }
}

fn selection(
    all: &[String],
    wanted: &[String],
    habitat: &str,
) -> Result<Vec<String>, InstanceError> {
    if wanted.is_empty() {
        return Ok(all.to_vec());
    }
    let unknown: Vec<&String> = wanted.iter().filter(|w| !all.contains(w)).collect();
    if let Some(first) = unknown.first() {
        let known = if all.is_empty() {
            "none".to_string()
        } else {
            all.iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(InstanceError::Usage(format!(
            "unknown member `{first}` of habitat `{habitat}`\nhint: the members in `instances.members` are {known}"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for w in wanted {
        if !out.contains(w) {
            out.push(w.clone());
        }
    }
    Ok(out)
}

/// Makes the selected members of `habitat` run `image` (final key
/// `image_key`) with their current config. Everything is checked first; on
/// a clash nothing is changed.
pub async fn up<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    image: &str,
    image_key: &str,
    opts: &UpOptions,
) -> Result<UpReport, InstanceError> {
    let config = &habitat.config;
    let name = config.name.as_str();
    if config.instances.is_none() {
        return Err(InstanceError::Usage(format!(
            "habitat `{name}` has no `instances` section\nhint: add `instances: {{ members: {{ NAME: {{}} }} }}` to `kiln.yaml`"
        )));
    }
    let all = Member::resolve_all(config, &habitat.dir).map_err(InstanceError::Usage)?;
    let all_names: Vec<String> = all.iter().map(|m| m.name.clone()).collect();
    let selected = selection(&all_names, &opts.members, name)?;
    let members: Vec<&Member> = all.iter().filter(|m| selected.contains(&m.name)).collect();
    let hashes: Vec<String> = members.iter().map(|m| m.config_hash()).collect();
    let desired: Vec<Desired> = members
        .iter()
        .zip(&hashes)
        .map(|(m, h)| Desired {
            member: &m.name,
            config_hash: h,
        })
        .collect();
    let containers = engine.list_containers(LABEL_HABITAT, name).await?;
    let steps = reconcile::reconcile(name, &desired, image_key, &containers);

    check(engine, &all, &members, &steps).await?;

    // Every check passed: from here on, things change.
    for m in &members {
        for source in m.bind_sources() {
            // Docker would make a missing source root-owned; made here it is the user's.
            let _ = std::fs::create_dir_all(source);
        }
    }
    // Old containers go first, so a port or name moving between members is free.
    let olds: Vec<&str> = steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Recreate { old, .. } => Some(old.as_str()),
            _ => None,
        })
        .collect();
    for result in join_all(olds.iter().map(|id| stop_and_remove(engine, id))).await {
        result?;
    }
    let runs = members.iter().zip(&steps).map(|(m, step)| async move {
        let outcome = apply(engine, m, step, image, image_key).await;
        (m, step, outcome)
    });
    let results = join_all(runs).await;
    let mut report = UpReport::default();
    let mut started: Vec<usize> = Vec::new();
    for (i, (m, step, outcome)) in results.into_iter().enumerate() {
        let outcome = match outcome {
            Ok(o) => {
                if !matches!(step.action, Action::Keep { .. }) {
                    started.push(i);
                }
                o
            }
            Err(failed) => failed,
        };
        report.members.push(MemberOutcome {
            member: m.name.clone(),
            container: m.container_name(),
            outcome,
        });
    }
    if !started.is_empty() {
        // A command that fails at once still "starts"; look again a moment later.
        tokio::time::sleep(opts.settle).await;
        let checks = started.iter().map(|&i| {
            let container = report.members[i].container.clone();
            async move { (i, settled(engine, &container).await) }
        });
        for (i, failure) in join_all(checks).await {
            if let Some(failure) = failure {
                report.members[i].outcome = failure;
            }
        }
    }
    report.orphans = reconcile::orphans(name, &all_names, &containers)
        .into_iter()
        .filter_map(|c| c.labels.get(LABEL_INSTANCE).cloned())
        .collect();
    Ok(report)
}

/// Every reason `up` must not change anything: port clashes between members
/// and with the host, names taken by containers kiln did not make, bind
/// sources that cannot be created.
async fn check<E: Engine>(
    engine: &E,
    all: &[Member],
    members: &[&Member],
    steps: &[Step],
) -> Result<(), InstanceError> {
    let mut clashes = Vec::new();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            for pa in &a.ports {
                if let Some(pb) = b.ports.iter().find(|pb| ports_clash(pa, pb)) {
                    clashes.push(format!(
                        "members `{}` and `{}` both publish host port {}/{} ({} and {})",
                        a.name, b.name, pa.host_port, pa.protocol, pa, pb
                    ));
                }
            }
        }
    }
    // Names: a new member's container name may belong to someone else.
    let named = members
        .iter()
        .zip(steps)
        .filter(|(_, s)| matches!(s.action, Action::Create))
        .map(|(m, _)| async move { (m, engine.inspect_container(&m.container_name()).await) });
    for (m, found) in join_all(named).await {
        if let Some(info) = found?
            && is_foreign(&info, &m.habitat, &m.name)
        {
            clashes.push(format!(
                "a container named `{}` exists that kiln did not create for member `{}`; it is left alone\n    hint: remove or rename it (`docker rm -f {}`)",
                info.name, m.name, info.name
            ));
        }
    }
    // Ports held by containers about to be replaced are not a clash.
    let olds = steps.iter().filter_map(|s| match &s.action {
        Action::Recreate { old, .. } => Some(engine.inspect_container(old)),
        _ => None,
    });
    let mut released: Vec<PortBinding> = Vec::new();
    for found in join_all(olds).await {
        if let Some(info) = found? {
            released.extend(info.ports);
        }
    }
    for (m, s) in members.iter().zip(steps) {
        if matches!(s.action, Action::Keep { .. }) {
            continue;
        }
        for p in &m.ports {
            if released.iter().any(|r| ports_clash(r, p)) {
                continue;
            }
            if let Err(e) = host_port_free(p) {
                clashes.push(format!(
                    "member `{}`: host port {}:{}/{} is in use on this host ({e})",
                    m.name, p.host_ip, p.host_port, p.protocol
                ));
            }
        }
        if matches!(s.action, Action::Create | Action::Recreate { .. }) {
            for source in m.bind_sources() {
                if let Err(why) = creatable(Path::new(source)) {
                    clashes.push(format!(
                        "member `{}`: bind-mount source `{source}` cannot be created: {why}",
                        m.name
                    ));
                }
            }
        }
    }
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(InstanceError::Clash(clashes))
    }
}

/// Binds the host address for a moment: the cheapest true answer to "is it free".
fn host_port_free(p: &PortBinding) -> std::io::Result<()> {
    let addr = (p.host_ip.as_str(), p.host_port);
    match p.protocol.as_str() {
        "tcp" => std::net::TcpListener::bind(addr).map(drop),
        "udp" => std::net::UdpSocket::bind(addr).map(drop),
        _ => Ok(()),
    }
}

/// A missing path can be made when its nearest existing ancestor is a directory.
fn creatable(path: &Path) -> Result<(), String> {
    if path.exists() {
        return Ok(());
    }
    let mut at = path.parent();
    while let Some(dir) = at {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {
                return if meta.permissions().readonly() {
                    Err(format!("`{}` is read-only", dir.display()))
                } else {
                    Ok(())
                };
            }
            Ok(_) => return Err(format!("`{}` is not a directory", dir.display())),
            Err(_) => at = dir.parent(),
        }
    }
    Err("no existing parent directory".to_string())
}

async fn stop_and_remove<E: Engine>(engine: &E, id: &str) -> Result<(), EngineError> {
    match engine.stop_container(id, STOP_TIMEOUT).await {
        Ok(()) | Err(EngineError::NoSuchContainer(_)) => {}
        Err(e) => return Err(e),
    }
    engine.remove_container(id).await
}

/// Carries out one member's step; `Err` holds the `Failed` outcome.
async fn apply<E: Engine>(
    engine: &E,
    m: &Member,
    step: &Step,
    image: &str,
    image_key: &str,
) -> Result<Outcome, Outcome> {
    let failed = |message: String, logs: Vec<String>| Outcome::Failed { message, logs };
    match &step.action {
        Action::Keep { .. } => Ok(Outcome::Kept),
        Action::Start { id } => match engine.start_container(id).await {
            Ok(()) => Ok(Outcome::Started),
            Err(e) => Err(failed(e.to_string(), tail(engine, id).await)),
        },
        Action::Create | Action::Recreate { .. } => {
            for p in &m.persist {
                engine
                    .create_volume(&p.volume, &m.volume_labels(p))
                    .await
                    .map_err(|e| failed(e.to_string(), Vec::new()))?;
            }
            let id = engine
                .create_container(&m.container_spec(image, image_key))
                .await
                .map_err(|e| failed(e.to_string(), Vec::new()))?;
            if let Err(e) = engine.start_container(&id).await {
                return Err(failed(e.to_string(), tail(engine, &id).await));
            }
            Ok(match &step.action {
                Action::Recreate { reason, .. } => Outcome::Recreated {
                    reason: reason.clone(),
                },
                _ => Outcome::Created,
            })
        }
    }
}

/// `Some(Failed)` when the container is not running a moment after its start.
async fn settled<E: Engine>(engine: &E, container: &str) -> Option<Outcome> {
    let info = match engine.inspect_container(container).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            return Some(Outcome::Failed {
                message: "its container disappeared right after starting".to_string(),
                logs: Vec::new(),
            });
        }
        Err(e) => {
            return Some(Outcome::Failed {
                message: e.to_string(),
                logs: Vec::new(),
            });
        }
    };
    if info.state == "running" && info.restart_count == 0 {
        return None;
    }
    let message = match info.exit_code {
        Some(code) => format!("it exited with code {code} right after starting"),
        None if info.restart_count > 0 => {
            format!(
                "it is restarting (restarted {} time(s))",
                info.restart_count
            )
        }
        None => format!("it is `{}` right after starting", info.state),
    };
    Some(Outcome::Failed {
        message,
        logs: tail(engine, &info.id).await,
    })
}

/// The last lines of a container's output; empty when they cannot be read.
pub async fn tail<E: Engine>(engine: &E, id: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut push = |_, line: &str| lines.push(line.to_string());
    let _ = engine
        .container_logs(id, false, Some(FAILURE_LOG_LINES), &mut push)
        .await;
    lines
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Container names.
    pub containers: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
}

/// Stops and removes the selected members' containers (all instance
/// containers of `habitat` when `members` is empty, orphans included); their
/// persisted volumes too with `volumes`. `known` are the config's members.
pub async fn down<E: Engine>(
    engine: &E,
    habitat: &str,
    known: &[String],
    members: &[String],
    volumes: bool,
) -> Result<DownReport, InstanceError> {
    let containers = engine.list_containers(LABEL_HABITAT, habitat).await?;
    let existing = instance_containers(habitat, &containers);
    let mut all: Vec<String> = known.to_vec();
    all.extend(existing.keys().map(|k| k.to_string()));
    all.sort();
    all.dedup();
    let selected = selection(&all, members, habitat)?;
    let chosen: Vec<&ContainerSummary> = existing
        .iter()
        .filter(|(m, _)| selected.iter().any(|s| s == *m))
        .map(|(_, c)| *c)
        .collect();
    for result in join_all(chosen.iter().map(|c| stop_and_remove(engine, &c.id))).await {
        result?;
    }
    let mut report = DownReport {
        containers: chosen.iter().map(|c| c.name.clone()).collect(),
        volumes: Vec::new(),
    };
    if volumes {
        for v in engine.list_volumes(LABEL_HABITAT, habitat).await? {
            let owner = v.labels.get(LABEL_INSTANCE).map(String::as_str);
            if owner.is_some_and(|o| selected.iter().any(|s| s == o))
                && v.labels.contains_key(LABEL_PERSIST)
            {
                engine.remove_volume(&v.name).await?;
                report.volumes.push(v.name);
            }
        }
    }
    Ok(report)
}

/// One row of `ps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub member: String,
    /// `HABITAT-MEMBER`
    pub container: String,
    /// The engine's state, or `absent` when the member has no container.
    pub state: String,
    /// The final key of the image it runs (empty when absent).
    pub image_key: String,
    /// Whether it runs the habitat's current image; `None` when unknown.
    pub current: Option<bool>,
    pub ports: Vec<PortBinding>,
    /// Seconds since it started, when it runs.
    pub uptime: Option<u64>,
    /// (path in the container, volume name) of its persisted volumes.
    pub volumes: Vec<(String, String)>,
    /// False for an orphan: a container of a member no longer in the config.
    pub in_config: bool,
}

/// The final key of `habitat-HABITAT:latest`, the image the last build made.
pub async fn current_image_key<E: Engine>(
    engine: &E,
    habitat: &str,
) -> Result<Option<String>, EngineError> {
    let latest = format!("{}:latest", names::repository(habitat));
    Ok(engine
        .image_inspect(&latest)
        .await?
        .and_then(|i| i.config.labels.get(LABEL_KEY).cloned()))
}

/// Every member of the config and every instance container of `habitat`,
/// sorted by member. `current_key` is the final key members should run.
pub async fn status<E: Engine>(
    engine: &E,
    habitat: &str,
    known: &[String],
    current_key: Option<&str>,
) -> Result<Vec<MemberStatus>, InstanceError> {
    let containers = engine.list_containers(LABEL_HABITAT, habitat).await?;
    let existing = instance_containers(habitat, &containers);
    let mut volumes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for v in engine.list_volumes(LABEL_HABITAT, habitat).await? {
        if let (Some(m), Some(p)) = (v.labels.get(LABEL_INSTANCE), v.labels.get(LABEL_PERSIST)) {
            volumes
                .entry(m.clone())
                .or_default()
                .push((p.clone(), v.name.clone()));
        }
    }
    let mut members: BTreeSet<String> = known.iter().cloned().collect();
    members.extend(existing.keys().map(|k| k.to_string()));
    let infos = join_all(members.iter().map(|m| {
        let id = existing.get(m.as_str()).map(|c| c.id.clone());
        async move {
            match id {
                Some(id) => engine.inspect_container(&id).await,
                None => Ok(None),
            }
        }
    }))
    .await;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut rows = Vec::new();
    for (m, info) in members.iter().zip(infos) {
        let info = info?;
        let image_key = info
            .as_ref()
            .and_then(|i| i.labels.get(LABEL_IMAGE_KEY).cloned())
            .unwrap_or_default();
        let current = match (&info, current_key) {
            (Some(_), Some(k)) => Some(image_key == k),
            _ => None,
        };
        let uptime = info
            .as_ref()
            .filter(|i| i.state == "running")
            .and_then(|i| i.started_at.as_deref())
            .and_then(unix_seconds)
            .map(|started| now.saturating_sub(started));
        rows.push(MemberStatus {
            member: m.clone(),
            container: info.as_ref().map_or_else(
                || super::member::container_name(habitat, m),
                |i| i.name.clone(),
            ),
            state: info
                .as_ref()
                .map_or_else(|| "absent".to_string(), |i| i.state.clone()),
            image_key,
            current,
            ports: info.as_ref().map(|i| i.ports.clone()).unwrap_or_default(),
            uptime,
            volumes: volumes.remove(m).unwrap_or_default(),
            in_config: known.contains(m),
        });
    }
    Ok(rows)
}

/// The container of `member`, for `logs`, `exec` and `shell`.
pub async fn container_of<E: Engine>(
    engine: &E,
    habitat: &str,
    member: &str,
) -> Result<ContainerSummary, InstanceError> {
    let containers = engine.list_containers(LABEL_HABITAT, habitat).await?;
    instance_containers(habitat, &containers)
        .get(member)
        .map(|c| (*c).clone())
        .ok_or_else(|| {
            InstanceError::Usage(format!(
                "member `{member}` of habitat `{habitat}` has no container\nhint: `kiln up . {member}` creates it"
            ))
        })
}

/// Stops and starts the selected members' containers (all when `members` is
/// empty); per member, `Err` holds why it failed.
pub async fn restart<E: Engine>(
    engine: &E,
    habitat: &str,
    members: &[String],
) -> Result<Vec<(String, Result<(), String>)>, InstanceError> {
    let containers = engine.list_containers(LABEL_HABITAT, habitat).await?;
    let existing = instance_containers(habitat, &containers);
    let all: Vec<String> = existing.keys().map(|k| k.to_string()).collect();
    let selected = selection(&all, members, habitat)?;
    let runs = selected.iter().map(|m| {
        let id = existing[m.as_str()].id.clone();
        async move {
            let result = async {
                engine.stop_container(&id, STOP_TIMEOUT).await?;
                engine.start_container(&id).await
            }
            .await;
            (m.clone(), result.map_err(|e| e.to_string()))
        }
    });
    Ok(join_all(runs).await)
}

/// The member names of a loaded habitat.
pub fn known_members(habitat: &Habitat) -> Vec<String> {
    member_names(&habitat.config)
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-01-02T03:04:05.678Z`).
pub fn unix_seconds(text: &str) -> Option<u64> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let time = time.trim_end_matches('Z');
    // Offsets other than Z are not what the engine reports; ignore them.
    let time = time.split(['+']).next()?;
    let mut t = time.split(':');
    let h = t.next()?.parse::<i64>().ok()?;
    let mi = t.next()?.parse::<i64>().ok()?;
    let s = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            unix_seconds("2024-02-29T12:00:01.123456789Z"),
            Some(1_709_208_001)
        );
        assert_eq!(unix_seconds("garbage"), None);
    }

    #[test]
    fn unknown_members_are_named() {
        let all = vec!["a".to_string(), "b".to_string()];
        let err = selection(&all, &["c".to_string()], "h").expect_err("unknown");
        assert!(err.to_string().contains("unknown member `c`"), "{err}");
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            selection(&all, &["b".to_string(), "b".to_string()], "h").expect("ok"),
            ["b"]
        );
        assert_eq!(selection(&all, &[], "h").expect("ok"), all);
    }

    #[test]
    fn missing_paths_under_a_file_cannot_be_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        assert!(creatable(&dir.path().join("a/b/c")).is_ok());
        assert!(creatable(&file.join("sub")).is_err());
    }
}
