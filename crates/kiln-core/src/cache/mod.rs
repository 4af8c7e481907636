//! What kiln keeps on the host between builds: the cache directory and its
//! subdirectories, the per-habitat build lock, and the index of the images
//! kiln made.

pub mod dir;
pub mod lock;
pub mod made;

pub use dir::CacheDir;
pub use lock::BuildLock;
pub use made::MadeIndex;
