//! Desired members against the containers that exist → what to do with each.
//! Pure, so every case is a row of a table test. A container counts as a
//! member's only when it carries kiln's instance labels; anything else with
//! the member's name is a clash, never touched.

use std::collections::BTreeMap;

use crate::engine::{ContainerInfo, ContainerSummary};

use crate::image::labels::{LABEL_CONFIG_HASH, LABEL_HABITAT, LABEL_IMAGE_KEY, LABEL_INSTANCE};

/// What a member needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Its container runs the current image with the current config.
    Keep { id: String },
    /// Its container is current but stopped.
    Start { id: String },
    /// It has no container.
    Create,
    /// Its container is stale; `reason` says why.
    Recreate { old: String, reason: String },
}

/// One member's action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub member: String,
    pub action: Action,
}

/// One member as `up` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired<'a> {
    pub member: &'a str,
    pub config_hash: &'a str,
}

/// The instance containers of `habitat` among `containers`, by member name.
pub fn instance_containers<'a>(
    habitat: &str,
    containers: &'a [ContainerSummary],
) -> BTreeMap<&'a str, &'a ContainerSummary> {
    containers
        .iter()
        .filter(|c| c.labels.get(LABEL_HABITAT).map(String::as_str) == Some(habitat))
        .filter_map(|c| Some((c.labels.get(LABEL_INSTANCE)?.as_str(), c)))
        .collect()
}

/// The step of every desired member, in the order given. `image_key` is the
/// final key of the image members should run.
pub fn reconcile(
    habitat: &str,
    desired: &[Desired<'_>],
    image_key: &str,
    containers: &[ContainerSummary],
) -> Vec<Step> {
    let existing = instance_containers(habitat, containers);
    desired
        .iter()
        .map(|d| {
            let action = match existing.get(d.member) {
                None => Action::Create,
                Some(c) => {
                    let label = |k: &str| c.labels.get(k).map_or("", String::as_str);
                    let old_key = label(LABEL_IMAGE_KEY);
                    if old_key != image_key {
                        Action::Recreate {
                            old: c.id.clone(),
                            reason: format!(
                                "image changed ({} → {})",
                                short(old_key),
                                short(image_key)
                            ),
                        }
                    } else if label(LABEL_CONFIG_HASH) != d.config_hash {
                        Action::Recreate {
                            old: c.id.clone(),
                            reason: "config changed".to_string(),
                        }
                    } else if matches!(c.state.as_str(), "running" | "restarting") {
                        Action::Keep { id: c.id.clone() }
                    } else {
                        Action::Start { id: c.id.clone() }
                    }
                }
            };
            Step {
                member: d.member.to_string(),
                action,
            }
        })
        .collect()
}

/// Instance containers of members no longer in the config.
pub fn orphans<'a>(
    habitat: &str,
    members: &[String],
    containers: &'a [ContainerSummary],
) -> Vec<&'a ContainerSummary> {
    instance_containers(habitat, containers)
        .into_iter()
        .filter(|(m, _)| !members.iter().any(|x| x == m))
        .map(|(_, c)| c)
        .collect()
}

/// Whether a container found by a member's name (`HABITAT-MEMBER`) belongs to
/// someone else: kiln never touches a container it did not make for this member.
pub fn is_foreign(info: &ContainerInfo, habitat: &str, member: &str) -> bool {
    info.labels.get(LABEL_HABITAT).map(String::as_str) != Some(habitat)
        || info.labels.get(LABEL_INSTANCE).map(String::as_str) != Some(member)
}

/// The first 12 characters of a key; `none` for an empty one.
pub fn short(key: &str) -> &str {
    if key.is_empty() {
        "none"
    } else {
        &key[..key.len().min(12)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(
        id: &str,
        member: Option<&str>,
        key: &str,
        hash: &str,
        state: &str,
    ) -> ContainerSummary {
        let mut labels = BTreeMap::from([(LABEL_HABITAT.to_string(), "h".to_string())]);
        if let Some(m) = member {
            labels.insert(LABEL_INSTANCE.to_string(), m.to_string());
            labels.insert(LABEL_IMAGE_KEY.to_string(), key.to_string());
            labels.insert(LABEL_CONFIG_HASH.to_string(), hash.to_string());
        }
        ContainerSummary {
            id: id.to_string(),
            name: format!("h-{}", member.unwrap_or("x")),
            image: "img".to_string(),
            state: state.to_string(),
            labels,
        }
    }

    #[test]
    fn table() {
        let existing = vec![
            container("c-keep", Some("keep"), "K", "H", "running"),
            container("c-stopped", Some("stopped"), "K", "H", "exited"),
            container("c-old-image", Some("old-image"), "OLD", "H", "running"),
            container("c-old-config", Some("old-config"), "K", "H0", "running"),
            container("c-restarting", Some("restarting"), "K", "H", "restarting"),
            // A build container of the same habitat: not an instance.
            container("c-build", None, "", "", "exited"),
        ];
        let desired: Vec<Desired> = [
            "keep",
            "stopped",
            "old-image",
            "old-config",
            "restarting",
            "new",
        ]
        .iter()
        .map(|m| Desired {
            member: m,
            config_hash: "H",
        })
        .collect();
        let steps = reconcile("h", &desired, "K", &existing);
        let got: Vec<(&str, Action)> = steps
            .iter()
            .map(|s| (s.member.as_str(), s.action.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "keep",
                    Action::Keep {
                        id: "c-keep".into()
                    }
                ),
                (
                    "stopped",
                    Action::Start {
                        id: "c-stopped".into()
                    }
                ),
                (
                    "old-image",
                    Action::Recreate {
                        old: "c-old-image".into(),
                        reason: "image changed (OLD → K)".into()
                    }
                ),
                (
                    "old-config",
                    Action::Recreate {
                        old: "c-old-config".into(),
                        reason: "config changed".into()
                    }
                ),
                (
                    "restarting",
                    Action::Keep {
                        id: "c-restarting".into()
                    }
                ),
                ("new", Action::Create),
            ]
        );
    }

    #[test]
    fn reconciling_twice_with_the_result_changes_nothing() {
        // After `up` every member has a current, running container.
        let existing = vec![
            container("a", Some("a"), "K", "H", "running"),
            container("b", Some("b"), "K", "H", "running"),
        ];
        let desired = [
            Desired {
                member: "a",
                config_hash: "H",
            },
            Desired {
                member: "b",
                config_hash: "H",
            },
        ];
        let steps = reconcile("h", &desired, "K", &existing);
        assert!(
            steps
                .iter()
                .all(|s| matches!(s.action, Action::Keep { .. }))
        );
    }

    #[test]
    fn other_habitats_and_unlabelled_containers_are_not_members() {
        let mut other = container("o", Some("a"), "K", "H", "running");
        other.labels.insert(LABEL_HABITAT.into(), "other".into());
        let steps = reconcile(
            "h",
            &[Desired {
                member: "a",
                config_hash: "H",
            }],
            "K",
            &[other],
        );
        assert_eq!(steps[0].action, Action::Create);
    }

    #[test]
    fn orphans_are_members_gone_from_the_config() {
        let existing = vec![
            container("a", Some("a"), "K", "H", "running"),
            container("gone", Some("gone"), "K", "H", "running"),
        ];
        let found = orphans("h", &["a".to_string()], &existing);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "gone");
    }

    #[test]
    fn foreign_containers_are_recognised() {
        let info = |labels: &[(&str, &str)]| ContainerInfo {
            id: "x".into(),
            name: "h-a".into(),
            state: "running".into(),
            started_at: None,
            image: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ports: Vec::new(),
            restart_count: 0,
            exit_code: None,
            upper_dir: None,
        };
        assert!(is_foreign(&info(&[]), "h", "a"));
        assert!(is_foreign(&info(&[(LABEL_HABITAT, "h")]), "h", "a"));
        assert!(is_foreign(
            &info(&[(LABEL_HABITAT, "h-a"), (LABEL_INSTANCE, "a")]),
            "h",
            "a"
        ));
        assert!(!is_foreign(
            &info(&[(LABEL_HABITAT, "h"), (LABEL_INSTANCE, "a")]),
            "h",
            "a"
        ));
    }
}
