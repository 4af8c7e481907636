//! The base phase's image: a local or pulled image, a bootstrap image made on
//! the host, or another habitat's final image (built first by `resolve`);
//! each time the very image the key was computed from.

use crate::config::BaseSource;
use crate::engine::{Engine, EngineError};
use crate::image::names;
use crate::keys::BaseFact;
use crate::phase::Phase;
use crate::report::Event;
use crate::sources::bootstrap;

use crate::executor::context::Executor;
use crate::executor::error::{BuildError, fail};
use crate::executor::provenance::{Wanted, find_snapshots, probe_tags};
use crate::executor::resolve::load_base_habitat;

impl<E: Engine> Executor<'_, E> {
    /// The id (or reference) of the image the base phase builds on.
    pub(in crate::executor) async fn resolve_base(&mut self) -> Result<String, BuildError> {
        let config = self.config().clone();
        match config.build.base.source() {
            Some(BaseSource::Image(r)) => {
                // The image the key was computed from, not whatever the
                // reference points at by now.
                if let BaseFact::Image { id: Some(id), .. } = &self.facts.base {
                    return match self.engine.image_inspect(id).await? {
                        Some(info) => Ok(info.id),
                        None => Err(fail(
                            Phase::Base,
                            format!(
                                "base image `{r}` (`{id}`) was removed while kiln read it; build again"
                            ),
                        )),
                    };
                }
                self.reporter.report(Event::Note {
                    message: format!("pulling `{r}`"),
                });
                self.engine.pull(r).await.map_err(|e| match e {
                    EngineError::Unreachable { .. } => BuildError::Engine(e),
                    other => fail(Phase::Base, format!("cannot pull base image `{r}`: {other}\nhint: check the name, or make the image locally (`docker import`, or use `base: {{ bootstrap: ... }}`)")),
                })?;
                match self.engine.image_inspect(r).await? {
                    Some(info) => Ok(info.id),
                    None => Err(fail(
                        Phase::Base,
                        format!("base image `{r}` is missing after its pull"),
                    )),
                }
            }
            Some(BaseSource::Bootstrap(b)) => {
                let reporter = &mut *self.reporter;
                let mut on_line = |line: &str| {
                    reporter.report(Event::PhaseLog {
                        phase: Phase::Base,
                        stream: "stdout",
                        line: line.to_string(),
                    });
                };
                bootstrap::ensure_image_in(
                    self.engine,
                    b,
                    &self.opts.cache().bootstrap(),
                    &mut on_line,
                )
                .await
                .map_err(|e| fail(Phase::Base, e.to_string()))
            }
            Some(BaseSource::Habitat(path)) => {
                let BaseFact::Habitat { final_key } = &self.facts.base else {
                    return Err(fail(Phase::Base, "base habitat was not resolved"));
                };
                let other = load_base_habitat(self.habitat, path, &[])?;
                // The final image kiln made with that key, not whatever its
                // tag points at by now (a tag anyone can move).
                let probe = probe_tags(self.engine, &other.config.name, &self.opts.cache()).await?;
                let wanted = Wanted {
                    keys: vec![final_key.as_str()],
                    verify: None,
                    steps: Vec::new(),
                };
                let (snaps, _) = find_snapshots(self.engine, probe, &wanted).await?;
                match snaps.image_for(final_key) {
                    Some(id) => Ok(id.to_string()),
                    None => Err(fail(
                        Phase::Base,
                        format!(
                            "base habitat `{}` has no final image `{}` that kiln made; build again",
                            other.config.name,
                            names::final_image(&other.config.name, final_key)
                        ),
                    )),
                }
            }
            None => Err(fail(Phase::Base, "no base")),
        }
    }
}
