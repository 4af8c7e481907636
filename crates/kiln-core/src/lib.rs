//! kiln's library: the functional core (config → keys → plan) and the
//! imperative shell (engine, host I/O, executor) that carries a plan out.

pub mod config;
pub mod engine;
pub mod event;
pub mod phase;

pub use phase::Phase;
pub mod bootstrap;
pub mod cache_dir;
pub mod repo;
pub mod tool;
