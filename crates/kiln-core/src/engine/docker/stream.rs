//! Container output and uploads as streams: the demultiplexed output of a
//! run, an exec or the logs turned into lines per stream, and files sent in
//! chunks.

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bytes::Bytes;
use futures_util::StreamExt;

use super::super::Stream;

/// A file as a stream of chunks, to send large archives without holding them
/// in memory.
pub(super) fn file_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures_util::stream::try_unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((Bytes::from(buf), file)))
    })
}

/// Splits multiplexed container output into lines per stream; frames may cut
/// a line anywhere, so each stream keeps its own unfinished tail.
#[derive(Default)]
struct LineSplitter {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl LineSplitter {
    fn push(
        &mut self,
        stream: Stream,
        bytes: &[u8],
        on_line: &mut (dyn FnMut(Stream, &str) + Send),
    ) {
        let buf = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        buf.extend_from_slice(bytes);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            emit(stream, &line[..i], on_line);
        }
    }

    /// Emits the partial last lines (output that did not end in a newline).
    fn finish(&mut self, on_line: &mut (dyn FnMut(Stream, &str) + Send)) {
        for (stream, buf) in [
            (Stream::Stdout, &mut self.stdout),
            (Stream::Stderr, &mut self.stderr),
        ] {
            if !buf.is_empty() {
                let line = std::mem::take(buf);
                emit(stream, &line, on_line);
            }
        }
    }
}

fn emit(stream: Stream, line: &[u8], on_line: &mut (dyn FnMut(Stream, &str) + Send)) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    on_line(stream, &String::from_utf8_lossy(line));
}

/// Feeds multiplexed container output (of a run, an exec or the logs) to
/// `on_line`, line by line, until it ends. Partial last lines are emitted
/// before an error is returned, so no output that arrived is lost.
pub(super) async fn pump_output(
    output: impl futures_util::Stream<Item = Result<LogOutput, BollardError>>,
    on_line: &mut (dyn FnMut(Stream, &str) + Send),
) -> Result<(), BollardError> {
    let mut output = std::pin::pin!(output);
    let mut splitter = LineSplitter::default();
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(LogOutput::StdErr { message }) => splitter.push(Stream::Stderr, &message, on_line),
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                splitter.push(Stream::Stdout, &message, on_line)
            }
            Ok(LogOutput::StdIn { .. }) => {}
            Err(e) => {
                splitter.finish(on_line);
                return Err(e);
            }
        }
    }
    splitter.finish(on_line);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_frames_and_partial_tails_kept() {
        let mut lines = Vec::new();
        let mut on_line = |s: Stream, l: &str| lines.push((s, l.to_string()));
        let mut sp = LineSplitter::default();
        sp.push(Stream::Stdout, b"a\nb", &mut on_line);
        sp.push(Stream::Stderr, b"x\r\n", &mut on_line);
        sp.push(Stream::Stdout, b"c\n\nd", &mut on_line);
        sp.finish(&mut on_line);
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
}
