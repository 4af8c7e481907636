//! `BuildError`: why a build did not finish, with the data the user needs to
//! act on it, worded once here. The CLI maps each variant to an exit code.

use std::fmt;

use crate::config;
use crate::engine::EngineError;
use crate::phase::Phase;
use crate::sources::io::HostIo;

/// A build that did not finish.
#[derive(Debug)]
pub enum BuildError {
    /// The config (or a habitat it names as base) is invalid.
    Config(config::Diagnostics),
    /// The user's own mistake outside the config file (a secret's variable
    /// is not set, a habitat names itself as its base).
    Usage(String),
    /// The engine is unreachable or refused a request.
    Engine(EngineError),
    /// A phase failed.
    Phase(PhaseFailure),
    /// What a phase reads outside the config (a copy's file, a repo's ref)
    /// could not be read while planning, before anything ran: `plan` fails
    /// this way too, so there is nothing to resume.
    Inputs { phase: Phase, message: String },
    /// A file operation on the host failed (the build lock, a secret's
    /// directory, an image layer read on the host).
    Host(HostIo),
    /// kiln itself failed: a worker task panicked, an archive could not be
    /// assembled in memory.
    Internal(String),
}

/// What failed in a phase, for the user to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseFailure {
    pub phase: Phase,
    pub message: String,
    /// The command that failed, as the user wrote it.
    pub command: Option<String>,
    pub exit_code: Option<i64>,
    /// The last lines of the phase's output.
    pub output: Vec<String>,
    /// The step that failed (`6-setup.5`), in a phase built in steps.
    pub step: Option<String>,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(d) => write!(f, "{d}"),
            BuildError::Usage(m) => write!(f, "error: {m}"),
            BuildError::Engine(e) => write!(f, "error: {e}"),
            BuildError::Host(e) => write!(f, "error: {e}"),
            BuildError::Internal(m) => {
                write!(f, "error: internal error: {m} (this is a bug in kiln)")
            }
            BuildError::Inputs { phase, message } => write!(
                f,
                "error: cannot read the inputs of phase `{}`: {message}",
                phase.tag()
            ),
            BuildError::Phase(p) => {
                writeln!(f, "error: phase `{}` failed: {}", p.phase.tag(), p.message)?;
                if let Some(cmd) = &p.command {
                    write!(f, "  command: {cmd}")?;
                    if let Some(code) = p.exit_code {
                        write!(f, "\n  exit code: {code}")?;
                    }
                    writeln!(f)?;
                }
                if !p.output.is_empty() {
                    writeln!(f, "  last {} lines of output:", p.output.len())?;
                    for l in &p.output {
                        writeln!(f, "    | {l}")?;
                    }
                }
                match &p.step {
                    Some(step) => write!(
                        f,
                        "hint: step `{step}` failed; the steps before it are kept, and the next build resumes at it"
                    ),
                    None => write!(
                        f,
                        "hint: snapshots before `{}` are kept; fix the config and build again to resume there",
                        p.phase.tag()
                    ),
                }
            }
        }
    }
}

impl std::error::Error for BuildError {}

impl From<EngineError> for BuildError {
    fn from(e: EngineError) -> Self {
        BuildError::Engine(e)
    }
}

impl From<HostIo> for BuildError {
    fn from(e: HostIo) -> Self {
        BuildError::Host(e)
    }
}

/// An input of `phase` that cannot be read while planning.
pub(super) fn inputs(phase: Phase, message: impl Into<String>) -> BuildError {
    BuildError::Inputs {
        phase,
        message: message.into(),
    }
}

/// A phase failure with only a message.
pub(super) fn fail(phase: Phase, message: impl Into<String>) -> BuildError {
    BuildError::Phase(PhaseFailure {
        phase,
        message: message.into(),
        command: None,
        exit_code: None,
        output: Vec::new(),
        step: None,
    })
}

/// An archive assembled in memory could not be written.
pub(super) fn archive_error(e: std::io::Error) -> BuildError {
    BuildError::Internal(format!("cannot build an archive: {e}"))
}

/// A blocking worker task did not finish (it panicked or was cancelled).
pub(super) fn task_failed(what: &str, e: tokio::task::JoinError) -> BuildError {
    BuildError::Internal(format!("{what} task failed: {e}"))
}
