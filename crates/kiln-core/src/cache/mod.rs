//! What kiln keeps on the host between builds: the cache directory and its
//! subdirectories, and the per-habitat build lock.

pub mod dir;
pub mod lock;

pub use dir::CacheDir;
pub use lock::BuildLock;
