//! `KeyChain`: every phase's inputs and chained key for one config and its facts.

use serde_json::Value;

use crate::config::Config;
use crate::keys::cache_key::CacheKey;
use crate::keys::steps::{StepKey, step_keys};
use crate::keys::{Facts, inputs::phase_inputs};
use crate::phase::Phase;

/// One phase's key and the inputs it was computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseKey {
    pub phase: Phase,
    pub key: CacheKey,
    pub inputs: Value,
    /// The phase's steps, each cached on its own (setup, and repos with
    /// commands); empty for a phase run whole, or absent.
    pub steps: Vec<StepKey>,
}

impl PhaseKey {
    /// An absent phase does nothing; its tag points at the previous image.
    pub fn present(&self) -> bool {
        !self.inputs.is_null()
    }
}

/// The ten phase keys, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyChain(pub Vec<PhaseKey>);

impl KeyChain {
    pub fn compute(config: &Config, facts: &Facts) -> KeyChain {
        let mut out: Vec<PhaseKey> = Vec::with_capacity(Phase::ALL.len());
        for phase in Phase::ALL {
            let inputs = phase_inputs(config, facts, phase);
            let parent = out.last().map(|p| &p.key);
            let key = CacheKey::compute(parent, phase, &inputs);
            // A phase of one step is run whole: its step would be its
            // snapshot, and nothing before it could be kept.
            let steps = match step_keys(parent, phase, config, facts) {
                s if inputs.is_null() || s.len() < 2 => Vec::new(),
                s => s,
            };
            out.push(PhaseKey {
                phase,
                key,
                inputs,
                steps,
            });
        }
        KeyChain(out)
    }

    pub fn get(&self, phase: Phase) -> &PhaseKey {
        &self.0[phase.index()]
    }

    pub fn final_key(&self) -> &CacheKey {
        &self.get(Phase::Final).key
    }
}
