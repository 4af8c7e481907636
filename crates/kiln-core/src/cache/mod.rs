//! What kiln keeps on the host between builds: the cache directory and its
//! subdirectories, the build lock, the index of the images kiln made, and
//! when each snapshot was last used, and
//! the names that tell whose leftovers (containers, temporary files) a later
//! build may sweep.

pub mod dir;
mod json_file;
pub mod known;
pub mod lock;
pub mod made;
pub mod owner;
pub mod prune;
pub mod pushed;
pub mod scratch;
pub mod status;
pub mod used;

pub use dir::CacheDir;
pub use lock::BuildLock;
pub use made::MadeIndex;
pub use pushed::{FinalBuild, PushedRecord};
pub use used::LastUse;
