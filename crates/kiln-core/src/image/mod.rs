//! kiln's images: their names and labels (SPEC §4), the archives `docker
//! load` reads, and the layers kiln writes on the host instead of committing
//! a container.

pub mod archive;
pub mod init;
pub mod labels;
pub mod layer;
pub mod layer_from_tars;
pub mod layer_from_upper;
pub mod names;
pub mod rootfs;
pub mod tar;
