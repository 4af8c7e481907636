//! Setup: the phase's steps (the packages, each root command, each user
//! script) each run in a started container of the previous step's image,
//! its output streamed and redacted, its container's changes made the step's
//! snapshot (SPEC §5); the last step's is the phase's. The repos phase runs
//! its commands in steps the same way, and verify its commands in one
//! container.

use std::collections::VecDeque;

use std::time::Instant;

use crate::engine::{Engine, ImageConfig, Mount, Stream};
use crate::image::names;
use crate::phase::Phase;
use crate::plan::{Action, PlannedStep};
use crate::report::{Event, PhaseStatus};

use crate::executor::context::{Executor, PhaseCtx, Produced, StepMark};
use crate::executor::error::{BuildError, PhaseFailure, fail};

use super::script::{PhaseScript, SECRETS_DIR};

/// How many lines of a failed phase's output are kept for the error.
const TAIL_LINES: usize = 50;

/// What one step of a phase built in steps does.
pub(in crate::executor) enum StepWork {
    /// Runs a script in a container of the previous step's image.
    Script(PhaseScript),
    /// Places every repo's checkout (the repos phase's first step).
    Checkout,
}

impl<E: Engine> Executor<'_, E> {
    /// Runs setup's steps (SPEC §5), each in its own container and snapshot,
    /// from the first one the plan does not have cached.
    pub(in crate::executor) async fn run_setup(
        &mut self,
        ctx: PhaseCtx,
    ) -> Result<Produced, BuildError> {
        if ctx.steps.is_empty() {
            let script = PhaseScript::setup(self.config());
            let id = self
                .start_script(ctx.phase, &ctx.parent.id, &ctx.config, &script)
                .await?;
            return self.snapshot(ctx, &id).await;
        }
        let work = PhaseScript::setup_steps(self.config())
            .into_iter()
            .map(StepWork::Script)
            .collect();
        self.run_in_steps(ctx, work).await
    }

    /// Builds a phase step by step: the cached steps are handed on (retagged
    /// where their tag moved), each other one is run and snapshotted as
    /// `habitat-H:ID-NAME.N` and recorded in the index, so a failure later
    /// keeps it. The last step's image is the phase's snapshot; when
    /// every step is cached, a config-only image over the last one is.
    pub(in crate::executor) async fn run_in_steps(
        &mut self,
        mut ctx: PhaseCtx,
        work: Vec<StepWork>,
    ) -> Result<Produced, BuildError> {
        let phase = ctx.phase;
        let planned = std::mem::take(&mut ctx.steps);
        if planned.len() != work.len() {
            return Err(fail(
                phase,
                format!(
                    "{} steps planned, {} to run (a bug in kiln)",
                    planned.len(),
                    work.len()
                ),
            ));
        }
        let count = planned.len();
        let mut current = ctx.parent;
        let mut cached: usize = 0;
        for step in &planned {
            let Action::Cached { image } = &step.action else {
                break;
            };
            let started = Instant::now();
            let tag = names::step(self.name(), phase, step.key.number);
            // An earlier step's image may be gone (pruned) while a later
            // one, built on it, proves it: only the deepest is needed.
            if !image.is_empty() && self.snaps.tag_target(&tag) != Some(image.as_str()) {
                let (repo, t) = tag.rsplit_once(':').unwrap_or((&tag, "latest"));
                self.engine.tag(image, repo, t).await?;
            }
            self.report_step(phase, step, PhaseStatus::Cached, started, &tag);
            cached += 1;
        }
        if let Some(Action::Cached { image }) = cached.checked_sub(1).map(|i| &planned[i].action) {
            current = self.image_state(&image.clone()).await?;
        }
        let mut work = work.into_iter().skip(cached);
        for (i, step) in planned.iter().enumerate().skip(cached) {
            let Some(todo) = work.next() else { break };
            let started = Instant::now();
            let last = i + 1 == count;
            let tag = names::step(self.name(), phase, step.key.number);
            let mut tags = vec![tag.clone()];
            if last {
                tags.extend(ctx.tags.iter().cloned());
            }
            let sctx = PhaseCtx {
                phase,
                config: current.config.clone(),
                parent: current,
                tags,
                steps: Vec::new(),
                step: Some(StepMark {
                    tag: step.key.tag(phase),
                    key: step.key.key.to_string(),
                    inputs: step.key.inputs.clone(),
                    last,
                    started,
                }),
            };
            let made = match todo {
                StepWork::Script(script) => {
                    match self
                        .start_script(phase, &sctx.parent.id, &sctx.config, &script)
                        .await
                    {
                        Ok(id) => self.snapshot(sctx, &id).await,
                        Err(e) => Err(e),
                    }
                }
                StepWork::Checkout => self.place_checkouts(sctx).await,
            };
            let produced = match made {
                Ok(p) => p,
                Err(mut e) => {
                    self.report_step(phase, step, PhaseStatus::Failed, started, "");
                    if let BuildError::Phase(p) = &mut e {
                        p.step = Some(step.key.tag(phase));
                    }
                    return Err(e);
                }
            };
            self.made
                .insert_step(&produced.image, step.key.key.as_str());
            // A loaded image is proved kiln's by its id, found by its tag:
            // the index is saved with the phase (or when the build stops),
            // not rewritten on each step's path.
            if !produced.tagged.contains(&tag) {
                // A commit: only the index proves it kiln's, so it is saved
                // now, for a later step's failure to find it next build; its
                // tags are not set by a load.
                let _ = self.made.save();
                let (repo, t) = tag.rsplit_once(':').unwrap_or((&tag, "latest"));
                self.engine.tag(&produced.image, repo, t).await?;
            }
            self.report_step(phase, step, PhaseStatus::Built, started, &tag);
            if last {
                return Ok(produced);
            }
            current = match produced.state {
                Some(state) => state,
                None => self.image_state(&produced.image).await?,
            };
        }
        // Every step was cached, but no image is the phase's snapshot yet
        // (the last step was an earlier config's middle step): label it.
        let last = planned
            .last()
            .ok_or_else(|| fail(phase, "a phase in steps with no step"))?;
        let mut tags = vec![names::step(self.name(), phase, last.key.number)];
        tags.extend(ctx.tags.iter().cloned());
        let sctx = PhaseCtx {
            phase,
            config: current.config.clone(),
            parent: current,
            tags,
            steps: Vec::new(),
            step: Some(StepMark {
                tag: last.key.tag(phase),
                key: last.key.key.to_string(),
                inputs: last.key.inputs.clone(),
                last: true,
                started: Instant::now(),
            }),
        };
        let produced = self.load_phase(sctx).await?;
        self.made
            .insert_step(&produced.image, last.key.key.as_str());
        Ok(produced)
    }

    fn report_step(
        &mut self,
        phase: Phase,
        step: &PlannedStep,
        status: PhaseStatus,
        started: Instant,
        image: &str,
    ) {
        self.reporter.report(Event::StepEnd {
            phase,
            step: step.key.tag(phase),
            name: step.key.name.clone(),
            status,
            duration: started.elapsed(),
            image: image.to_string(),
            key: step.key.key.to_string(),
            reason: step.reason.clone(),
        });
    }

    /// Creates the phase's container, runs `script` in it to the end and
    /// returns the container (exited 0) for the caller to snapshot and remove.
    pub(super) async fn start_script(
        &mut self,
        phase: Phase,
        image: &str,
        config: &ImageConfig,
        script: &PhaseScript,
    ) -> Result<String, BuildError> {
        // Setup's and repos' commands get the secrets (SPEC §6); verify's not.
        let secrets = if matches!(phase, Phase::Setup | Phase::Repos) {
            self.secrets_dir()?
        } else {
            None
        };
        let mut spec = self.container_spec(image);
        spec.entrypoint = Some(vec!["/bin/sh".into(), "-c".into(), script.script()]);
        // Steps start as root. Set only when the image names another user: a
        // user set here would otherwise be merged into the committed config.
        if config.user.as_deref().is_some_and(|u| !u.is_empty()) {
            spec.user = Some("0:0".into());
        }
        if let Some(dir) = &secrets {
            spec.mounts.push(Mount {
                source: dir.mount_source().display().to_string(),
                target: SECRETS_DIR.into(),
                readonly: true,
            });
        }
        let id = self.engine.create_container(&spec).await?;
        // The writable layer's directory is known from the create on:
        // inspected while the script runs, it costs the step nothing.
        let engine = self.engine;
        let (result, inspected) = tokio::join!(
            self.run_steps(phase, &id, script),
            engine.inspect_container(&id)
        );
        if let Ok(Some(info)) = inspected {
            *self.upper_hint.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((id.clone(), info.upper_dir));
        }
        drop(secrets);
        if let Err(e) = result {
            self.engine.remove_container(&id).await?;
            return Err(e);
        }
        Ok(id)
    }

    async fn run_steps(
        &mut self,
        phase: Phase,
        id: &str,
        script: &PhaseScript,
    ) -> Result<(), BuildError> {
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut failed: Option<(usize, i64)> = None;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Stream, String)>();
        let mut on_line = move |stream: Stream, line: &str| {
            let _ = tx.send((stream, line.to_string()));
        };
        let run = self.engine.run_container(id, &mut on_line);
        tokio::pin!(run);
        let code = loop {
            tokio::select! {
                biased;
                Some((stream, line)) = rx.recv() => self.on_output(phase, stream, &line, &mut tail, &mut failed),
                code = &mut run => break code?,
            }
        };
        while let Ok((stream, line)) = rx.try_recv() {
            self.on_output(phase, stream, &line, &mut tail, &mut failed);
        }
        if code == 0 {
            return Ok(());
        }
        let step = failed.and_then(|(i, _)| script.steps.get(i));
        if let Some(file) = step.and_then(|s| s.file.as_ref()) {
            return Err(missing_file(format!(
                "`{file}` does not exist in the image"
            )));
        }
        let (command, exit_code) = match failed {
            Some((_, c)) => (step.map(|s| s.command.clone()), c),
            None => (None, code),
        };
        Err(BuildError::Phase(PhaseFailure {
            phase,
            message: match &command {
                Some(_) => "a command failed".to_string(),
                None => format!("the phase's container exited with code {code}"),
            },
            command: command.map(|c| self.redact(&c)),
            exit_code: Some(exit_code),
            output: tail.into_iter().collect(),
            step: None,
        }))
    }

    fn on_output(
        &mut self,
        phase: Phase,
        stream: Stream,
        line: &str,
        tail: &mut VecDeque<String>,
        failed: &mut Option<(usize, i64)>,
    ) {
        if let Some(f) = PhaseScript::parse_failure(line) {
            *failed = Some(f);
            return;
        }
        let line = self.redact(line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line.clone());
        self.reporter.report(Event::PhaseLog {
            phase,
            stream: stream.as_str(),
            line,
        });
    }
}

/// Verify's failure for a file in `verify.files` that is not in the image.
pub(super) fn missing_file(why: String) -> BuildError {
    BuildError::Phase(PhaseFailure {
        phase: Phase::Verify,
        message: format!("verify.files: {why}"),
        command: None,
        exit_code: None,
        output: Vec::new(),
        step: None,
    })
}
