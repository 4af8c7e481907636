//! The tty progress in a real terminal: the binary runs in a tmux pane of
//! 80x24 and the pane's screen is read back with `capture-pane`. Skipped
//! (with a message) where tmux is not installed.

use std::path::Path;
use std::process::Command;

use crate::cli::SPARSE;
use crate::support::Habitat;

const WIDTH: usize = 80;

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tmux session of its own, killed when dropped.
struct Pane {
    session: String,
}

impl Pane {
    fn start(h: &Habitat, args: &str) -> Pane {
        Pane::start_with(h, args, "NO_COLOR=1")
    }

    /// `start`, with `env` (`NAME=VALUE`, or `-u NAME` to unset) for kiln.
    fn start_with(h: &Habitat, args: &str, env: &str) -> Pane {
        let session = format!("{}-tty", h.name);
        let shell = format!(
            "trap : INT; cd {dir} && env {env} KILN_CACHE_DIR={cache} {bin} {args}; echo \"[exit $?]\"; sleep 600",
            dir = h.dir().display(),
            cache = h.cache().display(),
            bin = Path::new(env!("CARGO_BIN_EXE_kiln")).display(),
        );
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-x", "80", "-y", "24", "-s", &session])
            .args(["-e", "NO_COLOR=1", "sh", "-c", &shell])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "tmux starts a session");
        Pane { session }
    }

    fn screen(&self) -> String {
        self.capture(false)
    }

    /// The screen, with its colours as escape sequences when `escapes`.
    fn capture(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.session];
        if escapes {
            args.push("-e");
        }
        let out = Command::new("tmux")
            .args(&args)
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the pane until `done` holds for its screen (at most 3 minutes).
    fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        for _ in 0..1800 {
            let s = self.screen();
            if done(&s) {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the pane never showed {what}:\n{}", self.screen());
    }

    fn keys(&self, keys: &str) {
        let _ = Command::new("tmux")
            .args(["send-keys", "-t", &self.session, keys])
            .status();
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

fn lines(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn a_tty_build_ends_with_its_summary_and_wraps_nothing() {
    if !have_tmux() {
        eprintln!("skipped: no tmux");
        return;
    }
    let h = Habitat::new("tty");
    let long = "z".repeat(150);
    h.config(&SPARSE.replace(
        "echo built > /setup-marker",
        &format!("echo {long}; echo built > /setup-marker"),
    ));
    let pane = Pane::start(&h, "build . --progress tty");
    let screen = pane.until("the exit status", |s| s.contains("[exit "));
    let shown = lines(&screen);
    assert!(screen.contains("[exit 0]"), "{screen}");
    let summary = shown[shown.len() - 3];
    assert!(summary.starts_with("done in "), "summary last:\n{screen}");
    assert!(!screen.contains("running"), "no live line left:\n{screen}");
    for l in &shown {
        assert!(l.chars().count() < WIDTH, "cut to the width: {l}");
    }
    assert_eq!(screen.matches("6-setup").count(), 1, "{screen}");
    // A second build changes nothing, and says so in one line.
    drop(pane);
    let pane = Pane::start(&h, "build . --progress tty");
    let screen = pane.until("the exit status", |s| s.contains("[exit "));
    assert!(
        screen.contains("nothing changed: all 10 phases cached"),
        "{screen}"
    );
    assert!(!screen.contains("1-base"), "{screen}");
}

#[test]
fn ctrl_c_leaves_no_frozen_spinner_or_duplicated_line() {
    if !have_tmux() {
        eprintln!("skipped: no tmux");
        return;
    }
    let h = Habitat::new("ttyint");
    h.config(&SPARSE.replace(
        "echo built > /setup-marker",
        "echo step one; sleep 60; echo slept > /setup-marker",
    ));
    let pane = Pane::start(&h, "build . --progress tty");
    pane.until("the step's output under the running phase", |s| {
        s.contains("running") && s.contains("│ step one")
    });
    pane.keys("C-c");
    let screen = pane.until("the exit status", |s| s.contains("[exit "));
    assert!(screen.contains("interrupted"), "{screen}");
    assert!(!screen.contains("running"), "{screen}");
    assert!(
        !screen.contains("step one"),
        "the live lines are erased:\n{screen}"
    );
    assert_eq!(screen.matches("1-base").count(), 1, "{screen}");
}

/// Colour on a terminal marks a failure and its `error:` label; `NO_COLOR`
/// turns it off there, and off a terminal (a pipe) there is none either way.
#[test]
fn colour_is_on_a_terminal_only_and_off_with_no_color() {
    if !have_tmux() {
        eprintln!("skipped: no tmux");
        return;
    }
    let h = Habitat::new("ttycolour");
    h.config(&SPARSE.replace("echo built > /setup-marker", "echo about to fail; exit 3"));
    let coloured = {
        let pane = Pane::start_with(&h, "build . --progress tty", "-u NO_COLOR");
        pane.until("the exit status", |s| s.contains("[exit "));
        pane.capture(true)
    };
    assert!(coloured.contains("[exit 1]"), "{coloured}");
    assert!(
        coloured.contains("\x1b["),
        "colour on a terminal:\n{coloured:?}"
    );
    let failed_line = coloured
        .lines()
        .find(|l| l.contains("failed"))
        .unwrap_or_default();
    assert!(
        failed_line.contains("\x1b["),
        "the failure is coloured: {failed_line:?}"
    );
    // tmux opens a colour where the previous cell's ends; the reset right
    // after the label shows the label alone was coloured.
    assert!(
        coloured.contains("error:\x1b["),
        "the `error:` label is coloured:\n{coloured:?}"
    );

    let plain = {
        let pane = Pane::start(&h, "build . --progress tty");
        pane.until("the exit status", |s| s.contains("[exit "));
        pane.capture(true)
    };
    assert!(
        plain.contains("[exit 1]") && plain.contains("error:"),
        "{plain}"
    );
    assert!(!plain.contains("\x1b["), "NO_COLOR:\n{plain:?}");

    // Off a terminal, NO_COLOR unset: no colour.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(["build", ".", "--progress", "plain"])
        .current_dir(h.dir())
        .env("KILN_CACHE_DIR", h.cache())
        .env_remove("NO_COLOR");
    let out = cmd.output().expect("kiln runs");
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("error:"), "{text}");
    assert!(!text.contains('\x1b'), "no colour into a pipe: {text:?}");
}
