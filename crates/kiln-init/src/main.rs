//! `kiln-init`: PID 1 of an image with `services:` (SPEC §9), or a subreaper
//! when it is not PID 1. The thin shell around [`kiln_init::supervise`]: it
//! runs the processes and probes the state machine asks for, reaps every
//! child, turns signals and exits into events, and writes the state file that
//! `kiln-init health` (the image's healthcheck) reads.
//!
//! Usage: `kiln-init [-- CMD...]` (CMD is the main process), `kiln-init health`.

mod shell;

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kiln_init::spec::{self, Spec};
use kiln_init::supervise::{Action, Event, Exit, Supervisor, Target};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use shell::{Children, Kind};

/// Where the spec is read from (`KILN_INIT_SPEC` overrides, for tests).
fn spec_path() -> PathBuf {
    std::env::var_os("KILN_INIT_SPEC").map_or_else(|| PathBuf::from(spec::SPEC_PATH), PathBuf::from)
}

/// Where the state for the healthcheck is written (`KILN_INIT_STATE` overrides).
fn state_path() -> PathBuf {
    std::env::var_os("KILN_INIT_STATE")
        .map_or_else(|| PathBuf::from("/run/kiln/init-state.json"), PathBuf::from)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("health") => shell::health(&state_path()),
        Some("--") => run(args[1..].to_vec()),
        Some(other) if other.starts_with('-') => {
            shell::say(&format!(
                "error: unknown option `{other}`\nusage: kiln-init [-- CMD...] | kiln-init health"
            ));
            2
        }
        _ => run(args),
    };
    std::process::exit(code);
}

const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

fn run(main_cmd: Vec<String>) -> i32 {
    let clock = Instant::now();
    let now = || clock.elapsed().as_millis() as u64;
    if std::process::id() != 1 {
        // Orphans of the services are reparented here, so they are reaped and stopped.
        if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
            shell::say(&format!("warning: cannot become a subreaper: {err}"));
        }
    }
    // Handlers, not a blocked mask: std's fork path does not clear the mask in
    // a child, and a handler is reset by exec, so services start with default
    // dispositions. Each handler sets its flag and writes to the wake-up pipe.
    let (wake, wake_writer) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(err) => {
            shell::say(&format!("error: cannot make a pipe: {err}"));
            return 1;
        }
    };
    let _ = wake.set_nonblocking(true);
    let mut flags = Vec::new();
    for signal in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT]
        .iter()
        .chain(FORWARDED)
    {
        let flag = Arc::new(AtomicBool::new(false));
        let registered = signal_hook::flag::register(*signal as i32, flag.clone()).and_then(|_| {
            signal_hook::low_level::pipe::register(*signal as i32, wake_writer.try_clone()?)
        });
        if let Err(err) = registered {
            shell::say(&format!("error: cannot handle {signal}: {err}"));
            return 1;
        }
        flags.push((*signal, flag));
    }
    let spec = match shell::load_spec(&spec_path()) {
        Ok(spec) => spec,
        Err(message) => {
            shell::say(&format!("error: {message}"));
            return 2;
        }
    };
    let main_user = spec.main.user.clone();
    let mut supervisor = match Supervisor::new(spec.clone(), !main_cmd.is_empty()) {
        Ok(s) => s,
        Err(err) => {
            shell::say(&format!("error: {err}"));
            return 2;
        }
    };
    let spec: Spec = spec;
    let mut children = Children::new(&spec);
    let state = state_path();
    let mut last_state = String::new();
    let mut events: Vec<Event> = Vec::new();
    let mut actions = supervisor.start(now());
    loop {
        for action in std::mem::take(&mut actions) {
            match action {
                Action::Start(i) => {
                    if let Some(event) = children.start(i) {
                        events.push(event);
                    }
                }
                Action::StartMain => {
                    if let Err(error) = children.start_main(&main_cmd, main_user.as_deref()) {
                        events.push(Event::SpawnFailed {
                            target: Target::Main,
                            error,
                        });
                    }
                }
                Action::Probe(i) => {
                    if let Some(event) = children.probe(i) {
                        events.push(event);
                    }
                }
                Action::Signal { target, signal } => children.signal(target, signal),
                Action::SignalOrphans(signal) => children.signal_all(signal),
                Action::Report(failure) => children.report(&failure),
                Action::Note(note) => shell::say(&note.to_string()),
                Action::Exit(code) => {
                    children.flush_output();
                    shell::write_state(&state, &supervisor, &mut last_state);
                    return code;
                }
            }
        }
        shell::write_state(&state, &supervisor, &mut last_state);
        if events.is_empty() {
            let timeout = match supervisor.deadline() {
                Some(at) => PollTimeout::try_from(at.saturating_sub(now()).min(60_000) as i32)
                    .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            let mut fds = [PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(err) => {
                    shell::say(&format!("error: poll: {err}"));
                    return 1;
                }
            }
            let mut drain = [0u8; 64];
            while matches!((&wake).read(&mut drain), Ok(n) if n > 0) {}
            for (signal, flag) in &flags {
                if !flag.swap(false, Ordering::SeqCst) {
                    continue;
                }
                match signal {
                    Signal::SIGCHLD => {}
                    Signal::SIGTERM | Signal::SIGINT => events.push(Event::Signal(*signal as i32)),
                    other => children.signal(Target::Main, *other as i32),
                }
            }
            reap(&mut children, &mut events);
        }
        events.push(Event::Tick);
        for event in std::mem::take(&mut events) {
            actions.extend(supervisor.handle(now(), event));
        }
    }
}

/// Reap every child that has ended; tell the supervisor about the ones it knows.
fn reap(children: &mut Children, events: &mut Vec<Event>) {
    loop {
        let (pid, status) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, Exit::Signal(signal as i32)),
            Ok(WaitStatus::StillAlive) => return,
            Ok(_) => continue,
            Err(Errno::ECHILD) => {
                events.push(Event::NoChildren);
                return;
            }
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        match children.ended(pid.as_raw()) {
            Some(Kind::Service(service)) => events.push(Event::Exited { service, status }),
            Some(Kind::Main) => events.push(Event::MainExited(status)),
            Some(Kind::Probe(service)) => events.push(if status.success() {
                Event::ProbePassed(service)
            } else {
                Event::ProbeFailed(service)
            }),
            None => {} // an adopted orphan: reaped, nothing more
        }
    }
}
