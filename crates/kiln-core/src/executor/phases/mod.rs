//! The ten phases, one file each (env and final share one: both only change
//! the image config), with the pure helpers beside the phases that use them.

pub mod accounts;
pub mod script;
