//! Long-running instances of a habitat (`instances:` in `kiln.yaml`): one
//! container per member from the one built image. `member` resolves the
//! config and hashes it, `reconcile` decides what to change (both pure), and
//! `runner` carries that out on an engine.

pub mod member;
pub mod reconcile;
pub mod runner;

pub use member::Member;
pub use reconcile::{Action, Step};
pub use runner::{InstanceError, UpOptions, UpReport};
