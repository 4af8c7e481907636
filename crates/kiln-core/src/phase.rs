//! The ten lifecycle phases of a habitat build: their ids, names and tags.

use std::fmt;
use std::str::FromStr;

/// One of the ten standard phases, in build order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Base,
    Users,
    Env,
    Habitat,
    Files,
    Setup,
    Repos,
    Tools,
    Verify,
    Final,
}

impl Phase {
    pub const ALL: [Phase; 10] = [
        Phase::Base,
        Phase::Users,
        Phase::Env,
        Phase::Habitat,
        Phase::Files,
        Phase::Setup,
        Phase::Repos,
        Phase::Tools,
        Phase::Verify,
        Phase::Final,
    ];

    /// The 1-based id used in tags (`6-setup`) and on the command line.
    pub fn id(self) -> u8 {
        self as u8 + 1
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::Base => "base",
            Phase::Users => "users",
            Phase::Env => "env",
            Phase::Habitat => "habitat",
            Phase::Files => "files",
            Phase::Setup => "setup",
            Phase::Repos => "repos",
            Phase::Tools => "tools",
            Phase::Verify => "verify",
            Phase::Final => "final",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Phase::Base => "resolve or make the base image",
            Phase::Users => "create groups and users",
            Phase::Env => "set environment variables (image config only)",
            Phase::Habitat => "create directories, set the work dir",
            Phase::Files => "copy files in, with owner and mode",
            Phase::Setup => "install packages, run root commands, then user scripts",
            Phase::Repos => "fetch repositories and place them at their paths",
            Phase::Tools => "install tools, checking each checksum",
            Phase::Verify => "check files exist and commands succeed",
            Phase::Final => "user, workdir, command, entrypoint, ports, labels",
        }
    }

    /// The tag of this phase's snapshot, e.g. `6-setup`.
    pub fn tag(self) -> String {
        format!("{}-{}", self.id(), self.name())
    }

    pub fn from_id(id: u8) -> Option<Phase> {
        Phase::ALL.get(usize::from(id).checked_sub(1)?).copied()
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn previous(self) -> Option<Phase> {
        self.index().checked_sub(1).map(|i| Phase::ALL[i])
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A phase given on the command line that names none of the ten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPhase(pub String);

impl fmt::Display for UnknownPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown phase `{}`; expected an id 1-10 or one of: {}",
            self.0,
            Phase::ALL.map(Phase::name).join(", ")
        )?;
        // A misspelt name (`stup`) or tag (`6-setpu`) gets the one meant.
        let lower = self.0.to_ascii_lowercase();
        let names = Phase::ALL.map(Phase::name);
        let tags = Phase::ALL.map(Phase::tag);
        let known: Vec<&str> = names
            .iter()
            .copied()
            .chain(tags.iter().map(String::as_str))
            .collect();
        if let Some(meant) = crate::config::suggest(&lower, &known) {
            write!(f, "\nhint: did you mean `{meant}`?")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownPhase {}

impl FromStr for Phase {
    type Err = UnknownPhase;

    /// Accepts an id (`7`), a name (`repos`) or a tag (`7-repos`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(id) = s.parse::<u8>() {
            return Phase::from_id(id).ok_or_else(|| UnknownPhase(s.to_string()));
        }
        let lower = s.to_ascii_lowercase();
        Phase::ALL
            .into_iter()
            .find(|p| p.name() == lower || p.tag() == lower)
            .ok_or_else(|| UnknownPhase(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_tags_round_trip() {
        for p in Phase::ALL {
            assert_eq!(Phase::from_id(p.id()), Some(p));
            assert_eq!(p.name().parse::<Phase>().unwrap(), p);
            assert_eq!(p.id().to_string().parse::<Phase>().unwrap(), p);
            assert_eq!(p.tag().parse::<Phase>().unwrap(), p);
        }
        assert_eq!(Phase::Setup.tag(), "6-setup");
    }

    #[test]
    fn unknown_phases_get_a_did_you_mean() {
        let cases: &[(&str, Option<&str>)] = &[
            ("stup", Some("setup")),
            ("Verfy", Some("verify")),
            ("6-setpu", Some("6-setup")),
            ("finale", Some("final")),
            ("11", None),
            ("xyzzy", None),
        ];
        for (given, meant) in cases {
            let message = given.parse::<Phase>().unwrap_err().to_string();
            let hint = message
                .split_once("\nhint: did you mean `")
                .map(|(_, h)| h.trim_end_matches("`?"));
            assert_eq!(hint, *meant, "{given}: {message}");
        }
        assert_eq!(Phase::Final.id(), 10);
    }

    #[test]
    fn unknown_phases_are_refused() {
        assert!("0".parse::<Phase>().is_err());
        assert!("11".parse::<Phase>().is_err());
        assert!("repo".parse::<Phase>().is_err());
    }
}
