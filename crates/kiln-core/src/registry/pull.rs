//! Registry → engine: an image [`super::push`] put in a repository, pulled
//! by the engine itself (`docker pull HOST/PATH@sha256:…`), with the user's
//! credentials handed to it for that one pull. Loopback registries need no
//! TLS: Docker trusts `127.0.0.0/8` as an insecure registry by default.
//!
//! A snapshot pushed without added labels comes back with the id it had
//! where it was built (its config is the same bytes); the caller decides
//! whether to take it as a snapshot.
//!
//! [`pull_reported`] is the one way a pull tells its progress: the engine's
//! layer records, added up by a [`PullTally`], become `PullLayer` events and
//! one `PullEnd`.

use std::collections::BTreeMap;
use std::time::Instant;

use super::oci::Credentials;
use crate::engine::{Engine, EngineError, EngineResult, LayerState, PullProgress, RegistryAuth};
use crate::report::{Event, Reporter};

/// `HOST/PATH:TAG`, or `HOST/PATH@sha256:…` for a digest.
pub fn reference(host: &str, repo: &str, tag_or_digest: &str) -> String {
    if tag_or_digest.starts_with("sha256:") {
        format!("{host}/{repo}@{tag_or_digest}")
    } else {
        format!("{host}/{repo}:{tag_or_digest}")
    }
}

/// Pulls `tag_or_digest` of `repo` at `host` into the engine and returns the
/// local image id.
pub async fn pull<E: Engine>(
    engine: &E,
    credentials: &Credentials,
    host: &str,
    repo: &str,
    tag_or_digest: &str,
) -> EngineResult<String> {
    let reference = reference(host, repo, tag_or_digest);
    let auth = credentials.engine_auth(host);
    engine.pull_with(&reference, auth.as_ref()).await?;
    engine
        .image_inspect(&reference)
        .await?
        .map(|i| i.id)
        .ok_or(EngineError::NoSuchImage(reference))
}

/// One layer as far as a pull got: its state and the bytes of it that came
/// down, of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LayerTally {
    state: LayerState,
    down: u64,
    total: u64,
}

/// A pull's progress added up from the engine's layer records: layers named
/// and done, bytes down of the sizes known. Counts never go back: a layer
/// the engine retries keeps what it had, and one done stays done.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PullTally {
    layers: BTreeMap<String, LayerTally>,
}

impl PullTally {
    /// Takes one record; whether anything a reader sees changed.
    pub fn record(&mut self, p: &PullProgress) -> bool {
        let new = !self.layers.contains_key(&p.layer);
        let entry = self.layers.entry(p.layer.clone()).or_insert(LayerTally {
            state: LayerState::Queued,
            down: 0,
            total: 0,
        });
        let before = *entry;
        // Docker gives a layer's size while it comes down; a small one may
        // skip that, and the extraction's total (the same compressed size) says it.
        if matches!(p.state, LayerState::Downloading | LayerState::Extracting) {
            entry.total = entry.total.max(p.total);
        }
        if p.state == LayerState::Downloading {
            let current = match entry.total {
                0 => p.current,
                total => p.current.min(total),
            };
            entry.down = entry.down.max(current);
        }
        if matches!(
            p.state,
            LayerState::Downloaded | LayerState::Extracting | LayerState::Done
        ) {
            entry.down = entry.down.max(entry.total);
        }
        if !entry.state.finished() {
            entry.state = p.state;
        }
        new || *entry != before
    }

    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// Layers pulled or held already.
    pub fn layers_done(&self) -> usize {
        self.layers.values().filter(|l| l.state.finished()).count()
    }

    pub fn layers_present(&self) -> usize {
        self.layers
            .values()
            .filter(|l| l.state == LayerState::Present)
            .count()
    }

    pub fn bytes(&self) -> u64 {
        self.layers.values().map(|l| l.down).sum()
    }

    pub fn bytes_total(&self) -> u64 {
        self.layers.values().map(|l| l.total).sum()
    }
}

/// Pulls `reference` with `auth`, reporting its progress as the pull of
/// `image` (a phase tag, or the reference itself): a `PullLayer` whenever a
/// layer moves on, then one `PullEnd`, failed or not.
pub async fn pull_reported<E: Engine>(
    engine: &E,
    reference: &str,
    auth: Option<&RegistryAuth>,
    image: &str,
    reporter: &mut dyn Reporter,
) -> EngineResult<()> {
    let started = Instant::now();
    let mut tally = PullTally::default();
    let result = engine
        .pull_with_progress(reference, auth, &mut |p| {
            if tally.record(&p) {
                reporter.report(Event::PullLayer {
                    image: image.to_string(),
                    layer: p.layer,
                    state: p.state,
                    layers: tally.layers(),
                    layers_done: tally.layers_done(),
                    bytes: tally.bytes(),
                    bytes_total: tally.bytes_total(),
                });
            }
        })
        .await;
    reporter.report(Event::PullEnd {
        image: image.to_string(),
        reference: reference.to_string(),
        ok: result.is_ok(),
        duration: started.elapsed(),
        layers: tally.layers(),
        layers_present: tally.layers_present(),
        bytes: tally.bytes(),
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(layer: &str, state: LayerState, current: u64, total: u64) -> PullProgress {
        PullProgress {
            layer: layer.to_string(),
            state,
            current,
            total,
        }
    }

    #[test]
    fn the_tally_adds_up_layers_and_bytes_and_never_goes_back() {
        use LayerState::*;
        // (record, changed, layers, done, present, bytes, total)
        let cases = [
            (p("a", Queued, 0, 0), true, 1, 0, 0, 0, 0),
            (p("b", Present, 0, 0), true, 2, 1, 1, 0, 0),
            (p("a", Queued, 0, 0), false, 2, 1, 1, 0, 0),
            (p("a", Downloading, 400, 1000), true, 2, 1, 1, 400, 1000),
            (p("a", Downloading, 400, 1000), false, 2, 1, 1, 400, 1000),
            // A retry starts the layer over; what came down stays counted.
            (p("a", Queued, 0, 0), true, 2, 1, 1, 400, 1000),
            (p("a", Downloading, 100, 1000), true, 2, 1, 1, 400, 1000),
            (p("c", Downloaded, 0, 0), true, 3, 1, 1, 400, 1000),
            // A small layer's size comes with its extraction.
            (p("c", Extracting, 30, 50), true, 3, 1, 1, 450, 1050),
            (p("c", Done, 0, 0), true, 3, 2, 1, 450, 1050),
            (p("a", Extracting, 1000, 1000), true, 3, 2, 1, 1050, 1050),
            (p("a", Done, 0, 0), true, 3, 3, 1, 1050, 1050),
            (p("a", Queued, 0, 0), false, 3, 3, 1, 1050, 1050),
        ];
        let mut t = PullTally::default();
        for (i, (rec, changed, layers, done, present, bytes, total)) in
            cases.into_iter().enumerate()
        {
            assert_eq!(t.record(&rec), changed, "case {i}: {rec:?}");
            assert_eq!(
                (
                    t.layers(),
                    t.layers_done(),
                    t.layers_present(),
                    t.bytes(),
                    t.bytes_total()
                ),
                (layers, done, present, bytes, total),
                "case {i}: {rec:?}"
            );
        }
    }
}
