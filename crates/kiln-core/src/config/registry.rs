//! `registry:` (SPEC §10) read for use once `kiln check` has passed it: the
//! repository as the registry seam takes it (host, path) and the retention
//! rules as `registry::retention` takes them. Pure.

use super::model::RegistryConfig;
use crate::registry::retention::{Rule, parse_age};
use crate::registry::split_repository;

impl RegistryConfig {
    /// `(HOST[:PORT], PATH)` of `repository`. A checked config always has
    /// both; an unchecked one without a host gives an empty host.
    pub fn host_and_path(&self) -> (&str, &str) {
        split_repository(&self.repository).unwrap_or(("", self.repository.as_str()))
    }

    /// The retention rules, in order, ages in seconds. An age `check`
    /// would reject (never the case after it) keeps its rule's tags.
    pub fn retention_rules(&self) -> Vec<Rule> {
        self.retention
            .iter()
            .map(|r| Rule {
                pattern: r.pattern.clone(),
                keep: r.keep.map(|n| n as usize),
                older_than: r.older_than.as_deref().and_then(parse_age),
            })
            .collect()
    }
}
