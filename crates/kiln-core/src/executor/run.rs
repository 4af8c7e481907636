//! Carrying a plan out: phase by phase, each cached phase's image handed on,
//! each planned one built by its phase function, every image tagged.

use std::time::Instant;

use crate::engine::Engine;
use crate::image::names;
use crate::phase::Phase;
use crate::plan::{Action, Plan, PlannedStep};
use crate::report::{Event, PhaseStatus};

use super::context::{Executor, PhaseCtx, Produced};
use super::error::{BuildError, fail};

impl<E: Engine> Executor<'_, E> {
    pub(super) async fn run(&mut self, plan: &Plan) -> Result<(), BuildError> {
        // The image each phase's successor builds on, and its config once known.
        let mut current: Option<Produced> = None;
        for (index, planned) in plan.phases.iter().enumerate() {
            let phase = planned.phase;
            let started = Instant::now();
            self.phase_started = started;
            let key = planned.key.key.clone();
            let mut pull_time = None;
            let produced = match &planned.action {
                Action::Cached { image } => Produced::listed(image.clone()),
                // Nothing runs and no snapshot is made: the pulled one holds it.
                Action::Within { pulled, .. } => {
                    self.reporter.report(Event::PhaseEnd {
                        phase,
                        status: if *pulled {
                            PhaseStatus::Pulled
                        } else {
                            PhaseStatus::Cached
                        },
                        duration: std::time::Duration::ZERO,
                        image: String::new(),
                        key: key.to_string(),
                        reason: planned.reason.clone(),
                    });
                    continue;
                }
                Action::Pull { .. } => {
                    let pulled = self
                        .pulled
                        .as_ref()
                        .ok_or_else(|| fail(phase, "the pulled snapshot is missing"))?;
                    pull_time = Some(pulled.duration);
                    Produced::listed(pulled.image.clone())
                }
                Action::Skip => match current.take() {
                    Some(p) => p,
                    None => return Err(fail(phase, "the base phase produced no image")),
                },
                Action::Build => {
                    self.reporter.report(Event::PhaseStart { phase });
                    let tags = self.tags_from(plan, index);
                    let parent = current.take();
                    match self
                        .build_phase(phase, parent, tags, planned.steps.clone())
                        .await
                    {
                        Ok(p) => {
                            // Verify makes no image: its tag points at its parent's.
                            if phase != Phase::Verify {
                                self.made.insert_made(&p.image, key.as_str());
                                // Unsaved, the snapshot is only checked again next build.
                                let _ = self.made.save();
                            }
                            p
                        }
                        Err(e) => {
                            self.reporter.report(Event::PhaseEnd {
                                phase,
                                status: PhaseStatus::Failed,
                                duration: started.elapsed(),
                                image: String::new(),
                                key: key.to_string(),
                                reason: planned.reason.clone(),
                            });
                            return Err(e);
                        }
                    }
                }
            };
            let tag = names::snapshot(self.name(), phase);
            self.tag(&produced, &tag).await?;
            let status = match planned.action {
                Action::Build => PhaseStatus::Built,
                Action::Pull { .. } => PhaseStatus::Pulled,
                _ => PhaseStatus::Cached,
            };
            self.reporter.report(Event::PhaseEnd {
                phase,
                status,
                duration: pull_time.unwrap_or_else(|| started.elapsed()),
                image: tag,
                key: key.to_string(),
                reason: planned.reason.clone(),
            });
            current = Some(produced);
        }
        let last = current.ok_or_else(|| fail(Phase::Final, "no final image"))?;
        for reference in self.final_tags() {
            self.tag(&last, &reference).await?;
        }
        Ok(())
    }

    /// `habitat-NAME:final-KEY12` and `habitat-NAME:latest`.
    fn final_tags(&self) -> [String; 2] {
        let repo = names::repository(self.name());
        let key = self.chain.final_key();
        [
            format!("{repo}:{}", names::final_tag(key.as_str())),
            format!("{repo}:latest"),
        ]
    }

    /// The references the image of `plan.phases[index]` gets: its own tag,
    /// the tags of the skipped phases after it (they point at the same
    /// image), and the final tags when only skipped phases follow.
    fn tags_from(&self, plan: &Plan, index: usize) -> Vec<String> {
        let rest = &plan.phases[index..];
        let own = rest
            .iter()
            .enumerate()
            .take_while(|(i, p)| *i == 0 || p.action == Action::Skip)
            .count();
        let mut tags: Vec<String> = rest[..own]
            .iter()
            .map(|p| names::snapshot(self.name(), p.phase))
            .collect();
        if own == rest.len() {
            tags.extend(self.final_tags());
        }
        tags
    }

    /// Tags `image` as `reference` unless its load or the listing already did.
    async fn tag(&self, image: &Produced, reference: &str) -> Result<(), BuildError> {
        if image.tagged.iter().any(|t| t == reference)
            || self.snaps.tag_target(reference) == Some(image.image.as_str())
        {
            return Ok(());
        }
        let (repo, tag) = reference.rsplit_once(':').unwrap_or((reference, "latest"));
        self.engine.tag(&image.image, repo, tag).await?;
        Ok(())
    }

    /// Builds one phase on `parent` (the previous phase's image; none for
    /// the base) and returns its image, tagged as `tags`.
    async fn build_phase(
        &mut self,
        phase: Phase,
        parent: Option<Produced>,
        tags: Vec<String>,
        steps: Vec<PlannedStep>,
    ) -> Result<Produced, BuildError> {
        let (parent, tagged) = match phase {
            Phase::Base => {
                let id = self.resolve_base().await?;
                (self.image_state(&id).await?, Vec::new())
            }
            _ => {
                let parent = parent.ok_or_else(|| fail(phase, "no parent image"))?;
                let state = match parent.state {
                    Some(s) => s,
                    None => self.image_state(&parent.image).await?,
                };
                (state, parent.tagged)
            }
        };
        if phase >= Phase::Habitat {
            self.expand_paths(&parent.config.env)?;
        }
        let ctx = PhaseCtx {
            phase,
            config: parent.config.clone(),
            parent,
            tags,
            steps,
            step: None,
        };
        match phase {
            Phase::Base | Phase::Env | Phase::Final => self.config_phase(ctx).await,
            Phase::Users => self.run_users(ctx).await,
            Phase::Habitat => self.run_habitat(ctx).await,
            Phase::Files => self.run_files(ctx).await,
            Phase::Setup => self.run_setup(ctx).await,
            Phase::Repos => self.run_repos(ctx).await,
            Phase::Tools => self.run_tools(ctx).await,
            Phase::Verify => {
                // Verify makes no image: its tag points at its parent's.
                self.run_verify(&ctx).await?;
                Ok(Produced {
                    image: ctx.parent.id.clone(),
                    state: Some(ctx.parent),
                    tagged,
                })
            }
        }
    }
}
