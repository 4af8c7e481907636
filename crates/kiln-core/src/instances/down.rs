//! `down` and `restart`: stopping members' containers, and removing them
//! with their persisted volumes. Returns data; never prints.

use std::time::Duration;

use futures_util::future::join_all;

use super::error::InstanceError;
use super::member::selection;
use super::reconcile::instance_containers;
use crate::engine::{ContainerSummary, Engine, EngineError};
use crate::image::labels::{LABEL_HABITAT, LABEL_INSTANCE, LABEL_PERSIST};

/// How long a stopping container gets before it is killed. Members run under
/// an init process, so a stop is usually prompt.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops (a container already gone is fine) and removes one container; `up`
/// uses it for the containers it recreates.
pub(super) async fn stop_and_remove<E: Engine>(engine: &E, id: &str) -> Result<(), EngineError> {
    match engine.stop_container(id, STOP_TIMEOUT).await {
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
