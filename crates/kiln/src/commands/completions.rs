//! `kiln completions SHELL`: the completion script for bash, zsh, fish (or
//! another shell clap knows) on stdout, made from the same clap types that
//! parse the command line, so it cannot fall behind them.

use clap::CommandFactory;
use clap_complete::Shell;

use super::Outcome;
use crate::cli::Cli;
use crate::exit::ExitStatus;
use crate::render::stdout;

pub fn run(shell: Shell) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kiln", &mut script);
    stdout::bytes(&script);
    Ok(ExitStatus::Success)
}
