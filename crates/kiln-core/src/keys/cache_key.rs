//! `CacheKey`: the content hash of one phase, chained from the previous one
//! (SPEC §5). Only canonical inputs go in: never display names, flags, times or
//! secret values.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::keys::canonical;
use crate::phase::Phase;

/// Bumped whenever the encoding below or the meaning of an input changes, so
/// old snapshots are not mistaken for new ones.
pub const KEY_VERSION: &str = "kiln-key-v1";

/// The full hex sha256 key of a phase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(String);

impl CacheKey {
    /// key(N) = sha256(version, key(N-1), phase id, canonical inputs).
    pub fn compute(parent: Option<&CacheKey>, phase: Phase, inputs: &Value) -> CacheKey {
        let mut h = Sha256::new();
        h.update(KEY_VERSION.as_bytes());
        h.update(b"\n");
        h.update(parent.map(CacheKey::as_str).unwrap_or("").as_bytes());
        h.update(b"\n");
        h.update(phase.id().to_string().as_bytes());
        h.update(b"\n");
        h.update(canonical::to_string(inputs).as_bytes());
        CacheKey(hex::encode(h.finalize()))
    }

    /// The key of a step inside `phase` (SPEC §5): sha256(version, the
    /// previous step's key (the previous phase's for the first), `ID.step`,
    /// the step's canonical input). `.step` keeps a step's key from ever
    /// equalling a phase's.
    pub fn step(parent: Option<&CacheKey>, phase: Phase, inputs: &Value) -> CacheKey {
        let mut h = Sha256::new();
        h.update(KEY_VERSION.as_bytes());
        h.update(b"\n");
        h.update(parent.map(CacheKey::as_str).unwrap_or("").as_bytes());
        h.update(b"\n");
        h.update(format!("{}.step", phase.id()).as_bytes());
        h.update(b"\n");
        h.update(canonical::to_string(inputs).as_bytes());
        CacheKey(hex::encode(h.finalize()))
    }

    pub fn from_hex(s: &str) -> CacheKey {
        CacheKey(s.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, as in `habitat-x:final-KEY12`.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deterministic_and_chained() {
        let a = CacheKey::compute(None, Phase::Base, &json!({"image": "x"}));
        let b = CacheKey::compute(None, Phase::Base, &json!({"image": "x"}));
        assert_eq!(a, b);
        assert_eq!(a.as_str().len(), 64);
        let c1 = CacheKey::compute(Some(&a), Phase::Users, &json!([]));
        let other = CacheKey::compute(None, Phase::Base, &json!({"image": "y"}));
        let c2 = CacheKey::compute(Some(&other), Phase::Users, &json!([]));
        assert_ne!(c1, c2, "a different parent gives a different key");
        let c3 = CacheKey::compute(Some(&a), Phase::Env, &json!([]));
        assert_ne!(c1, c3, "the phase id is part of the key");
    }

    #[test]
    fn stable_across_versions_of_this_code() {
        // A fixed vector: if this changes, bump KEY_VERSION.
        let k = CacheKey::compute(None, Phase::Base, &json!({"image": "debian"}));
        assert_eq!(
            k.as_str(),
            "b90a1be22ad7c241e0d8f625e1b88f818b3f953028338b7eefca5040026ed8c7"
        );
    }
}
