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
    LABEL_MEMBER_FIELDS,
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
    /// `Member::fields`, to name what changed.
    pub fields: &'a BTreeMap<String, String>,
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
                Some(c) => match stale_reason(&c.labels, image_key, d) {
                    Some(reason) => Action::Recreate {
                        old: c.id.clone(),
                        reason,
                    },
                    None if matches!(c.state.as_str(), "running" | "restarting") => {
                        Action::Keep { id: c.id.clone() }
                    }
                    None => Action::Start { id: c.id.clone() },
                },
            };
            Step {
                member: d.member.to_string(),
                action,
            }
        })
        .collect()
}

/// Why the container labelled `labels` no longer matches `desired` running
/// the image of `image_key`, or `None` when it does: the image's keys, then
/// each field that changed (`config changed` for a container made before
/// kiln recorded its fields). Never parenthesised, so the CLI can put it in
/// parentheses.
pub fn stale_reason(
    labels: &BTreeMap<String, String>,
    image_key: &str,
    desired: &Desired<'_>,
) -> Option<String> {
    let label = |k: &str| labels.get(k).map_or("", String::as_str);
    let mut reasons = Vec::new();
    let old_key = label(LABEL_IMAGE_KEY);
    if old_key != image_key {
        reasons.push(format!(
            "image changed: {} → {}",
            short(old_key),
            short(image_key)
        ));
    }
    if label(LABEL_CONFIG_HASH) != desired.config_hash {
        let old: Option<BTreeMap<String, String>> = labels
            .get(LABEL_MEMBER_FIELDS)
            .and_then(|f| serde_json::from_str(f).ok());
        let named = old
            .map(|old| changes(&old, desired.fields))
            .unwrap_or_default();
        if named.is_empty() {
            reasons.push("config changed".to_string());
        } else {
            reasons.extend(named);
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// The fields (`Member::fields`) that differ between `old` and `new`, one
/// phrase each: `` env `X` added ``, `ports: A → B`.
pub fn changes(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (was, is) = (old.get(k), new.get(k));
            if was == is {
                return None;
            }
            Some(match (k.strip_prefix("env."), was, is) {
                (Some(var), None, _) => format!("env `{var}` added"),
                (Some(var), _, None) => format!("env `{var}` removed"),
                (Some(var), _, _) => format!("env `{var}` changed"),
                (None, was, is) => format!(
                    "{k}: {} → {}",
                    cut(was.map_or("none", String::as_str)),
                    cut(is.map_or("none", String::as_str))
                ),
            })
        })
        .collect()
}

/// A field's value as a reason shows it: at most 60 characters.
fn cut(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let head: String = value.chars().take(MAX - 1).collect();
        format!("{head}…")
    }
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

    static NO_FIELDS: BTreeMap<String, String> = BTreeMap::new();

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn changes_name_each_field() {
        let base = [
            ("command", "the image's"),
            ("ports", "none"),
            ("restart", "no"),
            ("env.A", "d1"),
        ];
        let with = |edits: &[(&str, Option<&str>)]| {
            let mut m = map(&base);
            for (k, v) in edits {
                match v {
                    Some(v) => m.insert(k.to_string(), v.to_string()),
                    None => m.remove(*k),
                };
            }
            m
        };
        type Edits<'a> = &'a [(&'a str, Option<&'a str>)];
        let cases: &[(&str, Edits, &[&str])] = &[
            ("nothing", &[], &[]),
            (
                "an env var added",
                &[("env.B", Some("d2"))],
                &["env `B` added"],
            ),
            (
                "an env var removed",
                &[("env.A", None)],
                &["env `A` removed"],
            ),
            (
                "an env value changed",
                &[("env.A", Some("d9"))],
                &["env `A` changed"],
            ),
            (
                "ports",
                &[("ports", Some("127.0.0.1:8081:3000/tcp"))],
                &["ports: none → 127.0.0.1:8081:3000/tcp"],
            ),
            (
                "two fields, in name order",
                &[("restart", Some("always")), ("command", Some("[\"sh\"]"))],
                &["command: the image's → [\"sh\"]", "restart: no → always"],
            ),
        ];
        for (what, edits, want) in cases {
            assert_eq!(changes(&map(&base), &with(edits)), *want, "{what}");
        }
        let long = "x".repeat(100);
        let got = changes(&map(&[("command", "a")]), &map(&[("command", &long)]));
        assert_eq!(got[0].chars().count(), "command: a → ".chars().count() + 60);
        assert!(got[0].ends_with('…'), "{got:?}");
    }

    #[test]
    fn a_stale_reason_names_the_image_and_the_fields_without_parentheses() {
        let fields = map(&[("ports", "none"), ("env.A", "d1")]);
        let new_fields = map(&[("ports", "1.2.3.4:1:2/tcp"), ("env.A", "d1")]);
        let labels = |key: &str, hash: &str, fields: Option<&BTreeMap<String, String>>| {
            let mut l = map(&[(LABEL_IMAGE_KEY, key), (LABEL_CONFIG_HASH, hash)]);
            if let Some(f) = fields {
                l.insert(
                    LABEL_MEMBER_FIELDS.to_string(),
                    serde_json::to_string(f).expect("json"),
                );
            }
            l
        };
        let desired = Desired {
            member: "a",
            config_hash: "H2",
            fields: &new_fields,
        };
        let k1 = "1111111111111111111111";
        let k2 = "2222222222222222222222";
        let cases = [
            ("current", labels(k2, "H2", Some(&new_fields)), None),
            (
                "image only",
                labels(k1, "H2", Some(&new_fields)),
                Some("image changed: 111111111111 → 222222222222"),
            ),
            (
                "a field",
                labels(k2, "H1", Some(&fields)),
                Some("ports: none → 1.2.3.4:1:2/tcp"),
            ),
            (
                "both",
                labels(k1, "H1", Some(&fields)),
                Some("image changed: 111111111111 → 222222222222; ports: none → 1.2.3.4:1:2/tcp"),
            ),
            (
                "made before fields were recorded",
                labels(k2, "H1", None),
                Some("config changed"),
            ),
            (
                "the hash moved but no field did (a new hash version)",
                labels(k2, "H1", Some(&new_fields)),
                Some("config changed"),
            ),
            (
                "never built",
                labels("", "H2", Some(&new_fields)),
                Some("image changed: none → 222222222222"),
            ),
        ];
        for (what, l, want) in cases {
            let got = stale_reason(&l, k2, &desired);
            assert_eq!(got.as_deref(), want, "{what}");
            if let Some(r) = got {
                assert!(!r.contains('(') && !r.contains(')'), "{what}: {r}");
            }
        }
    }

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
            fields: &NO_FIELDS,
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
                        reason: "image changed: OLD → K".into()
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
                fields: &NO_FIELDS,
            },
            Desired {
                member: "b",
                config_hash: "H",
                fields: &NO_FIELDS,
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
                fields: &NO_FIELDS,
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
            health: None,
            health_output: None,
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

    mod generated {
        use super::*;
        use crate::config::runtime::parse_port;
        use proptest::prelude::*;

        /// A member drawn from small sets, so two draws are often equal in some fields.
        fn member() -> impl Strategy<Value = Member> {
            (
                proptest::option::of(proptest::collection::vec("[a-c]{1,2}", 1..3)),
                proptest::collection::btree_map("[A-C]", "[xy]{0,2}", 0..3),
                prop_oneof![Just("no"), Just("always")],
                proptest::collection::vec((8000u16..8003, 80u16..82), 0..3),
            )
                .prop_map(|(command, env, restart, ports)| {
                    let mut ports: Vec<_> = ports
                        .iter()
                        .map(|(h, c)| parse_port(&format!("127.0.0.1:{h}:{c}")).expect("port"))
                        .collect();
                    ports.sort();
                    ports.dedup();
                    Member {
                        habitat: "h".into(),
                        dir: "/hab".into(),
                        name: "a".into(),
                        command,
                        // Values marked so a leak into a label or reason is seen.
                        env: env
                            .into_iter()
                            .map(|(k, v)| (k, format!("SECRET{v}")))
                            .collect(),
                        restart: restart.into(),
                        ports,
                        mounts: Vec::new(),
                        persist: Vec::new(),
                    }
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Stale exactly when the config hash moved; then each changed
            /// field is named, and no env value is ever shown or labelled.
            #[test]
            fn a_reason_is_given_exactly_when_the_member_changed(old in member(), new in member()) {
                let labels = old.container_spec("img", "K", &BTreeMap::new()).labels;
                for v in labels.values() {
                    prop_assert!(!v.contains("SECRET"), "{}", v);
                }
                let (hash, fields) = (new.config_hash(), new.fields());
                let desired = Desired { member: "a", config_hash: &hash, fields: &fields };
                let reason = stale_reason(&labels, "K", &desired);
                prop_assert_eq!(reason.is_none(), old == new, "{:?}", reason);
                if let Some(r) = reason {
                    prop_assert!(r != "config changed", "fields recorded, so named");
                    prop_assert!(!r.contains("SECRET"), "{}", r);
                    for (k, v) in &new.env {
                        if old.env.get(k) != Some(v) {
                            prop_assert!(r.contains(&format!("env `{k}`")), "{}", r);
                        }
                    }
                    if old.ports != new.ports {
                        prop_assert!(r.contains("ports: "), "{}", r);
                    }
                }
            }
        }
    }
}
