//! How a pull's events read (issue 12): a snapshot pulled from the registry
//! cache in a build, or the image of `kiln up --image`. Per layer in `json`;
//! a line per layer pulled and one at the end in `plain`; a live line of
//! layers and bytes in `tty`. The three renderers call these, so the wording
//! is in one place. Byte counts only: an event holds no credentials.

use std::time::Duration;

use kiln_core::report::{Event, LayerState};
use serde_json::json;

use super::push::{bytes, short};

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

fn plural(n: usize, one: &str) -> String {
    format!("{n} {one}{}", if n == 1 { "" } else { "s" })
}

/// The plain line of a pull event; `None` for the ones plain leaves out
/// (a layer still coming down, or found present: the end line counts those).
pub fn plain(event: &Event) -> Option<String> {
    match event {
        Event::PullStart { reference, .. } => Some(format!("pulling `{reference}`")),
        Event::PullLayer {
            image,
            layer,
            state: LayerState::Done,
            layers,
            layers_done,
            bytes: down,
            bytes_total,
        } => Some(format!(
            "  {image:<10} pulled {} ({layers_done}/{layers} layers, {} / {})",
            short(layer),
            bytes(*down),
            bytes(*bytes_total)
        )),
        Event::PullEnd {
            reference,
            ok: true,
            duration,
            layers,
            layers_present,
            bytes: down,
            ..
        } => Some(format!(
            "pulled `{reference}` in {}: {} ({layers_present} present), {}",
            secs(*duration),
            plural(*layers, "layer"),
            bytes(*down)
        )),
        Event::PullEnd {
            reference,
            duration,
            ..
        } => Some(format!(
            "pull of `{reference}` failed after {}",
            secs(*duration)
        )),
        _ => None,
    }
}

/// The JSON object of a pull event.
pub fn value(event: &Event) -> serde_json::Value {
    match event {
        Event::PullStart { image, reference } => {
            json!({"event": "pull_start", "image": image, "reference": reference})
        }
        Event::PullLayer {
            image,
            layer,
            state,
            layers,
            layers_done,
            bytes,
            bytes_total,
        } => json!({
            "event": "pull_layer", "image": image, "layer": layer, "state": state.as_str(),
            "layers": layers, "layers_done": layers_done,
            "bytes": bytes, "bytes_total": bytes_total,
        }),
        Event::PullEnd {
            image,
            reference,
            ok,
            duration,
            layers,
            layers_present,
            bytes,
        } => json!({
            "event": "pull_end", "image": image, "reference": reference,
            "status": if *ok { "ok" } else { "failed" },
            "duration_ms": duration.as_millis() as u64,
            "layers": layers, "layers_present": layers_present, "bytes": bytes,
        }),
        _ => json!({}),
    }
}

/// What the tty's live pull line shows: layers done of those named, bytes
/// down of the sizes known, as the last layer event said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Live {
    image: String,
    layers: usize,
    done: usize,
    bytes: u64,
    total: u64,
}

impl Live {
    pub fn new(image: &str) -> Live {
        Live {
            image: image.to_string(),
            ..Live::default()
        }
    }

    /// Takes a layer event of this pull (others are not its business).
    pub fn event(&mut self, event: &Event) {
        if let Event::PullLayer {
            image,
            layers,
            layers_done,
            bytes,
            bytes_total,
            ..
        } = event
            && *image == self.image
        {
            (self.layers, self.done, self.bytes, self.total) =
                (*layers, *layers_done, *bytes, *bytes_total);
        }
    }

    /// `pulling 7-tools  3/5 layers  12.4 MB / 40.1 MB`
    pub fn line(&self) -> String {
        format!(
            "pulling {}  {}/{} layers  {} / {}",
            self.image,
            self.done,
            self.layers,
            bytes(self.bytes),
            bytes(self.total)
        )
    }
}

/// What a pulled phase's finished tty line adds: `3 layers, 12.4 MB`.
pub fn summary(event: &Event) -> Option<String> {
    match event {
        Event::PullEnd {
            ok: true,
            layers,
            bytes: down,
            ..
        } => Some(format!("{}, {}", plural(*layers, "layer"), bytes(*down))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(state: LayerState, done: usize, down: u64) -> Event {
        Event::PullLayer {
            image: "7-tools".into(),
            layer: "0123456789abcdef".into(),
            state,
            layers: 5,
            layers_done: done,
            bytes: down,
            bytes_total: 40_100_000,
        }
    }

    fn end(ok: bool) -> Event {
        Event::PullEnd {
            image: "7-tools".into(),
            reference: "127.0.0.1:5000/team/app@sha256:abc".into(),
            ok,
            duration: Duration::from_millis(1500),
            layers: 5,
            layers_present: 2,
            bytes: 40_100_000,
        }
    }

    #[test]
    fn each_pull_event_has_its_plain_line_and_json_object() {
        let cases: Vec<(Event, Option<&str>, &str)> = vec![
            (
                Event::PullStart {
                    image: "10-final".into(),
                    reference: "127.0.0.1:5000/team/app:pr-1".into(),
                },
                Some("pulling `127.0.0.1:5000/team/app:pr-1`"),
                "pull_start",
            ),
            (
                layer(LayerState::Downloading, 2, 12_400_000),
                None,
                "pull_layer",
            ),
            (
                layer(LayerState::Present, 3, 12_400_000),
                None,
                "pull_layer",
            ),
            (
                layer(LayerState::Done, 3, 12_400_000),
                Some("  7-tools    pulled 0123456789ab (3/5 layers, 12.4 MB / 40.1 MB)"),
                "pull_layer",
            ),
            (
                end(true),
                Some(
                    "pulled `127.0.0.1:5000/team/app@sha256:abc` in 1.5s: 5 layers (2 present), 40.1 MB",
                ),
                "pull_end",
            ),
            (
                end(false),
                Some("pull of `127.0.0.1:5000/team/app@sha256:abc` failed after 1.5s"),
                "pull_end",
            ),
        ];
        for (event, line, kind) in cases {
            assert_eq!(plain(&event).as_deref(), line, "{event:?}");
            assert_eq!(value(&event)["event"], kind, "{event:?}");
        }
    }

    #[test]
    fn a_layer_event_serializes_every_count() {
        let v = value(&layer(LayerState::Extracting, 3, 12_400_000));
        assert_eq!(
            v,
            json!({
                "event": "pull_layer", "image": "7-tools", "layer": "0123456789abcdef",
                "state": "extracting", "layers": 5, "layers_done": 3,
                "bytes": 12_400_000, "bytes_total": 40_100_000,
            })
        );
        let v = value(&end(true));
        assert_eq!(v["status"], "ok");
        assert_eq!(v["duration_ms"], 1500);
        assert_eq!(v["layers_present"], 2);
    }

    #[test]
    fn the_live_line_shows_the_last_counts_of_its_own_pull() {
        let mut live = Live::new("7-tools");
        assert_eq!(live.line(), "pulling 7-tools  0/0 layers  0 B / 0 B");
        live.event(&layer(LayerState::Downloading, 3, 12_400_000));
        assert_eq!(
            live.line(),
            "pulling 7-tools  3/5 layers  12.4 MB / 40.1 MB"
        );
        let other = Event::PullLayer {
            image: "6-setup".into(),
            layer: "x".into(),
            state: LayerState::Done,
            layers: 1,
            layers_done: 1,
            bytes: 1,
            bytes_total: 1,
        };
        live.event(&other);
        assert_eq!(
            live.line(),
            "pulling 7-tools  3/5 layers  12.4 MB / 40.1 MB"
        );
        assert_eq!(summary(&end(true)).as_deref(), Some("5 layers, 40.1 MB"));
        assert_eq!(summary(&end(false)), None);
    }
}
