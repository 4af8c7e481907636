//! The build's event stream. The library never prints: it emits [`Event`]s to
//! a [`Reporter`], and the CLI renders them as tty, plain or JSON output.

use std::time::Duration;

use crate::phase::Phase;

/// How a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseStatus {
    Built,
    Cached,
    /// Taken from the registry's snapshot cache (the pulled phase, and the
    /// phases within it, which ran nowhere here).
    Pulled,
    Failed,
}

impl PhaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseStatus::Built => "built",
            PhaseStatus::Cached => "cached",
            PhaseStatus::Pulled => "pulled",
            PhaseStatus::Failed => "failed",
        }
    }
}

/// Where a blob of a push stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// The registry had it: nothing sent.
    Present,
    /// Going up; `sent` of `size` bytes so far.
    Uploading,
    /// Up, all of it.
    Uploaded,
}

impl BlobState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobState::Present => "present",
            BlobState::Uploading => "uploading",
            BlobState::Uploaded => "uploaded",
        }
    }
}

/// Everything a build tells the outside world.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The build of `habitat` begins; `phases` will follow.
    BuildStart {
        habitat: String,
    },
    /// Another build of the same habitat holds the lock; this one waits.
    Waiting {
        habitat: String,
        holder: String,
    },
    /// A note worth showing (e.g. "making bootstrap base").
    Note {
        message: String,
    },
    PhaseStart {
        phase: Phase,
    },
    /// The snapshot of `phase` is being pulled from the registry
    /// (`reference`, `HOST/PATH@sha256:…`) instead of running the phases up to it.
    Pulling {
        phase: Phase,
        reference: String,
    },
    PhaseLog {
        phase: Phase,
        stream: &'static str,
        line: String,
    },
    PhaseEnd {
        phase: Phase,
        status: PhaseStatus,
        duration: Duration,
        image: String,
        key: String,
        reason: String,
    },
    /// One step of a phase built in steps (SPEC §5) ended: `step` is its
    /// tag (`6-setup.3`), `name` what the config calls it (`commands.root[2]`).
    StepEnd {
        phase: Phase,
        step: String,
        name: String,
        status: PhaseStatus,
        duration: Duration,
        image: String,
        key: String,
        reason: String,
    },
    /// After a successful build, the automatic `soft` prune (`cache.keep`)
    /// removed these old snapshots (phase and key), freeing `freed` bytes.
    Pruned {
        habitat: String,
        /// Each removed snapshot's tag (`6-setup`, or a step's `6-setup.3`)
        /// and key.
        removed: Vec<(String, String)>,
        freed: u64,
    },
    BuildEnd {
        ok: bool,
        duration: Duration,
        image: Option<String>,
    },
    /// A push to `repository` (`HOST/PATH`) begins, of `images` (`1-base`
    /// … `final`), in that order.
    PushStart {
        repository: String,
        images: Vec<String>,
    },
    /// A blob (layer or config) of `image`, counted for the first image
    /// that names it: found in the registry, going up, or up.
    PushBlob {
        image: String,
        digest: String,
        size: u64,
        sent: u64,
        state: BlobState,
    },
    /// `image` is in the registry as manifest `digest` under `tags`, with
    /// `uploaded` of its blobs sent now and `present` found there.
    PushImage {
        image: String,
        tags: Vec<String>,
        digest: String,
        uploaded: usize,
        present: usize,
        bytes_uploaded: u64,
    },
    PushEnd {
        repository: String,
        ok: bool,
        duration: Duration,
        bytes_uploaded: u64,
        blobs_uploaded: usize,
        blobs_present: usize,
    },
}

/// Receives events as they happen. Must be cheap: it is called inline.
pub trait Reporter: Send + Sync {
    fn report(&mut self, event: Event);
}

/// A reporter that keeps every event, for tests and for callers that render later.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Vec<Event>,
}

impl Reporter for Recorder {
    fn report(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// A reporter that drops everything.
#[derive(Debug, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn report(&mut self, _event: Event) {}
}
