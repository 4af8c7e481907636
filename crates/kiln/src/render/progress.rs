//! The three renderings of the build's event stream (SPEC §8): `tty` (a live
//! line per phase), `plain` (a line per event) and `json` (an object per line
//! on stdout). All human output goes to stderr.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiln_core::Phase;
use kiln_core::report::{Event, PhaseStatus, Reporter};
use serde_json::json;

use crate::render::stdout::{err, out};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    Auto,
    Tty,
    Plain,
    Json,
}

impl Progress {
    /// `auto` is `tty` on a terminal and `plain` elsewhere.
    pub fn resolve(self) -> Progress {
        match self {
            Progress::Auto if std::io::stderr().is_terminal() => Progress::Tty,
            Progress::Auto => Progress::Plain,
            p => p,
        }
    }

    pub fn reporter(self) -> Box<dyn Reporter> {
        match self.resolve() {
            Progress::Json => Box::new(JsonReporter),
            Progress::Tty => Box::new(TtyReporter::new()),
            _ => Box::new(PlainReporter { verbose_logs: true }),
        }
    }
}

fn percent(phase: Phase) -> u32 {
    u32::from(phase.id()) * 10
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// One line per event on stderr.
pub struct PlainReporter {
    /// Show phase output lines (prefixed with the phase tag).
    pub verbose_logs: bool,
}

impl PlainReporter {
    pub fn line(event: &Event) -> Option<String> {
        Some(match event {
            Event::BuildStart { habitat } => format!("building habitat `{habitat}`"),
            Event::Waiting { habitat, holder } => {
                format!("waiting: another build of `{habitat}` is running ({holder})")
            }
            Event::Note { message } => format!("note: {message}"),
            Event::PhaseStart { phase } => {
                format!("[{:>3}%] start  {}", percent(*phase), phase.tag())
            }
            Event::PhaseLog { phase, line, .. } => format!("  {} | {line}", phase.tag()),
            Event::PhaseEnd {
                phase,
                status,
                duration,
                image,
                reason,
                ..
            } => {
                let p = percent(*phase);
                match status {
                    PhaseStatus::Cached if reason.is_empty() => {
                        format!("[{p:>3}%] cached {:<10}-> {image}", phase.tag())
                    }
                    PhaseStatus::Cached => {
                        format!("[{p:>3}%] cached {:<10}-> {image} ({reason})", phase.tag())
                    }
                    PhaseStatus::Built => format!(
                        "[{p:>3}%] built  {:<10}({}) -> {image}  {}",
                        phase.tag(),
                        secs(*duration),
                        super::because(reason)
                    ),
                    PhaseStatus::Failed => {
                        format!("[{p:>3}%] failed {:<10}({})", phase.tag(), secs(*duration))
                    }
                }
            }
            Event::BuildEnd {
                ok: true,
                duration,
                image,
            } => {
                format!(
                    "done in {} -> {}",
                    secs(*duration),
                    image.as_deref().unwrap_or("?")
                )
            }
            Event::BuildEnd {
                ok: false,
                duration,
                ..
            } => format!("build failed after {}", secs(*duration)),
        })
    }
}

impl Reporter for PlainReporter {
    fn report(&mut self, event: Event) {
        if !self.verbose_logs && matches!(event, Event::PhaseLog { .. }) {
            return;
        }
        if let Some(l) = Self::line(&event) {
            err!("{l}");
        }
    }
}

/// One JSON object per line on stdout.
pub struct JsonReporter;

impl JsonReporter {
    pub fn value(event: &Event) -> serde_json::Value {
        match event {
            Event::BuildStart { habitat } => json!({"event": "build_start", "habitat": habitat}),
            Event::Waiting { habitat, holder } => {
                json!({"event": "waiting", "habitat": habitat, "holder": holder})
            }
            Event::Note { message } => json!({"event": "note", "message": message}),
            Event::PhaseStart { phase } => {
                json!({"event": "phase_start", "id": phase.id().to_string(), "phase": phase.name()})
            }
            Event::PhaseLog {
                phase,
                stream,
                line,
            } => json!({
                "event": "phase_log", "id": phase.id().to_string(), "phase": phase.name(),
                "stream": stream, "line": line,
            }),
            Event::PhaseEnd {
                phase,
                status,
                duration,
                image,
                key,
                reason,
            } => json!({
                "event": "phase_end", "id": phase.id().to_string(), "phase": phase.name(),
                "status": status.as_str(), "duration_ms": duration.as_millis() as u64,
                "image": image, "key": key, "reason": reason,
            }),
            Event::BuildEnd {
                ok,
                duration,
                image,
            } => json!({
                "event": "build_end", "status": if *ok { "ok" } else { "failed" },
                "duration_ms": duration.as_millis() as u64, "image": image,
            }),
        }
    }
}

impl Reporter for JsonReporter {
    fn report(&mut self, event: Event) {
        out!("{}", Self::value(&event));
    }
}

/// A live line per phase, with its state and elapsed time.
pub struct TtyReporter {
    multi: MultiProgress,
    bars: Vec<Option<ProgressBar>>,
}

impl TtyReporter {
    fn new() -> TtyReporter {
        TtyReporter {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: vec![None; 10],
        }
    }

    fn bar(&mut self, phase: Phase) -> ProgressBar {
        if let Some(b) = &self.bars[phase.index()] {
            return b.clone();
        }
        let b = self.multi.add(ProgressBar::new_spinner());
        b.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<10} {elapsed:>4} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b.set_prefix(phase.tag());
        b.enable_steady_tick(Duration::from_millis(100));
        self.bars[phase.index()] = Some(b.clone());
        b
    }
}

impl Reporter for TtyReporter {
    fn report(&mut self, event: Event) {
        match &event {
            Event::PhaseStart { phase } => {
                self.bar(*phase).set_message("running");
            }
            Event::PhaseLog { phase, line, .. } => {
                let shown: String = line.chars().take(120).collect();
                self.bar(*phase).set_message(shown);
            }
            Event::PhaseEnd { phase, .. } => {
                let b = self.bar(*phase);
                b.set_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.finish_with_message(PlainReporter::line(&event).unwrap_or_default());
            }
            other => {
                if let Some(l) = PlainReporter::line(other) {
                    let _ = self.multi.println(l);
                }
            }
        }
    }
}
