//! Every byte the terminal sees: build progress, the data of `plan`, `up`,
//! `ps` and the other commands, and error messages. All of it goes through
//! the two writers in `stdout`.

pub mod error;
pub mod plan;
pub mod progress;
pub mod ps;
pub mod stdout;
pub mod up;
