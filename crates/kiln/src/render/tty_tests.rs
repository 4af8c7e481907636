//! The tty renderer drawn into a fake terminal of fixed size (vt100 parses
//! its bytes into a screen), snapshotted as a user would see it.

use std::time::{Duration, Instant};

use kiln_core::Phase;
use kiln_core::report::{Event, PhaseStatus};

use super::Screen;

const W: u16 = 60;
const H: u16 = 16;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn start(habitat: &str) -> Event {
    Event::BuildStart {
        habitat: habitat.into(),
    }
}

fn end(phase: Phase, status: PhaseStatus, took: u64, reason: &str) -> Event {
    Event::PhaseEnd {
        phase,
        status,
        duration: ms(took),
        image: format!("habitat-x:{}", phase.tag()),
        key: "k".into(),
        reason: reason.into(),
    }
}

fn log(phase: Phase, line: &str) -> Event {
    Event::PhaseLog {
        phase,
        stream: "stdout",
        line: line.into(),
    }
}

fn build_end(ok: bool, took: u64) -> Event {
    Event::BuildEnd {
        ok,
        duration: ms(took),
        image: ok.then(|| "habitat-x:final-0123456789ab".into()),
    }
}

/// Feeds `events` (each at its offset in ms) and returns the screen's text
/// and the raw bytes.
fn draw(events: &[(u64, Event)], colour: bool) -> (String, Vec<u8>) {
    let t0 = Instant::now();
    let mut screen = Screen::new(Vec::new(), usize::from(W), colour);
    for (at, e) in events {
        screen.event(e, t0 + ms(*at));
    }
    let bytes = screen.into_inner();
    (shown(&bytes), bytes)
}

/// What the terminal's line discipline hands the screen: `\n` as `\r\n`
/// (the tty's `onlcr`, on by default).
fn onlcr(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for b in bytes {
        if *b == b'\n' {
            out.push(b'\r');
        }
        out.push(*b);
    }
    out
}

fn shown(bytes: &[u8]) -> String {
    let mut parser = vt100::Parser::new(H, W, 0);
    parser.process(&onlcr(bytes));
    let text = parser.screen().contents();
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

fn a_build() -> Vec<(u64, Event)> {
    let mut ev = vec![(0, start("web"))];
    for p in &Phase::ALL[..5] {
        ev.push((10, end(*p, PhaseStatus::Cached, 0, "")));
    }
    ev.push((
        20,
        Event::PhaseStart {
            phase: Phase::Setup,
        },
    ));
    ev.push((30, log(Phase::Setup, "Reading package lists...")));
    ev.push((
        40,
        log(
            Phase::Setup,
            "debconf: delaying package configuration, since apt-utils is not installed",
        ),
    ));
    ev.push((50, log(Phase::Setup, " 10%\r 55%\r100% [Working]")));
    ev
}

#[test]
fn a_running_phase_shows_its_elapsed_time_and_last_lines() {
    let (screen, _) = draw(&a_build(), false);
    insta::assert_snapshot!(screen);
}

#[test]
fn the_summary_line_is_last_and_no_live_line_is_left() {
    let mut ev = a_build();
    ev.push((
        3_250,
        end(
            Phase::Setup,
            PhaseStatus::Built,
            3_230,
            "the `setup.packages.apt` changed",
        ),
    ));
    for p in &Phase::ALL[6..] {
        ev.push((3_300, Event::PhaseStart { phase: *p }));
        ev.push((
            3_400,
            end(*p, PhaseStatus::Built, 100, "after setup rebuilt"),
        ));
    }
    ev.push((3_500, build_end(true, 3_500)));
    let (screen, _) = draw(&ev, false);
    assert!(
        screen
            .lines()
            .last()
            .unwrap_or("")
            .starts_with("done in 3.5s"),
        "{screen}"
    );
    assert!(!screen.contains("running"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn nothing_changed_is_one_line() {
    let mut ev = vec![(0, start("web"))];
    for p in Phase::ALL {
        ev.push((5, end(p, PhaseStatus::Cached, 0, "")));
    }
    ev.push((60, build_end(true, 60)));
    let (screen, _) = draw(&ev, false);
    insta::assert_snapshot!(screen);
}

#[test]
fn a_base_habitat_is_a_group_under_its_name() {
    let mut ev = vec![
        (0, start("dev")),
        (
            0,
            Event::Note {
                message: "building base habitat `base`".into(),
            },
        ),
        (0, start("base")),
    ];
    for p in &Phase::ALL[..9] {
        ev.push((1, end(*p, PhaseStatus::Cached, 0, "")));
    }
    ev.push((
        2,
        Event::PhaseStart {
            phase: Phase::Final,
        },
    ));
    ev.push((
        900,
        end(Phase::Final, PhaseStatus::Built, 898, "no snapshot yet"),
    ));
    ev.push((900, build_end(true, 900)));
    ev.push((
        901,
        end(Phase::Base, PhaseStatus::Built, 1, "the base moved"),
    ));
    for p in &Phase::ALL[1..] {
        ev.push((902, end(*p, PhaseStatus::Cached, 0, "")));
    }
    ev.push((1_000, build_end(true, 1_000)));
    let (screen, _) = draw(&ev, false);
    insta::assert_snapshot!(screen);
}

#[test]
fn long_lines_are_cut_to_the_width_instead_of_wrapping() {
    let long = "x".repeat(200);
    let mut ev = a_build();
    ev.push((60, log(Phase::Setup, &long)));
    let (screen, _) = draw(&ev, false);
    for line in screen.lines() {
        assert!(line.chars().count() < usize::from(W), "{line}");
    }
    // Nothing wrapped: every line drawn is one screen row.
    assert_eq!(screen.lines().count(), 6, "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn an_interrupt_leaves_no_spinner_or_duplicated_line() {
    let t0 = Instant::now();
    let mut screen = Screen::new(Vec::new(), usize::from(W), false);
    for (at, e) in a_build() {
        screen.event(&e, t0 + ms(at));
    }
    for i in 1..30 {
        screen.tick(t0 + ms(100 * i));
    }
    screen.clear();
    let text = shown(&screen.into_inner());
    assert!(!text.contains("running"), "{text}");
    assert_eq!(text.matches("1-base").count(), 1, "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn colour_marks_states_and_is_off_when_asked() {
    let mut ev = a_build();
    ev.push((70, end(Phase::Setup, PhaseStatus::Failed, 50, "")));
    ev.push((80, build_end(false, 80)));
    let (plain_screen, plain) = draw(&ev, false);
    let (colour_screen, colour) = draw(&ev, true);
    assert!(!has_sgr(&plain), "no colour when it is off");
    assert!(
        String::from_utf8_lossy(&colour).contains("\x1b[1m\x1b[31m"),
        "red failure"
    );
    // The same text either way: output makes sense without colour.
    assert_eq!(plain_screen, colour_screen);
    let mut parser = vt100::Parser::new(H, W, 0);
    parser.process(&onlcr(&colour));
    let row = plain_screen
        .lines()
        .position(|l| l.contains("failed"))
        .unwrap_or(0);
    let cell = parser.screen().cell(row as u16, 0);
    assert_eq!(cell.map(|c| c.fgcolor()), Some(vt100::Color::Idx(1)));
}

/// Whether `bytes` set a colour or attribute (a CSI sequence ending in `m`).
fn has_sgr(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.split("\x1b[").skip(1).any(|rest| {
        rest.chars()
            .find(|c| !c.is_ascii_digit() && *c != ';')
            .is_some_and(|c| c == 'm')
    })
}

/// Generated: whatever the events and widths, no drawn line reaches the
/// width and the summary is the last line.
#[test]
fn generated_builds_never_wrap_and_end_with_the_summary() {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let width = 20 + (next() % 100) as usize;
        let t0 = Instant::now();
        let mut screen = Screen::new(Vec::new(), width, next() % 2 == 0);
        let mut at = 0;
        screen.event(&start("h"), t0);
        for p in Phase::ALL {
            at += next() % 500;
            if next() % 2 == 0 {
                screen.event(&end(p, PhaseStatus::Cached, 0, ""), t0 + ms(at));
                continue;
            }
            screen.event(&Event::PhaseStart { phase: p }, t0 + ms(at));
            for _ in 0..next() % 12 {
                let line = "y".repeat((next() % 300) as usize);
                at += next() % 300;
                screen.event(&log(p, &line), t0 + ms(at));
                screen.tick(t0 + ms(at + 50));
            }
            screen.event(
                &end(p, PhaseStatus::Built, at, "no snapshot yet"),
                t0 + ms(at),
            );
        }
        screen.event(&build_end(true, at), t0 + ms(at));
        let mut parser = vt100::Parser::new(200, width as u16, 0);
        parser.process(&onlcr(&screen.into_inner()));
        let text = parser.screen().contents();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .collect();
        for l in &lines {
            assert!(l.chars().count() < width, "width {width}: {l}");
        }
        assert!(
            lines.last().is_some_and(|l| l.starts_with("done in")),
            "{text}"
        );
        assert!(!text.contains("running"), "{text}");
    }
}

fn push_events() -> Vec<(u64, Event)> {
    use kiln_core::report::BlobState;
    let blob = |digest: &str, sent: u64, state: BlobState| Event::PushBlob {
        image: "final".into(),
        digest: digest.into(),
        size: 8_000_000,
        sent,
        state,
    };
    vec![
        (
            0,
            Event::PushStart {
                repository: "127.0.0.1:5000/team/app".into(),
                images: vec!["1-base".into(), "final".into()],
            },
        ),
        (10, blob("sha256:aa", 0, BlobState::Uploading)),
        (20, blob("sha256:bb", 0, BlobState::Uploading)),
        (400, blob("sha256:aa", 4_000_000, BlobState::Uploading)),
        (
            500,
            Event::PushImage {
                image: "1-base".into(),
                tags: vec!["cache-0123".into()],
                digest: "sha256:0123456789abcdef".into(),
                uploaded: 0,
                present: 2,
                bytes_uploaded: 0,
            },
        ),
    ]
}

#[test]
fn a_push_shows_its_bytes_live_and_ends_with_its_summary() {
    let mut ev = vec![(0, start("web"))];
    for p in Phase::ALL {
        ev.push((5, end(p, PhaseStatus::Cached, 0, "")));
    }
    ev.push((60, build_end(true, 60)));
    ev.extend(push_events().into_iter().map(|(t, e)| (t + 100, e)));
    let (live, _) = draw(&ev, false);
    let last = live.lines().last().unwrap_or("");
    assert!(last.contains("pushing 1/2  4.0 MB / 16.0 MB"), "{live}");
    assert!(
        live.contains("✔ 1-base     nothing new, 2 present -> 0123456789ab"),
        "{live}"
    );

    ev.push((
        2_000,
        Event::PushEnd {
            repository: "127.0.0.1:5000/team/app".into(),
            ok: true,
            duration: ms(1_900),
            bytes_uploaded: 16_000_000,
            blobs_uploaded: 2,
            blobs_present: 2,
        },
    ));
    let (done, _) = draw(&ev, false);
    assert!(
        !done.contains("pushing 1/2"),
        "no live line is left: {done}"
    );
    // Cut to the 60 columns, as every line is.
    assert_eq!(
        done.lines().last(),
        Some("pushed to `127.0.0.1:5000/team/app` in 1.9s: 2 up (16.0 MB…"),
        "{done}"
    );
}

/// A build that pulled its final snapshot: one line for the phases within
/// it and the pull, then the summary; nothing left live.
#[test]
fn a_pulled_build_is_one_pulled_line_then_the_summary() {
    let mut ev = vec![
        (0, start("x")),
        (
            1,
            Event::Pulling {
                phase: Phase::Final,
                reference: "127.0.0.1:5000/x@sha256:abc".into(),
            },
        ),
    ];
    for p in &Phase::ALL[..9] {
        let mut e = end(*p, PhaseStatus::Pulled, 0, "within 10-final's snapshot");
        if let Event::PhaseEnd { image, .. } = &mut e {
            image.clear();
        }
        ev.push((900, e));
    }
    ev.push((
        900,
        end(Phase::Final, PhaseStatus::Pulled, 899, "no snapshot yet"),
    ));
    ev.push((901, build_end(true, 901)));
    let (text, _) = draw(&ev, false);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "building habitat `x`");
    assert_eq!(lines[1], "✔ 1-base … 10-final pulled   0.9s");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[2].contains("habitat-x:final-0123456789ab"), "{text}");
}

/// The layer events of a pull of `image`: two layers, one present, one
/// coming down in two reads.
fn pull_layers(image: &str, t0: u64) -> Vec<(u64, Event)> {
    use kiln_core::report::LayerState;
    let layer = |layer: &str, state, done, bytes| Event::PullLayer {
        image: image.into(),
        layer: layer.into(),
        state,
        layers: 2,
        layers_done: done,
        bytes,
        bytes_total: 40_100_000,
    };
    vec![
        (t0, layer("aaaaaaaaaaaa", LayerState::Present, 1, 0)),
        (
            t0 + 100,
            layer("bbbbbbbbbbbb", LayerState::Downloading, 1, 12_400_000),
        ),
        (
            t0 + 700,
            layer("bbbbbbbbbbbb", LayerState::Downloading, 1, 40_100_000),
        ),
        (
            t0 + 800,
            layer("bbbbbbbbbbbb", LayerState::Done, 2, 40_100_000),
        ),
    ]
}

fn pull_end(image: &str, reference: &str, ok: bool) -> Event {
    Event::PullEnd {
        image: image.into(),
        reference: reference.into(),
        ok,
        duration: ms(850),
        layers: 2,
        layers_present: 1,
        bytes: 40_100_000,
    }
}

/// A build that pulls its tools snapshot: the pulling phase is a live line
/// of layers and bytes, and its finished line says what came down.
#[test]
fn a_pulling_phase_shows_its_layers_and_bytes_live() {
    let reference = "127.0.0.1:5000/x@sha256:abc";
    let mut ev = vec![
        (0, start("x")),
        (
            1,
            Event::Pulling {
                phase: Phase::Tools,
                reference: reference.into(),
            },
        ),
    ];
    ev.extend(pull_layers("8-tools", 10).into_iter().take(2));
    let (live, _) = draw(&ev, false);
    insta::assert_snapshot!("pulling_phase_live", live);
    assert_eq!(
        live.lines().last().map(str::trim_end),
        Some("⠙ pulling 8-tools  1/2 layers  12.4 MB / 40.1 MB   0.1s")
    );

    ev.extend(pull_layers("8-tools", 10).into_iter().skip(2));
    ev.push((860, pull_end("8-tools", reference, true)));
    for p in &Phase::ALL[..7] {
        let mut e = end(*p, PhaseStatus::Pulled, 0, "within 8-tools's snapshot");
        if let Event::PhaseEnd { image, .. } = &mut e {
            image.clear();
        }
        ev.push((870, e));
    }
    ev.push((870, end(Phase::Tools, PhaseStatus::Pulled, 869, "")));
    ev.push((
        880,
        Event::PhaseStart {
            phase: Phase::Verify,
        },
    ));
    let (text, _) = draw(&ev, false);
    insta::assert_snapshot!("pulling_phase_done", text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1], "✔ 1-base … 8-tools pulled   0.9s  2 layers, 40.1 MB",
        "{text}"
    );
    assert!(!text.contains("pulling 8-tools"), "{text}");
}

/// `kiln up --image`: a pull outside a build is one live line, then its
/// summary; a failed one says so and leaves nothing live.
#[test]
fn a_pull_outside_a_build_is_a_live_line_then_its_summary() {
    let reference = "127.0.0.1:5000/x:pr-1";
    let mut ev = vec![(
        0,
        Event::PullStart {
            image: "10-final".into(),
            reference: reference.into(),
        },
    )];
    ev.extend(pull_layers("10-final", 10).into_iter().take(2));
    let (live, _) = draw(&ev, false);
    let lines: Vec<&str> = live.lines().collect();
    assert_eq!(lines[0], "pulling `127.0.0.1:5000/x:pr-1`", "{live}");
    assert_eq!(
        lines.last().map(|l| l.trim_end()),
        Some("⠙ pulling 10-final  1/2 layers  12.4 MB / 40.1 MB   0.1s"),
        "{live}"
    );

    let mut ok = ev.clone();
    ok.extend(pull_layers("10-final", 10).into_iter().skip(2));
    ok.push((900, pull_end("10-final", reference, true)));
    let (text, _) = draw(&ok, false);
    insta::assert_snapshot!("pull_outside_a_build", text);
    assert_eq!(text.lines().count(), 2, "{text}");

    ev.push((300, pull_end("10-final", reference, false)));
    let (failed, _) = draw(&ev, false);
    assert_eq!(
        failed.lines().last(),
        Some("pull of `127.0.0.1:5000/x:pr-1` failed after 0.8s"),
        "{failed}"
    );
    assert!(!failed.contains("layers  "), "{failed}");
}

/// A snapshot pull that fails leaves no live pull line: the build says so
/// in a note and goes on locally.
#[test]
fn a_failed_pull_in_a_build_leaves_no_live_line() {
    let reference = "127.0.0.1:5000/x@sha256:abc";
    let mut ev = vec![
        (0, start("x")),
        (
            1,
            Event::Pulling {
                phase: Phase::Tools,
                reference: reference.into(),
            },
        ),
    ];
    ev.extend(pull_layers("8-tools", 10).into_iter().take(2));
    ev.push((300, pull_end("8-tools", reference, false)));
    ev.push((
        310,
        Event::Note {
            message: "the pull failed; building locally".into(),
        },
    ));
    let (text, _) = draw(&ev, false);
    assert!(!text.contains("pulling 8-tools"), "{text}");
    assert_eq!(
        text.lines().last(),
        Some("note: the pull failed; building locally"),
        "{text}"
    );
}
