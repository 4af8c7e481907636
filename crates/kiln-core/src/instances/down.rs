//! `down` and `restart`: stopping members' containers, and removing them
//! with their persisted volumes. Returns data; never prints.

use std::time::Duration;

use futures_util::future::join_all;

use super::error::InstanceError;
pub use super::member::STOP_TIMEOUT;
use super::member::{dir_label, member_names, selection, stop_timeout};
use super::reconcile::{Scope, instance_containers};
use crate::config::Habitat;
use crate::engine::{ContainerSummary, Engine, EngineError, VolumeSummary};
use crate::image::labels::{LABEL_HABITAT, LABEL_INSTANCE, LABEL_PERSIST};

/// Stops (a container already gone is fine) and removes one container, with
/// the stop timeout its labels ask for; `up` uses it for the containers it
/// recreates.
pub(super) async fn stop_and_remove<E: Engine>(
    engine: &E,
    id: &str,
    timeout: Duration,
) -> Result<(), EngineError> {
    match engine.stop_container(id, timeout).await {
        Ok(()) | Err(EngineError::NoSuchContainer(_)) => {}
        Err(e) => return Err(e),
    }
    engine.remove_container(id).await
}

/// What `down` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Container names.
    pub containers: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
}

/// The persisted volumes of `scope`, whoever's member they are (members gone
/// from the config included), found by their labels.
pub(super) async fn persisted_volumes<E: Engine>(
    engine: &E,
    scope: Scope<'_>,
) -> Result<Vec<VolumeSummary>, EngineError> {
    Ok(engine
        .list_volumes(LABEL_HABITAT, scope.habitat)
        .await?
        .into_iter()
        .filter(|v| scope.owns(&v.labels) && v.labels.contains_key(LABEL_PERSIST))
        .collect())
}

/// Stops and removes the selected members' containers (all instance
/// containers of `habitat` from its directory when `members` is empty,
/// orphans included); with `volumes`, their persisted volumes too, those of
/// members gone from the config included.
pub async fn down<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    members: &[String],
    volumes: bool,
) -> Result<DownReport, InstanceError> {
    let name = habitat.config.name.as_str();
    let dir = dir_label(&habitat.dir);
    let scope = Scope {
        habitat: name,
        dir: &dir,
    };
    let containers = engine.list_containers(LABEL_HABITAT, name).await?;
    let existing = instance_containers(scope, &containers);
    let persisted = if volumes {
        persisted_volumes(engine, scope).await?
    } else {
        Vec::new()
    };
    let mut all: Vec<String> = member_names(&habitat.config);
    all.extend(existing.keys().map(|k| k.to_string()));
    all.extend(
        persisted
            .iter()
            .filter_map(|v| v.labels.get(LABEL_INSTANCE).cloned()),
    );
    all.sort();
    all.dedup();
    let selected = selection(&all, members, name)?;
    let chosen: Vec<&ContainerSummary> = existing
        .iter()
        .filter(|(m, _)| selected.iter().any(|s| s == *m))
        .map(|(_, c)| *c)
        .collect();
    let stops = chosen
        .iter()
        .map(|c| stop_and_remove(engine, &c.id, stop_timeout(&c.labels)));
    for result in join_all(stops).await {
        result?;
    }
    let mut report = DownReport {
        containers: chosen.iter().map(|c| c.name.clone()).collect(),
        volumes: Vec::new(),
    };
    for v in persisted {
        let owner = v.labels.get(LABEL_INSTANCE).map(String::as_str);
        if owner.is_some_and(|o| selected.iter().any(|s| s == o)) {
            engine.remove_volume(&v.name).await?;
            report.volumes.push(v.name);
        }
    }
    Ok(report)
}

/// Stops and starts the selected members' containers (all when `members` is
/// empty); per member, `Err` holds why it failed.
pub async fn restart<E: Engine>(
    engine: &E,
    habitat: &Habitat,
    members: &[String],
) -> Result<Vec<(String, Result<(), String>)>, InstanceError> {
    let name = habitat.config.name.as_str();
    let dir = dir_label(&habitat.dir);
    let scope = Scope {
        habitat: name,
        dir: &dir,
    };
    let containers = engine.list_containers(LABEL_HABITAT, name).await?;
    let existing = instance_containers(scope, &containers);
    let all: Vec<String> = existing.keys().map(|k| k.to_string()).collect();
    let selected = selection(&all, members, name)?;
    let runs = selected.iter().map(|m| {
        let id = existing[m.as_str()].id.clone();
        let timeout = stop_timeout(&existing[m.as_str()].labels);
        async move {
            let result = async {
                engine.stop_container(&id, timeout).await?;
                engine.start_container(&id).await
            }
            .await;
            (m.clone(), result.map_err(|e| e.to_string()))
        }
    });
    Ok(join_all(runs).await)
}
