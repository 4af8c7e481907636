//! Every byte the terminal sees. All of it goes through the two writers in
//! `stdout`.

pub mod progress;
pub mod stdout;
