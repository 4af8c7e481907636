//! `up`: checks the host and the engine, then carries out what `reconcile`
//! decided, all members at once. Returns data; never prints.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;

use super::down::stop_and_remove;
use super::error::{Conflict, InstanceError};
use super::member::{Member, Persist, STOP_TIMEOUT, dir_label, selection, stop_timeout};
use super::reconcile::{self, Action, Desired, Scope, Step, name_conflict};
use super::volume::{Found, VolumeStep, legacy_volume, migrated_from, volume_step};
use crate::config::Habitat;
use crate::config::runtime::ports_clash;
use crate::engine::{ContainerSpec, Engine, Mount, PortBinding};
use crate::image::labels::{LABEL_DIR, LABEL_HABITAT, LABEL_INSTANCE, LABEL_MIGRATED_FROM};

/// How many lines of a failed member's log are reported.
pub const FAILURE_LOG_LINES: usize = 20;

/// Options of `up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The members to bring up; all when empty.
    pub members: Vec<String>,
    /// How long started members are given before kiln checks they still run.
    pub settle: Duration,
    /// Also stop and remove the containers of members no longer in the
    /// config (their persisted volumes stay, as `down` without `--volumes`).
    pub remove_orphans: bool,
    /// Wait, up to this long, until every member runs, and is healthy where
    /// its image has a healthcheck.
    pub wait: Option<Duration>,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            members: Vec::new(),
            settle: Duration::from_millis(500),
            remove_orphans: false,
            wait: None,
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

/// A volume of kiln's old naming whose files were moved to the new name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedVolume {
    pub member: String,
    pub path: String,
    pub from: String,
    pub to: String,
}

/// What `up` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpReport {
    pub members: Vec<MemberOutcome>,
    /// Members with a container that are no longer in the config (left alone).
    pub orphans: Vec<String>,
    /// The containers of such members removed (`remove_orphans`).
    pub removed_orphans: Vec<String>,
    /// Old-named volumes moved to their new names.
    pub moved: Vec<MovedVolume>,
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
    let dir = dir_label(&habitat.dir);
    let scope = Scope {
        habitat: name,
        dir: &dir,
    };
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
    let fields: Vec<BTreeMap<String, String>> = members.iter().map(|m| m.fields()).collect();
    let desired: Vec<Desired> = members
        .iter()
        .zip(&hashes)
        .zip(&fields)
        .map(|((m, h), f)| Desired {
            member: &m.name,
            config_hash: h,
            fields: f,
        })
        .collect();
    let containers = engine.list_containers(LABEL_HABITAT, name).await?;
    let steps = reconcile::reconcile(scope, &desired, image_key, &containers);
    let orphans = reconcile::orphans(scope, &all_names, &containers);
    let removed: Vec<&str> = if opts.remove_orphans {
        orphans.iter().map(|c| c.id.as_str()).collect()
    } else {
        Vec::new()
    };

    let volume_steps = check(engine, &all, &members, &steps, &removed).await?;

    // Every check passed: from here on, things change.
    for m in &members {
        for source in m.bind_sources() {
            // Docker would make a missing source root-owned; made here it is the user's.
            let _ = std::fs::create_dir_all(source);
        }
    }
    // Old containers go first, so a port or name moving between members is free.
    // Each with the stop timeout its own image asked for.
    let olds: Vec<(&str, Duration)> = steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Recreate { old, .. } => Some(old.as_str()),
            _ => None,
        })
        .chain(removed.iter().copied())
        .map(|old| {
            let labels = containers.iter().find(|c| c.id == old).map(|c| &c.labels);
            (old, labels.map_or(STOP_TIMEOUT, stop_timeout))
        })
        .collect();
    let stops = olds
        .iter()
        .map(|(id, timeout)| stop_and_remove(engine, id, *timeout));
    for result in join_all(stops).await {
        result?;
    }
    // The image's labels say whether it has services (its own init, and
    // the stop timeout that covers their graces).
    let image_labels = engine
        .image_inspect(image)
        .await?
        .map(|i| i.config.labels)
        .unwrap_or_default();
    let image_labels = &image_labels;
    let runs =
        members
            .iter()
            .zip(&steps)
            .zip(&volume_steps)
            .map(|((m, step), volumes)| async move {
                let mut moved = Vec::new();
                let target = Target {
                    image,
                    image_key,
                    image_labels,
                };
                let outcome = apply(engine, m, step, volumes, target, &mut moved).await;
                (m, step, outcome, moved)
            });
    let results = join_all(runs).await;
    let mut report = UpReport::default();
    let mut started: Vec<usize> = Vec::new();
    for (i, (m, step, outcome, moved)) in results.into_iter().enumerate() {
        report.moved.extend(moved);
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
    if let Some(timeout) = opts.wait {
        let waits = report
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| !matches!(m.outcome, Outcome::Failed { .. }))
            .map(|(i, m)| {
                let container = m.container.clone();
                async move { (i, wait_ready(engine, &container, timeout).await) }
            });
        for (i, waited) in join_all(waits).await {
            if let Err(failure) = waited {
                report.members[i].outcome = failure;
            }
        }
    }
    for c in orphans {
        if opts.remove_orphans {
            report.removed_orphans.push(c.name.clone());
        } else if let Some(member) = c.labels.get(LABEL_INSTANCE) {
            report.orphans.push(member.clone());
        }
    }
    Ok(report)
}

/// What `up` checks before it builds anything: ports two members both
/// publish, and host ports something else holds. Ports held by this
/// habitat's own members (and by its orphans, when `remove_orphans`) are
/// theirs to hand over; the full check runs again once the image is built.
pub async fn check_ports<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    members: &[String],
    remove_orphans: bool,
) -> Result<(), InstanceError> {
    let config = &habitat.config;
    let name = config.name.as_str();
    if config.instances.is_none() {
        return Err(InstanceError::NoInstances {
            habitat: name.to_string(),
        });
    }
    let dir = dir_label(&habitat.dir);
    let scope = Scope {
        habitat: name,
        dir: &dir,
    };
    let all = Member::resolve_all(config, &habitat.dir)?;
    let all_names: Vec<String> = all.iter().map(|m| m.name.clone()).collect();
    let selected = selection(&all_names, members, name)?;
    let mut clashes = member_port_clashes(&all);
    let containers = engine.list_containers(LABEL_HABITAT, name).await?;
    let own = reconcile::instance_containers(scope, &containers);
    let infos = join_all(
        own.iter()
            .map(|(m, c)| async move { (*m, engine.inspect_container(&c.id).await) }),
    )
    .await;
    let mut released: Vec<PortBinding> = Vec::new();
    let mut orphaned: Vec<(String, String, PortBinding)> = Vec::new();
    for (m, info) in infos {
        let Some(info) = info? else { continue };
        if remove_orphans || all_names.iter().any(|n| n == m) {
            released.extend(info.ports);
        } else {
            orphaned.extend(
                info.ports
                    .into_iter()
                    .map(|p| (m.to_string(), info.name.clone(), p)),
            );
        }
    }
    for m in all.iter().filter(|m| selected.contains(&m.name)) {
        for p in &m.ports {
            if released.iter().any(|r| ports_clash(r, p)) {
                continue;
            }
            if let Some((orphan, container, _)) =
                orphaned.iter().find(|(_, _, o)| ports_clash(o, p))
            {
                clashes.push(format!(
                    "member `{}`: host port {}:{}/{} is held by `{container}`, the container of member `{orphan}`, which is no longer in `kiln.yaml`\n    hint: `kiln up --remove-orphans` removes it",
                    m.name, p.host_ip, p.host_port, p.protocol
                ));
            } else if let Err(e) = host_port_free(p) {
                clashes.push(host_port_clash(m, p, &e));
            }
        }
    }
    if clashes.is_empty() {
        Ok(())
    } else {
        Err(InstanceError::Clash(clashes))
    }
}

/// Every host port two members of `all` both publish.
fn member_port_clashes(all: &[Member]) -> Vec<String> {
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
    clashes
}

fn host_port_clash(m: &Member, p: &PortBinding, e: &std::io::Error) -> String {
    format!(
        "member `{}`: host port {}:{}/{} is in use on this host ({e})",
        m.name, p.host_ip, p.host_port, p.protocol
    )
}

/// How often `wait_ready` looks at a container.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// Waits until `container` runs, and is healthy when its image has a
/// healthcheck; `Err` holds the `Failed` outcome (with its last log lines)
/// when it exits, turns unhealthy or is not ready within `timeout`.
pub async fn wait_ready<E: Engine>(
    engine: &E,
    container: &str,
    timeout: Duration,
) -> Result<(), Outcome> {
    let started = std::time::Instant::now();
    loop {
        let info = match engine.inspect_container(container).await {
            Ok(Some(info)) => info,
            Ok(None) => {
                return Err(Outcome::Failed {
                    message: "its container disappeared while kiln waited for it".to_string(),
                    logs: Vec::new(),
                });
            }
            Err(e) => {
                return Err(Outcome::Failed {
                    message: e.to_string(),
                    logs: Vec::new(),
                });
            }
        };
        let failed = |message: String| async {
            Err(Outcome::Failed {
                message,
                logs: tail(engine, &info.id).await,
            })
        };
        match (info.state.as_str(), info.health.as_deref()) {
            ("running", None | Some("healthy")) => return Ok(()),
            ("running", Some("unhealthy")) => {
                let probe = info
                    .health_output
                    .as_deref()
                    .and_then(|o| o.lines().rev().find(|l| !l.trim().is_empty()))
                    .map(|l| format!("; its last check said: {}", l.trim()))
                    .unwrap_or_default();
                return failed(format!("its healthcheck reports it unhealthy{probe}")).await;
            }
            ("exited" | "dead", _) => {
                let code = info
                    .exit_code
                    .map_or_else(String::new, |c| format!(" with code {c}"));
                return failed(format!("it exited{code} while kiln waited for it")).await;
            }
            _ => {}
        }
        if started.elapsed() >= timeout {
            let waited_for = if info.health.is_some() {
                "healthy"
            } else {
                "running"
            };
            let now = match info.health.as_deref() {
                Some(h) => format!("`{}`, health `{h}`", info.state),
                None => format!("`{}`", info.state),
            };
            return failed(format!(
                "it was not {waited_for} within {}s (it is {now})",
                timeout.as_secs_f64()
            ))
            .await;
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// Every reason `up` must not change anything: port clashes between members
/// and with the host, names taken by containers kiln did not make, volumes
/// that are not the member's or may be shared, bind sources that cannot be
/// created. Returns, per member, what to do with each persisted volume
/// before its container is made (nothing for a container kept or started).
async fn check<E: Engine>(
    engine: &E,
    all: &[Member],
    members: &[&Member],
    steps: &[Step],
    removed: &[&str],
) -> Result<Vec<Vec<VolumeStep>>, InstanceError> {
    let mut clashes = member_port_clashes(all);
    // Names: a new member's container name may belong to someone else.
    let named = members
        .iter()
        .zip(steps)
        .filter(|(_, s)| matches!(s.action, Action::Create))
        .map(|(m, _)| async move { (m, engine.inspect_container(&m.container_name()).await) });
    for (m, found) in join_all(named).await {
        if let Some(conflict) = found?.and_then(|info| name_conflict(&info, m)) {
            clashes.push(conflict.to_string());
        }
    }
    // Volumes: made for each new container, so checked for those only.
    let volumes = members.iter().zip(steps).map(|(m, s)| async move {
        if !matches!(s.action, Action::Create | Action::Recreate { .. }) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for p in &m.persist {
            out.push(volume_step(m, p, &found_volumes(engine, m, p).await?, all));
        }
        Ok::<_, InstanceError>(out)
    });
    let mut volume_steps = Vec::new();
    let mut shared: Vec<String> = Vec::new();
    for found in join_all(volumes).await {
        let mut member_steps = Vec::new();
        for step in found? {
            match step {
                Ok(step) => member_steps.push(step),
                // A shared old volume is found by each path that shared it: said once.
                Err(conflict) => {
                    if let Conflict::Legacy { volume, .. } = &*conflict {
                        if shared.contains(volume) {
                            continue;
                        }
                        shared.push(volume.clone());
                    }
                    clashes.push(conflict.to_string());
                }
            }
        }
        volume_steps.push(member_steps);
    }
    // Ports held by containers about to be replaced or removed are not a clash.
    let olds = steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Recreate { old, .. } => Some(old.as_str()),
            _ => None,
        })
        .chain(removed.iter().copied())
        .map(|id| engine.inspect_container(id));
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
                clashes.push(host_port_clash(m, p, &e));
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
        Ok(volume_steps)
    } else {
        Err(InstanceError::Clash(clashes))
    }
}

/// The volumes the engine has for `persist` of `m`: under its name, the one
/// that was filled from (when it is left), and under its old name.
async fn found_volumes<E: Engine>(
    engine: &E,
    m: &Member,
    persist: &Persist,
) -> Result<Found, InstanceError> {
    let current = engine.inspect_volume(&persist.volume).await?;
    let source = match current.as_ref().and_then(migrated_from) {
        Some(from) => engine.inspect_volume(from).await?,
        None => None,
    };
    let legacy = engine
        .inspect_volume(&legacy_volume(&m.habitat, &m.name, &persist.path))
        .await?;
    Ok(Found {
        current,
        source,
        legacy,
    })
}

/// Where the helper containers of a move mount the volumes: a path no image
/// is expected to have, so the empty new volume is not filled from the image.
const MOVE_DIR: &str = "/.kiln-move";
const MOVE_MOUNT: &str = "/.kiln-move/volume";

/// Makes `persist`'s volume and fills it from the old-named `from` through
/// two containers of `image` that are created and never started (so the
/// image needs no shell or `cp`); removes `from` last. On any failure the new
/// volume is removed again, so a later `up` starts the move afresh, and
/// `from` keeps the files. `Err` says why.
async fn migrate<E: Engine>(
    engine: &E,
    m: &Member,
    persist: &Persist,
    from: &str,
    image: &str,
) -> Result<(), String> {
    let mut labels = m.volume_labels(persist);
    labels.insert(LABEL_MIGRATED_FROM.to_string(), from.to_string());
    engine
        .create_volume(&persist.volume, &labels)
        .await
        .map_err(|e| e.to_string())?;
    let helper = |volume: &str| ContainerSpec {
        image: image.to_string(),
        // Never started; Docker wants a command to create it.
        entrypoint: Some(vec!["/.kiln-move-never-runs".to_string()]),
        labels: [
            (LABEL_HABITAT.to_string(), m.habitat.clone()),
            (LABEL_DIR.to_string(), m.dir.clone()),
        ]
        .into(),
        mounts: vec![Mount {
            source: volume.to_string(),
            target: MOVE_MOUNT.to_string(),
            readonly: false,
        }],
        ..Default::default()
    };
    let mut helpers = Vec::new();
    let copied = async {
        let old = engine.create_container(&helper(from)).await?;
        helpers.push(old.clone());
        let new = engine.create_container(&helper(&persist.volume)).await?;
        helpers.push(new.clone());
        engine.copy_archive(&old, MOVE_MOUNT, &new, MOVE_DIR).await
    }
    .await;
    for id in &helpers {
        let _ = engine.remove_container(id).await;
    }
    let result = match copied {
        Ok(()) => engine.remove_volume(from).await.map_err(|e| {
            format!(
                "kiln's old volume `{from}` is in use by another container, so it may be shared, and was not moved ({e}); `docker ps -a --filter volume={from}` shows who uses it"
            )
        }),
        Err(e) => Err(format!("moving volume `{from}` to `{}` failed: {e}", persist.volume)),
    };
    if result.is_err() {
        let _ = engine.remove_volume(&persist.volume).await;
    }
    result
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

/// Carries out one member's step, after its volumes' (`volumes`, one per
/// persisted path; moves are added to `moved`); `Err` holds the `Failed` outcome.
async fn apply<E: Engine>(
    engine: &E,
    m: &Member,
    step: &Step,
    volumes: &[VolumeStep],
    target: Target<'_>,
    moved: &mut Vec<MovedVolume>,
) -> Result<Outcome, Outcome> {
    let Target {
        image,
        image_key,
        image_labels,
    } = target;
    let failed = |message: String, logs: Vec<String>| Outcome::Failed { message, logs };
    match &step.action {
        Action::Keep { .. } => Ok(Outcome::Kept),
        Action::Start { id } => match engine.start_container(id).await {
            Ok(()) => Ok(Outcome::Started),
            Err(e) => Err(failed(e.to_string(), tail(engine, id).await)),
        },
        Action::Create | Action::Recreate { .. } => {
            for (p, v) in m.persist.iter().zip(volumes) {
                match v {
                    VolumeStep::Use => {}
                    VolumeStep::Create => engine
                        .create_volume(&p.volume, &m.volume_labels(p))
                        .await
                        .map_err(|e| failed(e.to_string(), Vec::new()))?,
                    VolumeStep::Migrate { from } => {
                        migrate(engine, m, p, from, image)
                            .await
                            .map_err(|e| failed(e, Vec::new()))?;
                        moved.push(MovedVolume {
                            member: m.name.clone(),
                            path: p.path.clone(),
                            from: from.clone(),
                            to: p.volume.clone(),
                        });
                    }
                }
            }
            let id = engine
                .create_container(&m.container_spec(image, image_key, image_labels))
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

/// The image members run: its id, final key and labels.
#[derive(Clone, Copy)]
struct Target<'a> {
    image: &'a str,
    image_key: &'a str,
    image_labels: &'a BTreeMap<String, String>,
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
            let n = info.restart_count;
            format!(
                "it keeps restarting: restarted {n} {}",
                if n == 1 { "time" } else { "times" }
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
