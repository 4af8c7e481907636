//! Every byte the terminal sees: build progress, the data of `plan`, `up`,
//! `ps` and the other commands, and error messages. All of it goes through
//! the two writers in `stdout`.

pub mod error;
pub mod log_line;
pub mod plan;
pub mod progress;
pub mod ps;
pub mod push;
pub mod registry;
pub mod stdout;
pub mod tty;
pub mod up;

/// A rebuild's reason as a clause of the line it ends: `because no snapshot
/// yet`, but `after env rebuilt` and `forced by --rebuild 6` as they are.
pub fn because(reason: &str) -> String {
    if reason.starts_with("after ") || reason.starts_with("forced by ") {
        reason.to_string()
    } else {
        format!("because {reason}")
    }
}
