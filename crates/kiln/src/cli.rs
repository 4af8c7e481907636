//! The command line as clap types: every subcommand, argument and option of
//! `kiln`, with the help text the user sees. Parsing only; `commands` acts.
//!
//! (No `///` on the types themselves: clap would turn it into help text.)

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use kiln_core::Phase;
use kiln_core::cache::prune::Level;
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
    /// Run as if kiln was started in DIR (PATH is then relative to it).
    #[arg(short = 'C', value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Rebuild from this phase on (an id 1-10 or a name).
    #[arg(long, value_name = "PHASE", value_parser = parse_phase)]
    pub rebuild: Option<Phase>,
    /// Rebuild every phase.
    #[arg(long)]
    pub no_cache: bool,
    /// Never pull phase snapshots from the registry (`registry.cache`).
    #[arg(long)]
    pub no_remote_cache: bool,
}

impl BuildArgs {
    /// The habitat's path, `PATH` read from `-C DIR`.
    pub fn habitat(&self) -> PathBuf {
        in_dir(self.dir.as_deref(), &self.path)
    }

    pub fn options(&self) -> BuildOptions {
        BuildOptions {
            plan: PlanOptions {
                rebuild_from: self.rebuild,
                no_cache: self.no_cache,
            },
            no_remote_cache: self.no_remote_cache,
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
    /// Print the boot graph of `services:` (runs nothing).
    Services {
        /// A habitat directory or its kiln.yaml.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Run as if kiln was started in DIR (PATH is then relative to it).
        #[arg(short = 'C', value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Validate the config and report every problem.
    Check {
        /// A habitat directory or its kiln.yaml.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Run as if kiln was started in DIR (PATH is then relative to it).
        #[arg(short = 'C', value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Build, then run an interactive container of the final image.
    Start {
        #[command(flatten)]
        args: BuildArgs,
        /// The command to run instead of the image's.
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Point tag DST at SRC's manifest (a tag or a digest) in the registry, moving no layer.
    Promote {
        /// The tag or digest (`sha256:…`) to promote.
        src: String,
        /// The tag to point at it.
        dst: String,
        /// A habitat directory or its kiln.yaml (its `registry:` names the repository).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Run as if kiln was started in DIR (PATH is then relative to it).
        #[arg(short = 'C', value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Apply `registry.retention`: delete the tags its rules expire.
    Retention {
        /// A habitat directory or its kiln.yaml.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Run as if kiln was started in DIR (PATH is then relative to it).
        #[arg(short = 'C', value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Print every tag with `keep` or `delete` and the deciding rule; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Build if needed, then push the final image (and, with `registry.cache`, every snapshot) to `registry.repository`.
    Push {
        #[command(flatten)]
        args: BuildArgs,
        /// A tag template to push the final image under, instead of `registry.tags` (repeatable).
        #[arg(long = "tag", value_name = "T")]
        tags: Vec<String>,
        /// How to show progress.
        #[arg(long, value_enum, default_value = "auto")]
        progress: Progress,
    },
    /// Print the JSON Schema of kiln.yaml.
    Schema,
    /// See and control the snapshots and host cache kiln keeps (status, prune).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Print a shell completion script (e.g. `kiln completions bash > /etc/bash_completion.d/kiln`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Instances(InstanceCommand),
}

/// Which habitats a `cache` command covers.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// A habitat directory or its kiln.yaml.
    #[arg(default_value = ".", conflicts_with = "all")]
    pub path: PathBuf,
    /// Run as if kiln was started in DIR (PATH is then relative to it).
    #[arg(short = 'C', value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Every habitat built with this cache directory.
    #[arg(long)]
    pub all: bool,
}

impl CacheArgs {
    /// The habitat's path, `PATH` read from `-C DIR`.
    pub fn habitat(&self) -> PathBuf {
        in_dir(self.dir.as_deref(), &self.path)
    }
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// List every snapshot kiln holds, why it is kept, and what each prune level would free.
    Status {
        #[command(flatten)]
        args: CacheArgs,
        /// One JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove snapshots and host cache by level (soft, medium, hard, nuke).
    Prune {
        #[command(flatten)]
        args: CacheArgs,
        /// soft: old snapshots beyond `cache.keep` chains; medium: all off the current chain, unused mirrors and tools; hard: all but the base snapshot; nuke: everything.
        #[arg(long, default_value = "soft", value_parser = parse_level)]
        level: Level,
        /// Say what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask before `nuke`.
        #[arg(long)]
        yes: bool,
    },
}

fn parse_level(s: &str) -> Result<Level, String> {
    s.parse::<Level>()
}

/// `path` as seen from `dir` (`-C DIR`), like git's and make's `-C`.
pub fn in_dir(dir: Option<&Path>, path: &Path) -> PathBuf {
    match dir {
        Some(dir) => dir.join(path),
        None => path.to_path_buf(),
    }
}

fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    kiln_core::config::services::parse_duration(s).map(std::time::Duration::from_millis)
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
        /// Also stop and remove the containers of members no longer in kiln.yaml
        /// (their persisted volumes stay).
        #[arg(long)]
        remove_orphans: bool,
        /// Wait until every member runs, and is healthy where its image has a healthcheck.
        #[arg(long)]
        wait: bool,
        /// How long `--wait` waits (e.g. `90s`, `2m`).
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_wait)]
        wait_timeout: std::time::Duration,
    },
    /// Stop and remove members (all when none); persisted volumes stay unless `--volumes`.
    Down {
        /// The members to stop (all when none).
        members: Vec<String>,
        /// The habitat directory or its kiln.yaml.
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        /// Also remove the members' persisted volumes.
        #[arg(long)]
        volumes: bool,
    },
    /// List members: state, image, ports, uptime, volumes.
    Ps {
        /// The habitat directory or its kiln.yaml.
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        /// One JSON object per member on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a member's output.
    Logs {
        /// The member whose output to print.
        member: String,
        /// The habitat directory or its kiln.yaml.
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
        /// The member to run the command in.
        member: String,
        /// The habitat directory or its kiln.yaml.
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Open a shell in a member's container.
    Shell {
        /// The member to open the shell in.
        member: String,
        /// The habitat directory or its kiln.yaml.
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
    },
    /// Restart members' containers.
    Restart {
        /// The members to restart.
        members: Vec<String>,
        /// The habitat directory or its kiln.yaml.
        #[arg(long, short = 'C', value_name = "PATH", default_value = ".")]
        habitat: PathBuf,
        /// Every member.
        #[arg(long, conflicts_with = "members")]
        all: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every argument and option of every subcommand says what it is for.
    #[test]
    fn every_argument_and_option_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (the subcommand)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "kiln", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }

    /// Every subcommand that reads a habitat takes `-C` (SPEC §7); the rest
    /// read none.
    #[test]
    fn every_command_that_reads_a_habitat_takes_dash_c() {
        let without = ["phases", "schema", "completions", "help"];
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name();
            let has_c = sub.get_arguments().any(|a| a.get_short() == Some('C'));
            assert_eq!(has_c, !without.contains(&name), "`kiln {name}`");
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
