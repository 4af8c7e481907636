//! Inputs read on the host: copied files, repositories, tools and bootstrap
//! bases. Each gives the fact its phase's key reads and the tar that places
//! it in the image.

pub mod beneath;
pub mod bootstrap;
pub mod copies;
pub mod io;
pub mod kiln_ignore;
pub mod repo;
pub mod tool;
pub mod unpack;
