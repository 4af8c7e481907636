//! The `kiln-init` binary with real processes (no engine): it is a subreaper
//! here, not PID 1, which exercises the same reaping and shutdown paths.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Run {
    dir: tempfile::TempDir,
}

impl Run {
    fn new() -> Self {
        Run {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, services: Value, main: &[&str]) -> Command {
        let spec = json!({ "version": 1, "services": services, "main": { "grace_ms": 2000 } });
        std::fs::write(self.path("services.json"), spec.to_string()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln-init"));
        cmd.env("KILN_INIT_SPEC", self.path("services.json"))
            .env("KILN_INIT_STATE", self.path("state.json"))
            .arg("--")
            .args(main)
            .current_dir(self.dir.path());
        cmd
    }

    fn output(&self, services: Value, main: &[&str]) -> (i32, String, String) {
        let Output {
            status,
            stdout,
            stderr,
        } = self.command(services, main).output().unwrap();
        (
            status.code().unwrap_or(-1),
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }

    fn spawn(&self, services: Value, main: &[&str]) -> Child {
        self.command(services, main)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn health(&self) -> i32 {
        Command::new(env!("CARGO_BIN_EXE_kiln-init"))
            .arg("health")
            .env("KILN_INIT_STATE", self.path("state.json"))
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
            .unwrap()
    }

    /// Waits (up to a generous bound, not a timing assertion) until `ok`.
    fn until(&self, what: &str, ok: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while !ok() {
            assert!(Instant::now() < end, "never: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn sh(script: &str) -> Value {
    json!(["/bin/sh", "-c", script])
}

fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pos(haystack: &str, needle: &str) -> usize {
    haystack
        .find(needle)
        .unwrap_or_else(|| panic!("no `{needle}` in:\n{haystack}"))
}

#[test]
fn services_start_in_order_after_readiness_then_main_whose_code_is_the_exit_code() {
    let run = Run::new();
    let ready = run.path("ready");
    let (code, out, err) = run.output(
        json!([
            { "name": "web", "after": ["db"], "command": sh("echo web up; exec sleep 30") },
            { "name": "db", "command": sh(&format!("echo db starting; sleep 0.3; touch {}; echo db listening; exec sleep 30", ready.display())),
              "ready": { "check": { "file": ready }, "interval_ms": 20 } },
            { "name": "migrate", "oneshot": true, "after": ["db"], "command": sh("echo migrated") }
        ]),
        &["/bin/sh", "-c", "echo main runs; exit 7"],
    );
    assert_eq!(code, 7, "{err}");
    assert!(
        pos(&out, "db | db listening") < pos(&out, "web | web up"),
        "{out}"
    );
    assert!(
        pos(&out, "migrate | migrated") < pos(&out, "main runs"),
        "{out}"
    );
    // The main process's lines are not prefixed.
    assert!(out.lines().any(|l| l == "main runs"), "{out}");
    assert!(
        pos(&err, "`db` is ready") < pos(&err, "stopping `web`"),
        "{err}"
    );
    assert!(
        pos(&err, "stopping `web`") < pos(&err, "stopping `db`"),
        "{err}"
    );
}

#[test]
fn a_oneshot_whose_creates_exists_is_skipped() {
    let run = Run::new();
    let marker = run.path("PG_VERSION");
    std::fs::write(&marker, "15").unwrap();
    let (code, out, err) = run.output(
        json!([{ "name": "initdb", "oneshot": true, "creates": marker, "command": sh("echo initialising") }]),
        &["true"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("initialising"), "{out}");
    assert!(err.contains("`initdb` skipped"), "{err}");
}

/// One stream here: the order of lines across stdout and stderr (two pipes) is
/// not kept, so the last 20 of both together is only as ordered as they arrive.
#[test]
fn a_failed_oneshot_stops_the_container_with_its_name_and_last_20_lines() {
    let run = Run::new();
    let (code, out, err) = run.output(
        json!([
            { "name": "db", "command": sh("exec sleep 30") },
            { "name": "migrate", "oneshot": true, "after": ["db"],
              "command": sh("for i in $(seq 1 25); do echo step $i; done; echo boom; exit 3") }
        ]),
        &["/bin/sh", "-c", "echo main never; exit 0"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(!out.contains("main never"));
    assert!(
        err.contains("oneshot `migrate` failed with exit code 3"),
        "{err}"
    );
    assert!(err.contains("  migrate | boom"), "{err}");
    assert!(err.contains("  migrate | step 25"), "{err}");
    assert!(err.contains("  migrate | step 7\n"), "{err}");
    assert!(!err.contains("  migrate | step 6\n"), "{err}");
}

#[test]
fn a_probe_that_times_out_is_reported_with_the_service_and_probe() {
    let run = Run::new();
    let (code, _, err) = run.output(
        json!([{ "name": "db", "command": sh("echo waiting for nothing; exec sleep 30"),
                 "ready": { "check": { "tcp": 1 }, "interval_ms": 50, "timeout_ms": 400 } }]),
        &["true"],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "service `db` was not ready within 400ms: its probe (tcp 127.0.0.1:1) never passed"
        ),
        "{err}"
    );
    assert!(err.contains("  db | waiting for nothing"), "{err}");
}

#[test]
fn restarts_stop_at_the_budget() {
    let run = Run::new();
    let (code, out, err) = run.output(
        json!([{ "name": "flaky", "restart": "on-failure", "max_restarts": 2, "command": sh("echo run; exit 4") }]),
        &["sleep", "30"],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(out.matches("flaky | run").count(), 3, "{out}");
    assert!(
        err.contains("service `flaky` exited with exit code 4 after 2 restarts"),
        "{err}"
    );
}

#[test]
fn orphans_a_service_leaks_are_reaped_not_left_as_zombies() {
    let run = Run::new();
    let pidfile = run.path("orphan.pid");
    let child = run.spawn(
        json!([{ "name": "leaky", "command": sh(&format!("(sleep 0.2 & echo $! > {}); exec sleep 30", pidfile.display())) }]),
        &["sleep", "30"],
    );
    run.until("the orphan wrote its pid", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    // Once it ends it must vanish: a zombie would keep /proc/PID.
    run.until("the orphan was reaped", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, _, err) = finish(child);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn sigterm_stops_main_then_services_in_reverse_order_with_their_signals_and_graces() {
    let run = Run::new();
    let child = run.spawn(
        json!([
            { "name": "db", "stop": { "signal": "SIGINT", "grace_ms": 5000 },
              "command": sh("trap 'echo db got INT; exit 0' INT; trap '' TERM; while :; do sleep 0.05; done") },
            { "name": "stubborn", "after": ["db"], "stop": { "signal": "SIGTERM", "grace_ms": 300 },
              "command": sh("trap 'echo stubborn ignores TERM' TERM; while :; do sleep 0.05; done") },
            { "name": "orphaner", "after": ["stubborn"],
              "command": sh(&format!("setsid sh -c 'trap \"\" TERM; echo $$ > {}; exec sleep 300' & exec sleep 30", run.path("o.pid").display())) }
        ]),
        &["/bin/sh", "-c", "trap 'echo main got TERM; exit 0' TERM; while :; do sleep 0.05; done"],
    );
    run.until("healthy", || run.health() == 0);
    run.until("the orphan started", || {
        std::fs::read_to_string(run.path("o.pid")).is_ok_and(|s| s.ends_with('\n'))
    });
    let orphan = std::fs::read_to_string(run.path("o.pid"))
        .unwrap()
        .trim()
        .to_string();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let (code, out, err) = finish(child);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        pos(&out, "main got TERM") < pos(&out, "stubborn | stubborn ignores TERM"),
        "{out}"
    );
    assert!(
        pos(&out, "stubborn | stubborn ignores TERM") < pos(&out, "db | db got INT"),
        "{out}"
    );
    assert!(
        err.contains("`stubborn` outlived its grace; killing it"),
        "{err}"
    );
    assert!(!err.contains("`db` outlived"), "{err}");
    // The orphan ignored SIGTERM and was killed, and reaped, before the init exited.
    assert!(
        !Path::new(&format!("/proc/{orphan}")).exists(),
        "orphan {orphan} survived"
    );
}

#[test]
fn without_a_command_the_init_runs_until_stopped_and_health_follows_readiness() {
    let run = Run::new();
    let gate = run.path("gate");
    let child = run.spawn(
        json!([{ "name": "svc", "command": sh("exec sleep 30"),
                 "ready": { "check": { "file": gate }, "interval_ms": 20 } }]),
        &[],
    );
    run.until("a state file", || run.path("state.json").exists());
    assert_eq!(run.health(), 1);
    std::fs::write(&gate, "").unwrap();
    run.until("healthy", || run.health() == 0);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (code, _, err) = finish(child);
    assert_eq!(code, 0, "{err}");
}
