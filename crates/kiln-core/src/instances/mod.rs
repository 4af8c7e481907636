//! Long-running instances of a habitat (`instances:` in `kiln.yaml`): one
//! container per member from the one built image. `member` resolves the
//! config and hashes it, `reconcile` decides what to change (both pure);
//! `volume` names persisted volumes and decides what to do with those found
//! (pure too); `up`, `down` and `status` carry that out on an engine, and
//! `error` words why a command changed nothing.

pub mod down;
pub mod error;
pub mod member;
pub mod reconcile;
pub mod status;
pub mod up;
pub mod volume;

pub use down::{DownReport, STOP_TIMEOUT, down, restart};
pub use error::{Conflict, InstanceError, Owner};
pub use member::Member;
pub use reconcile::{Action, Step};
pub use status::{
    MemberStatus, container_of, current_image_key, known_members, status, unix_seconds,
};
pub use up::{
    FAILURE_LOG_LINES, MemberOutcome, MovedVolume, Outcome, UpOptions, UpReport, check_ports, tail,
    up, wait_ready,
};
