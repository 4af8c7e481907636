//! The named volume of each persisted path: its name, and what `up` does with
//! the volumes it finds before a member's container is made. Pure.
//!
//! Names are injective: a readable prefix (`HABITAT-MEMBER-SLUG`, lossy) and a
//! hash of the exact (directory, habitat, member, path). The older naming was
//! the prefix alone, so `/b-c` of member `a` and `/c` of member `a-b` shared
//! one volume; a volume of that naming is moved to its new name when exactly
//! one path could have used it, and refused otherwise, never shared.

use sha2::{Digest, Sha256};

use super::error::{Conflict, Owner};
use super::member::{Member, Persist};
use crate::engine::VolumeSummary;
use crate::image::labels::{LABEL_DIR, LABEL_HABITAT, LABEL_MIGRATED_FROM};

/// Bumped when the hashed identity changes; every volume name moves with it.
const NAME_VERSION: u32 = 2;
/// The readable prefix is cut here, so names stay well under the 255 bytes
/// of a directory name (the local driver keeps a volume in one).
const PREFIX_MAX: usize = 64;
/// Hex digits of the identity hash: 64 bits.
const HASH_HEX: usize = 16;

/// `/a//b/./c/` → `/a/b/c`, `/a/../b` → `/b`: the path the container sees,
/// so two spellings of one path are one volume. `path` is absolute.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The volume of `path` (clean, absolute) of `member` of `habitat` made from
/// `dir`: `HABITAT-MEMBER-SLUG-HASH`. Valid for Docker
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) whatever the inputs.
pub fn persist_volume(dir: &str, habitat: &str, member: &str, path: &str) -> String {
    // A JSON array of strings is an unambiguous encoding of the four.
    let identity = serde_json::json!(["persist", NAME_VERSION, dir, habitat, member, path]);
    let hash = hex::encode(Sha256::digest(identity.to_string().as_bytes()));
    let mut prefix: String = legacy_volume(habitat, member, path)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    prefix.truncate(PREFIX_MAX);
    if !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        prefix.insert(0, 'v');
    }
    format!("{prefix}-{}", &hash[..HASH_HEX])
}

/// The name kiln gave the volume before names were injective:
/// `HABITAT-MEMBER-SLUG`, the slug being the path with `/` as `-`
/// (`/home/dev` → `home-dev`, `/` → `root`). Kept to find such volumes.
pub fn legacy_volume(habitat: &str, member: &str, path: &str) -> String {
    let slug: String = path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let slug = if slug.is_empty() { "root" } else { &slug };
    format!("{habitat}-{member}-{slug}")
}

/// What `up` does with one persisted path before its member's container is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeStep {
    /// Its volume exists and is its own: mounted as it is.
    Use,
    /// It has no volume: one is made, empty.
    Create,
    /// It has none, but `from`, made under kiln's old naming for this path
    /// alone, holds its files: a volume is made, filled from `from`, and
    /// `from` is removed.
    Migrate { from: String },
}

/// The volumes the engine has for one persisted path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The volume under its name.
    pub current: Option<VolumeSummary>,
    /// The volume `current` was filled from (its `LABEL_MIGRATED_FROM`), when
    /// that one still exists.
    pub source: Option<VolumeSummary>,
    /// The volume under the old name of this path (`legacy_volume`).
    pub legacy: Option<VolumeSummary>,
}

/// The step for `persist` of `member`, given what was found; `all` are every
/// member of the config, since under the old naming any of them may have
/// shared the volume.
pub fn volume_step(
    member: &Member,
    persist: &Persist,
    found: &Found,
    all: &[Member],
) -> Result<VolumeStep, Box<Conflict>> {
    if let Some(current) = &found.current {
        let mut labels = current.labels.clone();
        labels.remove(LABEL_MIGRATED_FROM);
        if labels != member.volume_labels(persist) {
            return Err(Box::new(Conflict::Volume {
                volume: current.name.clone(),
                member: member.name.clone(),
                path: persist.path.clone(),
                owner: Owner::of(&current.labels),
            }));
        }
        if let Some(source) = &found.source {
            return Err(Box::new(Conflict::Unfinished {
                volume: current.name.clone(),
                from: source.name.clone(),
                member: member.name.clone(),
                path: persist.path.clone(),
            }));
        }
        return Ok(VolumeStep::Use);
    }
    let Some(legacy) = &found.legacy else {
        return Ok(VolumeStep::Create);
    };
    // Only kiln's own volumes are of the old naming; one without kiln's
    // labels, or with a directory (the old naming wrote none), is not.
    if !legacy.labels.contains_key(LABEL_HABITAT) || legacy.labels.contains_key(LABEL_DIR) {
        return Ok(VolumeStep::Create);
    }
    let claimants: Vec<(String, String)> = all
        .iter()
        .flat_map(|m| {
            m.persist
                .iter()
                .filter(|p| legacy_volume(&m.habitat, &m.name, &p.path) == legacy.name)
                .map(|p| (m.name.clone(), p.path.clone()))
        })
        .collect();
    let made_for = Owner::of(&legacy.labels);
    let this = (member.name.clone(), persist.path.clone());
    let made_here = made_for.habitat.as_deref() == Some(member.habitat.as_str())
        && made_for.member.as_deref() == Some(member.name.as_str())
        && made_for.path.as_deref().map(clean_path).as_deref() == Some(persist.path.as_str());
    if made_here && claimants == [this] {
        Ok(VolumeStep::Migrate {
            from: legacy.name.clone(),
        })
    } else {
        Err(Box::new(Conflict::Legacy {
            volume: legacy.name.clone(),
            habitat: member.habitat.clone(),
            member: member.name.clone(),
            path: persist.path.clone(),
            made_for,
            claimants,
        }))
    }
}

/// The name of the volume `labels` say a volume was filled from.
pub fn migrated_from(summary: &VolumeSummary) -> Option<&str> {
    summary.labels.get(LABEL_MIGRATED_FROM).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::image::labels::{LABEL_INSTANCE, LABEL_PERSIST};

    /// Docker's rule for volume names.
    fn docker_valid(name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    }

    #[test]
    fn paths_are_cleaned() {
        let cases = [
            ("/data", "/data"),
            ("/data/", "/data"),
            ("//data//x/", "/data/x"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/..", "/"),
            ("/", "/"),
        ];
        for (path, want) in cases {
            assert_eq!(clean_path(path), want, "{path}");
        }
    }

    #[test]
    fn the_old_naming_collided_and_the_new_one_does_not() {
        // (habitat, member, path) pairs the old naming gave one volume.
        let pairs = [
            (("a", "m", "/b-c"), ("a-m", "b", "/c")),
            (("h", "a", "/b-c"), ("h", "a-b", "/c")),
            (("h", "m", "/x/y"), ("h", "m", "/x-y")),
            (("h", "m", "/x y"), ("h", "m", "/x-y")),
            (("a", "b-c", "/data"), ("a-b", "c", "/data")),
            (("h", "m", "/"), ("h", "m", "/root")),
            (("h", "m", "/é"), ("h", "m", "/-")),
        ];
        for ((h1, m1, p1), (h2, m2, p2)) in pairs {
            assert_eq!(
                legacy_volume(h1, m1, p1),
                legacy_volume(h2, m2, p2),
                "{h1}/{m1}/{p1} and {h2}/{m2}/{p2} collided under the old naming"
            );
            let one = persist_volume("/dir", h1, m1, p1);
            let two = persist_volume("/dir", h2, m2, p2);
            assert_ne!(one, two, "{h1}/{m1}/{p1} and {h2}/{m2}/{p2}");
            assert!(docker_valid(&one) && docker_valid(&two), "{one} {two}");
        }
        // The same path of the same member from two directories: two volumes.
        assert_ne!(
            persist_volume("/one", "h", "m", "/data"),
            persist_volume("/two", "h", "m", "/data")
        );
    }

    #[test]
    fn names_are_readable_stable_and_bounded() {
        let name = persist_volume("/hab", "web", "alice", "/home/dev");
        assert!(name.starts_with("web-alice-home-dev-"), "{name}");
        assert_eq!(name.len(), "web-alice-home-dev-".len() + HASH_HEX);
        assert_eq!(name, persist_volume("/hab", "web", "alice", "/home/dev"));
        let long = persist_volume("/hab", &"h".repeat(300), "m", &"/x".repeat(300));
        assert_eq!(long.len(), PREFIX_MAX + 1 + HASH_HEX);
        // An unchecked config may hold anything; the name is valid anyway.
        for odd in [
            persist_volume("/", "-h", "m", "/"),
            persist_volume("/", "", "", "/"),
            persist_volume("/", "Ü", "ß", "/ä"),
        ] {
            assert!(docker_valid(&odd), "{odd}");
        }
    }

    /// Components drawn from the characters that made the old names collide.
    fn component() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab.\\-_/]{0,6}").expect("regex")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn distinct_identities_never_share_a_volume(
            ids in proptest::collection::vec(
                (component(), component(), component(), component()),
                1..24,
            )
        ) {
            let mut seen: BTreeMap<String, (String, String, String, String)> = BTreeMap::new();
            for (dir, habitat, member, path) in ids {
                let path = clean_path(&format!("/{path}"));
                let id = (dir.clone(), habitat.clone(), member.clone(), path.clone());
                let name = persist_volume(&dir, &habitat, &member, &path);
                prop_assert!(docker_valid(&name), "{}", name);
                if let Some(other) = seen.insert(name.clone(), id.clone()) {
                    prop_assert_eq!(other, id, "two identities share `{}`", name);
                }
            }
        }
    }

    fn member(name: &str, paths: &[&str]) -> Member {
        Member {
            habitat: "h".to_string(),
            dir: "/hab".to_string(),
            name: name.to_string(),
            command: None,
            env: BTreeMap::new(),
            restart: "no".to_string(),
            ports: Vec::new(),
            mounts: Vec::new(),
            persist: paths
                .iter()
                .map(|p| Persist {
                    path: p.to_string(),
                    volume: persist_volume("/hab", "h", name, p),
                })
                .collect(),
        }
    }

    fn volume(name: &str, labels: &[(&str, &str)]) -> VolumeSummary {
        VolumeSummary {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The labels the old naming wrote: no directory.
    fn old_labels<'a>(habitat: &'a str, member: &'a str, path: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            (LABEL_HABITAT, habitat),
            (LABEL_INSTANCE, member),
            (LABEL_PERSIST, path),
        ]
    }

    #[test]
    fn steps_for_what_is_found() {
        let a = member("a", &["/b-c", "/data"]);
        let ab = member("a-b", &["/c"]);
        let solo = member("solo", &["/x/y"]);
        let all = vec![a.clone(), ab.clone(), solo.clone()];
        let own = |m: &Member, i: usize| {
            let p = &m.persist[i];
            VolumeSummary {
                name: p.volume.clone(),
                labels: m.volume_labels(p),
            }
        };
        let mut migrated = own(&a, 1);
        migrated
            .labels
            .insert(LABEL_MIGRATED_FROM.to_string(), "h-a-data".to_string());
        struct Case {
            what: &'static str,
            member: Member,
            index: usize,
            found: Found,
            want: Result<VolumeStep, &'static str>,
        }
        let cases = vec![
            Case {
                what: "nothing yet",
                member: a.clone(),
                index: 1,
                found: Found::default(),
                want: Ok(VolumeStep::Create),
            },
            Case {
                what: "its own volume",
                member: a.clone(),
                index: 1,
                found: Found {
                    current: Some(own(&a, 1)),
                    ..Found::default()
                },
                want: Ok(VolumeStep::Use),
            },
            Case {
                what: "its own volume; an old one is left over and ignored",
                member: a.clone(),
                index: 1,
                found: Found {
                    current: Some(own(&a, 1)),
                    legacy: Some(volume("h-a-data", &old_labels("h", "a", "/data"))),
                    ..Found::default()
                },
                want: Ok(VolumeStep::Use),
            },
            Case {
                what: "its name taken by a volume kiln did not make",
                member: a.clone(),
                index: 1,
                found: Found {
                    current: Some(volume(&a.persist[1].volume, &[])),
                    ..Found::default()
                },
                want: Err("volume"),
            },
            Case {
                what: "its name taken by another directory's volume",
                member: a.clone(),
                index: 1,
                found: Found {
                    current: Some({
                        let mut v = own(&a, 1);
                        v.labels.insert(LABEL_DIR.into(), "/elsewhere".into());
                        v
                    }),
                    ..Found::default()
                },
                want: Err("volume"),
            },
            Case {
                what: "a move that did not finish",
                member: a.clone(),
                index: 1,
                found: Found {
                    current: Some(migrated.clone()),
                    source: Some(volume("h-a-data", &old_labels("h", "a", "/data"))),
                    ..Found::default()
                },
                want: Err("unfinished"),
            },
            Case {
                what: "a move that finished",
                member: a.clone(),
                index: 1,
                found: Found {
                    current: Some(migrated),
                    ..Found::default()
                },
                want: Ok(VolumeStep::Use),
            },
            Case {
                what: "an old volume only this path maps to",
                member: a.clone(),
                index: 1,
                found: Found {
                    legacy: Some(volume("h-a-data", &old_labels("h", "a", "/data"))),
                    ..Found::default()
                },
                want: Ok(VolumeStep::Migrate {
                    from: "h-a-data".to_string(),
                }),
            },
            Case {
                what: "an old volume written as `/x/y/`",
                member: solo.clone(),
                index: 0,
                found: Found {
                    legacy: Some(volume("h-solo-x-y", &old_labels("h", "solo", "/x/y/"))),
                    ..Found::default()
                },
                want: Ok(VolumeStep::Migrate {
                    from: "h-solo-x-y".to_string(),
                }),
            },
            Case {
                what: "an old volume `/b-c` of `a` and `/c` of `a-b` shared (made by a)",
                member: a.clone(),
                index: 0,
                found: Found {
                    legacy: Some(volume("h-a-b-c", &old_labels("h", "a", "/b-c"))),
                    ..Found::default()
                },
                want: Err("legacy"),
            },
            Case {
                what: "the same shared volume, seen from `a-b`",
                member: ab.clone(),
                index: 0,
                found: Found {
                    legacy: Some(volume("h-a-b-c", &old_labels("h", "a", "/b-c"))),
                    ..Found::default()
                },
                want: Err("legacy"),
            },
            Case {
                what: "an old volume another habitat made under the same name",
                member: ab.clone(),
                index: 0,
                found: Found {
                    legacy: Some(volume("h-a-b-c", &old_labels("h-a", "b", "/c"))),
                    ..Found::default()
                },
                want: Err("legacy"),
            },
            Case {
                what: "an old volume of a member gone from the config",
                member: solo.clone(),
                index: 0,
                found: Found {
                    legacy: Some(volume("h-solo-x-y", &old_labels("h", "solo", "/x-y"))),
                    ..Found::default()
                },
                want: Err("legacy"),
            },
            Case {
                what: "a volume with the old name that kiln did not make",
                member: solo.clone(),
                index: 0,
                found: Found {
                    legacy: Some(volume("h-solo-x-y", &[])),
                    ..Found::default()
                },
                want: Ok(VolumeStep::Create),
            },
        ];
        for c in cases {
            let got = volume_step(&c.member, &c.member.persist[c.index], &c.found, &all);
            let got = got.map_err(|e| match *e {
                Conflict::Volume { .. } => "volume",
                Conflict::Unfinished { .. } => "unfinished",
                Conflict::Legacy { .. } => "legacy",
                Conflict::Name { .. } => "name",
            });
            assert_eq!(got, c.want, "{}", c.what);
        }
    }

    #[test]
    fn a_shared_old_volume_names_everyone_who_mapped_to_it() {
        let m = member("m", &["/x/y", "/x-y"]);
        let found = Found {
            legacy: Some(volume("h-m-x-y", &old_labels("h", "m", "/x/y"))),
            ..Found::default()
        };
        let err =
            volume_step(&m, &m.persist[0], &found, std::slice::from_ref(&m)).expect_err("shared");
        let Conflict::Legacy { claimants, .. } = &*err else {
            panic!("{err:?}");
        };
        let got: BTreeSet<&str> = claimants.iter().map(|(_, p)| p.as_str()).collect();
        assert_eq!(got, BTreeSet::from(["/x/y", "/x-y"]));
        let text = err.to_string();
        assert!(text.contains("`h-m-x-y`"), "{text}");
        assert!(text.contains("hint:"), "{text}");
    }
}
