//! ② Keys: a config and the facts resolved for it (base digest, file digests,
//! repo commits) in, every phase's canonical inputs and chained key out. Pure.

pub mod cache_key;
pub mod canonical;
pub mod chain;
pub mod facts;
pub mod inputs;
pub mod steps;

pub use cache_key::CacheKey;
pub use chain::{KeyChain, PhaseKey};
pub use facts::{BaseFact, Facts};
pub use steps::StepKey;
