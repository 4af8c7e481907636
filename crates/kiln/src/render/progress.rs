//! The three renderings of the build's event stream (SPEC §8): `tty` (a live
//! line per phase), `plain` (a line per event) and `json` (an object per line
//! on stdout). All human output goes to stderr.

use std::io::IsTerminal;
use std::time::Duration;

use kiln_core::Phase;
use kiln_core::report::{Event, PhaseStatus, Reporter};
use serde_json::json;

use crate::render::log_line;
use crate::render::stdout::{err, out};
use crate::render::tty::TtyReporter;

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
            Progress::Json => Box::new(JsonReporter::default()),
            Progress::Tty => Box::new(TtyReporter::new()),
            _ => Box::new(PlainReporter::new(true)),
        }
    }
}

fn percent(phase: Phase) -> u32 {
    u32::from(phase.id()) * 10
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The habitats being built, outermost (the one asked for) first: a base
/// habitat's build nests inside, so every event belongs to the innermost.
#[derive(Default)]
pub struct Habitats(Vec<Frame>);

#[derive(Default)]
struct Frame {
    name: String,
    /// Cached phases' lines not shown yet: all ten are one line.
    cached: Vec<String>,
    built: usize,
}

impl Habitats {
    fn current(&self) -> Option<&str> {
        self.0.last().map(|f| f.name.as_str())
    }
}

/// One line per event on stderr.
pub struct PlainReporter {
    /// Show phase output lines (prefixed with the phase tag).
    pub verbose_logs: bool,
    habitats: Habitats,
}

impl PlainReporter {
    pub fn new(verbose_logs: bool) -> PlainReporter {
        PlainReporter {
            verbose_logs,
            habitats: Habitats::default(),
        }
    }

    /// The lines `event` shows, in order (none while cached phases wait to
    /// be told as one line).
    pub fn lines(&mut self, event: &Event) -> Vec<String> {
        let mut shown = Vec::new();
        let frames = &mut self.habitats.0;
        match event {
            Event::BuildStart { habitat } => frames.push(Frame {
                name: habitat.clone(),
                ..Frame::default()
            }),
            Event::PhaseLog { line, phase, .. } => {
                return match log_line::clean(line) {
                    Some(l) if self.verbose_logs => vec![format!("  {} | {l}", phase.tag())],
                    _ => Vec::new(),
                };
            }
            Event::PhaseEnd {
                status: PhaseStatus::Cached,
                ..
            } => {
                if let (Some(f), Some(l)) = (frames.last_mut(), Self::line(event)) {
                    f.cached.push(l);
                    return Vec::new();
                }
            }
            Event::BuildEnd { ok, image, .. } => {
                if let Some(f) = frames.pop() {
                    if *ok && f.built == 0 && f.cached.len() == Phase::ALL.len() {
                        shown.push(format!(
                            "[100%] cached {:<10}-> {} (nothing changed)",
                            "all",
                            image.as_deref().unwrap_or("?")
                        ));
                    } else {
                        shown.extend(f.cached);
                    }
                }
            }
            _ => {
                if let Some(f) = frames.last_mut() {
                    shown.append(&mut f.cached);
                    if matches!(event, Event::PhaseStart { .. }) {
                        f.built += 1;
                    }
                }
            }
        }
        shown.extend(Self::line(event));
        shown
    }

    pub fn line(event: &Event) -> Option<String> {
        Some(match event {
            Event::BuildStart { habitat } => format!("building habitat `{habitat}`"),
            Event::Waiting { habitat, holder } => {
                format!("waiting: another build of `{habitat}` is running ({holder})")
            }
            Event::Note { message } => format!("note: {message}"),
            Event::Pruned {
                habitat,
                removed,
                freed,
            } => super::pruned(habitat, removed, *freed),
            Event::PhaseStart { phase } => {
                format!("[{:>3}%] start  {}", percent(*phase), phase.tag())
            }
            Event::Pulling { phase, reference } => {
                format!(
                    "[{:>3}%] pull   {:<10}<- {reference}",
                    percent(*phase),
                    phase.tag()
                )
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
                    PhaseStatus::Cached if image.is_empty() => {
                        format!("[{p:>3}%] cached {:<10}({reason})", phase.tag())
                    }
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
                    PhaseStatus::Pulled if image.is_empty() => {
                        format!("[{p:>3}%] pulled {:<10}({reason})", phase.tag())
                    }
                    PhaseStatus::Pulled => format!(
                        "[{p:>3}%] pulled {:<10}({}) -> {image}  ({reason})",
                        phase.tag(),
                        secs(*duration)
                    ),
                    PhaseStatus::Failed => {
                        format!("[{p:>3}%] failed {:<10}({})", phase.tag(), secs(*duration))
                    }
                }
            }
            Event::StepEnd {
                step,
                name,
                status,
                duration,
                reason,
                ..
            } => match status {
                // A step is never pulled on its own: its phase is.
                PhaseStatus::Cached | PhaseStatus::Pulled => {
                    format!("       cached {step:<12}{name}")
                }
                PhaseStatus::Built => format!(
                    "       built  {step:<12}{name} ({})  {}",
                    secs(*duration),
                    super::because(reason)
                ),
                PhaseStatus::Failed => {
                    format!("       failed {step:<12}{name} ({})", secs(*duration))
                }
            },
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
            Event::PushStart { .. }
            | Event::PushBlob { .. }
            | Event::PushImage { .. }
            | Event::PushEnd { .. } => return super::push::plain(event),
        })
    }
}

impl Reporter for PlainReporter {
    fn report(&mut self, event: Event) {
        for l in self.lines(&event) {
            err!("{l}");
        }
    }
}

/// One JSON object per line on stdout, each naming the habitat it is about.
/// A base habitat's build is `base_start` … `base_end`, so the stream ends
/// with one `build_end`, for the habitat asked for.
#[derive(Default)]
pub struct JsonReporter {
    habitats: Habitats,
    /// The habitat asked for, once its build began: what a push after the
    /// build is about.
    outer: String,
}

impl JsonReporter {
    /// The object `event` shows, or none for a noise line.
    pub fn object(&mut self, event: &Event) -> Option<serde_json::Value> {
        let frames = &mut self.habitats.0;
        let nested = match event {
            Event::BuildStart { habitat } => {
                frames.push(Frame {
                    name: habitat.clone(),
                    ..Frame::default()
                });
                frames.len() > 1
            }
            Event::BuildEnd { .. } => frames.len() > 1,
            _ => false,
        };
        if let (Event::BuildStart { habitat }, 1) = (event, frames.len()) {
            self.outer = habitat.clone();
        }
        let habitat = self
            .habitats
            .current()
            .unwrap_or(self.outer.as_str())
            .to_string();
        if matches!(event, Event::BuildEnd { .. }) {
            self.habitats.0.pop();
        }
        let mut v = Self::value(event);
        if let Some(o) = v.as_object_mut() {
            if let Event::PhaseLog { line, .. } = event {
                o.insert("line".into(), json!(log_line::clean(line)?));
            }
            if nested {
                let renamed = match event {
                    Event::BuildStart { .. } => "base_start",
                    _ => "base_end",
                };
                o.insert("event".into(), json!(renamed));
            }
            o.insert("habitat".into(), json!(habitat));
        }
        Some(v)
    }

    pub fn value(event: &Event) -> serde_json::Value {
        match event {
            Event::BuildStart { habitat } => json!({"event": "build_start", "habitat": habitat}),
            Event::Waiting { habitat, holder } => {
                json!({"event": "waiting", "habitat": habitat, "holder": holder})
            }
            Event::Note { message } => json!({"event": "note", "message": message}),
            Event::Pruned {
                habitat,
                removed,
                freed,
            } => json!({
                "event": "pruned", "habitat": habitat, "level": "soft",
                "removed": removed.iter().map(|(t, k)| json!({"phase": t, "key": k})).collect::<Vec<_>>(),
                "freed_bytes": freed,
            }),
            Event::PhaseStart { phase } => {
                json!({"event": "phase_start", "id": phase.id().to_string(), "phase": phase.name()})
            }
            Event::Pulling { phase, reference } => json!({
                "event": "phase_pull", "id": phase.id().to_string(), "phase": phase.name(),
                "reference": reference,
            }),
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
            Event::StepEnd {
                phase,
                step,
                name,
                status,
                duration,
                image,
                key,
                reason,
            } => json!({
                "event": "step_end", "id": phase.id().to_string(), "phase": phase.name(),
                "step": step, "name": name,
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
            Event::PushStart { .. }
            | Event::PushBlob { .. }
            | Event::PushImage { .. }
            | Event::PushEnd { .. } => super::push::value(event),
        }
    }
}

impl Reporter for JsonReporter {
    fn report(&mut self, event: Event) {
        if let Some(v) = self.object(&event) {
            out!("{v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kiln_core::Phase;
    use kiln_core::report::{Event, PhaseStatus};

    use super::{JsonReporter, PlainReporter};

    fn cached(p: Phase, habitat: &str) -> Event {
        Event::PhaseEnd {
            phase: p,
            status: PhaseStatus::Cached,
            duration: Duration::ZERO,
            image: format!("habitat-{habitat}:{}", p.tag()),
            key: "k".into(),
            reason: String::new(),
        }
    }

    fn build(habitat: &str, base: Option<&str>) -> Vec<Event> {
        let mut ev = vec![Event::BuildStart {
            habitat: habitat.into(),
        }];
        if let Some(b) = base {
            ev.extend(build(b, None));
        }
        ev.extend(Phase::ALL.iter().map(|p| cached(*p, habitat)));
        ev.push(Event::BuildEnd {
            ok: true,
            duration: Duration::from_millis(40),
            image: Some(format!("habitat-{habitat}:final-0123456789ab")),
        });
        ev
    }

    #[test]
    fn plain_says_nothing_changed_in_one_line() {
        let mut r = PlainReporter::new(true);
        let lines: Vec<String> = build("web", None).iter().flat_map(|e| r.lines(e)).collect();
        insta::assert_snapshot!(lines.join("\n"), @r"
        building habitat `web`
        [100%] cached all       -> habitat-web:final-0123456789ab (nothing changed)
        done in 0.0s -> habitat-web:final-0123456789ab
        ");
    }

    #[test]
    fn plain_shows_cached_phases_before_a_built_one_and_cleans_logs() {
        let mut r = PlainReporter::new(true);
        let mut ev = build("web", None);
        ev.truncate(6);
        ev.push(Event::PhaseStart {
            phase: Phase::Setup,
        });
        for line in [
            "0%\r50%\r100%",
            "debconf: delaying package configuration, since x",
        ] {
            ev.push(Event::PhaseLog {
                phase: Phase::Setup,
                stream: "stdout",
                line: line.into(),
            });
        }
        let lines: Vec<String> = ev.iter().flat_map(|e| r.lines(e)).collect();
        insta::assert_snapshot!(lines.join("\n"), @r"
        building habitat `web`
        [ 10%] cached 1-base    -> habitat-web:1-base
        [ 20%] cached 2-users   -> habitat-web:2-users
        [ 30%] cached 3-env     -> habitat-web:3-env
        [ 40%] cached 4-habitat -> habitat-web:4-habitat
        [ 50%] cached 5-files   -> habitat-web:5-files
        [ 60%] start  6-setup
          6-setup | 100%
        ");
    }

    #[test]
    fn json_names_the_habitat_and_ends_with_one_build_end() {
        let mut r = JsonReporter::default();
        let objects: Vec<serde_json::Value> = build("dev", Some("base"))
            .iter()
            .filter_map(|e| r.object(e))
            .collect();
        assert!(objects.iter().all(|o| o["habitat"].is_string()));
        let ends: Vec<_> = objects
            .iter()
            .filter(|o| o["event"] == "build_end")
            .collect();
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0]["habitat"], "dev");
        assert_eq!(objects.last(), Some(ends[0]));
        let base_phases = objects
            .iter()
            .filter(|o| o["event"] == "phase_end" && o["habitat"] == "base")
            .count();
        assert_eq!(base_phases, 10);
        let events: Vec<&str> = objects.iter().filter_map(|o| o["event"].as_str()).collect();
        assert_eq!(events[..2], ["build_start", "base_start"]);
        assert_eq!(events.iter().filter(|e| **e == "base_end").count(), 1);
    }

    /// A build that pulled its final snapshot: the pull, the phases within
    /// it, then the pulled phase, in plain and json.
    #[test]
    fn a_pulled_build_says_pulled_in_plain_and_json() {
        let reference = "127.0.0.1:5000/team/app@sha256:abc";
        let within = |p: Phase| Event::PhaseEnd {
            phase: p,
            status: PhaseStatus::Pulled,
            duration: Duration::ZERO,
            image: String::new(),
            key: "k".into(),
            reason: "within 10-final's snapshot".into(),
        };
        let mut ev = vec![
            Event::BuildStart {
                habitat: "web".into(),
            },
            Event::Pulling {
                phase: Phase::Final,
                reference: reference.into(),
            },
        ];
        ev.extend(Phase::ALL[..9].iter().map(|p| within(*p)));
        ev.push(Event::PhaseEnd {
            phase: Phase::Final,
            status: PhaseStatus::Pulled,
            duration: Duration::from_millis(1500),
            image: "habitat-web:10-final".into(),
            key: "k".into(),
            reason: "no snapshot yet; the registry holds it".into(),
        });
        let mut r = PlainReporter::new(true);
        let lines: Vec<String> = ev.iter().flat_map(|e| r.lines(e)).collect();
        assert_eq!(lines[1], format!("[100%] pull   10-final  <- {reference}"));
        assert_eq!(
            lines[2],
            "[ 10%] pulled 1-base    (within 10-final's snapshot)"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some(
                "[100%] pulled 10-final  (1.5s) -> habitat-web:10-final  (no snapshot yet; the registry holds it)"
            )
        );
        let mut j = JsonReporter::default();
        let objects: Vec<serde_json::Value> = ev.iter().filter_map(|e| j.object(e)).collect();
        assert_eq!(objects[1]["event"], "phase_pull");
        assert_eq!(objects[1]["reference"], reference);
        assert!(
            objects[2..].iter().all(|o| o["status"] == "pulled"),
            "{objects:?}"
        );
    }
}
