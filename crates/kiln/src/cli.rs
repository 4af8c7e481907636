//! The command line as clap types: every subcommand, argument and option of
//! `kiln`, with the help text the user sees. Parsing only; `commands` acts.
//!
//! (No `///` on the types themselves: clap would turn it into help text.)

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use kiln_core::Phase;
use kiln_core::executor::BuildOptions;
use kiln_core::plan::PlanOptions;

use crate::render::progress::Progress;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Build container habitats from one declarative kiln.yaml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// A habitat directory or its kiln.yaml.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// Rebuild from this phase on (an id 1-10 or a name).
    #[arg(long, value_name = "PHASE", value_parser = parse_phase)]
    pub rebuild: Option<Phase>,
    /// Rebuild every phase.
    #[arg(long)]
    pub no_cache: bool,
}

impl BuildArgs {
    pub fn options(&self) -> BuildOptions {
        BuildOptions {
            plan: PlanOptions {
                rebuild_from: self.rebuild,
                no_cache: self.no_cache,
            },
            ..BuildOptions::default()
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Build the habitat, resuming from the deepest valid snapshot.
    Build {
        #[command(flatten)]
        args: BuildArgs,
        /// How to show progress.
        #[arg(long, value_enum, default_value = "auto")]
        progress: Progress,
        /// List the phases and exit.
        #[arg(long)]
        show_phases: bool,
    },
    /// Show what `build` would do, phase by phase, and why; runs nothing.
    Plan {
        #[command(flatten)]
        args: BuildArgs,
        /// One JSON object per phase on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List the ten phases with their ids.
    Phases,
    /// Validate the config and report every problem.
    Check {
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Build, then run an interactive container of the final image.
    Start {
        #[command(flatten)]
        args: BuildArgs,
        /// The command to run instead of the image's.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Print the JSON Schema of kiln.yaml.
    Schema,
    #[command(flatten)]
    Instances(InstanceCommand),
}

fn parse_phase(s: &str) -> Result<Phase, String> {
    s.parse::<Phase>().map_err(|e| e.to_string())
}

// The instance commands, flattened into `Command` so they read as top-level
// subcommands (`kiln up`, not `kiln instances up`).
#[derive(Subcommand)]
pub enum InstanceCommand {
    /// Build if needed, then make the running members match `instances:`.
    Up {
        /// A habitat directory or its kiln.yaml, then member names (all when none).
        /// The first argument is the habitat when it is an existing path.
        #[arg(value_name = "[PATH] MEMBER")]
        args: Vec<String>,
        /// The habitat directory or its kiln.yaml.
        #[arg(long, short = 'C', value_name = "PATH")]
        habitat: Option<PathBuf>,
        /// How to show build progress.
        #[arg(long, value_enum, default_value = "auto")]
        progress: Progress,
    },
    /// Stop and remove members (all when none); persisted volumes stay unless `--volumes`.
    Down {
        members: Vec<String>,
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        /// Also remove the members' persisted volumes.
        #[arg(long)]
        volumes: bool,
    },
    /// List members: state, image, ports, uptime, volumes.
    Ps {
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        /// One JSON object per member on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a member's output.
    Logs {
        member: String,
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        /// Keep printing new output.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Run a command in a member's container.
    Exec {
        member: String,
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Open a shell in a member's container.
    Shell {
        member: String,
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
    },
    /// Restart members' containers.
    Restart {
        members: Vec<String>,
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        /// Every member.
        #[arg(long, conflicts_with = "members")]
        all: bool,
    },
}
