//! The live tty rendering of a build (SPEC §8). Finished lines are written
//! once and scroll up; below them the running phase (state and elapsed time)
//! and the last lines of its output are redrawn in place, as BuildKit shows
//! them. Every line is cut to the terminal's width, so nothing wraps and the
//! redraw always erases what it drew. A base habitat's build is a group under
//! its name; the summary line is the last line written.
//!
//! [`Screen`] is the whole renderer over any `Write` and an explicit clock,
//! so tests draw it into a fake terminal; [`TtyReporter`] puts it on stderr
//! with a ticker that keeps the elapsed time moving.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use kiln_core::Phase;
use kiln_core::report::{Event, PhaseStatus, Reporter};

use super::log_line;

/// Lines of the running step's output kept visible under it.
pub const TAIL: usize = 5;
const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Whether to colour stderr: a terminal, and `NO_COLOR` unset or empty.
pub fn colour_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// One habitat being built: the outermost is the one asked for, the others
/// its bases, each drawn as a group under its name.
struct Group {
    /// Cached phases not shown yet: a run of them is one line.
    cached: Vec<Phase>,
    /// Phases within the snapshot being pulled: one line with it.
    within: Vec<Phase>,
    built: usize,
}

struct Running {
    phase: Phase,
    started: Instant,
    tail: VecDeque<String>,
    /// A snapshot being pulled instead of the phase running: its live counts.
    pull: Option<super::pull::Live>,
}

/// The renderer: state from the events, bytes to `out`.
pub struct Screen<W: Write> {
    out: W,
    width: usize,
    colour: bool,
    groups: Vec<Group>,
    running: Option<Running>,
    /// Live lines on the screen now, below the finished ones.
    drawn: usize,
    /// The build ended: nothing is live any more.
    done: bool,
    /// A push under way: its live line.
    push: Option<super::push::Live>,
    /// When the push began, for the spinner.
    push_started: Option<Instant>,
    /// A pull outside a build (`kiln up --image`): its live line and start.
    pull: Option<(super::pull::Live, Instant)>,
    /// What the last pull brought (`3 layers, 12.4 MB`), for the pulled
    /// phase's finished line.
    pulled: Option<String>,
}

impl<W: Write> Screen<W> {
    pub fn new(out: W, width: usize, colour: bool) -> Screen<W> {
        Screen {
            out,
            width: width.max(20),
            colour,
            groups: Vec::new(),
            running: None,
            drawn: 0,
            done: false,
            push: None,
            push_started: None,
            pull: None,
            pulled: None,
        }
    }

    pub fn set_width(&mut self, width: usize) {
        self.width = width.max(20);
    }

    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }

    fn paint(&self, style: Style, text: &str) -> String {
        if self.colour {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    fn green(&self, t: &str) -> String {
        self.paint(AnsiColor::Green.on_default(), t)
    }

    fn red(&self, t: &str) -> String {
        self.paint(AnsiColor::Red.on_default().bold(), t)
    }

    fn dim(&self, t: &str) -> String {
        self.paint(Style::new().dimmed(), t)
    }

    fn yellow(&self, t: &str) -> String {
        self.paint(AnsiColor::Yellow.on_default(), t)
    }

    /// Indentation of lines inside the innermost group.
    fn indent(&self) -> String {
        "  ".repeat(self.groups.len().saturating_sub(1))
    }

    /// A line cut to the width, one column short of it so the terminal's
    /// pending wrap never moves the cursor; `styled` paints the cut text.
    fn fit(&self, plain: &str, styled: impl Fn(&str) -> String) -> String {
        let max = self.width - 1;
        if plain.chars().count() <= max {
            return styled(plain);
        }
        let cut: String = plain.chars().take(max - 1).collect();
        styled(&format!("{cut}…"))
    }

    /// The finished line of a run of cached phases.
    fn cached_line(&self, group: &Group, indent: &str) -> Option<String> {
        let (first, last) = (group.cached.first()?, group.cached.last()?);
        let phases = if first == last {
            first.tag().to_string()
        } else {
            format!("{} … {}", first.tag(), last.tag())
        };
        let plain = format!("{indent}✔ {phases:<10} cached");
        Some(self.fit(&plain, |s| self.dim(s)))
    }

    fn flush_cached(&mut self, lines: &mut Vec<String>) {
        if let Some(g) = self.groups.last() {
            lines.extend(self.cached_line(g, &self.indent()));
        }
        if let Some(g) = self.groups.last_mut() {
            g.cached.clear();
        }
    }

    /// Takes one event at `now`: finished lines are written, the live ones redrawn.
    pub fn event(&mut self, event: &Event, now: Instant) {
        let mut lines = Vec::new();
        match event {
            Event::BuildStart { habitat } => {
                self.flush_cached(&mut lines);
                let header = if self.groups.is_empty() {
                    format!("building habitat `{habitat}`")
                } else {
                    format!("{}base habitat `{habitat}`", self.indent())
                };
                lines.push(self.fit(&header, |s| self.paint(Style::new().bold(), s)));
                self.groups.push(Group {
                    cached: Vec::new(),
                    within: Vec::new(),
                    built: 0,
                });
            }
            Event::Waiting { habitat, holder } => {
                let l = format!(
                    "{}waiting: another build of `{habitat}` is running ({holder})",
                    self.indent()
                );
                lines.push(self.fit(&l, |s| self.yellow(s)));
            }
            // The group header says it.
            Event::Note { message } if message.starts_with("building base habitat") => {}
            Event::Note { message } => {
                let l = format!("{}note: {message}", self.indent());
                lines.push(self.fit(&l, |s| self.dim(s)));
            }
            Event::Pruned {
                habitat,
                removed,
                freed,
            } => {
                let l = format!(
                    "{}{}",
                    self.indent(),
                    super::pruned(habitat, removed, *freed)
                );
                lines.push(self.fit(&l, |s| self.dim(s)));
            }
            // Live like a running phase, until its end says `pulled`.
            Event::Pulling { phase, .. } => {
                self.flush_cached(&mut lines);
                self.pulled = None;
                self.running = Some(Running {
                    phase: *phase,
                    started: now,
                    tail: VecDeque::new(),
                    pull: Some(super::pull::Live::new(&phase.tag())),
                });
            }
            Event::PhaseStart { phase } => {
                self.flush_cached(&mut lines);
                self.running = Some(Running {
                    phase: *phase,
                    started: now,
                    tail: VecDeque::new(),
                    pull: None,
                });
            }
            Event::PhaseLog { phase, line, .. } => {
                if let (Some(r), Some(l)) = (self.running.as_mut(), log_line::clean(line))
                    && r.phase == *phase
                {
                    if r.tail.len() == TAIL {
                        r.tail.pop_front();
                    }
                    r.tail.push_back(l);
                }
            }
            Event::PhaseEnd {
                phase,
                status,
                duration,
                reason,
                image,
                ..
            } => {
                if self.running.as_ref().is_some_and(|r| r.phase == *phase) {
                    self.running = None;
                }
                let indent = self.indent();
                match status {
                    PhaseStatus::Cached => {
                        if let Some(g) = self.groups.last_mut() {
                            g.cached.push(*phase);
                        }
                    }
                    PhaseStatus::Built => {
                        if let Some(g) = self.groups.last_mut() {
                            g.built += 1;
                        }
                        let why = super::because(reason);
                        let head = format!("{indent}✔ {:<10} ", phase.tag());
                        let rest = format!("built  {:>6}  {why}", secs(*duration));
                        lines.push(self.fit(&format!("{head}{rest}"), |s| {
                            match (s.get(..head.len()), s.get(head.len()..)) {
                                (Some(h), Some(r)) => format!("{}{r}", self.green(h)),
                                _ => self.green(s),
                            }
                        }));
                    }
                    PhaseStatus::Pulled if !image.is_empty() => {
                        self.flush_cached(&mut lines);
                        let mut phases = self
                            .groups
                            .last_mut()
                            .map(|g| {
                                g.built += 1;
                                std::mem::take(&mut g.within)
                            })
                            .unwrap_or_default();
                        phases.push(*phase);
                        let tags = match (phases.first(), phases.len()) {
                            (Some(first), n) if n > 1 => {
                                format!("{} … {}", first.tag(), phase.tag())
                            }
                            _ => phase.tag().to_string(),
                        };
                        let brought = self
                            .pulled
                            .take()
                            .map(|b| format!("  {b}"))
                            .unwrap_or_default();
                        let l = format!(
                            "{indent}✔ {tags:<10} pulled {:>6}{brought}",
                            secs(*duration)
                        );
                        lines.push(self.fit(&l, |s| self.green(s)));
                    }
                    PhaseStatus::Pulled => {
                        if let Some(g) = self.groups.last_mut() {
                            g.within.push(*phase);
                        }
                    }
                    PhaseStatus::Failed => {
                        self.flush_cached(&mut lines);
                        let l = format!(
                            "{indent}✘ {:<10} failed {:>6}",
                            phase.tag(),
                            secs(*duration)
                        );
                        lines.push(self.fit(&l, |s| self.red(s)));
                    }
                }
            }
            // A step of the running phase (SPEC §5): one dim line each,
            // above the phase's live line.
            Event::StepEnd {
                step,
                name,
                status,
                duration,
                ..
            } => {
                let l = match status {
                    // A step is never pulled on its own: its phase is.
                    PhaseStatus::Cached | PhaseStatus::Pulled => {
                        format!("{}  · {step:<12} cached {name}", self.indent())
                    }
                    PhaseStatus::Built => format!(
                        "{}  · {step:<12} built {:>6}  {name}",
                        self.indent(),
                        secs(*duration)
                    ),
                    PhaseStatus::Failed => format!(
                        "{}  ✘ {step:<12} failed {:>6}  {name}",
                        self.indent(),
                        secs(*duration)
                    ),
                };
                if *status == PhaseStatus::Failed {
                    lines.push(self.fit(&l, |s| self.red(s)));
                } else {
                    lines.push(self.fit(&l, |s| self.dim(s)));
                }
            }
            Event::BuildEnd {
                ok,
                duration,
                image,
            } => {
                let group = self.groups.pop();
                if let Some(g) = &group {
                    if *ok && g.built == 0 && g.cached.len() == Phase::ALL.len() {
                        let l = format!(
                            "{}✔ nothing changed: all {} phases cached",
                            "  ".repeat(self.groups.len()),
                            g.cached.len()
                        );
                        lines.push(self.fit(&l, |s| self.dim(s)));
                    } else {
                        let indent = "  ".repeat(self.groups.len());
                        lines.extend(self.cached_line(g, &indent));
                    }
                }
                let image = image.as_deref().unwrap_or("?");
                if self.groups.is_empty() {
                    self.running = None;
                    self.done = true;
                    let l = if *ok {
                        format!("done in {} -> {image}", secs(*duration))
                    } else {
                        format!("build failed after {}", secs(*duration))
                    };
                    lines.push(self.fit(&l, |s| {
                        if *ok {
                            self.paint(AnsiColor::Green.on_default().bold(), s)
                        } else {
                            self.red(s)
                        }
                    }));
                } else if *ok {
                    let l = format!(
                        "{}ready in {} -> {image}",
                        "  ".repeat(self.groups.len()),
                        secs(*duration)
                    );
                    lines.push(self.fit(&l, |s| self.dim(s)));
                }
            }
            Event::PushStart { images, .. } => {
                // A push follows its build: the screen is live again.
                self.done = false;
                let mut live = super::push::Live::new(images.len());
                lines.extend(live.event(event).map(|l| self.fit(&l, |s| s.to_string())));
                self.push = Some(live);
                self.push_started = Some(now);
            }
            Event::PushBlob { .. } | Event::PushImage { .. } => {
                let line = self.push.as_mut().and_then(|live| live.event(event));
                lines.extend(line.map(|l| self.fit(&l, |s| self.green(s))));
            }
            Event::PullStart { image, .. } => {
                // A pull outside a build: the screen is live again.
                self.done = false;
                lines.extend(super::pull::plain(event).map(|l| self.fit(&l, |s| s.to_string())));
                self.pull = Some((super::pull::Live::new(image), now));
            }
            Event::PullLayer { .. } => {
                if let Some(live) = self.running.as_mut().and_then(|r| r.pull.as_mut()) {
                    live.event(event);
                }
                if let Some((live, _)) = self.pull.as_mut() {
                    live.event(event);
                }
            }
            Event::PullEnd { ok, .. } => {
                if self.pull.take().is_some() {
                    self.done = true;
                    let line = super::pull::plain(event)
                        .map(|l| self.fit(&l, |s| if *ok { self.green(s) } else { self.red(s) }));
                    lines.extend(line);
                } else {
                    // The pulled phase's end says it, with these counts; a
                    // failed pull is told in a note, and the build goes on.
                    self.pulled = super::pull::summary(event);
                    if !ok && self.running.as_ref().is_some_and(|r| r.pull.is_some()) {
                        self.running = None;
                    }
                }
            }
            Event::PushEnd { ok, .. } => {
                let line = self.push.take().and_then(|mut live| live.event(event));
                self.push_started = None;
                self.done = true;
                lines.extend(line.map(|l| {
                    self.fit(&l, |s| {
                        if *ok {
                            self.paint(AnsiColor::Green.on_default().bold(), s)
                        } else {
                            self.red(s)
                        }
                    })
                }));
            }
        }
        self.draw(&lines, now);
    }

    /// Redraws the live lines (the clock moved).
    pub fn tick(&mut self, now: Instant) {
        if !self.done && (self.running.is_some() || self.push.is_some() || self.pull.is_some()) {
            self.draw(&[], now);
        }
    }

    /// Erases the live lines: the build was interrupted, or is over.
    pub fn clear(&mut self) {
        self.done = true;
        self.running = None;
        self.push = None;
        self.pull = None;
        self.draw(&[], Instant::now());
    }

    fn live(&self, now: Instant) -> Vec<String> {
        if let (Some(push), Some(started), false) = (&self.push, self.push_started, self.done) {
            let elapsed = now.saturating_duration_since(started);
            let spin = SPINNER[(elapsed.as_millis() / 100) as usize % SPINNER.len()];
            let head = format!("{spin} {} {:>6}", push.line(), secs(elapsed));
            return vec![self.fit(&head, |s| self.yellow(s))];
        }
        if let (Some((pull, started)), false) = (&self.pull, self.done) {
            let elapsed = now.saturating_duration_since(*started);
            let spin = SPINNER[(elapsed.as_millis() / 100) as usize % SPINNER.len()];
            let head = format!("{spin} {} {:>6}", pull.line(), secs(elapsed));
            return vec![self.fit(&head, |s| self.yellow(s))];
        }
        let Some(r) = self.running.as_ref().filter(|_| !self.done) else {
            return Vec::new();
        };
        let indent = self.indent();
        let elapsed = now.saturating_duration_since(r.started);
        let spin = SPINNER[(elapsed.as_millis() / 100) as usize % SPINNER.len()];
        let head = match &r.pull {
            Some(pull) => format!("{indent}{spin} {} {:>6}", pull.line(), secs(elapsed)),
            None => format!(
                "{indent}{spin} {:<10} running {:>6}",
                r.phase.tag(),
                secs(elapsed)
            ),
        };
        let mut lines = vec![self.fit(&head, |s| self.yellow(s))];
        for l in &r.tail {
            lines.push(self.fit(&format!("{indent}  │ {l}"), |s| self.dim(s)));
        }
        lines
    }

    fn draw(&mut self, finished: &[String], now: Instant) {
        let live = self.live(now);
        let mut buf = String::new();
        if self.drawn > 0 {
            // To the start of the first live line, then erase to the end.
            buf.push_str(&format!("\x1b[{}F\x1b[J", self.drawn));
        }
        for l in finished.iter().chain(&live) {
            buf.push_str(l);
            buf.push('\n');
        }
        self.drawn = live.len();
        // A terminal that went away ends the output quietly.
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
    }
}

/// The tty renderer on stderr, with a ticker thread redrawing the elapsed
/// time; dropping it (the build ended or was interrupted) stops the ticker
/// and erases the live lines, so no spinner is left frozen on the screen.
pub struct TtyReporter {
    screen: Arc<Mutex<Screen<std::io::Stderr>>>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

/// The terminal's width in columns, 80 when stderr is no terminal.
fn width() -> usize {
    rustix::termios::tcgetwinsize(std::io::stderr())
        .ok()
        .map(|w| usize::from(w.ws_col))
        .filter(|w| *w > 0)
        .unwrap_or(80)
}

impl TtyReporter {
    pub fn new() -> TtyReporter {
        let screen = Arc::new(Mutex::new(Screen::new(
            std::io::stderr(),
            width(),
            colour_stderr(),
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (screen, stop) = (screen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if let Ok(mut s) = screen.lock() {
                        s.set_width(width());
                        s.tick(Instant::now());
                    }
                }
            })
        };
        TtyReporter {
            screen,
            stop,
            ticker: Some(ticker),
        }
    }
}

impl Reporter for TtyReporter {
    fn report(&mut self, event: Event) {
        if let Ok(mut s) = self.screen.lock() {
            s.set_width(width());
            s.event(&event, Instant::now());
        }
    }
}

impl Drop for TtyReporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Ok(mut s) = self.screen.lock() {
            s.clear();
        }
    }
}

#[cfg(test)]
#[path = "tty_tests.rs"]
mod tests;
