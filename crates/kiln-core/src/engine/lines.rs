//! Container output as lines: bytes in frames that may cut a line anywhere,
//! turned into one line per `on_line` call, per stream. Shared by the Docker
//! engine (its demultiplexed output) and the fake (its scripted lines), so
//! both cut an over-long line the same way.

use super::Stream;

/// The longest line handed on, in bytes. A longer one (a progress bar
/// redrawn with `\r`, a minified file `cat`ed) is handed on in pieces of at
/// most this size, so neither the splitter nor an event holds more than this
/// of one line. Docker's own log drivers cut lines at 16 KiB the same way.
pub const MAX_LINE: usize = 64 * 1024;

/// Splits output into lines per stream; each stream keeps its own
/// unfinished tail.
#[derive(Default)]
pub struct LineSplitter {
    stdout: Tail,
    stderr: Tail,
}

/// One stream's unfinished line.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no newline: each byte is searched
    /// once, however many frames a long line arrives in (searching the whole
    /// tail again on every frame made a 40 MB line cost minutes).
    scanned: usize,
    /// Bytes searched for a newline, over the splitter's life (tests read it).
    examined: usize,
}

impl LineSplitter {
    pub fn push(
        &mut self,
        stream: Stream,
        bytes: &[u8],
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) {
        self.tail(stream)
            .push(bytes, &mut |line| emit(stream, line, on_line));
    }

    /// Emits the partial last lines (output that did not end in a newline).
    pub fn finish(&mut self, on_line: &mut (dyn FnMut(Stream, &str) + Send)) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let tail = self.tail(stream);
            if !tail.buf.is_empty() {
                let line = std::mem::take(&mut tail.buf);
                tail.scanned = 0;
                emit(stream, &line, on_line);
            }
        }
    }

    fn tail(&mut self, stream: Stream) -> &mut Tail {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// Bytes searched so far and bytes held, for tests of the cost.
    #[cfg(test)]
    fn cost(&self) -> (usize, usize) {
        (
            self.stdout.examined + self.stderr.examined,
            self.stdout.buf.capacity().max(self.stdout.buf.len()) + self.stderr.buf.len(),
        )
    }
}

impl Tail {
    fn push(&mut self, bytes: &[u8], emit: &mut dyn FnMut(&[u8])) {
        self.buf.extend_from_slice(bytes);
        // Lines are emitted from slices and the emitted bytes dropped once at
        // the end: draining after each line would move the rest every time.
        let mut start = 0;
        let mut from = self.scanned;
        loop {
            // A newline at `start + MAX_LINE` still ends a line of MAX_LINE bytes.
            let limit = self.buf.len().min(start + MAX_LINE + 1);
            let window = &self.buf[from..limit];
            let found = window.iter().position(|b| *b == b'\n');
            self.examined += found.map_or(window.len(), |i| i + 1);
            if let Some(i) = found {
                let end = from + i;
                emit(&self.buf[start..end]);
                start = end + 1;
                from = start;
            } else if limit == start + MAX_LINE + 1 {
                let cut = char_boundary(&self.buf[start..], MAX_LINE);
                emit(&self.buf[start..start + cut]);
                start += cut;
                from = limit;
            } else {
                from = limit;
                break;
            }
        }
        self.buf.drain(..start);
        self.scanned = from - start;
        // A cut-down buffer gives back what a long line made it take.
        if self.buf.capacity() > 4 * MAX_LINE {
            self.buf.shrink_to(2 * MAX_LINE);
        }
    }
}

/// The largest cut at or below `at` that does not split a UTF-8 character
/// (`bytes[at]` exists); `at` itself when the bytes are not UTF-8 there.
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    (at.saturating_sub(3)..=at)
        .rev()
        .find(|&n| n > 0 && !is_continuation(bytes[n]))
        .unwrap_or(at)
}

fn emit(stream: Stream, line: &[u8], on_line: &mut (dyn FnMut(Stream, &str) + Send)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    on_line(stream, &String::from_utf8_lossy(line));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(frames: &[(Stream, &[u8])]) -> Vec<(Stream, String)> {
        let mut lines = Vec::new();
        let mut on_line = |s: Stream, l: &str| lines.push((s, l.to_string()));
        let mut sp = LineSplitter::default();
        for (stream, bytes) in frames {
            sp.push(*stream, bytes, &mut on_line);
        }
        sp.finish(&mut on_line);
        lines
    }

    #[test]
    fn lines_are_split_across_frames_and_partial_tails_kept() {
        let lines = collect(&[
            (Stream::Stdout, b"a\nb"),
            (Stream::Stderr, b"x\r\n"),
            (Stream::Stdout, b"c\n\nd"),
        ]);
        let expected = [
            (Stream::Stdout, "a"),
            (Stream::Stderr, "x"),
            (Stream::Stdout, "bc"),
            (Stream::Stdout, ""),
            (Stream::Stdout, "d"),
        ];
        let expected: Vec<(Stream, String)> =
            expected.iter().map(|(s, l)| (*s, l.to_string())).collect();
        assert_eq!(lines, expected);
    }

    /// Bug: a 40 MB line without a newline took 17 s and 216 MB: every frame
    /// searched the whole unfinished tail again (quadratic), and the tail
    /// grew without bound. Now each byte is searched once and at most
    /// `MAX_LINE` of a line is held; the line arrives in `MAX_LINE` pieces.
    #[test]
    fn regression_a_long_line_without_newline_costs_linear_time_and_bounded_memory() {
        const TOTAL: usize = 40 << 20;
        let frame = vec![b'x'; 32 << 10];
        let mut pieces = Vec::new();
        let mut on_line = |_: Stream, l: &str| pieces.push(l.len());
        let mut sp = LineSplitter::default();
        for i in 1..=TOTAL / frame.len() {
            sp.push(Stream::Stdout, &frame, &mut on_line);
            // Checked as it goes: the quadratic splitter would take minutes.
            let (examined, held) = sp.cost();
            let pushed = i * frame.len();
            assert!(
                examined <= pushed + pushed / MAX_LINE,
                "{examined} bytes searched for {pushed} pushed"
            );
            assert!(held <= 4 * MAX_LINE, "{held} bytes held");
        }
        sp.finish(&mut on_line);
        assert_eq!(pieces.iter().sum::<usize>(), TOTAL);
        assert!(
            pieces.iter().all(|n| *n <= MAX_LINE),
            "a piece over the cap"
        );
    }

    #[test]
    fn many_lines_in_one_frame_are_not_moved_once_per_line() {
        let frame: Vec<u8> = b"ab\n".repeat(100_000);
        let mut n = 0;
        let mut sp = LineSplitter::default();
        sp.push(Stream::Stdout, &frame, &mut |_, l| {
            assert_eq!(l, "ab");
            n += 1;
        });
        assert_eq!(n, 100_000);
        assert_eq!(sp.cost().0, frame.len());
    }

    #[test]
    fn an_over_long_line_is_cut_at_the_cap_and_never_inside_a_character() {
        let long = "é".repeat(MAX_LINE); // two bytes each
        let text = format!("{long}\nshort\n");
        let lines = collect(&[(Stream::Stdout, text.as_bytes())]);
        let texts: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(texts.concat(), format!("{long}short"));
        assert!(texts.iter().all(|l| l.len() <= MAX_LINE));
        assert!(
            !texts.concat().contains('\u{FFFD}'),
            "a character was split"
        );
        assert_eq!(texts.last(), Some(&"short"));
        // A line of exactly the cap is one line.
        let exact = "y".repeat(MAX_LINE);
        let lines = collect(&[(Stream::Stderr, format!("{exact}\n").as_bytes())]);
        assert_eq!(lines, vec![(Stream::Stderr, exact)]);
    }
}
