//! kiln's library. The data path, in order, is the folder names:
//!
//! - [`config`]: `kiln.yaml` → [`config::Config`] or located diagnostics;
//! - [`keys`]: config + facts → every phase's canonical inputs and chained key;
//! - [`plan`]: keys + the snapshots the engine holds → what to build, and why;
//! - [`executor`]: carries a plan out on an engine, phase by phase;
//! - [`engine`]: the single seam to the Docker Engine (and its fake);
//! - [`report`]: the events a build emits, for the CLI to render.
//!
//! Beside them: [`image`] (what kiln's images look like: names, labels,
//! archives, layers), [`sources`] (inputs read on the host), [`cache`] (what
//! is kept on the host), [`instances`] (what runs from a built image) and
//! [`registry`] (the seam to an OCI registry, and its fake).
//! The library never prints: it reports events, and the CLI renders them.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod cache;
pub mod config;
pub mod engine;
pub mod executor;
pub mod image;
pub mod instances;
pub mod keys;
pub mod phase;
pub mod plan;
pub mod registry;
pub mod report;
pub mod sources;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use phase::Phase;
