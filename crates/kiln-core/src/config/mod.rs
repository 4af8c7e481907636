//! Loading and validating `kiln.yaml`.

pub mod model;

pub use model::*;
