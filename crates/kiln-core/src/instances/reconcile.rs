//! Desired members against the containers that exist → what to do with each.
//! Pure, so every case is a row of a table test. A container counts as a
//! member's only when it carries kiln's labels for that habitat, member and
//! directory under the member's own name; anything else with the member's
//! name is a clash, never touched.

use std::collections::BTreeMap;

use super::error::{Conflict, Owner};
use super::member::{Member, container_name};
use crate::engine::{ContainerInfo, ContainerSummary};

use crate::image::labels::{
    LABEL_CONFIG_HASH, LABEL_DIR, LABEL_HABITAT, LABEL_IMAGE_KEY, LABEL_INSTANCE,
};

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

/// The habitat an instance command acts for: its name and its directory
/// (`LABEL_DIR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope<'a> {
    pub habitat: &'a str,
    pub dir: &'a str,
}

impl Scope<'_> {
    /// Whether a thing labelled `labels` was made for this habitat from this
    /// directory. Without a directory label it was made before kiln recorded
    /// one, and is taken as this directory's (the next `up` relabels it).
    pub fn owns(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(LABEL_HABITAT).map(String::as_str) == Some(self.habitat)
            && labels.get(LABEL_DIR).is_none_or(|d| d.as_str() == self.dir)
    }

    /// The member a container of this scope belongs to: its instance label,
    /// when the container has that member's name (`HABITAT-MEMBER`, which
    /// another habitat's member may share, so the labels decide, never the name).
    pub fn member_of<'c>(
        &self,
        name: &str,
        labels: &'c BTreeMap<String, String>,
    ) -> Option<&'c str> {
        let member = labels.get(LABEL_INSTANCE)?;
        (self.owns(labels) && name == container_name(self.habitat, member))
            .then_some(member.as_str())
    }
}

/// The instance containers of `scope` among `containers`, by member name.
pub fn instance_containers<'a>(
    scope: Scope<'_>,
    containers: &'a [ContainerSummary],
) -> BTreeMap<&'a str, &'a ContainerSummary> {
    containers
        .iter()
        .filter_map(|c| Some((scope.member_of(&c.name, &c.labels)?, c)))
        .collect()
}

/// The step of every desired member, in the order given. `image_key` is the
/// final key of the image members should run.
pub fn reconcile(
    scope: Scope<'_>,
    desired: &[Desired<'_>],
    image_key: &str,
    containers: &[ContainerSummary],
) -> Vec<Step> {
    let existing = instance_containers(scope, containers);
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
    scope: Scope<'_>,
    members: &[String],
    containers: &'a [ContainerSummary],
) -> Vec<&'a ContainerSummary> {
    instance_containers(scope, containers)
        .into_iter()
        .filter(|(m, _)| !members.iter().any(|x| x == m))
        .map(|(_, c)| c)
        .collect()
}

/// The clash when a container found by `member`'s name (`HABITAT-MEMBER`)
/// belongs to someone else: kiln never touches a container it did not make
/// for this member from this directory.
pub fn name_conflict(info: &ContainerInfo, member: &Member) -> Option<Conflict> {
    let scope = Scope {
        habitat: &member.habitat,
        dir: &member.dir,
    };
    if scope.member_of(&info.name, &info.labels) == Some(member.name.as_str()) {
        return None;
    }
    Some(Conflict::Name {
        container: info.name.clone(),
        habitat: member.habitat.clone(),
        member: member.name.clone(),
        dir: member.dir.clone(),
        owner: Owner::of(&info.labels),
    })
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

    const SCOPE: Scope = Scope {
        habitat: "h",
        dir: "/hab",
    };

    fn container(
        id: &str,
        member: Option<&str>,
        key: &str,
        hash: &str,
        state: &str,
    ) -> ContainerSummary {
        let mut labels = BTreeMap::from([
            (LABEL_HABITAT.to_string(), "h".to_string()),
            (LABEL_DIR.to_string(), "/hab".to_string()),
        ]);
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
        let steps = reconcile(SCOPE, &desired, "K", &existing);
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
        let steps = reconcile(SCOPE, &desired, "K", &existing);
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
            SCOPE,
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
        let found = orphans(SCOPE, &["a".to_string()], &existing);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "gone");
    }

    #[test]
    fn only_this_habitat_directory_and_name_make_a_member() {
        let labelled = |name: &str, labels: &[(&str, &str)]| ContainerSummary {
            id: name.to_string(),
            name: name.to_string(),
            image: "img".to_string(),
            state: "running".to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let all = [
            labelled(
                "h-own",
                &[
                    (LABEL_HABITAT, "h"),
                    (LABEL_DIR, "/hab"),
                    (LABEL_INSTANCE, "own"),
                ],
            ),
            // Made before kiln recorded directories.
            labelled(
                "h-legacy",
                &[(LABEL_HABITAT, "h"), (LABEL_INSTANCE, "legacy")],
            ),
            labelled(
                "h-other-dir",
                &[
                    (LABEL_HABITAT, "h"),
                    (LABEL_DIR, "/elsewhere"),
                    (LABEL_INSTANCE, "other-dir"),
                ],
            ),
            // Someone else's container with a member's labels but not its name.
            labelled(
                "renamed",
                &[
                    (LABEL_HABITAT, "h"),
                    (LABEL_DIR, "/hab"),
                    (LABEL_INSTANCE, "renamed"),
                ],
            ),
            labelled(
                "h-x",
                &[
                    (LABEL_HABITAT, "h"),
                    (LABEL_DIR, "/hab"),
                    (LABEL_INSTANCE, "y"),
                ],
            ),
        ];
        let found: Vec<&str> = instance_containers(SCOPE, &all).into_keys().collect();
        assert_eq!(found, ["legacy", "own"]);
    }

    #[test]
    fn foreign_containers_are_recognised() {
        let info = |name: &str, labels: &[(&str, &str)]| ContainerInfo {
            id: "x".into(),
            name: name.into(),
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
        let member = |habitat: &str, name: &str| Member {
            habitat: habitat.into(),
            dir: "/hab".into(),
            name: name.into(),
            command: None,
            env: BTreeMap::new(),
            restart: "no".into(),
            ports: Vec::new(),
            mounts: Vec::new(),
            persist: Vec::new(),
        };
        let kind = |c: Option<Conflict>| {
            c.map(|c| {
                let text = c.to_string();
                if text.contains("kiln did not create") {
                    "foreign"
                } else if text.contains("has the same name") {
                    "other member"
                } else if text.contains("not from `/hab`") {
                    "other directory"
                } else {
                    panic!("{text}")
                }
            })
        };
        let a = member("h", "a");
        let cases: [(&str, ContainerInfo, &Member, Option<&str>); 7] = [
            ("no labels", info("h-a", &[]), &a, Some("foreign")),
            (
                "a habitat only",
                info("h-a", &[(LABEL_HABITAT, "h")]),
                &a,
                Some("foreign"),
            ),
            (
                "its own",
                info(
                    "h-a",
                    &[
                        (LABEL_HABITAT, "h"),
                        (LABEL_DIR, "/hab"),
                        (LABEL_INSTANCE, "a"),
                    ],
                ),
                &a,
                None,
            ),
            (
                "its own, from before directories were recorded",
                info("h-a", &[(LABEL_HABITAT, "h"), (LABEL_INSTANCE, "a")]),
                &a,
                None,
            ),
            (
                "another directory's",
                info(
                    "h-a",
                    &[
                        (LABEL_HABITAT, "h"),
                        (LABEL_DIR, "/x"),
                        (LABEL_INSTANCE, "a"),
                    ],
                ),
                &a,
                Some("other directory"),
            ),
            (
                "habitat `a` member `b-c` seen by habitat `a-b` member `c`",
                info(
                    "a-b-c",
                    &[
                        (LABEL_HABITAT, "a"),
                        (LABEL_DIR, "/hab"),
                        (LABEL_INSTANCE, "b-c"),
                    ],
                ),
                &member("a-b", "c"),
                Some("other member"),
            ),
            (
                "habitat `a-b` member `c` seen by habitat `a` member `b-c`",
                info(
                    "a-b-c",
                    &[
                        (LABEL_HABITAT, "a-b"),
                        (LABEL_DIR, "/hab"),
                        (LABEL_INSTANCE, "c"),
                    ],
                ),
                &member("a", "b-c"),
                Some("other member"),
            ),
        ];
        for (what, info, m, want) in cases {
            assert_eq!(kind(name_conflict(&info, m)), want, "{what}");
        }
    }
}
