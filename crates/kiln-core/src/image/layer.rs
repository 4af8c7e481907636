//! `Layer`: what writing an image layer yields (its diff id and size), and the
//! hashing writer both layer writers stream through.

use std::io::{self, Write};

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
