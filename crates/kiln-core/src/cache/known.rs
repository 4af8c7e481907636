//! `Known`: what each successful build of a habitat records in the cache
//! directory for `cache status` and `cache prune`: where the habitat lives,
//! which repository mirrors and tools it uses (a mirror or tool no known
//! habitat uses is unused), its current chain, the links from each key to
//! the key of the phase before it (an unconfigured phase or verify holds no
//! image, so a snapshot's `dev.kiln.parent` may name a key no image has),
//! and the base image it was built on (whose layers a prune never frees).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::keys::KeyChain;
use crate::phase::Phase;

/// A current chain as the prune policy reads it: every phase's key in
/// order and whether it is configured, and the keys of the steps of its
/// phases run in steps. Either the chain of the last successful build (the
/// record) or the chain the config plans now (SPEC §11: "on the current
/// config's chain"), which the CLI computes and hands in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CurrentChain {
    pub phases: Vec<(Phase, String, bool)>,
    pub steps: Vec<(Phase, usize, String)>,
}

impl From<&KeyChain> for CurrentChain {
    fn from(chain: &KeyChain) -> CurrentChain {
        CurrentChain {
            phases: chain
                .0
                .iter()
                .map(|pk| (pk.phase, pk.key.to_string(), pk.present()))
                .collect(),
            steps: chain
                .0
                .iter()
                .flat_map(|pk| {
                    pk.steps
                        .iter()
                        .map(move |st| (pk.phase, st.number, st.key.to_string()))
                })
                .collect(),
        }
    }
}

/// One habitat's record. Serialized as JSON; an unreadable one is empty.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Known {
    /// The habitat directory.
    #[serde(default)]
    pub dir: PathBuf,
    /// File names under `CacheDir::repos` of the mirrors it uses.
    #[serde(default)]
    pub repos: Vec<String>,
    /// File names under `CacheDir::tools()/sha256` of the tools it uses.
    #[serde(default)]
    pub tools: Vec<String>,
    /// The chain of its last successful build: phase tag, key, configured.
    #[serde(default)]
    pub current: Vec<(String, String, bool)>,
    /// The step keys of that chain's phases run in steps: step tag
    /// (`6-setup.3`), key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current_steps: Vec<(String, String)>,
    /// Key → the key of the phase before it, over every build recorded; a
    /// step's key → the key it was chained from.
    #[serde(default)]
    pub links: BTreeMap<String, String>,
    /// The id of the base image (an image or bootstrap base) of that build.
    #[serde(default)]
    pub base_image: Option<String>,
    /// `cache.keep` of that build.
    #[serde(default)]
    pub keep: Option<usize>,
    #[serde(skip)]
    path: Option<PathBuf>,
}

impl Known {
    /// Reads the record at `path`; a missing or corrupt one is empty.
    pub fn load(path: &Path) -> Known {
        let mut k: Known = super::json_file::load(path);
        k.path = Some(path.to_path_buf());
        k
    }

    /// Records `chain` as the current one, and its links.
    pub fn record_chain(&mut self, chain: &KeyChain) {
        self.current = chain
            .0
            .iter()
            .map(|pk| (pk.phase.tag(), pk.key.to_string(), pk.present()))
            .collect();
        self.current_steps = chain
            .0
            .iter()
            .flat_map(|pk| {
                pk.steps
                    .iter()
                    .map(move |st| (st.tag(pk.phase), st.key.to_string()))
            })
            .collect();
        self.record_links(chain);
    }

    /// Records the links of `chain`, phases' and steps', leaving the
    /// current chain as it is: a build records them before it runs, so the
    /// step snapshots a failed build leaves are linked to what they are
    /// built on too.
    pub fn record_links(&mut self, chain: &KeyChain) {
        for pair in chain.0.windows(2) {
            self.links
                .insert(pair[1].key.to_string(), pair[0].key.to_string());
        }
        for (i, pk) in chain.0.iter().enumerate() {
            let before = i.checked_sub(1).map(|b| chain.0[b].key.to_string());
            let mut prev = before.unwrap_or_default();
            for st in &pk.steps {
                if !prev.is_empty() {
                    self.links.insert(st.key.to_string(), prev.clone());
                }
                prev = st.key.to_string();
            }
        }
    }

    /// The recorded chain (the last successful build's).
    pub fn recorded(&self) -> CurrentChain {
        CurrentChain {
            phases: self.current_chain(),
            steps: self.current_steps(),
        }
    }

    /// The current chain's steps as the prune policy reads them.
    pub fn current_steps(&self) -> Vec<(Phase, usize, String)> {
        self.current_steps
            .iter()
            .filter_map(|(tag, key)| {
                let (phase, n) = crate::keys::steps::parse_step_tag(tag)?;
                Some((phase, n, key.clone()))
            })
            .collect()
    }

    /// The current chain as the prune policy reads it.
    pub fn current_chain(&self) -> Vec<(Phase, String, bool)> {
        self.current
            .iter()
            .filter_map(|(tag, key, present)| Some((tag.parse().ok()?, key.clone(), *present)))
            .collect()
    }

    /// Writes the record atomically.
    pub fn save(&self) -> io::Result<()> {
        match &self.path {
            Some(path) => super::json_file::save(path, self),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keys::{CacheKey, PhaseKey, StepKey};

    /// Base, an unconfigured users, and setup in two steps.
    fn chain(second: &str) -> KeyChain {
        let base = CacheKey::compute(None, Phase::Base, &json!("b"));
        let users = CacheKey::compute(Some(&base), Phase::Users, &Value::Null);
        let setup = CacheKey::compute(Some(&users), Phase::Setup, &json!(["one", second]));
        let s1 = CacheKey::step(Some(&users), Phase::Setup, &json!("one"));
        let s2 = CacheKey::step(Some(&s1), Phase::Setup, &json!(second));
        let pk = |phase, key: &CacheKey, inputs: Value, steps| PhaseKey {
            phase,
            key: key.clone(),
            inputs,
            steps,
        };
        let st = |number, key: &CacheKey| StepKey {
            number,
            name: format!("commands.root[{}]", number - 1),
            key: key.clone(),
            inputs: Value::Null,
        };
        KeyChain(vec![
            pk(Phase::Base, &base, json!("b"), vec![]),
            pk(Phase::Users, &users, Value::Null, vec![]),
            pk(Phase::Setup, &setup, json!(1), vec![st(1, &s1), st(2, &s2)]),
        ])
    }

    use serde_json::Value;

    #[test]
    fn a_chain_records_its_steps_and_links_each_step_to_what_it_is_built_on() {
        let d = tempfile::tempdir().unwrap();
        let mut k = Known::load(&d.path().join("h.json"));
        let c = chain("two");
        k.record_chain(&c);
        let key = |p: usize| c.0[p].key.to_string();
        let step = |n: usize| c.0[2].steps[n].key.to_string();
        assert_eq!(
            k.current_steps(),
            [(Phase::Setup, 1, step(0)), (Phase::Setup, 2, step(1))]
        );
        assert_eq!(
            k.links[&step(0)],
            key(1),
            "the first step: the phase before"
        );
        assert_eq!(k.links[&step(1)], step(0));
        assert_eq!(k.links[&key(2)], key(1));
        // Another config's links join them; the current chain stays.
        let other = chain("three");
        k.record_links(&other);
        assert_eq!(k.links[&other.0[2].steps[1].key.to_string()], step(0));
        assert_eq!(k.recorded().steps[1].2, step(1));
        assert_eq!(CurrentChain::from(&c), k.recorded());
        k.save().unwrap();
        assert_eq!(
            Known::load(&d.path().join("h.json")).recorded(),
            k.recorded()
        );
    }
}
