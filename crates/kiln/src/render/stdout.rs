//! The two writers every byte of `kiln` goes through: `out!` for data on
//! stdout, `err!` for messages on stderr. A reader that went away (`kiln ps |
//! head -1`) or a closed stderr ends the output quietly, where `println!` and
//! `eprintln!` would panic; so the crate uses neither.

use std::fmt;
use std::io::Write as _;

use kiln_core::engine::Stream;

/// Writes data to stdout, ignoring a closed pipe.
pub fn data(args: fmt::Arguments<'_>) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Writes bytes to stdout as they are, ignoring a closed pipe.
pub fn bytes(data: &[u8]) {
    let _ = std::io::stdout().lock().write_all(data);
}

/// Writes a message to stderr, ignoring a closed stream.
pub fn message(args: fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Writes a line of data to stdout (see [`data`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::render::stdout::data(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes a line to stderr (see [`message`]).
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::render::stdout::message(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {err, out};

/// A line of a container's output, on the stream it came from.
pub fn stream_line(stream: Stream, line: &str) {
    match stream {
        Stream::Stdout => out!("{line}"),
        Stream::Stderr => err!("{line}"),
    }
}
