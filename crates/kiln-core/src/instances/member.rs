//! One member of `instances:` resolved from the config (defaults merged in,
//! host paths made absolute) and the hash of that resolution, which says
//! whether a running container still matches its member. Pure.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::InstanceError;
use super::volume::{clean_path, persist_volume};
use crate::config::runtime::{parse_port, parse_volume, volume_source};
use crate::config::{Config, RestartPolicy};
use crate::engine::{ContainerSpec, Mount, PortBinding};
use crate::image::labels::{
    LABEL_CONFIG_HASH, LABEL_DIR, LABEL_HABITAT, LABEL_IMAGE_KEY, LABEL_INSTANCE,
    LABEL_MEMBER_FIELDS, LABEL_PERSIST, LABEL_STOP_BUDGET,
};
use crate::keys::canonical;

/// Bumped when the meaning of the hashed fields changes, so every container
/// made under the old meaning is recreated once. 2: the habitat directory
/// joined the member, and volume names became injective.
const HASH_VERSION: u32 = 2;

/// How long a stopping container gets before it is killed, unless its image
/// says its init needs longer. Members run under an init process, so a stop
/// is usually prompt.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Time on top of an init's stop budget: its own exit, the engine's round trip.
const STOP_MARGIN: Duration = Duration::from_secs(2);

/// The stop timeout of a container whose image (or the container itself:
/// it inherits the image's labels) carries `labels`: an image with services
/// gets every grace its init may use (`LABEL_STOP_BUDGET`, SPEC §9), in whole
/// seconds as Docker takes it, and never less than [`STOP_TIMEOUT`].
pub fn stop_timeout(labels: &BTreeMap<String, String>) -> Duration {
    match labels
        .get(LABEL_STOP_BUDGET)
        .and_then(|ms| ms.parse::<u64>().ok())
    {
        Some(ms) => {
            let budget = Duration::from_secs(ms.div_ceil(1000)) + STOP_MARGIN;
            budget.max(STOP_TIMEOUT)
        }
        None => STOP_TIMEOUT,
    }
}

/// A path of the container kept in a named volume of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    /// Absolute path in the container, clean (`volume::clean_path`).
    pub path: String,
    /// `HABITAT-MEMBER-SLUG-HASH` (`volume::persist_volume`).
    pub volume: String,
}

/// Everything that decides a member's container, apart from its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub habitat: String,
    /// The habitat directory, as its `LABEL_DIR` says.
    pub dir: String,
    pub name: String,
    pub command: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    /// Docker's name: `no`, `on-failure`, `always`, `unless-stopped`.
    pub restart: String,
    /// Sorted.
    pub ports: Vec<PortBinding>,
    /// The habitat's runtime volumes, then the member's own; bind sources absolute.
    pub mounts: Vec<Mount>,
    pub persist: Vec<Persist>,
}

impl Member {
    /// The member `name` of `config`, with `build.files.volumes` and the
    /// defaults merged in; `Err` for an unknown member or an entry the config
    /// check would reject.
    pub fn resolve(
        config: &Config,
        habitat_dir: &Path,
        name: &str,
    ) -> Result<Member, InstanceError> {
        let instances = config
            .instances
            .as_ref()
            .ok_or_else(|| InstanceError::NoInstances {
                habitat: config.name.clone(),
            })?;
        let own = instances
            .members
            .get(name)
            .ok_or_else(|| InstanceError::UnknownMember {
                habitat: config.name.clone(),
                name: name.to_string(),
                known: member_names(config),
            })?
            .clone()
            .unwrap_or_default();
        let invalid = |message| InstanceError::InvalidMember {
            habitat: config.name.clone(),
            member: name.to_string(),
            message,
        };
        let defaults = &instances.defaults;
        let mut env = defaults.env.to_map();
        env.extend(own.env.to_map());
        let mut ports = Vec::new();
        for p in defaults.ports.iter().chain(&own.ports) {
            ports.push(parse_port(p).map_err(invalid)?);
        }
        ports.sort();
        ports.dedup();
        let mut mounts: Vec<Mount> = config
            .build
            .files
            .iter()
            .flat_map(|f| &f.volumes)
            .map(|v| Mount {
                source: volume_source(habitat_dir, &v.source),
                target: v.dest.clone(),
                readonly: v.readonly,
            })
            .collect();
        for v in defaults.volumes.iter().chain(&own.volumes) {
            let (source, target, readonly) = parse_volume(v).map_err(invalid)?;
            mounts.push(Mount {
                source: volume_source(habitat_dir, &source),
                target,
                readonly,
            });
        }
        let dir = dir_label(habitat_dir);
        let mut persist: Vec<Persist> = Vec::new();
        for path in defaults.persist.iter().chain(&own.persist) {
            if !path.starts_with('/') {
                return Err(invalid(format!(
                    "the persisted path `{path}` must be absolute"
                )));
            }
            // `/data/` is `/data`: one mount, one volume.
            let path = clean_path(path);
            if !persist.iter().any(|p| p.path == path) {
                persist.push(Persist {
                    volume: persist_volume(&dir, &config.name, name, &path),
                    path,
                });
            }
        }
        let restart = own
            .restart
            .or(defaults.restart)
            .unwrap_or(RestartPolicy::No)
            .as_str()
            .to_string();
        Ok(Member {
            habitat: config.name.clone(),
            dir,
            name: name.to_string(),
            command: own.command.clone().or_else(|| defaults.command.clone()),
            env,
            restart,
            ports,
            mounts,
            persist,
        })
    }

    /// Every member of `config`, in name order.
    pub fn resolve_all(config: &Config, habitat_dir: &Path) -> Result<Vec<Member>, InstanceError> {
        member_names(config)
            .iter()
            .map(|name| Member::resolve(config, habitat_dir, name))
            .collect()
    }

    /// `HABITAT-MEMBER`
    pub fn container_name(&self) -> String {
        container_name(&self.habitat, &self.name)
    }

    /// sha256 (hex) of the canonical form of this resolved member.
    pub fn config_hash(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(ToString::to_string).collect();
        let mounts: Vec<serde_json::Value> = self
            .mounts
            .iter()
            .map(|m| serde_json::json!([m.source, m.target, m.readonly]))
            .collect();
        let persist: Vec<serde_json::Value> = self
            .persist
            .iter()
            .map(|p| serde_json::json!([p.path, p.volume]))
            .collect();
        let value = serde_json::json!({
            "v": HASH_VERSION,
            "habitat": self.habitat,
            "dir": self.dir,
            "name": self.name,
            "command": self.command,
            "env": self.env,
            "restart": self.restart,
            "ports": ports,
            "mounts": mounts,
            "persist": persist,
        });
        hex::encode(Sha256::digest(canonical::to_string(&value).as_bytes()))
    }

    /// The member field by field, as `up` and `ps` name a change: `command`,
    /// `restart`, `ports`, `volumes`, `persist` always, and `env.KEY` per
    /// variable. Env values are kept as digests: the label is shown by
    /// `docker inspect` to anyone, and a change needs only to be seen.
    pub fn fields(&self) -> BTreeMap<String, String> {
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_string()
            } else {
                items.join(", ")
            }
        };
        let mut fields = BTreeMap::from([
            (
                "command".to_string(),
                self.command.as_ref().map_or_else(
                    || "the image's".to_string(),
                    |c| serde_json::to_string(c).unwrap_or_default(),
                ),
            ),
            ("restart".to_string(), self.restart.clone()),
            (
                "ports".to_string(),
                list(self.ports.iter().map(ToString::to_string).collect()),
            ),
            (
                "volumes".to_string(),
                list(
                    self.mounts
                        .iter()
                        .map(|m| {
                            let ro = if m.readonly { ":ro" } else { "" };
                            format!("{}:{}{ro}", m.source, m.target)
                        })
                        .collect(),
                ),
            ),
            (
                "persist".to_string(),
                list(self.persist.iter().map(|p| p.path.clone()).collect()),
            ),
        ]);
        for (k, v) in &self.env {
            let digest = hex::encode(Sha256::digest(v.as_bytes()));
            fields.insert(format!("env.{k}"), digest[..16].to_string());
        }
        fields
    }

    /// The host paths bind-mounted into the container (not named volumes).
    pub fn bind_sources(&self) -> impl Iterator<Item = &str> {
        self.mounts
            .iter()
            .map(|m| m.source.as_str())
            .filter(|s| s.starts_with('/'))
    }

    /// The labels a persisted volume of this member carries.
    pub fn volume_labels(&self, persist: &Persist) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_HABITAT.to_string(), self.habitat.clone()),
            (LABEL_DIR.to_string(), self.dir.clone()),
            (LABEL_INSTANCE.to_string(), self.name.clone()),
            (LABEL_PERSIST.to_string(), persist.path.clone()),
        ])
    }

    /// The container of this member running `image` (whose final key is
    /// `image_key`, and whose labels are `image_labels`). An image with
    /// services has kiln's init as its entrypoint: no other init goes before
    /// it, and a stop waits for its graces.
    pub fn container_spec(
        &self,
        image: &str,
        image_key: &str,
        image_labels: &BTreeMap<String, String>,
    ) -> ContainerSpec {
        let services = image_labels.contains_key(LABEL_STOP_BUDGET);
        let labels = BTreeMap::from([
            (LABEL_HABITAT.to_string(), self.habitat.clone()),
            (LABEL_DIR.to_string(), self.dir.clone()),
            (LABEL_INSTANCE.to_string(), self.name.clone()),
            (LABEL_IMAGE_KEY.to_string(), image_key.to_string()),
            (LABEL_CONFIG_HASH.to_string(), self.config_hash()),
            (
                LABEL_MEMBER_FIELDS.to_string(),
                serde_json::to_string(&self.fields()).unwrap_or_default(),
            ),
        ]);
        let mut mounts = self.mounts.clone();
        mounts.extend(self.persist.iter().map(|p| Mount {
            source: p.volume.clone(),
            target: p.path.clone(),
            readonly: false,
        }));
        ContainerSpec {
            image: image.to_string(),
            name: Some(self.container_name()),
            cmd: self.command.clone(),
            env: self.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            labels,
            mounts,
            ports: self.ports.clone(),
            restart: Some(self.restart.clone()),
            hostname: Some(self.name.clone()),
            init: !services,
            stop_timeout: services.then(|| stop_timeout(image_labels)),
            ..Default::default()
        }
    }
}

/// The habitat directory as `LABEL_DIR` holds it.
pub fn dir_label(dir: &Path) -> String {
    dir.display().to_string()
}

/// The member names of `config`, sorted; empty without `instances:`.
pub fn member_names(config: &Config) -> Vec<String> {
    config
        .instances
        .as_ref()
        .map(|i| i.members.keys().cloned().collect())
        .unwrap_or_default()
}

/// The members of `wanted` (in its order, without repeats), or all of `all`
/// when `wanted` is empty; an unknown member is an error.
pub fn selection(
    all: &[String],
    wanted: &[String],
    habitat: &str,
) -> Result<Vec<String>, InstanceError> {
    if wanted.is_empty() {
        return Ok(all.to_vec());
    }
    if let Some(first) = wanted.iter().find(|w| !all.contains(w)) {
        return Err(InstanceError::UnknownMember {
            habitat: habitat.to_string(),
            name: first.clone(),
            known: all.to_vec(),
        });
    }
    let mut out: Vec<String> = Vec::new();
    for w in wanted {
        if !out.contains(w) {
            out.push(w.clone());
        }
    }
    Ok(out)
}

/// `HABITAT-MEMBER`. Not injective (habitat `a` member `b-c` and habitat
/// `a-b` member `c` are both `a-b-c`), so a name is only ever taken as a
/// member's when the container's labels say so (`reconcile`).
pub fn container_name(habitat: &str, member: &str) -> String {
    format!("{habitat}-{member}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        crate::config::parse("kiln.yaml", yaml, Path::new("/tmp")).expect("valid config")
    }

    const BASE: &str = "name: web\nbuild: { base: { image: x } }\n";

    #[test]
    fn unknown_members_are_named() {
        let all = vec!["a".to_string(), "b".to_string()];
        let err = selection(&all, &["c".to_string()], "h").expect_err("unknown");
        assert!(
            matches!(&err, InstanceError::UnknownMember { habitat, name, known }
                if habitat == "h" && name == "c" && *known == all),
            "{err:?}"
        );
        assert_eq!(
            selection(&all, &["b".to_string(), "b".to_string()], "h").expect("ok"),
            ["b"]
        );
        assert_eq!(selection(&all, &[], "h").expect("ok"), all);
    }

    #[test]
    fn defaults_merge_into_members() {
        let c = config(&format!(
            "{BASE}instances:\n  defaults:\n    command: [sleep, infinity]\n    env: {{ TZ: UTC, A: '1' }}\n    restart: unless-stopped\n    persist: [/home/dev]\n  members:\n    alice:\n      env: {{ A: '2' }}\n      ports: ['127.0.0.1:8081:3000']\n      volumes: ['./ssh:/home/dev/.ssh:ro']\n      restart: always\n    bob:\n"
        ));
        let all = Member::resolve_all(&c, Path::new("/hab")).expect("members");
        let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        let (alice, bob) = (&all[0], &all[1]);
        assert_eq!(alice.env["A"], "2");
        assert_eq!(alice.env["TZ"], "UTC");
        assert_eq!(alice.restart, "always");
        assert_eq!(bob.restart, "unless-stopped");
        assert_eq!(
            bob.command,
            Some(vec!["sleep".to_string(), "infinity".to_string()])
        );
        assert_eq!(alice.mounts[0].source, "/hab/ssh");
        assert_eq!(
            alice.persist[0].volume,
            persist_volume("/hab", "web", "alice", "/home/dev")
        );
        assert_ne!(alice.persist[0].volume, bob.persist[0].volume);
        assert_eq!(alice.container_name(), "web-alice");
        let spec = alice.container_spec("img", "key", &BTreeMap::new());
        assert_eq!(spec.labels[LABEL_INSTANCE], "alice");
        assert_eq!(spec.labels[LABEL_DIR], "/hab");
        assert!(
            spec.mounts
                .iter()
                .any(|m| m.source == alice.persist[0].volume && m.target == "/home/dev")
        );
        assert_eq!(alice.volume_labels(&alice.persist[0])[LABEL_DIR], "/hab");
        assert!(matches!(
            Member::resolve(&c, Path::new("/hab"), "carol"),
            Err(InstanceError::UnknownMember { .. })
        ));
    }

    #[test]
    fn the_hash_moves_with_the_member_and_only_it() {
        let yaml = |tz: &str| {
            format!(
                "{BASE}instances:\n  defaults: {{ env: {{ TZ: UTC }} }}\n  members:\n    a: {{ env: {{ X: '{tz}' }} }}\n    b: {{}}\n"
            )
        };
        let dir = Path::new("/hab");
        let one = Member::resolve_all(&config(&yaml("1")), dir).expect("members");
        let two = Member::resolve_all(&config(&yaml("2")), dir).expect("members");
        assert_ne!(one[0].config_hash(), two[0].config_hash());
        assert_eq!(one[1].config_hash(), two[1].config_hash());
        // Key order in the YAML does not matter.
        let reordered = config(&format!(
            "{BASE}instances:\n  members:\n    b: {{}}\n    a: {{ env: {{ X: '1' }} }}\n  defaults: {{ env: {{ TZ: UTC }} }}\n"
        ));
        let again = Member::resolve_all(&reordered, dir).expect("members");
        assert_eq!(one[0].config_hash(), again[0].config_hash());
    }

    #[test]
    fn two_spellings_of_a_path_are_one_volume() {
        let c = config(&format!(
            "{BASE}instances:\n  defaults: {{ persist: [/data] }}\n  members:\n    a: {{ persist: [/data/, '/x//y/.'] }}\n"
        ));
        let a = Member::resolve(&c, Path::new("/hab"), "a").expect("member");
        let paths: Vec<&str> = a.persist.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/data", "/x/y"]);
    }

    #[test]
    fn the_directory_is_part_of_the_member() {
        let c = config(&format!(
            "{BASE}instances:\n  members:\n    a: {{ persist: [/data] }}\n"
        ));
        let one = Member::resolve(&c, Path::new("/one"), "a").expect("member");
        let two = Member::resolve(&c, Path::new("/two"), "a").expect("member");
        assert_ne!(one.config_hash(), two.config_hash());
        assert_ne!(one.persist[0].volume, two.persist[0].volume);
        assert_eq!(one.container_name(), two.container_name());
    }
}
