//! How a push's events read (SPEC §10, issue 12): per image (phase), its
//! layers sent and found and the bytes sent; per blob in `json`; a live
//! line of bytes in `tty`. The three renderers call these, so the wording
//! is in one place.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_core::report::{BlobState, Event};
use serde_json::json;

/// Bytes as people read them: `512 B`, `12.3 kB`, `45.6 MB`, `1.2 GB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The short form of a digest: its first 12 hex.
pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// `2 up (12.3 MB), 3 present`
fn counts(uploaded: usize, present: usize, sent: u64) -> String {
    match (uploaded, present) {
        (0, p) => format!("nothing new, {p} present"),
        (u, p) => format!("{u} up ({}), {p} present", bytes(sent)),
    }
}

/// The plain line of a push event; `None` for the ones plain leaves out
/// (a blob found, or still going up).
pub fn plain(event: &Event) -> Option<String> {
    match event {
        Event::PushStart { repository, images } => Some(format!(
            "pushing {} image{} to `{repository}`",
            images.len(),
            if images.len() == 1 { "" } else { "s" }
        )),
        Event::PushBlob {
            image,
            digest,
            size,
            state: BlobState::Uploaded,
            ..
        } => Some(format!(
            "  {image:<10} uploaded {} ({})",
            short(digest),
            bytes(*size)
        )),
        Event::PushBlob { .. } => None,
        Event::PushImage {
            image,
            tags,
            digest,
            uploaded,
            present,
            bytes_uploaded,
        } => Some(format!(
            "[push] {image:<10} {} -> {}{}",
            counts(*uploaded, *present, *bytes_uploaded),
            short(digest),
            tag_list(tags)
        )),
        Event::PushEnd {
            repository,
            ok: true,
            duration,
            bytes_uploaded,
            blobs_uploaded,
            blobs_present,
        } => Some(format!(
            "pushed to `{repository}` in {}: {}",
            secs(*duration),
            counts(*blobs_uploaded, *blobs_present, *bytes_uploaded)
        )),
        Event::PushEnd {
            repository,
            duration,
            ..
        } => Some(format!(
            "push to `{repository}` failed after {}",
            secs(*duration)
        )),
        _ => None,
    }
}

fn tag_list(tags: &[String]) -> String {
    match tags {
        [] => String::new(),
        [one] => format!(" ({one})"),
        more => format!(" ({})", more.join(", ")),
    }
}

/// The JSON object of a push event.
pub fn value(event: &Event) -> serde_json::Value {
    match event {
        Event::PushStart { repository, images } => {
            json!({"event": "push_start", "repository": repository, "images": images})
        }
        Event::PushBlob {
            image,
            digest,
            size,
            sent,
            state,
        } => json!({
            "event": "push_blob", "image": image, "digest": digest, "size": size,
            "sent": sent, "state": state.as_str(),
        }),
        Event::PushImage {
            image,
            tags,
            digest,
            uploaded,
            present,
            bytes_uploaded,
        } => json!({
            "event": "push_image", "image": image, "tags": tags, "digest": digest,
            "uploaded": uploaded, "present": present, "bytes_uploaded": bytes_uploaded,
        }),
        Event::PushEnd {
            repository,
            ok,
            duration,
            bytes_uploaded,
            blobs_uploaded,
            blobs_present,
        } => json!({
            "event": "push_end", "repository": repository,
            "status": if *ok { "ok" } else { "failed" },
            "duration_ms": duration.as_millis() as u64, "bytes_uploaded": bytes_uploaded,
            "blobs_uploaded": blobs_uploaded, "blobs_present": blobs_present,
        }),
        _ => json!({}),
    }
}

/// What the tty's live push line shows: bytes sent of what goes up, and
/// images done of all.
#[derive(Debug, Default)]
pub struct Live {
    images: usize,
    done: usize,
    /// Digest → (sent, size) of blobs going up.
    blobs: BTreeMap<String, (u64, u64)>,
}

impl Live {
    pub fn new(images: usize) -> Live {
        Live {
            images,
            ..Live::default()
        }
    }

    /// Takes a push event; the finished line it writes, if any.
    pub fn event(&mut self, event: &Event) -> Option<String> {
        match event {
            Event::PushBlob {
                digest,
                size,
                sent,
                state: BlobState::Uploading | BlobState::Uploaded,
                ..
            } => {
                self.blobs.insert(digest.clone(), (*sent, *size));
                None
            }
            Event::PushImage { .. } => {
                self.done += 1;
                plain(event).map(|l| l.replacen("[push] ", "✔ ", 1))
            }
            Event::PushEnd { .. } | Event::PushStart { .. } => plain(event),
            _ => None,
        }
    }

    /// `pushing 3/11  12.3 MB / 45.6 MB`
    pub fn line(&self) -> String {
        let (sent, total) = self
            .blobs
            .values()
            .fold((0, 0), |(s, t), (a, b)| (s + a, t + b));
        format!(
            "pushing {}/{}  {} / {}",
            self.done,
            self.images,
            bytes(sent),
            bytes(total)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_read_them() {
        let cases = [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (12_345, "12.3 kB"),
            (999_949, "999.9 kB"),
            (999_950, "1.0 MB"),
            (45_600_000, "45.6 MB"),
            (1_200_000_000, "1.2 GB"),
        ];
        for (n, want) in cases {
            assert_eq!(bytes(n), want, "{n}");
        }
    }

    fn image(uploaded: usize, sent: u64) -> Event {
        Event::PushImage {
            image: "6-setup".into(),
            tags: vec!["cache-0123".into()],
            digest: "sha256:abcdef0123456789".into(),
            uploaded,
            present: 3,
            bytes_uploaded: sent,
        }
    }

    #[test]
    fn each_push_event_has_its_plain_line_and_json_object() {
        let cases: Vec<(Event, Option<&str>, &str)> = vec![
            (
                Event::PushStart {
                    repository: "127.0.0.1:5000/team/app".into(),
                    images: vec!["1-base".into(), "final".into()],
                },
                Some("pushing 2 images to `127.0.0.1:5000/team/app`"),
                "push_start",
            ),
            (
                Event::PushBlob {
                    image: "6-setup".into(),
                    digest: "sha256:0123456789abcdef".into(),
                    size: 2_000_000,
                    sent: 2_000_000,
                    state: BlobState::Uploaded,
                },
                Some("  6-setup    uploaded 0123456789ab (2.0 MB)"),
                "push_blob",
            ),
            (
                Event::PushBlob {
                    image: "6-setup".into(),
                    digest: "sha256:0123456789abcdef".into(),
                    size: 2_000_000,
                    sent: 2_000_000,
                    state: BlobState::Present,
                },
                None,
                "push_blob",
            ),
            (
                image(2, 12_300_000),
                Some("[push] 6-setup    2 up (12.3 MB), 3 present -> abcdef012345 (cache-0123)"),
                "push_image",
            ),
            (
                image(0, 0),
                Some("[push] 6-setup    nothing new, 3 present -> abcdef012345 (cache-0123)"),
                "push_image",
            ),
            (
                Event::PushEnd {
                    repository: "r/x".into(),
                    ok: true,
                    duration: Duration::from_millis(1500),
                    bytes_uploaded: 0,
                    blobs_uploaded: 0,
                    blobs_present: 12,
                },
                Some("pushed to `r/x` in 1.5s: nothing new, 12 present"),
                "push_end",
            ),
            (
                Event::PushEnd {
                    repository: "r/x".into(),
                    ok: false,
                    duration: Duration::from_millis(200),
                    bytes_uploaded: 0,
                    blobs_uploaded: 0,
                    blobs_present: 0,
                },
                Some("push to `r/x` failed after 0.2s"),
                "push_end",
            ),
        ];
        for (event, line, kind) in cases {
            assert_eq!(plain(&event).as_deref(), line, "{event:?}");
            assert_eq!(value(&event)["event"], kind, "{event:?}");
        }
    }

    #[test]
    fn the_live_line_adds_up_the_blobs_going_up() {
        let mut live = Live::new(2);
        for (digest, sent, state) in [
            ("sha256:a", 0, BlobState::Uploading),
            ("sha256:b", 0, BlobState::Uploading),
            ("sha256:a", 4_000_000, BlobState::Uploading),
            ("sha256:b", 1_000_000, BlobState::Uploaded),
        ] {
            let size = if digest.ends_with('a') {
                8_000_000
            } else {
                1_000_000
            };
            let e = Event::PushBlob {
                image: "final".into(),
                digest: digest.into(),
                size,
                sent,
                state,
            };
            assert_eq!(live.event(&e), None);
        }
        assert_eq!(live.line(), "pushing 0/2  5.0 MB / 9.0 MB");
        assert!(live.event(&image(1, 1)).unwrap().starts_with("✔ 6-setup"));
        assert_eq!(live.line(), "pushing 1/2  5.0 MB / 9.0 MB");
    }
}
