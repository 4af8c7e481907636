//! The init's decisions, as a pure state machine: given the services, what has
//! happened (an [`Event`]) and the time, what to do next (an [`Action`]).
//!
//! No process, clock or file is touched here, so boot order, readiness,
//! restarts with backoff and budget, the shutdown order and every grace timer
//! are table-tested without running anything; `main.rs` is the thin shell that
//! carries the actions out and turns what it sees into events.

use std::fmt;

use crate::spec::{self, Restart, Service, Spec};

/// Milliseconds since the init started (a monotonic clock, read by the shell).
pub type Ms = u64;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// The shell's convention: a signal's death is 128 + its number.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit code {code}"),
            Exit::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// A process the init signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Service(usize),
    Main,
}

/// What the shell saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Nothing happened but time passed (the shell woke at [`Supervisor::deadline`]).
    Tick,
    /// A service's process ended.
    Exited {
        service: usize,
        status: Exit,
    },
    /// A oneshot asked to start found its `creates` path: done without running.
    Skipped(usize),
    /// A process could not be started at all.
    SpawnFailed {
        target: Target,
        error: String,
    },
    ProbePassed(usize),
    ProbeFailed(usize),
    MainExited(Exit),
    /// SIGTERM or SIGINT reached the init.
    Signal(i32),
    /// The init has no child process left (waitpid said ECHILD).
    NoChildren,
}

/// What the shell is to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the service (for a oneshot with `creates`, answer `Skipped` if the path exists).
    Start(usize),
    StartMain,
    /// Run one attempt of the service's probe and answer `ProbePassed` or `ProbeFailed`.
    Probe(usize),
    Signal {
        target: Target,
        signal: i32,
    },
    /// Signal every remaining child process (adopted orphans included).
    SignalOrphans(i32),
    /// Say what went wrong, with the service's last lines of output.
    Report(Failure),
    Note(Note),
    Exit(i32),
}

/// A reason the container stops with exit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    OneshotFailed {
        service: String,
        status: Exit,
    },
    ProbeTimeout {
        service: String,
        probe: String,
        timeout_ms: Ms,
    },
    /// A long-running service ended with a failure its policy does not restart.
    ServiceFailed {
        service: String,
        status: Exit,
    },
    RestartBudget {
        service: String,
        restarts: u32,
        status: Exit,
    },
    SpawnFailed {
        service: String,
        error: String,
    },
}

impl Failure {
    /// The service whose output goes with the report (`main` for the main process).
    pub fn service(&self) -> &str {
        match self {
            Failure::OneshotFailed { service, .. }
            | Failure::ProbeTimeout { service, .. }
            | Failure::ServiceFailed { service, .. }
            | Failure::RestartBudget { service, .. }
            | Failure::SpawnFailed { service, .. } => service,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::OneshotFailed { service, status } => {
                write!(f, "oneshot `{service}` failed with {status}")
            }
            Failure::ProbeTimeout {
                service,
                probe,
                timeout_ms,
            } => write!(
                f,
                "service `{service}` was not ready within {}: its probe ({probe}) never passed",
                duration(*timeout_ms)
            ),
            Failure::ServiceFailed { service, status } => write!(
                f,
                "service `{service}` exited with {status} and its restart policy does not restart it"
            ),
            Failure::RestartBudget {
                service,
                restarts,
                status,
            } => write!(
                f,
                "service `{service}` exited with {status} after {restarts} restarts within {}: \
                 its restart budget is spent",
                duration(spec::RESTART_WINDOW_MS)
            ),
            Failure::SpawnFailed { service, error } => {
                write!(f, "cannot start `{service}`: {error}")
            }
        }
    }
}

/// Progress worth a line on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    Ready(String),
    Skipped(String),
    Done(String),
    Restarting {
        service: String,
        status: Exit,
        in_ms: Ms,
    },
    Stopping(String),
    Killing(String),
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::Ready(s) => write!(f, "`{s}` is ready"),
            Note::Skipped(s) => write!(f, "`{s}` skipped: what it creates exists"),
            Note::Done(s) => write!(f, "`{s}` done"),
            Note::Restarting {
                service,
                status,
                in_ms,
            } => write!(
                f,
                "`{service}` exited with {status}; restarting in {}",
                duration(*in_ms)
            ),
            Note::Stopping(s) => write!(f, "stopping `{s}`"),
            Note::Killing(s) => write!(f, "`{s}` outlived its grace; killing it"),
        }
    }
}

/// `1500` → `1.5s`, `60000` → `60s`, `250` → `250ms`.
pub fn duration(ms: Ms) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", ms as f64 / 1000.0)
    }
}

/// The first restart waits this long; each further one within the window twice as long.
pub const BACKOFF_BASE_MS: Ms = 100;
/// The longest wait before a restart.
pub const BACKOFF_MAX_MS: Ms = 10_000;

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Not started: something in `after` is not ready yet.
    Waiting,
    Running {
        ready: bool,
        /// When the probe must have passed by.
        deadline: Ms,
        next_probe: Ms,
        probing: bool,
    },
    /// A oneshot that succeeded or was skipped, or a service that ended as its policy allows.
    Done,
    Backoff {
        until: Ms,
        /// Whether it was ready before it exited: only then does it count
        /// as started for what comes after it while it waits.
        was_ready: bool,
    },
    /// Its stop signal was sent; SIGKILL at `kill_at` (once: `killed`).
    Stopping {
        kill_at: Ms,
        killed: bool,
    },
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MainState {
    Absent,
    NotStarted,
    Running,
    Stopping {
        kill_at: Ms,
        killed: bool,
        signal: i32,
    },
    Exited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Booting,
    /// Stopping the main process, then the services one by one.
    Stopping,
    /// SIGTERM sent to what is left; SIGKILL at `kill_at`.
    Orphans {
        kill_at: Ms,
        killed: bool,
    },
    Finished,
}

/// The services' states and the shutdown's progress.
#[derive(Debug, Clone)]
pub struct Supervisor {
    services: Vec<Service>,
    deps: Vec<Vec<usize>>,
    states: Vec<State>,
    /// Recent restart times per service, for the budget.
    restarts: Vec<Vec<Ms>>,
    /// The order services were first started in; they stop in reverse.
    started: Vec<usize>,
    main: MainState,
    stage: Stage,
    main_grace: Ms,
    failed: bool,
    code: i32,
}

impl Supervisor {
    /// `has_main`: whether a main process was given (the image's command).
    pub fn new(spec: Spec, has_main: bool) -> Result<Self, spec::OrderError> {
        spec::boot_order(&spec.services)?;
        let main_grace = spec.main.grace_ms;
        let services = spec.services;
        let index = |name: &str| services.iter().position(|s| s.name == name);
        let deps = services
            .iter()
            .map(|s| s.after.iter().filter_map(|a| index(a)).collect())
            .collect();
        let n = services.len();
        Ok(Supervisor {
            services,
            deps,
            states: vec![State::Waiting; n],
            restarts: vec![Vec::new(); n],
            started: Vec::new(),
            main: if has_main {
                MainState::NotStarted
            } else {
                MainState::Absent
            },
            stage: Stage::Booting,
            main_grace,
            failed: false,
            code: 0,
        })
    }

    /// The actions of the first moment: start everything with no `after`.
    pub fn start(&mut self, now: Ms) -> Vec<Action> {
        let mut out = Vec::new();
        self.start_ready(now, &mut out);
        out
    }

    pub fn service(&self, index: usize) -> &Service {
        &self.services[index]
    }

    /// Healthy while every long-running service is ready and nothing is stopping.
    pub fn healthy(&self) -> bool {
        self.stage == Stage::Booting
            && self.services.iter().zip(&self.states).all(|(s, st)| {
                s.oneshot || matches!(st, State::Running { ready: true, .. } | State::Done)
            })
    }

    /// One word per service, for the state file the healthcheck reads.
    pub fn status(&self) -> Vec<(&str, &'static str)> {
        self.services
            .iter()
            .zip(&self.states)
            .map(|(s, st)| {
                let word = match st {
                    State::Waiting => "waiting",
                    State::Running { ready: true, .. } => "ready",
                    State::Running { .. } => "starting",
                    State::Done => "done",
                    State::Backoff { .. } => "restarting",
                    State::Stopping { .. } => "stopping",
                    State::Stopped => "stopped",
                };
                (s.name.as_str(), word)
            })
            .collect()
    }

    /// The next moment something is due (the shell sends `Tick` then), if any.
    pub fn deadline(&self) -> Option<Ms> {
        let services = self
            .states
            .iter()
            .zip(&self.services)
            .filter_map(|(st, s)| match st {
                State::Running {
                    ready: false,
                    deadline,
                    next_probe,
                    probing,
                } if s.ready.is_some() => Some(if *probing {
                    *deadline
                } else {
                    (*deadline).min(*next_probe)
                }),
                State::Backoff { until, .. } => Some(*until),
                State::Stopping {
                    kill_at,
                    killed: false,
                } => Some(*kill_at),
                _ => None,
            });
        let main = match self.main {
            MainState::Stopping {
                kill_at,
                killed: false,
                ..
            } => Some(kill_at),
            _ => None,
        };
        let orphans = match self.stage {
            Stage::Orphans {
                kill_at,
                killed: false,
            } => Some(kill_at),
            _ => None,
        };
        services.chain(main).chain(orphans).min()
    }

    pub fn finished(&self) -> bool {
        self.stage == Stage::Finished
    }

    /// Take in one event at `now`; return what to do.
    pub fn handle(&mut self, now: Ms, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stage == Stage::Finished {
            return out;
        }
        match event {
            Event::Tick => self.tick(now, &mut out),
            Event::Exited { service, status } => self.exited(now, service, status, &mut out),
            Event::Skipped(i) => {
                if matches!(self.states[i], State::Running { .. }) {
                    self.states[i] = State::Done;
                    out.push(Action::Note(Note::Skipped(self.services[i].name.clone())));
                }
            }
            Event::SpawnFailed { target, error } => {
                let service = match target {
                    Target::Service(i) => {
                        self.states[i] = State::Stopped;
                        self.services[i].name.clone()
                    }
                    Target::Main => {
                        self.main = MainState::Exited;
                        "main".to_string()
                    }
                };
                self.fail(Failure::SpawnFailed { service, error }, &mut out);
            }
            Event::ProbePassed(i) => {
                if let State::Running { ready, probing, .. } = &mut self.states[i]
                    && !*ready
                {
                    *ready = true;
                    *probing = false;
                    out.push(Action::Note(Note::Ready(self.services[i].name.clone())));
                }
            }
            Event::ProbeFailed(i) => {
                let interval = self.interval(i);
                if let State::Running {
                    probing,
                    next_probe,
                    ..
                } = &mut self.states[i]
                {
                    *probing = false;
                    *next_probe = now + interval;
                }
                self.tick(now, &mut out);
            }
            Event::MainExited(status) => {
                let stopping_signal = match self.main {
                    MainState::Stopping { signal, .. } => Some(signal),
                    _ => None,
                };
                self.main = MainState::Exited;
                if !self.failed {
                    // Killed by the signal the init forwarded is a clean stop.
                    self.code = match (status, stopping_signal) {
                        (Exit::Signal(s), Some(sent)) if s == sent || s == SIGKILL => 0,
                        _ => status.code(),
                    };
                }
                self.begin_shutdown(now, SIGTERM, &mut out);
            }
            Event::Signal(signal) => self.begin_shutdown(now, signal, &mut out),
            Event::NoChildren => {
                if let Stage::Orphans { .. } = self.stage {
                    self.stage = Stage::Finished;
                    out.push(Action::Exit(self.code));
                }
            }
        }
        if self.stage == Stage::Booting {
            self.start_ready(now, &mut out);
        } else {
            self.advance_shutdown(now, &mut out);
        }
        out
    }

    fn interval(&self, i: usize) -> Ms {
        self.services[i]
            .ready
            .as_ref()
            .map_or(spec::DEFAULT_INTERVAL_MS, |p| p.interval_ms)
    }

    fn satisfied(&self, i: usize) -> bool {
        match &self.states[i] {
            State::Done => true,
            State::Running { ready, .. } => *ready && !self.services[i].oneshot,
            // A ready service being restarted stays started for those after
            // it; one that never became ready has not started for them.
            State::Backoff { was_ready, .. } => *was_ready && !self.services[i].oneshot,
            _ => false,
        }
    }

    fn launch(&mut self, now: Ms, i: usize, out: &mut Vec<Action>) {
        let probe = self.services[i].ready.as_ref();
        self.states[i] = State::Running {
            ready: probe.is_none() && !self.services[i].oneshot,
            deadline: now + probe.map_or(0, |p| p.timeout_ms),
            next_probe: now,
            probing: false,
        };
        if !self.started.contains(&i) {
            self.started.push(i);
        }
        out.push(Action::Start(i));
    }

    fn start_ready(&mut self, now: Ms, out: &mut Vec<Action>) {
        // Starting one can make others ready at once (no probe), hence the loop.
        loop {
            let next = (0..self.services.len()).find(|&i| {
                self.states[i] == State::Waiting && self.deps[i].iter().all(|&d| self.satisfied(d))
            });
            match next {
                Some(i) => self.launch(now, i, out),
                None => break,
            }
        }
        self.tick_probes(now, out);
        if self.main == MainState::NotStarted && (0..self.services.len()).all(|i| self.satisfied(i))
        {
            self.main = MainState::Running;
            out.push(Action::StartMain);
        }
    }

    fn tick_probes(&mut self, now: Ms, out: &mut Vec<Action>) {
        for i in 0..self.services.len() {
            if let State::Running {
                ready: false,
                next_probe,
                probing,
                ..
            } = &mut self.states[i]
                && !*probing
                && *next_probe <= now
                && self.services[i].ready.is_some()
            {
                *probing = true;
                out.push(Action::Probe(i));
            }
        }
    }

    fn tick(&mut self, now: Ms, out: &mut Vec<Action>) {
        for i in 0..self.services.len() {
            match self.states[i] {
                State::Running {
                    ready: false,
                    deadline,
                    ..
                } if deadline <= now && self.stage == Stage::Booting => {
                    if let Some(probe) = &self.services[i].ready {
                        let failure = Failure::ProbeTimeout {
                            service: self.services[i].name.clone(),
                            probe: probe.check.to_string(),
                            timeout_ms: probe.timeout_ms,
                        };
                        self.fail(failure, out);
                    }
                }
                State::Backoff { until, .. } if until <= now && self.stage == Stage::Booting => {
                    self.launch(now, i, out);
                }
                State::Stopping {
                    kill_at,
                    killed: false,
                } if kill_at <= now => {
                    self.states[i] = State::Stopping {
                        kill_at,
                        killed: true,
                    };
                    out.push(Action::Note(Note::Killing(self.services[i].name.clone())));
                    out.push(Action::Signal {
                        target: Target::Service(i),
                        signal: SIGKILL,
                    });
                }
                _ => {}
            }
        }
        if self.stage == Stage::Booting {
            self.tick_probes(now, out);
        }
        if let MainState::Stopping {
            kill_at,
            killed: false,
            signal,
        } = self.main
            && kill_at <= now
        {
            self.main = MainState::Stopping {
                kill_at,
                killed: true,
                signal,
            };
            out.push(Action::Note(Note::Killing("main".to_string())));
            out.push(Action::Signal {
                target: Target::Main,
                signal: SIGKILL,
            });
        }
        if let Stage::Orphans {
            kill_at,
            killed: false,
        } = self.stage
            && kill_at <= now
        {
            self.stage = Stage::Orphans {
                kill_at,
                killed: true,
            };
            out.push(Action::SignalOrphans(SIGKILL));
        }
    }

    fn exited(&mut self, now: Ms, i: usize, status: Exit, out: &mut Vec<Action>) {
        let name = self.services[i].name.clone();
        let was_ready = match self.states[i] {
            State::Stopping { .. } => {
                self.states[i] = State::Stopped;
                return;
            }
            State::Running { ready, .. } => ready,
            // Not running: a stale event.
            _ => return,
        };
        if self.stage != Stage::Booting {
            self.states[i] = State::Stopped;
            return;
        }
        let service = &self.services[i];
        let restart = match service.restart {
            Restart::Always => true,
            Restart::OnFailure => !status.success(),
            Restart::No => false,
        };
        if !restart {
            self.states[i] = State::Done;
            if status.success() {
                out.push(Action::Note(Note::Done(name)));
            } else if service.oneshot {
                self.fail(
                    Failure::OneshotFailed {
                        service: name,
                        status,
                    },
                    out,
                );
            } else {
                self.fail(
                    Failure::ServiceFailed {
                        service: name,
                        status,
                    },
                    out,
                );
            }
            return;
        }
        let recent = &mut self.restarts[i];
        recent.retain(|&t| t + spec::RESTART_WINDOW_MS > now);
        if recent.len() as u32 >= service.max_restarts {
            self.states[i] = State::Done;
            let restarts = service.max_restarts;
            self.fail(
                Failure::RestartBudget {
                    service: name,
                    restarts,
                    status,
                },
                out,
            );
            return;
        }
        let wait = backoff(recent.len() as u32);
        recent.push(now);
        self.states[i] = State::Backoff {
            until: now + wait,
            was_ready,
        };
        out.push(Action::Note(Note::Restarting {
            service: name,
            status,
            in_ms: wait,
        }));
    }

    fn fail(&mut self, failure: Failure, out: &mut Vec<Action>) {
        if !self.failed {
            self.failed = true;
            self.code = 1;
            out.push(Action::Report(failure));
        }
        if self.stage == Stage::Booting {
            self.stage = Stage::Stopping;
        }
    }

    fn begin_shutdown(&mut self, now: Ms, signal: i32, out: &mut Vec<Action>) {
        if self.stage != Stage::Booting {
            return;
        }
        self.stage = Stage::Stopping;
        if self.main == MainState::Running {
            self.stop_main(now, signal, out);
        }
    }

    fn stop_main(&mut self, now: Ms, signal: i32, out: &mut Vec<Action>) {
        self.main = MainState::Stopping {
            kill_at: now + self.main_grace,
            killed: false,
            signal,
        };
        out.push(Action::Signal {
            target: Target::Main,
            signal,
        });
    }

    fn advance_shutdown(&mut self, now: Ms, out: &mut Vec<Action>) {
        if self.stage != Stage::Stopping {
            return;
        }
        match self.main {
            MainState::Running => {
                self.stop_main(now, SIGTERM, out);
                return;
            }
            MainState::Stopping { .. } => return,
            _ => {}
        }
        // Whatever has not started never will.
        for st in &mut self.states {
            if matches!(st, State::Waiting | State::Backoff { .. }) {
                *st = State::Stopped;
            }
        }
        // One at a time, the latest started first.
        if self
            .states
            .iter()
            .any(|st| matches!(st, State::Stopping { .. }))
        {
            return;
        }
        let next = self
            .started
            .iter()
            .rev()
            .copied()
            .find(|&i| matches!(self.states[i], State::Running { .. }));
        match next {
            Some(i) => {
                let stop = &self.services[i].stop;
                let signal = spec::signal_number(&stop.signal).unwrap_or(SIGTERM);
                self.states[i] = State::Stopping {
                    kill_at: now + stop.grace_ms,
                    killed: false,
                };
                out.push(Action::Note(Note::Stopping(self.services[i].name.clone())));
                out.push(Action::Signal {
                    target: Target::Service(i),
                    signal,
                });
            }
            None => {
                self.stage = Stage::Orphans {
                    kill_at: now + spec::ORPHAN_GRACE_MS,
                    killed: false,
                };
                out.push(Action::SignalOrphans(SIGTERM));
            }
        }
    }
}

/// The wait before the restart that follows `recent` restarts within the window.
pub fn backoff(recent: u32) -> Ms {
    BACKOFF_BASE_MS
        .saturating_mul(1 << recent.min(16))
        .min(BACKOFF_MAX_MS)
}
