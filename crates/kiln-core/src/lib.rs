//! kiln's library: the functional core (config → keys → plan) and the
//! imperative shell (engine, host I/O, executor) that carries a plan out.

pub mod config;
pub mod engine;
pub mod event;
pub mod phase;
#[doc(hidden)]
pub mod testing;

pub use phase::Phase;
pub mod cache_key;
pub mod canonical;
pub mod inputs;
pub mod key_chain;
pub mod names;
pub mod plan;
pub mod snapshots;
pub mod accounts;
pub mod bootstrap;
pub mod cache_dir;
pub mod repo;
pub mod tool;
pub mod copy_source;
pub mod phase_script;
pub mod build_lock;
pub mod build;
