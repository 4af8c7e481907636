//! The `kiln` command: parses arguments, runs the subcommand, and exits with
//! its status (SPEC §7). `cli` holds the clap types, `commands` a short
//! function per subcommand (the work is in `kiln_core`), `render` every byte
//! the terminal sees, and `exit` the one map from outcome to exit code.

// Output goes through `render::stdout`, which a closed pipe cannot panic.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod exit;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    commands::run(cli.command).into()
}
