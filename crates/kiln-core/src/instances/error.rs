//! Why an instance command changed nothing, worded once for every command.

use std::collections::BTreeMap;
use std::fmt;

use crate::engine::EngineError;
use crate::image::labels::{LABEL_DIR, LABEL_HABITAT, LABEL_INSTANCE, LABEL_PERSIST};

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
                    "hint: free or remove what is named above, or change `instances:`"
                )
            }
            InstanceError::Engine(e) => write!(f, "error: {e}"),
        }
    }
}

/// Whom a container or volume belongs to, as its kiln labels say; all `None`
/// when kiln did not make it (`habitat` is left out where it goes without saying).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub habitat: Option<String>,
    pub member: Option<String>,
    /// The persisted path, for a volume.
    pub path: Option<String>,
    pub dir: Option<String>,
}

impl Owner {
    pub fn of(labels: &BTreeMap<String, String>) -> Owner {
        let get = |k: &str| labels.get(k).cloned();
        Owner {
            habitat: get(LABEL_HABITAT),
            member: get(LABEL_INSTANCE),
            path: get(LABEL_PERSIST),
            dir: get(LABEL_DIR),
        }
    }
}

/// `` `/data` of member `a` of habitat `h` from `/dir` ``, leaving out what is unknown.
impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            self.path.as_ref().map(|p| format!("`{p}`")),
            self.member.as_ref().map(|m| format!("member `{m}`")),
            self.habitat.as_ref().map(|h| format!("habitat `{h}`")),
        ];
        let parts: Vec<String> = parts.into_iter().flatten().collect();
        if parts.is_empty() {
            return write!(f, "something kiln did not make");
        }
        write!(f, "{}", parts.join(" of "))?;
        if let Some(dir) = &self.dir {
            write!(f, " from `{dir}`")?;
        }
        Ok(())
    }
}

/// A container or volume `up` would have to take from someone else, or
/// cannot tell whose it is; one line of `InstanceError::Clash`, with its hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Member `member`'s container name `container` is taken by a container
    /// that is not its (`owner` says whose).
    Name {
        container: String,
        habitat: String,
        member: String,
        dir: String,
        owner: Owner,
    },
    /// The volume name of `path` of `member` is taken by a volume that is not its.
    Volume {
        volume: String,
        member: String,
        path: String,
        owner: Owner,
    },
    /// `volume`, of kiln's old naming, is the old name of `path` of `member`
    /// too, but it may hold another path's files: it was made for
    /// `made_for`, or several paths of this habitat (`claimants`, member and
    /// path) map to it.
    Legacy {
        volume: String,
        habitat: String,
        member: String,
        path: String,
        made_for: Owner,
        claimants: Vec<(String, String)>,
    },
    /// `volume` was being filled from the old `from` when kiln stopped.
    Unfinished {
        volume: String,
        from: String,
        member: String,
        path: String,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::Name {
                container,
                habitat,
                member,
                dir,
                owner,
            } => match (&owner.habitat, &owner.member) {
                (Some(h), Some(m)) if h == habitat && m == member => write!(
                    f,
                    "container `{container}` of member `{member}` was made from {}, not from `{dir}`; it is left alone\n    hint: `kiln down -C {} {member}` removes it (`docker rm -f {container}` when that directory is gone)",
                    owner
                        .dir
                        .as_deref()
                        .map_or_else(|| "another directory".to_string(), |d| format!("`{d}`")),
                    owner.dir.as_deref().unwrap_or("DIR"),
                ),
                (Some(h), Some(m)) => write!(
                    f,
                    "container `{container}` is member `{m}` of habitat `{h}`, and member `{member}` of habitat `{habitat}` has the same name (`HABITAT-MEMBER`); it is left alone\n    hint: rename member `{member}` (or the habitat) so the names differ"
                ),
                _ => write!(
                    f,
                    "a container named `{container}` exists that kiln did not create for member `{member}`; it is left alone\n    hint: remove or rename it (`docker rm -f {container}`)"
                ),
            },
            Conflict::Volume {
                volume,
                member,
                path,
                owner,
            } => write!(
                f,
                "volume `{volume}` for `{path}` of member `{member}` exists but belongs to {owner}; kiln does not share it\n    hint: remove it (`docker volume rm {volume}`) if nothing needs it"
            ),
            Conflict::Legacy {
                volume,
                habitat,
                member,
                path,
                made_for,
                claimants,
            } => {
                let this = format!("`{path}` of member `{member}`");
                let mut all = vec![this.clone()];
                all.extend(
                    claimants
                        .iter()
                        .filter(|(m, p)| !(m == member && p == path))
                        .map(|(m, p)| format!("`{p}` of member `{m}`")),
                );
                // Within this habitat the habitat goes without saying.
                let made = if made_for.habitat.as_deref() == Some(habitat.as_str()) {
                    Owner {
                        habitat: None,
                        ..made_for.clone()
                    }
                    .to_string()
                } else {
                    made_for.to_string()
                };
                let rm = format!("`docker volume rm {volume}`");
                if all.len() > 1 {
                    write!(
                        f,
                        "volume `{volume}`, kiln's old name for {}, is one volume for all of them; kiln cannot tell whose files it holds and leaves it alone\n    hint: if only {made} used it (kiln made it for that one), take the others out of `instances:` for one `kiln up`, which moves it to its new name, then put them back; else copy what each needs out of it and remove it ({rm})",
                        all.join(" and ")
                    )
                } else {
                    write!(
                        f,
                        "volume `{volume}`, kiln's old name for {this}, was made for {made}, which had the same old name; kiln cannot tell whose files it holds and leaves it alone\n    hint: "
                    )?;
                    match made_for.habitat.as_deref() {
                        Some(other) if other != habitat => write!(
                            f,
                            "`kiln up` in habitat `{other}` moves it to that member's own volume; or copy what member `{member}` needs out of it and remove it ({rm})"
                        ),
                        _ => write!(
                            f,
                            "copy what member `{member}` needs out of it, then remove it ({rm})"
                        ),
                    }
                }
            }
            Conflict::Unfinished {
                volume,
                from,
                member,
                path,
            } => write!(
                f,
                "volume `{volume}` for `{path}` of member `{member}` was being filled from `{from}` (kiln's old name for it) when kiln stopped; both exist, and kiln will not guess which holds the member's files\n    hint: if the member has not run since, remove `{volume}` (`docker volume rm {volume}`) and `kiln up` moves it again; else remove `{from}`"
            ),
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
        assert!(
            one.starts_with("error: `up` changed nothing: 1 clash\n"),
            "{one}"
        );
        let two = InstanceError::Clash(vec!["a".into(), "b".into()]).to_string();
        assert!(
            two.starts_with("error: `up` changed nothing: 2 clashes\n"),
            "{two}"
        );
    }
}
