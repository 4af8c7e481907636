//! How `kiln` ends: the single map from an outcome to the process exit code
//! (SPEC §7). 0 success, 1 a phase, member or the host failed, 2 bad usage or
//! an invalid config, 3 the engine or
//! the registry, 130/143 SIGINT/SIGTERM, or the code of the
//! child that `kiln start` / `kiln exec` ran. The library's errors are mapped
//! here, variant by variant, so a code is decided in one place.

use std::process::ExitCode;

use kiln_core::config::Diagnostics;
use kiln_core::executor::BuildError;
use kiln_core::instances::InstanceError;
use kiln_core::registry::RegistryError;
use kiln_core::registry::promote::PromoteError;
use kiln_core::registry::push::PushError;
use kiln_core::registry::tags::TemplateError;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit 0.
    Success,
    /// A phase, a member or the host failed. Exit 1.
    Failure,
    /// Bad usage or an invalid config. Exit 2.
    Usage,
    /// The engine is unreachable or refused. Exit 3.
    Engine,
    /// The user interrupted. Exit 130 (SIGINT) or 143 (SIGTERM).
    Interrupted(Signal),
    /// The child of `kiln start` / `kiln exec` ended with this code.
    Child(i64),
}

/// The signals that interrupt a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

/// Why a command did not succeed. `render::error` prints it, once; its
/// status comes from `ExitStatus::from`.
#[derive(Debug)]
pub enum Failure {
    /// The habitat's config is invalid.
    Config(Diagnostics),
    Build(BuildError),
    Instance(InstanceError),
    /// Interrupted; `removed` build containers were swept.
    Interrupted {
        signal: Signal,
        removed: usize,
    },
    /// A member argument is the path of a habitat (it holds a `/` or names
    /// a `kiln.yaml`).
    NotAMember {
        arg: String,
    },
    /// The registry did not answer, refused, or lacks what was named.
    Registry(RegistryError),
    /// The habitat has no `registry:` section, which the command needs.
    NoRegistry {
        file: std::path::PathBuf,
        command: &'static str,
    },
    /// `kiln promote` was given a source or destination that cannot be one.
    Promote(PromoteError),
    /// The async runtime did not start.
    Runtime(std::io::Error),
    /// The schema did not render.
    Schema(serde_json::Error),
    Cache(CacheFailure),
    /// A push stopped: the registry or the engine refused, or the engine's
    /// archive did not hold what it should.
    Push(PushError),
    /// A `--tag` template that can never render.
    BadTag {
        template: String,
        error: TemplateError,
    },
}

/// Why `kiln cache` stopped.
#[derive(Debug)]
pub enum CacheFailure {
    /// `prune --level nuke` without `--yes`, and no terminal to ask on.
    NukeNeedsYes,
    /// The user answered no.
    Declined,
    Prune(kiln_core::cache::status::PruneError),
}

impl std::fmt::Display for CacheFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheFailure::NukeNeedsYes => write!(
                f,
                "error: `--level nuke` removes everything kiln made and asks first, but there is no terminal to ask on; nothing was removed\nhint: pass `--yes` to nuke without asking, or `--dry-run` to see what it would remove"
            ),
            CacheFailure::Declined => write!(f, "nothing was removed"),
            CacheFailure::Prune(e) => write!(f, "error: {e}"),
        }
    }
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Engine => 3,
            ExitStatus::Interrupted(Signal::Int) => 130,
            ExitStatus::Interrupted(Signal::Term) => 143,
            // A code no process can exit with (e.g. -1: the engine has none) is a failure.
            ExitStatus::Child(code) => u8::try_from(code).unwrap_or(1),
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status.code())
    }
}

impl From<&Failure> for ExitStatus {
    fn from(failure: &Failure) -> ExitStatus {
        match failure {
            Failure::Config(_)
            | Failure::NotAMember { .. }
            | Failure::NoRegistry { .. }
            | Failure::Promote(_) => ExitStatus::Usage,
            Failure::Registry(e) => ExitStatus::from(e),
            Failure::Build(e) => ExitStatus::from(e),
            Failure::Instance(e) => ExitStatus::from(e),
            Failure::Interrupted { signal, .. } => ExitStatus::Interrupted(*signal),
            Failure::Runtime(_) | Failure::Schema(_) => ExitStatus::Failure,
            Failure::Cache(CacheFailure::NukeNeedsYes) => ExitStatus::Usage,
            Failure::Cache(CacheFailure::Declined) => ExitStatus::Failure,
            Failure::Cache(CacheFailure::Prune(kiln_core::cache::status::PruneError::Engine(
                _,
            ))) => ExitStatus::Engine,
            Failure::Cache(CacheFailure::Prune(_)) => ExitStatus::Failure,
            Failure::Push(PushError::Registry(_) | PushError::Engine(_)) => ExitStatus::Engine,
            Failure::Push(PushError::NoSuchImage(_) | PushError::Archive { .. }) => {
                ExitStatus::Failure
            }
            Failure::BadTag { .. } => ExitStatus::Usage,
        }
    }
}

impl From<&BuildError> for ExitStatus {
    fn from(e: &BuildError) -> ExitStatus {
        match e {
            BuildError::Config(_) | BuildError::Usage(_) => ExitStatus::Usage,
            BuildError::Engine(_) => ExitStatus::Engine,
            BuildError::Phase(_)
            | BuildError::Inputs { .. }
            | BuildError::Host(_)
            | BuildError::Internal(_) => ExitStatus::Failure,
        }
    }
}

impl From<&RegistryError> for ExitStatus {
    fn from(e: &RegistryError) -> ExitStatus {
        match e {
            // What the user named is not there: their mistake, not the registry's.
            RegistryError::NotFound { .. } => ExitStatus::Usage,
            // Down, refusing (credentials, deletes) or failing: exit 3 (SPEC §10).
            _ => ExitStatus::Engine,
        }
    }
}

impl From<&InstanceError> for ExitStatus {
    fn from(e: &InstanceError) -> ExitStatus {
        match e {
            InstanceError::NoInstances { .. }
            | InstanceError::UnknownMember { .. }
            | InstanceError::InvalidMember { .. }
            | InstanceError::NoContainer { .. }
            | InstanceError::NotRunning { .. }
            | InstanceError::Clash(_) => ExitStatus::Usage,
            InstanceError::Engine(_) => ExitStatus::Engine,
        }
    }
}
