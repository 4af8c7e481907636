//! Why an instance command changed nothing, worded once for every command.

use std::fmt;

use crate::engine::EngineError;

/// Why an instance command changed nothing.
#[derive(Debug)]
pub enum InstanceError {
    /// Unknown member, no `instances:` section, and the like. Exit 2.
    Usage(String),
    /// `up` found clashes (ports, names, bind sources) and changed nothing. Exit 2.
    Clash(Vec<String>),
    /// The engine is unreachable or refused. Exit 3.
    Engine(EngineError),
}

impl InstanceError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InstanceError::Usage(_) | InstanceError::Clash(_) => 2,
            InstanceError::Engine(_) => 3,
        }
    }
}

impl fmt::Display for InstanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceError::Usage(m) => write!(f, "error: {m}"),
            InstanceError::Clash(clashes) => {
                writeln!(
                    f,
                    "error: `up` changed nothing: {} clash(es)",
                    clashes.len()
                )?;
                for c in clashes {
                    writeln!(f, "  - {c}")?;
                }
                write!(
                    f,
                    "hint: free the ports or paths named above, or change them in `instances:`"
                )
            }
            InstanceError::Engine(e) => {
                write!(f, "error: {e}")?;
                if matches!(e, EngineError::Unreachable { .. }) {
                    write!(
                        f,
                        "\nhint: start Docker (`sudo systemctl start docker`) or point `DOCKER_HOST` at a running engine"
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for InstanceError {}

impl From<EngineError> for InstanceError {
    fn from(e: EngineError) -> Self {
        InstanceError::Engine(e)
    }
}
