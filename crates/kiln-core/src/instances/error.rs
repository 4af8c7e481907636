//! Why an instance command changed nothing, worded once for every command.

use std::fmt;

use crate::engine::EngineError;

/// Why an instance command changed nothing. The CLI maps each variant to its
/// exit code.
#[derive(Debug)]
pub enum InstanceError {
    /// `up` on a habitat without an `instances:` section.
    NoInstances { habitat: String },
    /// A member asked for that neither the config nor the engine knows;
    /// `known` are the members it could have been.
    UnknownMember {
        habitat: String,
        name: String,
        known: Vec<String>,
    },
    /// A member entry the config check rejects, in a `Config` that was not
    /// checked: `message` says what is wrong with it.
    InvalidMember {
        habitat: String,
        member: String,
        message: String,
    },
    /// `logs`, `exec` or `shell` of a member that has no container.
    NoContainer { habitat: String, member: String },
    /// `exec` or `shell` of a member whose container is not running; `state`
    /// is the engine's.
    NotRunning {
        habitat: String,
        member: String,
        state: String,
    },
    /// `up` found clashes (ports, names, bind sources) and changed nothing.
    Clash(Vec<String>),
    /// The engine is unreachable or refused.
    Engine(EngineError),
}

impl fmt::Display for InstanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceError::NoInstances { habitat } => write!(
                f,
                "error: habitat `{habitat}` has no `instances` section\nhint: add `instances: {{ members: {{ NAME: {{}} }} }}` to `kiln.yaml`"
            ),
            InstanceError::UnknownMember {
                habitat,
                name,
                known,
            } => {
                let known = if known.is_empty() {
                    "none".to_string()
                } else {
                    known
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                write!(
                    f,
                    "error: unknown member `{name}` of habitat `{habitat}`\nhint: the members in `instances.members` are {known}"
                )
            }
            InstanceError::InvalidMember {
                habitat,
                member,
                message,
            } => write!(
                f,
                "error: member `{member}` of habitat `{habitat}`: {message}"
            ),
            InstanceError::NoContainer { habitat, member } => write!(
                f,
                "error: member `{member}` of habitat `{habitat}` has no container\nhint: `kiln up . {member}` creates it"
            ),
            InstanceError::NotRunning { member, state, .. } => write!(
                f,
                "error: member `{member}` is not running (it is `{state}`)\nhint: `kiln up . {member}` starts it"
            ),
            InstanceError::Clash(clashes) => {
                let n = clashes.len();
                let noun = if n == 1 { "clash" } else { "clashes" };
                writeln!(f, "error: `up` changed nothing: {n} {noun}")?;
                for c in clashes {
                    writeln!(f, "  - {c}")?;
                }
                write!(
                    f,
                    "hint: free the ports or paths named above, or change them in `instances:`"
                )
            }
            InstanceError::Engine(e) => write!(f, "error: {e}"),
        }
    }
}

impl std::error::Error for InstanceError {}

impl From<EngineError> for InstanceError {
    fn from(e: EngineError) -> Self {
        InstanceError::Engine(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_member_names_the_known_ones() {
        let err = |known: &[&str]| InstanceError::UnknownMember {
            habitat: "web".to_string(),
            name: "zed".to_string(),
            known: known.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(
            err(&["a", "b"]).to_string(),
            "error: unknown member `zed` of habitat `web`\nhint: the members in `instances.members` are `a`, `b`"
        );
        assert!(err(&[]).to_string().ends_with("are none"));
    }

    /// Bug: one clash was "1 clash(es)".
    #[test]
    fn regression_clashes_are_counted_in_words() {
        let one = InstanceError::Clash(vec!["port 8080".into()]).to_string();
        assert!(one.starts_with("error: `up` changed nothing: 1 clash\n"), "{one}");
        let two = InstanceError::Clash(vec!["a".into(), "b".into()]).to_string();
        assert!(two.starts_with("error: `up` changed nothing: 2 clashes\n"), "{two}");
    }
}
