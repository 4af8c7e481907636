//! Container output and uploads as streams: the demultiplexed output of a
//! run, an exec or the logs turned into lines per stream (by
//! [`LineSplitter`], which the fake shares), and files sent in chunks.

use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bytes::Bytes;
use futures_util::StreamExt;

use super::super::Stream;
use super::super::lines::LineSplitter;

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
