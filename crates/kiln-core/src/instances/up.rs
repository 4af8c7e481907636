//! `up`: checks the host and the engine, then carries out what `reconcile`
//! decided, all members at once. Returns data; never prints.

use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;

use super::down::stop_and_remove;
use super::error::InstanceError;
use super::member::{Member, selection};
use super::reconcile::{self, Action, Desired, Step, is_foreign};
use crate::config::Habitat;
use crate::config::runtime::ports_clash;
use crate::engine::{Engine, PortBinding};
use crate::image::labels::{LABEL_HABITAT, LABEL_INSTANCE};

/// How many lines of a failed member's log are reported.
pub const FAILURE_LOG_LINES: usize = 20;

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
        return Err(InstanceError::NoInstances {
            habitat: name.to_string(),
        });
    }
    let all = Member::resolve_all(config, &habitat.dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_under_a_file_cannot_be_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        assert!(creatable(&dir.path().join("a/b/c")).is_ok());
        assert!(creatable(&file.join("sub")).is_err());
    }
}
