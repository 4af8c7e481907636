//! What runs: the status behind `ps`, the container of one member for
//! `logs`, `exec` and `shell`, and the final key of the habitat's current
//! image. Returns data; never prints.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use futures_util::future::join_all;

use super::down::persisted_volumes;
use super::error::InstanceError;
use super::member::{Member, dir_label, member_names};
use super::reconcile::{Desired, Scope, instance_containers, short, stale_reason};
use crate::config::Habitat;
use crate::engine::{ContainerSummary, Engine, EngineError, PortBinding};
use crate::image::labels::{
    LABEL_HABITAT, LABEL_IMAGE_KEY, LABEL_INSTANCE, LABEL_KEY, LABEL_PERSIST,
};
use crate::image::names;

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
    /// Whether it runs the image the config would build now, with the
    /// member's config as it is now; `None` when that cannot be told.
    pub current: Option<bool>,
    /// When not current, what changed (`reconcile::stale_reason`).
    pub stale: Option<String>,
    pub ports: Vec<PortBinding>,
    /// Seconds since it started, when it runs.
    pub uptime: Option<u64>,
    /// (path in the container, volume name) of its persisted volumes.
    pub volumes: Vec<(String, String)>,
    /// False for an orphan: a container of a member no longer in the config.
    pub in_config: bool,
}

/// The final key of `habitat-HABITAT:latest`, the image the last build made
/// (what `ps` compared with before it planned; kept for callers that cannot plan).
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

/// Every member of the config and every instance container of `habitat`
/// from its directory, sorted by member. `current_key` is the final key
/// members should run: the one a build of the config as it is now would
/// make (`executor::planned_final_key`), `None` when it cannot be told; a
/// member's own config is compared either way.
pub async fn status<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    current_key: Option<&str>,
) -> Result<Vec<MemberStatus>, InstanceError> {
    let name = habitat.config.name.as_str();
    let dir = dir_label(&habitat.dir);
    let scope = Scope {
        habitat: name,
        dir: &dir,
    };
    let known = member_names(&habitat.config);
    let resolved: Vec<Member> = if habitat.config.instances.is_some() {
        Member::resolve_all(&habitat.config, &habitat.dir)?
    } else {
        Vec::new()
    };
    let containers = engine.list_containers(LABEL_HABITAT, name).await?;
    let existing = instance_containers(scope, &containers);
    let mut volumes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for v in persisted_volumes(engine, scope).await? {
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
        let member = resolved.iter().find(|r| &r.name == m);
        let (current, stale) = match (&info, member) {
            (None, _) => (None, None),
            (Some(info), Some(member)) => {
                let (hash, fields) = (member.config_hash(), member.fields());
                let desired = Desired {
                    member: &member.name,
                    config_hash: &hash,
                    fields: &fields,
                };
                // Without a planned key only the member's config is compared.
                let key = current_key.unwrap_or(&image_key);
                match stale_reason(&info.labels, key, &desired) {
                    Some(reason) => (Some(false), Some(reason)),
                    None => (current_key.map(|_| true), None),
                }
            }
            // An orphan: only its image can be compared.
            (Some(_), None) => match current_key {
                Some(k) if k != image_key => (
                    Some(false),
                    Some(format!(
                        "image changed: {} → {}",
                        short(&image_key),
                        short(k)
                    )),
                ),
                Some(_) => (Some(true), None),
                None => (None, None),
            },
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
                || super::member::container_name(name, m),
                |i| i.name.clone(),
            ),
            state: info
                .as_ref()
                .map_or_else(|| "absent".to_string(), |i| i.state.clone()),
            image_key,
            current,
            stale,
            ports: info.as_ref().map(|i| i.ports.clone()).unwrap_or_default(),
            uptime,
            volumes: volumes.remove(m).unwrap_or_default(),
            in_config: known.contains(m),
        });
    }
    Ok(rows)
}

/// The container of `member` made from this habitat's directory, for
/// `logs`, `exec` and `shell`.
pub async fn container_of<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    member: &str,
) -> Result<ContainerSummary, InstanceError> {
    let name = habitat.config.name.as_str();
    let dir = dir_label(&habitat.dir);
    let scope = Scope {
        habitat: name,
        dir: &dir,
    };
    let containers = engine.list_containers(LABEL_HABITAT, name).await?;
    instance_containers(scope, &containers)
        .get(member)
        .map(|c| (*c).clone())
        .ok_or_else(|| InstanceError::NoContainer {
            habitat: name.to_string(),
            member: member.to_string(),
        })
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
}
