//! `PhaseScript`: the shell program a command-running phase (setup, verify)
//! executes in its container. Each step is its own file, so user commands
//! need no quoting; a failed step prints a marker that names it and its exit
//! code, so the executor can say which command failed.

use crate::config::{Config, Packages};

/// Where secrets are mounted for setup commands.
pub const SECRETS_DIR: &str = "/run/secrets";
/// The marker a failed step prints on stderr: `__KILN_STEP_FAILED__ INDEX CODE`.
pub const FAIL_MARKER: &str = "__KILN_STEP_FAILED__";

/// One step: a command as the user wrote it (or kiln made it), run as `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What the user sees when it fails: the command itself.
    pub command: String,
    /// `None` runs as root.
    pub user: Option<String>,
    /// For a `verify.files` check, the path it checks: its failure is
    /// worded as the missing file, not as the `test -e` behind it.
    pub file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhaseScript {
    pub steps: Vec<Step>,
    /// `setup.shell`: the program each step's command is the last argument of.
    pub shell: Vec<String>,
    /// `export NAME="$(cat /run/secrets/ID)"` for each (env name, secret id).
    pub secret_env: Vec<(String, String)>,
    /// Where every step runs (a repo's commands run in its directory); the
    /// user's home for a user's step, `/` for root's, when `None`.
    pub dir: Option<String>,
}

impl PhaseScript {
    /// The setup phase's cache steps (SPEC §5), in the order of their step
    /// keys ([`crate::keys::steps::step_inputs`]): the packages (one step,
    /// however many managers), then each root command, then each script.
    pub fn setup_steps(config: &Config) -> Vec<PhaseScript> {
        let whole = PhaseScript::setup(config);
        let packages = config
            .build
            .setup
            .as_ref()
            .and_then(|s| s.packages.as_ref())
            .map_or(0, |p| package_steps(p).len());
        let mut out = Vec::new();
        let mut steps = whole.steps.iter();
        if packages > 0 {
            out.push(PhaseScript {
                steps: steps.by_ref().take(packages).cloned().collect(),
                ..whole.clone()
            });
        }
        out.extend(steps.map(|step| PhaseScript {
            steps: vec![step.clone()],
            ..whole.clone()
        }));
        out
    }

    /// The commands of every repo, in order, one script each: run in the
    /// repo's directory as its owner, with the configured shell and the
    /// secrets as setup's commands get them.
    pub fn repo_steps(config: &Config) -> Vec<PhaseScript> {
        let mut out = Vec::new();
        for r in &config.build.repos {
            let user = r.owner.clone().filter(|u| u != "root" && u != "0");
            for cmd in &r.commands {
                out.push(PhaseScript {
                    steps: vec![Step {
                        command: cmd.clone(),
                        user: user.clone(),
                        file: None,
                    }],
                    shell: config.shell(),
                    secret_env: secret_env(config),
                    dir: Some(r.path.clone()),
                });
            }
        }
        out
    }

    /// The setup phase: packages (apt, npm, pip), then root commands, then user scripts.
    pub fn setup(config: &Config) -> PhaseScript {
        let mut steps = Vec::new();
        if let Some(setup) = &config.build.setup {
            if let Some(p) = &setup.packages {
                steps.extend(package_steps(p));
            }
            if let Some(c) = &setup.commands {
                steps.extend(c.root.iter().map(|cmd| Step {
                    command: cmd.clone(),
                    user: None,
                    file: None,
                }));
                let user = c.user.clone().filter(|u| u != "root" && u != "0");
                steps.extend(c.scripts.iter().map(|cmd| Step {
                    command: cmd.clone(),
                    user: user.clone(),
                    file: None,
                }));
            }
        }
        PhaseScript {
            steps,
            shell: config.shell(),
            secret_env: secret_env(config),
            dir: None,
        }
    }

    /// The verify phase: each file must exist, each command must succeed.
    pub fn verify(config: &Config) -> PhaseScript {
        let mut steps = Vec::new();
        if let Some(v) = &config.build.verify {
            let user = v.user.clone().filter(|u| u != "root" && u != "0");
            steps.extend(v.files.iter().map(|f| Step {
                command: format!("test -e {}", sh_quote(f)),
                user: None,
                file: Some(f.clone()),
            }));
            steps.extend(v.commands.iter().map(|c| Step {
                command: c.clone(),
                user: user.clone(),
                file: None,
            }));
        }
        PhaseScript {
            steps,
            shell: config.shell(),
            secret_env: Vec::new(),
            dir: None,
        }
    }

    /// The whole program, for `sh -c`. Each step's command is one
    /// single-quoted argument, so user commands need no escaping of their own,
    /// and nothing has to be written into the container (or its snapshot).
    pub fn script(&self) -> String {
        let mut run = String::from(
            "# Generated by kiln: runs this phase's steps in order.\nexport DEBIAN_FRONTEND=noninteractive\n",
        );
        for (env, id) in &self.secret_env {
            run.push_str(&format!("export {env}=\"$(cat {SECRETS_DIR}/{id})\"\n"));
        }
        // `su` without `-l` keeps the environment, so the user's shell reads
        // the step from KILN_STEP, unquoted by nobody. The configured shell
        // gets the command as its last argument, as Docker's `SHELL` does.
        let shell = self
            .shell
            .iter()
            .map(|w| sh_quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        let cd = match &self.dir {
            Some(dir) => {
                run.push_str(&format!(
                    "KILN_DIR={}; export KILN_DIR\ncd \"$KILN_DIR\" || exit 1\n",
                    sh_quote(dir)
                ));
                "cd \"$KILN_DIR\" || exit 1;"
            }
            None => "cd \"$HOME\" 2>/dev/null;",
        };
        let as_user = sh_quote(&format!("{cd} exec {shell} \"$KILN_STEP\""));
        run.push_str(&format!(
            "kiln_step() {{\n  KILN_STEP=\"$3\"; export KILN_STEP\n  \
             if [ -z \"$2\" ]; then {shell} \"$KILN_STEP\"\n  \
             else su -s /bin/sh \"$2\" -c {as_user}\n  fi\n  \
             code=$?\n  if [ \"$code\" -ne 0 ]; then echo \"{FAIL_MARKER} $1 $code\" >&2; exit \"$code\"; fi\n}}\n"
        ));
        for (i, step) in self.steps.iter().enumerate() {
            run.push_str(&format!(
                "kiln_step {i} {} {}\n",
                sh_quote(step.user.as_deref().unwrap_or("")),
                sh_quote(&step.command)
            ));
        }
        run
    }

    /// Reads a failure marker from a line of stderr: `(step index, exit code)`.
    pub fn parse_failure(line: &str) -> Option<(usize, i64)> {
        let rest = line.trim().strip_prefix(FAIL_MARKER)?;
        let mut it = rest.split_whitespace();
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    }
}

/// (env name, secret id) of each secret given as an environment variable.
fn secret_env(config: &Config) -> Vec<(String, String)> {
    config
        .secrets
        .iter()
        .filter_map(|s| s.env.clone().map(|env| (env, s.id.clone())))
        .collect()
}

fn package_steps(p: &Packages) -> Vec<Step> {
    let mut steps = Vec::new();
    // Order-insensitive lists: install in sorted order so a reordered list is the same build.
    let sorted = |v: Vec<String>| {
        let mut v = v;
        v.sort();
        v.dedup();
        v
    };
    if !p.apt.is_empty() {
        let pkgs = sorted(p.apt.clone())
            .iter()
            .map(|x| sh_quote(x))
            .collect::<Vec<_>>()
            .join(" ");
        steps.push(Step {
            command: format!(
                "apt-get update -qq && apt-get install -y -qq --no-install-recommends {pkgs} \
                 && apt-get clean && rm -rf /var/lib/apt/lists/*"
            ),
            user: None,
            file: None,
        });
    }
    let global: Vec<String> = sorted(
        p.npm
            .iter()
            .filter(|n| n.global())
            .map(|n| n.spec())
            .collect(),
    );
    if !global.is_empty() {
        let pkgs = global
            .iter()
            .map(|x| sh_quote(x))
            .collect::<Vec<_>>()
            .join(" ");
        steps.push(Step {
            command: format!(
                "npm install -g --no-audit --no-fund {pkgs} && npm cache clean --force"
            ),
            user: None,
            file: None,
        });
    }
    let local: Vec<String> = sorted(
        p.npm
            .iter()
            .filter(|n| !n.global())
            .map(|n| n.spec())
            .collect(),
    );
    if !local.is_empty() {
        let pkgs = local
            .iter()
            .map(|x| sh_quote(x))
            .collect::<Vec<_>>()
            .join(" ");
        steps.push(Step {
            command: format!("npm install --no-audit --no-fund {pkgs} && npm cache clean --force"),
            user: None,
            file: None,
        });
    }
    if !p.pip.is_empty() {
        let pkgs = sorted(p.pip.clone())
            .iter()
            .map(|x| sh_quote(x))
            .collect::<Vec<_>>()
            .join(" ");
        steps.push(Step {
            command: format!(
                "PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
                 python3 -m pip install --no-cache-dir {pkgs}"
            ),
            user: None,
            file: None,
        });
    }
    steps
}

/// Single-quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@+,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Build, Commands, Setup};

    fn config(apt: &[&str], root: &[&str], user: Option<&str>, scripts: &[&str]) -> Config {
        Config {
            name: "x".into(),
            build: Build {
                setup: Some(Setup {
                    packages: Some(Packages {
                        apt: apt.iter().map(|s| s.to_string()).collect(),
                        ..Default::default()
                    }),
                    commands: Some(Commands {
                        root: root.iter().map(|s| s.to_string()).collect(),
                        user: user.map(str::to_string),
                        scripts: scripts.iter().map(|s| s.to_string()).collect(),
                    }),
                    shell: None,
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn steps_run_packages_then_root_then_user_scripts() {
        let s = PhaseScript::setup(&config(
            &["git", "curl"],
            &["echo root"],
            Some("dev"),
            &["echo $HOME"],
        ));
        assert_eq!(s.steps.len(), 3);
        assert!(
            s.steps[0]
                .command
                .contains("install -y -qq --no-install-recommends curl git")
        );
        assert_eq!(
            s.steps[1],
            Step {
                command: "echo root".into(),
                user: None,
                file: None,
            }
        );
        assert_eq!(
            s.steps[2],
            Step {
                command: "echo $HOME".into(),
                user: Some("dev".into()),
                file: None,
            }
        );
        let script = s.script();
        assert!(script.contains("kiln_step 1 '' 'echo root'\n"), "{script}");
        assert!(
            script.contains("kiln_step 2 dev 'echo $HOME'\n"),
            "{script}"
        );
    }

    #[test]
    fn the_configured_shell_runs_every_step_root_or_user() {
        let mut c = config(&["git"], &["echo root"], Some("dev"), &["echo $HOME"]);
        let default = PhaseScript::setup(&c).script();
        assert!(
            default.contains("then /bin/sh -e -c \"$KILN_STEP\""),
            "{default}"
        );
        if let Some(s) = c.build.setup.as_mut() {
            s.shell = Some(vec![
                "/bin/bash".into(),
                "-o".into(),
                "pipefail".into(),
                "-c".into(),
            ]);
        }
        let s = PhaseScript::setup(&c);
        assert_eq!(s.shell, ["/bin/bash", "-o", "pipefail", "-c"]);
        let script = s.script();
        assert!(!script.contains("/bin/sh -e -c"), "{script}");
        assert!(
            script.contains("then /bin/bash -o pipefail -c \"$KILN_STEP\""),
            "{script}"
        );
        assert!(
            script.contains(
                "-c 'cd \"$HOME\" 2>/dev/null; exec /bin/bash -o pipefail -c \"$KILN_STEP\"'"
            ),
            "{script}"
        );
        // A word the shell would split is quoted, inside the user's `su -c` too.
        if let Some(s) = c.build.setup.as_mut() {
            s.shell = Some(vec!["/opt/my shell".into(), "-c".into()]);
        }
        let script = PhaseScript::setup(&c).script();
        assert!(script.contains("then '/opt/my shell' -c"), "{script}");
        assert!(
            script.contains("exec '\\''/opt/my shell'\\'' -c"),
            "{script}"
        );
    }

    #[test]
    fn verify_commands_run_as_verify_user_and_file_checks_as_root() {
        let mut c = config(&[], &[], None, &[]);
        c.build.verify = Some(crate::config::Verify {
            files: vec!["/etc/passwd".into()],
            commands: vec!["id -un".into()],
            user: Some("dev".into()),
        });
        let s = PhaseScript::verify(&c);
        assert_eq!(s.steps[0].user, None);
        assert_eq!(s.steps[1].user.as_deref(), Some("dev"));
        if let Some(v) = c.build.verify.as_mut() {
            v.user = Some("root".into());
        }
        assert_eq!(PhaseScript::verify(&c).steps[1].user, None);
    }

    #[test]
    fn setup_steps_are_the_packages_then_each_command_each_its_own_script() {
        let mut c = config(
            &["git", "curl"],
            &["echo a", "echo b"],
            Some("dev"),
            &["echo c"],
        );
        if let Some(p) = c.build.setup.as_mut().and_then(|s| s.packages.as_mut()) {
            p.pip = vec!["httpie".into()];
        }
        let steps = PhaseScript::setup_steps(&c);
        assert_eq!(steps.len(), 4, "packages, two root commands, one script");
        assert_eq!(steps[0].steps.len(), 2, "apt and pip are one cache step");
        let flat: Vec<Step> = steps.iter().flat_map(|s| s.steps.clone()).collect();
        assert_eq!(flat, PhaseScript::setup(&c).steps);
        assert_eq!(steps[3].steps[0].user.as_deref(), Some("dev"));
        let keys = crate::keys::steps::step_inputs(
            &c,
            &crate::keys::Facts {
                base: crate::keys::BaseFact::Bootstrap { key: "b".into() },
                copies: Vec::new(),
                repos: Vec::new(),
                init: None,
            },
            crate::phase::Phase::Setup,
        );
        assert_eq!(keys.len(), steps.len(), "one script per step key");
    }

    #[test]
    fn a_repo_command_runs_in_the_repos_directory_as_its_owner() {
        let mut c = config(&[], &[], None, &[]);
        // From its serde form, so fields added later default.
        c.build.repos = vec![
            serde_json::from_value(serde_json::json!({
                "url": "https://example.com/app", "path": "/work/my app", "owner": "dev",
                "commands": ["npm ci", "make"],
            }))
            .unwrap(),
        ];
        let steps = PhaseScript::repo_steps(&c);
        assert_eq!(steps.len(), 2);
        let script = steps[0].script();
        assert!(
            script
                .contains("KILN_DIR='/work/my app'; export KILN_DIR\ncd \"$KILN_DIR\" || exit 1\n"),
            "{script}"
        );
        assert!(script.contains("kiln_step 0 dev 'npm ci'\n"), "{script}");
        assert!(
            script.contains("cd \"$KILN_DIR\" || exit 1; exec /bin/sh -e -c"),
            "{script}"
        );
        // Setup's scripts still start in the user's home.
        assert!(!PhaseScript::setup(&c).script().contains("KILN_DIR"));
    }

    #[test]
    fn reordered_packages_make_the_same_script() {
        let a = PhaseScript::setup(&config(&["git", "curl"], &[], None, &[])).script();
        let b = PhaseScript::setup(&config(&["curl", "git"], &[], None, &[])).script();
        assert_eq!(a, b);
    }

    #[test]
    fn failure_markers_parse() {
        assert_eq!(
            PhaseScript::parse_failure("__KILN_STEP_FAILED__ 3 127"),
            Some((3, 127))
        );
        assert_eq!(PhaseScript::parse_failure("some output"), None);
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("abc"), "abc");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}
