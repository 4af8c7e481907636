//! `Layer`: what writing an image layer yields (its diff id and size), the
//! hashing writer both layer writers stream through, and the writer that
//! remembers a failed write, so the cause of a failure is told from its effects.

use std::io::{self, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

/// A written layer: its diff id (`sha256:` of the uncompressed tar) and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub diff_id: String,
    pub size: u64,
    pub entries: usize,
}

/// A writer that hashes what passes through: the layer's diff id.
pub(crate) struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    pub(crate) fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }

    /// How many bytes have passed through so far.
    pub(crate) fn written(&self) -> u64 {
        self.len
    }

    /// Flushes and describes what was written; `entries` is the caller's count.
    pub(crate) fn finish(mut self, entries: usize) -> io::Result<Layer> {
        self.inner.flush()?;
        Ok(Layer {
            diff_id: format!("sha256:{}", hex::encode(self.hash.finalize())),
            size: self.len,
            entries,
        })
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that remembers whether a write to it failed. A layer written
/// through a pipe fails at both ends when the disk fills up: the writer of
/// the file with "no space left", the producer feeding the pipe with "broken
/// pipe". Only the first is the cause, and only this tells which end broke.
pub(crate) struct Watched<W> {
    inner: W,
    failed: bool,
}

impl<W> Watched<W> {
    pub(crate) fn new(inner: W) -> Watched<W> {
        Watched {
            inner,
            failed: false,
        }
    }

    /// Whether a write (or flush) to the inner writer failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }
}

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.failed |= r
            .as_ref()
            .is_err_and(|e| e.kind() != io::ErrorKind::Interrupted);
        r
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.failed |= r.is_err();
        r
    }
}

impl<W: Seek> Seek for Watched<W> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// What a layer is streamed into: a file (from its current position), which
/// the layer writer may read back and rewrite in place afterwards.
pub trait LayerOut: Write + Seek {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&mut self, size: u64) -> io::Result<()>;
}

impl LayerOut for std::fs::File {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }

    fn set_len(&mut self, size: u64) -> io::Result<()> {
        std::fs::File::set_len(self, size)
    }
}

impl<W: LayerOut> LayerOut for Watched<W> {
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let r = self.inner.write_all_at(buf, offset);
        self.failed |= r.is_err();
        r
    }

    fn set_len(&mut self, size: u64) -> io::Result<()> {
        let r = self.inner.set_len(size);
        self.failed |= r.is_err();
        r
    }
}
