//! kiln's library: the functional core (config → keys → plan) and the
//! imperative shell (engine, host I/O, executor) that carries a plan out.

pub mod config;
pub mod engine;
pub mod event;
pub mod phase;
#[doc(hidden)]
pub mod testing;

pub use phase::Phase;
pub mod accounts;
pub mod bootstrap;
pub mod build;
pub mod build_lock;
pub mod cache_dir;
pub mod cache_key;
pub mod canonical;
pub mod copy_source;
pub mod host_layer;
pub mod image_archive;
pub mod inputs;
pub mod instances;
pub mod key_chain;
pub mod layer_tar;
pub mod names;
pub mod phase_script;
pub mod plan;
pub mod repo;
pub mod rootfs;
pub mod snapshots;
pub mod tool;
